"""My appointments: list, cancel and reschedule."""

from __future__ import annotations

import enum
from datetime import date, datetime, timedelta

from bot.engine.commands import CancelAppointment, RescheduleAppointment
from bot.engine.flow import Finish, Flow, Go, Home, Outcome, Step, StepContext
from bot.engine.model import Choice, Screen, Text
from bot.flows.common import day_choices, render_slot_taken, time_choices
from core.errors import ChangeTooLate, NotFound, SlotUnavailable
from core.i18n import local_date, local_day_and_time, money


class State(enum.Enum):
    LIST = "LIST"
    DETAIL = "DETAIL"
    CANCEL = "CANCEL"
    NEW_DAY = "NEW_DAY"
    NEW_TIME = "NEW_TIME"
    MOVE = "MOVE"
    TAKEN = "TAKEN"


def _when(context: StepContext, starts_at: datetime) -> str:
    return local_day_and_time(starts_at, context.zone, context.language)


def _cutoff_hours(context: StepContext) -> str:
    hours = float(context.settings.get("change_cutoff_hours", 0))
    return f"{hours:g}"


async def render_list(context: StepContext) -> Screen:
    appointments = await context.queries.upcoming_appointments()
    return Screen(
        body=(Text("appointments.title"),),
        choices=tuple(
            Choice(str(a.id), f"{_when(context, a.starts_at)} {a.doctor_name}")
            for a in appointments
        ),
        empty=Text("appointments.none"),
    )


async def handle_list(context: StepContext, value: str) -> Outcome:
    context.data["appointment_id"] = int(value)
    return Go(State.DETAIL)


async def render_detail(context: StepContext) -> Screen:
    appointment = await context.queries.appointment(int(context.data["appointment_id"]))
    detail = Text(
        "appointments.detail",
        reference=appointment.reference,
        doctor=appointment.doctor_name,
        when=_when(context, appointment.starts_at),
        fee=money(appointment.fee_kes, context.language),
    )
    cutoff = timedelta(hours=float(context.settings.get("change_cutoff_hours", 0)))
    if appointment.starts_at - context.now < cutoff:
        # Offer no cancel or change the service would then refuse.
        return Screen(body=(detail, Text("appointments.locked", hours=_cutoff_hours(context))))
    return Screen(
        body=(detail,),
        choices=(
            Choice("cancel", Text("appointments.cancel")),
            Choice("move", Text("appointments.reschedule")),
        ),
    )


async def handle_detail(context: StepContext, value: str) -> Outcome:
    appointment = await context.queries.appointment(int(context.data["appointment_id"]))
    context.data["doctor_id"] = appointment.doctor_id
    return Go(State.CANCEL if value == "cancel" else State.NEW_DAY)


async def render_cancel(context: StepContext) -> Screen:
    appointment = await context.queries.appointment(int(context.data["appointment_id"]))
    return Screen(
        body=(
            Text(
                "appointments.cancel_confirm",
                doctor=appointment.doctor_name,
                when=_when(context, appointment.starts_at),
            ),
        ),
        choices=(Choice("yes", Text("appointments.yes_cancel")), Choice("no", Text("common.no"))),
    )


async def handle_cancel(context: StepContext, value: str) -> Outcome:
    if value == "no":
        return Home()
    try:
        appointment = await context.commands.execute(
            CancelAppointment(appointment_id=int(context.data["appointment_id"]))
        )
    except ChangeTooLate:
        return Home(Text("appointments.too_late", hours=_cutoff_hours(context)))
    except NotFound:
        return Home(Text("appointments.gone"))
    return Finish(Text("appointments.cancelled", reference=appointment.reference))


async def render_new_day(context: StepContext) -> Screen:
    days = await context.queries.open_days(int(context.data["doctor_id"]))
    return Screen(
        body=(Text("appointments.choose_new_day"),),
        choices=day_choices(context, days),
        empty=Text("booking.no_days"),
    )


async def handle_new_day(context: StepContext, value: str) -> Outcome:
    context.data["day"] = value
    return Go(State.NEW_TIME)


async def render_new_time(context: StepContext) -> Screen:
    day = date.fromisoformat(str(context.data["day"]))
    slots = await context.queries.free_slots(int(context.data["doctor_id"]), day)
    return Screen(
        body=(Text("booking.choose_time", day=local_date(day, context.language)),),
        choices=time_choices(context, slots),
        empty=Text("booking.no_times"),
    )


async def handle_new_time(context: StepContext, value: str) -> Outcome:
    context.data["new_slot_id"] = int(value)
    return Go(State.MOVE)


async def render_move(context: StepContext) -> Screen:
    appointment = await context.queries.appointment(int(context.data["appointment_id"]))
    slot = await context.queries.slot(int(context.data["new_slot_id"]))
    new_when = _when(context, slot.starts_at) if slot else "?"
    return Screen(
        body=(
            Text(
                "appointments.move_confirm",
                reference=appointment.reference,
                old=_when(context, appointment.starts_at),
                new=new_when,
            ),
        ),
        choices=(Choice("yes", Text("appointments.yes_move")), Choice("no", Text("common.no"))),
    )


async def handle_move(context: StepContext, value: str) -> Outcome:
    if value == "no":
        return Home()
    command = RescheduleAppointment(
        appointment_id=int(context.data["appointment_id"]),
        new_slot_id=int(context.data["new_slot_id"]),
    )
    try:
        appointment = await context.commands.execute(command)
    except SlotUnavailable as exc:
        context.data["alternatives"] = [slot.id for slot in exc.alternatives]
        return Go(State.TAKEN, replace=True)
    except ChangeTooLate:
        return Home(Text("appointments.too_late", hours=_cutoff_hours(context)))
    except NotFound:
        return Home(Text("appointments.gone"))
    return Finish(
        Text(
            "appointments.rescheduled",
            reference=appointment.reference,
            when=_when(context, appointment.starts_at),
        ),
        (Text("booking.confirmation_follows"),),
    )


async def handle_taken(context: StepContext, value: str) -> Outcome:
    context.data["new_slot_id"] = int(value)
    return Go(State.MOVE, replace=True)


FLOW = Flow(
    name="appointments",
    states=State,
    initial=State.LIST,
    steps={
        State.LIST: Step(render_list, handle_list),
        State.DETAIL: Step(render_detail, handle_detail),
        State.CANCEL: Step(render_cancel, handle_cancel, commits=True),
        State.NEW_DAY: Step(render_new_day, handle_new_day),
        State.NEW_TIME: Step(render_new_time, handle_new_time),
        State.MOVE: Step(render_move, handle_move, commits=True),
        State.TAKEN: Step(render_slot_taken, handle_taken),
    },
    transitions={
        State.LIST: frozenset({State.DETAIL}),
        State.DETAIL: frozenset({State.CANCEL, State.NEW_DAY}),
        State.NEW_DAY: frozenset({State.NEW_TIME}),
        State.NEW_TIME: frozenset({State.MOVE}),
        State.MOVE: frozenset({State.TAKEN}),
        State.TAKEN: frozenset({State.MOVE}),
    },
)
