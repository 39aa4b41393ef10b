"""Appointment reminders as outbox rows: planned when a booking commits, revoked or moved with it.

Each reminder's dedupe key is `appointment:{id}:reminder:{kind}:{due time}`, so one appointment
gets at most one reminder of each kind for each start time, however often planning runs. The
sender re-reads the appointment before sending (core.notify.pipeline), which catches a change
that raced with an already claimed reminder.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from core.booking.model import Appointment
from core.db.database import Sql, UnitOfWork
from core.i18n import N_, local_day_and_time, translate
from core.notify.policy import DeliveryPolicy, MessageKind, Priority, preferred_channel

REMINDER_TEMPLATE = N_("sms.reminder")

REASON_CANCELLED = "appointment cancelled"
REASON_MOVED = "appointment moved"

# A planned reminder that was revoked (and never sent) comes back when the appointment returns
# to the same time, so moving 09:00 → 11:00 → 09:00 still ends with the 09:00 reminders.
_UPSERT_REMINDER = Sql(
    """
    INSERT INTO outbox_messages (
        dedupe_key, patient_id, recipient, channel, template, variables, language, body,
        priority, not_before, status, attempts, kind, appointment_id, appointment_starts_at,
        created_at, updated_at
    ) VALUES (
        :dedupe_key, :patient_id, :recipient, :channel, :template, :variables, :language, :body,
        :priority, :not_before, 'queued', 0, :kind, :appointment_id, :appointment_starts_at,
        :now, :now
    )
    ON CONFLICT (dedupe_key) DO UPDATE SET
        status = 'queued', status_reason = NULL, attempts = 0, enqueued_at = NULL,
        recipient = excluded.recipient, variables = excluded.variables,
        language = excluded.language, body = excluded.body, not_before = excluded.not_before,
        updated_at = excluded.updated_at
    WHERE outbox_messages.status = 'suppressed' AND outbox_messages.sent_at IS NULL
    RETURNING id
    """
)
_REVOKE = Sql(
    """
    UPDATE outbox_messages
    SET status = 'suppressed', status_reason = :reason, updated_at = :now
    WHERE appointment_id = :appointment_id AND kind = :kind AND status = 'queued'
    """
)


_QUEUED_REMINDERS = Sql(
    """
    SELECT id, variables, appointment_starts_at FROM outbox_messages
    WHERE patient_id = :patient_id AND kind = :kind AND status = 'queued'
    """
)
_RELOCALIZE = Sql(
    """
    UPDATE outbox_messages
    SET language = :language, variables = :variables, body = :body, updated_at = :now
    WHERE id = :id AND status = 'queued'
    """
)


def reminder_label(offset: timedelta) -> str:
    """Name a reminder kind by its offset: "24h", "1h", "90m"."""
    minutes = int(offset.total_seconds() // 60)
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def reminder_dedupe_key(appointment_id: int, offset: timedelta, due: datetime) -> str:
    return f"appointment:{appointment_id}:reminder:{reminder_label(offset)}:{due.isoformat()}"


def planned_send_times(
    *, starts_at: datetime, now: datetime, policy: DeliveryPolicy
) -> list[tuple[timedelta, datetime, datetime]]:
    """Return (offset, due time, send time) for each reminder still worth sending.

    A reminder already due at `now` is skipped, as for a booking made the same day, and so is one
    that quiet hours would push to the appointment's start or later.
    """
    planned = []
    for offset in policy.reminder_offsets:
        due = starts_at - offset
        if due <= now:
            continue
        send_at = policy.earliest_send(due, Priority.NORMAL)
        if send_at >= starts_at:
            continue
        planned.append((offset, due, send_at))
    return planned


async def schedule_reminders(
    uow: UnitOfWork,
    *,
    appointment: Appointment,
    recipient: str,
    language: str,
    service_code: str,
    policy: DeliveryPolicy,
    now: datetime,
) -> list[int]:
    """Write the appointment's reminders in the caller's transaction; return the new row ids."""
    variables = {
        "doctor": appointment.doctor_name,
        "when": local_day_and_time(appointment.starts_at, policy.zone, language),
        "reference": appointment.reference,
        "service_code": service_code,
    }
    body = translate(language, REMINDER_TEMPLATE, **variables)
    channel = preferred_channel(patient_id=appointment.patient_id, phone=recipient, now=now)
    ids: list[int] = []
    for offset, due, send_at in planned_send_times(
        starts_at=appointment.starts_at, now=now, policy=policy
    ):
        message_id = await uow.scalar(
            _UPSERT_REMINDER,
            dedupe_key=reminder_dedupe_key(appointment.id, offset, due),
            patient_id=appointment.patient_id,
            recipient=recipient,
            channel=channel,
            template=REMINDER_TEMPLATE,
            variables=json.dumps(variables, ensure_ascii=False, sort_keys=True),
            language=language,
            body=body,
            priority=int(Priority.NORMAL),
            not_before=send_at,
            kind=MessageKind.REMINDER.value,
            appointment_id=appointment.id,
            appointment_starts_at=appointment.starts_at,
            now=now,
        )
        if message_id is not None:
            ids.append(message_id)
    return ids


async def revoke_reminders(
    uow: UnitOfWork, *, appointment_id: int, reason: str, now: datetime
) -> int:
    """Suppress the appointment's reminders that have not gone out; return how many."""
    return await uow.execute(
        _REVOKE,
        appointment_id=appointment_id,
        kind=MessageKind.REMINDER.value,
        reason=reason,
        now=now,
    )


async def move_reminders(
    uow: UnitOfWork,
    *,
    appointment: Appointment,
    recipient: str,
    language: str,
    service_code: str,
    policy: DeliveryPolicy,
    now: datetime,
) -> list[int]:
    """Revoke the reminders for the old time and plan those for `appointment.starts_at`."""
    await revoke_reminders(uow, appointment_id=appointment.id, reason=REASON_MOVED, now=now)
    return await schedule_reminders(
        uow,
        appointment=appointment,
        recipient=recipient,
        language=language,
        service_code=service_code,
        policy=policy,
        now=now,
    )


async def relocalize_reminders(
    uow: UnitOfWork, *, patient_id: int, language: str, zone: ZoneInfo, now: datetime
) -> int:
    """Write the patient's queued reminders again in `language`; return how many changed.

    A reminder's text is written when it is planned, so without this a patient who switches
    language would get reminders in the one they had when they booked.
    """
    rows = await uow.all(_QUEUED_REMINDERS, patient_id=patient_id, kind=MessageKind.REMINDER.value)
    for row in rows:
        variables = json.loads(row["variables"])
        variables["when"] = local_day_and_time(row["appointment_starts_at"], zone, language)
        await uow.execute(
            _RELOCALIZE,
            id=row["id"],
            language=language,
            variables=json.dumps(variables, ensure_ascii=False, sort_keys=True),
            body=translate(language, REMINDER_TEMPLATE, **variables),
            now=now,
        )
    return len(rows)
