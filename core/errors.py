"""Domain errors raised by core services.

Each carries a message id from the patient catalogues, so an entry point can show it to a patient
in their language, and an English `str()` for logs and the staff API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.booking.model import Slot


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
    """The slot is taken, in the past or no longer offered.

    `alternatives` lists the doctor's next free slots after the requested one, earliest first,
    so the caller can offer them at once. The list is empty when the slot is unknown.
    """

    message_id = "booking.slot_taken"

    def __init__(self, detail: str, *, alternatives: Sequence[Slot] = (), **params: Any) -> None:
        super().__init__(detail, **params)
        self.alternatives: list[Slot] = list(alternatives)


class AlreadyBookedThen(DomainError):
    """The patient already has a live appointment overlapping the requested slot."""

    message_id = "booking.already_booked_then"


class TooManyAppointments(DomainError):
    """The patient already has the maximum number of upcoming appointments."""

    message_id = "booking.too_many"


class ChangeTooLate(DomainError):
    """A cancel or reschedule came after the cut-off before the appointment."""

    message_id = "appointments.too_late"


class InvalidTransition(DomainError):
    """An appointment cannot move from its current status to the requested one."""

    message_id = "error.generic"


class DuplicateUsername(DomainError):
    """A staff user with this username already exists."""


class InvalidUsername(DomainError):
    """A staff username is empty, too long or has characters outside the allowed set."""


class InvalidPassword(DomainError):
    """A staff password is empty, too short or too long."""
