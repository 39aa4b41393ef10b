"""CPU per USSD step in process: `UssdWebhook.handle_step` on the walk of bench/ussd.py.

No sockets and no HTTP parsing: each request is a stand-in object whose `post()` returns the
parsed form, so the number is the handler's own CPU, from the allowlist check to the reply.
The host and webhook are built as `myafya serve` builds them, on a seeded SQLite database in a
temporary folder, without the job system (no reminders or SMS are sent on this walk).
Machines like the project's 2-core VM move by 10 % or more between runs, so compare medians of
several runs, interleaved when comparing two trees.

    .venv/bin/python bench/ussd_steps.py                       # 2,000 sessions, 5 runs
    .venv/bin/python bench/ussd_steps.py --log-level INFO 2>/dev/null   # with the log line
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import statistics
import time
from typing import Any

from multidict import MultiDict
from support import (
    NETWORK_CODE,
    SERVICE_CODE,
    fake_phone,
    register_patients,
    seed_demo_database,
    service_environment,
    throwaway_database,
)

STEPS = ("", "1", "1*1", "1*1*1", "1*1*1*1")
PATIENTS = 64
WARM_UP_SESSIONS = 20


class FormRequest:
    """A stand-in for the parts of an aiohttp request that `UssdWebhook.handle_step` reads."""

    remote = "127.0.0.1"
    content_type = "application/x-www-form-urlencoded"

    def __init__(self, form: MultiDict[str]) -> None:
        self._form = form

    async def post(self) -> MultiDict[str]:
        return self._form


def forms(sessions: int, tag: str) -> list[MultiDict[str]]:
    """Build the requests of `sessions` walks, one patient per session in turn."""
    result = []
    for session in range(sessions):
        for text in STEPS:
            result.append(
                MultiDict(
                    sessionId=f"ATUid_{tag}_{session:08d}",
                    serviceCode=SERVICE_CODE,
                    phoneNumber=fake_phone(session % PATIENTS),
                    networkCode=NETWORK_CODE,
                    text=text,
                )
            )
    return result


async def measure(sessions: int, runs: int, profile_path: str | None = None) -> list[float]:
    """Return the CPU µs per step of each run."""
    from bot.channels.ussd.webhook import UssdWebhook
    from bot.engine.host import ConversationHost
    from bot.flows import FLOWS
    from core.clock import SystemClock
    from core.db.database import open_database
    from myafya.app import SQLITE_CHECKPOINT_SECONDS, host_config
    from myafya.logs import configure_logging
    from myafya.metrics import Metrics
    from myafya.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    database = await open_database(
        settings.database_url, checkpoint_interval_seconds=SQLITE_CHECKPOINT_SECONDS
    )
    clock = SystemClock()
    host = ConversationHost(
        database=database,
        clock=clock,
        config=host_config(settings),
        flows=FLOWS,
        dispatcher=None,
    )
    webhook = UssdWebhook(host=host, clock=clock, metrics=Metrics())

    async def walk(requests: list[MultiDict[str]]) -> None:
        for form in requests:
            response: Any = await webhook.handle_step(FormRequest(form))  # type: ignore[arg-type]
            if response.status != 200 or not response.text.startswith("CON "):
                raise RuntimeError(f"unexpected reply {response.status}: {response.text!r}")

    results = []
    try:
        await walk(forms(WARM_UP_SESSIONS, "warm"))
        for run in range(runs):
            requests = forms(sessions, f"r{run}")
            profiler = cProfile.Profile() if profile_path and run == runs - 1 else None
            started = time.process_time()
            if profiler is not None:
                profiler.enable()
            await walk(requests)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile_path)
            results.append((time.process_time() - started) * 1e6 / len(requests))
    finally:
        await database.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000, help="sessions of 5 steps per run")
    parser.add_argument("--runs", type=int, default=5, help="measured runs")
    parser.add_argument("--log-level", default="WARNING", help="MYAFYA_LOG_LEVEL of the handler")
    parser.add_argument(
        "--profile", metavar="FILE", help="write a cProfile of the last run to FILE (slows it)"
    )
    args = parser.parse_args()
    if not 1 <= args.sessions <= 20_000 or not 1 <= args.runs <= 20:
        parser.error("expected --sessions 1..20000 and --runs 1..20")

    with throwaway_database("sqlite") as database:
        seed_demo_database(database)
        register_patients(database, PATIENTS)
        os.environ.update(service_environment(database.url, args.log_level))
        results = asyncio.run(measure(args.sessions, args.runs, args.profile))
        logging.shutdown()
    print(
        f"CPU per step: median {statistics.median(results):.0f} µs"
        f" ({', '.join(f'{value:.0f}' for value in results)}),"
        f" {args.runs} runs of {args.sessions * len(STEPS):,} steps"
    )


if __name__ == "__main__":
    main()
