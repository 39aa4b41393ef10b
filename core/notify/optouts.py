"""Opt-outs from non-essential messages, checked when a message is about to be sent.

A number opts out as a whole (scope "all", e.g. after `STOP`), or mutes one patient's messages on a
phone that several patients share (scope "patient:<id>", e.g. after `STOP <patient id>`). The
keyword parsing belongs to the two-way SMS channel, which calls `opt_out` and `opt_in`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from core.db.database import Sql, UnitOfWork

SCOPE_ALL: Final = "all"

_INSERT = Sql(
    "INSERT INTO opt_outs (phone, scope, patient_id, source, created_at)"
    " VALUES (:phone, :scope, :patient_id, :source, :now)"
    " ON CONFLICT (phone, scope) DO NOTHING"
)
_DELETE_ALL_SCOPES = Sql("DELETE FROM opt_outs WHERE phone = :phone")
_DELETE_SCOPE = Sql("DELETE FROM opt_outs WHERE phone = :phone AND scope = :scope")
_FIND = Sql(
    "SELECT scope FROM opt_outs WHERE phone = :phone AND scope IN (:all_scope, :patient_scope)"
    " ORDER BY scope LIMIT 1"
)


def patient_scope(patient_id: int) -> str:
    return f"patient:{patient_id}"


async def opt_out(
    uow: UnitOfWork, *, phone: str, now: datetime, patient_id: int | None = None, source: str
) -> bool:
    """Stop non-essential messages to `phone`, or only those about `patient_id`.

    Return whether this call added the opt-out: repeating one changes nothing and returns
    False, so a caller can confirm it exactly once. `phone` is E.164, as stored on patients.
    """
    scope = SCOPE_ALL if patient_id is None else patient_scope(patient_id)
    inserted = await uow.execute(
        _INSERT, phone=phone, scope=scope, patient_id=patient_id, source=source, now=now
    )
    return inserted == 1


async def opt_in(uow: UnitOfWork, *, phone: str, patient_id: int | None = None) -> int:
    """Lift opt-outs and return how many were lifted.

    Without `patient_id` every opt-out of the number goes, so `START` undoes `STOP` and any
    per-patient mute; with it, only that patient's mute goes.
    """
    if patient_id is None:
        return await uow.execute(_DELETE_ALL_SCOPES, phone=phone)
    return await uow.execute(_DELETE_SCOPE, phone=phone, scope=patient_scope(patient_id))


async def opted_out_scope(uow: UnitOfWork, *, phone: str, patient_id: int | None) -> str | None:
    """Return the opt-out that blocks a non-essential message, or None when none does."""
    scope: str | None = await uow.scalar(
        _FIND,
        phone=phone,
        all_scope=SCOPE_ALL,
        patient_scope=SCOPE_ALL if patient_id is None else patient_scope(patient_id),
    )
    return scope


async def is_opted_out(uow: UnitOfWork, *, phone: str, patient_id: int | None = None) -> bool:
    return await opted_out_scope(uow, phone=phone, patient_id=patient_id) is not None
