"""Screen pieces several flows share."""

from __future__ import annotations

from datetime import date

from bot.engine.flow import StepContext
from bot.engine.model import Choice, Screen, Text
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


async def render_slot_taken(context: StepContext) -> Screen:
    """Offer the alternatives a failed booking or move stored under "alternatives"."""
    slots = []
    for slot_id in context.data.get("alternatives", []):
        slot = await context.queries.slot(int(slot_id))
        if slot is not None:
            slots.append(slot)
    return Screen(
        body=(Text("booking.slot_taken"),),
        choices=day_and_time_choices(context, slots),
        empty=Text("booking.no_alternatives"),
    )
