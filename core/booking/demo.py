"""Demo data for the sandbox and for trainers: a clinic, doctors, schedules and staff users.

Every name and number here is made up. Phone numbers use the +2547000000xx test range.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.booking.schedules import sync_slots
from core.db.database import Sql, UnitOfWork
from core.identity.staff import StaffRole, create_staff_user

CLINIC_NAME = "MyAfya Virtual Clinic"
SLOT_DAYS = 14

# (code, English name, Kiswahili name), in menu order.
SPECIALTIES = (
    ("general", "General practice", "Daktari wa jumla"),
    ("paediatrics", "Children's health", "Afya ya watoto"),
    ("maternal", "Maternal health", "Afya ya mama"),
)
# (name, specialty code, fee in KES)
DOCTORS = (
    ("Dr. Test Kamau", "general", 1000),
    ("Dr. Wanjirũ Testname-Kariuki", "paediatrics", 1500),
    ("Dr. Test Otieno", "maternal", 2000),
    ("Dr. Test Njeri-Mwangi", "general", 2500),
)
# (weekday, starts, ends) in the clinic's time zone; 0 is Monday. Saturday has mornings only.
WEEKDAY_WINDOWS = (("09:00", "12:00"), ("14:00", "17:00"))
WEEKLY_WINDOWS = (
    *((weekday, starts, ends) for weekday in range(5) for starts, ends in WEEKDAY_WINDOWS),
    (5, "09:00", "12:00"),
)
SLOT_MINUTES = 30

PHARMACY = ("MyAfya Test Pharmacy", "Nairobi CBD", "+254700000090")
LAB = ("MyAfya Test Lab", "Nairobi, Upper Hill", "+254700000091")

_COUNT_CLINICS = Sql("SELECT COUNT(*) FROM clinics")
_INSERT_CLINIC = Sql("INSERT INTO clinics (name, timezone) VALUES (:name, :timezone) RETURNING id")
_INSERT_SPECIALTY = Sql(
    "INSERT INTO specialties (code, name_en, name_sw, position)"
    " VALUES (:code, :name_en, :name_sw, :position) RETURNING id"
)
_INSERT_DOCTOR = Sql(
    "INSERT INTO doctors (clinic_id, specialty_id, name, fee_kes, slot_minutes, active)"
    " VALUES (:clinic_id, :specialty_id, :name, :fee_kes, :slot_minutes, true) RETURNING id"
)
_INSERT_WINDOW = Sql(
    "INSERT INTO weekly_schedules (doctor_id, weekday, starts, ends)"
    " VALUES (:doctor_id, :weekday, :starts, :ends)"
)
_INSERT_PHARMACY = Sql(
    "INSERT INTO pharmacies (name, location, phone) VALUES (:name, :location, :phone) RETURNING id"
)
_INSERT_LAB = Sql(
    "INSERT INTO labs (name, location, phone) VALUES (:name, :location, :phone) RETURNING id"
)


async def seed_demo(
    uow: UnitOfWork, *, now: datetime, zone: ZoneInfo, password_for: Callable[[str], str]
) -> dict[str, Any]:
    """Create the demo clinic and everything around it, unless a clinic already exists.

    Slots cover 14 days from `now`'s date in `zone`. Each staff user gets the password
    `password_for(username)`. Returns a summary with `created` (False when the database
    already had a clinic, and then nothing was written), counts and the staff usernames.
    """
    if await uow.scalar(_COUNT_CLINICS) > 0:
        return {"created": False, "doctors": 0, "slots": 0, "usernames": []}

    clinic_id = await uow.scalar(_INSERT_CLINIC, name=CLINIC_NAME, timezone=zone.key)
    specialty_ids: dict[str, int] = {}
    for position, (code, name_en, name_sw) in enumerate(SPECIALTIES, start=1):
        specialty_ids[code] = await uow.scalar(
            _INSERT_SPECIALTY, code=code, name_en=name_en, name_sw=name_sw, position=position
        )

    doctor_ids: list[int] = []
    slot_count = 0
    for name, specialty_code, fee_kes in DOCTORS:
        doctor_id = await uow.scalar(
            _INSERT_DOCTOR,
            clinic_id=clinic_id,
            specialty_id=specialty_ids[specialty_code],
            name=name,
            fee_kes=fee_kes,
            slot_minutes=SLOT_MINUTES,
        )
        doctor_ids.append(doctor_id)
        for weekday, starts, ends in WEEKLY_WINDOWS:
            await uow.execute(
                _INSERT_WINDOW, doctor_id=doctor_id, weekday=weekday, starts=starts, ends=ends
            )
        synced = await sync_slots(
            uow,
            doctor_id=doctor_id,
            start=now.astimezone(zone).date(),
            days=SLOT_DAYS,
            now=now,
            clinic_zone=zone,
        )
        slot_count += synced.created

    pharmacy_name, pharmacy_location, pharmacy_phone = PHARMACY
    pharmacy_id = await uow.scalar(
        _INSERT_PHARMACY, name=pharmacy_name, location=pharmacy_location, phone=pharmacy_phone
    )
    lab_name, lab_location, lab_phone = LAB
    lab_id = await uow.scalar(_INSERT_LAB, name=lab_name, location=lab_location, phone=lab_phone)

    staff: list[tuple[str, StaffRole, dict[str, int]]] = [
        (f"demo-doctor-{number}", StaffRole.DOCTOR, {"doctor_id": doctor_id})
        for number, doctor_id in enumerate(doctor_ids, start=1)
    ]
    staff += [
        ("demo-pharmacist", StaffRole.PHARMACIST, {"pharmacy_id": pharmacy_id}),
        ("demo-lab", StaffRole.LAB_TECHNICIAN, {"lab_id": lab_id}),
        ("demo-admin", StaffRole.ADMIN, {}),
    ]
    for username, role, links in staff:
        await create_staff_user(
            uow, username=username, password=password_for(username), role=role, now=now, **links
        )

    return {
        "created": True,
        "clinic_id": clinic_id,
        "specialties": len(specialty_ids),
        "doctors": len(doctor_ids),
        "slots": slot_count,
        "pharmacy_id": pharmacy_id,
        "lab_id": lab_id,
        "usernames": [username for username, _, _ in staff],
    }
