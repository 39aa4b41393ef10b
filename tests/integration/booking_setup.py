"""Builders of clinic, doctor and schedule rows for the booking and identity tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.booking.schedules import sync_slots
from core.db.database import Sql
from core.identity.patients import get_or_create_patient

NAIROBI = ZoneInfo("Africa/Nairobi")
LEAD = timedelta(minutes=15)
CUTOFF = timedelta(hours=2)
# The slot the double-booking tests race for: Dr. Test Kamau, Monday 1 February 2027,
# 10:00 to 10:30 in Nairobi.
KAMAU_SLOT_START = datetime(2027, 2, 1, 7, 0, tzinfo=UTC)

INSERT_CLINIC = Sql("INSERT INTO clinics (name, timezone) VALUES (:name, :tz) RETURNING id")
INSERT_SPECIALTY = Sql(
    "INSERT INTO specialties (code, name_en, name_sw, position)"
    " VALUES (:code, :name_en, :name_sw, :position) RETURNING id"
)
INSERT_DOCTOR = Sql(
    "INSERT INTO doctors (clinic_id, specialty_id, name, fee_kes, slot_minutes, timezone, active)"
    " VALUES (:clinic_id, :specialty_id, :name, :fee_kes, :slot_minutes, :timezone, :active)"
    " RETURNING id"
)
INSERT_WINDOW = Sql(
    "INSERT INTO weekly_schedules (doctor_id, weekday, starts, ends)"
    " VALUES (:doctor_id, :weekday, :starts, :ends)"
)
INSERT_EXCEPTION = Sql(
    "INSERT INTO schedule_exceptions (doctor_id, on_date, available, starts, ends)"
    " VALUES (:doctor_id, :on_date, :available, :starts, :ends)"
)
SELECT_SLOT_ID = Sql("SELECT id FROM slots WHERE doctor_id = :doctor_id AND starts_at = :starts_at")


async def add_clinic(uow: Any, name: str = "Test Clinic") -> int:
    clinic_id: int = await uow.scalar(INSERT_CLINIC, name=name, tz="Africa/Nairobi")
    return clinic_id


async def add_specialty(uow: Any, code: str = "general", position: int = 1) -> int:
    specialty_id: int = await uow.scalar(
        INSERT_SPECIALTY,
        code=code,
        name_en=f"{code} (en)",
        name_sw=f"{code} (sw)",
        position=position,
    )
    return specialty_id


async def add_doctor(
    uow: Any,
    *,
    clinic_id: int,
    specialty_id: int,
    name: str = "Dr. Test Kamau",
    fee_kes: int = 1000,
    slot_minutes: int = 30,
    timezone: str | None = None,
    active: bool = True,
) -> int:
    doctor_id: int = await uow.scalar(
        INSERT_DOCTOR,
        clinic_id=clinic_id,
        specialty_id=specialty_id,
        name=name,
        fee_kes=fee_kes,
        slot_minutes=slot_minutes,
        timezone=timezone,
        active=active,
    )
    return doctor_id


async def add_window(uow: Any, doctor_id: int, weekday: int, starts: str, ends: str) -> None:
    await uow.execute(INSERT_WINDOW, doctor_id=doctor_id, weekday=weekday, starts=starts, ends=ends)


async def add_exception(
    uow: Any,
    doctor_id: int,
    on_date: date,
    *,
    available: bool,
    starts: str | None = None,
    ends: str | None = None,
) -> None:
    await uow.execute(
        INSERT_EXCEPTION,
        doctor_id=doctor_id,
        on_date=on_date,
        available=available,
        starts=starts,
        ends=ends,
    )


async def slot_id_at(uow: Any, doctor_id: int, starts_at: datetime) -> int:
    slot_id = await uow.scalar(SELECT_SLOT_ID, doctor_id=doctor_id, starts_at=starts_at)
    assert slot_id is not None, f"no slot of doctor {doctor_id} at {starts_at}"
    return int(slot_id)


def nairobi(day: int, hour: int, minute: int = 0) -> datetime:
    """Return the UTC instant of a February 2027 wall time in Nairobi."""
    return datetime(2027, 2, day, hour, minute, tzinfo=NAIROBI).astimezone(UTC)


async def setup_kamau(database: Any, now: datetime, *, days: int = 3) -> int:
    """Create Dr. Test Kamau, Mon–Fri 09:00–12:00 Nairobi time, with slots for `days` days."""
    async with database.unit_of_work() as uow:
        clinic_id = await add_clinic(uow)
        specialty_id = await add_specialty(uow)
        doctor_id = await add_doctor(uow, clinic_id=clinic_id, specialty_id=specialty_id)
        for weekday in range(5):
            await add_window(uow, doctor_id, weekday, "09:00", "12:00")
        await sync_slots(
            uow,
            doctor_id=doctor_id,
            start=now.astimezone(NAIROBI).date(),
            days=days,
            now=now,
            clinic_zone=NAIROBI,
        )
    return doctor_id


async def add_patients(database: Any, count: int, now: datetime) -> list[int]:
    """Create patients +254700000000, +254700000001, … (at most 100) and return their ids."""
    assert count <= 100, "the fake number range +2547000000xx holds 100 numbers"
    ids = []
    async with database.unit_of_work() as uow:
        for number in range(count):
            patient = await get_or_create_patient(uow, phone=f"+2547000000{number:02d}", now=now)
            ids.append(patient.id)
    return ids
