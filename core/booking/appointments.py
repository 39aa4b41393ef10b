"""Booking, cancelling and rescheduling appointments.

At most one live (held or booked) appointment per slot is a rule of the database: the partial
unique index `uq_appointments_live_slot`. Booking inserts with ON CONFLICT DO NOTHING against
that index, and a reschedule's UPDATE turns the index's unique violation into SlotUnavailable,
so two requests racing for one slot never both succeed.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from core.booking.availability import next_free_slots
from core.booking.model import Appointment, AppointmentStatus, Slot
from core.db.database import Row, Sql, UniqueViolation, UnitOfWork
from core.errors import (
    AlreadyBookedThen,
    ChangeTooLate,
    InvalidTransition,
    NotFound,
    SlotUnavailable,
    TooManyAppointments,
)

# Uppercase letters and digits without 0/O and 1/I, which are misread when typed or spoken.
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
REFERENCE_PREFIX = "MA-"
REFERENCE_LENGTH = 6
REFERENCE_ATTEMPTS = 5
ALTERNATIVES = 3
MAX_CHANNEL_LENGTH = 20  # appointments.channel is VARCHAR(20)

_SELECT_SLOT = Sql(
    "SELECT s.id, s.doctor_id, s.starts_at, s.ends_at, d.active FROM slots s"
    " JOIN doctors d ON d.id = s.doctor_id WHERE s.id = :slot_id"
)
_SELECT_PATIENT_EXISTS = Sql("SELECT 1 FROM patients WHERE id = :patient_id")
# Status lists below repeat LIVE_APPOINTMENT_STATUSES of core.db.schema, and the ON CONFLICT
# predicate repeats the partial index's; unit tests check both.
_INSERT_APPOINTMENT = Sql(
    "INSERT INTO appointments (reference, patient_id, doctor_id, slot_id, starts_at, status,"
    " channel, created_at, updated_at, version)"
    " VALUES (:reference, :patient_id, :doctor_id, :slot_id, :starts_at, 'booked',"
    " :channel, :now, :now, 1)"
    # The WHERE makes the partial unique index the conflict arbiter, and must match its
    # predicate: a conflict with any other unique key still raises.
    " ON CONFLICT (slot_id) WHERE status IN ('held', 'booked') DO NOTHING RETURNING id"
)
_APPOINTMENT_QUERY = (
    "SELECT a.id, a.reference, a.patient_id, a.doctor_id, d.name AS doctor_name, a.slot_id,"
    " a.starts_at, s.ends_at, a.status, d.fee_kes, a.channel, a.version"
    " FROM appointments a JOIN doctors d ON d.id = a.doctor_id JOIN slots s ON s.id = a.slot_id"
)
_SELECT_APPOINTMENT = Sql(_APPOINTMENT_QUERY + " WHERE a.id = :appointment_id")
_SELECT_UPCOMING = Sql(
    _APPOINTMENT_QUERY + " WHERE a.patient_id = :patient_id AND a.status IN ('held', 'booked')"
    " AND a.starts_at > :now ORDER BY a.starts_at, a.id"
)
_LOCK_PATIENT_APPOINTMENT = Sql(
    "SELECT id FROM appointments WHERE id = :appointment_id AND patient_id = :patient_id"
    "{for_update}"
)
_UPDATE_CANCEL = Sql(
    "UPDATE appointments SET status = 'cancelled', version = version + 1, updated_at = :now"
    " WHERE id = :appointment_id"
)
_UPDATE_MOVE = Sql(
    "UPDATE appointments SET slot_id = :slot_id, starts_at = :starts_at,"
    " version = version + 1, updated_at = :now WHERE id = :appointment_id"
)


def new_reference() -> str:
    """Return a random booking reference such as "MA-7KQ2HX"."""
    suffix = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))
    return REFERENCE_PREFIX + suffix


def _appointment(row: Row) -> Appointment:
    return Appointment(
        id=row["id"],
        reference=row["reference"],
        patient_id=row["patient_id"],
        doctor_id=row["doctor_id"],
        doctor_name=row["doctor_name"],
        slot_id=row["slot_id"],
        starts_at=row["starts_at"],
        status=AppointmentStatus(row["status"]),
        fee_kes=row["fee_kes"],
        ends_at=row["ends_at"],
        channel=row["channel"],
        version=row["version"],
    )


async def _load(uow: UnitOfWork, appointment_id: int) -> Appointment:
    row = await uow.one(_SELECT_APPOINTMENT, appointment_id=appointment_id)
    if row is None:
        raise RuntimeError(f"appointment {appointment_id} vanished inside its own transaction")
    return _appointment(row)


async def _unavailable(
    uow: UnitOfWork,
    detail: str,
    *,
    doctor_id: int,
    after: datetime,
    now: datetime,
    lead: timedelta,
    slot_id: int,
) -> SlotUnavailable:
    alternatives = await next_free_slots(
        uow, doctor_id=doctor_id, after=after, now=now, lead=lead, limit=ALTERNATIVES
    )
    return SlotUnavailable(detail, alternatives=alternatives, slot_id=slot_id)


async def _check_slot(
    uow: UnitOfWork, *, slot_id: int, now: datetime, lead: timedelta
) -> tuple[Slot | None, str | None]:
    """Read a slot and return it with the reason it cannot be booked, or None when it can."""
    row = await uow.one(_SELECT_SLOT, slot_id=slot_id)
    if row is None:
        return None, f"slot {slot_id} not found"
    slot = Slot(row["id"], row["doctor_id"], row["starts_at"], row["ends_at"])
    if not row["active"]:
        return slot, f"slot {slot_id} belongs to a doctor who no longer takes bookings"
    if slot.starts_at < now + lead:
        return slot, f"slot {slot_id} starts at {slot.starts_at:%Y-%m-%d %H:%M} UTC, too soon"
    return slot, None


async def book_appointment(
    uow: UnitOfWork,
    *,
    patient_id: int,
    slot_id: int,
    channel: str,
    now: datetime,
    lead: timedelta,
) -> Appointment:
    """Book a slot for a patient and return the booked appointment.

    Raises SlotUnavailable, with the doctor's next free slots as `alternatives`, when the slot
    is unknown, starts before `now + lead`, or already has a live appointment, and NotFound
    for an unknown patient.
    """
    if not channel or len(channel) > MAX_CHANNEL_LENGTH:
        raise ValueError(f"invalid channel {channel!r}: expected 1 to {MAX_CHANNEL_LENGTH} chars")
    if await uow.one(_SELECT_PATIENT_EXISTS, patient_id=patient_id) is None:
        raise NotFound(f"patient {patient_id} not found", patient_id=patient_id)
    slot, problem = await _check_slot(uow, slot_id=slot_id, now=now, lead=lead)
    if slot is None:
        raise SlotUnavailable(problem or f"slot {slot_id} not found", slot_id=slot_id)
    await _check_patient_limits(uow, patient_id=patient_id, slot=slot, now=now)
    if problem is not None:
        raise await _unavailable(
            uow,
            problem,
            doctor_id=slot.doctor_id,
            after=slot.starts_at,
            now=now,
            lead=lead,
            slot_id=slot_id,
        )

    for _ in range(REFERENCE_ATTEMPTS):
        try:
            # The savepoint keeps the transaction usable on PostgreSQL after a collision.
            async with uow.savepoint():
                appointment_id = await uow.scalar(
                    _INSERT_APPOINTMENT,
                    reference=new_reference(),
                    patient_id=patient_id,
                    doctor_id=slot.doctor_id,
                    slot_id=slot.id,
                    starts_at=slot.starts_at,
                    channel=channel,
                    now=now,
                )
        except UniqueViolation as exc:
            if "reference" not in exc.constraint:
                raise
            continue
        if appointment_id is None:
            raise await _unavailable(
                uow,
                f"slot {slot_id} is already taken",
                doctor_id=slot.doctor_id,
                after=slot.starts_at,
                now=now,
                lead=lead,
                slot_id=slot_id,
            )
        return await _load(uow, appointment_id)
    raise RuntimeError(f"no free booking reference after {REFERENCE_ATTEMPTS} attempts")


# Upcoming live appointments one patient may hold at once. A shared phone books for a family,
# so this is above one, but it stops one number from taking a doctor's whole week.
MAX_UPCOMING_PER_PATIENT = 4

_COUNT_UPCOMING = Sql(
    "SELECT COUNT(*) FROM appointments WHERE patient_id = :patient_id"
    " AND status IN ('held', 'booked') AND starts_at > :now"
)
_COUNT_OVERLAPPING = Sql(
    "SELECT COUNT(*) FROM appointments a JOIN slots s ON s.id = a.slot_id"
    " WHERE a.patient_id = :patient_id AND a.status IN ('held', 'booked')"
    " AND s.starts_at < :ends_at AND s.ends_at > :starts_at"
)


async def _check_patient_limits(
    uow: UnitOfWork, *, patient_id: int, slot: Slot, now: datetime
) -> None:
    """Refuse a second appointment at the same time, or more than the upcoming maximum.

    Both counts run in the booking's transaction, which holds the patient's conversation lock,
    so two bookings of one patient cannot pass them together from the flows.
    """
    overlapping = await uow.scalar(
        _COUNT_OVERLAPPING, patient_id=patient_id, starts_at=slot.starts_at, ends_at=slot.ends_at
    )
    if overlapping:
        raise AlreadyBookedThen(f"patient {patient_id} already has an appointment at that time")
    upcoming = await uow.scalar(_COUNT_UPCOMING, patient_id=patient_id, now=now)
    if upcoming >= MAX_UPCOMING_PER_PATIENT:
        raise TooManyAppointments(
            f"patient {patient_id} already has {upcoming} upcoming appointments",
            maximum=MAX_UPCOMING_PER_PATIENT,
        )


async def list_upcoming_appointments(
    uow: UnitOfWork, *, patient_id: int, now: datetime
) -> list[Appointment]:
    """Return the patient's live appointments that start after `now`, earliest first."""
    rows = await uow.all(_SELECT_UPCOMING, patient_id=patient_id, now=now)
    return [_appointment(row) for row in rows]


