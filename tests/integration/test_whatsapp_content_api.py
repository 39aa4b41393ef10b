"""The Content API fake driven by the real twilio SDK, and the sender's interactive replies:
created once per shape, stored in the database, created again after Twilio rejects its SID,
numbered text when the Content API fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException

from bot.channels.whatsapp.contents import DatabaseContentStore
from bot.channels.whatsapp.sender import TwilioSender
from bot.engine.model import Option, Reply
from core.clock import FrozenClock
from core.notify.outbox import MessageStatus, OutboundMessage
from tests.integration.conftest import RunningService, start_service
from tests.integration.twilio_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    WHATSAPP_FROM,
    WHATSAPP_PATH,
    post_signed,
    twilio_settings,
    whatsapp_form,
    whatsapp_messages,
)

PHONE = "+254700000131"


@pytest.fixture
async def service(database_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    running = await start_service(database_url, clock, seed=False, **twilio_settings())
    yield running
    await running.close()


def sender(service: RunningService, token: str = AUTH_TOKEN) -> TwilioSender:
    return TwilioSender(
        account_sid=ACCOUNT_SID,
        auth_token=token,
        whatsapp_from=WHATSAPP_FROM,
        sms_from=None,
        templates={},
        status_callback_url=None,
        base_url=str(service.client.make_url("/sandbox/twilio")),
        content_store=DatabaseContentStore(service.services.settings.database_url),
    )


def reply_row(reply: Reply, message_id: int = 1, language: str = "en") -> OutboundMessage:
    return OutboundMessage(
        id=message_id,
        recipient=f"whatsapp:{PHONE}",
        channel="whatsapp",
        body=reply.as_text(),
        status=MessageStatus.SENDING,
        attempts=1,
        kind="reply",
        template="conversation.reply",
        variables={"reply": reply.to_json(), "screen_version": 4, "conversation_id": 9},
        language=language,
    )


async def accepted(service: RunningService) -> list[dict[str, Any]]:
    response = await service.client.get("/sandbox/messages")
    return list(await response.json())


async def test_reply_sent_as_quick_replies(service: RunningService) -> None:
    target = sender(service)
    reply = Reply(body="Confirm appointment", options=(Option("1", "Confirm"),))

    result = await asyncio.to_thread(target.send_message_blocking, reply_row(reply))

    assert result.accepted
    (message,) = await accepted(service)
    assert message["text"] == "Confirm appointment"
    interactive = message["interactive"]
    assert interactive["type"] == "twilio/quick-reply"
    assert interactive["buttons"] == [{"title": "Confirm", "id": "9:4:1"}]


async def test_reply_sent_as_list_picker(service: RunningService) -> None:
    target = sender(service)
    doctors = tuple(Option(str(i), f"Dr. Test {i}") for i in range(1, 5))
    reply = Reply(body="Chagua daktari:", options=doctors, navigation=(Option("0", "Rudi"),))

    result = await asyncio.to_thread(target.send_message_blocking, reply_row(reply, language="sw"))

    assert result.accepted
    (message,) = await accepted(service)
    interactive = message["interactive"]
    assert interactive["type"] == "twilio/list-picker"
    assert interactive["button"] == "Chagua"
    assert interactive["items"][0] == {
        "item": "Dr. Test 1",
        "id": "9:4:1",
        "description": "au andika 1",
    }
    assert interactive["items"][4]["id"] == "9:4:0"


async def test_resource_created_once_per_shape(service: RunningService) -> None:
    first, second = sender(service), sender(service)  # two worker threads, one database
    yes_no = (Option("1", "Yes"), Option("2", "No"))
    other = (Option("1", "Confirm"), Option("2", "Change"))

    await asyncio.to_thread(first.send_message_blocking, reply_row(Reply("A?", yes_no), 1))
    await asyncio.to_thread(first.send_message_blocking, reply_row(Reply("B?", other), 2))
    await asyncio.to_thread(second.send_message_blocking, reply_row(Reply("C?", yes_no), 3))

    messages = await accepted(service)
    assert [m["text"] for m in messages] == ["A?", "B?", "C?"]
    assert len({m["interactive"]["content_sid"] for m in messages}) == 1
    assert await service.scalar("SELECT COUNT(*) FROM whatsapp_contents") == 1
    stored = await service.scalar("SELECT content_sid FROM whatsapp_contents")
    assert stored == messages[0]["interactive"]["content_sid"]


async def test_content_api_failure_sends_text(service: RunningService) -> None:
    response = await service.client.post(
        "/sandbox/faults", json={"service": "twilio.content", "http_status": 500, "count": 1}
    )
    assert response.status == 204, await response.text()
    reply = Reply(body="MyAfya menu", options=(Option("1", "Book"), Option("2", "Help")))

    result = await asyncio.to_thread(sender(service).send_message_blocking, reply_row(reply))

    assert result.accepted
    (message,) = await accepted(service)
    assert message["text"] == "MyAfya menu\n1. Book\n2. Help"
    assert "interactive" not in message
    assert await service.scalar("SELECT COUNT(*) FROM whatsapp_contents") == 0


async def test_without_store_sends_text(service: RunningService) -> None:
    target = sender(service)
    target._contents = None
    reply = Reply(body="MyAfya menu", options=(Option("1", "Book"),))

    await asyncio.to_thread(target.send_message_blocking, reply_row(reply))

    (message,) = await accepted(service)
    assert message["text"] == "MyAfya menu\n1. Book"


async def reject_next_send(service: RunningService, error_code: int) -> None:
    response = await service.client.post(
        "/sandbox/faults",
        json={
            "service": "twilio.whatsapp",
            "to": f"whatsapp:{PHONE}",
            "error_code": error_code,
            "count": 1,
        },
    )
    assert response.status == 204, await response.text()


async def test_rejected_interactive_send_retried_as_text(service: RunningService) -> None:
    await reject_next_send(service, 63005)
    reply = Reply(body="MyAfya menu", options=(Option("1", "Book"), Option("2", "Help")))

    result = await asyncio.to_thread(sender(service).send_message_blocking, reply_row(reply))

    assert result.accepted
    (message,) = await accepted(service)
    assert message["text"] == "MyAfya menu\n1. Book\n2. Help"
    assert "interactive" not in message


async def test_window_error_not_retried_as_text(service: RunningService) -> None:
    await reject_next_send(service, 63016)
    reply = Reply(body="MyAfya menu", options=(Option("1", "Book"), Option("2", "Help")))

    result = await asyncio.to_thread(sender(service).send_message_blocking, reply_row(reply))

    assert not result.accepted
    assert result.provider_status == "63016"
    assert await accepted(service) == []


async def test_unknown_content_sid_rejected(service: RunningService) -> None:
    client = sender(service)._client
    unknown = "HX" + "ab" * 16

    with pytest.raises(TwilioRestException) as raised:
        await asyncio.to_thread(
            client.messages.create,
            to=f"whatsapp:{PHONE}",
            from_=WHATSAPP_FROM,
            content_sid=unknown,
            content_variables="{}",
        )

    assert raised.value.status == 400
    assert raised.value.code == 21655
    assert await accepted(service) == []


async def restart(service: RunningService, database_url: str, clock: FrozenClock) -> RunningService:
    """Stop `service` and start it again on the same database: the fakes start empty."""
    await service.close()
    return await start_service(database_url, clock, seed=False, **twilio_settings())


MENU = Reply(body="MyAfya menu", options=(Option("1", "Book"), Option("2", "Help")))


async def test_resource_created_again_after_restart(
    service: RunningService, database_url: str, clock: FrozenClock
) -> None:
    await asyncio.to_thread(sender(service).send_message_blocking, reply_row(MENU, 1))
    old_sid = await service.scalar("SELECT content_sid FROM whatsapp_contents")
    restarted = await restart(service, database_url, clock)
    try:
        result = await asyncio.to_thread(
            sender(restarted).send_message_blocking, reply_row(MENU, 2)
        )

        assert result.accepted
        (message,) = await accepted(restarted)
        assert message["interactive"]["type"] == "twilio/quick-reply"
        new_sid = message["interactive"]["content_sid"]
        assert new_sid != old_sid
        assert await restarted.scalar("SELECT content_sid FROM whatsapp_contents") == new_sid
    finally:
        await restarted.close()


async def test_failed_recreation_sends_text(
    service: RunningService, database_url: str, clock: FrozenClock
) -> None:
    await asyncio.to_thread(sender(service).send_message_blocking, reply_row(MENU, 1))
    restarted = await restart(service, database_url, clock)
    try:
        response = await restarted.client.post(
            "/sandbox/faults", json={"service": "twilio.content", "http_status": 500, "count": 1}
        )
        assert response.status == 204, await response.text()

        result = await asyncio.to_thread(
            sender(restarted).send_message_blocking, reply_row(MENU, 2)
        )

        assert result.accepted
        (message,) = await accepted(restarted)
        assert message["text"] == "MyAfya menu\n1. Book\n2. Help"
        assert "interactive" not in message
        assert await restarted.scalar("SELECT COUNT(*) FROM whatsapp_contents") == 0
    finally:
        await restarted.close()


async def test_reply_has_buttons_after_restart(database_url: str, clock: FrozenClock) -> None:
    service = await start_service(database_url, clock, **twilio_settings())  # with demo data
    await service.register(PHONE)
    await post_signed(service, WHATSAPP_PATH, whatsapp_form("SM" + "1" * 32, PHONE, "hi"))
    (home,) = await whatsapp_messages(service, PHONE)
    assert "interactive" in home
    restarted = await restart(service, database_url, clock)
    try:
        # "00" shows the home menu again, whose shape has a resource stored before the restart.
        status, body = await post_signed(
            restarted, WHATSAPP_PATH, whatsapp_form("SM" + "2" * 32, PHONE, "00")
        )
        assert status == 200, body

        (menu,) = await whatsapp_messages(restarted, PHONE)
        assert menu["text"] == home["text"]
        assert "interactive" in menu
        assert menu["interactive"]["content_sid"] != home["interactive"]["content_sid"]
    finally:
        await restarted.close()
