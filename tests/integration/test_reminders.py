"""Appointment reminders through a real dramatiq worker on Redis, with the sandbox clock.

The dramatiq worker runs in the test process on the app's Redis broker and shares the frozen
clock, so `POST /sandbox/clock` moves time for the scheduler, the worker and the SMS fake alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.engine.commands import ChangeLanguage
from core.clock import FrozenClock
from core.db.database import Sql
from core.i18n import local_day_and_time
from tests.integration.conftest import RunningService, start_service
from tests.integration.notify_setup import (
    NAIROBI,
    book,
    cancel,
    move,
    nairobi_time,
    outbox_rows,
    run_command,
)

PHONE = "+254700000111"
OTHER_PHONE = "+254700000112"


@pytest.fixture
async def service_on_redis(
    database_url: str, redis_broker: dict[str, str]
) -> AsyncIterator[RunningService]:
    # Sunday 10 January 2027, 09:00 in Nairobi.
    clock = FrozenClock(datetime(2027, 1, 10, 6, 0, tzinfo=UTC))
    running = await start_service(database_url, clock, worker_threads=2, **redis_broker)
    yield running
    await running.stop()


async def advance_to(service: RunningService, moment: datetime) -> None:
    seconds = (moment - service.clock.now()).total_seconds()
    assert seconds >= 0, f"the clock is already past {moment}"
    await service.advance(seconds)


async def test_reminder_shows_local_time(service_on_redis: RunningService) -> None:
    service = service_on_redis
    starts_at = nairobi_time(2027, 1, 15, 9)
    assert starts_at == datetime(2027, 1, 15, 6, 0, tzinfo=UTC)
    appointment = await book(service, PHONE, starts_at)
    assert len(await service.sent_sms()) == 1  # the confirmation

    await advance_to(service, datetime(2027, 1, 14, 6, 0, tzinfo=UTC))
    day_before = await service.sent_sms()
    assert len(day_before) == 2  # the confirmation and the 24-hour reminder
    assert day_before[1]["sent_at"] == "2027-01-14T06:00:00+00:00"

    await advance_to(service, datetime(2027, 1, 15, 4, 59, 59, tzinfo=UTC))
    assert len(await service.sent_sms()) == 2

    await advance_to(service, datetime(2027, 1, 15, 5, 0, tzinfo=UTC))
    messages = await service.sent_sms()
    assert len(messages) == 3
    reminder = messages[2]
    assert reminder["to"] == PHONE
    assert reminder["sent_at"] == "2027-01-15T05:00:00+00:00"
    assert "Fri 15 Jan 09:00" in reminder["text"]
    assert "06:00" not in reminder["text"]
    assert appointment.reference in reminder["text"]
    assert "*384*12345#" in reminder["text"]


async def test_reminder_in_kiswahili(service_on_redis: RunningService) -> None:
    service = service_on_redis
    await book(service, PHONE, nairobi_time(2027, 1, 15, 9), language="sw")
    assert len(await service.sent_sms()) == 1  # the confirmation
    await advance_to(service, datetime(2027, 1, 15, 5, 0, tzinfo=UTC))
    reminders = [m["text"] for m in (await service.sent_sms())[1:]]
    assert len(reminders) == 2  # the 24-hour one is late after the jump, but not stale
    when = local_day_and_time(nairobi_time(2027, 1, 15, 9), NAIROBI, "sw")
    for text in reminders:
        assert text.startswith("MyAfya: Ukumbusho")
        assert when in text
        assert "06:00" not in text


async def test_reminder_follows_language_change(service_on_redis: RunningService) -> None:
    service = service_on_redis
    appointment = await book(service, PHONE, nairobi_time(2027, 1, 15, 9))
    assert len(await service.sent_sms()) == 1  # the confirmation, in English

    await run_command(service, PHONE, appointment.patient_id, ChangeLanguage("sw"), "en")
    await advance_to(service, datetime(2027, 1, 14, 6, 0, tzinfo=UTC))

    reminder = (await service.sent_sms())[1]
    assert reminder["text"].startswith("MyAfya: Ukumbusho")
    assert local_day_and_time(nairobi_time(2027, 1, 15, 9), NAIROBI, "sw") in reminder["text"]


async def test_cancelled_appointment_gets_no_reminder(service_on_redis: RunningService) -> None:
    service = service_on_redis
    appointment = await book(service, PHONE, nairobi_time(2027, 1, 20, 9))
    await advance_to(service, nairobi_time(2027, 1, 19, 12))
    day_before = [m["text"] for m in await service.sent_sms()]
    assert len(day_before) == 2  # confirmation, then the 24-hour reminder at 09:00 on the 19th

    await cancel(service, appointment, PHONE)
    await advance_to(service, nairobi_time(2027, 1, 21, 9))
    texts = [m["text"] for m in await service.sent_sms()]
    assert len(texts) == 3
    assert "is cancelled" in texts[2]
    rows = await outbox_rows(service)
    revoked = [row for row in rows if row["kind"] == "reminder" and row["status"] == "suppressed"]
    assert len(revoked) == 1
    assert revoked[0]["status_reason"] == "appointment cancelled"


async def test_moved_appointment_reminds_once(service_on_redis: RunningService) -> None:
    service = service_on_redis
    appointment = await book(service, PHONE, nairobi_time(2027, 1, 20, 9))
    await advance_to(service, nairobi_time(2027, 1, 19, 12))
    sent_before_move = len(await service.sent_sms())

    await move(service, appointment, PHONE, nairobi_time(2027, 1, 20, 11))
    await advance_to(service, nairobi_time(2027, 1, 20, 8))  # the old 1-hour reminder time
    await advance_to(service, nairobi_time(2027, 1, 20, 10))
    await advance_to(service, nairobi_time(2027, 1, 20, 12))
    after_move = (await service.sent_sms())[sent_before_move:]
    assert len(after_move) == 2
    assert "is now on" in after_move[0]["text"]
    reminder = after_move[1]
    assert reminder["sent_at"] == nairobi_time(2027, 1, 20, 10).isoformat()
    assert "Wed 20 Jan 11:00" in reminder["text"]
    assert "09:00" not in reminder["text"]


async def test_reminder_rereads_the_appointment(service_on_redis: RunningService) -> None:
    service = service_on_redis
    cancelled = await book(service, PHONE, nairobi_time(2027, 1, 20, 9))
    moved = await book(service, OTHER_PHONE, nairobi_time(2027, 1, 20, 10))
    # Change both appointments behind the host's back, as a change racing with a claimed
    # reminder would: the reminder rows stay queued, and the send job must notice.
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        await uow.execute(
            Sql("UPDATE appointments SET status = 'cancelled' WHERE id = :id"), id=cancelled.id
        )
        await uow.execute(
            Sql("UPDATE appointments SET starts_at = :starts_at WHERE id = :id"),
            id=moved.id,
            starts_at=nairobi_time(2027, 1, 20, 16),
        )
    await advance_to(service, nairobi_time(2027, 1, 20, 12))

    texts = [message["text"] for message in await service.sent_sms()]
    assert len(texts) == 2, texts  # only the two confirmations
    reasons = sorted(
        row["status_reason"] for row in await outbox_rows(service) if row["kind"] == "reminder"
    )
    assert reasons == [
        "appointment cancelled (cancelled)",
        "appointment cancelled (cancelled)",
        "appointment moved",
        "appointment moved",
    ]


async def test_same_day_booking_skips_past_reminders(service_on_redis: RunningService) -> None:
    service = service_on_redis
    await advance_to(service, nairobi_time(2027, 1, 20, 7, 30))
    await book(service, PHONE, nairobi_time(2027, 1, 20, 11))
    reminders = [row for row in await outbox_rows(service) if row["kind"] == "reminder"]
    assert len(reminders) == 1
    assert reminders[0]["not_before"] == nairobi_time(2027, 1, 20, 10)

    await advance_to(service, nairobi_time(2027, 1, 20, 10, 30))
    await book(service, OTHER_PHONE, nairobi_time(2027, 1, 20, 11, 30))
    reminders = [row for row in await outbox_rows(service) if row["kind"] == "reminder"]
    assert len(reminders) == 1  # at 10:30 for 11:30, both reminder times have passed

    texts = [m["text"] for m in await service.sent_sms() if m["to"] == PHONE]
    assert len(texts) == 2
    # Worker threads may deliver the confirmation and the reminder in either order.
    assert sum(text.startswith("MyAfya reminder") for text in texts) == 1
