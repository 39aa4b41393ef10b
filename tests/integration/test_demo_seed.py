from __future__ import annotations

from datetime import date

from core.booking.demo import seed_demo
from core.booking.service import list_doctors, list_free_slots, list_specialties
from core.db.database import Sql
from core.identity.staff import StaffRole, verify_staff_password
from tests.integration.booking_setup import LEAD, NAIROBI

COUNTS = Sql(
    "SELECT (SELECT COUNT(*) FROM clinics) AS clinics,"
    " (SELECT COUNT(*) FROM specialties) AS specialties,"
    " (SELECT COUNT(*) FROM doctors) AS doctors,"
    " (SELECT COUNT(*) FROM weekly_schedules) AS windows,"
    " (SELECT COUNT(*) FROM slots) AS slots,"
    " (SELECT COUNT(*) FROM pharmacies) AS pharmacies,"
    " (SELECT COUNT(*) FROM labs) AS labs,"
    " (SELECT COUNT(*) FROM staff_users) AS staff_users"
)
SELECT_CLINIC = Sql("SELECT name, timezone FROM clinics")
EXPECTED_USERNAMES = [
    "demo-doctor-1",
    "demo-doctor-2",
    "demo-doctor-3",
    "demo-doctor-4",
    "demo-pharmacist",
    "demo-lab",
    "demo-admin",
]


def demo_password(username: str) -> str:
    return f"{username}-password"


async def seed(database, clock) -> dict:
    async with database.unit_of_work() as uow:
        return await seed_demo(uow, now=clock.now(), zone=NAIROBI, password_for=demo_password)


async def counts(database) -> dict:
    async with database.unit_of_work() as uow:
        return dict(await uow.one(COUNTS))


async def test_seed_demo_creates_clinic(database, clock) -> None:
    summary = await seed(database, clock)
    stored = await counts(database)
    async with database.unit_of_work() as uow:
        clinic = await uow.one(SELECT_CLINIC)
    assert summary["created"] is True
    assert summary["usernames"] == EXPECTED_USERNAMES
    assert summary["doctors"] == 4
    assert summary["slots"] == stored["slots"]
    assert (clinic["name"], clinic["timezone"]) == ("MyAfya Virtual Clinic", "Africa/Nairobi")
    assert stored["clinics"] == 1
    assert stored["specialties"] == 3
    assert stored["doctors"] == 4
    assert stored["windows"] == 4 * 11
    assert stored["pharmacies"] == 1
    assert stored["labs"] == 1
    assert stored["staff_users"] == 7
    # 14 days from Monday 1 February: two weeks of Mon–Fri 12 slots and Sat 6, less Monday
    # 09:00, which starts at the frozen now.
    assert stored["slots"] == 4 * (2 * (5 * 12 + 6) - 1)


async def test_seed_demo_catalogue(database, clock) -> None:
    await seed(database, clock)
    async with database.unit_of_work() as uow:
        specialties = await list_specialties(uow)
        doctors = {
            specialty.code: await list_doctors(uow, specialty_id=specialty.id)
            for specialty in specialties
        }
        saturday = await list_free_slots(
            uow,
            doctor_id=doctors["general"][0].id,
            day=date(2027, 2, 6),
            zone=NAIROBI,
            now=clock.now(),
            lead=LEAD,
        )
    assert [specialty.code for specialty in specialties] == ["general", "paediatrics", "maternal"]
    assert [specialty.name_sw for specialty in specialties] == [
        "Daktari wa jumla",
        "Afya ya watoto",
        "Afya ya mama",
    ]
    assert specialties[1].name_en == "Children's health"
    all_doctors = [doctor for group in doctors.values() for doctor in group]
    assert "Dr. Wanjirũ Testname-Kariuki" in [doctor.name for doctor in all_doctors]
    assert all(1000 <= doctor.fee_kes <= 2500 for doctor in all_doctors)
    assert all(doctor.slot_minutes == 30 for doctor in all_doctors)
    assert [f"{slot.starts_at.astimezone(NAIROBI):%H:%M}" for slot in saturday] == [
        "09:00",
        "09:30",
        "10:00",
        "10:30",
        "11:00",
        "11:30",
    ]


async def test_seed_demo_staff_logins(database, clock) -> None:
    await seed(database, clock)
    async with database.unit_of_work() as uow:
        users = {
            username: await verify_staff_password(
                uow, username=username, password=demo_password(username)
            )
            for username in EXPECTED_USERNAMES
        }
    assert all(user is not None for user in users.values())
    doctors = [users[f"demo-doctor-{number}"] for number in range(1, 5)]
    assert all(user.role is StaffRole.DOCTOR for user in doctors)
    assert len({user.doctor_id for user in doctors}) == 4
    assert users["demo-pharmacist"].role is StaffRole.PHARMACIST
    assert users["demo-pharmacist"].pharmacy_id is not None
    assert users["demo-lab"].role is StaffRole.LAB_TECHNICIAN
    assert users["demo-lab"].lab_id is not None
    assert users["demo-admin"].role is StaffRole.ADMIN


async def test_seed_demo_twice_creates_nothing(database, clock) -> None:
    await seed(database, clock)
    before = await counts(database)
    clock.advance(86400)
    again = await seed(database, clock)
    assert again["created"] is False
    assert again["usernames"] == []
    assert await counts(database) == before
