"""Count the SMS parts a text needs, so senders and the sandbox can report and price them.

One SMS carries 140 octets: 160 GSM-7 septets or 70 UCS-2 code units. A longer text is split into
concatenated parts that lose 6 octets to the concatenation header, leaving 153 septets or 67 code
units each. A single character outside the GSM 03.38 alphabet switches the whole text to UCS-2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import gsm0338  # noqa: F401  (importing it registers the "gsm03.38" codec)

GSM7_CODEC: Final = "gsm03.38"

SINGLE_PART_UNITS: Final = {"GSM-7": 160, "UCS-2": 70}
CONCATENATED_PART_UNITS: Final = {"GSM-7": 153, "UCS-2": 67}

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True, slots=True)
class SegmentCount:
    """The encoding an SMS needs, its length in that encoding's units, and its part count.

    `units` is septets for GSM-7, where an extension character such as `€` or `[` costs two, and
    UTF-16 code units for UCS-2, where a character outside the Basic Multilingual Plane (every
    emoji) costs two.
    """

    encoding: Encoding
    units: int
    segments: int


def count_segments(text: str) -> SegmentCount:
    """Count the encoding units and SMS parts of `text`.

    An empty text counts as one part, because sending it still takes one SMS.
    """
    encoding, widths = _unit_widths(text)
    units = sum(widths)

    if units <= SINGLE_PART_UNITS[encoding]:
        return SegmentCount(encoding=encoding, units=units, segments=1)

    return SegmentCount(
        encoding=encoding,
        units=units,
        segments=_count_concatenated_parts(widths, CONCATENATED_PART_UNITS[encoding]),
    )


def _unit_widths(text: str) -> tuple[Encoding, list[int]]:
    """Return the encoding `text` needs and how many units each of its characters takes."""
    try:
        text.encode(GSM7_CODEC)
    except UnicodeEncodeError:
        return "UCS-2", [len(character.encode("utf-16-le")) // 2 for character in text]

    return "GSM-7", [len(character.encode(GSM7_CODEC)) for character in text]


def _count_concatenated_parts(widths: list[int], part_capacity: int) -> int:
    """Pack characters into parts of `part_capacity` units without splitting a character.

    A two-unit character (an escape sequence or a surrogate pair) that does not fit at the end of a
    part moves whole to the next one, so that each part decodes on its own. The count can therefore
    exceed `ceil(units / part_capacity)`.
    """
    parts = 1
    used = 0
    for width in widths:
        if used + width > part_capacity:
            parts += 1
            used = 0
        used += width
    return parts
