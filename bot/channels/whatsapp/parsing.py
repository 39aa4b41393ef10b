"""Twilio webhook forms (WhatsApp and SMS inbound, status callbacks) parsed after the signature
check.

Field names are those of twilio.com/docs/messaging/guides/webhook-request and of captured
WhatsApp webhooks. Twilio adds parameters without notice, so unknown fields are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import phonenumbers

from bot.channels.whatsapp.interactive import Press, decode_press_id
from bot.engine.model import Input, InputKind

# inbound_messages.provider_message_id and delivery_reports.provider_message_id are VARCHAR(100).
MAX_SID_LENGTH: Final = 100
# Twilio's Messages API takes up to 1,600 characters and WhatsApp up to 4,096; anything longer
# did not come from Twilio.
MAX_BODY_LENGTH: Final = 4096
# delivery_reports.provider_status is VARCHAR(40) and failure_reason VARCHAR(80).
MAX_STATUS_LENGTH: Final = 40
MAX_ERROR_CODE_LENGTH: Final = 80

WHATSAPP_PREFIX: Final = "whatsapp:"
# An option key of our numbered menus: "1", "12", "0", "00", "98".
_OPTION_KEY = re.compile(r"\d{1,3}")
_SID = re.compile(r"[A-Za-z0-9_]+")
# The id of a pressed quick-reply button, and of a chosen list-picker item.
_PRESS_FIELDS: Final = ("ButtonPayload", "ListId")


class InvalidField(Exception):
    """A form field is missing or malformed; `field` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid field '{field}': {reason}")
        self.field = field


@dataclass(frozen=True)
class TwilioInbound:
    """An inbound WhatsApp or SMS message. `phone` is None for a sender that is not a phone
    number, such as a WhatsApp business-scoped user id (`whatsapp:US.1234`)."""

    message_sid: str
    phone: str | None
    input: Input
    # A pressed button or list item of ours, whose key is also `input`.
    press: Press | None = None


@dataclass(frozen=True)
class TwilioStatus:
    """One status callback: the message, its new `MessageStatus`, and `ErrorCode` on failure."""

    message_sid: str
    status: str
    error_code: str | None


def parse_inbound(form: Mapping[str, str], *, whatsapp: bool) -> TwilioInbound:
    """Parse an inbound webhook; raise InvalidField naming the first bad field.

    `whatsapp` True expects `From` as `whatsapp:<address>`, False a plain number (SMS).
    """
    message_sid = _sid(form, "MessageSid")
    sender = form.get("From", "").strip()
    if not sender:
        raise InvalidField("From", "missing")
    if whatsapp != sender.startswith(WHATSAPP_PREFIX):
        expected = "whatsapp:+<number>" if whatsapp else "+<number>, without whatsapp:"
        raise InvalidField("From", f"expected {expected}")
    body = form.get("Body")
    if body is not None and len(body) > MAX_BODY_LENGTH:
        raise InvalidField("Body", f"longer than {MAX_BODY_LENGTH} characters")
    press = _press(form)
    return TwilioInbound(
        message_sid=message_sid,
        phone=_phone(sender.removeprefix(WHATSAPP_PREFIX)),
        input=Input(InputKind.TEXT, press.key) if press else _input(form),
        press=press,
    )


def parse_status(form: Mapping[str, str]) -> TwilioStatus:
    """Parse a status callback; raise InvalidField naming the first bad field."""
    message_sid = _sid(form, "MessageSid")
    status = form.get("MessageStatus", "").strip()
    if not status:
        raise InvalidField("MessageStatus", "missing")
    if len(status) > MAX_STATUS_LENGTH:
        raise InvalidField("MessageStatus", f"longer than {MAX_STATUS_LENGTH} characters")
    error_code = form.get("ErrorCode", "").strip() or None
    if error_code is not None and len(error_code) > MAX_ERROR_CODE_LENGTH:
        raise InvalidField("ErrorCode", f"longer than {MAX_ERROR_CODE_LENGTH} characters")
    return TwilioStatus(message_sid=message_sid, status=status, error_code=error_code)


def _sid(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise InvalidField(name, "missing")
    if len(value) > MAX_SID_LENGTH or _SID.fullmatch(value) is None:
        raise InvalidField(name, f"expected letters and digits, at most {MAX_SID_LENGTH}")
    return value


def _phone(address: str) -> str | None:
    """Return the E.164 form of a sender address, or None when it is not a valid number.

    A business-scoped WhatsApp id contains a dot (`US.1234`) and is never a phone number.
    """
    if "." in address or not address.startswith("+"):
        return None
    try:
        number = phonenumbers.parse(address, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _press(form: Mapping[str, str]) -> Press | None:
    """Return the press of one of our quick-reply buttons or list items, if the form has one."""
    for field in _PRESS_FIELDS:
        press = decode_press_id(form.get(field, ""))
        if press is not None:
            return press
    return None


def _input(form: Mapping[str, str]) -> Input:
    """Map the message to one input: a pressed button or list item, a location, media or text.

    A button or list item whose id is a bare option key ("1", "00") stands for that key; any
    other id, such as a template button's own payload, falls back to the text shown.
    """
    for field in _PRESS_FIELDS:
        payload = form.get(field, "").strip()
        if _OPTION_KEY.fullmatch(payload):
            return Input(InputKind.TEXT, payload)
    text = (form.get("Body") or "").strip()
    if text:
        return Input(InputKind.TEXT, text)
    if form.get("Latitude", "").strip() and form.get("Longitude", "").strip():
        return Input(InputKind.LOCATION)
    if _media_count(form) > 0:
        return Input(InputKind.MEDIA)
    return Input(InputKind.EMPTY)


def _media_count(form: Mapping[str, str]) -> int:
    try:
        return int(form.get("NumMedia", "0") or "0")
    except ValueError:
        # An unreadable count with a media URL still means media.
        return 1 if form.get("MediaUrl0") else 0
