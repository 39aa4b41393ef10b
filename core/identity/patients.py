"""Patients, keyed by their phone number in E.164 form."""

from __future__ import annotations

from datetime import datetime

from core.db.database import Row, Sql, UnitOfWork
from core.errors import NotFound
from core.identity.model import Patient
from core.identity.phones import normalize_phone

LANGUAGES = ("en", "sw")
MAX_NAME_LENGTH = 120  # patients.name is VARCHAR(120)

_INSERT_IF_NEW = Sql(
    "INSERT INTO patients (phone, created_at) VALUES (:phone, :now) ON CONFLICT (phone) DO NOTHING"
)
_SELECT_BY_PHONE = Sql(
    "SELECT id, phone, name, language, consented_at FROM patients WHERE phone = :phone"
)
_SELECT_BY_ID = Sql("SELECT id, phone, name, language, consented_at FROM patients WHERE id = :id")
_UPDATE_REGISTRATION = Sql(
    "UPDATE patients SET name = :name, language = :language, consented_at = :consented_at"
    " WHERE id = :id"
)
_UPDATE_LANGUAGE = Sql("UPDATE patients SET language = :language WHERE id = :id")


def _patient(row: Row) -> Patient:
    return Patient(
        id=row["id"],
        phone=row["phone"],
        name=row["name"],
        language=row["language"],
        consented_at=row["consented_at"],
    )


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}: expected one of {LANGUAGES}")


async def get_or_create_patient(uow: UnitOfWork, *, phone: str, now: datetime) -> Patient:
    """Return the patient with this phone number, creating the row on first contact.

    `phone` may be in any shape `normalize_phone` accepts, so "0700 000 105" and
    "+254700000105" find the same patient. Two first messages racing each other both end up
    with the one row: the insert does nothing when the phone is already taken.
    """
    e164 = normalize_phone(phone)
    await uow.execute(_INSERT_IF_NEW, phone=e164, now=now)
    row = await uow.one(_SELECT_BY_PHONE, phone=e164)
    if row is None:
        raise RuntimeError(f"patient row for phone {e164} missing right after its insert")
    return _patient(row)


async def get_patient(uow: UnitOfWork, *, patient_id: int) -> Patient:
    """Return one patient. Raises NotFound when there is no such id."""
    row = await uow.one(_SELECT_BY_ID, id=patient_id)
    if row is None:
        raise NotFound(f"patient {patient_id} not found", patient_id=patient_id)
    return _patient(row)


async def register_patient(
    uow: UnitOfWork, *, patient_id: int, name: str, language: str, consented_at: datetime
) -> Patient:
    """Store the patient's name, language and the time they consented to the terms.

    Raises ValueError for an empty or over-long name, a language other than "en" or "sw",
    or a naive `consented_at`, and NotFound for an unknown patient.
    """
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValueError("patient name is empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValueError(
            f"patient name has {len(cleaned)} characters, more than the max of {MAX_NAME_LENGTH}"
        )
    _check_language(language)
    if consented_at.tzinfo is None:
        raise ValueError("consented_at must be an aware datetime")

    updated = await uow.execute(
        _UPDATE_REGISTRATION,
        id=patient_id,
        name=cleaned,
        language=language,
        consented_at=consented_at,
    )
    if updated == 0:
        raise NotFound(f"patient {patient_id} not found", patient_id=patient_id)
    return await get_patient(uow, patient_id=patient_id)


async def set_language(uow: UnitOfWork, *, patient_id: int, language: str) -> Patient:
    """Set the language of the patient's messages ("en" or "sw")."""
    _check_language(language)
    updated = await uow.execute(_UPDATE_LANGUAGE, id=patient_id, language=language)
    if updated == 0:
        raise NotFound(f"patient {patient_id} not found", patient_id=patient_id)
    return await get_patient(uow, patient_id=patient_id)


async def find_patient_by_phone(uow: UnitOfWork, *, phone: str) -> Patient | None:
    """Return the patient with this E.164 number, or None before their first contact."""
    row = await uow.one(_SELECT_BY_PHONE, phone=phone)
    return None if row is None else _patient(row)
