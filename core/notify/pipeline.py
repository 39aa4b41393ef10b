"""One send attempt of an outbox row, in two short transactions around the provider call.

`prepare_send` claims the row and decides whether it may still go out: opt-outs, the
appointment a reminder is about, quiet hours. It also chooses the route of a WhatsApp row or
notice and the provider of an SMS row. The caller then sends through that channel's sender,
outside any transaction, and `finish_send` records the outcome: sent, retried later with back-off,
or failed with the reason. `recover_abandoned` takes back rows whose worker died mid-send.

NOTE: delivery is at least once in one window. A worker may die after the provider accepted a
message but before `finish_send` commits, which leaves the row in `sending`. When its lease
expires the row is queued and sent again, so the patient may get it twice. The other choice,
failing such rows for an operator, would lose reminders whenever a worker restarts. Africa's
Talking offers no idempotency key that would close the window.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from core.db.database import Sql, UnitOfWork
from core.notify import outbox, whatsapp_window
from core.notify.delivery import apply_stored_reports
from core.notify.outbox import MessageStatus, OutboundMessage
from core.notify.policy import DeliveryPolicy, MessageKind, is_essential
from core.notify.whatsapp_window import SMS_CHANNEL

log = logging.getLogger(__name__)

REASON_OPTED_OUT = "opted out"
REASON_APPOINTMENT_CANCELLED = "appointment cancelled"
REASON_APPOINTMENT_MOVED = "appointment moved"
REASON_APPOINTMENT_STARTED = "appointment already started"
REASON_APPOINTMENT_MISSING = "appointment not found"
REASON_PERMANENT_ERROR = "provider rejected"
REASON_ATTEMPTS_EXHAUSTED = "attempts exhausted"
REASON_NO_SENDER = "no sender for channel"

_SELECT_APPOINTMENT = Sql("SELECT status, starts_at FROM appointments WHERE id = :id")


class SendOutcome(Protocol):
    """The outcome a channel's sender reports for one message, e.g. bot.channels.sms's
    `SendResult`."""

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


@dataclass(frozen=True)
class Skip:
    """Why a claimed row must not be sent now: it ends with `status`, or waits until
    `not_before`."""

    status: MessageStatus | None
    reason: str
    not_before: datetime | None = None


async def prepare_send(
    uow: UnitOfWork, *, message_id: int, attempts: int, now: datetime, policy: DeliveryPolicy
) -> OutboundMessage | None:
    """Claim the row for a send attempt, or return None when this job must not send it.

    None comes back for a duplicate job, a job whose row was tried since, a message that an
    opt-out suppresses, a stale reminder and a message that quiet hours hold back. The last
    three also update the row.
    """
    message = await outbox.claim_for_send(
        uow, message_id=message_id, attempts=attempts, now=now, lease_until=now + policy.lease
    )
    if message is None:
        return None
    skip = await _reason_to_skip(uow, message, now, policy)
    if skip is None:
        routed = await whatsapp_window.route_for_send(uow, message, now=now, policy=policy)
        return await _choose_sms_provider(uow, routed, now)
    if skip.status is None:
        assert skip.not_before is not None
        await outbox.record_deferred(uow, message=message, not_before=skip.not_before, now=now)
        log.info("outbox message %s deferred: %s", message.id, skip.reason)
    else:
        await outbox.record_final(
            uow, message=message, status=skip.status, reason=skip.reason, now=now
        )
        log.info("outbox message %s %s: %s", message.id, skip.status.value, skip.reason)
    return None


async def _reason_to_skip(
    uow: UnitOfWork, message: OutboundMessage, now: datetime, policy: DeliveryPolicy
) -> Skip | None:
    if message.kind == MessageKind.REMINDER:
        stale = await _stale_reminder(uow, message, now)
        if stale is not None:
            return stale
    if not is_essential(message.kind) and message.opted_out_scope is not None:
        return Skip(MessageStatus.SUPPRESSED, f"{REASON_OPTED_OUT} ({message.opted_out_scope})")
    allowed = policy.earliest_send(now, message.priority)
    if allowed > now:
        return Skip(None, "quiet hours", not_before=allowed)
    return None


async def _choose_sms_provider(
    uow: UnitOfWork, message: OutboundMessage, now: datetime
) -> OutboundMessage:
    """Send an SMS row without a provider, such as a confirmation or a reminder, through the
    provider of the patient's last inbound SMS. A number that never wrote keeps the default."""
    if message.channel != SMS_CHANNEL or message.provider is not None:
        return message
    provider = await outbox.latest_sms_provider(uow, phone=message.recipient)
    if provider is None:
        return message
    await outbox.record_provider(uow, message=message, provider=provider, now=now)
    return replace(message, provider=provider)


