"""WhatsApp's 24-hour window applied to outbox rows: the route chosen when a row is sent, and
the fallback after Twilio error 63016.

WhatsApp takes free-form messages only within 24 hours of the patient's last inbound message;
outside it a business may send only an approved template. `record_whatsapp_inbound` stores the
time of each inbound message, and `route_for_send` chooses the route of a claimed row from it
(see `core.notify.policy.whatsapp_route`) and writes the choice on the row: its channel,
recipient and `variables["route"]`.

When Twilio still returns 63016 ("outside the allowed window"), at send time or in a status
callback, `fall_back_after_window_error` writes one new row on the next route: the template
after free-form text, then SMS. A fallback row has its route fixed, and SMS has no fallback, so a
message is tried at most three times and never loops.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import datetime
from typing import Final

from core.db.database import Sql, UnitOfWork
from core.notify.outbox import REASON_HANDED_ON, OutboundMessage, enqueue_message
from core.notify.policy import DeliveryPolicy, MessageKind, Route, whatsapp_route

log = logging.getLogger(__name__)

WHATSAPP_CHANNEL: Final = "whatsapp"
SMS_CHANNEL: Final = "sms"
WHATSAPP_PREFIX: Final = "whatsapp:"
# Twilio error "Message failed to send because more than 24 hours have passed since the customer
# last replied to this number" (twilio.com/docs/api/errors/63016).
WINDOW_CLOSED_ERROR: Final = "63016"

# `variables` keys written on a routed row.
ROUTE_KEY: Final = "route"
FALLBACK_OF_KEY: Final = "fallback_of"

# Notifications planned on SMS that go to WhatsApp instead for a patient who uses it. Replies
# stay on the channel the patient wrote on.
NOTICE_KINDS: Final = frozenset(
    {
        MessageKind.BOOKED,
        MessageKind.CANCELLED,
        MessageKind.MOVED,
        MessageKind.REMINDER,
        MessageKind.PAYMENT_RECEIPT,
    }
)

_UPSERT_INBOUND = Sql(
    """
    INSERT INTO channel_identities (channel, address, phone, last_inbound_at, created_at)
    VALUES ('whatsapp', :address, :phone, :now, :now)
    ON CONFLICT (channel, address) DO UPDATE SET
        phone = excluded.phone,
        last_inbound_at = CASE
            WHEN channel_identities.last_inbound_at IS NULL
              OR channel_identities.last_inbound_at < excluded.last_inbound_at
            THEN excluded.last_inbound_at
            ELSE channel_identities.last_inbound_at
        END
    """
)
_LAST_INBOUND = Sql(
    "SELECT last_inbound_at FROM channel_identities WHERE channel = 'whatsapp' AND phone = :phone"
    " ORDER BY last_inbound_at DESC LIMIT 1"
)
_SET_ROUTE = Sql(
    """
    UPDATE outbox_messages
    SET channel = :channel, recipient = :recipient, variables = :variables, updated_at = :now
    WHERE id = :id AND status = 'sending' AND attempts = :attempts
    """
)
_SELECT_FAILED = Sql(
    """
    SELECT id, patient_id, recipient, channel, template, variables, language, body, priority,
           kind, appointment_id, appointment_starts_at, last_error
    FROM outbox_messages WHERE id = :id AND status = 'failed'
    """
)
_NOTE_FALLBACK = Sql(
    "UPDATE outbox_messages SET status_reason = :reason, updated_at = :now WHERE id = :id"
)


def whatsapp_address(phone: str) -> str:
    """Return the Twilio WhatsApp address of an E.164 number: `whatsapp:+2547…`."""
    return phone if phone.startswith(WHATSAPP_PREFIX) else WHATSAPP_PREFIX + phone


def phone_of(recipient: str) -> str:
    """Return the E.164 number of a recipient written as `+2547…` or `whatsapp:+2547…`."""
    return recipient.removeprefix(WHATSAPP_PREFIX)


async def record_whatsapp_inbound(uow: UnitOfWork, *, phone: str, now: datetime) -> None:
    """Store `now` as the last inbound WhatsApp message of `phone`, unless a later one is stored.

    Call it in the transaction that applies the message, so a duplicate that changes nothing
    also leaves the window as it was.
    """
    await uow.execute(_UPSERT_INBOUND, address=whatsapp_address(phone), phone=phone, now=now)


async def last_whatsapp_inbound(uow: UnitOfWork, *, phone: str) -> datetime | None:
    """Return when `phone` last wrote on WhatsApp, or None if it never did."""
    value: datetime | None = await uow.scalar(_LAST_INBOUND, phone=phone)
    return value


async def route_for_send(
    uow: UnitOfWork, message: OutboundMessage, *, now: datetime, policy: DeliveryPolicy
) -> OutboundMessage:
    """Choose how a claimed row goes out, write the choice on the row and return the row as sent.

    WhatsApp rows and notifications planned on SMS get a route from the window; other rows, and
    fallback rows whose route is fixed, are returned unchanged.
    """
    if not policy.whatsapp or ROUTE_KEY in message.variables:
        return message
    is_notice = message.channel == SMS_CHANNEL and message.kind in NOTICE_KINDS
    if message.channel != WHATSAPP_CHANNEL and not is_notice:
        return message

    phone = phone_of(message.recipient)
    last_inbound_at = await last_whatsapp_inbound(uow, phone=phone)
    route = whatsapp_route(
        kind=message.kind, last_inbound_at=last_inbound_at, now=now, policy=policy
    )
    if message.channel == SMS_CHANNEL and route is Route.SMS:
        return message  # a patient who does not use WhatsApp: nothing to record

    channel = SMS_CHANNEL if route is Route.SMS else WHATSAPP_CHANNEL
    # Routed rows name the E.164 number, as opt-outs do; the WhatsApp sender adds the prefix.
    recipient = phone
    variables = {**message.variables, ROUTE_KEY: route.value}
    await uow.execute(
        _SET_ROUTE,
        id=message.id,
        attempts=message.attempts,
        channel=channel,
        recipient=recipient,
        variables=json.dumps(variables, ensure_ascii=False, sort_keys=True),
        now=now,
    )
    log.info("outbox message %s routed: %s", message.id, route.value)
    return replace(message, channel=channel, recipient=recipient, variables=variables)


async def fall_back_after_window_error(
    uow: UnitOfWork,
    *,
    message_id: int,
    error_code: str | None,
    now: datetime,
    policy: DeliveryPolicy,
) -> int | None:
    """Queue the next route for a failed WhatsApp row that Twilio rejected with 63016.

    Return the new row's id, or None when the row is not such a failure or its fallback was
    already written. `error_code` None reads the code from the row's `last_error`, where a status
    callback stores it.
    """
    row = await uow.one(_SELECT_FAILED, id=message_id)
    if row is None or row["channel"] != WHATSAPP_CHANNEL:
        return None
    if (error_code if error_code is not None else row["last_error"]) != WINDOW_CLOSED_ERROR:
        return None

    variables = json.loads(row["variables"])
    tried = variables.get(ROUTE_KEY, Route.WHATSAPP.value)
    if tried == Route.WHATSAPP.value and row["kind"] in policy.whatsapp_templates:
        route = Route.WHATSAPP_TEMPLATE
    else:
        route = Route.SMS
    phone = phone_of(row["recipient"])
    new_id = await enqueue_message(
        uow,
        dedupe_key=f"window-fallback:{row['id']}:{route.value}",
        patient_id=row["patient_id"],
        recipient=phone,
        channel=SMS_CHANNEL if route is Route.SMS else WHATSAPP_CHANNEL,
        template=row["template"],
        variables={**variables, ROUTE_KEY: route.value, FALLBACK_OF_KEY: row["id"]},
        language=row["language"],
        body=row["body"],
        now=now,
        priority=row["priority"],
        kind=row["kind"],
        appointment_id=row["appointment_id"],
        appointment_starts_at=row["appointment_starts_at"],
    )
    if new_id is None:
        return None
    await uow.execute(
        _NOTE_FALLBACK,
        id=row["id"],
        reason=f"{REASON_HANDED_ON}: {route.value} as {new_id}",
        now=now,
    )
    log.info("outbox message %s hit 63016; %s queued as %s", row["id"], route.value, new_id)
    return new_id
