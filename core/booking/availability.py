"""Free slots: slots of active doctors with no live (held or booked) appointment."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.booking.model import Slot
from core.db.database import Row, Sql, UnitOfWork

# The status list is LIVE_APPOINTMENT_STATUSES of core.db.schema. A unit test checks they match.
_FREE_SLOT_QUERY = (
    "SELECT s.id, s.doctor_id, s.starts_at, s.ends_at FROM slots s"
    " JOIN doctors d ON d.id = s.doctor_id"
    " WHERE s.doctor_id = :doctor_id AND d.active = true AND s.starts_at >= :earliest"
    " AND NOT EXISTS (SELECT 1 FROM appointments a"
    " WHERE a.slot_id = s.id AND a.status IN ('held', 'booked'))"
)
_SELECT_FREE_BETWEEN = Sql(_FREE_SLOT_QUERY + " AND s.starts_at < :latest ORDER BY s.starts_at")
_SELECT_FREE_AFTER = Sql(
    _FREE_SLOT_QUERY + " AND s.starts_at > :after ORDER BY s.starts_at LIMIT :limit"
)


def _slot(row: Row) -> Slot:
    return Slot(
        id=row["id"], doctor_id=row["doctor_id"], starts_at=row["starts_at"], ends_at=row["ends_at"]
    )


def _check_lead(lead: timedelta) -> None:
    if lead < timedelta(0):
        raise ValueError(f"booking lead time must not be negative, got {lead}")


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """Return the UTC instant at which `day` begins in `zone`."""
    return datetime.combine(day, time(0, 0), tzinfo=zone).astimezone(UTC)


async def list_open_days(
    uow: UnitOfWork,
    *,
    doctor_id: int,
    now: datetime,
    zone: ZoneInfo,
    lead: timedelta,
    horizon_days: int,
) -> list[date]:
    """Return the local dates, today and the next `horizon_days - 1`, with a free slot.

    Dates are in `zone`, and only slots starting at or after `now + lead` count.
    """
    _check_lead(lead)
    today = now.astimezone(zone).date()
    rows = await uow.all(
        _SELECT_FREE_BETWEEN,
        doctor_id=doctor_id,
        earliest=now + lead,
        latest=local_midnight(today + timedelta(days=horizon_days), zone),
    )
    days = {row["starts_at"].astimezone(zone).date() for row in rows}
    return sorted(days)


async def list_free_slots(
    uow: UnitOfWork,
    *,
    doctor_id: int,
    day: date,
    zone: ZoneInfo,
    now: datetime,
    lead: timedelta,
) -> list[Slot]:
    """Return the free slots that start on local date `day` in `zone`, earliest first.

    Slots starting before `now + lead` are left out.
    """
    _check_lead(lead)
    rows = await uow.all(
        _SELECT_FREE_BETWEEN,
        doctor_id=doctor_id,
        earliest=max(now + lead, local_midnight(day, zone)),
        latest=local_midnight(day + timedelta(days=1), zone),
    )
    return [_slot(row) for row in rows]


async def next_free_slots(
    uow: UnitOfWork,
    *,
    doctor_id: int,
    after: datetime,
    now: datetime,
    lead: timedelta,
    limit: int = 3,
) -> list[Slot]:
    """Return up to `limit` free slots starting after `after` and at or after `now + lead`."""
    _check_lead(lead)
    rows = await uow.all(
        _SELECT_FREE_AFTER, doctor_id=doctor_id, earliest=now + lead, after=after, limit=limit
    )
    return [_slot(row) for row in rows]


_SELECT_SLOT = Sql("SELECT id, doctor_id, starts_at, ends_at FROM slots WHERE id = :id")


async def get_slot(uow: UnitOfWork, *, slot_id: int) -> Slot | None:
    """Return one slot whether or not it is free, or None when there is no such id."""
    row = await uow.one(_SELECT_SLOT, id=slot_id)
    return None if row is None else _slot(row)
