"""SMS rendering: GSM-7 look-alikes, numbered text and the two-part target."""

from __future__ import annotations

from bot.channels.sms.rendering import (
    SMS_MAX_SEPTETS,
    normalise_sms_text,
    render_outbound_sms,
    render_sms_reply,
)
from bot.engine.model import Option, Reply
from core.notify.outbox import MessageStatus, OutboundMessage
from core.notify.segments import count_segments


def test_punctuation_becomes_gsm7() -> None:
    text = normalise_sms_text("Dr. O\u2019Brien \u2013 \u201cWed\u201d\u2026\u00a0ok")
    assert text == 'Dr. O\'Brien - "Wed"... ok'
    assert count_segments(text).encoding == "GSM-7"


def test_letters_fold_to_gsm7() -> None:
    assert normalise_sms_text("Wanjik\u0169 Kam\u0169") == "Wanjiku Kamu"
    # é is in GSM-7 and stays.
    assert normalise_sms_text("Ren\u00e9") == "Ren\u00e9"


def test_decomposed_letters_fold() -> None:
    assert normalise_sms_text("Wanjiku\u0303") == "Wanjiku"


def test_unmapped_characters_are_kept() -> None:
    text = normalise_sms_text("Asante \U0001f64f \u2014 \u5c71")
    assert text == "Asante \U0001f64f - \u5c71"
    assert count_segments(text).encoding == "UCS-2"


def test_reply_renders_numbered() -> None:
    reply = Reply(
        body="MyAfya menu:",
        options=(Option("1", "Book a doctor"), Option("2", "My appointments")),
        navigation=(Option("0", "Back"),),
    )
    assert render_sms_reply(reply) == "MyAfya menu:\n1. Book a doctor\n2. My appointments\n0. Back"


def test_long_labels_shortened_to_two_parts() -> None:
    options = tuple(
        Option(str(i), f"Doctor number {i} with a very long title indeed") for i in range(1, 10)
    )
    reply = Reply(body="Choose a doctor:", options=options)
    assert count_segments(reply.as_text()).segments > 2

    text = render_sms_reply(reply)

    assert count_segments(text).segments <= 2
    for i in range(1, 10):
        assert f"\n{i}. Doctor number {i}" in text


def test_long_body_cut_keeps_options() -> None:
    reply = Reply(body=" ".join(["word"] * 100), options=(Option("1", "Yes"), Option("2", "No")))

    text = render_sms_reply(reply)

    assert count_segments(text).segments <= 2
    assert text.endswith("...\n1. Yes\n2. No")


def test_ucs2_reply_fits_two_parts() -> None:
    reply = Reply(body="\U0001f44d " + " ".join(["neno"] * 60), options=(Option("1", "Ndiyo"),))

    text = render_sms_reply(reply)

    assert count_segments(text).encoding == "UCS-2"
    assert count_segments(text).segments <= 2
    assert text.endswith("\n1. Ndiyo")


def test_outbound_row_uses_reply_variables() -> None:
    reply = Reply(body="Choose:", options=(Option("1", "Dr. A \u2013 GP"),))
    message = OutboundMessage(
        id=1,
        recipient="+254700000130",
        channel="sms",
        body="ignored when a reply is present",
        status=MessageStatus.SENDING,
        attempts=1,
        variables={"reply": reply.to_json(), "screen_version": 3},
    )
    assert render_outbound_sms(message) == "Choose:\n1. Dr. A - GP"


def test_outbound_row_without_reply_uses_body() -> None:
    message = OutboundMessage(
        id=1,
        recipient="+254700000130",
        channel="sms",
        body="Reminder \u2018today\u2019",
        status=MessageStatus.SENDING,
        attempts=1,
    )
    assert render_outbound_sms(message) == "Reminder 'today'"


def test_sms_page_is_two_parts() -> None:
    assert SMS_MAX_SEPTETS == 2 * 153
