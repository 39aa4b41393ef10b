"""Benchmark: 10,000 reminders falling due at once, sent by `myafya worker` through the sandbox
Africa's Talking gateway, against a plain loop of SDK send calls to the same fake.

Set-up: a throwaway PostgreSQL database, `myafya serve` (sandbox on) as the SMS gateway,
Redis at --redis-url under a key namespace of this run, and `myafya worker --processes 2`. The
reminders are outbox rows with one due time, written while the workers idle; the scheduler of the
first worker process hands them to Redis when they fall due. Printed: messages/s of the pipeline
and of the plain loop, their ratio (target at least 0.5), the time from the due time until the
last send, and each worker process's peak RSS (VmHWM; target under 200 MB).

The rows are reminders without an appointment row, so the send job skips the appointment
re-read that a booked reminder costs (one indexed primary-key read).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import (
    DEFAULT_POSTGRES_URL,
    MYAFYA,
    ServerProcess,
    fake_phone,
    free_port,
    machine_summary,
    memory_kib,
    postgres_reachable,
    service_environment,
    throwaway_database,
)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
TEXT = (
    "MyAfya reminder: your appointment with Dr. Test Kamau is on Wed 20 Jan 09:00. Ref MA-BENCH1."
)


def environment(database_url: str, redis_url: str, namespace: str, port: int) -> dict[str, str]:
    env = service_environment(database_url)
    env.update(
        MYAFYA_BROKER_URL=redis_url,
        MYAFYA_BROKER_NAMESPACE=namespace,
        MYAFYA_PUBLIC_URL=f"http://127.0.0.1:{port}",
        MYAFYA_QUIET_HOURS="",  # the run may fall at night in Nairobi
    )
    return env


async def write_reminders(database_url: str, count: int, due: datetime) -> None:
    import asyncpg

    rows = [
        (
            f"bench:reminder:{index}",
            fake_phone(index),
            "sms",
            "sms.reminder",
            "{}",
            "en",
            TEXT,
            5,
            due,
            "queued",
            0,
            "reminder",
            due,
            due,
        )
        for index in range(count)
    ]
    connection = await asyncpg.connect(database_url)
    try:
        await connection.copy_records_to_table(
            "outbox_messages",
            records=rows,
            columns=[
                "dedupe_key",
                "recipient",
                "channel",
                "template",
                "variables",
                "language",
                "body",
                "priority",
                "not_before",
                "status",
                "attempts",
                "kind",
                "created_at",
                "updated_at",
            ],
        )
    finally:
        await connection.close()


async def sent_summary(database_url: str) -> tuple[int, datetime | None, int]:
    import asyncpg

    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow(
            "SELECT COUNT(*) FILTER (WHERE status = 'sent') AS sent, MAX(sent_at) AS last,"
            " COUNT(*) FILTER (WHERE status IN ('failed', 'suppressed', 'expired')) AS ended"
            " FROM outbox_messages"
        )
    finally:
        await connection.close()
    return int(row["sent"]), row["last"], int(row["ended"])


def worker_children(supervisor_pid: int) -> list[int]:
    children = Path(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def plain_loop_rate(base_url: str, count: int) -> float:
    """Send `count` SMS one after another with the SDK; return messages/s."""
    from africastalking.SMS import SMSService

    from myafya.settings import SANDBOX_AT_API_KEY, SANDBOX_AT_USERNAME

    service = SMSService(SANDBOX_AT_USERNAME, SANDBOX_AT_API_KEY)
    service._baseUrl = f"{base_url}/sandbox/africastalking/version1"
    started = time.perf_counter()
    for index in range(count):
        response = service.send(TEXT, [fake_phone(index)])
        assert response["SMSMessageData"]["Recipients"][0]["statusCode"] == 101, response
    return count / (time.perf_counter() - started)


def run(args: argparse.Namespace) -> None:
    print(f"machine: {machine_summary()}")
    print(
        f"reminders: {args.count:,}, worker processes: {args.processes}, threads each:"
        f" {args.threads}, plain loop: {args.loop_count:,} sends"
    )
    namespace = f"myafya-bench-{secrets.token_hex(4)}"
    with throwaway_database("postgresql", args.postgres_url) as database:
        port = free_port()
        env = environment(database.url, args.redis_url, namespace, port)
        serve_command = [str(MYAFYA), "serve", "--host", "127.0.0.1", "--port", str(port)]
        with ServerProcess(
            serve_command, port=port, env=env, cwd=database.workdir, name="serve"
        ) as server:
            server.wait_ready()
            worker_command = [str(MYAFYA), "worker", "--processes", str(args.processes)]
            worker_command += ["--threads", str(args.threads)]
            with ServerProcess(
                worker_command, port=0, env=env, cwd=database.workdir, name="worker"
            ) as worker:
                time.sleep(3)  # let the worker processes start and idle
                due = datetime.now(UTC) + timedelta(seconds=2)
                asyncio.run(write_reminders(database.url, args.count, due))
                deadline = time.monotonic() + args.max_seconds
                while True:
                    sent, last, ended = asyncio.run(sent_summary(database.url))
                    if sent + ended >= args.count or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
                peaks = {
                    pid: memory_kib(pid).get("VmHWM", 0) for pid in worker_children(worker.pid)
                }
                if worker.process.poll() is not None:
                    print(worker.log_tail())

            loop_rate = plain_loop_rate(server.base_url, args.loop_count)

    if sent < args.count or last is None:
        print(f"only {sent:,} of {args.count:,} sent ({ended:,} ended otherwise) in time")
        raise SystemExit(1)
    elapsed = (last - due).total_seconds()
    pipeline_rate = args.count / elapsed
    print(
        f"pipeline: {pipeline_rate:,.0f} messages/s, last sent {elapsed:.1f} s after the due time"
    )
    print(f"plain SDK loop: {loop_rate:,.0f} messages/s")
    print(f"ratio pipeline / plain loop: {pipeline_rate / loop_rate:.2f} (target >= 0.5)")
    for pid, peak in sorted(peaks.items()):
        megabytes = peak * 1024 / 1e6
        print(f"worker process {pid}: peak RSS {megabytes:.0f} MB (target < 200 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="reminders (max 10,000)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process")
    parser.add_argument("--loop-count", type=int, default=2_000, help="plain-loop sends")
    parser.add_argument("--max-seconds", type=float, default=600, help="give up after this")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args()
    if not postgres_reachable(args.postgres_url):
        raise SystemExit(1)
    run(args)


if __name__ == "__main__":
    main()
