"""Booking: specialty, doctor, day, time, confirm."""

from __future__ import annotations

import enum
from datetime import date

from bot.engine.commands import BookAppointment
from bot.engine.flow import Finish, Flow, Go, Home, Outcome, Step, StepContext
from bot.engine.model import Choice, Screen, Text
from bot.flows.common import day_choices, render_slot_taken, time_choices
from core.booking.model import Appointment, Slot
from core.errors import AlreadyBookedThen, SlotUnavailable, TooManyAppointments
from core.i18n import local_date, local_day_and_time, money


class State(enum.Enum):
    SPECIALTY = "SPECIALTY"
    DOCTOR = "DOCTOR"
    DAY = "DAY"
    TIME = "TIME"
    CONFIRM = "CONFIRM"
    TAKEN = "TAKEN"


async def render_specialty(context: StepContext) -> Screen:
    specialties = await context.queries.specialties()
    return Screen(
        body=(Text("booking.choose_specialty"),),
        choices=tuple(Choice(str(s.id), s.name(context.language)) for s in specialties),
        empty=Text("booking.no_doctors"),
    )


async def handle_specialty(context: StepContext, value: str) -> Outcome:
    context.data["specialty_id"] = int(value)
    return Go(State.DOCTOR)


async def render_doctor(context: StepContext) -> Screen:
    doctors = await context.queries.doctors(int(context.data["specialty_id"]))
    return Screen(
        body=(Text("booking.choose_doctor"),),
        choices=tuple(
            Choice(str(d.id), f"{d.name} {money(d.fee_kes, context.language)}") for d in doctors
        ),
        empty=Text("booking.no_doctors"),
    )


async def handle_doctor(context: StepContext, value: str) -> Outcome:
    context.data["doctor_id"] = int(value)
    return Go(State.DAY)


async def render_day(context: StepContext) -> Screen:
    doctor = await context.queries.doctor(int(context.data["doctor_id"]))
    days = await context.queries.open_days(doctor.id)
    return Screen(
        body=(Text("booking.choose_day", doctor=doctor.name),),
        choices=day_choices(context, days),
        empty=Text("booking.no_days"),
    )


async def handle_day(context: StepContext, value: str) -> Outcome:
    context.data["day"] = value
    return Go(State.TIME)


# Set in the flow's data once a booking clashed with the patient's own appointment, so that
# later time lists leave out the times the patient already has.
SKIP_OWN_TIMES_KEY = "skip_own_times"


async def render_time(context: StepContext) -> Screen:
    day = date.fromisoformat(str(context.data["day"]))
    slots = await context.queries.free_slots(int(context.data["doctor_id"]), day)
    if context.data.get(SKIP_OWN_TIMES_KEY):
        # Only after a clash, so an ordinary walk costs no extra query.
        own = await context.queries.upcoming_appointments()
        slots = [slot for slot in slots if not any(_overlaps(slot, mine) for mine in own)]
    return Screen(
        body=(Text("booking.choose_time", day=local_date(day, context.language)),),
        choices=time_choices(context, slots),
        empty=Text("booking.no_times"),
    )


def _overlaps(slot: Slot, appointment: Appointment) -> bool:
    if appointment.ends_at is None:
        return slot.starts_at <= appointment.starts_at < slot.ends_at
    return slot.starts_at < appointment.ends_at and appointment.starts_at < slot.ends_at


async def handle_time(context: StepContext, value: str) -> Outcome:
    context.data["slot_id"] = int(value)
    return Go(State.CONFIRM)


async def render_confirm(context: StepContext) -> Screen:
    doctor = await context.queries.doctor(int(context.data["doctor_id"]))
    slot = await context.queries.slot(int(context.data["slot_id"]))
    when = local_day_and_time(slot.starts_at, context.zone, context.language) if slot else "?"
    return Screen(
        body=(
            Text(
                "booking.confirm",
                doctor=doctor.name,
                when=when,
                fee=money(doctor.fee_kes, context.language),
            ),
        ),
        choices=(
            Choice("yes", Text("booking.confirm_yes")),
            Choice("other", Text("booking.other_time")),
        ),
    )


async def handle_confirm(context: StepContext, value: str) -> Outcome:
    if value == "other":
        return Go(State.TIME, replace=True)
    try:
        appointment = await context.commands.execute(
            BookAppointment(slot_id=int(context.data["slot_id"]))
        )
    except SlotUnavailable as exc:
        context.data["alternatives"] = [slot.id for slot in exc.alternatives]
        return Go(State.TAKEN, replace=True)
    except AlreadyBookedThen:
        context.data[SKIP_OWN_TIMES_KEY] = True
        return Go(State.TIME, replace=True, notice=Text("booking.already_booked_then"))
    except TooManyAppointments as exc:
        return Home(Text("booking.too_many", **exc.params))
    return Finish(
        Text(
            "booking.booked",
            reference=appointment.reference,
            doctor=appointment.doctor_name,
            when=local_day_and_time(appointment.starts_at, context.zone, context.language),
        ),
        (Text("booking.confirmation_follows"),),
    )


async def handle_taken(context: StepContext, value: str) -> Outcome:
    context.data["slot_id"] = int(value)
    return Go(State.CONFIRM, replace=True)


FLOW = Flow(
    name="booking",
    states=State,
    initial=State.SPECIALTY,
    steps={
        State.SPECIALTY: Step(render_specialty, handle_specialty),
        State.DOCTOR: Step(render_doctor, handle_doctor),
        State.DAY: Step(render_day, handle_day),
        State.TIME: Step(render_time, handle_time),
        State.CONFIRM: Step(render_confirm, handle_confirm, commits=True),
        State.TAKEN: Step(render_slot_taken, handle_taken),
    },
    transitions={
        State.SPECIALTY: frozenset({State.DOCTOR}),
        State.DOCTOR: frozenset({State.DAY}),
        State.DAY: frozenset({State.TIME}),
        State.TIME: frozenset({State.CONFIRM}),
        State.CONFIRM: frozenset({State.TIME, State.TAKEN}),
        State.TAKEN: frozenset({State.CONFIRM}),
    },
)