async def _lock_patient_appointment(
    uow: UnitOfWork, *, patient_id: int, appointment_id: int
) -> Appointment:
    """Lock and return the patient's appointment.

    Raises NotFound for another patient's appointment, as for an unknown id.
    """
    row = await uow.one(
        _LOCK_PATIENT_APPOINTMENT, appointment_id=appointment_id, patient_id=patient_id
    )
    if row is None:
        raise NotFound(
            f"appointment {appointment_id} not found for patient {patient_id}",
            appointment_id=appointment_id,
        )
    return await _load(uow, appointment_id)


async def _load_optional(uow: UnitOfWork, appointment_id: int) -> Appointment | None:
    row = await uow.one(_SELECT_APPOINTMENT, appointment_id=appointment_id)
    return None if row is None else _appointment(row)


async def get_patient_appointment(
    uow: UnitOfWork, *, patient_id: int, appointment_id: int
) -> Appointment:
    """Return one of the patient's appointments in any status.

    Raises NotFound when the id is unknown or belongs to another patient, with no hint of which.
    """
    appointment = await _load_optional(uow, appointment_id)
    if appointment is None or appointment.patient_id != patient_id:
        raise NotFound(
            f"appointment {appointment_id} not found for patient {patient_id}",
            appointment_id=appointment_id,
        )
    return appointment


