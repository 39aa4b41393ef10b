"""WhatsApp's 24-hour window end to end: free text inside it, the approved template outside it,
SMS when no template fits, and Twilio error 63016 answered with the template once, then SMS."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.clock import FrozenClock
from core.notify.outbox import enqueue_message
from core.notify.policy import Priority
from tests.integration.conftest import RunningService, start_service
from tests.integration.twilio_support import (
    TEMPLATE_BOOKED,
    TEMPLATE_REMINDER,
    WHATSAPP_PATH,
    post_signed,
    twilio_settings,
    wait_for,
    whatsapp_form,
    whatsapp_messages,
)

# The patient last wrote at 08:00 Nairobi time on 18 January 2027.
LAST_INBOUND = datetime(2027, 1, 18, 5, 0, tzinfo=UTC)
PHONE = "+254700000103"
NOTICE_VARIABLES = {
    "doctor": "Dr. Test Kamau",
    "when": "Tue 19 Jan 09:30",
    "reference": "TEST-0001",
    "service_code": "*384*12345#",
}


@pytest.fixture
async def service(sqlite_url: str) -> AsyncIterator[RunningService]:
    from core.db.migrate import upgrade_to_head

    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_service(sqlite_url, FrozenClock(LAST_INBOUND), **twilio_settings())
    await running.register(PHONE)
    yield running
    await running.close()


async def patient_writes(service: RunningService, sid: str, text: str = "hi") -> None:
    status, body = await post_signed(service, WHATSAPP_PATH, whatsapp_form(sid, PHONE, text))
    assert status == 200, body
    await service.drain()  # the reply goes out before the test moves the clock


async def enqueue_notice(
    service: RunningService,
    kind: str,
    key: str,
    *,
    not_before: datetime | None = None,
    priority: int = Priority.URGENT,
) -> int:
    """Write a notification planned on SMS, as booking and reminders do, and hand it over."""
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        message_id: int = await enqueue_message(
            uow,
            dedupe_key=key,
            patient_id=None,
            recipient=PHONE,
            channel="sms",
            template="sms.reminder",
            variables=dict(NOTICE_VARIABLES),
            language="en",
            body="MyAfya reminder: your appointment with Dr. Test Kamau is on Tue 19 Jan 09:30.",
            now=service.clock.now(),
            not_before=not_before,
            priority=priority,
            kind=kind,
        )
    if not_before is None:
        service.services.dispatcher.dispatch_later(message_id)
    return message_id


async def inject_63016(service: RunningService, *, count: int, stage: str = "api") -> None:
    fault = {
        "service": "twilio.whatsapp",
        "to": f"whatsapp:{PHONE}",
        "error_code": 63016,
        "count": count,
        "stage": stage,
    }
    response = await service.client.post("/sandbox/faults", json=fault)
    assert response.status == 204, await response.text()


async def rows(service: RunningService) -> list[dict[str, Any]]:
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        from core.db.database import Sql

        found = await uow.all(
            Sql(
                "SELECT id, channel, recipient, status, status_reason, variables, kind"
                " FROM outbox_messages WHERE kind != 'reply' ORDER BY id"
            )
        )
    return [dict(row) | {"variables": json.loads(row["variables"])} for row in found]


async def settled(service: RunningService, count: int) -> list[dict[str, Any]]:
    """Wait until `count` notice rows exist and none is still waiting to be sent."""

    async def done() -> list[dict[str, Any]] | None:
        await service.drain()
        found = await rows(service)
        waiting = [row for row in found if row["status"] in ("queued", "sending")]
        return found if len(found) == count and not waiting else None

    result: list[dict[str, Any]] = await wait_for(done, what=f"{count} settled notice rows")
    return result


async def test_reminder_outside_window_uses_template(service: RunningService) -> None:
    await patient_writes(service, "SM_TEST_0103")
    service.clock.advance(timedelta(hours=12).total_seconds())  # 20:00 in Nairobi
    await enqueue_notice(service, "booked", "notice:booked")
    await settled(service, 1)
    reminder_due = datetime(2027, 1, 19, 6, 30, tzinfo=UTC)  # 09:30 in Nairobi, 25.5 h later
    await enqueue_notice(
        service, "reminder", "notice:reminder", not_before=reminder_due, priority=Priority.NORMAL
    )

    await service.advance((reminder_due - service.clock.now()).total_seconds())

    booked, reminder = await settled(service, 2)
    messages = await whatsapp_messages(service, PHONE)
    texts = [message["text"] for message in messages]
    # The 20:00 message went as free text, inside the window, and did not extend it.
    assert booked["channel"] == "whatsapp"
    assert booked["variables"]["route"] == "whatsapp"
    assert sum(text.startswith("MyAfya reminder") for text in texts) == 1
    assert reminder["channel"] == "whatsapp"
    assert reminder["variables"]["route"] == "whatsapp_template"
    templates = [text for text in texts if text.startswith("[template ")]
    assert len(templates) == 1
    assert templates[0].startswith(f"[template {TEMPLATE_REMINDER}]")
    assert '"1": "Dr. Test Kamau"' in templates[0]
    last_inbound = await service.scalar(
        "SELECT last_inbound_at FROM channel_identities WHERE phone = :p", p=PHONE
    )
    assert last_inbound == LAST_INBOUND


async def test_outside_window_without_template_goes_by_sms(service: RunningService) -> None:
    await patient_writes(service, "SM_TEST_0103")
    service.clock.advance(timedelta(hours=25).total_seconds())

    await enqueue_notice(service, "cancelled", "notice:cancelled")

    (cancelled,) = await settled(service, 1)
    assert cancelled["channel"] == "sms"
    assert cancelled["status"] in ("sent", "delivered")
    sms = [m for m in await service.sent_sms() if m["channel"] == "sms" and m["to"] == PHONE]
    assert len(sms) == 1


async def test_patient_without_whatsapp_gets_sms(service: RunningService) -> None:
    await enqueue_notice(service, "booked", "notice:booked")

    (booked,) = await settled(service, 1)
    assert booked["channel"] == "sms"
    assert "route" not in booked["variables"]


async def test_63016_from_api_retries_with_template(service: RunningService) -> None:
    await patient_writes(service, "SM_TEST_0103")
    await inject_63016(service, count=1)

    await enqueue_notice(service, "booked", "notice:booked")

    free_text, template = await settled(service, 2)
    assert free_text["status"] == "failed"
    assert (
        free_text["status_reason"]
        == f"outside WhatsApp window: whatsapp_template as {template['id']}"
    )
    assert template["channel"] == "whatsapp"
    assert template["status"] in ("sent", "delivered")
    assert template["variables"]["fallback_of"] == free_text["id"]
    sent = [m["text"] for m in await whatsapp_messages(service, PHONE)]
    templates = [text for text in sent if text.startswith("[template ")]
    assert len(templates) == 1
    assert templates[0].startswith(f"[template {TEMPLATE_BOOKED}]")


async def test_63016_twice_falls_back_to_sms_once(service: RunningService) -> None:
    await patient_writes(service, "SM_TEST_0103")
    await inject_63016(service, count=2)

    await enqueue_notice(service, "booked", "notice:booked")

    free_text, template, sms = await settled(service, 3)
    assert [free_text["status"], template["status"]] == ["failed", "failed"]
    assert template["variables"]["route"] == "whatsapp_template"
    assert sms["channel"] == "sms"
    assert sms["recipient"] == PHONE
    assert sms["status"] in ("sent", "delivered")
    # Never a loop: a scheduler tick later there is still no fourth row.
    await asyncio.sleep(1.5)
    assert len(await rows(service)) == 3


async def test_63016_in_status_callback_retries_with_template(service: RunningService) -> None:
    await patient_writes(service, "SM_TEST_0103")
    await inject_63016(service, count=1, stage="status_callback")

    await enqueue_notice(service, "booked", "notice:booked")

    async def failed_then_template() -> list[dict[str, Any]] | None:
        await service.drain()
        found = await rows(service)
        statuses = [row["status"] for row in found]
        return (
            found
            if len(found) == 2 and statuses[0] == "failed" and statuses[1] != "queued"
            else None
        )

    free_text, template = await wait_for(failed_then_template, what="the template fallback")
    assert free_text["variables"]["route"] == "whatsapp"
    assert template["variables"]["route"] == "whatsapp_template"
    reports = await service.scalar(
        "SELECT failure_reason FROM delivery_reports WHERE provider_status = 'failed'"
    )
    assert reports == "63016"


async def test_reply_hit_by_63016_goes_by_sms(service: RunningService) -> None:
    await inject_63016(service, count=1)

    await patient_writes(service, "SM_TEST_0103")

    async def sms_reply() -> list[dict[str, Any]]:
        await service.drain()
        return [m for m in await service.sent_sms() if m["channel"] == "sms" and m["to"] == PHONE]

    (reply,) = await wait_for(sms_reply, what="the reply by SMS")
    assert "MyAfya menu" in reply["text"]
    assert await whatsapp_messages(service, PHONE) == []


async def reply_rows(service: RunningService) -> list[dict[str, Any]]:
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        from core.db.database import Sql

        found = await uow.all(
            Sql(
                "SELECT id, channel, status, status_reason FROM outbox_messages"
                " WHERE kind = 'reply' ORDER BY id"
            )
        )
    return [dict(row) for row in found]


async def reply_handed_to_sms(service: RunningService) -> tuple[dict[str, Any], dict[str, Any]]:
    """Make the patient's reply hit 63016 and return the failed row and its SMS row, once sent."""
    await inject_63016(service, count=1)
    await patient_writes(service, "SM_TEST_0103")

    async def sent_by_sms() -> list[dict[str, Any]] | None:
        await service.drain()
        found = await reply_rows(service)
        done = len(found) == 2 and found[1]["status"] in ("sent", "delivered")
        return found if done else None

    failed, sms = await wait_for(sent_by_sms, what="the reply by SMS")
    return failed, sms


