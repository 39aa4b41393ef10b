"""STOP and START over inbound SMS, and the opt-out enforced when a reminder falls due.

Opt-out words must be matched leniently ("Stop. Thank you", " STOP "), a plain STOP opts the
number out of every non-essential message with one confirmation, `STOP <patient id>` mutes only
that patient, and START subscribes the number again. The reminders are sent by the embedded
worker after `POST /sandbox/clock` moves the frozen clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from core.clock import FrozenClock
from core.db.database import Sql
from core.db.migrate import upgrade_to_head
from core.i18n import translate
from tests.integration.conftest import RunningService
from tests.integration.notify_setup import book, nairobi_time, outbox_rows
from tests.integration.sms_setup import SmsPhone, start_sms_service

STOP_PHONE = "+254700000104"
OTHER_PHONES = ("+254700000141", "+254700000142")
# Wednesday 3 February 2027, 09:00 in Nairobi; the test clock starts on Monday at 09:00.
APPOINTMENT_AT = nairobi_time(2027, 2, 3, 9)
AFTER_BOTH_REMINDERS = nairobi_time(2027, 2, 3, 8, 30)


@pytest.fixture
async def sms_service(database_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    running = await start_sms_service(database_url, clock)
    yield running
    await running.client.close()


@pytest.fixture
async def sms_sqlite(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_sms_service(sqlite_url, clock)
    yield running
    await running.client.close()


async def advance_to(service: RunningService, moment: datetime) -> None:
    await service.advance((moment - service.clock.now()).total_seconds())


async def opt_out_scopes(service: RunningService, phone: str) -> list[str]:
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        rows = await uow.all(
            Sql("SELECT scope FROM opt_outs WHERE phone = :phone ORDER BY scope"), phone=phone
        )
    return [row["scope"] for row in rows]


async def test_stop_suppresses_later_reminder(sms_service: RunningService) -> None:
    service = sms_service
    await book(service, STOP_PHONE, APPOINTMENT_AT)
    phone = SmsPhone(service, STOP_PHONE)
    assert len(await phone.replies()) == 1  # the booking confirmation

    confirmation = await phone.text("Stop. Thank you")

    assert confirmation == translate("en", "optout.confirmed")
    assert await opt_out_scopes(service, STOP_PHONE) == ["all"]

    await advance_to(service, AFTER_BOTH_REMINDERS)
    assert await phone.replies() == []
    reminders = [row for row in await outbox_rows(service) if row["kind"] == "reminder"]
    assert len(reminders) == 2
    for row in reminders:
        assert row["status"] == "suppressed"
        assert row["status_reason"] == "opted out (all)"


async def test_second_stop_sends_nothing(sms_service: RunningService) -> None:
    phone = SmsPhone(sms_service, STOP_PHONE)
    assert await phone.text("STOP") == translate("en", "optout.confirmed")

    assert await phone.send("stop") == 200

    assert await phone.replies() == []
    assert await opt_out_scopes(sms_service, STOP_PHONE) == ["all"]
    assert await sms_service.scalar("SELECT COUNT(*) FROM inbound_messages") == 2


async def test_stop_spellings_opt_out(sms_sqlite: RunningService) -> None:
    for number, text in zip(OTHER_PHONES, ("stop", " STOP "), strict=True):
        phone = SmsPhone(sms_sqlite, number)
        assert await phone.text(text) == translate("en", "optout.confirmed"), text
        assert await opt_out_scopes(sms_sqlite, number) == ["all"], text


async def test_kiswahili_stop_and_start(sms_sqlite: RunningService) -> None:
    phone = SmsPhone(sms_sqlite, OTHER_PHONES[0])
    assert await phone.text("Acha tafadhali") == translate("sw", "optout.confirmed")
    assert await phone.text("ANZA") == translate("sw", "optin.confirmed")
    assert await opt_out_scopes(sms_sqlite, OTHER_PHONES[0]) == []


async def test_confirmation_in_patient_language(sms_sqlite: RunningService) -> None:
    await sms_sqlite.register(OTHER_PHONES[0], language="sw")
    phone = SmsPhone(sms_sqlite, OTHER_PHONES[0])
    assert await phone.text("STOP") == translate("sw", "optout.confirmed")


async def test_patient_mute_only_mutes_that_patient(sms_service: RunningService) -> None:
    service = sms_service
    appointment = await book(service, STOP_PHONE, APPOINTMENT_AT)
    phone = SmsPhone(service, STOP_PHONE)
    await phone.replies()
    patient_id = appointment.patient_id

    muted = await phone.text(f"STOP {patient_id}")

    assert muted == translate("en", "optout.patient_muted", patient_id=patient_id)
    assert await opt_out_scopes(service, STOP_PHONE) == [f"patient:{patient_id}"]
    assert await phone.send(f"stop {patient_id}") == 200
    assert await phone.replies() == []  # a repeated mute is not confirmed again

    await advance_to(service, AFTER_BOTH_REMINDERS)
    reminders = [row for row in await outbox_rows(service) if row["kind"] == "reminder"]
    assert [row["status_reason"] for row in reminders] == [f"opted out (patient:{patient_id})"] * 2


async def test_stop_unknown_patient_changes_nothing(sms_sqlite: RunningService) -> None:
    await sms_sqlite.register(STOP_PHONE)
    other_patient = await sms_sqlite.register(OTHER_PHONES[0])
    phone = SmsPhone(sms_sqlite, STOP_PHONE)

    for patient_id in ("12345", str(other_patient), "99999999999"):
        reply = await phone.text(f"STOP {patient_id}")
        assert reply == translate("en", "optout.patient_not_found", patient_id=patient_id)
    assert await opt_out_scopes(sms_sqlite, STOP_PHONE) == []


async def test_start_resubscribes(sms_service: RunningService) -> None:
    service = sms_service
    await book(service, STOP_PHONE, APPOINTMENT_AT)
    phone = SmsPhone(service, STOP_PHONE)
    await phone.replies()
    await phone.text("STOP")

    assert await phone.text("START") == translate("en", "optin.confirmed")
    assert await opt_out_scopes(service, STOP_PHONE) == []

    await advance_to(service, AFTER_BOTH_REMINDERS)
    reminders = await phone.replies()
    assert len(reminders) == 2
    assert all(text.startswith("MyAfya reminder") for text in reminders)


async def test_start_when_subscribed_opens_menu(sms_sqlite: RunningService) -> None:
    await sms_sqlite.register(STOP_PHONE)
    phone = SmsPhone(sms_sqlite, STOP_PHONE)
    assert (await phone.text("start")).startswith(translate("en", "home.title"))


async def test_conversation_goes_on_after_stop(sms_sqlite: RunningService) -> None:
    await sms_sqlite.register(STOP_PHONE)
    phone = SmsPhone(sms_sqlite, STOP_PHONE)
    await phone.text("STOP")
    # Replies to the patient's own messages are essential and still go out.
    assert (await phone.text("BOOK")).startswith(translate("en", "booking.choose_specialty"))
