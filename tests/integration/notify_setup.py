"""Booking, cancelling and moving appointments through the host's command executor, the code
path that writes confirmation and reminder rows in the booking transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.engine.commands import BookAppointment, CancelAppointment, RescheduleAppointment
from bot.engine.host import CommandExecutor
from bot.engine.model import Conversation
from core.booking.model import Appointment
from core.db.database import Sql
from myafya.app import host_config
from tests.integration.conftest import RunningService

NAIROBI = ZoneInfo("Africa/Nairobi")

SELECT_SLOT = Sql(
    "SELECT s.id FROM slots s JOIN doctors d ON d.id = s.doctor_id"
    " WHERE s.starts_at = :starts_at ORDER BY d.id LIMIT 1"
)
SELECT_OUTBOX = Sql(
    "SELECT id, kind, status, status_reason, not_before, body, attempts, last_error,"
    " provider_status FROM outbox_messages ORDER BY id"
)


def nairobi_time(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NAIROBI).astimezone(UTC)


async def slot_at(service: RunningService, starts_at: datetime) -> int:
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        slot_id = await uow.scalar(SELECT_SLOT, starts_at=starts_at)
    assert slot_id is not None, f"no demo slot at {starts_at}"
    return int(slot_id)


async def run_command(
    service: RunningService, phone: str, patient_id: int, command: Any, language: str = "en"
) -> Appointment:
    conversation = Conversation(
        phone=phone,
        flow="home",
        state="menu",
        channel="ussd",
        patient_id=patient_id,
        language=language,
    )
    config = host_config(service.services.settings)
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        executor = CommandExecutor(
            uow, conversation, config, service.clock.now(), service.services.dispatcher
        )
        appointment: Appointment = await executor.execute(command)
    # Let the confirmation go out now, as it would while the patient reads the USSD reply, so
    # a later clock jump does not race with it.
    await service.drain()
    return appointment


async def book(
    service: RunningService, phone: str, starts_at: datetime, language: str = "en"
) -> Appointment:
    patient_id = await service.register(phone, language=language)
    slot_id = await slot_at(service, starts_at)
    return await run_command(service, phone, patient_id, BookAppointment(slot_id), language)


async def cancel(service: RunningService, appointment: Appointment, phone: str) -> Appointment:
    return await run_command(
        service, phone, appointment.patient_id, CancelAppointment(appointment.id)
    )


async def move(
    service: RunningService, appointment: Appointment, phone: str, starts_at: datetime
) -> Appointment:
    slot_id = await slot_at(service, starts_at)
    return await run_command(
        service, phone, appointment.patient_id, RescheduleAppointment(appointment.id, slot_id)
    )


async def outbox_rows(service: RunningService) -> list[dict[str, Any]]:
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        return [dict(row) for row in await uow.all(SELECT_OUTBOX)]
