"""The ports between the outbox and the code that moves its rows to providers.

The job system (`jobs/`) implements them: after a transaction that wrote outbox rows commits, the
caller hands each new row id to an `OutboxDispatcher`, which passes it to the broker. Rows that
are not yet due, or whose hand-over is lost, are picked up by the due-work scheduler, so a
dispatcher may drop an id without losing the message.
"""

from __future__ import annotations

from typing import Protocol

from core.notify.outbox import OutboundMessage
from core.notify.pipeline import SendOutcome

__all__ = ["BlockingSender", "OutboxDispatcher", "SendOutcome"]


class OutboxDispatcher(Protocol):
    def dispatch_later(self, message_id: int) -> None:
        """Hand a committed row to the broker in the background, so the caller is not held up."""
        ...

    async def drain(self) -> None:
        """Wait until every handed-over message has been processed; for shutdown and tests."""
        ...


class BlockingSender(Protocol):
    """A channel's sender as worker threads call it: one message, blocking until the provider
    responds."""

    def send_blocking(self, to: str, text: str) -> SendOutcome: ...


class BlockingMessageSender(Protocol):
    """A sender that needs the whole outbox row, e.g. to draw a reply's options as buttons.

    The worker prefers `send_message_blocking` when a sender has it.
    """

    def send_message_blocking(self, message: OutboundMessage) -> SendOutcome: ...
