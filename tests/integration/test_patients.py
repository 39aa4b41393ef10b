from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.db.database import Sql
from core.errors import InvalidPhoneNumber, NotFound
from core.identity.patients import (
    find_patient_by_phone,
    get_or_create_patient,
    get_patient,
    register_patient,
    set_language,
)

# One Kenyan number in the shapes patients type it.
KENYAN_FORMS = [
    "0700 000 105",
    "+254 700 000 105",
    "254700000105",
    "+254700000105",
    "(0700) 000-105",
    "700000105",
]
COUNT_PATIENTS = Sql("SELECT COUNT(*) FROM patients")


async def test_patient_phone_forms_share_one_row(database, clock) -> None:
    async with database.unit_of_work() as uow:
        patients = [
            await get_or_create_patient(uow, phone=raw, now=clock.now()) for raw in KENYAN_FORMS
        ]
        count = await uow.scalar(COUNT_PATIENTS)
    assert {patient.id for patient in patients} == {patients[0].id}
    assert patients[0].phone == "+254700000105"
    assert count == 1


async def test_patient_phone_forms_in_separate_units(database, clock) -> None:
    ids = set()
    for raw in KENYAN_FORMS:
        async with database.unit_of_work() as uow:
            ids.add((await get_or_create_patient(uow, phone=raw, now=clock.now())).id)
    assert len(ids) == 1


async def test_patient_first_contact_race(database, clock) -> None:
    async def first_contact(raw: str) -> int:
        async with database.unit_of_work() as uow:
            return (await get_or_create_patient(uow, phone=raw, now=clock.now())).id

    ids = await asyncio.gather(*(first_contact(raw) for raw in KENYAN_FORMS * 3))
    async with database.unit_of_work() as uow:
        count = await uow.scalar(COUNT_PATIENTS)
    assert len(set(ids)) == 1
    assert count == 1


async def test_patient_invalid_phone_rejected(database, clock) -> None:
    async with database.unit_of_work() as uow:
        with pytest.raises(InvalidPhoneNumber, match="0700 000 10 is not a valid phone number"):
            await get_or_create_patient(uow, phone="0700 000 10", now=clock.now())
        assert await uow.scalar(COUNT_PATIENTS) == 0


async def test_patient_new_row_is_unregistered(database, clock) -> None:
    async with database.unit_of_work() as uow:
        patient = await get_or_create_patient(uow, phone="+254700000001", now=clock.now())
    assert patient.name is None
    assert patient.language is None
    assert patient.consented_at is None


async def test_register_patient_stores_details(database, clock) -> None:
    consented_at = clock.now() + timedelta(minutes=1)
    async with database.unit_of_work() as uow:
        patient = await get_or_create_patient(uow, phone="+254700000002", now=clock.now())
        registered = await register_patient(
            uow,
            patient_id=patient.id,
            name="  Test   Wambui ",
            language="sw",
            consented_at=consented_at,
        )
    async with database.unit_of_work() as uow:
        stored = await get_patient(uow, patient_id=patient.id)
    assert registered == stored
    assert stored.name == "Test Wambui"
    assert stored.language == "sw"
    assert stored.consented_at == consented_at


@pytest.mark.parametrize(
    ("name", "language", "problem"),
    [
        ("   ", "en", "name is empty"),
        ("x" * 121, "en", "more than the max of 120"),
        ("Test Wambui", "fr", "unsupported language"),
    ],
)
async def test_register_patient_rejects(database, clock, name, language, problem) -> None:
    async with database.unit_of_work() as uow:
        patient = await get_or_create_patient(uow, phone="+254700000003", now=clock.now())
        with pytest.raises(ValueError, match=problem):
            await register_patient(
                uow,
                patient_id=patient.id,
                name=name,
                language=language,
                consented_at=clock.now(),
            )


async def test_register_patient_unknown_id(database, clock) -> None:
    async with database.unit_of_work() as uow:
        with pytest.raises(NotFound):
            await register_patient(
                uow, patient_id=999, name="Test Wambui", language="en", consented_at=clock.now()
            )


async def test_set_language_en_and_sw(database, clock) -> None:
    async with database.unit_of_work() as uow:
        patient = await get_or_create_patient(uow, phone="+254700000004", now=clock.now())
        assert (await set_language(uow, patient_id=patient.id, language="sw")).language == "sw"
        assert (await set_language(uow, patient_id=patient.id, language="en")).language == "en"
        with pytest.raises(ValueError, match="unsupported language"):
            await set_language(uow, patient_id=patient.id, language="de")
        with pytest.raises(NotFound):
            await set_language(uow, patient_id=999, language="en")


async def test_get_patient_unknown_id(database) -> None:
    async with database.unit_of_work() as uow:
        with pytest.raises(NotFound, match="patient 999 not found"):
            await get_patient(uow, patient_id=999)


async def test_find_patient_by_phone(database, clock) -> None:
    async with database.unit_of_work() as uow:
        assert await find_patient_by_phone(uow, phone="+254700000005") is None
        created = await get_or_create_patient(uow, phone="0700 000 005", now=clock.now())
        found = await find_patient_by_phone(uow, phone="+254700000005")
    assert found == created
