"""Chat-channel webhooks of `myafya serve` against a bare form-parsing server, in one run.

Each scenario sends provider-format requests to the real endpoint: signed, each with a message
id of its own, from registered fake patients. The same requests go to
bench/bare_channel_server.py, which parses the body and replies with a constant. An asyncio load
generator in this process keeps `concurrency` requests in flight for a fixed time, at each
concurrency, and reps are the outer loop, so a slow phase of the machine hits both servers
alike. Tables show the median of the reps; the ratio is our req/s over the bare server's.

Scenarios: `whatsapp` (Twilio webhooks with X-Twilio-Signature). Add a scenario to SCENARIOS
for another channel.

By default the service hands replies to a Redis broker that no worker reads (`--jobs redis`),
so the numbers measure the webhook. With `--jobs embedded` the same process also sends every
reply to the sandbox fake, as `make run` does.

    .venv/bin/python bench/channels.py                       # SQLite, about 2 minutes
    .venv/bin/python bench/channels.py --database postgresql --reps 5
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from support import (
    DEFAULT_POSTGRES_URL,
    BenchDatabase,
    ServerProcess,
    fake_phone,
    free_port,
    machine_summary,
    median,
    postgres_reachable,
    register_patients,
    seed_demo_database,
    service_environment,
    spread,
    throwaway_database,
)
from twilio.request_validator import RequestValidator

BENCH_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
CONCURRENCIES = (16, 64)
TARGET_RATIO = 0.2
PATIENTS = 64
REDIS_URL = "redis://127.0.0.1:6379/0"

# The sandbox's placeholder Twilio account and the default public URL that signatures cover.
SANDBOX_TWILIO_AUTH_TOKEN = "sandbox-twilio-auth-token"
PUBLIC_URL = "http://127.0.0.1:8080"
WHATSAPP_PATH = "/webhooks/twilio/whatsapp"


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Scenario:
    """A channel's requests: `requests(run_tag)` yields a new, distinct request each time."""

    name: str
    requests: Callable[[str], Iterator[Request]]
    expected_status: int = 200


def whatsapp_requests(run_tag: str) -> Iterator[Request]:
    """Signed WhatsApp messages "00" (back to the menu) from the registered patients."""
    validator = RequestValidator(SANDBOX_TWILIO_AUTH_TOKEN)
    for number in itertools.count():
        phone = fake_phone(number % PATIENTS)
        sid = f"SM{run_tag}{number:024d}"[:34]
        form = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": f"whatsapp:{phone}",
            "To": "whatsapp:+254700000100",
            "Body": "00",
            "NumMedia": "0",
            "ProfileName": "Bench Patient",
            "WaId": phone.removeprefix("+"),
            "ApiVersion": "2010-04-01",
        }
        signature = validator.compute_signature(PUBLIC_URL + WHATSAPP_PATH, form)
        yield Request(
            WHATSAPP_PATH,
            urlencode(form).encode(),
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )


SCENARIOS = {"whatsapp": Scenario("whatsapp", whatsapp_requests)}


