"""Writes that flows ask the host to apply in the conversation's transaction."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RegisterPatient:
    name: str
    language: str


@dataclass(frozen=True)
class ChangeLanguage:
    language: str


@dataclass(frozen=True)
class BookAppointment:
    slot_id: int


@dataclass(frozen=True)
class CancelAppointment:
    appointment_id: int


@dataclass(frozen=True)
class RescheduleAppointment:
    appointment_id: int
    new_slot_id: int


Command = (
    RegisterPatient | ChangeLanguage | BookAppointment | CancelAppointment | RescheduleAppointment
)
