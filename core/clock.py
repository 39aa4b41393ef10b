"""The one clock that core and the flows read time from.

Tests freeze it; the sandbox moves it forward so trainers can show reminders and expiries.
Every value is a timezone-aware datetime in UTC.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...


class SystemClock:
    """Wall-clock time, optionally shifted forward by the sandbox."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> datetime:
        """Move this clock forward; used by the sandbox only."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; got advance of {seconds} s")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()


class FrozenClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now

    def set(self, at: datetime) -> None:
        self._now = at.astimezone(UTC)
