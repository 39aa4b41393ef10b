"""Twilio inbound and status forms parsed into inputs, from the captured payloads."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from bot.channels.whatsapp.parsing import InvalidField, parse_inbound, parse_status
from bot.engine.model import InputKind
from tests.conftest import PAYLOADS


def form(name: str, **changes: str | None) -> dict[str, str]:
    fields = dict(parse_qsl((PAYLOADS / name).read_text().strip(), keep_blank_values=True))
    for key, value in changes.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


@pytest.mark.parametrize(
    ("payload", "whatsapp", "sid", "kind", "text"),
    [
        (
            "twilio_whatsapp_inbound_text.form",
            True,
            "SM00000000000000000000000000000001",
            InputKind.TEXT,
            "Habari, nataka kuweka miadi",
        ),
        # The captured payload's button id is not an option key, so the text shown counts.
        (
            "twilio_whatsapp_button_reply.form",
            True,
            "SM00000000000000000000000000000002",
            InputKind.TEXT,
            "Confirm",
        ),
        (
            "twilio_whatsapp_list_reply.form",
            True,
            "SM00000000000000000000000000000003",
            InputKind.TEXT,
            "10:30",
        ),
        (
            "twilio_whatsapp_inbound_media.form",
            True,
            "MM00000000000000000000000000000004",
            InputKind.MEDIA,
            "",
        ),
        (
            "twilio_sms_inbound.form",
            False,
            "SM00000000000000000000000000000006",
            InputKind.TEXT,
            "STOP",
        ),
    ],
)
def test_captured_inbound_parsed(
    payload: str, whatsapp: bool, sid: str, kind: InputKind, text: str
) -> None:
    parsed = parse_inbound(form(payload), whatsapp=whatsapp)

    assert parsed.message_sid == sid
    assert parsed.phone == "+254700000001"
    assert parsed.input.kind is kind
    assert parsed.input.text == text


@pytest.mark.parametrize("field", ["ButtonPayload", "ListId"])
def test_option_key_payload_answers_with_key(field: str) -> None:
    fields = form("twilio_whatsapp_list_reply.form", ListId=None, Body="Dr. Test Kamau")
    fields[field] = "3"

    parsed = parse_inbound(fields, whatsapp=True)

    assert parsed.input.kind is InputKind.TEXT
    assert parsed.input.text == "3"


@pytest.mark.parametrize(
    ("payload", "field", "shown"),
    [
        ("twilio_whatsapp_button_reply.form", "ButtonPayload", "ButtonText"),
        ("twilio_whatsapp_list_reply.form", "ListId", "ListTitle"),
    ],
)
def test_our_press_id_gives_key_and_screen(payload: str, field: str, shown: str) -> None:
    fields = form(payload, Body="Dr. Test Kamau", **{field: "41:7:2", shown: "Dr. Test Kamau"})

    parsed = parse_inbound(fields, whatsapp=True)

    assert parsed.input.kind is InputKind.TEXT
    assert parsed.input.text == "2"
    assert parsed.press is not None
    assert parsed.press.conversation_id == 41
    assert parsed.press.screen_version == 7
    assert parsed.press.key == "2"


@pytest.mark.parametrize(
    ("case", "changes", "text"),
    [
        ("no ButtonPayload", {"ButtonPayload": None}, "Confirm"),
        ("empty ButtonPayload", {"ButtonPayload": ""}, "Confirm"),
        ("malformed id", {"ButtonPayload": "41:x:2"}, "Confirm"),
        ("no ButtonText either", {"ButtonPayload": None, "ButtonText": None}, "Confirm"),
    ],
)
def test_button_without_our_id_reads_body(
    case: str, changes: dict[str, str | None], text: str
) -> None:
    parsed = parse_inbound(form("twilio_whatsapp_button_reply.form", **changes), whatsapp=True)

    assert parsed.press is None, case
    assert parsed.input.text == text, case


def test_press_without_sid_rejected() -> None:
    fields = form("twilio_whatsapp_list_reply.form", MessageSid=None, ListId="41:7:2")

    with pytest.raises(InvalidField) as raised:
        parse_inbound(fields, whatsapp=True)

    assert raised.value.field == "MessageSid"


@pytest.mark.parametrize(
    ("case", "changes", "kind"),
    [
        ("photo, empty Body", {"Body": ""}, InputKind.MEDIA),
        ("photo, no Body", {"Body": None}, InputKind.MEDIA),
        (
            "location, no Body",
            {"Body": None, "NumMedia": "0", "Latitude": "-1.2921", "Longitude": "36.8219"},
            InputKind.LOCATION,
        ),
        ("nothing at all", {"Body": None, "NumMedia": "0"}, InputKind.EMPTY),
        ("unreadable NumMedia", {"Body": None, "NumMedia": "one"}, InputKind.MEDIA),
    ],
)
def test_message_without_text(case: str, changes: dict[str, str | None], kind: InputKind) -> None:
    parsed = parse_inbound(form("twilio_whatsapp_inbound_media.form", **changes), whatsapp=True)

    assert parsed.input.kind is kind, case


def test_business_scoped_sender_has_no_phone() -> None:
    fields = form("twilio_whatsapp_inbound_text.form", From="whatsapp:US.1234567890")

    assert parse_inbound(fields, whatsapp=True).phone is None


def test_invalid_number_has_no_phone() -> None:
    fields = form("twilio_whatsapp_inbound_text.form", From="whatsapp:+2547000")

    assert parse_inbound(fields, whatsapp=True).phone is None


def test_unknown_fields_ignored() -> None:
    fields = form("twilio_whatsapp_inbound_text.form", NewTwilioField="anything")

    assert parse_inbound(fields, whatsapp=True).input.text == "Habari, nataka kuweka miadi"


@pytest.mark.parametrize(
    ("payload", "whatsapp", "changes", "field"),
    [
        ("twilio_whatsapp_inbound_text.form", True, {"MessageSid": None}, "MessageSid"),
        ("twilio_whatsapp_inbound_text.form", True, {"MessageSid": "SM<1>"}, "MessageSid"),
        ("twilio_whatsapp_inbound_text.form", True, {"From": None}, "From"),
        ("twilio_whatsapp_inbound_text.form", True, {"From": "+254700000001"}, "From"),
        ("twilio_sms_inbound.form", False, {"From": "whatsapp:+254700000001"}, "From"),
        ("twilio_whatsapp_inbound_text.form", True, {"Body": "x" * 4097}, "Body"),
    ],
)
def test_bad_inbound_names_field(
    payload: str, whatsapp: bool, changes: dict[str, str | None], field: str
) -> None:
    with pytest.raises(InvalidField) as raised:
        parse_inbound(form(payload, **changes), whatsapp=whatsapp)

    assert raised.value.field == field


@pytest.mark.parametrize(
    ("payload", "status", "error_code"),
    [
        ("twilio_status_callback_sent.form", "sent", None),
        ("twilio_status_callback_delivered.form", "delivered", None),
        ("twilio_status_callback_failed_63016.form", "failed", "63016"),
        ("twilio_status_callback_sms_undelivered.form", "undelivered", "30003"),
    ],
)
def test_captured_status_parsed(payload: str, status: str, error_code: str | None) -> None:
    parsed = parse_status(form(payload))

    assert parsed.status == status
    assert parsed.error_code == error_code


@pytest.mark.parametrize("field", ["MessageSid", "MessageStatus"])
def test_bad_status_names_field(field: str) -> None:
    with pytest.raises(InvalidField) as raised:
        parse_status(form("twilio_status_callback_sent.form", **{field: None}))

    assert raised.value.field == field
