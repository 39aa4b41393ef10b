"""In-memory state shared by the provider fakes: accepted messages, injected faults, blacklist.

Handlers run on the event loop while tests and senders may call in from worker threads, so every
method takes one lock.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class SandboxMessage:
    """One message a fake accepted for one recipient."""

    channel: str
    provider: str
    to: str
    text: str
    provider_message_id: str
    sent_at: str  # ISO 8601 in UTC
    # The quick-reply buttons or list-picker items of an interactive WhatsApp message.
    interactive: dict[str, Any] | None = None


@dataclass(slots=True)
class SandboxFault:
    """What the next requests to a fake suffer: a delay, an HTTP error, or both."""

    http_status: int | None
    delay_seconds: float
    remaining: int


class SandboxStore:
    """Messages the fakes accepted (oldest first), pending faults and blacklisted numbers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: builtins.list[SandboxMessage] = []
        self._faults: dict[str, SandboxFault] = {}
        self._delays: set[asyncio.Event] = set()
        self._blacklist: set[str] = set()

    def add(
        self,
        *,
        channel: str,
        provider: str,
        to: str,
        text: str,
        provider_message_id: str,
        sent_at: datetime,
        interactive: dict[str, Any] | None = None,
    ) -> SandboxMessage:
        """Record one accepted message. `sent_at` must be timezone-aware."""
        if sent_at.tzinfo is None:
            raise ValueError("sent_at must be a timezone-aware datetime")
        message = SandboxMessage(
            channel=channel,
            provider=provider,
            to=to,
            text=text,
            provider_message_id=provider_message_id,
            sent_at=sent_at.astimezone(UTC).isoformat(),
            interactive=interactive,
        )
        with self._lock:
            self._messages.append(message)
        return message

    def list(self) -> builtins.list[SandboxMessage]:
        """Return a copy of the accepted messages, newest last."""
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        """Forget every accepted message. Faults and the blacklist stay."""
        with self._lock:
            self._messages.clear()

    def inject_fault(
        self, service: str, http_status: int | None, count: int, delay_seconds: float = 0.0
    ) -> None:
        """Make the next `count` requests to `service` wait `delay_seconds`, then fail with
        `http_status` when one is given.

        A new fault for the same service replaces any that is still pending.
        """
        if count < 1:
            raise ValueError(f"fault count must be at least 1; got {count}")
        with self._lock:
            self._faults[service] = SandboxFault(http_status, delay_seconds, remaining=count)

    def take_fault(self, service: str) -> SandboxFault | None:
        """Use up one pending fault of `service` and return it, or None if none is pending."""
        with self._lock:
            fault = self._faults.get(service)
            if fault is None:
                return None
            fault.remaining -= 1
            if fault.remaining == 0:
                del self._faults[service]
            return SandboxFault(fault.http_status, fault.delay_seconds, remaining=1)

    async def wait_injected_delay(self, seconds: float) -> None:
        """Wait `seconds` on the event loop, or less when `end_faults` is called meanwhile."""
        ended = asyncio.Event()
        with self._lock:
            self._delays.add(ended)
        try:
            await asyncio.wait_for(ended.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._delays.discard(ended)

    def waiting_delays(self) -> int:
        """Return the number of requests waiting out an injected delay now."""
        with self._lock:
            return len(self._delays)

    def end_faults(self) -> None:
        """Forget every pending fault and let the requests waiting out a delay go on now.

        Call it on the event loop the fakes run on.
        """
        with self._lock:
            self._faults.clear()
            waiting = list(self._delays)
        for ended in waiting:
            ended.set()

    def add_to_blacklist(self, phone: str) -> None:
        """Mark an E.164 number as one that has opted out, so sends to it fail."""
        with self._lock:
            self._blacklist.add(phone)

    def is_blacklisted(self, phone: str) -> bool:
        with self._lock:
            return phone in self._blacklist
