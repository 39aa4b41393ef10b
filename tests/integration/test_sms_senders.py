"""Both SMS senders send GSM-7 look-alikes for curly quotes, dashes and letters such as ũ.

The texts are read back from the sandbox fakes, so they are what the real SDKs sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from core.clock import FrozenClock
from core.db.database import Sql
from core.db.migrate import upgrade_to_head
from core.notify.segments import count_segments
from myafya.app import twilio_sender
from tests.integration.conftest import RunningService
from tests.integration.sms_setup import SmsPhone, start_sms_service

PHONE = "+254700000171"
DOCTOR_NAME = "Dr. Wanjik\u0169 \u201cTest\u201d Kam\u0169"
DOCTOR_NAME_GSM7 = 'Dr. Wanjiku "Test" Kamu'


@pytest.fixture
async def sms_service(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_sms_service(sqlite_url, clock)
    yield running
    await running.client.close()


async def test_africastalking_reply_is_gsm7(sms_service: RunningService) -> None:
    async with sms_service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        await uow.execute(
            Sql("UPDATE doctors SET name = :name WHERE id = (SELECT MIN(id) FROM doctors)"),
            name=DOCTOR_NAME,
        )
    await sms_service.register(PHONE)
    phone = SmsPhone(sms_service, PHONE)

    doctors = await phone.text("BOOK 1")

    assert DOCTOR_NAME_GSM7 in doctors
    assert count_segments(doctors).encoding == "GSM-7"


async def test_twilio_sms_is_gsm7(sms_service: RunningService) -> None:
    settings = sms_service.services.settings
    self_url = str(sms_service.client.make_url("")).rstrip("/")
    sender = twilio_sender(settings, fakes_url=self_url)
    assert sender is not None

    result = await asyncio.to_thread(
        sender.send_blocking, PHONE, f"{DOCTOR_NAME} \u2013 09:00\u2026"
    )

    assert result.accepted, result.error
    sent = [m for m in await sms_service.sent_sms() if m["to"] == PHONE]
    assert [m["channel"] for m in sent] == ["sms"]
    assert sent[0]["text"] == f"{DOCTOR_NAME_GSM7} - 09:00..."