async def test_handed_on_reply_not_listed(service: RunningService) -> None:
    from core.notify.outbox import count_handed_on, list_failed

    failed, sms = await reply_handed_to_sms(service)

    assert failed["status"] == "failed"
    assert failed["status_reason"] == f"outside WhatsApp window: sms as {sms['id']}"
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        listed = await list_failed(uow)
        handed_on = await count_handed_on(uow)
    assert [message.id for message in listed] == []
    assert handed_on == 1


async def test_handed_on_row_not_requeued(service: RunningService) -> None:
    from core.notify.outbox import RequeueOutcome, requeue_failed

    failed, sms = await reply_handed_to_sms(service)

    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        outcome, reason = await requeue_failed(
            uow, message_id=failed["id"], now=service.clock.now()
        )
    assert outcome is RequeueOutcome.HANDED_ON
    assert reason == f"outside WhatsApp window: sms as {sms['id']}"
    assert (await reply_rows(service))[0]["status"] == "failed"


async def test_failed_reply_not_requeued(service: RunningService) -> None:
    from core.db.database import Sql
    from core.notify.outbox import RequeueOutcome, requeue_failed

    await patient_writes(service, "SM_TEST_0103")
    (reply,) = await reply_rows(service)
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        await uow.execute(
            Sql(
                "UPDATE outbox_messages SET status = 'failed', status_reason = 'attempts exhausted'"
                " WHERE id = :id"
            ),
            id=reply["id"],
        )
        outcome, _ = await requeue_failed(uow, message_id=reply["id"], now=service.clock.now())

    assert outcome is RequeueOutcome.REPLY
    assert (await reply_rows(service))[0]["status"] == "failed"


