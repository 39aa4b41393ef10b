"""Read a Telegram webhook body into one of the few events the service acts on.

The body is parsed with python-telegram-bot's `Update.de_json`, which keeps fields it does not
know in `api_kwargs`, so new Bot API fields never cause a rejection. That parser checks little
beyond required arguments, so the ids this service relies on are checked here, and every
rejection names the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from telegram import Bot, Message, Update

from bot.engine.model import HOME, Input, InputKind
from core.i18n import DEFAULT_LANGUAGE, LANGUAGES

# Commands that open the menu: /start is what Telegram sends when a user first opens the bot.
MENU_COMMANDS: Final = frozenset({"/start", "/menu"})

# Message attributes that hold a file; any of them makes the message a media input.
MEDIA_ATTRIBUTES: Final = (
    "photo",
    "document",
    "video",
    "voice",
    "audio",
    "sticker",
    "animation",
    "video_note",
)

# Top-level fields that carry an update's content, one per update.
_UPDATE_FIELDS: Final = frozenset(str(kind) for kind in Update.ALL_TYPES)


class InvalidUpdate(Exception):
    """The body is not a Telegram update this service can read; the message names the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid field '{field}': {reason}")
        self.field = field


@dataclass(frozen=True)
class ChatMessage:
    """A message in a private chat: text, a command, media or a location."""

    user_id: int
    chat_id: int
    input: Input
    language: str  # from the sender's `language_code`, see `language_of`


@dataclass(frozen=True)
class SharedContact:
    """A contact card sent in a private chat. Only one whose `contact_user_id` is the sender's
    own id proves that the phone number belongs to the sender."""

    user_id: int
    chat_id: int
    phone_number: str
    contact_user_id: int | None
    language: str


@dataclass(frozen=True)
class ButtonPress:
    """A press on an inline keyboard button. `message_id` is None when Telegram no longer gives
    the message the keyboard was on."""

    user_id: int
    chat_id: int
    callback_query_id: str
    data: str | None
    message_id: int | None
    language: str


@dataclass(frozen=True)
class Ignored:
    """An update the service does not act on, such as an edited message or a group message."""

    reason: str


ChatEvent = ChatMessage | SharedContact | ButtonPress | Ignored


