"""The menus' catalogue cache: one read per entry and time to live, never an unknown doctor."""

from __future__ import annotations

import pytest

from core.booking.catalog import CatalogCache
from core.db.database import Sql
from core.errors import NotFound
from tests.integration.booking_setup import add_clinic, add_doctor, add_specialty

RENAME = Sql("UPDATE doctors SET name = :name WHERE id = :id")
DEACTIVATE = Sql("UPDATE doctors SET active = false WHERE id = :id")


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_entries_live_for_their_time(database) -> None:
    ticks = Ticks()
    cache = CatalogCache(ttl_seconds=30, monotonic=ticks)
    async with database.unit_of_work() as uow:
        clinic_id = await add_clinic(uow)
        specialty_id = await add_specialty(uow)
        doctor_id = await add_doctor(
            uow, clinic_id=clinic_id, specialty_id=specialty_id, name="Dr. Test Kamau"
        )
        assert [d.name for d in await cache.doctors(uow, specialty_id=specialty_id)] == [
            "Dr. Test Kamau"
        ]
        assert (await cache.doctor(uow, doctor_id=doctor_id)).name == "Dr. Test Kamau"
        assert [s.id for s in await cache.specialties(uow)] == [specialty_id]

        await uow.execute(RENAME, id=doctor_id, name="Dr. Test Otieno")
        await uow.execute(DEACTIVATE, id=doctor_id)
        ticks.now += 29.9
        # Still the cached menus.
        assert (await cache.doctor(uow, doctor_id=doctor_id)).name == "Dr. Test Kamau"
        assert len(await cache.doctors(uow, specialty_id=specialty_id)) == 1
        assert len(await cache.specialties(uow)) == 1

        ticks.now += 0.2
        assert (await cache.doctor(uow, doctor_id=doctor_id)).name == "Dr. Test Otieno"
        assert await cache.doctors(uow, specialty_id=specialty_id) == []
        assert await cache.specialties(uow) == []


async def test_callers_cannot_change_cached_lists(database) -> None:
    cache = CatalogCache(ttl_seconds=30, monotonic=Ticks())
    async with database.unit_of_work() as uow:
        clinic_id = await add_clinic(uow)
        specialty_id = await add_specialty(uow)
        await add_doctor(uow, clinic_id=clinic_id, specialty_id=specialty_id)
        first = await cache.doctors(uow, specialty_id=specialty_id)
        first.clear()
        assert len(await cache.doctors(uow, specialty_id=specialty_id)) == 1


async def test_unknown_doctor_is_not_cached(database) -> None:
    cache = CatalogCache(ttl_seconds=30, monotonic=Ticks())
    async with database.unit_of_work() as uow:
        with pytest.raises(NotFound):
            await cache.doctor(uow, doctor_id=999)
        clinic_id = await add_clinic(uow)
        specialty_id = await add_specialty(uow)
        doctor_id = await add_doctor(uow, clinic_id=clinic_id, specialty_id=specialty_id)
        assert (await cache.doctor(uow, doctor_id=doctor_id)).id == doctor_id


def test_negative_time_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        CatalogCache(ttl_seconds=-1)
