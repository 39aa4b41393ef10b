"""Free slots: slots of active doctors with no live (held or booked) appointment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, cast
from zoneinfo import ZoneInfo

from core.booking.model import Slot
from core.db.database import Row, Sql, UnitOfWork

# The status list is LIVE_APPOINTMENT_STATUSES of core.db.schema. A unit test checks they match.
_NOT_TAKEN = (
    " AND NOT EXISTS (SELECT 1 FROM appointments a"
    " WHERE a.slot_id = s.id AND a.status IN ('held', 'booked'))"
)
_FREE_SLOT_QUERY = (
    "SELECT s.id, s.doctor_id, s.starts_at, s.ends_at FROM slots s"  # noqa: S608  # constant text
    " JOIN doctors d ON d.id = s.doctor_id"
    " WHERE s.doctor_id = :doctor_id AND d.active = true AND s.starts_at >= :earliest" + _NOT_TAKEN
)
_SELECT_FREE_BETWEEN = Sql(_FREE_SLOT_QUERY + " AND s.starts_at < :latest ORDER BY s.starts_at")
_SELECT_FREE_AFTER = Sql(
    _FREE_SLOT_QUERY + " AND s.starts_at > :after ORDER BY s.starts_at LIMIT :limit"
)
# Statements of `list_open_days`, by number of days.
_OPEN_DAYS: dict[int, Sql] = {}


def _open_days_sql(days: int) -> Sql:
    """Build the statement whose column `open_i` tells whether a free slot starts on day i.

    Day i runs from `:from_i` to `:until_i`, UTC instants that the caller computes from the
    zone, so a day that DST makes 23 or 25 hours long needs nothing special. Each EXISTS stops
    at the day's first free slot, on the index of (doctor_id, starts_at).
    """
    found = _OPEN_DAYS.get(days)
    if found is None:
        # One lower bound per day. Given both `now + lead` and the day's midnight, SQLite's
        # planner searched from the former and read every day's slots up to the latter.
        # Only constant text and day numbers go into the statement, never a value.
        flags = ", ".join(
            "EXISTS (SELECT 1 FROM slots s WHERE s.doctor_id = d.id"  # noqa: S608
            f" AND s.starts_at >= :from_{i} AND s.starts_at < :until_{i}{_NOT_TAKEN})"
            f" AS open_{i}"
            for i in range(days)
        )
        found = Sql(
            f"SELECT {flags} FROM doctors d WHERE d.id = :doctor_id AND d.active = true"  # noqa: S608
        )
        _OPEN_DAYS[days] = found
    return found


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


@lru_cache(maxsize=64)
def _local_midnights(first_day: date, count: int, zone: ZoneInfo) -> tuple[datetime, ...]:
    """Return the UTC instants at which `first_day` and the `count - 1` days after it begin."""
    return tuple(local_midnight(first_day + timedelta(days=i), zone) for i in range(count))


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
    if horizon_days < 1:
        return []
    today = now.astimezone(zone).date()
    earliest = now + lead
    midnights = _local_midnights(today, horizon_days + 1, zone)
    bounds: dict[str, datetime] = {}
    for i in range(horizon_days):
        bounds[f"from_{i}"] = max(earliest, midnights[i])
        bounds[f"until_{i}"] = midnights[i + 1]
    row = await uow.one(_open_days_sql(horizon_days), doctor_id=doctor_id, **bounds)
    if row is None:  # no such doctor, or not active
        return []
    # Column i is `open_i`; by position, because sqlite3.Row looks a name up column by column.
    flags = cast(Sequence[Any], row)
    return [today + timedelta(days=i) for i in range(horizon_days) if flags[i]]


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
