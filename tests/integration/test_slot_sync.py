from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.booking.schedules import extend_all_slots, sync_slots
from core.booking.service import book_appointment, cancel_appointment, list_free_slots
from core.db.database import Sql
from tests.integration.booking_setup import (
    CUTOFF,
    LEAD,
    NAIROBI,
    add_clinic,
    add_doctor,
    add_exception,
    add_patients,
    add_specialty,
    add_window,
    nairobi,
    setup_kamau,
    slot_id_at,
)

LONDON = ZoneInfo("Europe/London")
SELECT_SLOT_STARTS = Sql(
    "SELECT starts_at FROM slots WHERE doctor_id = :doctor_id ORDER BY starts_at"
)
DELETE_WINDOWS = Sql("DELETE FROM weekly_schedules WHERE doctor_id = :doctor_id")
SET_SLOT_MINUTES = Sql("UPDATE doctors SET slot_minutes = :minutes WHERE id = :doctor_id")


def eat(slots) -> list[str]:
    return [f"{slot.starts_at.astimezone(NAIROBI):%H:%M}" for slot in slots]


async def slot_starts_of(database, doctor_id: int) -> list[datetime]:
    async with database.unit_of_work() as uow:
        rows = await uow.all(SELECT_SLOT_STARTS, doctor_id=doctor_id)
    return [row["starts_at"] for row in rows]


async def test_sync_slots_creates_future_slots(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now(), days=3)
    starts = await slot_starts_of(database, doctor_id)
    # Monday 09:00 starts at the frozen now, so it is not in the future: 5 + 6 + 6 slots.
    assert len(starts) == 17
    assert starts[0] == nairobi(1, 9, 30)
    assert starts[-1] == nairobi(3, 11, 30)
    assert all(start.tzinfo is not None for start in starts)


async def test_sync_slots_twice_changes_nothing(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now(), days=3)
    before = await slot_starts_of(database, doctor_id)
    async with database.unit_of_work() as uow:
        result = await sync_slots(
            uow,
            doctor_id=doctor_id,
            start=date(2027, 2, 1),
            days=3,
            now=clock.now(),
            clinic_zone=NAIROBI,
        )
    assert result.created == 0
    assert result.deleted == 0
    assert await slot_starts_of(database, doctor_id) == before


async def test_sync_slots_london_consultant_in_nairobi(database, clock) -> None:
    async with database.unit_of_work() as uow:
        clinic_id = await add_clinic(uow)
        doctor_id = await add_doctor(
            uow,
            clinic_id=clinic_id,
            specialty_id=await add_specialty(uow),
            name="Dr. Test Consultant",
            timezone="Europe/London",
        )
        for weekday in range(7):
            await add_window(uow, doctor_id, weekday, "13:00", "18:00")
        await add_exception(
            uow, doctor_id, date(2027, 3, 28), available=True, starts="09:00", ends="12:00"
        )
        await sync_slots(
            uow,
            doctor_id=doctor_id,
            start=date(2027, 3, 27),
            days=3,
            now=clock.now(),
            clinic_zone=NAIROBI,
        )

    times_by_day = {}
    async with database.unit_of_work() as uow:
        for day in (27, 28, 29):
            times_by_day[day] = eat(
                await list_free_slots(
                    uow,
                    doctor_id=doctor_id,
                    day=date(2027, 3, day),
                    zone=NAIROBI,
                    now=clock.now(),
                    lead=LEAD,
                )
            )
    afternoon_27 = [f"{hour}:{minute}" for hour in range(16, 21) for minute in ("00", "30")]
    afternoon_later = [f"{hour}:{minute}" for hour in range(15, 20) for minute in ("00", "30")]
    morning_28 = [f"{hour}:{minute}" for hour in range(11, 14) for minute in ("00", "30")]
    assert times_by_day[27] == afternoon_27
    assert times_by_day[28] == morning_28 + afternoon_later
    assert times_by_day[29] == afternoon_later


async def test_sync_slots_null_timezone_uses_clinic_zone(database, clock) -> None:
    async with database.unit_of_work() as uow:
        clinic_id = await add_clinic(uow)
        doctor_id = await add_doctor(
            uow, clinic_id=clinic_id, specialty_id=await add_specialty(uow)
        )
        await add_window(uow, doctor_id, 1, "09:00", "10:00")
        await sync_slots(
            uow,
            doctor_id=doctor_id,
            start=date(2027, 2, 2),
            days=1,
            now=clock.now(),
            clinic_zone=LONDON,
        )
    assert await slot_starts_of(database, doctor_id) == [
        datetime(2027, 2, 2, 9, 0, tzinfo=UTC),
        datetime(2027, 2, 2, 9, 30, tzinfo=UTC),
    ]


