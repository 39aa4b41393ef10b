"""Provider delivery statuses mapped onto outbox statuses, and the order statuses move in.

Sources: Africa's Talking SMS delivery reports (docs.africastalking.com/sms/deliveryreports:
Sent, Submitted, Buffered, Rejected, Success, Failed; Expired as mapped by RapidPro's courier)
and Twilio's `MessageStatus` values in status callbacks.
"""

from __future__ import annotations

from typing import Final

from core.notify.outbox import MessageStatus

AFRICASTALKING: Final = "africastalking"
TWILIO: Final = "twilio"

PROVIDER_STATUSES: Final[dict[str, dict[str, MessageStatus]]] = {
    AFRICASTALKING: {
        "Sent": MessageStatus.SENT,
        "Submitted": MessageStatus.SENT,
        "Buffered": MessageStatus.SENT,
        "Success": MessageStatus.DELIVERED,
        "Rejected": MessageStatus.FAILED,
        "Failed": MessageStatus.FAILED,
        "Expired": MessageStatus.FAILED,
    },
    TWILIO: {
        "queued": MessageStatus.SENT,
        "accepted": MessageStatus.SENT,
        "sending": MessageStatus.SENT,
        "sent": MessageStatus.SENT,
        "delivered": MessageStatus.DELIVERED,
        "read": MessageStatus.DELIVERED,
        "undelivered": MessageStatus.FAILED,
        "failed": MessageStatus.FAILED,
    },
}

# How far along each status is. A report may only move a row to a higher rank, so a late "Sent"
# never overwrites "delivered", and the first final status (delivered or failed) stays.
STATUS_RANK: Final = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.FAILED: 3,
    MessageStatus.SUPPRESSED: 3,
    MessageStatus.EXPIRED: 3,
}


def map_provider_status(provider: str, provider_status: str) -> MessageStatus | None:
    """Return the outbox status a provider status means, or None for an unknown one."""
    return PROVIDER_STATUSES.get(provider, {}).get(provider_status)


def moves_forward(current: MessageStatus, new: MessageStatus) -> bool:
    return STATUS_RANK[new] > STATUS_RANK[current]
