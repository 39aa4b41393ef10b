"""Patient-facing texts in English and Kiswahili, read from gettext catalogues with Babel.

Message ids are symbolic (`home.title`), so both catalogues must translate every id and a test
can check that neither lacks one. Placeholders use `str.format` names: `{doctor}`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime, time
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LANGUAGES: Final = ("en", "sw")
DEFAULT_LANGUAGE: Final = "en"
LOCALES: Final = {"en": "en_KE", "sw": "sw_KE"}
LOCALE_DIR = Path(__file__).parent / "locale"

log = logging.getLogger(__name__)


@cache
def catalogue(language: str) -> Mapping[str, str]:
    """Load one language's messages from its .po file."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        po = read_po(handle, locale=LOCALES[language])
    return {
        str(message.id): str(message.string)
        for message in po
        if message.id and isinstance(message.string, str) and message.string
    }


def N_(message_id: str) -> str:  # gettext's name for a no-op marker
    """Mark a message id for extraction where it is chosen before `translate` is called."""
    return message_id


def normalize_language(language: str | None) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def translate(language: str | None, message_id: str, **params: Any) -> str:
    """Return the message in `language`, falling back to English when a catalogue lacks it."""
    language = normalize_language(language)
    template = catalogue(language).get(message_id)
    if template is None:
        log.error("message id %s missing from the %s catalogue", message_id, language)
        template = catalogue(DEFAULT_LANGUAGE).get(message_id, message_id)
    return template.format(**params) if params else template


# Babel parses the locale and the pattern on every call, which costs 5-15 µs on the project's
# 2-core VM, and one day or time screen formats a dozen labels. The formatting helpers below
# therefore cache their results, keyed on dates and numbers. Aware datetimes must not be keys,
# because two of them in different zones compare equal when they are the same instant.


@lru_cache(maxsize=4096)
def _format_date(value: date, pattern: str, locale: str) -> str:
    return format_date(value, pattern, locale=locale)


@lru_cache(maxsize=2048)
def _format_clock_time(hour: int, minute: int) -> str:
    return format_time(time(hour, minute), "HH:mm", locale="en_KE")


@lru_cache(maxsize=1024)
def _format_amount(amount: int, locale: str) -> str:
    return format_decimal(amount, locale=locale)


def local_date(value: date, language: str | None, pattern: str = "EEE d MMM") -> str:
    # Babel formats a datetime by its date, so the date alone is the cache key.
    day = value.date() if isinstance(value, datetime) else value
    return _format_date(day, pattern, LOCALES[normalize_language(language)])


# Kiswahili day periods, by the hour of the 24-hour clock they start at.
_SWAHILI_PERIODS = (
    (0, "usiku"),
    (4, "alfajiri"),
    (6, "asubuhi"),
    (12, "mchana"),
    (16, "jioni"),
    (19, "usiku"),
)


def local_time(value: datetime, zone: ZoneInfo, language: str | None = None) -> str:
    """Return the local time as a patient reads it.

    English gets the 24-hour clock (09:00). Kiswahili gets Swahili time, which counts hours
    from 06:00 and names the part of the day (09:00 is "saa 3:00 asubuhi"): a bare "09:00"
    would be read as saa tisa, 3 in the afternoon. Babel's CLDR data for sw has only the
    24-hour clock, hence this conversion.
    """
    local = value.astimezone(zone)
    if normalize_language(language) != "sw":
        return _format_clock_time(local.hour, local.minute)
    hour = (local.hour - 6) % 12 or 12
    period = next(name for start, name in reversed(_SWAHILI_PERIODS) if local.hour >= start)
    return f"saa {hour}:{local.minute:02d} {period}"


def local_day_and_time(value: datetime, zone: ZoneInfo, language: str | None) -> str:
    local = value.astimezone(zone)
    separator = ", " if normalize_language(language) == "sw" else " "
    return f"{local_date(local.date(), language)}{separator}{local_time(value, zone, language)}"


def money(amount_kes: int, language: str | None) -> str:
    return "KES " + _format_amount(amount_kes, LOCALES[normalize_language(language)])
