"""The home of a chat user who has not shared a phone number yet (Telegram).

Such a user can look at services and doctors, change the language and read the help, but
booking needs a verified phone number: "Book a doctor" and a chosen doctor lead to a screen with
Telegram's share-my-phone-number button. Telegram vouches for a shared contact only when it is the
sender's own, so a typed number is not accepted.
"""

from __future__ import annotations

import enum

from bot.engine.flow import Enter, Flow, FlowRef, Go, Outcome, Stay, Step, StepContext
from bot.engine.model import Choice, Screen, Text
from core.i18n import money


class State(enum.Enum):
    MENU = "MENU"
    SPECIALTY = "SPECIALTY"
    DOCTORS = "DOCTORS"
    SHARE = "SHARE"


MENU_LABELS = {
    "browse": Text("link.browse"),
    "book": Text("home.book"),
    "language": Text("home.language"),
    "help": Text("home.help"),
}
MENU_FLOWS = {"language": FlowRef("language"), "help": FlowRef("help")}


async def render_menu(context: StepContext) -> Screen:
    return Screen(
        body=(Text("link.welcome"),),
        choices=tuple(Choice(value, label) for value, label in MENU_LABELS.items()),
    )


async def handle_menu(context: StepContext, value: str) -> Outcome:
    if value == "browse":
        return Go(State.SPECIALTY)
    if value == "book":
        return Go(State.SHARE)
    return Enter(MENU_FLOWS[value])


async def render_specialty(context: StepContext) -> Screen:
    specialties = await context.queries.specialties()
    return Screen(
        body=(Text("booking.choose_specialty"),),
        choices=tuple(Choice(str(s.id), s.name(context.language)) for s in specialties),
        empty=Text("booking.no_doctors"),
    )


async def handle_specialty(context: StepContext, value: str) -> Outcome:
    context.data["specialty_id"] = int(value)
    return Go(State.DOCTORS)


async def render_doctors(context: StepContext) -> Screen:
    doctors = await context.queries.doctors(int(context.data["specialty_id"]))
    return Screen(
        body=(Text("link.doctors"),),
        choices=tuple(
            Choice(str(d.id), f"{d.name} {money(d.fee_kes, context.language)}") for d in doctors
        ),
        empty=Text("booking.no_doctors"),
    )


async def handle_doctors(context: StepContext, value: str) -> Outcome:
    return Go(State.SHARE)


async def render_share(context: StepContext) -> Screen:
    return Screen(
        body=(Text("link.share"),),
        accepts_text=True,
        request_contact=Text("link.share_button"),
    )


async def handle_share(context: StepContext, value: str) -> Outcome:
    # Typed text, perhaps a phone number: only the shared contact proves whose number it is.
    return Stay(Text("link.use_button"))


FLOW = Flow(
    name="link",
    states=State,
    initial=State.MENU,
    steps={
        State.MENU: Step(render_menu, handle_menu),
        State.SPECIALTY: Step(render_specialty, handle_specialty),
        State.DOCTORS: Step(render_doctors, handle_doctors),
        State.SHARE: Step(render_share, handle_share),
    },
    transitions={
        State.MENU: frozenset({State.SPECIALTY, State.SHARE, *MENU_FLOWS.values()}),
        State.SPECIALTY: frozenset({State.DOCTORS}),
        State.DOCTORS: frozenset({State.SHARE}),
    },
)
