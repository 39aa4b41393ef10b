"""Booking under contention through `core.booking.service.book_appointment` on real databases.

Each case starts all its attempts at once, one unit of work per attempt, as concurrent USSD
steps would:

- one slot: N patients try to book the same slot; exactly one may win;
- distinct slots: N patients book N different slots; all must win.

The baseline, in the same run and through the same unit of work, is N plain single-row inserts
into a bench-only table: distinct keys for the distinct-slot case, and one key with
`ON CONFLICT DO NOTHING` for the one-slot case. SQLite runs in one process on one
`SqliteDatabase`, and again split over several processes on the same file; PostgreSQL runs on
one `PostgresDatabase` pool with the product's default size.

    .venv/bin/python bench/booking.py                       # both databases, under 1 minute
    .venv/bin/python bench/booking.py --database sqlite --reps 20 --sqlite-processes 4
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from support import (
    DEFAULT_POSTGRES_URL,
    BenchDatabase,
    machine_summary,
    median,
    postgres_reachable,
    register_patients,
    seed_demo_database,
    spread,
    throwaway_database,
)

LEAD = timedelta(minutes=15)  # MYAFYA_BOOKING_LEAD_MINUTES default
CHANNEL = "ussd"
CASES = ("one slot", "distinct slots")
# The baseline of each case: plain inserts of distinct keys, or of one key that only one wins.
BASELINE_OF = {"one slot": "plain insert, one key", "distinct slots": "plain insert, distinct keys"}


@dataclass(frozen=True)
class Plan:
    """Everything a process needs to run one round of every case."""

    url: str
    patient_ids: list[int]
    contended_slot: int
    distinct_slots: list[int]


@dataclass
class Round:
    """One case run once: when it started and ended, and how each attempt ended."""

    started: float
    ended: float
    outcomes: Counter[str]

    @property
    def seconds(self) -> float:
        return self.ended - self.started


# --- SQL owned by this benchmark ------------------------------------------------------------


def _sql() -> dict[str, Any]:
    from core.db.database import Sql

    return {
        "create": Sql(
            "CREATE TABLE IF NOT EXISTS bench_plain_inserts (k INTEGER PRIMARY KEY, v TEXT)"
        ),
        "insert": Sql("INSERT INTO bench_plain_inserts (k, v) VALUES (:k, :v)"),
        "insert_once": Sql(
            "INSERT INTO bench_plain_inserts (k, v) VALUES (:k, :v) ON CONFLICT (k) DO NOTHING"
        ),
        "clear_plain": Sql("DELETE FROM bench_plain_inserts"),
        "clear_appointments": Sql("DELETE FROM appointments"),
        "count_plain": Sql("SELECT COUNT(*) FROM bench_plain_inserts"),
        "count_live": Sql(
            "SELECT COUNT(*) FROM appointments WHERE status IN ('held', 'booked')"
            " AND slot_id = :slot_id"
        ),
        "count_all_live": Sql(
            "SELECT COUNT(*) FROM appointments WHERE status IN ('held', 'booked')"
        ),
        "future_slots": Sql(
            "SELECT s.id FROM slots s JOIN doctors d ON d.id = s.doctor_id"
            " WHERE d.active = true AND s.starts_at >= :earliest ORDER BY s.starts_at, s.id"
            " LIMIT :limit"
        ),
    }


async def _prepare(database: BenchDatabase, patient_ids: list[int]) -> Plan:
    from core.clock import SystemClock
    from core.db.database import open_database

    sql = _sql()
    attempts = len(patient_ids)
    db = await open_database(database.url)
    try:
        async with db.unit_of_work() as uow:
            await uow.execute(sql["create"])
            # A margin past the lead time, so no slot becomes too soon during the run.
            earliest = SystemClock().now() + LEAD + timedelta(hours=1)
            rows = await uow.all(sql["future_slots"], earliest=earliest, limit=attempts + 1)
    finally:
        await db.close()
    slots = [row["id"] for row in rows]
    if len(slots) < attempts + 1:
        raise RuntimeError(
            f"not enough future slots in the demo data: found {len(slots)}, need {attempts + 1}"
        )
    return Plan(database.url, patient_ids, slots[0], slots[1:])


# --- one round of one case ------------------------------------------------------------------


def _attempts(
    db: Any, plan: Plan, case: str, indexes: Sequence[int]
) -> list[Callable[[], Awaitable[str]]]:
    """Return one coroutine factory per attempt; each returns how its attempt ended."""
    from core.booking.service import book_appointment
    from core.clock import SystemClock
    from core.errors import SlotUnavailable

    sql = _sql()
    now = SystemClock().now()

    async def book(index: int, slot_id: int) -> str:
        try:
            async with db.unit_of_work() as uow:
                await book_appointment(
                    uow,
                    patient_id=plan.patient_ids[index],
                    slot_id=slot_id,
                    channel=CHANNEL,
                    now=now,
                    lead=LEAD,
                )
        except SlotUnavailable:
            return "lost"
        except Exception as exc:  # any other error is counted and printed in the table
            return f"error {type(exc).__name__}: {exc}"[:160]
        return "won"

    async def insert(index: int, *, one_key: bool) -> str:
        try:
            async with db.unit_of_work() as uow:
                if one_key:
                    inserted = await uow.execute(sql["insert_once"], k=0, v=f"attempt {index}")
                else:
                    inserted = await uow.execute(sql["insert"], k=index, v=f"attempt {index}")
        except Exception as exc:  # counted and printed, as above
            return f"error {type(exc).__name__}: {exc}"[:160]
        return "won" if inserted == 1 else "lost"

    if case == "one slot":
        return [lambda i=i: book(i, plan.contended_slot) for i in indexes]
    if case == "distinct slots":
        return [lambda i=i: book(i, plan.distinct_slots[i]) for i in indexes]
    if case == BASELINE_OF["one slot"]:
        return [lambda i=i: insert(i, one_key=True) for i in indexes]
    if case == BASELINE_OF["distinct slots"]:
        return [lambda i=i: insert(i, one_key=False) for i in indexes]
    raise ValueError(f"unknown case {case!r}")


async def _run_round(db: Any, plan: Plan, case: str, indexes: Sequence[int]) -> Round:
    factories = _attempts(db, plan, case, indexes)
    started = time.monotonic()
    outcomes = await asyncio.gather(*(factory() for factory in factories))
    ended = time.monotonic()
    return Round(started, ended, Counter(outcomes))


async def _reset(db: Any) -> None:
    sql = _sql()
    async with db.unit_of_work() as uow:
        await uow.execute(sql["clear_appointments"])
        await uow.execute(sql["clear_plain"])


async def _check(db: Any, plan: Plan, case: str) -> str | None:
    """Return a problem with the rows a round left, or None when they are as expected."""
    sql = _sql()
    async with db.unit_of_work() as uow:
        if case == "one slot":
            live = await uow.scalar(sql["count_live"], slot_id=plan.contended_slot)
            return None if live == 1 else f"{live} live appointments on the contended slot"
        if case == "distinct slots":
            live = await uow.scalar(sql["count_all_live"])
            expected = len(plan.distinct_slots)
            return None if live == expected else f"{live} live appointments, {expected} expected"
        rows = await uow.scalar(sql["count_plain"])
        expected = 1 if case == BASELINE_OF["one slot"] else len(plan.patient_ids)
        return None if rows == expected else f"{rows} plain rows, {expected} expected"


# --- one process ----------------------------------------------------------------------------

ALL_CASES = (*CASES, *(BASELINE_OF[case] for case in CASES))


async def run_in_process(plan: Plan, reps: int) -> dict[str, list[Round]]:
    """Run every case `reps` times on one database object, after one round of warm-up."""
    from core.db.database import open_database

    db = await open_database(plan.url)
    results: dict[str, list[Round]] = {case: [] for case in ALL_CASES}
    indexes = range(len(plan.patient_ids))
    try:
        for rep in range(reps + 1):
            for case in ALL_CASES:
                await _reset(db)
                round_ = await _run_round(db, plan, case, indexes)
                problem = await _check(db, plan, case)
                if problem:
                    round_.outcomes[f"check failed: {problem}"] += 1
                if rep > 0:  # rep 0 warms the connections, caches and compiled statements
                    results[case].append(round_)
    finally:
        await db.close()
    return results


# --- several SQLite processes on one file ---------------------------------------------------


def _process_main(plan: Plan, part: int, parts: int, reps: int, barrier: Any, queue: Any) -> None:
    """Run this process's share of every round, starting each round on the shared barrier."""

    async def main() -> None:
        from core.db.database import open_database

        db = await open_database(plan.url)
        indexes = range(part, len(plan.patient_ids), parts)
        try:
            for _ in range(reps + 1):
                for case in ALL_CASES:
                    barrier.wait(timeout=120)  # the parent has reset the tables
                    round_ = await _run_round(db, plan, case, indexes)
                    queue.put((case, round_.started, round_.ended, dict(round_.outcomes)))
                    barrier.wait(timeout=120)  # every process has finished the round
        finally:
            await db.close()

    asyncio.run(main())


