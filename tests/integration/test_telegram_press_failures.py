"""Button presses answered in the webhook response: failures after a commit, keyboard removals
that fail, and bad input to the sandbox's webhook-reply endpoint."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from core.db.migrate import upgrade_to_head
from tests.integration.telegram_support import (
    WEBHOOK_REPLY_PATH,
    TelegramUser,
    button_data,
    buttons,
    callback_answers,
    inject,
    post_update,
    press_update,
    start_telegram_service,
)

EXPIRED = "This menu has expired. Please use the buttons on the latest message."
PATIENT_CHAT = 7000000091


@pytest.fixture
async def sqlite_telegram(sqlite_url, clock):
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_telegram_service(sqlite_url, clock)
    yield running
    await running.stop()


async def message_by_id(user: TelegramUser, message_id: int) -> dict[str, Any]:
    return {m["message_id"]: m for m in await user.messages()}[message_id]


async def test_redelivered_stale_press_removes_keyboard(sqlite_telegram) -> None:
    """A stale press on a live screen queues no reply, and its keyboard removal from the web
    process fails once. Telegram's redelivery of the update is a duplicate, which removes the
    keyboard and sends nothing."""
    service = sqlite_telegram
    user = TelegramUser(service, PATIENT_CHAT)
    first = await user.send("/start")
    await user.send("/start")  # a newer menu, so the first one's buttons are stale
    sent_before = len(await user.messages())
    await inject(service, 502, count=1)
    press = press_update(user.user_id, button_data(first, "1"), first["message_id"])

    first_status, first_text = await post_update(service, press)
    assert buttons(await message_by_id(user, first["message_id"])) != []
    again_status, again_text = await post_update(service, press)

    assert (first_status, again_status) == (200, 200)
    assert json.loads(first_text)["text"] == EXPIRED
    assert json.loads(again_text)["callback_query_id"] == press["callback_query"]["id"]
    assert buttons(await message_by_id(user, first["message_id"])) == []
    assert len(await user.messages()) == sent_before


async def test_failed_removal_holds_reply_back(sqlite_telegram) -> None:
    """One 5xx from the Bot API hits the worker's editMessageReplyMarkup. The reply waits for
    the retry, which removes the keyboard and sends it once."""
    service = sqlite_telegram
    user = TelegramUser(service, PATIENT_CHAT + 1)
    menu = await user.send("/start")
    await inject(service, 502, count=1)

    update = press_update(user.user_id, button_data(menu, "1"), menu["message_id"])
    status, _ = await post_update(service, update)
    assert status == 200
    assert [m["message_id"] for m in await user.messages()] == [menu["message_id"]]
    assert buttons(await message_by_id(user, menu["message_id"])) != []
    await service.advance(timedelta(hours=1).total_seconds())

    messages = await user.messages()
    assert [m["text"] for m in messages[1:]] == ["Choose a service:"]
    assert buttons(await message_by_id(user, menu["message_id"])) == []


async def test_removal_retried_until_it_succeeds(sqlite_telegram) -> None:
    """The removal fails with a 5xx on two attempts in a row, and the third removes the
    keyboard and sends the reply once; the press itself was answered once."""
    service = sqlite_telegram
    user = TelegramUser(service, PATIENT_CHAT + 2)
    menu = await user.send("/start")
    await inject(service, 502, count=2)

    update = press_update(user.user_id, button_data(menu, "1"), menu["message_id"])
    status, _ = await post_update(service, update)
    assert status == 200
    for _ in range(2):
        await user.messages()
        await service.advance(timedelta(hours=1).total_seconds())

    messages = await user.messages()
    assert [m["text"] for m in messages[1:]] == ["Choose a service:"]
    assert buttons(await message_by_id(user, menu["message_id"])) == []
    answers = await callback_answers(service)
    assert [a["callback_query_id"] for a in answers] == [update["callback_query"]["id"]]


async def test_inaccessible_message_press_answered(sqlite_telegram) -> None:
    """A press whose message Telegram sends as inaccessible (date 0) is answered and acts."""
    service = sqlite_telegram
    user = TelegramUser(service, PATIENT_CHAT + 3)
    menu = await user.send("/start")
    update = press_update(user.user_id, button_data(menu, "1"), menu["message_id"])
    update["callback_query"]["message"] = {
        "chat": update["callback_query"]["message"]["chat"],
        "message_id": menu["message_id"],
        "date": 0,
    }

    status, text = await post_update(service, update)

    assert status == 200
    assert json.loads(text)["callback_query_id"] == update["callback_query"]["id"]
    assert (await user.last_message())["text"] == "Choose a service:"


async def test_double_tap_answers_each_press(sqlite_telegram) -> None:
    """Two presses on one keyboard at once: one acts, the other is stale, each gets one answer,
    one reply goes out and the pressed keyboard ends without buttons."""
    service = sqlite_telegram
    user = TelegramUser(service, PATIENT_CHAT + 4)
    menu = await user.send("/start")
    presses = [
        press_update(user.user_id, button_data(menu, key), menu["message_id"]) for key in "12"
    ]

    results = await asyncio.gather(*(post_update(service, press) for press in presses))

    assert [status for status, _ in results] == [200, 200]
    answers = await callback_answers(service)
    answered = sorted(a["callback_query_id"] for a in answers)
    assert answered == sorted(p["callback_query"]["id"] for p in presses)
    assert sorted(str(a["text"]) for a in answers) == sorted(["None", EXPIRED])
    messages = await user.messages()
    assert len(messages) == 2
    assert buttons(await message_by_id(user, menu["message_id"])) == []


async def test_undecodable_press_answered_once(sqlite_telegram) -> None:
    """A press with data our keyboards never carry is answered with the notice, its keyboard is
    removed, and a redelivery is answered without acting."""
    service = sqlite_telegram
    user = TelegramUser(service, PATIENT_CHAT + 5)
    menu = await user.send("/start")
    press = press_update(user.user_id, "not-our-data", menu["message_id"])

    first_status, first_text = await post_update(service, press)
    again_status, again_text = await post_update(service, press)

    assert (first_status, again_status) == (200, 200)
    assert json.loads(first_text).get("text") == EXPIRED
    assert json.loads(again_text)["callback_query_id"] == press["callback_query"]["id"]
    assert buttons(await message_by_id(user, menu["message_id"])) == []
    assert len(await user.messages()) == 1


# Bodies posted to the sandbox's webhook-reply endpoint, with a word the 4xx response must
# contain to name the problem.
BAD_WEBHOOK_REPLIES = [
    pytest.param(b"\xff\xfe", "json", id="invalid-utf8"),
    pytest.param(b"[" * 100_000, "json", id="nesting-too-deep"),
    pytest.param(b"[]", "object", id="array"),
    pytest.param(b"{}", "method", id="method-missing"),
    pytest.param(b'{"method": 5}', "string", id="method-not-a-string"),
    pytest.param(b'{"method": "deleteChat"}', "deletechat", id="method-unknown"),
    pytest.param(
        b'{"method": "answerCallbackQuery", "callback_query_id": "1", "text": 5}',
        "text",
        id="answer-text-not-a-string",
    ),
]


@pytest.mark.parametrize(("body", "expected_word"), BAD_WEBHOOK_REPLIES)
async def test_webhook_reply_rejects_bad_input(
    sqlite_telegram, body: bytes, expected_word: str
) -> None:
    response = await sqlite_telegram.client.post(
        WEBHOOK_REPLY_PATH, data=body, headers={"Content-Type": "application/json"}
    )
    text = await response.text()

    assert 400 <= response.status < 500, text
    assert expected_word in json.loads(text)["description"].lower()
