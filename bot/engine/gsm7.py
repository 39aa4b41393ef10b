"""GSM-7 helpers for screens that must stay within the GSM 03.38 alphabet (USSD)."""

from __future__ import annotations

import unicodedata

import gsm0338  # noqa: F401  # registers the "gsm03.38" codec

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
    try:
        text.encode("gsm03.38")
    except UnicodeEncodeError:
        return False
    return True


def septets(text: str) -> int:
    """Count GSM-7 septets; extension characters such as [ ] € count two."""
    return len(text.encode("gsm03.38"))


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


def fit(text: str, max_septets: int) -> str:
    """Cut text at a word boundary so that it fits, marking the cut with '...'."""
    if septets(text) <= max_septets:
        return text
    words = text.split(" ")
    while words and septets(" ".join(words) + "...") > max_septets:
        words.pop()
    return (" ".join(words) + "...") if words else text[: max(max_septets - 3, 0)] + "..."
