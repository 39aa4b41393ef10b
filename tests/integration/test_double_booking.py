"""Many patients race for Dr. Test Kamau's 10:00–10:30 slot on 1 February 2027 (Nairobi).

A check-then-insert booking lets several of them through. The booking service must let exactly
one through, because the database's partial unique index decides, and every other attempt must
get SlotUnavailable with the next three free slots.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from datetime import datetime
from pathlib import Path
from typing import Any

from core.booking.service import book_appointment
from core.db.database import PostgresDatabase, Sql, SqliteDatabase
from core.db.migrate import upgrade_to_head
from core.errors import SlotUnavailable
from tests.integration.booking_setup import (
    KAMAU_SLOT_START,
    LEAD,
    add_patients,
    nairobi,
    setup_kamau,
    slot_id_at,
)

ATTEMPTS = 50
PROCESSES = 8
ALTERNATIVES = [nairobi(1, 10, 30), nairobi(1, 11), nairobi(1, 11, 30)]
SELECT_SLOT_APPOINTMENTS = Sql(
    "SELECT patient_id, status FROM appointments WHERE slot_id = :slot_id"
)


async def attempt(database: Any, *, patient_id: int, slot_id: int, now: datetime) -> Any:
    """Return the booked appointment, or the SlotUnavailable the attempt raised."""
    try:
        async with database.unit_of_work() as uow:
            return await book_appointment(
                uow, patient_id=patient_id, slot_id=slot_id, channel="ussd", now=now, lead=LEAD
            )
    except SlotUnavailable as exc:
        return exc


async def prepare(database: Any, now: datetime) -> tuple[int, list[int]]:
    doctor_id = await setup_kamau(database, now, days=2)
    patient_ids = await add_patients(database, ATTEMPTS, now)
    async with database.unit_of_work() as uow:
        slot_id = await slot_id_at(uow, doctor_id, KAMAU_SLOT_START)
    return slot_id, patient_ids


async def check_one_winner(database: Any, slot_id: int, outcomes: list[Any]) -> None:
    winners = [outcome for outcome in outcomes if not isinstance(outcome, SlotUnavailable)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, SlotUnavailable)]
    assert len(outcomes) == ATTEMPTS
    assert len(winners) == 1
    assert len(losers) == ATTEMPTS - 1
    for loser in losers:
        assert [slot.starts_at for slot in loser.alternatives] == ALTERNATIVES

    async with database.unit_of_work() as uow:
        rows = await uow.all(SELECT_SLOT_APPOINTMENTS, slot_id=slot_id)
    assert len(rows) == 1
    assert rows[0]["status"] == "booked"
    assert rows[0]["patient_id"] == winners[0].patient_id


async def test_double_booking_postgres_pool(postgres_url, clock) -> None:
    await asyncio.to_thread(upgrade_to_head, postgres_url)
    database = await PostgresDatabase.connect(postgres_url, min_size=20, max_size=20)
    try:
        slot_id, patient_ids = await prepare(database, clock.now())
        outcomes = await asyncio.gather(
            *(
                attempt(database, patient_id=patient_id, slot_id=slot_id, now=clock.now())
                for patient_id in patient_ids
            )
        )
        await check_one_winner(database, slot_id, list(outcomes))
    finally:
        await database.close()


def _sqlite_worker(
    path: str, patient_ids: list[int], slot_id: int, now: datetime, start: Any, results: Any
) -> None:
    """Book the slot once per patient from this process's own SQLite connection."""

    async def run() -> list[tuple[int, list[datetime]]]:
        database = SqliteDatabase(Path(path))
        outcomes = []
        try:
            for patient_id in patient_ids:
                outcome = await attempt(database, patient_id=patient_id, slot_id=slot_id, now=now)
                if isinstance(outcome, SlotUnavailable):
                    outcomes.append((patient_id, [slot.starts_at for slot in outcome.alternatives]))
                else:
                    outcomes.append((patient_id, []))
        finally:
            await database.close()
        return outcomes

    start.wait(timeout=30)
    try:
        results.put(("ok", asyncio.run(run())))
    except Exception as exc:  # reported to the parent, which fails the test with it
        results.put(("error", repr(exc)))


async def test_double_booking_sqlite_processes(sqlite_url, tmp_path, clock) -> None:
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    path = tmp_path / "myafya.db"
    database = SqliteDatabase(path)
    try:
        slot_id, patient_ids = await prepare(database, clock.now())
    finally:
        await database.close()

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    shares = [patient_ids[index::PROCESSES] for index in range(PROCESSES)]
    workers = [
        context.Process(
            target=_sqlite_worker, args=(str(path), share, slot_id, clock.now(), start, results)
        )
        for share in shares
    ]
    for worker in workers:
        worker.start()
    reports = [await asyncio.to_thread(results.get, True, 60) for _ in workers]
    for worker in workers:
        await asyncio.to_thread(worker.join, 10)

    errors = [detail for status, detail in reports if status == "error"]
    assert errors == []
    attempts = [outcome for _, outcomes in reports for outcome in outcomes]
    won = [patient_id for patient_id, alternatives in attempts if not alternatives]
    assert len(attempts) == ATTEMPTS
    assert len(won) == 1
    for _, alternatives in attempts:
        assert alternatives in ([], ALTERNATIVES)

    database = SqliteDatabase(path)
    try:
        async with database.unit_of_work() as uow:
            rows = await uow.all(SELECT_SLOT_APPOINTMENTS, slot_id=slot_id)
    finally:
        await database.close()
    assert [row["patient_id"] for row in rows] == won
