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
    leaves the row queued, and the scheduler hands it over on a later tick.
    """

    def __init__(
        self, *, database: object, clock: Clock, broker: Broker, worker: Worker | None = None
    ) -> None:
        self._database = database
        self._clock = clock
        self._broker = broker
        self._worker = worker
        self._tasks: set[asyncio.Task[None]] = set()

    def dispatch_later(self, message_id: int) -> None:
        task = asyncio.get_running_loop().create_task(self._hand_over(message_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hand_over(self, message_id: int) -> None:
        try:
            async with self._database.unit_of_work() as uow:  # type: ignore[attr-defined]
                due = await mark_enqueued(uow, message_id=message_id, now=self._clock.now())
            if due is not None:
                await self.enqueue([due])
        except Exception:
            log.exception(
                "handing outbox message %s to the broker failed; the scheduler will retry",
                message_id,
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
