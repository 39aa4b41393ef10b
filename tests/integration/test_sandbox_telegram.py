"""The Telegram sender through python-telegram-bot against the sandbox's Bot API fake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from bot.channels.telegram.sender import SendResult, TelegramSender
from bot.engine.model import Option, Reply
from core.db.migrate import upgrade_to_head
from core.notify.outbox import MessageStatus, OutboundMessage
from tests.integration.telegram_support import BOT_TOKEN, inject, start_telegram_service

CHAT = 7000000031
_Result = TypeVar("_Result")


@pytest.fixture
async def sqlite_telegram(sqlite_url, clock):
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_telegram_service(sqlite_url, clock)
    yield running
    await running.stop()


class SenderThread:
    """Runs a sender on one thread, as a dramatiq worker thread does."""

    def __init__(self, sender: TelegramSender) -> None:
        self.sender = sender
        self._pool = ThreadPoolExecutor(max_workers=1)

    async def call(self, function: Callable[..., _Result], *args: Any) -> _Result:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    async def send(self, message: OutboundMessage) -> SendResult:
        return await self.call(self.sender.send_message_blocking, message)

    async def close(self) -> None:
        await self.call(self.sender.close)
        self._pool.shutdown()


def api_url(service) -> str:
    return str(service.client.make_url("/sandbox/telegram"))


def outbox_row(recipient: str = str(CHAT), **variables: Any) -> OutboundMessage:
    return OutboundMessage(
        id=1,
        recipient=recipient,
        channel="telegram",
        body="Choose a service:\n1. General practice\n0. Back",
        status=MessageStatus.SENDING,
        attempts=1,
        template="conversation.reply",
        variables=variables,
    )


MENU = Reply(
    body="Choose a service:",
    options=(Option("1", "General practice"), Option("2", "Children's health")),
    navigation=(Option("0", "Back"),),
)


async def fake_messages(service) -> list[dict[str, Any]]:
    response = await service.client.get("/sandbox/telegram/messages")
    return list(await response.json())


@pytest.fixture
async def sender(sqlite_telegram):
    thread = SenderThread(TelegramSender(token=BOT_TOKEN, api_url=api_url(sqlite_telegram)))
    yield thread
    await thread.close()


async def test_reply_is_sent_with_inline_keyboard(sqlite_telegram, sender) -> None:
    result = await sender.send(
        outbox_row(reply=MENU.to_json(), screen_version=3, conversation_id=5)
    )

    assert result.accepted
    assert result.provider_message_id == f"{CHAT}:1"
    [sent] = await fake_messages(sqlite_telegram)
    assert sent["text"] == "Choose a service:"
    assert sent["reply_markup"]["inline_keyboard"] == [
        [{"text": "1. General practice", "callback_data": "5:3:1"}],
        [{"text": "2. Children's health", "callback_data": "5:3:2"}],
        [{"text": "0. Back", "callback_data": "5:3:0"}],
    ]
    listed = await (await sqlite_telegram.client.get("/sandbox/messages")).json()
    assert [(m["channel"], m["to"]) for m in listed] == [("telegram", str(CHAT))]


async def test_row_without_reply_is_sent_as_text(sqlite_telegram, sender) -> None:
    result = await sender.send(outbox_row())

    assert result.accepted
    [sent] = await fake_messages(sqlite_telegram)
    assert sent["text"].endswith("0. Back")
    assert sent["reply_markup"] is None


async def test_reply_to_press_removes_pressed_keyboard_first(sqlite_telegram, sender) -> None:
    drawn = {"reply": MENU.to_json(), "conversation_id": 5}
    pressed = await sender.send(outbox_row(**drawn, screen_version=1))
    pressed_id = int(str(pressed.provider_message_id).split(":")[1])

    reply = outbox_row(**drawn, screen_version=2, pressed_message_id=pressed_id)
    first = await sender.send(reply)
    # A retried send finds the keyboard gone ("message is not modified") and sends anyway.
    again = await sender.send(reply)

    assert first.accepted and again.accepted
    old, new, newer = await fake_messages(sqlite_telegram)
    assert old["message_id"] == pressed_id
    assert old["reply_markup"] is None
    assert new["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "5:2:1"
    assert newer["reply_markup"] == new["reply_markup"]


async def test_reply_is_sent_when_pressed_message_is_unknown(sqlite_telegram, sender) -> None:
    result = await sender.send(
        outbox_row(reply=MENU.to_json(), conversation_id=5, screen_version=1, pressed_message_id=99)
    )

    assert result.accepted
    [sent] = await fake_messages(sqlite_telegram)
    assert sent["reply_markup"] is not None


async def test_later_sends_reuse_the_bot(sqlite_telegram, sender) -> None:
    for _ in range(3):
        assert (await sender.send(outbox_row(reply=MENU.to_json()))).accepted
    assert [m["message_id"] for m in await fake_messages(sqlite_telegram)] == [1, 2, 3]


async def test_wrong_token_is_not_retried(sqlite_telegram) -> None:
    thread = SenderThread(
        TelegramSender(token="8000000001:wrong", api_url=api_url(sqlite_telegram))
    )
    try:
        result = await thread.send(outbox_row())
    finally:
        await thread.close()

    assert not result.accepted
    assert not result.retryable
    assert result.provider_status == "InvalidToken"
    assert "wrong" not in (result.error or "")
    assert await fake_messages(sqlite_telegram) == []


# (injected HTTP status, provider_status, retryable)
API_ERRORS = [
    (500, "NetworkError", True),
    (429, "RetryAfter", True),
    (403, "Forbidden", False),
    (400, "BadRequest", False),
]


async def test_api_errors_are_classified(sqlite_telegram, sender) -> None:
    assert (await sender.send(outbox_row())).accepted  # the Bot is initialised
    for http_status, provider_status, retryable in API_ERRORS:
        await inject(sqlite_telegram, http_status)

        failed = await sender.send(outbox_row())
        recovered = await sender.send(outbox_row())

        assert not failed.accepted, http_status
        assert failed.provider_status == provider_status, http_status
        assert failed.retryable is retryable, http_status
        assert recovered.accepted, http_status


async def test_failed_get_me_is_retried_on_next_send(sqlite_telegram, sender) -> None:
    await inject(sqlite_telegram, 502)

    failed = await sender.send(outbox_row())
    recovered = await sender.send(outbox_row())

    assert failed.retryable
    assert recovered.accepted


async def test_recipient_must_be_a_chat_id(sqlite_telegram, sender) -> None:
    result = await sender.send(outbox_row(recipient="+254700000131"))

    assert result.provider_status == "InvalidChatId"
    assert not result.retryable


# --- the fake itself, over plain HTTP ---------------------------------------------------------


async def call_fake(service, method: str, token: str = BOT_TOKEN, **params: Any):
    response = await service.client.post(f"/sandbox/telegram/bot{token}/{method}", json=params)
    return response.status, await response.json()


async def test_fake_rejects_wrong_token(sqlite_telegram) -> None:
    status, body = await call_fake(sqlite_telegram, "getMe", token="8000000001:other")

    assert status == 401
    assert body == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_fake_answers_get_me(sqlite_telegram) -> None:
    status, body = await call_fake(sqlite_telegram, "getMe")

    assert status == 200
    assert body["ok"] is True
    assert body["result"]["id"] == 8000000001
    assert body["result"]["is_bot"] is True


# (method, parameters, start of the error description)
BAD_CALLS = [
    ("sendMessage", {"chat_id": CHAT, "text": " "}, "Bad Request: message text is empty"),
    ("sendMessage", {"text": "hi"}, "Bad Request: chat_id is empty"),
    ("sendMessage", {"chat_id": CHAT, "text": "x" * 4097}, "Bad Request: message is too long"),
    (
        "sendMessage",
        {
            "chat_id": CHAT,
            "text": "hi",
            "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "x" * 65}]]},
        },
        "Bad Request: BUTTON_DATA_INVALID",
    ),
    ("answerCallbackQuery", {}, "Bad Request: query is too old"),
    (
        "editMessageReplyMarkup",
        {"chat_id": CHAT, "message_id": 99},
        "Bad Request: message to edit not found",
    ),
    ("noSuchMethod", {}, "Not Found: method not found"),
]


async def test_fake_rejects_bad_calls(sqlite_telegram) -> None:
    for method, params, description in BAD_CALLS:
        status, body = await call_fake(sqlite_telegram, method, **params)

        assert status in (400, 404), method
        assert body["ok"] is False
        assert body["error_code"] == status
        assert body["description"].startswith(description), body
    assert await fake_messages(sqlite_telegram) == []


async def test_fake_edits_keyboard_once(sqlite_telegram) -> None:
    keyboard = {"inline_keyboard": [[{"text": "1. Yes", "callback_data": "1:1:1"}]]}
    _, sent = await call_fake(
        sqlite_telegram, "sendMessage", chat_id=CHAT, text="Sure?", reply_markup=keyboard
    )
    message_id = sent["result"]["message_id"]

    first = await call_fake(
        sqlite_telegram, "editMessageReplyMarkup", chat_id=CHAT, message_id=message_id
    )
    second = await call_fake(
        sqlite_telegram, "editMessageReplyMarkup", chat_id=CHAT, message_id=message_id
    )

    assert first[0] == 200
    assert "reply_markup" not in first[1]["result"]
    assert second[0] == 400
    assert second[1]["description"].startswith("Bad Request: message is not modified")


async def test_fake_reads_form_parameters(sqlite_telegram) -> None:
    keyboard = json.dumps({"inline_keyboard": [[{"text": "1. Yes", "callback_data": "1:1:1"}]]})
    response = await sqlite_telegram.client.post(
        f"/sandbox/telegram/bot{BOT_TOKEN}/sendMessage",
        data={"chat_id": str(CHAT), "text": "Sure?", "reply_markup": keyboard},
    )

    assert response.status == 200
    [sent] = await fake_messages(sqlite_telegram)
    assert sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "1:1:1"


async def perform_webhook_reply(service, body: Any) -> tuple[int, dict[str, Any]]:
    response = await service.client.post("/sandbox/telegram/webhook-reply", json=body)
    return response.status, await response.json()


async def test_fake_performs_webhook_reply(sqlite_telegram) -> None:
    answer = {"method": "answerCallbackQuery", "callback_query_id": "4382", "text": "Done"}
    status, body = await perform_webhook_reply(sqlite_telegram, answer)

    assert (status, body) == (200, {"ok": True, "result": True})
    answers = await (await sqlite_telegram.client.get("/sandbox/telegram/callback-answers")).json()
    assert answers == [{"callback_query_id": "4382", "text": "Done", "show_alert": False}]


BAD_WEBHOOK_REPLIES = [
    ([], 400, "Bad Request: expected a JSON object"),
    ({"callback_query_id": "4382"}, 400, "Bad Request: method is empty"),
    ({"method": 7}, 400, "Bad Request: method must be a string"),
    ({"method": "noSuchMethod"}, 404, "Not Found: method not found"),
    ({"method": "answerCallbackQuery"}, 400, "Bad Request: query is too old"),
    ({"method": "sendMessage", "chat_id": CHAT}, 400, "Bad Request: message text is empty"),
]


async def test_fake_rejects_bad_webhook_replies(sqlite_telegram) -> None:
    for reply, expected_status, description in BAD_WEBHOOK_REPLIES:
        status, body = await perform_webhook_reply(sqlite_telegram, reply)

        assert status == expected_status, reply
        assert body["ok"] is False
        assert body["description"].startswith(description), body
    response = await sqlite_telegram.client.post(
        "/sandbox/telegram/webhook-reply", data=b"method=getMe"
    )
    assert response.status == 400
    description = (await response.json())["description"]
    assert description == "Bad Request: a webhook reply must be a JSON object"
    assert await fake_messages(sqlite_telegram) == []
    answers = await (await sqlite_telegram.client.get("/sandbox/telegram/callback-answers")).json()
    assert answers == []