async def test_sync_slots_day_off_keeps_booked_slot(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now(), days=3)
    [patient_id] = await add_patients(database, 1, clock.now())
    async with database.unit_of_work() as uow:
        booked_slot = await slot_id_at(uow, doctor_id, nairobi(2, 10))
        await book_appointment(
            uow,
            patient_id=patient_id,
            slot_id=booked_slot,
            channel="sms",
            now=clock.now(),
            lead=LEAD,
        )
        await add_exception(uow, doctor_id, date(2027, 2, 2), available=False)
        result = await sync_slots(
            uow,
            doctor_id=doctor_id,
            start=date(2027, 2, 1),
            days=3,
            now=clock.now(),
            clinic_zone=NAIROBI,
        )
    starts = await slot_starts_of(database, doctor_id)
    tuesday = [start for start in starts if start.astimezone(NAIROBI).day == 2]
    assert result.deleted == 5
    assert result.created == 0
    assert tuesday == [nairobi(2, 10)]


async def test_sync_slots_removed_window_keeps_slots_with_appointments(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now(), days=3)
    patient_ids = await add_patients(database, 2, clock.now())
    async with database.unit_of_work() as uow:
        booked_slot = await slot_id_at(uow, doctor_id, nairobi(2, 9))
        cancelled_slot = await slot_id_at(uow, doctor_id, nairobi(3, 11))
        await book_appointment(
            uow,
            patient_id=patient_ids[0],
            slot_id=booked_slot,
            channel="sms",
            now=clock.now(),
            lead=LEAD,
        )
        cancelled = await book_appointment(
            uow,
            patient_id=patient_ids[1],
            slot_id=cancelled_slot,
            channel="ussd",
            now=clock.now(),
            lead=LEAD,
        )
        await cancel_appointment(
            uow,
            patient_id=patient_ids[1],
            appointment_id=cancelled.id,
            now=clock.now(),
            cutoff=CUTOFF,
        )
        await uow.execute(DELETE_WINDOWS, doctor_id=doctor_id)
        result = await sync_slots(
            uow,
            doctor_id=doctor_id,
            start=date(2027, 2, 1),
            days=3,
            now=clock.now(),
            clinic_zone=NAIROBI,
        )
    assert result.deleted == 15
    # A cancelled appointment still refers to its slot, so that slot stays too.
    assert await slot_starts_of(database, doctor_id) == [nairobi(2, 9), nairobi(3, 11)]


async def test_sync_slots_leaves_past_slots(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now(), days=3)
    later = clock.now() + timedelta(days=1)
    async with database.unit_of_work() as uow:
        await uow.execute(DELETE_WINDOWS, doctor_id=doctor_id)
        result = await sync_slots(
            uow, doctor_id=doctor_id, start=date(2027, 2, 1), days=3, now=later, clinic_zone=NAIROBI
        )
    starts = await slot_starts_of(database, doctor_id)
    assert result.deleted == 6 + 5
    assert starts == [start for start in starts if start <= later]
    assert len(starts) == 6


async def test_sync_slots_longer_slots_skip_overlap_with_booked(database, clock) -> None:
    doctor_id = await setup_kamau(database, clock.now(), days=3)
    [patient_id] = await add_patients(database, 1, clock.now())
    async with database.unit_of_work() as uow:
        booked_slot = await slot_id_at(uow, doctor_id, nairobi(2, 9, 30))
        await book_appointment(
            uow,
            patient_id=patient_id,
            slot_id=booked_slot,
            channel="sms",
            now=clock.now(),
            lead=LEAD,
        )
        await uow.execute(SET_SLOT_MINUTES, doctor_id=doctor_id, minutes=60)
        await sync_slots(
            uow,
            doctor_id=doctor_id,
            start=date(2027, 2, 2),
            days=1,
            now=clock.now(),
            clinic_zone=NAIROBI,
        )
    starts = await slot_starts_of(database, doctor_id)
    tuesday = [start for start in starts if start.astimezone(NAIROBI).day == 2]
    # The 60-minute 09:00 slot would overlap the booked 09:30 one, so it is not created.
    assert tuesday == [nairobi(2, 9, 30), nairobi(2, 10), nairobi(2, 11)]


async def test_extend_all_slots_active_doctors_only(database, clock) -> None:
    async with database.unit_of_work() as uow:
        clinic_id = await add_clinic(uow)
        specialty_id = await add_specialty(uow)
        active_id = await add_doctor(uow, clinic_id=clinic_id, specialty_id=specialty_id)
        inactive_id = await add_doctor(
            uow, clinic_id=clinic_id, specialty_id=specialty_id, name="Dr. Test Away", active=False
        )
        for doctor_id in (active_id, inactive_id):
            await add_window(uow, doctor_id, 1, "09:00", "12:00")
        first = await extend_all_slots(uow, now=clock.now(), days=14, clinic_zone=NAIROBI)
        second = await extend_all_slots(uow, now=clock.now(), days=14, clinic_zone=NAIROBI)
    assert first.created == 12  # two Tuesdays of six slots
    assert (second.created, second.deleted) == (0, 0)
    assert len(await slot_starts_of(database, active_id)) == 12
    assert await slot_starts_of(database, inactive_id) == []
