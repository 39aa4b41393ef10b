"""Booking records as the services return them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime


class AppointmentStatus(enum.StrEnum):
    HELD = "held"
    BOOKED = "booked"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"

    @property
    def is_live(self) -> bool:
        """Whether the appointment still occupies its slot."""
        return self in (AppointmentStatus.HELD, AppointmentStatus.BOOKED)


@dataclass(frozen=True)
class Specialty:
    id: int
    code: str
    name_en: str
    name_sw: str

    def name(self, language: str) -> str:
        return self.name_sw if language == "sw" else self.name_en


@dataclass(frozen=True)
class Doctor:
    id: int
    name: str
    specialty_id: int
    fee_kes: int
    slot_minutes: int
    active: bool = True


@dataclass(frozen=True)
class Slot:
    id: int
    doctor_id: int
    starts_at: datetime  # aware, UTC
    ends_at: datetime


@dataclass(frozen=True)
class Appointment:
    id: int
    reference: str
    patient_id: int
    doctor_id: int
    doctor_name: str
    slot_id: int
    starts_at: datetime  # aware, UTC
    status: AppointmentStatus
    fee_kes: int
    ends_at: datetime | None = None  # aware, UTC: the end of the slot
    channel: str = ""  # channel the appointment was booked on, e.g. "ussd"
    # Starts at 1 and goes up with every cancel or reschedule, so jobs can spot stale work.
    version: int = 1


@dataclass(frozen=True)
class WeeklyWindow:
    weekday: int  # 0 = Monday
    starts: str  # "HH:MM" in the doctor's schedule time zone
    ends: str


@dataclass(frozen=True)
class ScheduleException:
    on_date: date
    available: bool
    starts: str | None = None
    ends: str | None = None


@dataclass(frozen=True)
class SlotSyncResult:
    """Numbers of slots a schedule sync inserted and deleted."""

    created: int
    deleted: int
