"""Rejections of Telegram updates that python-telegram-bot cannot parse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from telegram import Bot

from bot.channels.telegram.updates import InvalidUpdate, parse_update

BOT = Bot("123456:TEST-TOKEN")
USER = {"id": 7000000031, "is_bot": False, "first_name": "Test"}
CHAT = {"id": 7000000031, "type": "private"}
STICKER_WITHOUT_FILE = {"emoji": "\U0001f44d"}


def message(**content: Any) -> dict[str, Any]:
    return {"message_id": 500, "from": USER, "chat": CHAT, "date": 1796378400, **content}


def rejection(update: dict[str, Any]) -> InvalidUpdate:
    with pytest.raises(InvalidUpdate) as raised:
        parse_update(json.dumps(update).encode(), BOT)
    return raised.value


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"update_id": 1, "message": message(sticker=STICKER_WITHOUT_FILE)}, "message.sticker"),
        ({"update_id": 2, "message": message(photo=[{"width": 90}])}, "message.photo[0]"),
        (
            {
                "update_id": 3,
                "message": message(reply_to_message=message(sticker=STICKER_WITHOUT_FILE)),
            },
            "message.reply_to_message.sticker",
        ),
        ({"update_id": 4, "message": message(chat={"id": 7000000031})}, "message.chat"),
        ({"update_id": 5, "message": message(contact={"phone_number": "12"})}, "message.contact"),
    ],
)
def test_incomplete_object_is_named(update: dict[str, Any], field: str) -> None:
    error = rejection(update)

    assert error.field == field
    assert str(error) == f"invalid field '{field}': missing required fields"


def test_rejection_hides_python_details() -> None:
    error = rejection({"update_id": 6, "message": message(sticker=STICKER_WITHOUT_FILE)})

    assert "__init__" not in str(error)
    assert "positional" not in str(error)
    assert "Sticker" not in str(error)


def test_wrong_value_type_is_named() -> None:
    error = rejection({"update_id": 7, "message": message(date="yesterday")})

    assert error.field == "message"
    assert "Error" not in str(error)
