"""Two-way SMS keywords in English and Kiswahili, matched the way people actually type them.

A keyword counts when it is the first word of the message, in any case, with any spaces or
punctuation around it: "stop", " STOP ", "Stop. Thank you" and "acha!" all mean STOP. A number
right after the keyword is its argument: the patient id in "STOP 12345", or the first answer in
"MIADI 1". Any other words after the keyword are ignored.

| keyword | English | Kiswahili |
| --- | --- | --- |
| book a doctor | BOOK | MIADI |
| cancel or move an appointment | CANCEL | GHAIRI |
| help | HELP | MSAADA |
| the home menu | MENU | MENYU |
| stop reminders and other non-essential messages | STOP | ACHA, SIMAMISHA |
| subscribe again | START | ANZA |
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from typing import Final


class Keyword(enum.Enum):
    BOOK = "book"
    CANCEL = "cancel"
    HELP = "help"
    MENU = "menu"
    STOP = "stop"
    START = "start"


# Each word, lower case, with the language it is in.
WORDS: Final[dict[str, tuple[Keyword, str]]] = {
    "book": (Keyword.BOOK, "en"),
    "miadi": (Keyword.BOOK, "sw"),
    "cancel": (Keyword.CANCEL, "en"),
    "ghairi": (Keyword.CANCEL, "sw"),
    "help": (Keyword.HELP, "en"),
    "msaada": (Keyword.HELP, "sw"),
    "menu": (Keyword.MENU, "en"),
    "menyu": (Keyword.MENU, "sw"),
    "stop": (Keyword.STOP, "en"),
    "acha": (Keyword.STOP, "sw"),
    "simamisha": (Keyword.STOP, "sw"),
    "start": (Keyword.START, "en"),
    "anza": (Keyword.START, "sw"),
}

# The flow each navigation keyword opens; STOP and START change subscriptions instead.
FLOW_OF_KEYWORD: Final = {
    Keyword.BOOK: "booking",
    Keyword.CANCEL: "appointments",
    Keyword.HELP: "help",
    Keyword.MENU: "home",
}

# The first word (letters only), then a number that may follow it after spaces or punctuation.
# Twelve digits cover any patient id; a longer run is not an argument.
_FIRST_WORD = re.compile(r"[^\W\d_]+")
_ARGUMENT = re.compile(r"[\s\W_]*(\d{1,12})(?!\w)")


@dataclass(frozen=True)
class KeywordMatch:
    keyword: Keyword
    language: str  # the language of the word the patient used, "en" or "sw"
    argument: str | None = None  # digits after the keyword, if any


def match_keyword(text: str) -> KeywordMatch | None:
    """Return the keyword that `text` starts with, or None when it starts with no keyword."""
    normalised = unicodedata.normalize("NFKC", text).casefold()
    start = 0
    while start < len(normalised) and not normalised[start].isalnum():
        start += 1  # leading spaces, quotes or punctuation
    word = _FIRST_WORD.match(normalised, start)
    if word is None:
        return None
    found = WORDS.get(word.group())
    if found is None:
        return None
    keyword, language = found
    argument = _ARGUMENT.match(normalised, word.end())
    return KeywordMatch(keyword, language, argument.group(1) if argument else None)
