"""The due-work scheduler: finds outbox rows that are due and hands them to the broker.

Each tick takes back rows abandoned mid-send, then claims due rows in batches (`FOR UPDATE SKIP
LOCKED` on PostgreSQL, so several schedulers take disjoint batches) and enqueues one send job per
row after the claim commits. A row whose job vanished (a broker restart, a crash between commit
and enqueue) is claimed again once `requeue_after` has passed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from core.clock import Clock
from core.notify.outbox import DueMessage, claim_due
from core.notify.pipeline import recover_abandoned
from core.notify.policy import DeliveryPolicy

log = logging.getLogger(__name__)

Enqueue = Callable[[Sequence[DueMessage]], Awaitable[None]]

DEFAULT_BATCH_SIZE = 500
DEFAULT_INTERVAL_SECONDS = 1.0


class DueWorkScheduler:
    def __init__(
        self,
        *,
        database: object,
        clock: Clock,
        policy: DeliveryPolicy,
        enqueue: Enqueue,
        batch_size: int = DEFAULT_BATCH_SIZE,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        self._database = database
        self._clock = clock
        self._policy = policy
        self._enqueue = enqueue
        self._batch_size = batch_size
        self._interval = interval_seconds

    async def tick(self) -> int:
        """Hand every row due now to the broker; return how many were handed over."""
        now = self._clock.now()
        total = 0
        first = True
        while True:
            # One transaction per batch, the first also taking back abandoned rows, so an idle
            # tick costs SQLite's single write lock once.
            async with self._database.unit_of_work() as uow:  # type: ignore[attr-defined]
                if first:
                    await recover_abandoned(uow, now=now, policy=self._policy)
                    first = False
                due = await claim_due(
                    uow,
                    now=now,
                    requeue_before=now - self._policy.requeue_after,
                    limit=self._batch_size,
                )
            if not due:
                break
            # A crash here leaves the batch marked as handed over; `requeue_after` recovers it.
            await self._enqueue(due)
            total += len(due)
            if len(due) < self._batch_size:
                break
        if total:
            log.info("handed due outbox messages to the broker", extra={"count": total})
        return total

    async def run_forever(self) -> None:
        """Tick every `interval_seconds` until cancelled; a failed tick is logged and retried."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox scheduler tick failed; retrying")
            await asyncio.sleep(self._interval)
