"""Telegram users in `channel_identities`: channel "telegram", address = the user id.

A user who has shared their own contact has `phone` set, and their conversation is the one of
that phone number on every channel. Until then their conversation key is `tg:<user id>`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from core.db.database import Sql, UnitOfWork

CHANNEL: Final = "telegram"
UNLINKED_KEY_PREFIX: Final = "tg:"

_RECORD_USER = Sql(
    """
    INSERT INTO channel_identities (channel, address, chat_id, last_inbound_at, created_at)
    VALUES (:channel, :address, :chat_id, :now, :now)
    ON CONFLICT (channel, address) DO UPDATE
    SET chat_id = excluded.chat_id, last_inbound_at = excluded.last_inbound_at
    RETURNING phone
    """
)

_LINK_PHONE = Sql(
    """
    INSERT INTO channel_identities (channel, address, phone, chat_id, last_inbound_at, created_at)
    VALUES (:channel, :address, :phone, :chat_id, :now, :now)
    ON CONFLICT (channel, address) DO UPDATE
    SET phone = excluded.phone, chat_id = excluded.chat_id,
        last_inbound_at = excluded.last_inbound_at
    """
)


def unlinked_key(user_id: int) -> str:
    return f"{UNLINKED_KEY_PREFIX}{user_id}"


async def record_user(uow: UnitOfWork, *, user_id: int, chat_id: int, now: datetime) -> str:
    """Record that the user wrote from `chat_id` and return their conversation key: the linked
    E.164 phone number, or `tg:<user id>`."""
    phone = await uow.scalar(
        _RECORD_USER, channel=CHANNEL, address=str(user_id), chat_id=str(chat_id), now=now
    )
    return str(phone) if phone else unlinked_key(user_id)


async def link_phone(
    uow: UnitOfWork, *, user_id: int, chat_id: int, phone: str, now: datetime
) -> None:
    """Link the user to an E.164 phone number that Telegram confirmed is theirs.

    Linking again replaces the number, as after a change of SIM card.
    """
    await uow.execute(
        _LINK_PHONE,
        channel=CHANNEL,
        address=str(user_id),
        phone=phone,
        chat_id=str(chat_id),
        now=now,
    )
