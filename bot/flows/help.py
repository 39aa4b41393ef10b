"""How to use the service, reachable from the home menu."""

from __future__ import annotations

import enum

from bot.engine.flow import Flow, Step, StepContext
from bot.engine.model import Screen, Text


class State(enum.Enum):
    INFO = "INFO"


async def render_info(context: StepContext) -> Screen:
    return Screen(body=(Text("help.body"),))


FLOW = Flow(
    name="help",
    states=State,
    initial=State.INFO,
    steps={State.INFO: Step(render_info)},
    transitions={},
)