async def test_failed_confirmation_requeued(service: RunningService) -> None:
    from core.notify.outbox import RequeueOutcome, requeue_failed

    await patient_writes(service, "SM_TEST_0103")
    await inject_63016(service, count=2)
    await enqueue_notice(service, "booked", "notice:booked")
    _, template, sms = await settled(service, 3)

    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        handed_on, _ = await requeue_failed(uow, message_id=template["id"], now=service.clock.now())
        from core.db.database import Sql

        await uow.execute(
            Sql("UPDATE outbox_messages SET status = 'failed' WHERE id = :id"), id=sms["id"]
        )
        requeued, _ = await requeue_failed(uow, message_id=sms["id"], now=service.clock.now())

    assert handed_on is RequeueOutcome.HANDED_ON
    assert requeued is RequeueOutcome.REQUEUED


async def test_outbox_command_explains_rejection(
    service: RunningService, sqlite_url: str, tmp_path: Any
) -> None:
    from tests.integration.test_cli import run_cli

    failed, sms = await reply_handed_to_sms(service)

    listing = await asyncio.to_thread(run_cli, tmp_path, "outbox", MYAFYA_DATABASE_URL=sqlite_url)
    requeued = await asyncio.to_thread(
        run_cli, tmp_path, "outbox", "--requeue", str(failed["id"]), MYAFYA_DATABASE_URL=sqlite_url
    )

    assert listing.returncode == 0, listing.stderr
    assert "failed messages (newest first" not in listing.stdout
    assert "1 failed WhatsApp messages are not listed" in listing.stdout
    assert requeued.returncode == 1
    assert f"took it over (outside WhatsApp window: sms as {sms['id']})" in requeued.stderr
