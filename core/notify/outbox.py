"""Outbound messages as rows: written in the transaction that caused them, sent after commit."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.db.database import Sql, UnitOfWork


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
    id: int
    recipient: str
    channel: str
    body: str
    status: MessageStatus
    attempts: int


INSERT_MESSAGE = Sql(
    """
    INSERT INTO outbox_messages (
        dedupe_key, patient_id, recipient, channel, template, variables, language, body,
        priority, not_before, status, attempts, created_at, updated_at
    ) VALUES (
        :dedupe_key, :patient_id, :recipient, :channel, :template, :variables, :language, :body,
        :priority, :not_before, 'queued', 0, :now, :now
    )
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id
    """
)

CLAIM_MESSAGE = Sql(
    """
    UPDATE outbox_messages
    SET status = 'sending', attempts = attempts + 1, updated_at = :now
    WHERE id = :id AND status = 'queued' AND not_before <= :now
    RETURNING id, recipient, channel, body, status, attempts
    """
)

RECORD_SENT = Sql(
    """
    UPDATE outbox_messages
    SET status = 'sent', provider_message_id = :provider_message_id,
        provider_status = :provider_status, last_error = NULL, sent_at = :now, updated_at = :now
    WHERE id = :id AND status = 'sending'
    """
)

RECORD_FAILURE = Sql(
    """
    UPDATE outbox_messages
    SET status = :status, provider_status = :provider_status, last_error = :error,
        updated_at = :now
    WHERE id = :id AND status = 'sending'
    """
)


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
) -> int | None:
    """Write a queued message; return its id, or None when the dedupe key already exists."""
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
        now=now,
    )
    return message_id


async def claim_message(
    uow: UnitOfWork, *, message_id: int, now: datetime
) -> OutboundMessage | None:
    """Move a due queued message to `sending`; None when another sender has it or it is done."""
    row = await uow.one(CLAIM_MESSAGE, id=message_id, now=now)
    if row is None:
        return None
    return OutboundMessage(
        id=row["id"],
        recipient=row["recipient"],
        channel=row["channel"],
        body=row["body"],
        status=MessageStatus(row["status"]),
        attempts=row["attempts"],
    )


async def record_sent(
    uow: UnitOfWork,
    *,
    message_id: int,
    provider_message_id: str | None,
    provider_status: str,
    now: datetime,
) -> None:
    await uow.execute(
        RECORD_SENT,
        id=message_id,
        provider_message_id=provider_message_id,
        provider_status=provider_status,
        now=now,
    )


async def record_failure(
    uow: UnitOfWork,
    *,
    message_id: int,
    provider_status: str | None,
    error: str,
    retryable: bool,
    now: datetime,
) -> None:
    """Keep the row with its error: back to queued when a retry may help, else failed."""
    status = MessageStatus.QUEUED if retryable else MessageStatus.FAILED
    await uow.execute(
        RECORD_FAILURE,
        id=message_id,
        status=status.value,
        provider_status=provider_status,
        error=error,
        now=now,
    )
