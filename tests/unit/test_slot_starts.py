from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from core.booking.model import ScheduleException, WeeklyWindow
from core.booking.schedules import slot_starts

LONDON = ZoneInfo("Europe/London")
NAIROBI = ZoneInfo("Africa/Nairobi")
EVERY_AFTERNOON = [WeeklyWindow(weekday, "13:00", "18:00") for weekday in range(7)]
MONDAY = date(2027, 2, 1)


def local_times(intervals: list[tuple[datetime, datetime]], zone: ZoneInfo) -> list[str]:
    return [f"{start.astimezone(zone):%H:%M}" for start, _ in intervals]


def nairobi_span(intervals: list[tuple[datetime, datetime]]) -> tuple[str, str]:
    first_start = intervals[0][0].astimezone(NAIROBI)
    last_end = intervals[-1][1].astimezone(NAIROBI)
    return f"{first_start:%H:%M}", f"{last_end:%H:%M}"


# UK clocks go forward on Sunday 28 March 2027, so a London afternoon starts an hour
# earlier in Nairobi from that day on.
@pytest.mark.parametrize(
    ("day", "expected_span"),
    [
        (date(2027, 3, 27), ("16:00", "21:00")),
        (date(2027, 3, 28), ("15:00", "20:00")),
        (date(2027, 3, 29), ("15:00", "20:00")),
    ],
)
def test_slot_starts_london_consultant_across_dst(
    day: date, expected_span: tuple[str, str]
) -> None:
    intervals = slot_starts(
        day=day, windows=EVERY_AFTERNOON, exceptions=[], schedule_zone=LONDON, slot_minutes=30
    )
    assert nairobi_span(intervals) == expected_span
    assert len(intervals) == 10
    assert local_times(intervals, LONDON)[0] == "13:00"
    assert local_times(intervals, LONDON)[-1] == "17:30"


def test_slot_starts_morning_window_on_dst_day() -> None:
    sunday_morning = [WeeklyWindow(6, "09:00", "12:00")]
    intervals = slot_starts(
        day=date(2027, 3, 28),
        windows=sunday_morning,
        exceptions=[],
        schedule_zone=LONDON,
        slot_minutes=30,
    )
    assert nairobi_span(intervals) == ("11:00", "14:00")
    assert len(intervals) == 6


def test_slot_starts_extra_hours_on_dst_day() -> None:
    extra = ScheduleException(date(2027, 3, 28), available=True, starts="09:00", ends="12:00")
    intervals = slot_starts(
        day=date(2027, 3, 28), windows=[], exceptions=[extra], schedule_zone=LONDON, slot_minutes=30
    )
    assert nairobi_span(intervals) == ("11:00", "14:00")


def test_slot_starts_are_utc() -> None:
    intervals = slot_starts(
        day=MONDAY,
        windows=[WeeklyWindow(0, "09:00", "10:00")],
        exceptions=[],
        schedule_zone=NAIROBI,
        slot_minutes=30,
    )
    assert intervals == [
        (datetime(2027, 2, 1, 6, 0, tzinfo=UTC), datetime(2027, 2, 1, 6, 30, tzinfo=UTC)),
        (datetime(2027, 2, 1, 6, 30, tzinfo=UTC), datetime(2027, 2, 1, 7, 0, tzinfo=UTC)),
    ]
    assert all(start.utcoffset() is not None for start, _ in intervals)


def test_slot_starts_other_weekday_is_empty() -> None:
    intervals = slot_starts(
        day=MONDAY,
        windows=[WeeklyWindow(1, "09:00", "12:00")],
        exceptions=[],
        schedule_zone=NAIROBI,
        slot_minutes=30,
    )
    assert intervals == []


MORNING = [WeeklyWindow(0, "09:00", "12:00")]


def monday_slots(exceptions: list[ScheduleException], slot_minutes: int = 30) -> list[str]:
    intervals = slot_starts(
        day=MONDAY,
        windows=MORNING,
        exceptions=exceptions,
        schedule_zone=NAIROBI,
        slot_minutes=slot_minutes,
    )
    return local_times(intervals, NAIROBI)


def test_slot_starts_whole_day_off() -> None:
    assert monday_slots([ScheduleException(MONDAY, available=False)]) == []


def test_slot_starts_blocked_window() -> None:
    blocked = ScheduleException(MONDAY, available=False, starts="10:00", ends="11:00")
    assert monday_slots([blocked]) == ["09:00", "09:30", "11:00", "11:30"]


def test_slot_starts_blocked_window_off_grid() -> None:
    blocked = ScheduleException(MONDAY, available=False, starts="10:15", ends="10:45")
    assert monday_slots([blocked]) == ["09:00", "09:30", "11:00", "11:30"]


def test_slot_starts_extra_hours_added() -> None:
    extra = ScheduleException(MONDAY, available=True, starts="14:00", ends="15:00")
    assert monday_slots([extra]) == [
        "09:00",
        "09:30",
        "10:00",
        "10:30",
        "11:00",
        "11:30",
        "14:00",
        "14:30",
    ]


def test_slot_starts_extra_hours_overlap_merged() -> None:
    extra = ScheduleException(MONDAY, available=True, starts="11:00", ends="13:00")
    expected = ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30", "12:00", "12:30"]
    assert monday_slots([extra]) == expected


def test_slot_starts_day_off_keeps_extra_hours() -> None:
    day_off = ScheduleException(MONDAY, available=False)
    extra = ScheduleException(MONDAY, available=True, starts="15:00", ends="16:00")
    assert monday_slots([day_off, extra]) == ["15:00", "15:30"]


def test_slot_starts_ignores_other_dates() -> None:
    other_day = ScheduleException(date(2027, 2, 2), available=False)
    assert len(monday_slots([other_day])) == 6


def test_slot_starts_drops_partial_last_slot() -> None:
    assert monday_slots([], slot_minutes=40) == ["09:00", "09:40", "10:20", "11:00"]


def test_slot_starts_window_to_midnight() -> None:
    intervals = slot_starts(
        day=MONDAY,
        windows=[WeeklyWindow(0, "23:00", "24:00")],
        exceptions=[],
        schedule_zone=NAIROBI,
        slot_minutes=30,
    )
    assert intervals[-1][1] == datetime(2027, 2, 1, 21, 0, tzinfo=UTC)
    assert len(intervals) == 2


def test_slot_starts_window_in_dst_gap() -> None:
    # 01:00 to 02:00 does not exist in London on 28 March 2027. zoneinfo reads 01:00 with the
    # GMT offset, so the window becomes 02:00 to 03:00 BST: one hour, two slots.
    intervals = slot_starts(
        day=date(2027, 3, 28),
        windows=[WeeklyWindow(6, "01:00", "03:00")],
        exceptions=[],
        schedule_zone=LONDON,
        slot_minutes=30,
    )
    assert local_times(intervals, LONDON) == ["02:00", "02:30"]


@pytest.mark.parametrize("bad_time", ["9:00", "25:00", "09:60", "09-00", "ab:cd", "24:30"])
def test_slot_starts_rejects_bad_times(bad_time: str) -> None:
    with pytest.raises(ValueError, match="invalid schedule time"):
        slot_starts(
            day=MONDAY,
            windows=[WeeklyWindow(0, bad_time, "23:00")],
            exceptions=[],
            schedule_zone=NAIROBI,
            slot_minutes=30,
        )


def test_slot_starts_rejects_zero_slot_length() -> None:
    with pytest.raises(ValueError, match="slot length"):
        slot_starts(
            day=MONDAY, windows=MORNING, exceptions=[], schedule_zone=NAIROBI, slot_minutes=0
        )
