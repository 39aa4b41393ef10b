"""Hand outbox rows to the broker right after the transaction that wrote them commits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

from dramatiq import Broker, Worker

from core.clock import Clock
from core.notify.outbox import DueMessage, mark_enqueued
from jobs.broker import QUEUE_NAME, enqueue_sends

log = logging.getLogger(__name__)

JOIN_TIMEOUT_MS: Final = 120_000


class BrokerDispatcher:
    """The host's `OutboxDispatcher`: marks a due row as handed over and enqueues its send job.

    Both steps run in a background task, so a USSD reply never waits for the broker. A failure
    leaves the row queued, and the scheduler hands it over on a later tick. Rows committed by
    requests that the event loop runs in the same pass share one transaction and one trip to
    the broker's thread, which under load is most of them.
    """

    def __init__(
        self, *, database: object, clock: Clock, broker: Broker, worker: Worker | None = None
    ) -> None:
        self._database = database
        self._clock = clock
        self._broker = broker
        self._worker = worker
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: list[int] = []
        self._batch_started = False

    def dispatch_later(self, message_id: int) -> None:
        self._pending.append(message_id)
        if self._batch_started:
            return
        self._batch_started = True
        task = asyncio.get_running_loop().create_task(self._hand_over_pending())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hand_over_pending(self) -> None:
        # One pass of the event loop, so that other requests that just committed join the batch.
        await asyncio.sleep(0)
        message_ids, self._pending = self._pending, []
        self._batch_started = False
        try:
            async with self._database.unit_of_work() as uow:  # type: ignore[attr-defined]
                now = self._clock.now()
                due = [
                    found
                    for message_id in message_ids
                    if (found := await mark_enqueued(uow, message_id=message_id, now=now))
                    is not None
                ]
            if due:
                await self.enqueue(due)
        except Exception:
            log.exception(
                "handing %d outbox messages to the broker failed; the scheduler will retry",
                len(message_ids),
            )

    async def enqueue(self, messages: Sequence[DueMessage]) -> None:
        """Enqueue send jobs without blocking the event loop on the broker's network calls."""
        await asyncio.to_thread(enqueue_sends, self._broker, messages)

    async def drain(self) -> None:
        """Wait for pending hand-overs and, with an in-process worker, for every queued job."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._worker is not None:
            await asyncio.to_thread(self._join_worker)

    async def settle(self) -> None:
        """Wait for pending hand-overs only; for shutdown."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _join_worker(self) -> None:
        assert self._worker is not None
        self._broker.join(QUEUE_NAME, timeout=JOIN_TIMEOUT_MS)
        self._worker.join()