def run_in_processes(plan: Plan, reps: int, processes: int) -> dict[str, list[Round]]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes + 1)
    queue = context.Queue()
    workers = [
        context.Process(target=_process_main, args=(plan, part, processes, reps, barrier, queue))
        for part in range(processes)
    ]
    for worker in workers:
        worker.start()
    results: dict[str, list[Round]] = {case: [] for case in ALL_CASES}

    async def reset_and_check(case: str | None) -> str | None:
        from core.db.database import open_database

        db = await open_database(plan.url)
        try:
            problem = await _check(db, plan, case) if case else None
            await _reset(db)
        finally:
            await db.close()
        return problem

    try:
        for rep in range(reps + 1):
            for case in ALL_CASES:
                asyncio.run(reset_and_check(None))
                barrier.wait(timeout=120)
                barrier.wait(timeout=600)
                parts = [queue.get(timeout=60) for _ in range(processes)]
                outcomes: Counter[str] = Counter()
                for _, _, _, counted in parts:
                    outcomes.update(counted)
                problem = asyncio.run(reset_and_check(case))
                if problem:
                    outcomes[f"check failed: {problem}"] += 1
                started = min(part[1] for part in parts)
                ended = max(part[2] for part in parts)
                if rep > 0:
                    results[case].append(Round(started, ended, outcomes))
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.terminate()
    return results


