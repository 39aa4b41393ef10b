"""The channel-neutral forms that flow through the engine: inputs, screens and replies."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.db.database import UnitOfWork

# Navigation keys shared by every channel.
BACK = "0"
HOME = "00"
MORE = "98"


class InputKind(enum.StrEnum):
    TEXT = "text"
    EMPTY = "empty"
    MEDIA = "media"
    LOCATION = "location"
    CONTACT = "contact"


@dataclass(frozen=True)
class Input:
    """One thing the patient sent: a keypress sequence, a chat message, a photo."""

    kind: InputKind
    text: str = ""

    @classmethod
    def of_text(cls, raw: str | None) -> Input:
        text = (raw or "").strip()
        return cls(InputKind.TEXT, text) if text else cls(InputKind.EMPTY)


class Text:
    """A message id from the catalogues and its placeholders, translated when rendered."""

    __slots__ = ("id", "params")

    def __init__(self, id: str, **params: Any) -> None:  # the message id
        self.id = id
        self.params = params

    def __repr__(self) -> str:
        return f"Text({self.id!r}, **{self.params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Text) and (self.id, self.params) == (other.id, other.params)

    def __hash__(self) -> int:
        return hash(self.id)


Label = Text | str  # A plain str is data shown as is, such as a doctor's name.


@dataclass(frozen=True)
class Choice:
    """An option on a screen: what the flow receives (`value`) and what the patient sees."""

    value: str
    label: Label


@dataclass(frozen=True)
class Screen:
    """The content of one step: a body, optional choices, and whether the conversation ends."""

    body: tuple[Text, ...]
    choices: tuple[Choice, ...] = ()
    accepts_text: bool = False
    end: bool = False
    # Shown when the choice list is empty, in place of the choices.
    empty: Text | None = None
    # The label of a button that shares the user's phone number, on chat channels that have
    # one (Telegram's request-contact button).
    request_contact: Text | None = None


@dataclass(frozen=True)
class Option:
    key: str
    label: str


@dataclass(frozen=True)
class Reply:
    """A rendered screen in the patient's language, ready for a channel to format."""

    body: str
    options: tuple[Option, ...] = ()
    navigation: tuple[Option, ...] = ()
    end: bool = False
    # The label of the share-my-phone-number button (see Screen), or "" for none.
    request_contact: str = ""

    def as_text(self) -> str:
        lines = [self.body] if self.body else []
        lines += [f"{option.key}. {option.label}" for option in self.options]
        lines += [f"{option.key}. {option.label}" for option in self.navigation]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "body": self.body,
            "options": [[o.key, o.label] for o in self.options],
            "navigation": [[o.key, o.label] for o in self.navigation],
            "end": self.end,
            "request_contact": self.request_contact,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reply:
        return cls(
            body=data["body"],
            options=tuple(Option(key, label) for key, label in data["options"]),
            navigation=tuple(Option(key, label) for key, label in data["navigation"]),
            end=bool(data["end"]),
            request_contact=str(data.get("request_contact", "")),
        )


@dataclass(frozen=True)
class ScreenLimits:
    """How much one reply may hold on a channel.

    `max_chars` counts GSM-7 septets and includes everything the channel adds (USSD's `CON `).
    """

    max_chars: int | None
    max_choices: int = 9
    gsm7_only: bool = False


@dataclass
class Conversation:
    """One patient's place in the dialog, persisted between messages."""

    phone: str
    flow: str
    state: str
    channel: str
    id: int | None = None
    patient_id: int | None = None
    language: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    back_stack: list[tuple[str, str]] = field(default_factory=list)
    session_id: str | None = None
    session_input: str | None = None
    last_reply: Reply | None = None
    version: int = 0
    expires_at: datetime | None = None


@dataclass(frozen=True)
class InboundMessage:
    """One message from a chat channel (WhatsApp, Telegram, two-way SMS), already authenticated.

    `key` identifies the conversation: the verified E.164 phone number, or `tg:<user id>` for a
    Telegram user who has not shared a contact yet. `reply_to` is where replies go on this
    channel (`whatsapp:+2547…`, a Telegram chat id, `+2547…`).
    """

    channel: str
    provider: str
    provider_message_id: str
    key: str
    reply_to: str
    input: Input
    received_at: datetime
    limits: ScreenLimits
    # The conversation version a pressed button was drawn for; a different current version
    # means the keyboard is stale and the press must not act.
    screen_version: int | None = None
    # The conversation a pressed button was drawn for. A press on another conversation's
    # keyboard, such as one from before a Telegram user linked a phone, is stale too.
    screen_conversation_id: int | None = None
    # A flow to open before reading `input`, for a keyword such as SMS `BOOK`: the flow starts
    # as if picked on the home menu, and a non-empty `input` answers its first screen.
    start_flow: str | None = None
    # The language of a conversation this message creates, when the patient has none yet: the
    # channel's reading of the user's app language. An existing conversation keeps its own.
    initial_language: str | None = None
    # Whether the user picked `initial_language` in a menu, rather than it coming from their
    # app's settings. A new unregistered conversation then skips the language question.
    initial_language_chosen: bool = False
    # Work done first in the step's transaction, such as recording a Telegram user, that
    # returns the conversation key. Its result replaces `key`, and a duplicate skips it.
    resolve_key: Callable[[UnitOfWork, datetime], Awaitable[str]] | None = None
    # The channel's id of the message whose button sent `input`. The reply carries it, so that
    # its sender takes the buttons off that message when it sends the next one.
    pressed_message_id: int | None = None


# Key of a reply row's `variables` that contains `InboundMessage.pressed_message_id`.
PRESSED_MESSAGE_KEY = "pressed_message_id"


@dataclass(frozen=True)
class MessageResult:
    """The outcome of handling one inbound chat message."""

    reply: Reply | None
    conversation_id: int | None
    conversation_version: int | None
    state_before: str
    state_after: str
    duplicate: bool = False
    stale_screen: bool = False
    # The conversation's language, or None when it has none yet or the message is a duplicate.
    language: str | None = None
