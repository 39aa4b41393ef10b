"""Helpers for Telegram tests: updates shaped like Telegram's, and a user who reads the fake."""

from __future__ import annotations

import itertools
import json
from typing import Any

from myafya.telegram_channel import TELEGRAM_KEYBOARDS, WEBHOOK_PATH
from tests.conftest import PAYLOADS
from tests.integration.conftest import RunningService, start_service

BOT_TOKEN = "8000000001:test-telegram-bot-token"
WEBHOOK_SECRET = "test-telegram-webhook-secret"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_REPLY_PATH = "/sandbox/telegram/webhook-reply"
TELEGRAM_SETTINGS = {"telegram_bot_token": BOT_TOKEN, "telegram_webhook_secret": WEBHOOK_SECRET}
BOT_USER = {"id": 8000000001, "is_bot": True, "first_name": "Test Clinic Bot"}

_update_ids = itertools.count(910_000_000)
_query_ids = itertools.count(4_382_000_000_000_000_100)


def payload(name: str) -> dict[str, Any]:
    return dict(json.loads((PAYLOADS / name).read_text()))


async def start_telegram_service(database_url: str, clock, **overrides: Any) -> RunningService:
    return await start_service(database_url, clock, **{**TELEGRAM_SETTINGS, **overrides})


def _user(user_id: int, language_code: str | None = None) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": user_id,
        "is_bot": False,
        "first_name": "Test",
        "last_name": "Patient",
    }
    if language_code is not None:
        user["language_code"] = language_code
    return user


def _chat(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "first_name": "Test", "last_name": "Patient", "type": "private"}


def message_update(
    user_id: int,
    update_id: int | None = None,
    *,
    language_code: str | None = None,
    **content: Any,
) -> dict[str, Any]:
    """A private-chat message update; `content` contains `text`, `contact`, `photo` and so on.

    `language_code` is the sender's app language as Telegram sends it in `from`, None to leave
    it out."""
    return {
        "update_id": next(_update_ids) if update_id is None else update_id,
        "message": {
            "message_id": 500,
            "from": _user(user_id, language_code),
            "chat": _chat(user_id),
            "date": 1796378400,
            **content,
        },
    }


def contact_update(
    user_id: int, phone: str, contact_user_id: int | None, language_code: str | None = None
) -> dict[str, Any]:
    contact: dict[str, Any] = {"phone_number": phone, "first_name": "Test"}
    if contact_user_id is not None:
        contact["user_id"] = contact_user_id
    return message_update(user_id, language_code=language_code, contact=contact)


def press_update(
    user_id: int,
    data: str,
    message_id: int,
    update_id: int | None = None,
    language_code: str | None = None,
) -> dict[str, Any]:
    """A press on a button of the bot's message `message_id`."""
    return {
        "update_id": next(_update_ids) if update_id is None else update_id,
        "callback_query": {
            "id": str(next(_query_ids)),
            "from": _user(user_id, language_code),
            "message": {
                "message_id": message_id,
                "from": BOT_USER,
                "chat": _chat(user_id),
                "date": 1796378460,
                "text": "menu",
            },
            "chat_instance": "-1000000000000000001",
            "data": data,
        },
    }


async def post_update(
    service: RunningService, update: dict[str, Any] | bytes, secret: str | None = WEBHOOK_SECRET
) -> tuple[int, str]:
    """Deliver an update as Telegram does, and perform the method call the response gives, if
    any, through the sandbox; the call must succeed."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    response = await service.client.post(WEBHOOK_PATH, data=body, headers=headers)
    text = await response.text()
    if response.status == 200 and response.content_type == "application/json":
        performed = await service.client.post(WEBHOOK_REPLY_PATH, json=json.loads(text))
        assert performed.status == 200, await performed.text()
    return response.status, text


async def inject(service: RunningService, http_status: int, count: int = 1) -> None:
    """Make the next `count` calls to the Bot API fake fail with `http_status`."""
    response = await service.client.post(
        "/sandbox/faults",
        json={"service": "telegram.bot_api", "http_status": http_status, "count": count},
    )
    assert response.status == 204, await response.text()


async def settle(service: RunningService) -> None:
    """Wait for queued replies and for the keyboard removals of presses without one."""
    await service.drain()
    await service.client.app[TELEGRAM_KEYBOARDS].drain()


class TelegramUser:
    """A Telegram user chatting with the bot through the webhook and the Bot API fake."""

    def __init__(
        self, service: RunningService, user_id: int, language_code: str | None = None
    ) -> None:
        """`language_code` is sent in `from` of every update; change it to model a user who
        switches the app's language."""
        self.service = service
        self.user_id = user_id
        self.language_code = language_code

    async def send(self, text: str) -> dict[str, Any]:
        """Send text and return the bot's newest message after the reply went out."""
        update = message_update(self.user_id, language_code=self.language_code, text=text)
        status, _ = await post_update(self.service, update)
        assert status == 200
        return await self.last_message()

    async def share_contact(
        self, phone: str, *, owner: int | str | None = "self"
    ) -> dict[str, Any]:
        """Share a contact card; `owner` is its Telegram user id, None for a contact without
        one, and "self" (the default) for this user's own card."""
        owner_id = self.user_id if owner == "self" else owner
        assert owner_id is None or isinstance(owner_id, int)
        update = contact_update(self.user_id, phone, owner_id, self.language_code)
        status, _ = await post_update(self.service, update)
        assert status == 200
        return await self.last_message()

    async def press(self, message: dict[str, Any], key: str) -> dict[str, Any]:
        """Press the button with `key` on `message` and return the bot's newest message."""
        update = press_update(
            self.user_id,
            button_data(message, key),
            message["message_id"],
            language_code=self.language_code,
        )
        status, _ = await post_update(self.service, update)
        assert status == 200
        return await self.last_message()

    async def messages(self) -> list[dict[str, Any]]:
        await settle(self.service)
        response = await self.service.client.get(
            "/sandbox/telegram/messages", params={"chat_id": str(self.user_id)}
        )
        return list(await response.json())

    async def last_message(self) -> dict[str, Any]:
        messages = await self.messages()
        assert messages, "the bot sent nothing"
        return messages[-1]


async def callback_answers(service: RunningService) -> list[dict[str, Any]]:
    await settle(service)
    response = await service.client.get("/sandbox/telegram/callback-answers")
    return list(await response.json())


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    markup = message.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def button_data(message: dict[str, Any], key: str) -> str:
    for button in buttons(message):
        if button["text"].split(".", 1)[0] == key:
            return str(button["callback_data"])
    raise AssertionError(f"no button {key!r} in {[b['text'] for b in buttons(message)]}")


def button_labels(message: dict[str, Any]) -> list[str]:
    return [button["text"] for button in buttons(message)]