def _check_changeable(appointment: Appointment, *, now: datetime, cutoff: timedelta) -> None:
    if not appointment.status.is_live:
        raise InvalidTransition(
            f"appointment {appointment.reference} is {appointment.status}, so it cannot change",
            appointment_id=appointment.id,
        )
    if appointment.starts_at - now < cutoff:
        raise ChangeTooLate(
            f"appointment {appointment.reference} starts at"
            f" {appointment.starts_at:%Y-%m-%d %H:%M} UTC, and changes close {cutoff} before it",
            appointment_id=appointment.id,
        )


async def cancel_appointment(
    uow: UnitOfWork,
    *,
    patient_id: int,
    appointment_id: int,
    now: datetime,
    cutoff: timedelta,
) -> Appointment:
    """Cancel a live appointment of this patient, which frees its slot.

    Raises NotFound, InvalidTransition when it is not live, and ChangeTooLate when it starts
    less than `cutoff` after `now`.
    """
    appointment = await _lock_patient_appointment(
        uow, patient_id=patient_id, appointment_id=appointment_id
    )
    _check_changeable(appointment, now=now, cutoff=cutoff)
    await uow.execute(_UPDATE_CANCEL, appointment_id=appointment_id, now=now)
    return await _load(uow, appointment_id)


async def reschedule_appointment(
    uow: UnitOfWork,
    *,
    patient_id: int,
    appointment_id: int,
    new_slot_id: int,
    now: datetime,
    cutoff: timedelta,
    lead: timedelta,
) -> Appointment:
    """Move a live appointment to another free slot of the same doctor.

    The row, and so its reference, stays the same. Raises what cancel_appointment raises, and
    SlotUnavailable with alternatives when the new slot is taken, too soon, unknown or another
    doctor's. The appointment is unchanged whenever an error is raised.
    """
    appointment = await _lock_patient_appointment(
        uow, patient_id=patient_id, appointment_id=appointment_id
    )
    _check_changeable(appointment, now=now, cutoff=cutoff)
    if new_slot_id == appointment.slot_id:
        return appointment

    slot, problem = await _check_slot(uow, slot_id=new_slot_id, now=now, lead=lead)
    if slot is not None and slot.doctor_id != appointment.doctor_id:
        problem = f"slot {new_slot_id} belongs to another doctor than {appointment.reference}"
    if slot is None or problem is not None:
        # Alternatives come from the appointment's own doctor, after the requested time when
        # that slot exists.
        raise await _unavailable(
            uow,
            problem or f"slot {new_slot_id} not found",
            doctor_id=appointment.doctor_id,
            after=now if slot is None else slot.starts_at,
            now=now,
            lead=lead,
            slot_id=new_slot_id,
        )

    try:
        async with uow.savepoint():
            await uow.execute(
                _UPDATE_MOVE,
                appointment_id=appointment_id,
                slot_id=slot.id,
                starts_at=slot.starts_at,
                now=now,
            )
    except UniqueViolation:
        raise await _unavailable(
            uow,
            f"slot {new_slot_id} is already taken",
            doctor_id=appointment.doctor_id,
            after=slot.starts_at,
            now=now,
            lead=lead,
            slot_id=new_slot_id,
        ) from None
    return await _load(uow, appointment_id)
