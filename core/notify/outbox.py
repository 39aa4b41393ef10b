"""Outbound messages as rows: written in the transaction that caused them, sent after commit.

A row moves queued → sending → sent → delivered, or ends failed, suppressed or expired. The
statements here are the only writers of `status`, and each one names the status it expects, so
two workers that race for a row cannot both move it.

Replies are sent in order per chat. Each reply row gets an ordering key made of its channel and
recipient as written. No statement hands over or claims a row while an earlier row with the same
key is still queued or sending. An earlier row that waits for a retry therefore holds back the
later ones until it is sent or ends failed, suppressed or expired. Other kinds have no key and
are not ordered, neither among themselves nor against replies.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from core.db.database import Row, Sql, UnitOfWork


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class OutboundMessage:
    """A row claimed for one send attempt; `attempts` counts this attempt."""

    id: int
    recipient: str
    channel: str
    body: str
    status: MessageStatus
    attempts: int
    patient_id: int | None = None
    kind: str | None = None
    priority: int = 5
    appointment_id: int | None = None
    appointment_starts_at: datetime | None = None
    # What a chat channel's sender needs to draw buttons: the message id from the catalogues
    # (or "conversation.reply") and its variables, such as a reply's options.
    template: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    language: str = "en"
    # The opt-out that blocks this message unless it is essential, read in the claim to save a
    # round trip per message. Its scopes are those of core.notify.optouts.
    opted_out_scope: str | None = None
    # The provider that sends the row, where its channel has several; None means the default.
    provider: str | None = None
    ordering_key: str | None = None


@dataclass(frozen=True)
class DueMessage:
    """A row handed to the broker: its id and the attempt count the job must find."""

    id: int
    attempts: int


@dataclass(frozen=True)
class FailedMessage:
    id: int
    recipient: str
    kind: str | None
    template: str
    attempts: int
    provider_status: str | None
    last_error: str | None
    updated_at: datetime


INSERT_MESSAGE = Sql(
    """
    INSERT INTO outbox_messages (
        dedupe_key, patient_id, recipient, channel, template, variables, language, body,
        priority, not_before, status, attempts, kind, appointment_id, appointment_starts_at,
        provider, ordering_key, created_at, updated_at
    ) VALUES (
        :dedupe_key, :patient_id, :recipient, :channel, :template, :variables, :language, :body,
        :priority, :not_before, 'queued', 0, :kind, :appointment_id, :appointment_starts_at,
        :provider, :ordering_key, :now, :now
    )
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id
    """
)

# The kinds whose rows are ordered per channel and recipient.
ORDERED_KINDS: Final = frozenset({"reply"})

# True when no earlier row with the same ordering key is still queued or sending. A row without
# a key matches no other row, so it never waits. On PostgreSQL the subquery reads the statement's
# snapshot, in which the earlier row stays `queued` or `sending` until its final status commits,
# so two workers cannot claim a row and its successor at the same time.
_FIRST_IN_ORDER = """NOT EXISTS (
        SELECT 1 FROM outbox_messages AS earlier
        WHERE earlier.ordering_key = {row}.ordering_key AND earlier.id < {row}.id
          AND earlier.status IN ('queued', 'sending'))"""


def _in_order(sql: str, row: str) -> str:
    """Put _FIRST_IN_ORDER, for the table or alias `row`, in place of `{first_in_order}`."""
    return sql.replace("{first_in_order}", _FIRST_IN_ORDER.replace("{row}", row))


# Hands one due row to the broker right after the transaction that wrote it, unless the
# scheduler already did or an earlier row of its chat is still in flight. That row's worker
# hands this one over when it finishes (HAND_OVER_NEXT).
_MARK_ENQUEUED = """
    UPDATE outbox_messages SET enqueued_at = :now
    WHERE id = :id AND status = 'queued' AND not_before <= :now AND enqueued_at IS NULL
      AND {first_in_order}
    RETURNING id, attempts
    """
MARK_ENQUEUED = Sql(_in_order(_MARK_ENQUEUED, "outbox_messages"))

# Hands over the oldest queued row of an ordering key once the row before it has finished,
# whether or not it was handed over before: a job that found it waiting did nothing.
HAND_OVER_NEXT = Sql(
    """
    UPDATE outbox_messages SET enqueued_at = :now
    WHERE id = (SELECT MIN(id) FROM outbox_messages
                WHERE ordering_key = :ordering_key AND status IN ('queued', 'sending'))
      AND status = 'queued' AND not_before <= :now
    RETURNING id, attempts
    """
)

# Due rows never handed over, or handed over `requeue_after` ago and still queued because the
# broker lost the job. SKIP LOCKED lets several schedulers on PostgreSQL take disjoint batches;
# SQLite's BEGIN IMMEDIATE already lets only one transaction write at a time.
_CLAIM_DUE = """
    UPDATE outbox_messages SET enqueued_at = :now
    WHERE id IN (
        SELECT id FROM outbox_messages AS due
        WHERE status = 'queued' AND not_before <= :now
          AND (enqueued_at IS NULL OR enqueued_at <= :requeue_before)
          AND {first_in_order}
        ORDER BY priority, not_before, id
        LIMIT :limit{lock}
    )
    RETURNING id, attempts, priority, not_before
    """
CLAIM_DUE = {
    "postgresql": Sql(_in_order(_CLAIM_DUE, "due").replace("{lock}", " FOR UPDATE SKIP LOCKED")),
    "sqlite": Sql(_in_order(_CLAIM_DUE, "due").replace("{lock}", "")),
}

# The send job's claim. `attempts = :attempts` fences out a job whose row has since been tried
# again, and `status = 'queued'` makes a duplicate delivery of the same job a no-op. A row whose
# chat has an earlier row in flight is left for HAND_OVER_NEXT.
_CLAIM_FOR_SEND = """
    UPDATE outbox_messages
    SET status = 'sending', attempts = attempts + 1, lease_expires_at = :lease_until,
        updated_at = :now
    WHERE id = :id AND status = 'queued' AND attempts = :attempts AND not_before <= :now
      AND {first_in_order}
    RETURNING id, recipient, channel, body, status, attempts, patient_id, kind, priority,
              appointment_id, appointment_starts_at, template, variables, language,
              provider, ordering_key,
              (SELECT o.scope FROM opt_outs o
               WHERE o.phone = outbox_messages.recipient
                 AND (o.scope = 'all'
                      OR o.scope = 'patient:' || CAST(outbox_messages.patient_id AS VARCHAR))
               ORDER BY o.scope LIMIT 1) AS opted_out_scope
    """
CLAIM_FOR_SEND = Sql(_in_order(_CLAIM_FOR_SEND, "outbox_messages"))

# The provider of the newest SMS reply to a number, which is the provider of the patient's last
# inbound SMS, because each inbound SMS gets its reply through the provider it arrived on.
# NOTE: an inbound SMS that gets no reply, such as a repeated STOP, does not count.
LATEST_SMS_PROVIDER = Sql(
    """
    SELECT provider FROM outbox_messages
    WHERE ordering_key = :ordering_key AND provider IS NOT NULL
    ORDER BY id DESC LIMIT 1
    """
)
SET_PROVIDER = Sql(
    """
    UPDATE outbox_messages SET provider = :provider, updated_at = :now
    WHERE id = :id AND status = 'sending' AND attempts = :attempts
    """
)

RECORD_SENT = Sql(
    """
    UPDATE outbox_messages
    SET status = 'sent', provider_message_id = :provider_message_id,
        provider_status = :provider_status, last_error = NULL, sent_at = :now,
        lease_expires_at = NULL, updated_at = :now
    WHERE id = :id AND status = 'sending' AND attempts = :attempts
    RETURNING (SELECT COUNT(*) FROM delivery_reports
               WHERE provider_message_id = outbox_messages.provider_message_id) AS early_reports
    """
)

RECORD_RETRY = Sql(
    """
    UPDATE outbox_messages
    SET status = 'queued', provider_status = :provider_status, last_error = :error,
        not_before = :not_before, enqueued_at = NULL, lease_expires_at = NULL, updated_at = :now
    WHERE id = :id AND status = 'sending' AND attempts = :attempts
    """
)

# Puts a claimed row back without counting the attempt, e.g. when quiet hours began.
RECORD_DEFERRED = Sql(
    """
    UPDATE outbox_messages
    SET status = 'queued', attempts = attempts - 1, not_before = :not_before,
        enqueued_at = NULL, lease_expires_at = NULL, updated_at = :now
    WHERE id = :id AND status = 'sending' AND attempts = :attempts
    """
)

RECORD_FINAL = Sql(
    """
    UPDATE outbox_messages
    SET status = :status, status_reason = :reason, provider_status = :provider_status,
        last_error = :error, lease_expires_at = NULL, updated_at = :now
    WHERE id = :id AND status = 'sending' AND attempts = :attempts
    """
)

# Rows whose worker died or hung while sending. See core.notify.pipeline.recover_abandoned.
FAIL_ABANDONED = Sql(
    """
    UPDATE outbox_messages
    SET status = 'failed', status_reason = 'abandoned', lease_expires_at = NULL,
        last_error = :error, updated_at = :now
    WHERE status = 'sending' AND lease_expires_at <= :now AND attempts >= :max_attempts
    """
)
REQUEUE_ABANDONED = Sql(
    """
    UPDATE outbox_messages
    SET status = 'queued', not_before = :now, enqueued_at = NULL, lease_expires_at = NULL,
        last_error = :error, updated_at = :now
    WHERE status = 'sending' AND lease_expires_at <= :now
    """
)

COUNT_BY_STATUS = Sql("SELECT status, COUNT(*) AS count FROM outbox_messages GROUP BY status")
# The start of `status_reason` of a failed WhatsApp row whose message was queued again on the
# next route (template or SMS) by core.notify.whatsapp_window, followed by ": {route} as {id}".
REASON_HANDED_ON: Final = "outside WhatsApp window"
# The LIKE pattern, given as `:handed_on`, of such a reason.
HANDED_ON_PATTERN: Final = f"{REASON_HANDED_ON}:%"
SELECT_FAILED = Sql(
    """
    SELECT id, recipient, kind, template, attempts, provider_status, last_error, updated_at
    FROM outbox_messages
    WHERE status = 'failed' AND (status_reason IS NULL OR status_reason NOT LIKE :handed_on)
    ORDER BY updated_at DESC, id DESC LIMIT :limit
    """
)
COUNT_HANDED_ON = Sql(
    "SELECT COUNT(*) FROM outbox_messages WHERE status = 'failed' AND status_reason LIKE :handed_on"
)
# A reply is not requeued, and neither is a row whose message another row took over.
REQUEUE_FAILED = Sql(
    """
    UPDATE outbox_messages
    SET status = 'queued', attempts = 0, not_before = :now, enqueued_at = NULL,
        status_reason = 'requeued by operator', updated_at = :now
    WHERE id = :id AND status = 'failed' AND (kind IS NULL OR kind <> 'reply')
      AND (status_reason IS NULL OR status_reason NOT LIKE :handed_on)
    """
)
SELECT_STATUS = Sql("SELECT status, status_reason, kind FROM outbox_messages WHERE id = :id")


class RequeueOutcome(enum.Enum):
    """The result of `requeue_failed`: requeued, or the reason the row was left as it is."""

    REQUEUED = "requeued"
    NOT_FOUND = "not found"
    NOT_FAILED = "not failed"
    REPLY = "reply"
    HANDED_ON = "handed on"


async def enqueue_message(
    uow: UnitOfWork,
    *,
    dedupe_key: str,
    patient_id: int | None,
    recipient: str,
    channel: str,
    template: str,
    variables: dict[str, Any],
    language: str,
    body: str,
    now: datetime,
    not_before: datetime | None = None,
    priority: int = 5,
    kind: str | None = None,
    appointment_id: int | None = None,
    appointment_starts_at: datetime | None = None,
    provider: str | None = None,
) -> int | None:
    """Write a queued message; return its id, or None when the dedupe key already exists.

    `provider` names the provider that sends it, e.g. the one a reply's message arrived on.
    Rows of ORDERED_KINDS get the ordering key of their channel and recipient.
    """
    message_id: int | None = await uow.scalar(
        INSERT_MESSAGE,
        dedupe_key=dedupe_key,
        patient_id=patient_id,
        recipient=recipient,
        channel=channel,
        template=template,
        variables=json.dumps(variables, ensure_ascii=False, sort_keys=True),
        language=language,
        body=body,
        priority=priority,
        not_before=not_before or now,
        kind=kind,
        appointment_id=appointment_id,
        appointment_starts_at=appointment_starts_at,
        provider=provider,
        ordering_key=ordering_key(channel, recipient) if kind in ORDERED_KINDS else None,
        now=now,
    )
    return message_id


def ordering_key(channel: str, recipient: str) -> str:
    """Return the key that orders the replies to `recipient` on `channel`."""
    return f"{channel}:{recipient}"


async def mark_enqueued(uow: UnitOfWork, *, message_id: int, now: datetime) -> DueMessage | None:
    """Mark one due row as handed to the broker; None when it is not due or already handed."""
    row = await uow.one(MARK_ENQUEUED, id=message_id, now=now)
    return None if row is None else DueMessage(row["id"], row["attempts"])


async def hand_over_next(uow: UnitOfWork, *, ordering_key: str, now: datetime) -> DueMessage | None:
    """Mark the next due row of `ordering_key` as handed to the broker, once no earlier row is
    queued or sending; None when there is no such row."""
    row = await uow.one(HAND_OVER_NEXT, ordering_key=ordering_key, now=now)
    return None if row is None else DueMessage(row["id"], row["attempts"])


async def claim_due(
    uow: UnitOfWork, *, now: datetime, requeue_before: datetime, limit: int
) -> list[DueMessage]:
    """Mark up to `limit` due rows as handed to the broker and return them, most urgent first."""
    rows = await uow.all(
        CLAIM_DUE[uow.dialect], now=now, requeue_before=requeue_before, limit=limit
    )
    ordered = sorted(rows, key=lambda row: (row["priority"], row["not_before"], row["id"]))
    return [DueMessage(row["id"], row["attempts"]) for row in ordered]


async def claim_for_send(
    uow: UnitOfWork, *, message_id: int, attempts: int, now: datetime, lease_until: datetime
) -> OutboundMessage | None:
    """Move a due queued row to `sending`; None when another job has it, it is done, or it has
    been tried since this job was enqueued."""
    row = await uow.one(
        CLAIM_FOR_SEND, id=message_id, attempts=attempts, now=now, lease_until=lease_until
    )
    return None if row is None else _outbound(row)


def _outbound(row: Row) -> OutboundMessage:
    return OutboundMessage(
        id=row["id"],
        recipient=row["recipient"],
        channel=row["channel"],
        body=row["body"],
        status=MessageStatus(row["status"]),
        attempts=row["attempts"],
        patient_id=row["patient_id"],
        kind=row["kind"],
        priority=row["priority"],
        appointment_id=row["appointment_id"],
        appointment_starts_at=row["appointment_starts_at"],
        template=row["template"],
        variables=json.loads(row["variables"]),
        language=row["language"],
        opted_out_scope=row["opted_out_scope"],
        provider=row["provider"],
        ordering_key=row["ordering_key"],
    )


async def latest_sms_provider(uow: UnitOfWork, *, phone: str) -> str | None:
    """Return the provider of the newest SMS reply to `phone`, or None if it never got one."""
    provider: str | None = await uow.scalar(
        LATEST_SMS_PROVIDER, ordering_key=ordering_key("sms", phone)
    )
    return provider


async def record_provider(
    uow: UnitOfWork, *, message: OutboundMessage, provider: str, now: datetime
) -> bool:
    """Store the provider chosen for a claimed row."""
    changed = await uow.execute(
        SET_PROVIDER, id=message.id, attempts=message.attempts, provider=provider, now=now
    )
    return changed == 1


async def record_sent(
    uow: UnitOfWork,
    *,
    message: OutboundMessage,
    provider_message_id: str | None,
    provider_status: str,
    now: datetime,
) -> int | None:
    """Record that the provider accepted the message.

    Return how many delivery reports for it arrived before this, or None when the row has moved
    on because another attempt took it.
    """
    row = await uow.one(
        RECORD_SENT,
        id=message.id,
        attempts=message.attempts,
        provider_message_id=provider_message_id,
        provider_status=provider_status,
        now=now,
    )
    return None if row is None else int(row["early_reports"])


async def record_retry(
    uow: UnitOfWork,
    *,
    message: OutboundMessage,
    provider_status: str | None,
    error: str,
    not_before: datetime,
    now: datetime,
) -> bool:
    changed = await uow.execute(
        RECORD_RETRY,
        id=message.id,
        attempts=message.attempts,
        provider_status=provider_status,
        error=error,
        not_before=not_before,
        now=now,
    )
    return changed == 1


async def record_deferred(
    uow: UnitOfWork, *, message: OutboundMessage, not_before: datetime, now: datetime
) -> bool:
    changed = await uow.execute(
        RECORD_DEFERRED, id=message.id, attempts=message.attempts, not_before=not_before, now=now
    )
    return changed == 1


async def record_final(
    uow: UnitOfWork,
    *,
    message: OutboundMessage,
    status: MessageStatus,
    reason: str,
    now: datetime,
    provider_status: str | None = None,
    error: str | None = None,
) -> bool:
    """End a claimed row as failed, suppressed or expired, with the reason."""
    changed = await uow.execute(
        RECORD_FINAL,
        id=message.id,
        attempts=message.attempts,
        status=status.value,
        reason=reason,
        provider_status=provider_status,
        error=error,
        now=now,
    )
    return changed == 1


async def count_by_status(uow: UnitOfWork) -> dict[str, int]:
    """Return the number of rows in each status, with 0 for statuses that have none."""
    counts = {status.value: 0 for status in MessageStatus}
    for row in await uow.all(COUNT_BY_STATUS):
        counts[row["status"]] = int(row["count"])
    return counts


async def list_failed(uow: UnitOfWork, *, limit: int = 50) -> list[FailedMessage]:
    """Return the newest failed rows with their last error, for an operator.

    A row whose message was queued again on another route is left out, because the message
    lives on in that row, which is listed when it fails too.
    """
    return [
        FailedMessage(
            id=row["id"],
            recipient=row["recipient"],
            kind=row["kind"],
            template=row["template"],
            attempts=row["attempts"],
            provider_status=row["provider_status"],
            last_error=row["last_error"],
            updated_at=row["updated_at"],
        )
        for row in await uow.all(SELECT_FAILED, limit=limit, handed_on=HANDED_ON_PATTERN)
    ]


async def count_handed_on(uow: UnitOfWork) -> int:
    """Return how many failed rows `list_failed` leaves out because another row took over."""
    return int(await uow.scalar(COUNT_HANDED_ON, handed_on=HANDED_ON_PATTERN) or 0)


async def requeue_failed(
    uow: UnitOfWork, *, message_id: int, now: datetime
) -> tuple[RequeueOutcome, str | None]:
    """Give a failed row a fresh set of attempts, due now, and return the outcome with the
    row's `status_reason`.

    A chat reply is not requeued, because it shows a screen the patient has moved on from.
    A row that a WhatsApp window fallback took over is not either, because that would send the
    message twice.
    """
    requeued = await uow.execute(
        REQUEUE_FAILED, id=message_id, now=now, handed_on=HANDED_ON_PATTERN
    )
    if requeued == 1:
        return RequeueOutcome.REQUEUED, None
    row = await uow.one(SELECT_STATUS, id=message_id)
    if row is None:
        return RequeueOutcome.NOT_FOUND, None
    reason = row["status_reason"]
    if row["status"] != MessageStatus.FAILED:
        return RequeueOutcome.NOT_FAILED, reason
    if reason is not None and reason.startswith(f"{REASON_HANDED_ON}:"):
        return RequeueOutcome.HANDED_ON, reason
    return RequeueOutcome.REPLY, reason
