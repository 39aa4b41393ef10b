"""Per-thread resources for send jobs: an event loop and a database connection of their own.

Actors run in dramatiq's worker threads while the data layer is async. Each thread gets one event
loop and one `Database` (a sqlite3 connection or a small asyncpg pool) on its first job, keeps them
for every later job, and closes them when the worker stops the thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dramatiq import Broker
from dramatiq.middleware import Middleware

from core.clock import Clock
from core.db.database import DatabaseUrl, PostgresDatabase, SqliteDatabase
from core.notify import outbox, pipeline
from core.notify.dispatch import BlockingSender, SendOutcome
from core.notify.outbox import DueMessage, MessageStatus, OutboundMessage
from core.notify.policy import DeliveryPolicy

log = logging.getLogger(__name__)

_Result = TypeVar("_Result")

# Each worker thread runs one statement at a time, so a second pooled connection only covers a
# connection being replaced.
THREAD_POOL_SIZE = 2


@dataclass(frozen=True)
class SenderFailure:
    """A SendOutcome for a sender that raised instead of returning."""

    error: str
    provider_message_id: str | None = None
    provider_status: str = "SenderError"
    accepted: bool = False
    retryable: bool = True


@dataclass
class _ThreadResources:
    loop: asyncio.AbstractEventLoop
    database: SqliteDatabase | PostgresDatabase
    senders: Mapping[str, BlockingSender]

    def run(self, coroutine: Coroutine[Any, Any, _Result]) -> _Result:
        return self.loop.run_until_complete(coroutine)


async def open_thread_database(url: str) -> SqliteDatabase | PostgresDatabase:
    parsed = DatabaseUrl.parse(url)
    if parsed.sqlite_path is not None:
        return SqliteDatabase(parsed.sqlite_path)
    assert parsed.postgres_dsn is not None
    return await PostgresDatabase.connect(
        parsed.postgres_dsn, min_size=1, max_size=THREAD_POOL_SIZE
    )


class WorkerRuntime:
    """Runs send jobs on per-thread resources; shared by every worker thread of a process.

    `build_senders` returns each thread's senders keyed by channel (`sms`), and by
    `channel:provider` (`sms:twilio`) for a provider other than the channel's default. A row
    goes to the sender of its provider, or to its channel's sender when that provider has none.
    `enqueue` puts send jobs on the broker; with it, a worker that finishes a reply hands the
    next reply of the same chat to the broker at once instead of leaving it to the scheduler.
    """

    def __init__(
        self,
        *,
        database_url: str,
        clock: Clock,
        policy: DeliveryPolicy,
        build_senders: Callable[[], Mapping[str, BlockingSender]],
        enqueue: Callable[[Sequence[DueMessage]], None] | None = None,
    ) -> None:
        self._database_url = database_url
        self._clock = clock
        self._policy = policy
        self._build_senders = build_senders
        self._enqueue = enqueue
        self._local = threading.local()

    def _resources(self) -> _ThreadResources:
        resources: _ThreadResources | None = getattr(self._local, "resources", None)
        if resources is None:
            loop = asyncio.new_event_loop()
            database = loop.run_until_complete(open_thread_database(self._database_url))
            resources = _ThreadResources(loop, database, self._build_senders())
            self._local.resources = resources
        return resources

    def close_thread(self) -> None:
        """Close this thread's senders, database and event loop, if it opened them.

        A sender with a `close` method (Telegram's keeps an event loop per thread) gets it called.
        """
        resources: _ThreadResources | None = getattr(self._local, "resources", None)
        if resources is None:
            return
        self._local.resources = None
        for channel, sender in resources.senders.items():
            close = getattr(sender, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception:
                log.exception("closing the %s sender of a worker thread failed", channel)
        try:
            resources.run(resources.database.close())
        finally:
            resources.loop.close()

    def send(self, message_id: int, attempts: int) -> MessageStatus | None:
        """Make one send attempt of an outbox row, if the row is still waiting for this job.

        Return the row's new status, or None when the job had nothing to do.
        """
        resources = self._resources()
        message = resources.run(self._prepare(resources, message_id, attempts))
        if message is None:
            return None

        sender = _sender_for(resources.senders, message)
        outcome: SendOutcome
        if sender is None:
            outcome = SenderFailure(f"no sender for channel {message.channel}", retryable=False)
        else:
            try:
                send_message = getattr(sender, "send_message_blocking", None)
                if send_message is not None:
                    outcome = send_message(message)
                else:
                    outcome = sender.send_blocking(message.recipient, message.body)
            except Exception as exc:  # a sender bug must not leave the row in `sending`
                log.exception("outbox message %s: sender raised", message_id)
                outcome = SenderFailure(f"sender error: {type(exc).__name__}")

        status, next_message = resources.run(self._finish(resources, message, outcome))
        log.info(
            "outbox message %s: %s",
            message_id,
            status.value,
            extra={"channel": message.channel, "provider": message.provider},
        )
        if next_message is not None and self._enqueue is not None:
            try:
                self._enqueue([next_message])
            except Exception:
                # The row stays queued and marked as handed over; the scheduler takes it again
                # after `requeue_after`.
                log.exception(
                    "handing outbox message %s to the broker after %s failed",
                    next_message.id,
                    message_id,
                )
        return status

    async def _prepare(
        self, resources: _ThreadResources, message_id: int, attempts: int
    ) -> OutboundMessage | None:
        async with resources.database.unit_of_work() as uow:
            return await pipeline.prepare_send(
                uow,
                message_id=message_id,
                attempts=attempts,
                now=self._clock.now(),
                policy=self._policy,
            )

    async def _finish(
        self,
        resources: _ThreadResources,
        message: OutboundMessage,
        outcome: SendOutcome,
    ) -> tuple[MessageStatus, DueMessage | None]:
        """Record the outcome; return the row's status and the next row of its chat, if this
        one has finished and the next may go now."""
        now = self._clock.now()
        async with resources.database.unit_of_work() as uow:
            status = await pipeline.finish_send(
                uow, message=message, outcome=outcome, now=now, policy=self._policy
            )
            next_message = None
            if status is not MessageStatus.QUEUED and message.ordering_key is not None:
                next_message = await outbox.hand_over_next(
                    uow, ordering_key=message.ordering_key, now=now
                )
        return status, next_message


def _sender_for(
    senders: Mapping[str, BlockingSender], message: OutboundMessage
) -> BlockingSender | None:
    if message.provider is not None:
        sender = senders.get(f"{message.channel}:{message.provider}")
        if sender is not None:
            return sender
    return senders.get(message.channel)


class ThreadResourceCleanup(Middleware):
    """Closes a worker thread's database and loop when dramatiq stops the thread."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self._runtime = runtime

    def before_worker_thread_shutdown(self, broker: Broker, thread: threading.Thread) -> None:
        try:
            self._runtime.close_thread()
        except Exception:
            log.exception("closing a worker thread's database failed")
