"""Loading and saving conversations; one row per patient phone number across channels."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import orjson

from bot.engine.model import Conversation, Reply
from core.db.database import Row, Sql, UnitOfWork


def _json_text(value: object) -> str:
    """Return compact JSON with non-ASCII characters kept, as the database's text column stores it.

    orjson takes about a tenth of the stdlib's time for a conversation's data, which every step
    encodes and decodes.
    """
    return orjson.dumps(value).decode()


class StaleConversation(Exception):
    """Another writer saved the conversation first; the step must be retried on fresh state."""


CREATE = Sql(
    """
    INSERT INTO conversations (
        phone, patient_id, language, flow, state, data, back_stack, channel, version,
        last_reply_end, created_at, updated_at
    ) VALUES (
        :phone, :patient_id, :language, :flow, :state, '{}', '[]', :channel, 0,
        false, :now, :now
    )
    ON CONFLICT (phone) DO NOTHING
    """
)

# The columns that _from_row reads, in this order. The timestamps of the row itself are left
# out, because each DATETIME costs a conversion on SQLite.
_COLUMNS = (
    "id, phone, patient_id, language, flow, state, channel, data, back_stack,"
    " session_id, session_input, last_reply, version, expires_at"
)
LOAD = Sql(f"SELECT {_COLUMNS} FROM conversations WHERE phone = :phone{{for_update}}")  # noqa: S608

# The conversation and whether its phone number belongs to a registered patient, in one
# statement: the common case of every step after the first. PostgreSQL locks only the
# conversation row; the patient is on the nullable side of the join.
_LOAD_WITH_PATIENT = (
    "SELECT "  # noqa: S608  # constant text
    + ", ".join(f"c.{name.strip()}" for name in _COLUMNS.split(","))
    + ", p.id AS registered_patient_id"
    " FROM conversations c"
    " LEFT JOIN patients p ON p.phone = c.phone AND p.consented_at IS NOT NULL"
    " WHERE c.phone = :phone"
)
LOAD_WITH_PATIENT = {
    "postgresql": Sql(_LOAD_WITH_PATIENT + " FOR UPDATE OF c"),
    "sqlite": Sql(_LOAD_WITH_PATIENT),
}

SAVE = Sql(
    """
    UPDATE conversations
    SET patient_id = :patient_id, language = :language, flow = :flow, state = :state,
        data = :data, back_stack = :back_stack, channel = :channel, session_id = :session_id,
        session_input = :session_input, last_reply = :last_reply,
        last_reply_end = :last_reply_end, expires_at = :expires_at,
        version = version + 1, updated_at = :now
    WHERE id = :id AND version = :version
    """
)


def _from_row(row: Row) -> Conversation:
    # By position, in the order of _COLUMNS: sqlite3.Row finds a name by comparing it with each
    # column's name in turn, which costs several microseconds for a row this wide.
    (
        id_,
        phone,
        patient_id,
        language,
        flow,
        state,
        channel,
        data,
        back_stack,
        session_id,
        session_input,
        last_reply,
        version,
        expires_at,
    ) = tuple(cast(Sequence[Any], row)[:14])
    reply_data = orjson.loads(last_reply) if last_reply else None
    return Conversation(
        id=id_,
        phone=phone,
        patient_id=patient_id,
        language=language,
        flow=flow,
        state=state,
        channel=channel,
        data=orjson.loads(data),
        back_stack=[(flow_name, state_name) for flow_name, state_name in orjson.loads(back_stack)],
        session_id=session_id,
        session_input=session_input,
        last_reply=Reply.from_json(reply_data) if reply_data else None,
        version=version,
        expires_at=expires_at,
    )


async def load_existing(uow: UnitOfWork, *, phone: str) -> tuple[Conversation, int | None] | None:
    """Return the conversation of `phone`, locked for this transaction, and the id of the
    registered (consented) patient with that number; None when there is no conversation yet."""
    row = await uow.one(LOAD_WITH_PATIENT[uow.dialect], phone=phone)
    if row is None:
        return None
    return _from_row(row), cast(Sequence[Any], row)[14]


async def load_or_create(
    uow: UnitOfWork,
    *,
    phone: str,
    channel: str,
    flow: str,
    state: str,
    patient_id: int | None,
    language: str | None,
    now: datetime,
) -> Conversation:
    """Return the patient's conversation, locked for this transaction, creating it if needed."""
    row = await uow.one(LOAD, phone=phone)
    if row is None:
        await uow.execute(
            CREATE,
            phone=phone,
            patient_id=patient_id,
            language=language,
            flow=flow,
            state=state,
            channel=channel,
            now=now,
        )
        row = await uow.one(LOAD, phone=phone)
        assert row is not None
    return _from_row(row)


async def save(uow: UnitOfWork, conversation: Conversation, *, now: datetime) -> None:
    reply = conversation.last_reply
    updated = await uow.execute(
        SAVE,
        id=conversation.id,
        version=conversation.version,
        patient_id=conversation.patient_id,
        language=conversation.language,
        flow=conversation.flow,
        state=conversation.state,
        data=_json_text(conversation.data),
        back_stack=_json_text(conversation.back_stack),
        channel=conversation.channel,
        session_id=conversation.session_id,
        session_input=conversation.session_input,
        last_reply=_json_text(reply.to_json()) if reply else None,
        last_reply_end=bool(reply and reply.end),
        expires_at=conversation.expires_at,
        now=now,
    )
    if updated != 1:
        raise StaleConversation(f"conversation {conversation.id} changed since it was loaded")
    conversation.version += 1
