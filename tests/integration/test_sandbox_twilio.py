"""The Twilio Messages API fake, driven by the real twilio SDK through our sender."""

from __future__ import annotations

import asyncio
import json
from base64 import b64encode
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.channels.whatsapp.sender import TwilioSender
from core.clock import FrozenClock
from core.notify.outbox import MessageStatus, OutboundMessage
from tests.conftest import PAYLOADS
from tests.integration.conftest import RunningService, start_service
from tests.integration.twilio_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    TEMPLATE_REMINDER,
    WHATSAPP_FROM,
    twilio_settings,
)

TEMPLATE_REQUEST = json.loads(
    (PAYLOADS / "twilio_message_create_request_template.json").read_text()
)
CREATE_RESPONSE = json.loads((PAYLOADS / "twilio_message_create_response.json").read_text())


@pytest.fixture
async def service(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    from core.db.migrate import upgrade_to_head

    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    # The captured template's SID is configured, so the fake takes it as an approved template.
    templates = f"reminder={TEMPLATE_REMINDER},cancelled={TEMPLATE_REQUEST['ContentSid']}"
    running = await start_service(
        sqlite_url, clock, seed=False, **twilio_settings(twilio_template_sids=templates)
    )
    yield running
    await running.client.close()


def sender(service: RunningService, **overrides: Any) -> TwilioSender:
    values: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "whatsapp_from": WHATSAPP_FROM,
        "sms_from": "+14155550100",
        "templates": {"reminder": TEMPLATE_REMINDER},
        "status_callback_url": None,
        "base_url": str(service.client.make_url("/sandbox/twilio")),
        **overrides,
    }
    return TwilioSender(**values)


def row(channel: str = "whatsapp", **fields: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "id": 1,
        "recipient": "+254700000107",
        "channel": channel,
        "body": "Asante Test Patient.",
        "status": MessageStatus.SENDING,
        "attempts": 1,
        "kind": "reminder",
        **fields,
    }
    return OutboundMessage(**values)


async def send(target: TwilioSender, message: OutboundMessage) -> Any:
    return await asyncio.to_thread(target.send_message_blocking, message)


async def accepted(service: RunningService) -> list[dict[str, Any]]:
    response = await service.client.get("/sandbox/messages")
    return list(await response.json())


async def test_free_text_whatsapp_accepted(service: RunningService) -> None:
    result = await send(sender(service), row())

    assert result.accepted
    assert result.provider_status == "queued"
    (message,) = await accepted(service)
    assert message == {
        "channel": "whatsapp",
        "provider": "twilio",
        "to": "+254700000107",
        "text": "Asante Test Patient.",
        "provider_message_id": result.provider_message_id,
        "sent_at": message["sent_at"],
    }


async def test_sms_accepted(service: RunningService) -> None:
    result = await send(sender(service), row("sms"))

    assert result.accepted
    (message,) = await accepted(service)
    assert message["channel"] == "sms"


async def test_template_request_accepted(service: RunningService) -> None:
    # The captured template request, sent through the SDK as our sender would.
    client = sender(service)._client
    created = await asyncio.to_thread(
        client.messages.create,
        to=TEMPLATE_REQUEST["To"],
        from_=TEMPLATE_REQUEST["From"],
        content_sid=TEMPLATE_REQUEST["ContentSid"],
        content_variables=TEMPLATE_REQUEST["ContentVariables"],
    )

    assert created.status == "queued"
    assert created.body == ""
    (message,) = await accepted(service)
    assert message["text"].startswith(f"[template {TEMPLATE_REQUEST['ContentSid']}]")


async def test_response_has_captured_fields(service: RunningService) -> None:
    response = await service.client.post(
        f"/sandbox/twilio/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": "whatsapp:+254700000001", "From": WHATSAPP_FROM, "Body": "x"},
        headers={
            "Authorization": "Basic " + b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        },
    )

    assert response.status == 201
    assert set(await response.json()) == set(CREATE_RESPONSE) - {"_note"}


async def test_template_route_sends_content_sid(service: RunningService) -> None:
    message = row(
        variables={"route": "whatsapp_template", "doctor": "Dr. Test Kamau", "when": "Tue 09:30"}
    )

    result = await send(sender(service), message)

    assert result.accepted
    (sent,) = await accepted(service)
    assert sent["text"].startswith(f"[template {TEMPLATE_REMINDER}]")
    assert '"2": "Tue 09:30"' in sent["text"]


async def test_template_route_without_template_fails(service: RunningService) -> None:
    result = await send(
        sender(service), row(kind="cancelled", variables={"route": "whatsapp_template"})
    )

    assert not result.accepted
    assert not result.retryable
    assert result.provider_status == "NoTemplate"
    assert await accepted(service) == []


async def test_wrong_token_rejected(service: RunningService) -> None:
    result = await send(sender(service, auth_token="wrong-token"), row())

    assert not result.accepted
    assert not result.retryable
    assert result.provider_status == "20003"
    assert await accepted(service) == []


async def test_invalid_number_rejected(service: RunningService) -> None:
    result = await send(sender(service), row(recipient="+2547"))

    assert not result.accepted
    assert result.provider_status == "21211"


async def test_injected_server_error_retryable(service: RunningService) -> None:
    fault = {"service": "twilio.messages", "http_status": 503, "count": 1}
    assert (await service.client.post("/sandbox/faults", json=fault)).status == 204

    result = await send(sender(service), row())

    assert not result.accepted
    assert result.retryable


async def test_unreachable_api_retryable(service: RunningService) -> None:
    from tests.integration.conftest import free_port

    result = await send(sender(service, base_url=f"http://127.0.0.1:{free_port()}"), row())

    assert not result.accepted
    assert result.retryable
    assert result.provider_status == "ConnectionFailed"


@pytest.mark.parametrize(
    ("fault", "field"),
    [
        ({"to": "+254700000107", "error_code": 63016, "count": 1}, "to"),
        ({"to": "whatsapp:+254700000107", "error_code": "63016", "count": 1}, "error_code"),
        ({"to": "whatsapp:+254700000107", "error_code": 63016, "count": 0}, "count"),
        (
            {"to": "whatsapp:+254700000107", "error_code": 63016, "count": 1, "stage": "later"},
            "stage",
        ),
    ],
)
async def test_bad_recipient_fault_names_field(
    service: RunningService, fault: dict[str, Any], field: str
) -> None:
    response = await service.client.post(
        "/sandbox/faults", json={"service": "twilio.whatsapp", **fault}
    )

    assert response.status == 400
    assert (await response.json())["field"] == field
