"""WhatsApp's 24-hour window in the delivery policy, template settings and template variables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.channels.whatsapp.rendering import message_text, template_variables
from bot.engine.model import Option, Reply
from core.notify.outbox import MessageStatus, OutboundMessage
from core.notify.policy import DeliveryPolicy, Route, whatsapp_route
from myafya.settings import Settings, parse_template_sids

POLICY = DeliveryPolicy(
    zone=ZoneInfo("Africa/Nairobi"), whatsapp=True, whatsapp_templates=frozenset({"reminder"})
)
# The patient last wrote at 08:00 Nairobi time on 18 January 2027.
LAST_INBOUND = datetime(2027, 1, 18, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("case", "kind", "last_inbound_at", "now", "route"),
    [
        (
            "12 h after",
            "reminder",
            LAST_INBOUND,
            LAST_INBOUND + timedelta(hours=12),
            Route.WHATSAPP,
        ),
        (
            "a second before 24 h",
            "reminder",
            LAST_INBOUND,
            LAST_INBOUND + timedelta(hours=24) - timedelta(seconds=1),
            Route.WHATSAPP,
        ),
        (
            "exactly 24 h",
            "reminder",
            LAST_INBOUND,
            LAST_INBOUND + timedelta(hours=24),
            Route.WHATSAPP_TEMPLATE,
        ),
        (
            "reminder 25.5 h after",
            "reminder",
            LAST_INBOUND,
            LAST_INBOUND + timedelta(hours=25, minutes=30),
            Route.WHATSAPP_TEMPLATE,
        ),
        (
            "reply 25.5 h after, no template",
            "reply",
            LAST_INBOUND,
            LAST_INBOUND + timedelta(hours=25, minutes=30),
            Route.SMS,
        ),
        ("never wrote on WhatsApp", "reminder", None, LAST_INBOUND, Route.SMS),
    ],
)
def test_route_from_last_inbound(
    case: str, kind: str, last_inbound_at: datetime | None, now: datetime, route: Route
) -> None:
    chosen = whatsapp_route(kind=kind, last_inbound_at=last_inbound_at, now=now, policy=POLICY)

    assert chosen is route, case


def test_route_without_twilio_is_sms() -> None:
    policy = DeliveryPolicy(zone=ZoneInfo("Africa/Nairobi"))

    chosen = whatsapp_route(
        kind="reminder", last_inbound_at=LAST_INBOUND, now=LAST_INBOUND, policy=policy
    )

    assert chosen is Route.SMS


def test_template_sids_parsed() -> None:
    sids = parse_template_sids(
        " reminder=HX00000000000000000000000000000001 , booked=HX000000000000000000000000000000AB,"
    )

    assert sids == {
        "reminder": "HX00000000000000000000000000000001",
        "booked": "HX000000000000000000000000000000AB",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reminder", "expected KIND=HX"),
        ("birthday=HX00000000000000000000000000000001", "expected KIND=HX"),
        ("reminder=HX123", "invalid Content SID"),
    ],
)
def test_bad_template_sids_rejected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_template_sids(text)


def test_sandbox_has_placeholder_twilio_account() -> None:
    settings = Settings(_env_file=None, sandbox=True)  # type: ignore[call-arg]

    assert settings.twilio_credentials is not None
    assert settings.whatsapp_from == "whatsapp:+254700000100"
    assert settings.whatsapp_enabled
    assert set(settings.whatsapp_templates) == {"reminder", "booked"}
    assert settings.delivery_policy.whatsapp


def test_live_mode_without_twilio_disables_whatsapp() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, sandbox=False, at_username="clinic", at_api_key="key"
    )

    assert settings.twilio_credentials is None
    assert not settings.whatsapp_enabled
    assert not settings.delivery_policy.whatsapp


def test_account_sid_without_token_rejected() -> None:
    with pytest.raises(ValueError, match="must be set together"):
        Settings(  # type: ignore[call-arg]
            _env_file=None, sandbox=True, twilio_account_sid="AC" + "0" * 32
        )


def outbound(kind: str, **variables: object) -> OutboundMessage:
    return OutboundMessage(
        id=1,
        recipient="+254700000103",
        channel="whatsapp",
        body="stored body",
        status=MessageStatus.SENDING,
        attempts=1,
        kind=kind,
        variables=dict(variables),
    )


def test_reminder_template_variables_in_order() -> None:
    message = outbound(
        "reminder", doctor="Dr. Test Kamau", when="Tue 19 Jan 09:30", reference="TEST-0001"
    )

    assert template_variables(message) == {
        "1": "Dr. Test Kamau",
        "2": "Tue 19 Jan 09:30",
        "3": "TEST-0001",
    }


def test_other_kind_template_gets_whole_text() -> None:
    assert template_variables(outbound("payment_receipt")) == {"1": "stored body"}


def test_reply_drawn_as_numbered_text() -> None:
    reply = Reply(
        body="MyAfya menu:",
        options=(Option("1", "Book a doctor"), Option("2", "My appointments")),
        navigation=(Option("00", "Menu"),),
    )
    message = outbound("reply", reply=reply.to_json())

    assert message_text(message) == "MyAfya menu:\n1. Book a doctor\n2. My appointments\n00. Menu"


def test_long_text_cut_to_twilio_limit() -> None:
    message = outbound("reply", reply=Reply(body="x" * 2000).to_json())

    text = message_text(message)

    assert len(text) == 1600
    assert text.endswith("...")
