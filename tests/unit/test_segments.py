"""SMS part counting for GSM-7 and UCS-2 texts."""

from __future__ import annotations

import pytest

from core.notify.segments import SegmentCount, count_segments

REMINDER = (
    "Reminder: your appointment with Dr. Achieng Otieno is on Wed 20 Jan 2027 at 09:00. "
    "Reply 1 to confirm, 2 to reschedule. [Ref TEST-0001]"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # "[" and "]" are GSM-7 extension characters, so 135 characters take 137 septets.
        pytest.param(REMINDER, SegmentCount("GSM-7", 137, 1), id="reminder-gsm7"),
        # One emoji turns the whole text into UCS-2: 136 BMP characters plus a surrogate pair.
        pytest.param(REMINDER + " 👍", SegmentCount("UCS-2", 138, 3), id="reminder-emoji-ucs2"),
        pytest.param("😊" * 35, SegmentCount("UCS-2", 70, 1), id="emoji-70-units"),
        pytest.param("😊" * 36, SegmentCount("UCS-2", 72, 2), id="emoji-72-units"),
        pytest.param("", SegmentCount("GSM-7", 0, 1), id="empty"),
        pytest.param("a" * 160, SegmentCount("GSM-7", 160, 1), id="gsm7-160"),
        pytest.param("a" * 161, SegmentCount("GSM-7", 161, 2), id="gsm7-161"),
        pytest.param("a" * 306, SegmentCount("GSM-7", 306, 2), id="gsm7-two-full-parts"),
        pytest.param("a" * 307, SegmentCount("GSM-7", 307, 3), id="gsm7-307"),
        pytest.param("€" * 80, SegmentCount("GSM-7", 160, 1), id="gsm7-extension-160"),
        pytest.param("€" * 81, SegmentCount("GSM-7", 162, 2), id="gsm7-extension-162"),
        pytest.param("a" * 70, SegmentCount("GSM-7", 70, 1), id="gsm7-70"),
        pytest.param("’" * 70, SegmentCount("UCS-2", 70, 1), id="ucs2-70"),
        pytest.param("’" * 71, SegmentCount("UCS-2", 71, 2), id="ucs2-71"),
        pytest.param("Habari, miadi yako ni kesho.", SegmentCount("GSM-7", 28, 1), id="swahili"),
        pytest.param("ng’ombe", SegmentCount("UCS-2", 7, 1), id="smart-apostrophe"),
    ],
)
def test_count_segments(text: str, expected: SegmentCount) -> None:
    assert count_segments(text) == expected


def test_escape_sequence_not_split_across_parts() -> None:
    # 306 septets would fill exactly two parts, but "€" (2 septets) lands on the boundary of the
    # first part and moves whole to the second, which then overflows into a third.
    result = count_segments("a" * 152 + "€" + "a" * 152)

    assert result.units == 306
    assert result.segments == 3


def test_surrogate_pair_not_split_across_parts() -> None:
    # 134 code units would fit two parts, but the emoji straddles the first boundary.
    result = count_segments("a" * 66 + "😊" + "a" * 66)

    assert result.encoding == "UCS-2"
    assert result.units == 134
    assert result.segments == 3
