"""The booking services in one namespace: catalogue, availability and appointments."""

from __future__ import annotations

from core.booking.appointments import (
    book_appointment,
    cancel_appointment,
    get_patient_appointment,
    list_upcoming_appointments,
    reschedule_appointment,
)
from core.booking.availability import get_slot, list_free_slots, list_open_days, next_free_slots
from core.booking.catalog import get_doctor, list_doctors, list_specialties

__all__ = [
    "book_appointment",
    "cancel_appointment",
    "get_doctor",
    "get_patient_appointment",
    "get_slot",
    "list_doctors",
    "list_free_slots",
    "list_open_days",
    "list_specialties",
    "list_upcoming_appointments",
    "next_free_slots",
    "reschedule_appointment",
]