async def _stale_reminder(uow: UnitOfWork, message: OutboundMessage, now: datetime) -> Skip | None:
    """Re-read the appointment, so a reminder never announces a cancelled or moved one."""
    if message.appointment_id is None:
        return None
    row = await uow.one(_SELECT_APPOINTMENT, id=message.appointment_id)
    if row is None:
        return Skip(MessageStatus.EXPIRED, REASON_APPOINTMENT_MISSING)
    if row["status"] != "booked":
        return Skip(MessageStatus.SUPPRESSED, f"{REASON_APPOINTMENT_CANCELLED} ({row['status']})")
    if row["starts_at"] != message.appointment_starts_at:
        return Skip(MessageStatus.SUPPRESSED, REASON_APPOINTMENT_MOVED)
    if row["starts_at"] <= now:
        return Skip(MessageStatus.EXPIRED, REASON_APPOINTMENT_STARTED)
    return None


async def finish_send(
    uow: UnitOfWork,
    *,
    message: OutboundMessage,
    outcome: SendOutcome,
    now: datetime,
    policy: DeliveryPolicy,
) -> MessageStatus:
    """Record the provider's response and return the row's new status."""
    if outcome.accepted:
        early_reports = await outbox.record_sent(
            uow,
            message=message,
            provider_message_id=outcome.provider_message_id,
            provider_status=outcome.provider_status,
            now=now,
        )
        if early_reports is None:
            # The lease ran out while the provider call was slow, and another attempt took
            # the row: the patient may get the message twice.
            log.warning("outbox message %s was sent after its lease expired", message.id)
            return MessageStatus.SENT
        if early_reports and outcome.provider_message_id:
            status = await apply_stored_reports(
                uow, message_id=message.id, provider_message_id=outcome.provider_message_id, now=now
            )
            if status == MessageStatus.FAILED:
                # A status callback with 63016 that arrived before the send was recorded.
                await whatsapp_window.fall_back_after_window_error(
                    uow, message_id=message.id, error_code=None, now=now, policy=policy
                )
            return status
        return MessageStatus.SENT

    error = outcome.error or "rejected by the provider"
    if not outcome.retryable:
        await outbox.record_final(
            uow,
            message=message,
            status=MessageStatus.FAILED,
            reason=REASON_PERMANENT_ERROR,
            provider_status=outcome.provider_status,
            error=error,
            now=now,
        )
        await whatsapp_window.fall_back_after_window_error(
            uow, message_id=message.id, error_code=outcome.provider_status, now=now, policy=policy
        )
        return MessageStatus.FAILED
    return await retry_or_fail(
        uow,
        message=message,
        provider_status=outcome.provider_status,
        error=error,
        now=now,
        policy=policy,
    )


async def retry_or_fail(
    uow: UnitOfWork,
    *,
    message: OutboundMessage,
    provider_status: str | None,
    error: str,
    now: datetime,
    policy: DeliveryPolicy,
) -> MessageStatus:
    """Queue the row again after back-off, or fail it once `policy.max_attempts` are used."""
    if message.attempts >= policy.max_attempts:
        await outbox.record_final(
            uow,
            message=message,
            status=MessageStatus.FAILED,
            reason=REASON_ATTEMPTS_EXHAUSTED,
            provider_status=provider_status,
            error=f"{error} (after {message.attempts} attempts)",
            now=now,
        )
        log.warning("outbox message %s failed after %d attempts", message.id, message.attempts)
        return MessageStatus.FAILED
    not_before = policy.earliest_send(
        now + policy.backoff.delay(message.attempts), message.priority
    )
    await outbox.record_retry(
        uow,
        message=message,
        provider_status=provider_status,
        error=error,
        not_before=not_before,
        now=now,
    )
    log.info(
        "outbox message %s will be retried at %s (attempt %d failed)",
        message.id,
        not_before.isoformat(),
        message.attempts,
    )
    return MessageStatus.QUEUED


async def recover_abandoned(uow: UnitOfWork, *, now: datetime, policy: DeliveryPolicy) -> int:
    """Queue again the `sending` rows whose lease expired; fail those out of attempts.

    Return how many rows were queued again. See the module NOTE for the duplicate this risks.
    """
    error = "the worker sending this message stopped before recording the outcome"
    failed = await uow.execute(
        outbox.FAIL_ABANDONED, now=now, max_attempts=policy.max_attempts, error=error
    )
    requeued = await uow.execute(outbox.REQUEUE_ABANDONED, now=now, error=error)
    if failed or requeued:
        log.warning(
            "took back abandoned outbox messages", extra={"requeued": requeued, "failed": failed}
        )
    return requeued
