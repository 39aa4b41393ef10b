"""The registry of flows, validated when this package is imported."""

from __future__ import annotations

from bot.engine.engine import HomeTargets
from bot.engine.flow import Flow, FlowRef, validate_registry
from bot.flows import appointments, booking, help, home, language, link, registration

FLOWS: dict[str, Flow] = {
    flow.name: flow
    for flow in (
        registration.FLOW,
        home.FLOW,
        booking.FLOW,
        appointments.FLOW,
        language.FLOW,
        help.FLOW,
        link.FLOW,
    )
}
validate_registry(FLOWS)

HOME_TARGETS = HomeTargets(
    registered=FlowRef("home"),
    unregistered=FlowRef("registration"),
    unlinked=FlowRef("link"),
    unregistered_with_language=FlowRef("registration", registration.State.NAME.name),
)
