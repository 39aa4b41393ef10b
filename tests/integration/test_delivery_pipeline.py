"""The delivery pipeline end to end: the real Africa's Talking SDK against the sandbox fake,
dramatiq on Redis (or the embedded stub broker), delivery reports, the sandbox clock, /metrics and
`myafya outbox`."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest

from core.db.database import Sql
from core.notify.optouts import is_opted_out, opt_in, opt_out
from core.notify.outbox import DueMessage, enqueue_message
from jobs.broker import enqueue_sends
from myafya.settings import SANDBOX_AT_WEBHOOK_SECRET
from tests.conftest import DEFAULT_NOW, PAYLOADS
from tests.integration.conftest import RunningService, start_service
from tests.integration.test_cli import run_cli

WEBHOOK_SECRET = "test-delivery-report-secret"
DLR_PATH = "/webhooks/africastalking/sms/delivery"


def phone(index: int) -> str:
    return f"+2547000001{index:02d}"


async def write_messages(service: RunningService, count: int) -> list[int]:
    ids = []
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        for index in range(count):
            message_id = await enqueue_message(
                uow,
                dedupe_key=f"test:pipeline:{index}",
                patient_id=None,
                recipient=phone(index),
                channel="sms",
                template="sms.reminder",
                variables={},
                language="en",
                body=f"Test message {index}",
                now=service.clock.now(),
                kind="reminder",
            )
            ids.append(message_id)
    return ids


async def statuses(service: RunningService) -> list[tuple[str, int]]:
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        rows = await uow.all(Sql("SELECT status, attempts FROM outbox_messages ORDER BY id"))
    return [(row["status"], row["attempts"]) for row in rows]


@pytest.fixture
async def service_on_redis(
    database_url: str, clock, redis_broker: dict[str, str]
) -> AsyncIterator[RunningService]:
    running = await start_service(database_url, clock, worker_threads=2, **redis_broker)
    yield running
    await running.stop()


async def test_duplicate_job_delivery_sends_once(service_on_redis: RunningService) -> None:
    service = service_on_redis
    [message_id] = await write_messages(service, 1)
    duplicates = [DueMessage(message_id, 0)] * 3
    await asyncio.to_thread(enqueue_sends, service.services.jobs.broker, duplicates)
    await service.advance(0)  # the scheduler hands the row over once more
    messages = await service.sent_sms()
    assert [m["to"] for m in messages] == [phone(0)]
    assert await statuses(service) == [("sent", 1)]


async def test_gateway_outage_ends_with_one_send_each(service_on_redis: RunningService) -> None:
    service = service_on_redis
    # The SMS fake answers 503 to the next 10 requests: the first attempts of every message and
    # some retries fail, then the gateway recovers.
    response = await service.client.post(
        "/sandbox/faults",
        json={"service": "africastalking.sms", "http_status": 503, "count": 10},
    )
    assert response.status == 204
    await write_messages(service, 4)
    await service.advance(0)
    assert await service.sent_sms() == []
    assert {status for status, _ in await statuses(service)} == {"queued"}

    for _ in range(12):  # ten minutes a round, past the longest back-off these attempts reach
        await service.advance(600)
    sent = Counter(m["to"] for m in await service.sent_sms())
    assert sent == Counter({phone(index): 1 for index in range(4)})
    final = await statuses(service)
    assert {status for status, _ in final} == {"sent"}
    assert sum(attempts for _, attempts in final) == 4 + 10


async def test_delivery_reports_move_forward(database_url: str, clock) -> None:
    service = await start_service(database_url, clock, at_webhook_secret=WEBHOOK_SECRET)
    try:
        [message_id] = await write_messages(service, 1)
        service.services.dispatcher.dispatch_later(message_id)
        [sent] = await service.sent_sms()
        provider_id = sent["provider_message_id"]

        async def report(name: str, secret: str = WEBHOOK_SECRET) -> int:
            fields = dict(parse_qsl((PAYLOADS / f"at_sms_delivery_report_{name}.form").read_text()))
            fields["id"] = provider_id
            response = await service.client.post(
                f"{DLR_PATH}/{secret}",
                data=urlencode(fields),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            return response.status

        async def row() -> tuple[str, str | None]:
            status = await service.scalar(
                "SELECT status FROM outbox_messages WHERE id = :id", id=message_id
            )
            provider_status = await service.scalar(
                "SELECT provider_status FROM outbox_messages WHERE id = :id", id=message_id
            )
            return status, provider_status

        assert await report("sent") == 200
        assert await row() == ("sent", "Success")  # the send's own status; Sent is no step up
        assert await report("success") == 200
        assert await row() == ("delivered", "Success")
        assert await report("sent") == 200  # repeated, and late: changes nothing
        assert await report("failed") == 200  # a final status after another final one
        assert await row() == ("delivered", "Success")
        count = await service.scalar("SELECT COUNT(*) FROM delivery_reports")
        assert count == 3
    finally:
        await service.client.close()


async def test_delivery_report_marks_failure(database_url: str, clock) -> None:
    service = await start_service(database_url, clock, at_webhook_secret=WEBHOOK_SECRET)
    try:
        [message_id] = await write_messages(service, 1)
        service.services.dispatcher.dispatch_later(message_id)
        [sent] = await service.sent_sms()
        fields = dict(
            parse_qsl((PAYLOADS / "at_sms_delivery_report_rejected_blacklist.form").read_text())
        )
        fields["id"] = sent["provider_message_id"]
        response = await service.client.post(f"{DLR_PATH}/{WEBHOOK_SECRET}", data=fields)
        assert response.status == 200
        assert await service.scalar("SELECT status FROM outbox_messages") == "failed"
        assert await service.scalar("SELECT last_error FROM outbox_messages") == "UserInBlackList"
    finally:
        await service.client.close()


@pytest.mark.parametrize("secret", ["wrong-secret", ""])
async def test_delivery_report_needs_secret(sqlite_url: str, clock, secret: str) -> None:
    from core.db.migrate import upgrade_to_head

    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    service = await start_service(sqlite_url, clock, at_webhook_secret=WEBHOOK_SECRET)
    try:
        form = (PAYLOADS / "at_sms_delivery_report_success.form").read_text()
        response = await service.client.post(
            f"{DLR_PATH}/{secret}" if secret else f"{DLR_PATH}/",
            data=dict(parse_qsl(form)),
        )
        assert response.status in (403, 404)
        assert await service.scalar("SELECT COUNT(*) FROM delivery_reports") == 0
    finally:
        await service.client.close()


async def test_delivery_report_without_setting_is_rejected(sqlite_url: str, clock) -> None:
    from core.db.migrate import upgrade_to_head

    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    service = await start_service(sqlite_url, clock, sandbox=False)
    try:
        form = (PAYLOADS / "at_sms_delivery_report_success.form").read_text()
        for secret in ("anything", SANDBOX_AT_WEBHOOK_SECRET):
            response = await service.client.post(f"{DLR_PATH}/{secret}", data=dict(parse_qsl(form)))
            assert response.status == 403, secret
            assert "MYAFYA_AT_WEBHOOK_SECRET is not set" in await response.text()
        assert await service.scalar("SELECT COUNT(*) FROM delivery_reports") == 0
    finally:
        await service.client.close()


async def test_delivery_report_non_form_rejected(sqlite_service) -> None:
    response = await sqlite_service.client.post(
        f"{DLR_PATH}/{SANDBOX_AT_WEBHOOK_SECRET}",
        data=b'{"id": "ATXid_1", "status": "Success"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 415
    assert "must be application/x-www-form-urlencoded" in await response.text()
    assert await sqlite_service.scalar("SELECT COUNT(*) FROM delivery_reports") == 0


async def test_delivery_report_sandbox_placeholder_secret(sqlite_service) -> None:
    form = (PAYLOADS / "at_sms_delivery_report_success.form").read_text()
    response = await sqlite_service.client.post(
        f"{DLR_PATH}/{SANDBOX_AT_WEBHOOK_SECRET}", data=dict(parse_qsl(form))
    )
    assert response.status == 200
    assert await sqlite_service.scalar("SELECT COUNT(*) FROM delivery_reports") == 1


async def test_sandbox_clock_advances(sqlite_service) -> None:
    response = await sqlite_service.client.get("/sandbox/clock")
    assert await response.json() == {"now": DEFAULT_NOW.isoformat()}
    body = await sqlite_service.advance(90)
    assert body["now"] == "2027-02-01T06:01:30+00:00"
    assert body["queued"] == 0


@pytest.mark.parametrize(
    "body", [{"advance_seconds": -1}, {}, {"advance_seconds": "60"}, {"advance_seconds": True}]
)
async def test_sandbox_clock_rejects_bad_input(sqlite_service, body: dict) -> None:
    response = await sqlite_service.client.post("/sandbox/clock", json=body)
    assert response.status == 400
    error = await response.json()
    assert error["field"] == "advance_seconds"
    assert sqlite_service.clock.now() == DEFAULT_NOW


async def test_metrics_count_outbox_statuses(sqlite_service) -> None:
    [message_id] = await write_messages(sqlite_service, 1)
    sqlite_service.services.dispatcher.dispatch_later(message_id)
    await sqlite_service.sent_sms()
    response = await sqlite_service.client.get("/metrics")
    text = await response.text()
    assert 'myafya_outbox_messages{status="sent"} 1.0' in text
    assert 'myafya_outbox_messages{status="failed"} 0.0' in text


async def test_opt_out_and_opt_in(database) -> None:
    number = phone(1)
    async with database.unit_of_work() as uow:
        await opt_out(uow, phone=number, now=DEFAULT_NOW, source="sms:STOP")
        await opt_out(uow, phone=number, now=DEFAULT_NOW, source="sms:STOP")  # no-op
        assert await is_opted_out(uow, phone=number)
        assert await is_opted_out(uow, phone=number, patient_id=None)
        assert not await is_opted_out(uow, phone=phone(2))
        assert await opt_in(uow, phone=number) == 1
        assert not await is_opted_out(uow, phone=number)


async def test_patient_mute_leaves_number_subscribed(database) -> None:
    from core.identity.patients import get_or_create_patient

    number = phone(3)
    async with database.unit_of_work() as uow:
        muted = await get_or_create_patient(uow, phone=number, now=DEFAULT_NOW)
        await opt_out(uow, phone=number, now=DEFAULT_NOW, patient_id=muted.id, source="sms:STOP")
        assert await is_opted_out(uow, phone=number, patient_id=muted.id)
        assert not await is_opted_out(uow, phone=number, patient_id=muted.id + 1)
        assert not await is_opted_out(uow, phone=number)
        assert await opt_in(uow, phone=number, patient_id=muted.id) == 1
        assert not await is_opted_out(uow, phone=number, patient_id=muted.id)


async def test_outbox_command_lists_and_requeues(tmp_path: Path) -> None:
    from core.db.database import open_database
    from core.db.migrate import upgrade_to_head

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    await asyncio.to_thread(upgrade_to_head, url)
    database = await open_database(url)
    async with database.unit_of_work() as uow:
        await enqueue_message(
            uow,
            dedupe_key="test:cli",
            patient_id=None,
            recipient="+254700000131",
            channel="sms",
            template="sms.reminder",
            variables={},
            language="en",
            body="Test message",
            now=DEFAULT_NOW,
        )
        await uow.execute(
            Sql(
                "UPDATE outbox_messages SET status = 'failed', attempts = 8,"
                " last_error = 'HTTP 503 (after 8 attempts)'"
            )
        )
    await database.close()

    listing = await asyncio.to_thread(run_cli, tmp_path, "outbox")
    assert listing.returncode == 0, listing.stderr
    counts = dict(line.split() for line in listing.stdout.splitlines()[1:8])
    assert counts["failed"] == "1"
    assert counts["queued"] == "0"
    assert "HTTP 503 (after 8 attempts)" in listing.stdout
    assert "+254700000131" not in listing.stdout  # the number is masked

    requeued = await asyncio.to_thread(run_cli, tmp_path, "outbox", "--requeue", "1")
    assert requeued.returncode == 0, requeued.stderr
    again = await asyncio.to_thread(run_cli, tmp_path, "outbox", "--requeue", "1")
    assert again.returncode == 1
    assert "not failed" in again.stderr


async def test_early_delivery_report_applies_on_send(database) -> None:
    from core.notify.delivery import ReportOutcome, record_delivery_report
    from core.notify.pipeline import finish_send, prepare_send
    from core.notify.policy import DeliveryPolicy
    from tests.integration.notify_setup import NAIROBI

    policy = DeliveryPolicy(zone=NAIROBI)
    async with database.unit_of_work() as uow:
        message_id = await enqueue_message(
            uow,
            dedupe_key="test:early-report",
            patient_id=None,
            recipient=phone(5),
            channel="sms",
            template="sms.reminder",
            variables={},
            language="en",
            body="Test message",
            now=DEFAULT_NOW,
            kind="booked",
        )
        message = await prepare_send(
            uow, message_id=message_id, attempts=0, now=DEFAULT_NOW, policy=policy
        )
    assert message is not None

    # The gateway's "Success" report overtakes the worker's record of the send.
    async with database.unit_of_work() as uow:
        outcome = await record_delivery_report(
            uow,
            provider="africastalking",
            provider_message_id="ATXid_early0001",
            provider_status="Success",
            failure_reason=None,
            now=DEFAULT_NOW,
        )
    assert outcome == ReportOutcome.UNMATCHED

    class Accepted:
        provider_message_id = "ATXid_early0001"
        provider_status = "Success"
        accepted = True
        retryable = False
        error = None

    async with database.unit_of_work() as uow:
        status = await finish_send(
            uow, message=message, outcome=Accepted(), now=DEFAULT_NOW, policy=policy
        )
        row = await uow.one(
            Sql("SELECT status, delivered_at FROM outbox_messages WHERE id = :id"), id=message_id
        )
        linked = await uow.scalar(Sql("SELECT outbox_message_id FROM delivery_reports"))
    assert status == "delivered"
    assert row["status"] == "delivered"
    assert row["delivered_at"] == DEFAULT_NOW
    assert linked == message_id


def test_worker_command_needs_broker_url(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "worker")
    assert result.returncode == 2
    assert "MYAFYA_BROKER_URL is not set" in result.stderr


def test_worker_command_rejects_zero_threads(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "worker", "--threads", "0")
    assert result.returncode == 2
    assert "expected 1 or more, got 0" in result.stderr
