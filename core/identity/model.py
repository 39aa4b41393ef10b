"""Patient and staff records as the identity services return them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class StaffRole(enum.StrEnum):
    DOCTOR = "doctor"
    LAB_TECHNICIAN = "lab_technician"
    PHARMACIST = "pharmacist"
    ADMIN = "admin"


@dataclass(frozen=True)
class Patient:
    id: int
    phone: str  # E.164, e.g. "+254700000105"
    name: str | None
    language: str | None  # "en" or "sw", or None until the patient picks one
    consented_at: datetime | None  # aware, UTC, or None until registration


@dataclass(frozen=True)
class StaffUser:
    id: int
    username: str
    role: StaffRole
    doctor_id: int | None
    pharmacy_id: int | None
    lab_id: int | None
