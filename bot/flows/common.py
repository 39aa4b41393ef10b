"""Screen pieces several flows share."""

from __future__ import annotations

from datetime import date

from bot.engine.flow import StepContext
from bot.engine.model import Choice
from core.booking.model import Slot
from core.i18n import local_date, local_day_and_time, local_time


def day_choices(context: StepContext, days: list[date]) -> tuple[Choice, ...]:
    return tuple(Choice(day.isoformat(), local_date(day, context.language)) for day in days)


def time_choices(context: StepContext, slots: list[Slot]) -> tuple[Choice, ...]:
    return tuple(
        Choice(str(slot.id), local_time(slot.starts_at, context.zone, context.language))
        for slot in slots
    )


def day_and_time_choices(context: StepContext, slots: list[Slot]) -> tuple[Choice, ...]:
    return tuple(
        Choice(str(slot.id), local_day_and_time(slot.starts_at, context.zone, context.language))
        for slot in slots
    )
