"""Times as patients read them: 24-hour in English, Swahili time in Kiswahili."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from core.i18n import local_day_and_time, local_time

NAIROBI = ZoneInfo("Africa/Nairobi")


@pytest.mark.parametrize(
    ("utc_hour", "minute", "english", "swahili"),
    [
        (6, 0, "09:00", "saa 3:00 asubuhi"),
        (3, 0, "06:00", "saa 12:00 asubuhi"),
        (9, 0, "12:00", "saa 6:00 mchana"),
        (11, 30, "14:30", "saa 8:30 mchana"),
        (13, 0, "16:00", "saa 10:00 jioni"),
        (15, 0, "18:00", "saa 12:00 jioni"),
        (16, 15, "19:15", "saa 1:15 usiku"),
        (21, 0, "00:00", "saa 6:00 usiku"),
        (2, 0, "05:00", "saa 11:00 alfajiri"),
    ],
)
def test_local_time_both_languages(utc_hour: int, minute: int, english: str, swahili: str) -> None:
    value = datetime(2027, 1, 15, utc_hour, minute, tzinfo=UTC)
    assert local_time(value, NAIROBI, "en") == english
    assert local_time(value, NAIROBI, "sw") == swahili


def test_day_and_time_both_languages() -> None:
    value = datetime(2027, 1, 15, 6, 0, tzinfo=UTC)  # 09:00 in Nairobi, never 06:00
    assert local_day_and_time(value, NAIROBI, "en") == "Fri 15 Jan 09:00"
    assert local_day_and_time(value, NAIROBI, "sw") == "Ijumaa 15 Jan, saa 3:00 asubuhi"
