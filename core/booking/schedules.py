"""Slots from weekly schedules: wall-clock windows in the doctor's zone, stored in UTC.

A window such as Monday 13:00–18:00 is local time in the zone the schedule is written in (the
doctor's own, else the clinic's). Each date's window is converted to UTC with that date's
offset, so on a day the clocks change the UTC times move and the local times stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.booking.model import ScheduleException, SlotSyncResult, WeeklyWindow
from core.db.database import Sql, UnitOfWork
from core.errors import NotFound

Interval = tuple[datetime, datetime]

_SELECT_DOCTOR = Sql("SELECT id, timezone, slot_minutes FROM doctors WHERE id = :doctor_id")
_SELECT_ACTIVE_DOCTORS = Sql("SELECT id, timezone FROM doctors WHERE active = true ORDER BY id")
_SELECT_WINDOWS = Sql(
    "SELECT weekday, starts, ends FROM weekly_schedules WHERE doctor_id = :doctor_id"
)
_SELECT_EXCEPTIONS = Sql(
    "SELECT on_date, available, starts, ends FROM schedule_exceptions"
    " WHERE doctor_id = :doctor_id AND on_date >= :first AND on_date <= :last"
)
_SELECT_FUTURE_SLOTS = Sql(
    "SELECT s.id, s.starts_at, s.ends_at,"
    " EXISTS (SELECT 1 FROM appointments a WHERE a.slot_id = s.id) AS has_appointments"
    " FROM slots s"
    " WHERE s.doctor_id = :doctor_id AND s.starts_at >= :range_start"
    " AND s.starts_at < :range_end AND s.starts_at > :now"
)
# The NOT EXISTS repeats the check inside the DELETE, so an appointment committed since the
# slot was read keeps the slot.
# NOTE: on PostgreSQL, a booking that commits while this DELETE waits on the slot's row lock
# makes the DELETE fail with a foreign-key violation, which aborts the whole sync.
_DELETE_UNUSED_SLOT = Sql(
    "DELETE FROM slots WHERE id = :slot_id"
    " AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.slot_id = slots.id)"
)
_INSERT_SLOT = Sql(
    "INSERT INTO slots (doctor_id, starts_at, ends_at) VALUES (:doctor_id, :starts_at, :ends_at)"
    " ON CONFLICT (doctor_id, starts_at) DO NOTHING"
)


def parse_wall_time(value: str) -> tuple[int, int]:
    """Return (hour, minute) of an "HH:MM" schedule time. "24:00" means the end of the day."""
    hours, sep, minutes = value.partition(":")
    if not (sep and len(hours) == 2 and len(minutes) == 2 and hours.isdigit()):
        raise ValueError(f"invalid schedule time {value!r}: expected HH:MM")
    if not minutes.isdigit():
        raise ValueError(f"invalid schedule time {value!r}: expected HH:MM")
    hour, minute = int(hours), int(minutes)
    if not (hour < 24 and minute < 60) and (hour, minute) != (24, 0):
        raise ValueError(f"invalid schedule time {value!r}: outside 00:00–24:00")
    return hour, minute


def _to_utc(day: date, wall_time: str, zone: ZoneInfo) -> datetime:
    # NOTE: zoneinfo resolves a wall time inside a spring-forward gap with the offset before
    # the change (fold=0), so a 01:30 start on such a day in London becomes 02:30 BST.
    hour, minute = parse_wall_time(wall_time)
    if hour == 24:
        local = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
    else:
        local = datetime.combine(day, time(hour, minute), tzinfo=zone)
    return local.astimezone(UTC)


def _window(day: date, starts: str, ends: str, zone: ZoneInfo) -> Interval:
    start, end = _to_utc(day, starts, zone), _to_utc(day, ends, zone)
    if start >= end:
        raise ValueError(f"schedule window {starts}–{ends} on {day} does not end after it starts")
    return start, end


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def slot_starts(
    *,
    day: date,
    windows: Sequence[WeeklyWindow],
    exceptions: Sequence[ScheduleException],
    schedule_zone: ZoneInfo,
    slot_minutes: int,
) -> list[Interval]:
    """Return the (start, end) pairs in UTC of the slots a schedule offers on one local date.

    The weekly windows of that weekday apply unless an exception takes the whole day off.
    Exceptions with `available=True` add extra hours, and those with `available=False` and
    times block that window. Overlapping windows are merged, slots follow one another from
    each merged window's start, and a slot that would pass the window's end, or overlap a
    blocked window, is left out.
    """
    if slot_minutes <= 0:
        raise ValueError(f"slot length must be positive, got {slot_minutes} minutes")
    todays = [exception for exception in exceptions if exception.on_date == day]
    day_off = any(not item.available and item.starts is None for item in todays)

    open_windows: list[Interval] = []
    if not day_off:
        open_windows += [
            _window(day, window.starts, window.ends, schedule_zone)
            for window in windows
            if window.weekday == day.weekday()
        ]
    blocked: list[Interval] = []
    for item in todays:
        if item.starts is None or item.ends is None:
            continue
        interval = _window(day, item.starts, item.ends, schedule_zone)
        (open_windows if item.available else blocked).append(interval)

    length = timedelta(minutes=slot_minutes)
    result: list[Interval] = []
    for window_start, window_end in _merge(open_windows):
        start = window_start
        while start + length <= window_end:
            end = start + length
            if not any(
                start < block_end and block_start < end for block_start, block_end in blocked
            ):
                result.append((start, end))
            start = end
    return result


@dataclass(frozen=True)
class _ExistingSlot:
    id: int
    starts_at: datetime
    ends_at: datetime
    has_appointments: bool


def _overlaps(interval: Interval, others: Iterable[Interval]) -> bool:
    start, end = interval
    return any(start < other_end and other_start < end for other_start, other_end in others)


async def sync_slots(
    uow: UnitOfWork,
    *,
    doctor_id: int,
    start: date,
    days: int,
    now: datetime,
    clinic_zone: ZoneInfo,
) -> SlotSyncResult:
    """Make the doctor's future slots on `days` local dates from `start` match the schedule.

    The dates are in the schedule's zone: `doctors.timezone`, or `clinic_zone` when that is
    NULL. Missing slots are inserted. A future slot the schedule no longer produces is deleted
    only when no appointment row of any status refers to it, so booked and past slots stay.
    A new slot that would overlap such a kept slot is not created. Running it twice in a row
    changes nothing the second time.
    """
    if days < 0:
        raise ValueError(f"days must not be negative, got {days}")
    doctor = await uow.one(_SELECT_DOCTOR, doctor_id=doctor_id)
    if doctor is None:
        raise NotFound(f"doctor {doctor_id} not found", doctor_id=doctor_id)
    zone = ZoneInfo(doctor["timezone"]) if doctor["timezone"] else clinic_zone
    last = start + timedelta(days=days - 1)

    window_rows = await uow.all(_SELECT_WINDOWS, doctor_id=doctor_id)
    windows = [WeeklyWindow(row["weekday"], row["starts"], row["ends"]) for row in window_rows]
    exception_rows = await uow.all(_SELECT_EXCEPTIONS, doctor_id=doctor_id, first=start, last=last)
    exceptions = [
        ScheduleException(row["on_date"], bool(row["available"]), row["starts"], row["ends"])
        for row in exception_rows
    ]

    scheduled: set[Interval] = set()
    for offset in range(days):
        day = start + timedelta(days=offset)
        for interval in slot_starts(
            day=day,
            windows=windows,
            exceptions=exceptions,
            schedule_zone=zone,
            slot_minutes=doctor["slot_minutes"],
        ):
            if interval[0] > now:
                scheduled.add(interval)

    range_start = datetime.combine(start, time(0, 0), tzinfo=zone).astimezone(UTC)
    range_end = datetime.combine(last + timedelta(days=1), time(0, 0), tzinfo=zone).astimezone(UTC)
    existing_rows = await uow.all(
        _SELECT_FUTURE_SLOTS,
        doctor_id=doctor_id,
        range_start=range_start,
        range_end=range_end,
        now=now,
    )
    existing = [
        _ExistingSlot(row["id"], row["starts_at"], row["ends_at"], bool(row["has_appointments"]))
        for row in existing_rows
    ]

    deleted = 0
    occupied: list[Interval] = []
    for slot in existing:
        interval = (slot.starts_at, slot.ends_at)
        if interval in scheduled:
            scheduled.discard(interval)
            continue
        if slot.has_appointments:
            occupied.append(interval)
            continue
        deleted += await uow.execute(_DELETE_UNUSED_SLOT, slot_id=slot.id)

    created = 0
    for starts_at, ends_at in sorted(scheduled):
        if _overlaps((starts_at, ends_at), occupied):
            continue
        created += await uow.execute(
            _INSERT_SLOT, doctor_id=doctor_id, starts_at=starts_at, ends_at=ends_at
        )
    return SlotSyncResult(created=created, deleted=deleted)


async def extend_all_slots(
    uow: UnitOfWork, *, now: datetime, days: int, clinic_zone: ZoneInfo
) -> SlotSyncResult:
    """Sync the slots of every active doctor for `days` dates from today in their zone."""
    created = deleted = 0
    for doctor in await uow.all(_SELECT_ACTIVE_DOCTORS):
        zone = ZoneInfo(doctor["timezone"]) if doctor["timezone"] else clinic_zone
        result = await sync_slots(
            uow,
            doctor_id=doctor["id"],
            start=now.astimezone(zone).date(),
            days=days,
            now=now,
            clinic_zone=clinic_zone,
        )
        created += result.created
        deleted += result.deleted
    return SlotSyncResult(created=created, deleted=deleted)
