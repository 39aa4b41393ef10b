"""Switching the patient's language from the home menu."""

from __future__ import annotations

import enum

from bot.engine.commands import ChangeLanguage
from bot.engine.flow import Flow, Home, Outcome, Step, StepContext
from bot.engine.model import Choice, Screen, Text


class State(enum.Enum):
    CHOOSE = "CHOOSE"


async def render_choose(context: StepContext) -> Screen:
    return Screen(
        body=(Text("language.choose"),),
        choices=(Choice("en", "English"), Choice("sw", "Kiswahili")),
    )


async def handle_choose(context: StepContext, value: str) -> Outcome:
    await context.commands.execute(ChangeLanguage(language=value))
    context.language = value
    return Home(Text("language.changed"))


FLOW = Flow(
    name="language",
    states=State,
    initial=State.CHOOSE,
    steps={State.CHOOSE: Step(render_choose, handle_choose)},
    transitions={State.CHOOSE: frozenset()},
)
