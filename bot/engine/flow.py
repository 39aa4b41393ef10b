"""Flows as state machines: states are an Enum, transitions a table checked at import."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bot.engine.model import Screen, Text
from bot.engine.ports import Queries


class FlowDefinitionError(Exception):
    """A flow's states, steps and transitions do not fit together."""


class TransitionError(Exception):
    """A step asked for a transition its flow's table does not allow."""


@dataclass(frozen=True)
class FlowRef:
    """A transition target in another flow, at that flow's initial state unless named."""

    flow: str
    state: str | None = None


# --- what a step returns ---------------------------------------------------------------------


@dataclass(frozen=True)
class Go:
    """Move to another state of this flow.

    The current state is pushed for `0` (back) unless `replace` is set, as for a screen that
    only reports a problem with the one before it.
    """

    state: enum.Enum
    notice: Text | None = None
    replace: bool = False


@dataclass(frozen=True)
class Enter:
    """Start another flow."""

    target: FlowRef
    notice: Text | None = None


@dataclass(frozen=True)
class Stay:
    """Show the current screen again, with a notice above it."""

    notice: Text


@dataclass(frozen=True)
class Home:
    """Return to the home menu, dropping the back stack."""

    notice: Text | None = None


@dataclass(frozen=True)
class Finish:
    """Show a final message; USSD ends the session, chats go home on the next message."""

    message: Text
    extra: tuple[Text, ...] = ()


Outcome = Go | Enter | Stay | Home | Finish


# --- what a step can use ---------------------------------------------------------------------


class Commands(Protocol):
    """The write port of a flow; the host applies commands in the conversation's transaction."""

    async def execute(self, command: Any) -> Any: ...


@dataclass
class StepContext:
    data: dict[str, Any]
    language: str
    now: datetime
    zone: ZoneInfo
    patient_id: int | None
    queries: Queries
    commands: Commands
    settings: Mapping[str, Any] = field(default_factory=dict)


Render = Callable[[StepContext], Awaitable[Screen]]
# A handler receives the chosen option's value, or the typed text on a text step.
Handle = Callable[[StepContext, str], Awaitable[Outcome]]


@dataclass(frozen=True)
class Step:
    render: Render
    handle: Handle | None = None  # None: the screen offers navigation only
    # The handler runs a command (book, cancel, register), so it must only act on an answer
    # to a screen the patient has seen.
    commits: bool = False


@dataclass(frozen=True)
class Flow:
    """One dialog: its states, the step behind each, and the allowed transitions."""

    name: str
    states: type[enum.Enum]
    initial: enum.Enum
    steps: Mapping[enum.Enum, Step]
    transitions: Mapping[enum.Enum, frozenset[enum.Enum | FlowRef]]

    def __post_init__(self) -> None:
        missing = [state.name for state in self.states if state not in self.steps]
        if missing:
            raise FlowDefinitionError(f"flow {self.name}: no step for states {missing}")
        for source, targets in self.transitions.items():
            if not isinstance(source, self.states):
                raise FlowDefinitionError(f"flow {self.name}: {source!r} is not one of its states")
            for target in targets:
                if isinstance(target, enum.Enum) and not isinstance(target, self.states):
                    raise FlowDefinitionError(
                        f"flow {self.name}: transition {source.name} -> {target!r} "
                        "leaves the flow without a FlowRef"
                    )
        if not isinstance(self.initial, self.states):
            raise FlowDefinitionError(f"flow {self.name}: initial state is not one of its states")

    def state(self, name: str) -> enum.Enum:
        try:
            return self.states[name]
        except KeyError:
            raise TransitionError(f"flow {self.name} has no state {name}") from None

    def check(self, source: enum.Enum, target: enum.Enum | FlowRef) -> None:
        allowed = self.transitions.get(source, frozenset())
        if isinstance(target, FlowRef):
            if FlowRef(target.flow) in allowed or target in allowed:
                return
        elif target in allowed:
            return
        raise TransitionError(f"flow {self.name}: {source.name} -> {target} is not in its table")


def validate_registry(flows: Mapping[str, Flow]) -> None:
    """Check that every FlowRef names a registered flow and one of its states."""
    for flow in flows.values():
        for targets in flow.transitions.values():
            for target in targets:
                if not isinstance(target, FlowRef):
                    continue
                other = flows.get(target.flow)
                if other is None:
                    raise FlowDefinitionError(
                        f"flow {flow.name} refers to unknown flow {target.flow}"
                    )
                if target.state is not None and target.state not in other.states.__members__:
                    raise FlowDefinitionError(
                        f"flow {flow.name} refers to unknown state {target.flow}.{target.state}"
                    )