def parse_update(body: bytes, bot: Bot) -> Update:
    """Parse a webhook body. Raises InvalidUpdate naming the field at fault."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidUpdate("body", "not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidUpdate("body", "expected a JSON object")
    update_id = data.get("update_id")
    if update_id is None:
        raise InvalidUpdate("update_id", "missing")
    if isinstance(update_id, bool) or not isinstance(update_id, int) or update_id < 0:
        raise InvalidUpdate("update_id", f"expected a non-negative integer, got {update_id!r}")

    for field in _UPDATE_FIELDS & data.keys():
        if not isinstance(data[field], dict):
            raise InvalidUpdate(field, "expected a JSON object")
    try:
        return Update.de_json(data, bot)
    except _PARSE_ERRORS as exc:
        raise _invalid_object(data, bot, (type(exc), str(exc))) from None


# Errors python-telegram-bot raises for an object it cannot build, such as a TypeError for
# a missing required argument of the object's class.
_PARSE_ERRORS: Final = (TypeError, KeyError, ValueError, AttributeError)
# Each step of the search for the field at fault parses the whole update again, so the
# search stops after this many parses and names the object it reached.
MAX_FAULT_SEARCH_PARSES: Final = 64

_Path = tuple[str | int, ...]
_Failure = tuple[type[Exception], str]


def _parse_failure(data: Any, bot: Bot) -> _Failure | None:
    """Parse the update and return the type and text of the error, or None if it parses."""
    try:
        Update.de_json(data, bot)
    except _PARSE_ERRORS as exc:
        return type(exc), str(exc)
    return None


def _invalid_object(data: dict[str, Any], bot: Bot, failure: _Failure) -> InvalidUpdate:
    """Build the rejection of an update that python-telegram-bot cannot parse.

    The parser's error quotes Python internals, such as `Sticker.__init__() missing 7 required
    positional arguments`, so the rejection names the field at fault instead.
    """
    path, is_value = _find_fault(data, bot, failure)
    if not path:
        field = next(iter(sorted(_UPDATE_FIELDS & data.keys())), "body")
    else:
        field = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path)
        field = field.removeprefix(".")
    error_type, text = failure
    if is_value:
        reason = "not a valid value"
    elif issubclass(error_type, TypeError) and "required positional argument" in text:
        reason = "missing required fields"
    else:
        reason = "not a valid Telegram object"
    return InvalidUpdate(field, reason)


def _find_fault(data: dict[str, Any], bot: Bot, failure: _Failure) -> tuple[_Path, bool]:
    """Return the path of the deepest object at fault, and whether it is a single value.

    python-telegram-bot (22.x) builds an object's nested objects before the object itself and
    stops at the first error. So removing a nested object changes the error only when the
    error comes from that object or from inside it, and the search descends into that one. A
    value such as a date that cannot be parsed is at fault when removing it lets the update
    parse.
    """
    path: _Path = ()
    node: Any = data
    parses = 0
    while parses < MAX_FAULT_SEARCH_PARSES:
        faulty_value = None
        for key, child in _children(node):
            if parses >= MAX_FAULT_SEARCH_PARSES:
                break
            parses += 1
            outcome = _parse_failure(_without(data, (*path, key)), bot)
            if isinstance(child, dict | list) and outcome != failure:
                path = (*path, key)
                node = child
                break
            if faulty_value is None and outcome is None:
                faulty_value = key
        else:
            if faulty_value is not None:
                return (*path, faulty_value), True
            return path, False
    return path, False


def _children(node: Any) -> list[tuple[str | int, Any]]:
    """Return the items of a JSON object or array, nested objects and arrays first."""
    items: list[tuple[str | int, Any]]
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return []
    return sorted(items, key=lambda item: not isinstance(item[1], dict | list))


def _without(node: Any, path: _Path) -> Any:
    """Return a copy of `node` without the item at `path`, copying only the containers on it."""
    key, *rest = path
    copy = list(node) if isinstance(node, list) else dict(node)
    if rest:
        copy[key] = _without(node[key], tuple(rest))  # type: ignore[index]
    else:
        del copy[key]  # type: ignore[arg-type]
    return copy


def language_of(language_code: Any) -> str:
    """Map the IETF tag of the user's Telegram app language (`sw`, `en-GB`, absent) to one of
    our languages by its primary subtag: `sw-KE` gives Kiswahili, and a language we do not
    have, or no tag, gives English."""
    if not isinstance(language_code, str):
        return DEFAULT_LANGUAGE
    primary = language_code.replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in LANGUAGES else DEFAULT_LANGUAGE


def read_event(update: Update) -> ChatEvent:
    """Return what the update asks of the service.

    Raises InvalidUpdate when an id this service relies on is not an integer.
    """
    if update.callback_query is not None:
        return _read_press(update)
    message = update.message
    if message is None:
        return Ignored("update type not handled")
    if message.chat is None:
        raise InvalidUpdate("message.chat", "missing")
    if message.chat.type != "private":
        # Replies in a group would show health details to every member.
        return Ignored("not a private chat")
    user = message.from_user
    if user is None:
        return Ignored("message without a sender")
    user_id = _integer(user.id, "message.from.id")
    chat_id = _integer(message.chat.id, "message.chat.id")
    if user.is_bot:
        return Ignored("sent by a bot")
    language = language_of(user.language_code)

    contact = message.contact
    if contact is not None:
        if not isinstance(contact.phone_number, str) or not contact.phone_number.strip():
            raise InvalidUpdate("message.contact.phone_number", "missing")
        contact_user = contact.user_id
        return SharedContact(
            user_id=user_id,
            chat_id=chat_id,
            phone_number=contact.phone_number,
            contact_user_id=contact_user if isinstance(contact_user, int) else None,
            language=language,
        )
    return ChatMessage(
        user_id=user_id, chat_id=chat_id, input=_message_input(message), language=language
    )


def _read_press(update: Update) -> ChatEvent:
    query = update.callback_query
    assert query is not None
    if query.from_user is None:
        raise InvalidUpdate("callback_query.from", "missing")
    user_id = _integer(query.from_user.id, "callback_query.from.id")
    if not isinstance(query.id, str) or not query.id:
        raise InvalidUpdate("callback_query.id", "expected a non-empty string")
    if query.data is not None and not isinstance(query.data, str):
        raise InvalidUpdate(
            "callback_query.data", f"expected a string, got {_type_name(query.data)}"
        )
    message = query.message
    chat_id = user_id  # in a private chat the chat id is the user id
    message_id = None
    if message is not None:
        if message.chat is None:
            raise InvalidUpdate("callback_query.message.chat", "missing")
        if message.chat.type != "private":
            return Ignored("not a private chat")
        chat_id = _integer(message.chat.id, "callback_query.message.chat.id")
        # An inaccessible message (too old for Telegram to send) has date 0 and no content.
        if isinstance(message, Message):
            message_id = _integer(message.message_id, "callback_query.message.message_id")
    return ButtonPress(
        user_id=user_id,
        chat_id=chat_id,
        callback_query_id=query.id,
        data=query.data,
        message_id=message_id,
        language=language_of(query.from_user.language_code),
    )


def _message_input(message: Message) -> Input:
    if message.text is not None and not isinstance(message.text, str):
        # The value is not echoed: it is the patient's input, and rejections are logged.
        raise InvalidUpdate("message.text", f"expected a string, got {_type_name(message.text)}")
    if message.text is not None:
        command = message.text.strip().split(maxsplit=1)[0].split("@")[0] if message.text else ""
        if command.lower() in MENU_COMMANDS:
            return Input(InputKind.TEXT, HOME)
        return Input.of_text(message.text)
    if message.location is not None or message.venue is not None:
        return Input(InputKind.LOCATION)
    if any(getattr(message, name, None) for name in MEDIA_ATTRIBUTES):
        return Input(InputKind.MEDIA)
    return Input(InputKind.EMPTY)


def _type_name(value: Any) -> str:
    """Return the JSON type name of a parsed value, such as "number" or "array"."""
    names = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _integer(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidUpdate(field, f"expected an integer, got {value!r}")
    return value
