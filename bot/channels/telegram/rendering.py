"""Draw an engine reply as a Telegram message: the text plus an inline keyboard.

Every option and navigation key becomes one button. Its callback data is
`{conversation id}:{screen version}:{key}`, so a press can be checked against the conversation
and the screen it was drawn for. A keyboard from another conversation must not act, such as one
drawn under `tg:<id>` before the user linked a phone, and neither must one from an older screen.
Typed numbers keep working, because the button texts show the same keys as other channels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from telegram.constants import InlineKeyboardButtonLimit, MessageLimit

from bot.engine.model import Option, Reply, ScreenLimits

CALLBACK_DATA_MAX_BYTES: Final = int(InlineKeyboardButtonLimit.MAX_CALLBACK_DATA)
MESSAGE_MAX_CHARS: Final = int(MessageLimit.MAX_TEXT_LENGTH)

# Telegram imposes no short screen, so the engine pages lists only to keep keyboards small.
# Replies stay far below Telegram's 4096 characters, and the sender cuts any that do not.
TELEGRAM_LIMITS: Final = ScreenLimits(max_chars=None, max_choices=8)

_CALLBACK_DATA = re.compile(r"(\d{1,19}):(\d{1,19}):([0-9A-Za-z_-]{1,16})")

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup


@dataclass(frozen=True)
class ButtonPress:
    """The contents of a pressed inline button's callback data."""

    conversation_id: int
    screen_version: int
    key: str


def encode_callback_data(conversation_id: int, screen_version: int, key: str) -> str:
    """Return the callback data of one button. Raises ValueError for data Telegram rejects."""
    data = f"{conversation_id}:{screen_version}:{key}"
    if _CALLBACK_DATA.fullmatch(data) is None:
        raise ValueError(f"invalid button key {key!r} or ids for callback data")
    if len(data.encode()) > CALLBACK_DATA_MAX_BYTES:
        raise ValueError(f"callback data is longer than {CALLBACK_DATA_MAX_BYTES} bytes")
    return data


def decode_callback_data(data: str | None) -> ButtonPress | None:
    """Return the press in `data`, or None when our keyboards never carry such data."""
    if not data:
        return None
    match = _CALLBACK_DATA.fullmatch(data)
    if match is None:
        return None
    return ButtonPress(int(match[1]), int(match[2]), match[3])


def _button_text(option: Option) -> str:
    return f"{option.key}. {option.label}"


def render_reply(
    reply: Reply, *, conversation_id: int | None, screen_version: int | None
) -> tuple[str, Markup | None]:
    """Return the message text and its keyboard.

    A reply that asks for the phone number gets a one-time reply keyboard with Telegram's
    request-contact button, and its options are listed in the text because a message carries
    only one keyboard. A reply without a conversation id or screen version gets no buttons, only
    numbered lines.
    """
    choices = (*reply.options, *reply.navigation)
    if reply.request_contact:
        contact = KeyboardButton(reply.request_contact, request_contact=True)
        markup = ReplyKeyboardMarkup([[contact]], resize_keyboard=True, one_time_keyboard=True)
        return _fit(reply.as_text()), markup
    if reply.end or not choices:
        return _fit(reply.as_text()), None
    if conversation_id is None or screen_version is None:
        return _fit(reply.as_text()), None

    def button(option: Option) -> InlineKeyboardButton:
        data = encode_callback_data(conversation_id, screen_version, option.key)
        return InlineKeyboardButton(_button_text(option), callback_data=data)

    rows = [[button(option)] for option in reply.options]
    if reply.navigation:
        rows.append([button(option) for option in reply.navigation])
    return _fit(reply.body or reply.as_text()), InlineKeyboardMarkup(rows)


def render_outbox_variables(
    variables: dict[str, Any], fallback_text: str
) -> tuple[str, Markup | None]:
    """Render an outbox row's `variables`; a row without a reply is sent as its plain body."""
    data = variables.get("reply")
    if not isinstance(data, dict):
        return _fit(fallback_text), None
    conversation_id = variables.get("conversation_id")
    screen_version = variables.get("screen_version")
    return render_reply(
        Reply.from_json(data),
        conversation_id=conversation_id if isinstance(conversation_id, int) else None,
        screen_version=screen_version if isinstance(screen_version, int) else None,
    )


def _fit(text: str) -> str:
    text = text.strip() or "…"
    if len(text) <= MESSAGE_MAX_CHARS:
        return text
    return text[: MESSAGE_MAX_CHARS - 1] + "…"