# --- report ---------------------------------------------------------------------------------


def print_results(title: str, results: dict[str, list[Round]], attempts: int) -> None:
    print(f"\n### {title}: median of {len(results[CASES[0]])} reps (min-max)\n")
    print(
        "| case | winners per rep | attempts/s | wall ms | baseline: plain inserts/s"
        " | ratio case/baseline | other outcomes |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for case in CASES:
        rounds, baseline = results[case], results[BASELINE_OF[case]]
        rates = [attempts / r.seconds for r in rounds]
        baseline_rates = [attempts / r.seconds for r in baseline]
        ratios = [a / b for a, b in zip(rates, baseline_rates, strict=True)]
        winners = sorted({r.outcomes["won"] for r in rounds})
        others: Counter[str] = Counter()
        for r in rounds + baseline:
            others.update({k: v for k, v in r.outcomes.items() if k not in ("won", "lost")})
        print(
            f"| {case} | {', '.join(map(str, winners))}"
            f" | {median(rates):,.0f} ({spread(rates)})"
            f" | {median([r.seconds * 1000 for r in rounds]):,.0f}"
            f" | {median(baseline_rates):,.0f} ({spread(baseline_rates)})"
            f" | **{median(ratios):.2f}** ({spread(ratios, '{:.2f}')})"
            f" | {'; '.join(f'{k} x{v}' for k, v in others.items()) or 'none'} |"
        )
    one_slot_winners = [r.outcomes["won"] for r in results["one slot"]]
    verdict = "exactly one winner in every rep" if set(one_slot_winners) == {1} else "WRONG"
    print(f"\nOne slot, {attempts} attempts: winners per rep {one_slot_winners}: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgresql", "both"],
        default="both",
        help="database to measure (default: both)",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="server and admin database where the throwaway database is created",
    )
    parser.add_argument("--attempts", type=int, default=200, help="attempts per case")
    parser.add_argument("--reps", type=int, default=10, help="measured repetitions of every case")
    parser.add_argument(
        "--sqlite-processes",
        type=int,
        default=2,
        help="processes of the multi-process SQLite variant; 0 skips it",
    )
    args = parser.parse_args()
    if not 2 <= args.attempts <= 1000 or not 1 <= args.reps <= 50:
        parser.error("expected --attempts 2..1000 and --reps 1..50")
    if not 0 <= args.sqlite_processes <= 16:
        parser.error("expected --sqlite-processes 0..16")

    print(f"Machine: {machine_summary()}")
    dialects = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in dialects and not postgres_reachable(args.postgres_url):
        sys.exit(1)
    started = time.monotonic()
    for dialect in dialects:
        with throwaway_database(dialect, args.postgres_url) as database:
            seed_demo_database(database)
            patient_ids = register_patients(database, args.attempts)
            plan = asyncio.run(_prepare(database, patient_ids))
            results = asyncio.run(run_in_process(plan, args.reps))
            name = "SqliteDatabase, one process" if dialect == "sqlite" else "PostgresDatabase pool"
            print_results(f"{dialect}: {name}", results, args.attempts)
            if dialect == "sqlite" and args.sqlite_processes:
                results = run_in_processes(plan, args.reps, args.sqlite_processes)
                title = f"sqlite: {args.sqlite_processes} processes on one file"
                print_results(title, results, args.attempts)
    print(f"\nTotal time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
