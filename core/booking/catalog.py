"""The catalogue patients book from: specialties and their active doctors."""

from __future__ import annotations

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