@dataclass
class Sample:
    requests: int
    seconds: float
    errors: int
    latencies_ms: list[float] = field(repr=False)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def load(
    base_url: str, requests: Iterator[Request], *, concurrency: int, seconds: float, status: int
) -> Sample:
    """Keep `concurrency` requests in flight for `seconds`; count each reply with `status`."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                request = next(requests)
                started = time.perf_counter()
                try:
                    async with session.post(
                        base_url + request.path, data=request.body, headers=request.headers
                    ) as response:
                        await response.read()
                        ok = response.status == status
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return Sample(len(latencies), elapsed, errors, latencies)


def start_bare_server(workdir: Path) -> ServerProcess:
    port = free_port()
    server = ServerProcess(
        [sys.executable, str(BENCH_DIR / "bare_channel_server.py"), "--port", str(port)],
        port=port,
        env={"PATH": "/usr/bin:/bin"},
        cwd=workdir,
        name="bare",
    )
    server.wait_ready()
    return server


def start_ours(database: BenchDatabase, jobs: str, namespace: str) -> ServerProcess:
    port = free_port()
    env = service_environment(database.url)
    if jobs == "redis":
        env.update(MYAFYA_BROKER_URL=REDIS_URL, MYAFYA_BROKER_NAMESPACE=namespace)
    server = ServerProcess(
        [str(BIN / "myafya"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        port=port,
        env=env,
        cwd=database.workdir,
        name="myafya",
    )
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def clear_redis_namespace(namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{namespace}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def measure(
    database: BenchDatabase, scenario: Scenario, args: argparse.Namespace
) -> dict[str, dict[int, list[Sample]]]:
    print(f"  preparing {database.dialect} database")
    seed_demo_database(database)
    register_patients(database, PATIENTS)
    namespace = f"bench-{secrets.token_hex(4)}"
    samples: dict[str, dict[int, list[Sample]]] = {
        name: {c: [] for c in CONCURRENCIES} for name in ("ours", "bare")
    }
    run_tag = secrets.token_hex(4).upper()
    requests = scenario.requests(run_tag)
    try:
        with (
            start_ours(database, args.jobs, namespace) as ours,
            start_bare_server(database.workdir) as bare,
        ):
            servers = {"ours": ours, "bare": bare}
            for server in servers.values():
                asyncio.run(
                    load(
                        server.base_url,
                        requests,
                        concurrency=16,
                        seconds=args.warmup,
                        status=scenario.expected_status,
                    )
                )
            for rep in range(args.reps):
                order = ["bare", "ours"] if rep % 2 == 0 else ["ours", "bare"]
                for concurrency in CONCURRENCIES:
                    for name in order:
                        sample = asyncio.run(
                            load(
                                servers[name].base_url,
                                requests,
                                concurrency=concurrency,
                                seconds=args.duration,
                                status=scenario.expected_status,
                            )
                        )
                        samples[name][concurrency].append(sample)
                        print(
                            f"    rep {rep + 1} {scenario.name} c={concurrency} {name}:"
                            f" {sample.rate:,.0f} req/s, p99 {sample.percentile(0.99):.1f} ms,"
                            f" {sample.errors} errors"
                        )
    finally:
        if args.jobs == "redis":
            clear_redis_namespace(namespace)
    return samples


def report(scenario: Scenario, dialect: str, samples: dict[str, dict[int, list[Sample]]]) -> None:
    print(f"\n{scenario.name} on {dialect} (median of reps, min-max in brackets)\n")
    print(
        "| concurrency | ours req/s | bare req/s | ratio | ours p50 ms | ours p99 ms"
        " | bare p99 ms | errors |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for concurrency in CONCURRENCIES:
        ours = samples["ours"][concurrency]
        bare = samples["bare"][concurrency]
        ratios = [o.rate / b.rate for o, b in zip(ours, bare, strict=True) if b.rate]
        ratio = median(ratios)
        verdict = "meets" if ratio >= TARGET_RATIO else "below"
        print(
            f"| {concurrency} | {median([s.rate for s in ours]):,.0f}"
            f" ({spread([s.rate for s in ours])}) | {median([s.rate for s in bare]):,.0f}"
            f" | {ratio:.3f} ({verdict} {TARGET_RATIO}) |"
            f" {median([s.percentile(0.5) for s in ours]):.1f} |"
            f" {median([s.percentile(0.99) for s in ours]):.1f}"
            f" ({spread([s.percentile(0.99) for s in ours], '{:.1f}')}) |"
            f" {median([s.percentile(0.99) for s in bare]):.1f} |"
            f" {sum(s.errors for s in ours + bare)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--jobs", choices=("redis", "embedded"), default="redis")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per server")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every measurement")
    args = parser.parse_args()

    print(machine_summary())
    dialects = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in dialects and not postgres_reachable(args.postgres_url):
        sys.exit(1)
    scenarios = list(SCENARIOS.values()) if args.scenario == "all" else [SCENARIOS[args.scenario]]
    for dialect in dialects:
        for scenario in scenarios:
            with throwaway_database(dialect, args.postgres_url) as database:
                samples = measure(database, scenario, args)
            report(scenario, dialect, samples)


if __name__ == "__main__":
    main()
