"""The catalogue patients book from: specialties and their active doctors."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from core.booking.model import Doctor, Specialty
from core.db.database import Row, Sql, UnitOfWork
from core.errors import NotFound

_SELECT_SPECIALTIES = Sql(
    "SELECT sp.id, sp.code, sp.name_en, sp.name_sw FROM specialties sp"
    " WHERE EXISTS (SELECT 1 FROM doctors d WHERE d.specialty_id = sp.id AND d.active = true)"
    " ORDER BY sp.position, sp.name_en, sp.id"
)
_SELECT_DOCTORS = Sql(
    "SELECT id, name, specialty_id, fee_kes, slot_minutes, active FROM doctors"
    " WHERE specialty_id = :specialty_id AND active = true ORDER BY name, id"
)
_SELECT_DOCTOR = Sql(
    "SELECT id, name, specialty_id, fee_kes, slot_minutes, active FROM doctors"
    " WHERE id = :doctor_id"
)


def _doctor(row: Row) -> Doctor:
    return Doctor(
        id=row["id"],
        name=row["name"],
        specialty_id=row["specialty_id"],
        fee_kes=row["fee_kes"],
        slot_minutes=row["slot_minutes"],
        active=bool(row["active"]),
    )


async def list_specialties(uow: UnitOfWork) -> list[Specialty]:
    """Return the specialties that have at least one active doctor, in menu order."""
    rows = await uow.all(_SELECT_SPECIALTIES)
    return [Specialty(row["id"], row["code"], row["name_en"], row["name_sw"]) for row in rows]


async def list_doctors(uow: UnitOfWork, *, specialty_id: int) -> list[Doctor]:
    """Return the active doctors of one specialty, by name."""
    rows = await uow.all(_SELECT_DOCTORS, specialty_id=specialty_id)
    return [_doctor(row) for row in rows]


async def get_doctor(uow: UnitOfWork, *, doctor_id: int) -> Doctor:
    """Return one doctor, active or not; raises NotFound when there is no such id."""
    row = await uow.one(_SELECT_DOCTOR, doctor_id=doctor_id)
    if row is None:
        raise NotFound(f"doctor {doctor_id} not found", doctor_id=doctor_id)
    return _doctor(row)


class CatalogCache:
    """Specialties and doctors for the patients' menus, kept for `ttl_seconds` per process.

    Every walk through booking shows the same specialty list, doctor list and doctor, so each
    is read from the database at most once per `ttl_seconds`. A change to the catalogue reaches
    the menus within that time. Booking itself reads the doctor's row again and refuses a slot
    of a doctor who is no longer active, so a stale menu cannot book one.
    """

    def __init__(
        self, ttl_seconds: float = 30.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError(f"catalogue cache time must not be negative, got {ttl_seconds}")
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._entries: dict[tuple[str, int], tuple[float, Any]] = {}

    async def _cached(self, key: tuple[str, int], load: Callable[[], Awaitable[Any]]) -> Any:
        now = self._monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = await load()
        self._entries[key] = (now + self._ttl, value)
        return value

    async def specialties(self, uow: UnitOfWork) -> list[Specialty]:
        value: list[Specialty] = await self._cached(
            ("specialties", 0), lambda: list_specialties(uow)
        )
        return list(value)

    async def doctors(self, uow: UnitOfWork, *, specialty_id: int) -> list[Doctor]:
        value: list[Doctor] = await self._cached(
            ("doctors", specialty_id), lambda: list_doctors(uow, specialty_id=specialty_id)
        )
        return list(value)

    async def doctor(self, uow: UnitOfWork, *, doctor_id: int) -> Doctor:
        """Return one doctor as `get_doctor` does; an unknown id is not cached."""
        value: Doctor = await self._cached(
            ("doctor", doctor_id), lambda: get_doctor(uow, doctor_id=doctor_id)
        )
        return value
