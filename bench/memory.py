"""Peak resident memory (VmHWM) of `myafya serve` on SQLite after many USSD sessions.

The script registers one fake patient per session (+25470000xxxx), starts the service, and an
aiohttp client in this process walks each session through its first steps (home, specialty,
doctor by default) with a fixed number of sessions in flight. It prints VmRSS and VmHWM from
/proc/<pid>/status after start-up and as the sessions go, so growth shows as well as the peak.

    .venv/bin/python bench/memory.py                          # 10,000 sessions, 3 steps each
    .venv/bin/python bench/memory.py --sessions 50000 --steps 5 --max-seconds 900   # longer
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import Counter

import aiohttp
from support import (
    MAX_FAKE_PHONES,
    NETWORK_CODE,
    SERVICE_CODE,
    USSD_PATH,
    ServerProcess,
    fake_phone,
    machine_summary,
    memory_kib,
    process_cpu_seconds,
    register_patients,
    seed_demo_database,
    start_service,
    throwaway_database,
)

TARGET_MB = 150  # megabytes of 10^6 bytes
STEPS = ("", "1", "1*1", "1*1*1", "1*1*1*1")
MARKERS = ("MyAfya menu", "Choose a service", "Choose a doctor", "choose a day", "choose a time")


def megabytes(kib: int) -> str:
    return f"{kib * 1024 / 1e6:.1f} MB ({kib / 1024:.1f} MiB)"


async def walk_sessions(
    server: ServerProcess, *, sessions: int, steps: int, concurrency: int, deadline: float
) -> Counter[str]:
    """Walk `sessions` sessions, `concurrency` at a time, and count how each reply looked."""
    outcomes: Counter[str] = Counter()
    numbers = itertools.count()
    checkpoint = max(sessions // 10, 1)
    url = server.base_url + USSD_PATH
    timeout = aiohttp.ClientTimeout(total=10)

    async def walk(client: aiohttp.ClientSession, number: int) -> None:
        phone = fake_phone(number % MAX_FAKE_PHONES)
        for step in range(steps):
            form = {
                "sessionId": f"bench-memory-{number}",
                "serviceCode": SERVICE_CODE,
                "phoneNumber": phone,
                "networkCode": NETWORK_CODE,
                "text": STEPS[step],
            }
            async with client.post(url, data=form) as response:
                body = await response.text()
            if response.status != 200 or MARKERS[step] not in body:
                outcomes[f"wrong reply at step {step + 1}: {response.status} {body[:60]!r}"] += 1
                return
            outcomes["right reply"] += 1
        outcomes["sessions walked"] += 1

    async def worker(client: aiohttp.ClientSession) -> None:
        for number in numbers:
            if number >= sessions or time.monotonic() > deadline:
                return
            try:
                await walk(client, number)
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcomes[f"request failed: {type(exc).__name__}"] += 1
            if (number + 1) % checkpoint == 0:
                memory = memory_kib(server.pid)
                print(
                    f"  after {number + 1:>6,} sessions: VmRSS {megabytes(memory['VmRSS'])},"
                    f" VmHWM {megabytes(memory['VmHWM'])}",
                    flush=True,
                )

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000, help="USSD sessions to walk")
    parser.add_argument("--steps", type=int, default=3, help="requests per session, 2..5")
    parser.add_argument("--concurrency", type=int, default=16, help="sessions in flight")
    parser.add_argument(
        "--max-seconds", type=float, default=300, help="stop walking after this many seconds"
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="MYAFYA_LOG_LEVEL of the service",
    )
    args = parser.parse_args()
    if not 1 <= args.sessions <= 1_000_000 or not 2 <= args.steps <= len(STEPS):
        parser.error(f"expected --sessions 1..1000000 and --steps 2..{len(STEPS)}")
    if not 1 <= args.concurrency <= 256 or not 1 <= args.max_seconds <= 3600:
        parser.error("expected --concurrency 1..256 and --max-seconds 1..3600")

    print(f"Machine: {machine_summary()}")
    with throwaway_database("sqlite") as database:
        seed_demo_database(database)
        register_patients(database, min(args.sessions, MAX_FAKE_PHONES))
        with start_service(database, log_level=args.log_level) as server:
            memory = memory_kib(server.pid)
            print(
                f"  after start-up: VmRSS {megabytes(memory['VmRSS'])},"
                f" VmHWM {megabytes(memory['VmHWM'])}"
            )
            cpu_before = process_cpu_seconds(server.pid)
            started = time.monotonic()
            outcomes = asyncio.run(
                walk_sessions(
                    server,
                    sessions=args.sessions,
                    steps=args.steps,
                    concurrency=args.concurrency,
                    deadline=started + args.max_seconds,
                )
            )
            elapsed = time.monotonic() - started
            cpu = process_cpu_seconds(server.pid) - cpu_before
            memory = memory_kib(server.pid)
            if server.process.poll() is not None:
                raise RuntimeError(f"myafya serve died during the run:\n{server.log_tail()}")

    requests = sum(v for k, v in outcomes.items() if k != "sessions walked")
    peak_mb = memory["VmHWM"] * 1024 / 1e6
    print(f"\nRequests {requests:,} in {elapsed:.0f} s ({requests / elapsed:,.0f} req/s),")
    print(f"server CPU {cpu:.1f} s ({cpu * 1e6 / max(requests, 1):,.0f} µs per request)")
    print(f"Outcomes: {dict(outcomes)}")
    print(f"Final VmRSS {megabytes(memory['VmRSS'])}")
    print(f"Peak VmHWM {megabytes(memory['VmHWM'])}")
    verdict = "met" if peak_mb < TARGET_MB else "NOT met"
    print(f"Target: peak under {TARGET_MB} MB: {verdict}")


if __name__ == "__main__":
    main()
