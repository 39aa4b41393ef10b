"""Domain errors raised by core services.

Each carries a message id from the patient catalogues, so an entry point can show it to a patient
in their language, and an English `str()` for logs and the staff API.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule of the domain was broken; the message is safe to show a patient."""

    message_id = "error.generic"

    def __init__(self, detail: str, **params: Any) -> None:
        super().__init__(detail)
        self.params = params


class InvalidPhoneNumber(DomainError):
    message_id = "error.invalid_phone"


class NotFound(DomainError):
    message_id = "error.not_found"


class SlotUnavailable(DomainError):
    """The slot is taken, in the past or no longer offered."""

    message_id = "booking.slot_taken"


class ChangeTooLate(DomainError):
    """A cancel or reschedule came after the cut-off before the appointment."""

    message_id = "appointments.too_late"


class InvalidTransition(DomainError):
    """An appointment cannot move from its current status to the requested one."""

    message_id = "error.generic"
