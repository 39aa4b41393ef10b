"""An SMS conversation stays on the provider the patient wrote to: Twilio or Africa's Talking.

Inbound SMS arrive through the real webhooks (a signed Twilio request, an Africa's Talking form),
the replies go out through the real SDKs, and `GET /sandbox/messages` shows which fake took each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.clock import FrozenClock
from core.notify.outbox import enqueue_message
from core.notify.policy import MessageKind, Priority
from myafya.app import jobs_config
from myafya.settings import Settings
from tests.integration.conftest import RunningService
from tests.integration.sms_setup import SmsPhone, start_sms_service
from tests.integration.twilio_support import SMS_PATH, payload_form, post_signed, twilio_settings

TWILIO_PHONE = "+254700000191"
AT_PHONE = "+254700000192"
SILENT_PHONE = "+254700000193"
_twilio_sids = iter(range(1, 1000))


@pytest.fixture
async def service(database_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    running = await start_sms_service(database_url, clock, **twilio_settings())
    yield running
    await running.drain()
    await running.client.close()


async def text_through_twilio(service: RunningService, phone: str, body: str) -> None:
    sid = f"SM{next(_twilio_sids):032d}"
    fields = dict(payload_form("twilio_sms_inbound.form"))
    fields.update(From=phone, Body=body, MessageSid=sid, SmsMessageSid=sid, SmsSid=sid)
    status, _ = await post_signed(service, SMS_PATH, fields)
    assert status == 200


async def received(service: RunningService, phone: str) -> list[tuple[str, str]]:
    """Return (provider, channel) of each message the fakes accepted for `phone`."""
    messages: list[dict[str, Any]] = await service.sent_sms()
    return [(m["provider"], m["channel"]) for m in messages if m["to"] == phone]


async def queue_confirmation(service: RunningService, phone: str) -> None:
    """Queue a booking confirmation SMS as the booking flow does, and let the scheduler send it."""
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        await enqueue_message(
            uow,
            dedupe_key=f"test:booked:{phone}:{service.clock.now().isoformat()}",
            patient_id=None,
            recipient=phone,
            channel="sms",
            template="sms.booking_confirmed",
            variables={},
            language="en",
            body="Your appointment is booked.",
            now=service.clock.now(),
            priority=Priority.URGENT,
            kind=MessageKind.BOOKED,
        )
    await service.advance(1)


async def test_twilio_sms_replied_through_twilio(service: RunningService) -> None:
    await service.register(TWILIO_PHONE)

    await text_through_twilio(service, TWILIO_PHONE, "HELP")

    assert await received(service, TWILIO_PHONE) == [("twilio", "sms")]
    provider = await service.scalar(
        "SELECT provider FROM outbox_messages WHERE recipient = :phone", phone=TWILIO_PHONE
    )
    assert provider == "twilio"


async def test_at_sms_replied_through_at(service: RunningService) -> None:
    await service.register(AT_PHONE)

    assert await SmsPhone(service, AT_PHONE).send("HELP") == 200

    assert await received(service, AT_PHONE) == [("africastalking", "sms")]


async def test_stop_confirmed_through_twilio(service: RunningService) -> None:
    await text_through_twilio(service, TWILIO_PHONE, "STOP")

    assert await received(service, TWILIO_PHONE) == [("twilio", "sms")]


async def test_confirmation_follows_last_inbound_sms(service: RunningService) -> None:
    await service.register(TWILIO_PHONE)
    await service.register(SILENT_PHONE)
    await text_through_twilio(service, TWILIO_PHONE, "HELP")

    await queue_confirmation(service, TWILIO_PHONE)
    await queue_confirmation(service, SILENT_PHONE)

    assert await received(service, TWILIO_PHONE) == [("twilio", "sms")] * 2
    assert await received(service, SILENT_PHONE) == [("africastalking", "sms")]

    # The patient writes to the short code next: later messages follow.
    assert await SmsPhone(service, TWILIO_PHONE).send("HELP") == 200
    await queue_confirmation(service, TWILIO_PHONE)
    assert (
        await received(service, TWILIO_PHONE)
        == [("twilio", "sms")] * 2 + [("africastalking", "sms")] * 2
    )


@pytest.mark.parametrize(
    ("sms_from", "keys"),
    [("+14155550100", ["sms", "sms:twilio", "whatsapp"]), (None, ["sms", "whatsapp"])],
)
def test_twilio_sms_sender_needs_number(sms_from: str | None, keys: list[str]) -> None:
    """Without a Twilio SMS number no `sms:twilio` sender exists, so the worker sends Twilio's
    SMS replies through Africa's Talking. The sandbox is off, because it always has a number."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url="sqlite:///unused.db",
        sandbox=False,
        at_username="testclinic",
        at_api_key="test-api-key-not-secret",
        **twilio_settings(twilio_sms_from=sms_from),
    )
    config = jobs_config(settings, fakes_url="http://127.0.0.1:9", worker_threads=1)

    assert sorted(config.build_senders()) == keys
