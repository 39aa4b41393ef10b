"""The send actor on dramatiq's StubBroker with a real Worker, on SQLite and a frozen clock.

The provider is a recording sender at the `BlockingSender` port; the sandbox and the real SDK are
covered by the integration tests.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.clock import FrozenClock
from core.db.database import Sql
from core.notify.optouts import opt_out
from core.notify.outbox import DueMessage, enqueue_message
from core.notify.policy import DeliveryPolicy, MessageKind, Priority, QuietHours
from jobs.broker import enqueue_sends
from jobs.system import JobsConfig, JobSystem
from tests.conftest import DEFAULT_NOW

NAIROBI = ZoneInfo("Africa/Nairobi")
PHONE = "+254700000121"


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    retryable: bool = False
    error: str | None = None
    provider_status: str = "Success"
    provider_message_id: str | None = None


@dataclass
class RecordingSender:
    """Returns the queued outcomes in turn, then accepts; records every call.

    `outcomes` go to whichever call comes next, so use them only when one message is in flight.
    With several in flight the worker threads call in any order, so script a message's outcomes
    in `outcomes_by_text`, which take precedence over `outcomes`.
    """

    outcomes: list[Outcome] = field(default_factory=list)
    outcomes_by_text: dict[str, list[Outcome]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send_blocking(self, to: str, text: str) -> Outcome:
        with self.lock:
            self.calls.append((to, text))
            own = self.outcomes_by_text.get(text)
            if own:
                return own.pop(0)
            if self.outcomes:
                return self.outcomes.pop(0)
            return Outcome(True, provider_message_id=f"ATXid_test{len(self.calls):04d}")


@dataclass
class Jobs:
    system: JobSystem
    sender: RecordingSender
    clock: FrozenClock
    database: object

    async def write(self, *, key: str = "test:1", kind: str = MessageKind.REMINDER, **extra) -> int:
        async with self.database.unit_of_work() as uow:  # type: ignore[attr-defined]
            message_id = await enqueue_message(
                uow,
                dedupe_key=key,
                patient_id=None,
                recipient=extra.pop("recipient", PHONE),
                channel="sms",
                template="sms.reminder",
                variables={},
                language="en",
                body=f"body of {key}",
                now=self.clock.now(),
                kind=kind,
                **extra,
            )
        assert message_id is not None
        return message_id

    async def tick_and_wait(self) -> int:
        count = await self.system.scheduler.tick()
        await self.system.dispatcher.drain()
        return count

    async def row(self, message_id: int) -> dict:
        async with self.database.unit_of_work() as uow:  # type: ignore[attr-defined]
            row = await uow.one(
                Sql(
                    "SELECT status, status_reason, attempts, last_error, not_before,"
                    " provider_message_id FROM outbox_messages WHERE id = :id"
                ),
                id=message_id,
            )
        return dict(row)


def policy(**overrides) -> DeliveryPolicy:
    return DeliveryPolicy(zone=NAIROBI, max_attempts=3, **overrides)


async def start_jobs(
    sqlite_url: str,
    database,
    sender: RecordingSender,
    senders: dict[str, RecordingSender] | None = None,
    **overrides,
) -> Jobs:
    """Start a job system whose senders are `senders`, or `sender` on the SMS channel."""
    clock = FrozenClock(DEFAULT_NOW)
    config = JobsConfig(
        database_url=sqlite_url,
        broker_url=None,
        broker_namespace="test",
        policy=policy(**overrides),
        worker_threads=2,
        build_senders=lambda: senders or {"sms": sender},
    )
    system = JobSystem(config, database=database, clock=clock, run_worker=True)
    system.start(run_scheduler=False)
    return Jobs(system, sender, clock, database)


@pytest.fixture
async def jobs(sqlite_url: str, sqlite_database) -> AsyncIterator[Jobs]:
    running = await start_jobs(sqlite_url, sqlite_database, RecordingSender())
    yield running
    await running.system.stop()


async def test_duplicate_job_sends_once(jobs: Jobs) -> None:
    message_id = await jobs.write()
    due = [DueMessage(message_id, 0)] * 3
    await asyncio.to_thread(enqueue_sends, jobs.system.broker, due)
    await jobs.tick_and_wait()  # the scheduler hands the row over a fourth time
    await jobs.system.dispatcher.drain()
    assert len(jobs.sender.calls) == 1
    row = await jobs.row(message_id)
    assert row["status"] == "sent"
    assert row["attempts"] == 1


async def test_dispatch_later_sends_at_once(jobs: Jobs) -> None:
    message_id = await jobs.write(kind=MessageKind.BOOKED, priority=Priority.URGENT)
    jobs.system.dispatcher.dispatch_later(message_id)
    await jobs.system.dispatcher.drain()
    assert jobs.sender.calls == [(PHONE, "body of test:1")]


async def test_dispatch_later_hands_over_a_batch(jobs: Jobs) -> None:
    # Rows committed in one pass of the event loop go to the broker together. A row that is
    # not due yet stays for the scheduler and does not hold back the others.
    due_ids = [
        await jobs.write(key=f"test:{n}", kind=MessageKind.BOOKED, priority=Priority.URGENT)
        for n in range(5)
    ]
    later_id = await jobs.write(
        key="test:later",
        kind=MessageKind.BOOKED,
        priority=Priority.URGENT,
        not_before=jobs.clock.now() + timedelta(hours=1),
    )
    for message_id in [*due_ids[:2], later_id, *due_ids[2:]]:
        jobs.system.dispatcher.dispatch_later(message_id)
    await jobs.system.dispatcher.drain()
    assert sorted(jobs.sender.calls) == [(PHONE, f"body of test:{n}") for n in range(5)]
    assert (await jobs.row(later_id))["status"] == "queued"
    # A second batch after the first one has gone works the same way.
    next_id = await jobs.write(key="test:next", kind=MessageKind.BOOKED, priority=Priority.URGENT)
    jobs.system.dispatcher.dispatch_later(next_id)
    await jobs.system.dispatcher.drain()
    assert jobs.sender.calls[-1] == (PHONE, "body of test:next")


async def test_transient_error_retries_with_backoff(jobs: Jobs) -> None:
    jobs.sender.outcomes.append(Outcome(False, retryable=True, error="HTTP 503"))
    message_id = await jobs.write()
    await jobs.tick_and_wait()
    row = await jobs.row(message_id)
    assert row["status"] == "queued"
    assert row["attempts"] == 1
    assert row["last_error"] == "HTTP 503"
    # The first back-off is 15 to 30 s with jitter.
    assert DEFAULT_NOW + timedelta(seconds=15) <= row["not_before"]
    assert row["not_before"] <= DEFAULT_NOW + timedelta(seconds=30)

    assert await jobs.tick_and_wait() == 0  # not due yet
    jobs.clock.advance(30)
    await jobs.tick_and_wait()
    row = await jobs.row(message_id)
    assert row["status"] == "sent"
    assert row["attempts"] == 2
    assert row["last_error"] is None
    assert len(jobs.sender.calls) == 2


async def test_permanent_error_fails_at_once(jobs: Jobs) -> None:
    jobs.sender.outcomes.append(
        Outcome(False, error="UserInBlacklist (406)", provider_status="UserInBlacklist")
    )
    message_id = await jobs.write()
    await jobs.tick_and_wait()
    row = await jobs.row(message_id)
    assert row["status"] == "failed"
    assert row["status_reason"] == "provider rejected"
    assert row["last_error"] == "UserInBlacklist (406)"
    assert row["attempts"] == 1


async def test_exhausted_attempts_keep_last_error(jobs: Jobs) -> None:
    jobs.sender.outcomes.extend(
        Outcome(False, retryable=True, error=f"HTTP 50{number}") for number in range(3)
    )
    message_id = await jobs.write()
    for _ in range(3):
        await jobs.tick_and_wait()
        jobs.clock.advance(3600)
    row = await jobs.row(message_id)
    assert row["status"] == "failed"
    assert row["status_reason"] == "attempts exhausted"
    assert row["last_error"] == "HTTP 502 (after 3 attempts)"
    assert len(jobs.sender.calls) == 3


async def test_opt_out_suppresses_reminders_only(jobs: Jobs) -> None:
    async with jobs.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        await opt_out(uow, phone=PHONE, now=jobs.clock.now(), source="sms:STOP")
    reminder = await jobs.write(key="test:reminder")
    receipt = await jobs.write(key="test:receipt", kind=MessageKind.PAYMENT_RECEIPT)
    await jobs.tick_and_wait()
    assert jobs.sender.calls == [(PHONE, "body of test:receipt")]
    row = await jobs.row(reminder)
    assert row["status"] == "suppressed"
    assert row["status_reason"] == "opted out (all)"
    assert (await jobs.row(receipt))["status"] == "sent"


async def test_abandoned_send_is_taken_back(jobs: Jobs) -> None:
    message_id = await jobs.write()
    # A worker claims the row and dies before sending: the row stays `sending`.
    from core.notify.pipeline import prepare_send

    async with jobs.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        claimed = await prepare_send(
            uow, message_id=message_id, attempts=0, now=jobs.clock.now(), policy=policy()
        )
    assert claimed is not None
    await jobs.tick_and_wait()
    assert (await jobs.row(message_id))["status"] == "sending"  # the lease still runs

    jobs.clock.advance(5 * 60)
    await jobs.tick_and_wait()
    row = await jobs.row(message_id)
    assert row["status"] == "sent"
    assert row["attempts"] == 2
    assert len(jobs.sender.calls) == 1


async def test_quiet_hours_delay_reminders(sqlite_url: str, sqlite_database) -> None:
    sender = RecordingSender()
    jobs = await start_jobs(
        sqlite_url, sqlite_database, sender, quiet_hours=QuietHours.parse("21:00-07:00")
    )
    try:
        # 22:00 in Nairobi: the reminder waits until 07:00, the confirmation goes now.
        jobs.clock.set(datetime(2027, 2, 1, 19, 0, tzinfo=UTC))
        reminder = await jobs.write(key="test:reminder")
        booked = await jobs.write(
            key="test:booked", kind=MessageKind.BOOKED, priority=Priority.URGENT
        )
        await jobs.tick_and_wait()
        assert sender.calls == [(PHONE, "body of test:booked")]
        row = await jobs.row(reminder)
        assert row["status"] == "queued"
        assert row["attempts"] == 0
        assert row["not_before"] == datetime(2027, 2, 2, 4, 0, tzinfo=UTC)
        assert (await jobs.row(booked))["status"] == "sent"

        jobs.clock.set(datetime(2027, 2, 2, 4, 0, tzinfo=UTC))
        await jobs.tick_and_wait()
        assert len(sender.calls) == 2
    finally:
        await jobs.system.stop()


async def write_reply(jobs: Jobs, number: int) -> int:
    return await jobs.write(
        key=f"test:reply:{number}", kind=MessageKind.REPLY, priority=Priority.URGENT
    )


def sent_texts(sender: RecordingSender) -> list[str]:
    return [text for _, text in sender.calls]


async def test_reply_waits_for_earlier_retry(jobs: Jobs) -> None:
    jobs.sender.outcomes.append(Outcome(False, retryable=True, error="HTTP 503"))
    await write_reply(jobs, 1)
    second = await write_reply(jobs, 2)

    await jobs.tick_and_wait()
    assert sent_texts(jobs.sender) == ["body of test:reply:1"]
    row = await jobs.row(second)
    assert row["status"] == "queued"
    assert row["attempts"] == 0

    jobs.clock.advance(30)  # past the first back-off
    assert await jobs.tick_and_wait() == 1  # the first reply; its worker hands over the second
    assert sent_texts(jobs.sender) == [
        "body of test:reply:1",
        "body of test:reply:1",
        "body of test:reply:2",
    ]
    assert (await jobs.row(second))["status"] == "sent"


async def test_failed_reply_releases_next(jobs: Jobs) -> None:
    jobs.sender.outcomes.append(Outcome(False, error="UserInBlacklist (406)"))
    first = await write_reply(jobs, 1)
    second = await write_reply(jobs, 2)
    third = await write_reply(jobs, 3)

    assert await jobs.tick_and_wait() == 1
    assert sent_texts(jobs.sender) == [f"body of test:reply:{number}" for number in (1, 2, 3)]
    assert (await jobs.row(first))["status"] == "failed"
    assert (await jobs.row(second))["status"] == "sent"
    assert (await jobs.row(third))["status"] == "sent"


async def test_abandoned_reply_holds_next(jobs: Jobs) -> None:
    from core.notify.pipeline import prepare_send

    first = await write_reply(jobs, 1)
    await write_reply(jobs, 2)
    # A worker claims the first reply and dies before sending it.
    async with jobs.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        claimed = await prepare_send(
            uow, message_id=first, attempts=0, now=jobs.clock.now(), policy=policy()
        )
    assert claimed is not None

    assert await jobs.tick_and_wait() == 0
    assert jobs.sender.calls == []

    jobs.clock.advance(5 * 60)  # the lease runs out
    await jobs.tick_and_wait()
    assert sent_texts(jobs.sender) == ["body of test:reply:1", "body of test:reply:2"]


async def test_notice_does_not_wait_for_reply(jobs: Jobs) -> None:
    # Both rows go out at once on the two worker threads, so the 503 is tied to the reply's text.
    jobs.sender.outcomes_by_text["body of test:reply:1"] = [
        Outcome(False, retryable=True, error="HTTP 503")
    ]
    reply = await write_reply(jobs, 1)
    booked = await jobs.write(key="test:booked", kind=MessageKind.BOOKED, priority=Priority.URGENT)

    await jobs.tick_and_wait()

    assert sorted(sent_texts(jobs.sender)) == ["body of test:booked", "body of test:reply:1"]
    assert (await jobs.row(reply))["status"] == "queued"
    assert (await jobs.row(booked))["status"] == "sent"


async def test_provider_picks_its_sender(sqlite_url: str, sqlite_database) -> None:
    default, twilio = RecordingSender(), RecordingSender()
    jobs = await start_jobs(
        sqlite_url, sqlite_database, default, senders={"sms": default, "sms:twilio": twilio}
    )
    try:
        await jobs.write(key="test:twilio", kind=MessageKind.REPLY, provider="twilio")
        await jobs.write(key="test:default", recipient="+254700000122", kind=MessageKind.REPLY)
        await jobs.tick_and_wait()
    finally:
        await jobs.system.stop()
    assert sent_texts(twilio) == ["body of test:twilio"]
    assert sent_texts(default) == ["body of test:default"]


async def test_provider_without_sender_uses_default(jobs: Jobs) -> None:
    message_id = await jobs.write(kind=MessageKind.REPLY, provider="twilio")

    await jobs.tick_and_wait()

    assert sent_texts(jobs.sender) == ["body of test:1"]
    assert (await jobs.row(message_id))["status"] == "sent"
