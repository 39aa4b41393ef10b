"""Send outbox rows through a channel's sender once their transaction has committed.

NOTE: no loop re-sends queued rows yet. A row put back to `queued` after a transient failure
keeps its `last_error` and waits until something dispatches its id again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core.clock import Clock
from core.notify.outbox import claim_message, record_failure, record_sent

log = logging.getLogger(__name__)


class SendOutcome(Protocol):
    @property
    def provider_message_id(self) -> str | None: ...

    @property
    def provider_status(self) -> str: ...

    @property
    def accepted(self) -> bool: ...

    @property
    def retryable(self) -> bool: ...

    @property
    def error(self) -> str | None: ...


class Sender(Protocol):
    async def send(self, to: str, text: str) -> SendOutcome: ...


@dataclass
class OutboxDispatcher:
    database: Any
    clock: Clock
    senders: Mapping[str, Sender]

    def __post_init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def dispatch_later(self, message_id: int) -> None:
        """Start sending in the background so the caller's reply is not held up."""
        task = asyncio.get_running_loop().create_task(self.send_now(message_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every background send; used at shutdown and in tests."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def send_now(self, message_id: int) -> None:
        async with self.database.unit_of_work() as uow:
            message = await claim_message(uow, message_id=message_id, now=self.clock.now())
        if message is None:
            return
        sender = self.senders.get(message.channel)
        if sender is None:
            await self._fail(message_id, None, f"no sender for channel {message.channel}", False)
            return
        try:
            outcome = await sender.send(message.recipient, message.body)
        except Exception as exc:  # a sender bug must not leave the row in `sending`
            log.exception("outbox message %s: sender raised", message_id)
            await self._fail(message_id, None, f"sender error: {type(exc).__name__}", True)
            return
        if outcome.accepted:
            async with self.database.unit_of_work() as uow:
                await record_sent(
                    uow,
                    message_id=message_id,
                    provider_message_id=outcome.provider_message_id,
                    provider_status=outcome.provider_status,
                    now=self.clock.now(),
                )
            log.info("outbox message %s sent via %s", message_id, message.channel)
            return
        await self._fail(
            message_id, outcome.provider_status, outcome.error or "rejected", outcome.retryable
        )

    async def _fail(
        self, message_id: int, provider_status: str | None, error: str, retryable: bool
    ) -> None:
        log.warning("outbox message %s not sent: %s (retryable=%s)", message_id, error, retryable)
        async with self.database.unit_of_work() as uow:
            await record_failure(
                uow,
                message_id=message_id,
                provider_status=provider_status,
                error=error,
                retryable=retryable,
                now=self.clock.now(),
            )
