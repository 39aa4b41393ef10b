"""Rules for when and how a message may go out: essential kinds, priorities, quiet hours,
retry back-off and the channel choice.

Every rule that decides whether an outbound message is sent lives here, so a reader can find it
in one file.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo


class MessageKind(enum.StrEnum):
    """The purpose of an outbox row, stored in `outbox_messages.kind`."""

    BOOKED = "booked"
    CANCELLED = "cancelled"
    MOVED = "moved"
    REMINDER = "reminder"
    PAYMENT_RECEIPT = "payment_receipt"
    REPLY = "reply"  # the next screen of a chat conversation, answering the patient's message


# Messages a patient gets even after opting out: each confirms something the patient did or asked
# for a moment ago (a booking, a cancel, a move, a payment). Reminders and every other message are
# non-essential, so an opt-out suppresses them.
ESSENTIAL_KINDS: Final = frozenset(
    {
        MessageKind.BOOKED,
        MessageKind.CANCELLED,
        MessageKind.MOVED,
        MessageKind.PAYMENT_RECEIPT,
        MessageKind.REPLY,
    }
)


def is_essential(kind: str | None) -> bool:
    """Return whether a message of `kind` ignores opt-outs."""
    return kind in ESSENTIAL_KINDS


class Priority(enum.IntEnum):
    """Lower goes first. URGENT messages ignore quiet hours.

    Booking, cancel and move confirmations are URGENT: the patient has just acted on USSD and
    waits for the SMS, even at 22:00. Reminders are NORMAL.
    """

    URGENT = 0
    NORMAL = 5
    BULK = 9


@dataclass(frozen=True)
class QuietHours:
    """A daily window of local time in which non-urgent messages wait.

    `start` after `end` (21:00-07:00) spans midnight; `start == end` means no quiet hours.
    """

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """Parse "HH:MM-HH:MM"; an empty text means no quiet hours."""
        if not text.strip():
            return cls(time(0, 0), time(0, 0))
        try:
            start_text, end_text = text.split("-")
            start = time.fromisoformat(start_text.strip())
            end = time.fromisoformat(end_text.strip())
        except ValueError:
            raise ValueError(
                f"invalid quiet hours {text!r}: expected HH:MM-HH:MM, e.g. 21:00-07:00"
            ) from None
        return cls(start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0))

    def contains(self, moment: datetime, zone: ZoneInfo) -> bool:
        local = moment.astimezone(zone).time()
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_allowed(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """Return `moment`, or the end of the quiet window it falls in (aware, same zone as
        `moment`)."""
        if not self.contains(moment, zone):
            return moment
        local = moment.astimezone(zone)
        end = datetime.combine(local.date(), self.end, tzinfo=zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=zone)
        return end.astimezone(moment.tzinfo)


NO_QUIET_HOURS: Final = QuietHours(time(0, 0), time(0, 0))


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with full jitter between send attempts, in seconds."""

    base_seconds: float = 30.0
    max_seconds: float = 3600.0

    def delay(self, attempts: int, rng: random.Random | None = None) -> timedelta:
        """Return the wait before the next attempt after `attempts` failed ones.

        The cap doubles from `base_seconds` per attempt up to `max_seconds`, and the wait is drawn
        between half the cap and the cap, so many rows that failed together spread out.
        """
        cap = min(self.max_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        draw = (rng or _RANDOM).uniform(0.5, 1.0)
        return timedelta(seconds=cap * draw)


_RANDOM = random.Random()  # noqa: S311  (jitter, not security)


@dataclass(frozen=True)
class DeliveryPolicy:
    """The settings the pipeline applies, built once from the service settings."""

    zone: ZoneInfo
    reminder_offsets: tuple[timedelta, ...] = (timedelta(hours=24), timedelta(hours=1))
    quiet_hours: QuietHours = NO_QUIET_HOURS
    max_attempts: int = 8
    backoff: Backoff = field(default_factory=Backoff)
    # A `sending` row whose worker has not finished within this time is taken back (see
    # core.notify.pipeline.recover_abandoned).
    lease: timedelta = timedelta(minutes=5)
    # A `queued` row handed to the broker this long ago without being claimed is handed over
    # again: its broker message was lost.
    requeue_after: timedelta = timedelta(minutes=2)
    # Whether WhatsApp can be sent (Twilio is configured), and the message kinds that have an
    # approved WhatsApp template for use outside the 24-hour window.
    whatsapp: bool = False
    whatsapp_templates: frozenset[str] = frozenset()

    def earliest_send(self, due: datetime, priority: int) -> datetime:
        """Return when a message due at `due` may go out, after quiet hours for non-urgent
        ones."""
        if priority <= Priority.URGENT:
            return due
        return self.quiet_hours.next_allowed(due, self.zone)


def preferred_channel(*, patient_id: int | None, phone: str, now: datetime) -> str:
    """Return the channel a notification is planned on.

    Notifications are planned on SMS. When one is about to be sent, `whatsapp_route` may move
    it to WhatsApp, because only then is the patient's 24-hour window known.
    """
    return "sms"


# WhatsApp accepts free-form messages only within 24 hours of the patient's last inbound
# message, and Twilio rejects others with error 63016. The business's own messages do not
# extend the window.
WHATSAPP_WINDOW: Final = timedelta(hours=24)


class Route(enum.StrEnum):
    """The way a message goes out: WhatsApp free-form text, a WhatsApp template, or SMS."""

    WHATSAPP = "whatsapp"
    WHATSAPP_TEMPLATE = "whatsapp_template"
    SMS = "sms"


def whatsapp_route(
    *, kind: str | None, last_inbound_at: datetime | None, now: datetime, policy: DeliveryPolicy
) -> Route:
    """Choose the route of a message to a patient whose last inbound WhatsApp message arrived
    at `last_inbound_at` (None: the patient never wrote on WhatsApp).

    Inside the window free-form text; outside it the approved template for `kind`; else SMS.
    """
    if not policy.whatsapp or last_inbound_at is None:
        return Route.SMS
    if now - last_inbound_at < WHATSAPP_WINDOW:
        return Route.WHATSAPP
    if kind is not None and kind in policy.whatsapp_templates:
        return Route.WHATSAPP_TEMPLATE
    return Route.SMS
