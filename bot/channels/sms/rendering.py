"""SMS text for the engine's replies and for every other outbound SMS.

Replies are short numbered text ("1. Book a doctor") that aims at two concatenated GSM-7 parts
(306 septets). The engine already pages lists to that size with `SMS_LIMITS`; this module
normalises the characters and shortens what still does not fit.

Characters: punctuation that phones and word processors insert (curly quotes, dashes, ellipsis,
non-breaking spaces) becomes its GSM-7 look-alike, and so do letters with a GSM-7 base letter
(Kikuyu ũ and ĩ become u and i). One such letter would switch the whole SMS to UCS-2, which
carries 70 characters a part instead of 160, so a name loses its diacritic rather than the message
costing two to three times as much. Characters with no GSM-7 look-alike (other scripts, emoji)
are kept, so nothing is replaced by "?", and that message goes out as UCS-2.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from bot.engine.gsm7 import is_gsm7, to_gsm7
from bot.engine.model import Option, Reply, ScreenLimits
from core.notify.outbox import OutboundMessage
from core.notify.segments import count_segments

# Two concatenated GSM-7 parts of 153 septets.
SMS_MAX_SEPTETS: Final = 306
TARGET_SEGMENTS: Final = 2
SMS_LIMITS: Final = ScreenLimits(max_chars=SMS_MAX_SEPTETS, max_choices=9, gsm7_only=True)

# An option label longer than this is cut when a reply does not fit its target.
SHORT_LABEL_CHARACTERS: Final = 28
ELLIPSIS: Final = "..."


def normalise_sms_text(text: str) -> str:
    """Replace characters outside GSM-7 by their look-alike, keeping those that have none."""
    if is_gsm7(text):
        return text
    out = []
    for char in unicodedata.normalize("NFC", text):
        folded = to_gsm7(char)
        out.append(char if "?" in folded and char != "?" else folded)
    return "".join(out)


def render_sms_reply(reply: Reply, max_segments: int = TARGET_SEGMENTS) -> str:
    """Render a reply as numbered text of at most `max_segments` parts where possible.

    Labels are shortened first, then the body, so the option numbers always survive.
    """
    text = normalise_sms_text(reply.as_text())
    if count_segments(text).segments <= max_segments:
        return text

    options = tuple(
        Option(option.key, _cut_words(normalise_sms_text(option.label), SHORT_LABEL_CHARACTERS))
        for option in reply.options
    )
    shorter = Reply(normalise_sms_text(reply.body), options, reply.navigation, reply.end)
    text = shorter.as_text()
    if count_segments(text).segments <= max_segments:
        return text

    # Cut the body word by word until the whole text fits.
    rest = text[len(shorter.body) :]
    words = shorter.body.split(" ")
    while len(words) > 1:
        words.pop()
        candidate = " ".join(words) + ELLIPSIS + rest
        if count_segments(candidate).segments <= max_segments:
            return candidate
    # NOTE: a reply whose options alone exceed the target goes out longer than it.
    return text


def render_outbound_sms(message: OutboundMessage) -> str:
    """Return the text of an outbox row: a conversation reply drawn from its variables, or
    the row's body."""
    reply = message.variables.get("reply")
    if isinstance(reply, dict):
        return render_sms_reply(Reply.from_json(reply))
    return normalise_sms_text(message.body)


def _cut_words(text: str, max_characters: int) -> str:
    if len(text) <= max_characters:
        return text
    cut = text[: max_characters - len(ELLIPSIS)].rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:-") + ELLIPSIS
