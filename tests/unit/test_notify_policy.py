"""Quiet hours, back-off, reminder planning and the provider status table."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.notify.outbox import MessageStatus
from core.notify.policy import Backoff, DeliveryPolicy, Priority, QuietHours, is_essential
from core.notify.reminders import planned_send_times, reminder_dedupe_key
from core.notify.statuses import map_provider_status, moves_forward
from myafya.settings import SettingsError, load_settings, parse_reminder_offsets

NAIROBI = ZoneInfo("Africa/Nairobi")
QUIET = QuietHours.parse("21:00-07:00")


def eat(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 1, day, hour, minute, tzinfo=NAIROBI).astimezone(UTC)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (eat(20, 20, 59), eat(20, 20, 59)),
        (eat(20, 21, 0), eat(21, 7, 0)),
        (eat(20, 23, 30), eat(21, 7, 0)),
        (eat(21, 2, 0), eat(21, 7, 0)),
        (eat(21, 7, 0), eat(21, 7, 0)),
    ],
)
def test_quiet_hours_next_allowed(moment: datetime, expected: datetime) -> None:
    assert QUIET.next_allowed(moment, NAIROBI) == expected


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours.parse("12:00-13:00")
    assert lunch.contains(eat(20, 12, 30), NAIROBI)
    assert not lunch.contains(eat(20, 13, 0), NAIROBI)
    assert not QuietHours.parse("").contains(eat(20, 23, 0), NAIROBI)


def test_quiet_hours_rejects_bad_text() -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        QuietHours.parse("9pm-7am")


def test_urgent_ignores_quiet_hours() -> None:
    policy = DeliveryPolicy(zone=NAIROBI, quiet_hours=QUIET)
    assert policy.earliest_send(eat(20, 22), Priority.URGENT) == eat(20, 22)
    assert policy.earliest_send(eat(20, 22), Priority.NORMAL) == eat(21, 7)


def test_backoff_doubles_with_jitter_and_cap() -> None:
    backoff = Backoff(base_seconds=30, max_seconds=600)
    rng = random.Random(7)
    for attempts, cap in [(1, 30), (2, 60), (3, 120), (6, 600), (20, 600)]:
        delay = backoff.delay(attempts, rng)
        assert timedelta(seconds=cap / 2) <= delay <= timedelta(seconds=cap)


def test_reminder_plan_skips_past_and_quiet() -> None:
    policy = DeliveryPolicy(zone=NAIROBI, quiet_hours=QUIET)
    # Booked at 08:00 for 11:00 the same day: the 24-hour reminder has passed.
    plan = planned_send_times(starts_at=eat(20, 11), now=eat(20, 8), policy=policy)
    assert [(offset, sent) for offset, _, sent in plan] == [(timedelta(hours=1), eat(20, 10))]
    # 07:00 appointment: the 1-hour reminder falls at 06:00, in quiet hours until the start.
    plan = planned_send_times(starts_at=eat(22, 7), now=eat(20, 8), policy=policy)
    assert [offset for offset, _, _ in plan] == [timedelta(hours=24)]


def test_reminder_dedupe_key_names_kind_and_time() -> None:
    key = reminder_dedupe_key(42, timedelta(hours=1), eat(15, 8))
    assert key == "appointment:42:reminder:1h:2027-01-15T05:00:00+00:00"


def test_essential_kinds() -> None:
    assert is_essential("payment_receipt")
    assert is_essential("booked")
    assert not is_essential("reminder")
    assert not is_essential(None)


@pytest.mark.parametrize(
    ("provider", "status", "expected"),
    [
        ("africastalking", "Sent", MessageStatus.SENT),
        ("africastalking", "Submitted", MessageStatus.SENT),
        ("africastalking", "Buffered", MessageStatus.SENT),
        ("africastalking", "Success", MessageStatus.DELIVERED),
        ("africastalking", "Rejected", MessageStatus.FAILED),
        ("africastalking", "Failed", MessageStatus.FAILED),
        ("africastalking", "Expired", MessageStatus.FAILED),
        ("twilio", "queued", MessageStatus.SENT),
        ("twilio", "delivered", MessageStatus.DELIVERED),
        ("twilio", "read", MessageStatus.DELIVERED),
        ("twilio", "undelivered", MessageStatus.FAILED),
        ("africastalking", "Teleported", None),
    ],
)
def test_provider_status_table(provider: str, status: str, expected: MessageStatus) -> None:
    assert map_provider_status(provider, status) == expected


def test_statuses_only_move_forward() -> None:
    assert moves_forward(MessageStatus.SENT, MessageStatus.DELIVERED)
    assert not moves_forward(MessageStatus.DELIVERED, MessageStatus.SENT)
    assert not moves_forward(MessageStatus.FAILED, MessageStatus.DELIVERED)
    assert not moves_forward(MessageStatus.SENT, MessageStatus.SENT)


def test_reminder_offsets_setting() -> None:
    assert parse_reminder_offsets("60, 1440") == (timedelta(hours=24), timedelta(hours=1))
    assert parse_reminder_offsets("") == ()
    with pytest.raises(ValueError, match="whole minutes"):
        parse_reminder_offsets("1h")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MYAFYA_QUIET_HOURS", "late"),
        ("MYAFYA_REMINDER_OFFSETS_MINUTES", "0"),
        ("MYAFYA_BROKER_URL", "kafka://127.0.0.1:9092"),
        ("MYAFYA_MAX_SEND_ATTEMPTS", "0"),
    ],
)
def test_invalid_delivery_settings(monkeypatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings(env_file=None)


def test_quiet_hours_default() -> None:
    settings = load_settings(env_file=None)
    assert settings.delivery_policy.quiet_hours == QuietHours(time(21), time(7))


def test_broker_from_url() -> None:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.brokers.stub import StubBroker

    from jobs.broker import QUEUE_NAME, build_broker

    # None of these connects before the first enqueue or consume.
    assert isinstance(build_broker(None), StubBroker)
    redis_broker = build_broker("redis://127.0.0.1:6379/0", namespace="test-ns")
    assert isinstance(redis_broker, RedisBroker)
    assert redis_broker.namespace == "test-ns"
    rabbitmq_broker = build_broker("amqp://guest:guest@127.0.0.1:5672/")
    assert isinstance(rabbitmq_broker, RabbitmqBroker)
    assert QUEUE_NAME in rabbitmq_broker.queues
    with pytest.raises(ValueError, match="unsupported broker URL scheme in 'kafka'"):
        build_broker("kafka://127.0.0.1:9092")
