"""Twilio webhooks over HTTP: every captured payload as valid, badly signed, missing a field and
repeated; signatures behind a proxy; status callbacks moving outbox rows forward."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest

from core.clock import FrozenClock
from tests.conftest import PAYLOADS
from tests.integration.conftest import RunningService, start_service
from tests.integration.twilio_support import (
    PUBLIC_URL,
    SMS_PATH,
    STATUS_PATH,
    WHATSAPP_PATH,
    payload_form,
    post_signed,
    sign,
    twilio_settings,
    wait_for,
    whatsapp_form,
    whatsapp_messages,
)

EMPTY_TWIML = (PAYLOADS / "twilio_twiml_empty.xml").read_text().strip()


async def start(url: str, clock: FrozenClock, **extra: Any) -> RunningService:
    from core.db.migrate import upgrade_to_head

    await asyncio.to_thread(upgrade_to_head, url)
    return await start_service(url, clock, **twilio_settings(**extra))


@pytest.fixture
async def service(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    running = await start(sqlite_url, clock)
    yield running
    await running.drain()
    await running.client.close()


async def counts(service: RunningService) -> dict[str, int]:
    tables = ("inbound_messages", "delivery_reports", "conversations", "outbox_messages")
    return {table: await service.scalar(f"SELECT COUNT(*) FROM {table}") for table in tables}


INBOUND_PAYLOADS = [
    ("twilio_whatsapp_inbound_text.form", WHATSAPP_PATH),
    ("twilio_whatsapp_button_reply.form", WHATSAPP_PATH),
    ("twilio_whatsapp_list_reply.form", WHATSAPP_PATH),
    ("twilio_whatsapp_inbound_media.form", WHATSAPP_PATH),
    ("twilio_sms_inbound.form", SMS_PATH),
]
STATUS_PAYLOADS = [
    "twilio_status_callback_sent.form",
    "twilio_status_callback_delivered.form",
    "twilio_status_callback_failed_63016.form",
    "twilio_status_callback_sms_undelivered.form",
]


@pytest.mark.parametrize(("payload", "path"), INBOUND_PAYLOADS)
async def test_inbound_payload_cases(service: RunningService, payload: str, path: str) -> None:
    fields = payload_form(payload)
    empty = await counts(service)

    # Badly signed: a field changed after signing.
    changed = [(name, value + "x" if name == "Body" else value) for name, value in fields]
    forged = await post_signed(service, path, changed, signature=sign_for(path, fields))
    assert forged[0] == 403
    assert await counts(service) == empty

    # Missing MessageSid.
    without_sid = [(name, value) for name, value in fields if name != "MessageSid"]
    missing = await post_signed(service, path, without_sid)
    assert missing[0] == 400
    assert "MessageSid" in missing[1]
    assert await counts(service) == empty

    valid = await post_signed(service, path, fields)
    assert valid == (200, EMPTY_TWIML)
    applied = await counts(service)
    assert applied["inbound_messages"] == 1
    assert applied["outbox_messages"] >= 1

    repeated = await post_signed(service, path, fields)
    assert repeated == valid
    assert await counts(service) == applied


def sign_for(path: str, fields: list[tuple[str, str]]) -> str:
    from tests.integration.twilio_support import PUBLIC_URL

    return sign(PUBLIC_URL + path, fields)


@pytest.mark.parametrize("payload", STATUS_PAYLOADS)
async def test_status_payload_cases(service: RunningService, payload: str) -> None:
    fields = payload_form(payload)
    empty = await counts(service)

    changed = [(name, "read" if name == "MessageStatus" else value) for name, value in fields]
    forged = await post_signed(
        service, STATUS_PATH, changed, signature=sign_for(STATUS_PATH, fields)
    )
    assert forged[0] == 403
    assert await counts(service) == empty

    without_status = [(name, value) for name, value in fields if name != "MessageStatus"]
    missing = await post_signed(service, STATUS_PATH, without_status)
    assert missing[0] == 400
    assert "MessageStatus" in missing[1]
    assert await counts(service) == empty

    valid = await post_signed(service, STATUS_PATH, fields)
    assert valid[0] == 200
    stored = await counts(service)
    assert stored["delivery_reports"] == 1

    repeated = await post_signed(service, STATUS_PATH, fields)
    assert repeated == valid
    assert await counts(service) == stored


async def test_unsigned_request_rejected(service: RunningService) -> None:
    response = await service.client.post(
        WHATSAPP_PATH, data=dict(payload_form("twilio_whatsapp_inbound_text.form"))
    )

    assert response.status == 403
    assert await service.scalar("SELECT COUNT(*) FROM inbound_messages") == 0


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        (WHATSAPP_PATH, "twilio_whatsapp_inbound_text.form"),
        (SMS_PATH, "twilio_sms_inbound.form"),
        (STATUS_PATH, "twilio_status_callback_delivered.form"),
    ],
)
async def test_signed_non_form_body_rejected(
    service: RunningService, path: str, payload: str
) -> None:
    fields = payload_form(payload)
    response = await service.client.post(
        path,
        data=urlencode(fields).encode(),
        headers={
            "Content-Type": "text/plain",
            "X-Twilio-Signature": sign(PUBLIC_URL + path, fields),
        },
    )

    assert response.status == 415
    assert "must be application/x-www-form-urlencoded" in await response.text()
    nothing = {
        "inbound_messages": 0,
        "delivery_reports": 0,
        "conversations": 0,
        "outbox_messages": 0,
    }
    assert await counts(service) == nothing


async def test_business_scoped_sender_ignored(service: RunningService) -> None:
    form = whatsapp_form("SM_TEST_BSUID", "+254700000001", "hi")
    form["From"] = "whatsapp:US.1234567890"

    status, body = await post_signed(service, WHATSAPP_PATH, form)

    assert (status, body) == (200, EMPTY_TWIML)
    assert await counts(service) == {
        "inbound_messages": 0,
        "delivery_reports": 0,
        "conversations": 0,
        "outbox_messages": 0,
    }


async def test_sms_to_whatsapp_endpoint_rejected(service: RunningService) -> None:
    status, body = await post_signed(
        service, WHATSAPP_PATH, payload_form("twilio_sms_inbound.form")
    )

    assert status == 400
    assert "From" in body
    assert await service.scalar("SELECT COUNT(*) FROM inbound_messages") == 0


# --- signatures behind a proxy ---------------------------------------------------------------

HOOKS_URL = "https://hooks.example.test"
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.test"}


async def post_through_proxy(service: RunningService, body: str) -> tuple[int, str]:
    form = dict(payload_form("twilio_sms_inbound.form"))
    signature = sign(HOOKS_URL + SMS_PATH, form)
    form["Body"] = body
    return await post_signed(service, SMS_PATH, form, signature=signature, headers=FORWARDED)


@pytest.mark.parametrize(
    ("case", "proxies", "body", "status", "processed"),
    [
        ("from the trusted proxy", "127.0.0.1", "STOP", 200, 1),
        ("from an untrusted address", "192.0.2.0/24", "STOP", 403, 0),
        ("Body changed after signing", "127.0.0.1", "START", 403, 0),
    ],
)
async def test_forwarded_headers(
    sqlite_url: str,
    clock: FrozenClock,
    case: str,
    proxies: str,
    body: str,
    status: int,
    processed: int,
) -> None:
    # The public URL names another host, so only the forwarded headers can make (a) pass.
    service = await start(
        sqlite_url, clock, public_url="https://myafya.example.test", trusted_proxies=proxies
    )
    try:
        response = await post_through_proxy(service, body)

        assert response[0] == status, case
        assert await service.scalar("SELECT COUNT(*) FROM inbound_messages") == processed, case
    finally:
        await service.drain()
        await service.client.close()


# --- status callbacks --------------------------------------------------------------------------


async def test_fake_callbacks_move_reply_to_delivered(service: RunningService) -> None:
    await service.register("+254700000105")
    form = whatsapp_form("SM_TEST_0105", "+254700000105", "hi")
    assert (await post_signed(service, WHATSAPP_PATH, form))[0] == 200
    assert len(await whatsapp_messages(service, "+254700000105")) == 1

    async def delivered() -> bool:
        status = await service.scalar(
            "SELECT status FROM outbox_messages WHERE dedupe_key = 'reply:twilio:SM_TEST_0105'"
        )
        return bool(status == "delivered")

    await wait_for(delivered, what="the reply to be delivered")
    statuses = await service.scalar(
        "SELECT COUNT(*) FROM delivery_reports WHERE provider = 'twilio'"
        " AND provider_status IN ('sent', 'delivered') AND outbox_message_id IS NOT NULL"
    )
    assert statuses == 2


async def test_late_sent_does_not_undo_delivered(service: RunningService) -> None:
    await service.register("+254700000106")
    form = whatsapp_form("SM_TEST_0106", "+254700000106", "hi")
    await post_signed(service, WHATSAPP_PATH, form)
    await whatsapp_messages(service)
    sid = await service.scalar(
        "SELECT provider_message_id FROM outbox_messages WHERE dedupe_key = :key",
        key="reply:twilio:SM_TEST_0106",
    )

    async def delivered() -> bool:
        return bool(
            await service.scalar(
                "SELECT delivered_at FROM outbox_messages WHERE provider_message_id = :s", s=sid
            )
        )

    await wait_for(delivered, what="the reply to be delivered")
    late = {
        "MessageSid": sid,
        "MessageStatus": "sending",
        "AccountSid": "AC00000000000000000000000000000001",
    }
    assert (await post_signed(service, STATUS_PATH, late))[0] == 200
    assert (
        await service.scalar(
            "SELECT status FROM outbox_messages WHERE provider_message_id = :s", s=sid
        )
        == "delivered"
    )


async def test_sms_stop_opts_number_out(service: RunningService) -> None:
    fields = payload_form("twilio_sms_inbound.form")  # Body=STOP from +254700000001

    status, body = await post_signed(service, SMS_PATH, fields)

    assert (status, body) == (200, EMPTY_TWIML)
    scope = await service.scalar("SELECT scope FROM opt_outs WHERE phone = :p", p="+254700000001")
    assert scope == "all"
