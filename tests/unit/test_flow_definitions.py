"""Flow tables are checked when a flow is defined, not when a patient reaches a bad state."""

from __future__ import annotations

import enum

import pytest

from bot.engine.flow import (
    Flow,
    FlowDefinitionError,
    FlowRef,
    Step,
    TransitionError,
    validate_registry,
)
from bot.engine.model import Screen, Text
from bot.flows import FLOWS


class Sample(enum.Enum):
    ONE = "ONE"
    TWO = "TWO"


class Other(enum.Enum):
    ELSEWHERE = "ELSEWHERE"


async def render(context) -> Screen:
    return Screen(body=(Text("home.title"),))


def test_registered_flows_are_valid() -> None:
    assert set(FLOWS) == {
        "registration",
        "home",
        "booking",
        "appointments",
        "language",
        "help",
        "link",
    }
    validate_registry(FLOWS)


def test_missing_step_is_rejected() -> None:
    with pytest.raises(FlowDefinitionError, match="no step for states"):
        Flow("sample", Sample, Sample.ONE, {Sample.ONE: Step(render)}, {})


def test_transition_out_of_flow_needs_flowref() -> None:
    with pytest.raises(FlowDefinitionError, match="leaves the flow"):
        Flow(
            "sample",
            Sample,
            Sample.ONE,
            {Sample.ONE: Step(render), Sample.TWO: Step(render)},
            {Sample.ONE: frozenset({Other.ELSEWHERE})},
        )


def test_unknown_flow_reference_is_rejected() -> None:
    flow = Flow(
        "sample",
        Sample,
        Sample.ONE,
        {Sample.ONE: Step(render), Sample.TWO: Step(render)},
        {Sample.ONE: frozenset({FlowRef("nowhere")})},
    )
    with pytest.raises(FlowDefinitionError, match="unknown flow nowhere"):
        validate_registry({"sample": flow})


def test_transition_outside_table_raises() -> None:
    flow = Flow(
        "sample",
        Sample,
        Sample.ONE,
        {Sample.ONE: Step(render), Sample.TWO: Step(render)},
        {Sample.ONE: frozenset({Sample.TWO})},
    )
    flow.check(Sample.ONE, Sample.TWO)
    with pytest.raises(TransitionError):
        flow.check(Sample.TWO, Sample.ONE)
