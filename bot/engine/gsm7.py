"""GSM-7 helpers for screens that must stay within the GSM 03.38 alphabet (USSD)."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import gsm0338  # noqa: F401  # registers the "gsm03.38" codec

_ESCAPE = 0x1B
# The GSM 03.38 alphabet, read from the codec once: the basic table costs one septet a
# character, the extension table (reached through the escape code) two.
_BASIC = frozenset(bytes(b for b in range(128) if b != _ESCAPE).decode("gsm03.38"))


def _extension_table() -> frozenset[str]:
    chars = set()
    for code in range(128):
        try:
            chars.add(bytes([_ESCAPE, code]).decode("gsm03.38"))
        except UnicodeDecodeError:
            continue
    return frozenset(chars - _BASIC)


_EXTENSION = _extension_table()
_ALPHABET = _BASIC | _EXTENSION

# Look-alikes for punctuation that phones and word processors insert.
_LOOK_ALIKES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u02bc": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u2026": "...",
        "\u2022": "-",
        "\u00a0": " ",
        "\u2009": " ",
        "`": "'",
    }
)


def is_gsm7(text: str) -> bool:
    return _ALPHABET.issuperset(text)


def septets(text: str) -> int:
    """Count GSM-7 septets; extension characters such as [ ] € count two.

    Raises ValueError for a character outside GSM-7; convert with `to_gsm7` first.
    """
    count = len(text)
    if _BASIC.issuperset(text):
        return count
    for char in text:
        if char not in _BASIC:
            if char not in _EXTENSION:
                raise ValueError(f"{char!r} is not a GSM-7 character")
            count += 1
    return count


# Screens repeat the same lines (menu options, navigation, whole screens of a walk), so the
# converted text and its length are cached. Keys are whole lines or screens of at most a few
# hundred characters: 4,096 of them stay under about 2 MB.
@lru_cache(maxsize=4096)
def to_gsm7(text: str) -> str:
    """Replace characters outside GSM-7 by their nearest look-alike, or by '?' when none exists.

    Letters with diacritics lose them unless GSM-7 has the letter (é and ü stay, ũ becomes u).
    """
    text = text.translate(_LOOK_ALIKES)
    if is_gsm7(text):
        return text
    out = []
    for char in text:
        if is_gsm7(char):
            out.append(char)
            continue
        base = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        out.append(base if base and is_gsm7(base) else "?")
    return "".join(out)


@lru_cache(maxsize=4096)
def gsm7_length(text: str) -> int:
    """Count the septets of `text` once converted with `to_gsm7`."""
    return septets(to_gsm7(text))


def fit(text: str, max_septets: int) -> str:
    """Cut text at a word boundary so that it fits, marking the cut with '...'."""
    if septets(text) <= max_septets:
        return text
    words = text.split(" ")
    while words and septets(" ".join(words) + "...") > max_septets:
        words.pop()
    return (" ".join(words) + "...") if words else text[: max(max_septets - 3, 0)] + "..."
