"""Helpers for tests of the Twilio webhooks: signed requests, captured payloads, waiting."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator

from tests.conftest import PAYLOADS

SIGNATURES = json.loads((PAYLOADS / "twilio_signatures.json").read_text())
# The fake auth token the captured signatures were computed with.
AUTH_TOKEN: str = SIGNATURES["auth_token"]
ACCOUNT_SID = "AC00000000000000000000000000000001"
PUBLIC_URL = "https://hooks.example.test"
WHATSAPP_FROM = "whatsapp:+254700000100"
TEMPLATE_REMINDER = "HX00000000000000000000000000000011"
TEMPLATE_BOOKED = "HX00000000000000000000000000000012"

WHATSAPP_PATH = "/webhooks/twilio/whatsapp"
SMS_PATH = "/webhooks/twilio/sms"
STATUS_PATH = "/webhooks/twilio/status"

_message_sids = itertools.count(1)


def next_sid() -> str:
    """Return a new inbound message SID, unique within the test run."""
    return f"SM{next(_message_sids):032d}"


def twilio_settings(**extra: Any) -> dict[str, Any]:
    """Settings overrides for a service with a Twilio account and templates."""
    return {
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_whatsapp_from": WHATSAPP_FROM,
        "twilio_sms_from": "+14155550100",
        "twilio_template_sids": f"reminder={TEMPLATE_REMINDER},booked={TEMPLATE_BOOKED}",
        "public_url": PUBLIC_URL,
        **extra,
    }


def payload_form(name: str) -> list[tuple[str, str]]:
    """Return a captured `.form` payload's fields in their order, empty values kept."""
    return parse_qsl((PAYLOADS / name).read_text().strip(), keep_blank_values=True)


def sign(url: str, fields: dict[str, str] | list[tuple[str, str]], token: str = AUTH_TOKEN) -> str:
    params: dict[str, str] = dict(fields)
    return str(RequestValidator(token).compute_signature(url, params))


def whatsapp_form(sid: str, phone: str, body: str | None = "", **extra: str) -> dict[str, str]:
    """A WhatsApp inbound webhook form like Twilio's, from `phone` to our number."""
    form = {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": "Test Patient",
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": phone.removeprefix("+"),
        "SmsStatus": "received",
        "To": WHATSAPP_FROM,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": f"whatsapp:{phone}",
        "ApiVersion": "2010-04-01",
        **extra,
    }
    if body is not None:
        form["Body"] = body
    return form


async def post_signed(
    service: Any,
    path: str,
    fields: dict[str, str] | list[tuple[str, str]],
    *,
    signature: str | None = None,
    signed_url: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """POST `fields` to `path`, signed for PUBLIC_URL + path unless `signature` or
    `signed_url` is given."""
    url = signed_url or PUBLIC_URL + path
    all_headers = {"X-Twilio-Signature": signature or sign(url, fields), **(headers or {})}
    response = await service.client.post(path, data=fields, headers=all_headers)
    return response.status, await response.text()


async def wait_for(
    check: Callable[[], Awaitable[Any]], *, seconds: float = 15.0, what: str = "condition"
) -> Any:
    """Poll `check` until it returns a true value; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.1)


async def whatsapp_messages(service: Any, phone: str | None = None) -> list[dict[str, Any]]:
    """Return the WhatsApp messages the Twilio fake accepted, after the worker is idle."""
    messages = await service.sent_sms()
    return [
        message
        for message in messages
        if message["channel"] == "whatsapp" and (phone is None or message["to"] == phone)
    ]
