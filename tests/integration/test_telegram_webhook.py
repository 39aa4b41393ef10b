"""The Telegram webhook against every captured update: valid, wrong secret, malformed, repeated."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from core.db.migrate import upgrade_to_head
from tests.integration.conftest import RunningService
from tests.integration.telegram_support import (
    WEBHOOK_SECRET,
    TelegramUser,
    button_data,
    callback_answers,
    message_update,
    payload,
    post_update,
    press_update,
    settle,
    start_telegram_service,
)

PATIENT_CHAT = 7000000001
TABLES = ("inbound_messages", "channel_identities", "conversations", "outbox_messages")


@pytest.fixture
async def telegram_service(database_url, clock):
    running = await start_telegram_service(database_url, clock)
    yield running
    await running.stop()


@pytest.fixture
async def sqlite_service_telegram(sqlite_url, clock):
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_telegram_service(sqlite_url, clock)
    yield running
    await running.stop()


async def row_counts(service: RunningService) -> dict[str, int]:
    return {table: await service.scalar(f"SELECT COUNT(*) FROM {table}") for table in TABLES}


async def sent_to_patient(service: RunningService) -> list[dict[str, Any]]:
    await settle(service)
    response = await service.client.get(
        "/sandbox/telegram/messages", params={"chat_id": str(PATIENT_CHAT)}
    )
    return list(await response.json())


def without(update: dict[str, Any], path: str) -> dict[str, Any]:
    """Return a copy of `update` with the field at the dotted `path` removed."""
    broken = copy.deepcopy(update)
    *parents, name = path.split(".")
    target = broken
    for part in parents:
        target = target[part]
    del target[name]
    return broken


def content_field(update: dict[str, Any]) -> str:
    return "callback_query" if "callback_query" in update else "message"


# A field python-telegram-bot requires inside each kind of update content.
REQUIRED_INSIDE = {"message": "chat", "callback_query": "from"}


PAYLOAD_FILES = [
    "telegram_update_start_command.json",
    "telegram_update_text_message.json",
    "telegram_update_callback_query.json",
    "telegram_update_contact_shared.json",
]


@pytest.mark.parametrize("name", PAYLOAD_FILES)
async def test_captured_update_table(telegram_service, name: str) -> None:
    """Rejections write nothing; the valid update is applied once and its copy changes nothing."""
    update = payload(name)
    field = content_field(update)
    body = json.dumps(update).encode()
    empty = await row_counts(telegram_service)

    rejections = [
        (await post_update(telegram_service, body, secret=None), 403, None),
        (await post_update(telegram_service, body, secret="wrong-secret"), 403, None),
        (await post_update(telegram_service, body, secret=WEBHOOK_SECRET + "x"), 403, None),
        (await post_update(telegram_service, without(update, "update_id")), 400, "update_id"),
        (await post_update(telegram_service, {**update, "update_id": "1"}), 400, "update_id"),
        (await post_update(telegram_service, {**update, field: "text"}), 400, field),
        (
            await post_update(
                telegram_service, without(update, f"{field}.{REQUIRED_INSIDE[field]}")
            ),
            400,
            field,
        ),
        (await post_update(telegram_service, b"{not json"), 400, "body"),
    ]
    for index, ((status, text), expected_status, expected_field) in enumerate(rejections):
        assert status == expected_status, f"rejection {index}: {text}"
        if expected_field is not None:
            assert json.loads(text)["field"].startswith(expected_field), text
    assert await row_counts(telegram_service) == empty
    assert await sent_to_patient(telegram_service) == []
    assert await callback_answers(telegram_service) == []

    status, _ = await post_update(telegram_service, update)
    assert status == 200
    after_first = await row_counts(telegram_service)
    replies = await sent_to_patient(telegram_service)
    answers = await callback_answers(telegram_service)

    status, _ = await post_update(telegram_service, update)
    assert status == 200
    assert await row_counts(telegram_service) == after_first
    assert await sent_to_patient(telegram_service) == replies
    assert after_first["inbound_messages"] == 1

    if name == "telegram_update_callback_query.json":
        # A button this service never drew: answered with a notice, nothing else happens.
        assert replies == []
        assert after_first["conversations"] == 0
        assert [answer["text"] for answer in answers] == [
            "This menu has expired. Please use the buttons on the latest message."
        ]
        repeated = await callback_answers(telegram_service)
        assert len(repeated) == 2  # the repeated press is answered too
        return

    assert len(replies) == 1
    assert after_first["conversations"] == 1
    assert after_first["outbox_messages"] == 1
    if name == "telegram_update_contact_shared.json":
        linked = await telegram_service.scalar(
            "SELECT phone FROM channel_identities WHERE address = :a", a=str(PATIENT_CHAT)
        )
        assert linked == "+254700000001"
        assert replies[0]["text"].startswith("Thank you. Your phone number is now linked")
        assert "Choose a language" in replies[0]["text"]
    else:
        # The first screen is in the sender's app language: "sw" in the text message.
        swahili = update["message"]["from"].get("language_code") == "sw"
        welcome = "Karibu MyAfya. Unaweza kuangalia" if swahili else "Welcome to MyAfya. You can"
        assert replies[0]["text"].startswith(welcome)
        key = await telegram_service.scalar("SELECT phone FROM conversations")
        assert key == f"tg:{PATIENT_CHAT}"


async def test_unknown_fields_are_accepted(sqlite_service_telegram) -> None:
    service = sqlite_service_telegram
    update = message_update(PATIENT_CHAT, text="hello", new_message_field={"x": 1})
    update["new_update_field"] = True
    update["message"]["from"]["new_user_field"] = "y"

    status, text = await post_update(service, update)

    assert status == 200, text
    assert await service.scalar("SELECT COUNT(*) FROM inbound_messages") == 1


async def test_incomplete_sticker_is_named(sqlite_service_telegram) -> None:
    service = sqlite_service_telegram
    update = message_update(PATIENT_CHAT, sticker={"emoji": "\U0001f44d"})

    status, text = await post_update(service, update)

    assert status == 400, text
    assert json.loads(text) == {
        "error": "invalid field 'message.sticker': missing required fields",
        "field": "message.sticker",
    }
    assert await service.scalar("SELECT COUNT(*) FROM inbound_messages") == 0


async def test_non_string_text_is_named(sqlite_service_telegram) -> None:
    service = sqlite_service_telegram
    press = press_update(PATIENT_CHAT, "1:1:1", 500)
    press["callback_query"]["data"] = 7
    not_strings = [
        (message_update(PATIENT_CHAT, text=5), "message.text", "number"),
        (message_update(PATIENT_CHAT, text=["a"]), "message.text", "array"),
        (press, "callback_query.data", "number"),
    ]

    for update, field, kind in not_strings:
        status, text = await post_update(service, update)

        assert status == 400, text
        assert json.loads(text) == {
            "error": f"invalid field '{field}': expected a string, got {kind}",
            "field": field,
        }
    assert await service.scalar("SELECT COUNT(*) FROM inbound_messages") == 0


async def test_group_messages_are_ignored(sqlite_service_telegram) -> None:
    service = sqlite_service_telegram
    update = message_update(PATIENT_CHAT, text="1")
    update["message"]["chat"] = {"id": -100123, "type": "group", "title": "Family"}

    status, _ = await post_update(service, update)

    assert status == 200
    assert await row_counts(service) == dict.fromkeys(TABLES, 0)


@pytest.mark.parametrize(
    ("content", "notice"),
    [
        ({"photo": [{"file_id": "f1", "file_unique_id": "u1", "width": 9, "height": 9}]}, "number"),
        ({"location": {"latitude": -1.29, "longitude": 36.82}}, "number"),
        ({"sticker": None, "text": None}, "choose a number"),
    ],
)
async def test_media_and_location_are_inputs(sqlite_service_telegram, content, notice) -> None:
    service = sqlite_service_telegram
    await post_update(service, message_update(PATIENT_CHAT, text="/start"))
    await settle(service)  # worker threads may send two queued replies in either order
    content = {name: value for name, value in content.items() if value is not None}

    status, _ = await post_update(service, message_update(PATIENT_CHAT, **content))

    assert status == 200
    replies = await sent_to_patient(service)
    assert len(replies) == 2
    assert notice in replies[-1]["text"].lower()


async def test_press_is_answered_in_the_response(sqlite_service_telegram) -> None:
    service = sqlite_service_telegram
    user = TelegramUser(service, PATIENT_CHAT)
    menu = await user.send("/start")
    press = press_update(PATIENT_CHAT, button_data(menu, "1"), menu["message_id"])

    status, text = await post_update(service, press)
    stale_status, stale_text = await post_update(
        service, press_update(PATIENT_CHAT, button_data(menu, "1"), menu["message_id"])
    )
    message_status, message_text = await post_update(
        service, message_update(PATIENT_CHAT, text="hello")
    )

    assert status == 200
    assert json.loads(text) == {
        "method": "answerCallbackQuery",
        "callback_query_id": press["callback_query"]["id"],
    }
    assert stale_status == 200
    assert json.loads(stale_text)["text"] == (
        "This menu has expired. Please use the buttons on the latest message."
    )
    assert (message_status, message_text) == (200, "")
