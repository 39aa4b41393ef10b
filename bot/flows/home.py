"""The home menu every conversation returns to."""

from __future__ import annotations

import enum

from bot.engine.flow import Enter, Flow, FlowRef, Outcome, Step, StepContext
from bot.engine.model import Choice, Screen, Text


class State(enum.Enum):
    MENU = "MENU"


MENU_TARGETS = {
    "book": FlowRef("booking"),
    "appointments": FlowRef("appointments"),
    "language": FlowRef("language"),
    "help": FlowRef("help"),
}
MENU_LABELS = {
    "book": Text("home.book"),
    "appointments": Text("home.appointments"),
    "language": Text("home.language"),
    "help": Text("home.help"),
}


async def render_menu(context: StepContext) -> Screen:
    return Screen(
        body=(Text("home.title"),),
        choices=tuple(Choice(value, MENU_LABELS[value]) for value in MENU_TARGETS),
    )


async def handle_menu(context: StepContext, value: str) -> Outcome:
    return Enter(MENU_TARGETS[value])


FLOW = Flow(
    name="home",
    states=State,
    initial=State.MENU,
    steps={State.MENU: Step(render_menu, handle_menu)},
    transitions={State.MENU: frozenset(MENU_TARGETS.values())},
)
