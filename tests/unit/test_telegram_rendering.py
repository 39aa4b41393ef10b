"""Telegram replies as keyboards, and captured updates read into events."""

from __future__ import annotations

import json

import pytest
from telegram import InlineKeyboardMarkup, ReplyKeyboardMarkup

from bot.channels.telegram.bot_api import build_bot
from bot.channels.telegram.rendering import (
    ButtonPress,
    decode_callback_data,
    encode_callback_data,
    render_outbox_variables,
    render_reply,
)
from bot.channels.telegram.updates import (
    ButtonPress as PressEvent,
)
from bot.channels.telegram.updates import (
    ChatMessage,
    Ignored,
    InvalidUpdate,
    SharedContact,
    language_of,
    parse_update,
    read_event,
)
from bot.engine.model import HOME, Input, InputKind, Option, Reply
from tests.conftest import PAYLOADS

BOT = build_bot("8000000001:unit-test-token", "http://127.0.0.1:9/unused")
MENU = Reply(
    body="MyAfya menu:",
    options=(Option("1", "Book a doctor"), Option("2", "My appointments")),
    navigation=(Option("0", "Back"), Option("00", "Menu")),
)


def test_callback_data_round_trip() -> None:
    data = encode_callback_data(12, 345, "00")

    assert data == "12:345:00"
    assert decode_callback_data(data) == ButtonPress(12, 345, "00")


def test_callback_data_stays_within_64_bytes() -> None:
    largest = encode_callback_data(2**63 - 1, 2**63 - 1, "98")

    assert len(largest.encode()) <= 64


@pytest.mark.parametrize(
    "data", [None, "", "slot:appt_0001:1030", "1:2", "1:2:", "a:2:1", "1:2:3:4", "1:2:" + "9" * 17]
)
def test_foreign_callback_data_is_not_a_press(data: str | None) -> None:
    assert decode_callback_data(data) is None


def test_encode_rejects_bad_key() -> None:
    with pytest.raises(ValueError, match="invalid button key"):
        encode_callback_data(1, 1, "a b")


def test_menu_becomes_inline_keyboard() -> None:
    text, markup = render_reply(MENU, conversation_id=7, screen_version=4)

    assert text == "MyAfya menu:"
    assert isinstance(markup, InlineKeyboardMarkup)
    rows = [[(b.text, b.callback_data) for b in row] for row in markup.inline_keyboard]
    assert rows == [
        [("1. Book a doctor", "7:4:1")],
        [("2. My appointments", "7:4:2")],
        [("0. Back", "7:4:0"), ("00. Menu", "7:4:00")],
    ]


def test_contact_request_becomes_reply_keyboard() -> None:
    reply = Reply(
        body="To book, share your number.",
        navigation=(Option("0", "Back"),),
        request_contact="Share my phone number",
    )

    text, markup = render_reply(reply, conversation_id=7, screen_version=4)

    assert text == "To book, share your number.\n0. Back"
    assert isinstance(markup, ReplyKeyboardMarkup)
    [[button]] = markup.keyboard
    assert button.text == "Share my phone number"
    assert button.request_contact is True
    assert markup.one_time_keyboard is True


def test_final_reply_has_no_keyboard() -> None:
    text, markup = render_reply(
        Reply(body="Booked!", end=True), conversation_id=7, screen_version=4
    )

    assert text == "Booked!"
    assert markup is None


def test_reply_without_ids_is_numbered_text() -> None:
    text, markup = render_outbox_variables({"reply": MENU.to_json()}, "unused")

    assert markup is None
    assert text.splitlines()[1] == "1. Book a doctor"


def test_long_text_is_cut_to_telegram_limit() -> None:
    text, _ = render_reply(Reply(body="x" * 5000), conversation_id=None, screen_version=None)

    assert len(text) == 4096
    assert text.endswith("…")


def event_of(name: str):
    return read_event(parse_update((PAYLOADS / name).read_bytes(), BOT))


def test_start_command_opens_menu() -> None:
    event = event_of("telegram_update_start_command.json")

    assert event == ChatMessage(7000000001, 7000000001, Input(InputKind.TEXT, HOME), "en")


def test_text_message_is_text_input() -> None:
    event = event_of("telegram_update_text_message.json")

    assert isinstance(event, ChatMessage)
    assert event.input == Input(InputKind.TEXT, "Nataka kuona daktari kesho asubuhi")
    assert event.language == "sw"


def test_callback_query_is_press() -> None:
    event = event_of("telegram_update_callback_query.json")

    assert event == PressEvent(
        user_id=7000000001,
        chat_id=7000000001,
        callback_query_id="4382000000000000001",
        data="slot:appt_0001:1030",
        message_id=102,
        language="en",
    )


def test_contact_is_shared_contact() -> None:
    event = event_of("telegram_update_contact_shared.json")

    assert event == SharedContact(7000000001, 7000000001, "254700000001", 7000000001, "en")


@pytest.mark.parametrize(
    ("language_code", "language"),
    [
        ("sw", "sw"),
        ("sw-KE", "sw"),
        ("SW_tz", "sw"),
        ("en", "en"),
        ("en-GB", "en"),
        ("fr", "en"),
        ("swa", "en"),
        ("", "en"),
        (None, "en"),
        (7, "en"),
    ],
)
def test_language_of_tag(language_code, language) -> None:
    assert language_of(language_code) == language


def test_edited_message_is_ignored() -> None:
    update = json.loads((PAYLOADS / "telegram_update_text_message.json").read_text())
    update["edited_message"] = update.pop("message")

    event = read_event(parse_update(json.dumps(update).encode(), BOT))

    assert isinstance(event, Ignored)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"update_id": -1}, "update_id"),
        ({"update_id": True}, "update_id"),
        ({"message": []}, "message"),
    ],
)
def test_invalid_update_names_field(change: dict, field: str) -> None:
    update = json.loads((PAYLOADS / "telegram_update_text_message.json").read_text())
    update.update(change)

    with pytest.raises(InvalidUpdate) as error:
        parse_update(json.dumps(update).encode(), BOT)

    assert error.value.field == field


def test_non_integer_user_id_is_rejected() -> None:
    update = json.loads((PAYLOADS / "telegram_update_text_message.json").read_text())
    update["message"]["from"]["id"] = "7000000001"

    with pytest.raises(InvalidUpdate) as error:
        read_event(parse_update(json.dumps(update).encode(), BOT))

    assert error.value.field == "message.from.id"
