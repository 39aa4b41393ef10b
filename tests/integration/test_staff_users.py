from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from core.db.database import Sql
from core.errors import DuplicateUsername, InvalidPassword, InvalidUsername
from core.identity.staff import StaffRole, create_staff_user, verify_staff_password
from tests.integration.booking_setup import add_clinic, add_doctor, add_specialty

PASSWORD = "correct horse battery"
SELECT_HASH = Sql("SELECT password_hash FROM staff_users WHERE username = :username")
SET_HASH = Sql("UPDATE staff_users SET password_hash = :password_hash WHERE username = :username")
DEACTIVATE = Sql("UPDATE staff_users SET active = false WHERE username = :username")


async def test_staff_password_hash_is_argon2id(database, clock) -> None:
    async with database.unit_of_work() as uow:
        await create_staff_user(
            uow, username="test-admin", password=PASSWORD, role="admin", now=clock.now()
        )
        stored = await uow.scalar(SELECT_HASH, username="test-admin")
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_staff_verify_good_password(database, clock) -> None:
    async with database.unit_of_work() as uow:
        clinic_id = await add_clinic(uow)
        doctor_id = await add_doctor(
            uow, clinic_id=clinic_id, specialty_id=await add_specialty(uow)
        )
        user_id = await create_staff_user(
            uow,
            username="Test-Doctor",
            password=PASSWORD,
            role=StaffRole.DOCTOR,
            now=clock.now(),
            doctor_id=doctor_id,
        )
    async with database.unit_of_work() as uow:
        user = await verify_staff_password(uow, username="test-doctor", password=PASSWORD)
    assert user is not None
    assert user.id == user_id
    assert user.username == "test-doctor"
    assert user.role is StaffRole.DOCTOR
    assert user.doctor_id == doctor_id
    assert user.pharmacy_id is None


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("test-admin", "wrong password!"),
        ("test-admin", ""),
        ("nobody", PASSWORD),
        ("not a username", PASSWORD),
    ],
)
async def test_staff_verify_rejects(database, clock, username, password) -> None:
    async with database.unit_of_work() as uow:
        await create_staff_user(
            uow, username="test-admin", password=PASSWORD, role="admin", now=clock.now()
        )
        assert await verify_staff_password(uow, username=username, password=password) is None


async def test_staff_verify_inactive_user(database, clock) -> None:
    async with database.unit_of_work() as uow:
        await create_staff_user(
            uow, username="test-admin", password=PASSWORD, role="admin", now=clock.now()
        )
        await uow.execute(DEACTIVATE, username="test-admin")
        assert await verify_staff_password(uow, username="test-admin", password=PASSWORD) is None


async def test_staff_verify_rehashes_old_parameters(database, clock) -> None:
    weak_hash = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    async with database.unit_of_work() as uow:
        await create_staff_user(
            uow, username="test-admin", password=PASSWORD, role="admin", now=clock.now()
        )
        await uow.execute(SET_HASH, username="test-admin", password_hash=weak_hash)
        assert await verify_staff_password(uow, username="test-admin", password=PASSWORD)
        stored = await uow.scalar(SELECT_HASH, username="test-admin")
    assert stored != weak_hash
    assert not PasswordHasher().check_needs_rehash(stored)


async def test_staff_duplicate_username(database, clock) -> None:
    async with database.unit_of_work() as uow:
        await create_staff_user(
            uow, username="test-admin", password=PASSWORD, role="admin", now=clock.now()
        )
        with pytest.raises(DuplicateUsername, match="'test-admin' is already taken"):
            await create_staff_user(
                uow, username="TEST-ADMIN", password=PASSWORD, role="admin", now=clock.now()
            )


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("", "the password is empty"),
        ("123456789", "has 9 characters, fewer than the minimum of 10"),
    ],
)
async def test_staff_rejects_bad_password(database, clock, password, problem) -> None:
    async with database.unit_of_work() as uow:
        with pytest.raises(InvalidPassword, match=problem):
            await create_staff_user(
                uow, username="test-admin", password=password, role="admin", now=clock.now()
            )


@pytest.mark.parametrize("username", ["", "  ", "has space", "-leading-dash", "x" * 65])
async def test_staff_rejects_bad_username(database, clock, username) -> None:
    async with database.unit_of_work() as uow:
        with pytest.raises(InvalidUsername):
            await create_staff_user(
                uow, username=username, password=PASSWORD, role="admin", now=clock.now()
            )


async def test_staff_rejects_unknown_role(database, clock) -> None:
    async with database.unit_of_work() as uow:
        with pytest.raises(ValueError, match="'nurse' is not a valid StaffRole"):
            await create_staff_user(
                uow, username="test-nurse", password=PASSWORD, role="nurse", now=clock.now()
            )


async def test_staff_rejects_link_of_other_role(database, clock) -> None:
    async with database.unit_of_work() as uow:
        with pytest.raises(ValueError, match="role pharmacist cannot have lab_id"):
            await create_staff_user(
                uow,
                username="test-pharmacist",
                password=PASSWORD,
                role=StaffRole.PHARMACIST,
                now=clock.now(),
                lab_id=1,
            )
