"""Africa's Talking inbound SMS: authentication, validation, exactly-once and keywords.

Every request goes through the real webhook; replies go out through the real `africastalking`
SDK to the sandbox fake and are read back from `GET /sandbox/messages`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from core.clock import FrozenClock
from core.db.migrate import upgrade_to_head
from core.i18n import translate
from core.notify.segments import count_segments
from myafya.settings import SANDBOX_AT_WEBHOOK_SECRET
from tests.integration.conftest import RunningService, start_service
from tests.integration.sms_setup import (
    AT_SECRET,
    INBOUND_PATH,
    SmsPhone,
    inbound_payload,
    start_sms_service,
)

PAYLOAD_PHONE = "+254700000001"
PHONE = "+254700000132"
REQUIRED_FIELDS = ("from", "to", "text", "date", "id")


@pytest.fixture
async def sms_service(database_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    running = await start_sms_service(database_url, clock)
    yield running
    await running.client.close()


@pytest.fixture
async def sms_sqlite(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    """The service on SQLite only, for checks that do not depend on the database."""
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_sms_service(sqlite_url, clock)
    yield running
    await running.client.close()


async def written_rows(service: RunningService) -> dict[str, int]:
    counts = {}
    for table in ("inbound_messages", "outbox_messages", "conversations", "opt_outs"):
        counts[table] = await service.scalar(f"SELECT COUNT(*) FROM {table}")
    return counts


NOTHING_WRITTEN = {"inbound_messages": 0, "outbox_messages": 0, "conversations": 0, "opt_outs": 0}


async def test_payload_accepted(sms_service: RunningService) -> None:
    response = await sms_service.client.post(INBOUND_PATH, data=inbound_payload())

    assert response.status == 200
    assert await response.text() == "OK"
    sent = await sms_service.sent_sms()
    assert [m["to"] for m in sent] == [PAYLOAD_PHONE]
    assert sent[0]["channel"] == "sms"
    # A new number texting "MIADI 1" is asked for a language first.
    assert sent[0]["text"].startswith(translate("en", "registration.welcome"))
    stored = await sms_service.scalar(
        "SELECT provider_message_id FROM inbound_messages WHERE provider = 'africastalking'"
    )
    assert stored == inbound_payload()["id"]


async def test_payload_date_with_t_and_z(sms_sqlite: RunningService) -> None:
    form = {**inbound_payload(), "date": "2017-05-03T06:04:45Z"}
    response = await sms_sqlite.client.post(INBOUND_PATH, data=form)
    assert response.status == 200


async def test_unknown_fields_are_ignored(sms_sqlite: RunningService) -> None:
    form = {**inbound_payload(), "cost": "KES 0.00", "newField": "x"}
    response = await sms_sqlite.client.post(INBOUND_PATH, data=form)
    assert response.status == 200


async def test_wrong_secret_rejected(sms_service: RunningService) -> None:
    for secret in ("wrong", AT_SECRET + "x", AT_SECRET.upper(), AT_SECRET[:-1]):
        response = await sms_service.client.post(
            f"/webhooks/africastalking/sms/{secret}", data=inbound_payload()
        )
        assert response.status == 403, secret
    assert await written_rows(sms_service) == NOTHING_WRITTEN


async def test_wrong_secret_reason_in_body(sms_sqlite: RunningService) -> None:
    response = await sms_sqlite.client.post(
        "/webhooks/africastalking/sms/wrong", data=inbound_payload()
    )
    body = await response.text()
    assert response.status == 403
    assert "is not MYAFYA_AT_WEBHOOK_SECRET" in body
    assert AT_SECRET not in body


async def test_live_unset_secret_rejects_all(sqlite_url: str, clock: FrozenClock) -> None:
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    service = await start_service(sqlite_url, clock, sandbox=False)
    try:
        for secret in (AT_SECRET, SANDBOX_AT_WEBHOOK_SECRET, "None", "null"):
            response = await service.client.post(
                f"/webhooks/africastalking/sms/{secret}", data=inbound_payload()
            )
            assert response.status == 403, secret
            assert "MYAFYA_AT_WEBHOOK_SECRET is not set" in await response.text()
        assert await service.scalar("SELECT COUNT(*) FROM inbound_messages") == 0
    finally:
        await service.client.close()


async def test_sandbox_placeholder_secret_accepted(sqlite_service: RunningService) -> None:
    response = await sqlite_service.client.post(
        f"/webhooks/africastalking/sms/{SANDBOX_AT_WEBHOOK_SECRET}", data=inbound_payload()
    )
    assert response.status == 200
    assert await sqlite_service.scalar("SELECT COUNT(*) FROM inbound_messages") == 1

    response = await sqlite_service.client.post(
        f"/webhooks/africastalking/sms/{AT_SECRET}", data=inbound_payload()
    )
    assert response.status == 403


async def test_rejected_before_body_read(sms_sqlite: RunningService) -> None:
    # A body that is not a form at all still gets 403, not 400: authentication comes first.
    response = await sms_sqlite.client.post(
        "/webhooks/africastalking/sms/wrong",
        data=b"\xff\xfe not a form",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 403


async def test_non_form_body_rejected(sms_sqlite: RunningService) -> None:
    bodies = [
        ("application/json", '{"from": "+254700000132", "text": "BOOK"}'),
        ("text/plain", "from=%2B254700000132&text=BOOK"),
    ]
    for content_type, body in bodies:
        response = await sms_sqlite.client.post(
            INBOUND_PATH, data=body.encode(), headers={"Content-Type": content_type}
        )
        assert response.status == 415, content_type
        assert "must be application/x-www-form-urlencoded" in await response.text()
    assert await written_rows(sms_sqlite) == NOTHING_WRITTEN


async def test_missing_field_rejected(sms_sqlite: RunningService) -> None:
    for field in REQUIRED_FIELDS:
        form = inbound_payload()
        del form[field]

        response = await sms_sqlite.client.post(INBOUND_PATH, data=form)

        assert response.status == 400, field
        assert f"{field}: missing" in await response.text()
    assert await written_rows(sms_sqlite) == NOTHING_WRITTEN


INVALID_FIELDS = [
    ("from", "+2547"),
    ("from", "not a number"),
    ("from", "+254700000132x"),
    ("date", "03/05/2017 06:04"),
    ("date", "2017-13-03 06:04:45"),
    ("id", ""),
    ("id", "x" * 101),
    ("to", ""),
    ("networkCode", "639O2"),
    ("linkId", "bad link id"),
    ("text", "a" * 1531),
]


async def test_invalid_field_rejected(sms_sqlite: RunningService) -> None:
    for field, value in INVALID_FIELDS:
        form = {**inbound_payload(), field: value}

        response = await sms_sqlite.client.post(INBOUND_PATH, data=form)

        assert response.status == 400, (field, value)
        assert f"{field}:" in await response.text()
    assert await written_rows(sms_sqlite) == NOTHING_WRITTEN


async def test_duplicate_gets_same_answer(sms_service: RunningService) -> None:
    first = await sms_service.client.post(INBOUND_PATH, data=inbound_payload())
    again = await sms_service.client.post(INBOUND_PATH, data=inbound_payload())

    assert first.status == again.status == 200
    assert await again.text() == "OK"
    assert len(await sms_service.sent_sms()) == 1
    assert await sms_service.scalar("SELECT COUNT(*) FROM inbound_messages") == 1
    assert await sms_service.scalar("SELECT COUNT(*) FROM outbox_messages") == 1


async def test_concurrent_duplicates_reply_once(sms_service: RunningService) -> None:
    await sms_service.register(PHONE)
    form = {**inbound_payload(), "from": PHONE, "text": "BOOK", "id": "ATXid_concurrent"}

    responses = await asyncio.gather(
        *(sms_service.client.post(INBOUND_PATH, data=form) for _ in range(10))
    )

    assert [r.status for r in responses] == [200] * 10
    assert len(await sms_service.sent_sms()) == 1
    assert await sms_service.scalar("SELECT COUNT(*) FROM inbound_messages") == 1


async def test_plain_path_rejected_without_networks(sms_sqlite: RunningService) -> None:
    response = await sms_sqlite.client.post("/webhooks/africastalking/sms", data=inbound_payload())
    body = await response.text()
    assert response.status == 403
    assert "MYAFYA_AT_ALLOWED_NETWORKS is empty" in body
    assert "/webhooks/africastalking/sms/{MYAFYA_AT_WEBHOOK_SECRET}" in body
    assert AT_SECRET not in body
    assert await written_rows(sms_sqlite) == NOTHING_WRITTEN


@pytest.mark.parametrize(
    ("networks", "status"), [("127.0.0.0/8, 192.0.2.0/24", 200), ("192.0.2.0/24", 403)]
)
async def test_plain_path_needs_allowed_network(
    sqlite_url: str, clock: FrozenClock, networks: str, status: int
) -> None:
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    service = await start_service(sqlite_url, clock, at_allowed_networks=networks)
    try:
        response = await service.client.post("/webhooks/africastalking/sms", data=inbound_payload())
        assert response.status == status
        written = await service.scalar("SELECT COUNT(*) FROM inbound_messages")
        assert written == (1 if status == 200 else 0)
    finally:
        await service.client.close()


async def test_replies_fit_two_gsm7_parts(sms_sqlite: RunningService) -> None:
    await sms_sqlite.register(PHONE)
    phone = SmsPhone(sms_sqlite, PHONE)
    replies = [await phone.text(text) for text in ("hi", "1", "1", "1", "1")]
    replies.append(await phone.text("98"))  # the second page of times

    for reply in replies:
        segments = count_segments(reply)
        assert segments.encoding == "GSM-7", reply
        assert segments.segments <= 2, reply
    assert "98. More" in replies[3]


async def test_keywords_open_flows(sms_sqlite: RunningService) -> None:
    await sms_sqlite.register(PHONE)
    phone = SmsPhone(sms_sqlite, PHONE)

    assert (await phone.text("BOOK")).startswith(translate("en", "booking.choose_specialty"))
    assert (await phone.text("menu")).startswith(translate("en", "home.title"))
    assert (await phone.text("Help!")).startswith(translate("en", "help.body")[:30])
    assert (await phone.text("CANCEL")).startswith(translate("en", "appointments.title"))


async def test_kiswahili_keywords_open_flows(sms_sqlite: RunningService) -> None:
    await sms_sqlite.register(PHONE, language="sw")
    phone = SmsPhone(sms_sqlite, PHONE)

    assert (await phone.text("miadi")).startswith(translate("sw", "booking.choose_specialty"))
    assert (await phone.text("MENYU")).startswith(translate("sw", "home.title"))
    assert (await phone.text("Msaada")).startswith(translate("sw", "help.body")[:30])
    assert (await phone.text("ghairi")).startswith(translate("sw", "appointments.title"))


async def test_keyword_argument_answers_first_screen(sms_sqlite: RunningService) -> None:
    await sms_sqlite.register(PHONE)
    phone = SmsPhone(sms_sqlite, PHONE)
    assert (await phone.text("MIADI 1")).startswith(translate("en", "booking.choose_doctor"))


async def test_keyword_mid_flow_starts_over(sms_sqlite: RunningService) -> None:
    await sms_sqlite.register(PHONE)
    phone = SmsPhone(sms_sqlite, PHONE)
    for text in ("hi", "1", "1"):
        await phone.text(text)
    assert (await phone.text("Book")).startswith(translate("en", "booking.choose_specialty"))
    # Back from the keyword's first screen goes to the home menu.
    assert (await phone.text("0")).startswith(translate("en", "home.title"))


async def test_unregistered_keyword_asks_language(sms_sqlite: RunningService) -> None:
    phone = SmsPhone(sms_sqlite, PHONE)
    reply = await phone.text("BOOK 2")
    assert reply.startswith(translate("en", "registration.welcome"))
    # The argument is not read as a language choice.
    assert await sms_sqlite.scalar("SELECT language FROM conversations") is None
