"""The STOP confirmation names what stops and what is still sent, within two GSM-7 parts."""

from __future__ import annotations

import pytest

from core.i18n import LANGUAGES, translate
from core.notify.segments import count_segments

# Words that name the messages still sent after STOP: replies and booking confirmations.
STILL_SENT = {
    "en": ("Replies", "booking, cancel and move confirmations", "still come"),
    "sw": ("majibu", "uthibitisho wa kuweka, kughairi au kubadilisha miadi", "Bado utapata"),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_stop_confirmation_fits_two_parts(language: str) -> None:
    segments = count_segments(translate(language, "optout.confirmed"))
    assert segments.encoding == "GSM-7"
    assert segments.segments <= 2


@pytest.mark.parametrize("language", LANGUAGES)
def test_stop_confirmation_names_what_still_comes(language: str) -> None:
    text = translate(language, "optout.confirmed")
    for words in STILL_SENT[language]:
        assert words in text


def test_stop_confirmation_stops_only_non_essential() -> None:
    assert "or other messages from us" not in translate("en", "optout.confirmed")
    assert "non-essential" in translate("en", "optout.confirmed")
    assert "zisizo za lazima" in translate("sw", "optout.confirmed")
