"""SMS keywords: matched on the first word, in any case, with punctuation and an argument."""

from __future__ import annotations

import pytest

from bot.channels.sms.keywords import FLOW_OF_KEYWORD, WORDS, Keyword, KeywordMatch, match_keyword
from bot.flows import FLOWS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", KeywordMatch(Keyword.STOP, "en")),
        ("stop", KeywordMatch(Keyword.STOP, "en")),
        (" STOP ", KeywordMatch(Keyword.STOP, "en")),
        ("Stop. Thank you", KeywordMatch(Keyword.STOP, "en")),
        ("stop!!", KeywordMatch(Keyword.STOP, "en")),
        ('"Stop"', KeywordMatch(Keyword.STOP, "en")),
        ("STOP 12345", KeywordMatch(Keyword.STOP, "en", "12345")),
        ("stop,12345", KeywordMatch(Keyword.STOP, "en", "12345")),
        ("Acha", KeywordMatch(Keyword.STOP, "sw")),
        ("SIMAMISHA 7", KeywordMatch(Keyword.STOP, "sw", "7")),
        ("start", KeywordMatch(Keyword.START, "en")),
        ("Anza tafadhali", KeywordMatch(Keyword.START, "sw")),
        ("BOOK", KeywordMatch(Keyword.BOOK, "en")),
        ("MIADI 1", KeywordMatch(Keyword.BOOK, "sw", "1")),
        ("book 2pm", KeywordMatch(Keyword.BOOK, "en")),
        ("Cancel", KeywordMatch(Keyword.CANCEL, "en")),
        ("ghairi", KeywordMatch(Keyword.CANCEL, "sw")),
        ("HELP?", KeywordMatch(Keyword.HELP, "en")),
        ("Msaada", KeywordMatch(Keyword.HELP, "sw")),
        ("menu", KeywordMatch(Keyword.MENU, "en")),
        ("MENYU", KeywordMatch(Keyword.MENU, "sw")),
        ("ＳＴＯＰ", KeywordMatch(Keyword.STOP, "en")),  # full-width letters, NFKC-folded
    ],
)
def test_keyword_matches(text: str, expected: KeywordMatch) -> None:
    assert match_keyword(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "1", "00", "stopped", "nonstop", "Please stop", "Test Patient", "bookings", "12 STOP"],
)
def test_keyword_not_matched(text: str) -> None:
    assert match_keyword(text) is None


def test_thirteen_digits_are_no_argument() -> None:
    match = match_keyword("STOP 1234567890123")
    assert match == KeywordMatch(Keyword.STOP, "en")


def test_every_keyword_has_both_languages() -> None:
    for keyword in Keyword:
        languages = {
            language for word_keyword, language in WORDS.values() if word_keyword is keyword
        }
        assert languages == {"en", "sw"}, keyword


def test_keyword_flows_exist() -> None:
    for keyword, flow in FLOW_OF_KEYWORD.items():
        assert flow in FLOWS, keyword
