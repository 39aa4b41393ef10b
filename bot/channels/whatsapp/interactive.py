"""Draw a reply's options as WhatsApp quick-reply buttons or a list picker, where they fit.

Twilio sends interactive WhatsApp messages only from a Content API resource (`ContentSid`).
Every field of `twilio/quick-reply` and `twilio/list-picker` accepts variables
(twilio.com/docs/content/twilio-quick-reply and /twiliolist-picker, read December 2026), so one
resource per shape, option count and language serves every screen. The sender creates each
resource once (see `contents`) and passes the screen's texts as `ContentVariables`.

Each button or list item id is `{conversation id}:{screen version}:{key}`, as on Telegram, so a
press can be checked against the screen it was drawn for. Typed numbers keep working.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from bot.engine.model import Option, Reply
from core.i18n import N_, translate

QUICK_REPLY: Final = "twilio/quick-reply"
LIST_PICKER: Final = "twilio/list-picker"

# An in-session WhatsApp message sent without template approval contains at most 3 quick-reply
# buttons (twilio.com/docs/content/twilio-quick-reply).
QUICK_REPLY_MAX_BUTTONS: Final = 3
# WhatsApp's maximum reply-button title (whatsapp.github.io WhatsApp-Nodejs-SDK, ButtonObject).
QUICK_REPLY_MAX_TITLE: Final = 20
# NOTE: Twilio's list-picker page gives no maximum for `button`, so 20 is assumed from the
# reply-button title.
LIST_MAX_BUTTON: Final = 20
# twilio.com/docs/content/twiliolist-picker: 1 to 10 items, item 24, description 72, id 200.
LIST_MAX_ITEMS: Final = 10
LIST_MAX_ITEM: Final = 24
LIST_MAX_DESCRIPTION: Final = 72
MAX_ID: Final = 200
# The body of both types (same pages).
MAX_BODY: Final = 1024
ELLIPSIS: Final = "..."

_PRESS_ID = re.compile(r"(\d{1,19}):(\d{1,19}):(\d{1,3})")


@dataclass(frozen=True)
class Press:
    """A pressed button or list item of ours: the screen it was drawn for and the option key."""

    conversation_id: int
    screen_version: int
    key: str


def encode_press_id(conversation_id: int, screen_version: int, key: str) -> str:
    """Return the id of one button or list item. Raises ValueError for a key we never draw."""
    value = f"{conversation_id}:{screen_version}:{key}"
    if _PRESS_ID.fullmatch(value) is None or len(value) > MAX_ID:
        raise ValueError(f"invalid option key {key!r} or ids for a button id")
    return value


def decode_press_id(value: str) -> Press | None:
    """Return the press in a `ButtonPayload` or `ListId`, or None when we never drew it."""
    match = _PRESS_ID.fullmatch(value.strip())
    if match is None:
        return None
    return Press(int(match[1]), int(match[2]), match[3])


@dataclass(frozen=True)
class InteractivePlan:
    """One reply as a Content API resource (by its shape) and the variables of this screen."""

    content_type: str  # QUICK_REPLY or LIST_PICKER
    count: int  # buttons or list items
    language: str
    variables: dict[str, str]

    def definition(self) -> dict[str, Any]:
        """Return the `POST /v1/Content` request that creates this plan's resource."""
        body = {"body": "{{1}}"}
        if self.content_type == QUICK_REPLY:
            actions = [
                {"type": "QUICK_REPLY", "title": _var(2 + 2 * i), "id": _var(3 + 2 * i)}
                for i in range(self.count)
            ]
            types: dict[str, Any] = {QUICK_REPLY: {**body, "actions": actions}}
        else:
            items = [
                {"item": _var(3 + 3 * i), "id": _var(4 + 3 * i), "description": _var(5 + 3 * i)}
                for i in range(self.count)
            ]
            types = {LIST_PICKER: {**body, "button": "{{2}}", "items": items}}
        shape = "quick_reply" if self.content_type == QUICK_REPLY else "list_picker"
        return {
            "friendly_name": f"myafya_{shape}_{self.count}_{self.language}",
            "language": self.language,
            "variables": _sample_variables(self.content_type, self.count),
            "types": types,
        }

    def content_key(self) -> str:
        """Return the cache key of the resource: shape, count, language and a definition hash.

        The hash makes a changed definition create a new resource rather than reuse an old one.
        """
        definition = json.dumps(self.definition(), sort_keys=True).encode()
        digest = hashlib.sha256(definition).hexdigest()[:16]
        return f"{self.content_type}:{self.count}:{self.language}:{digest}"


def plan_interactive(
    reply: Reply, *, conversation_id: int | None, screen_version: int | None, language: str
) -> InteractivePlan | None:
    """Choose quick-reply buttons or a list picker for `reply`, or None for numbered text.

    In order: every choice as up to 3 buttons; the options as buttons with the navigation keys
    (`0`, `00`, `98`) as numbered lines in the body; every choice as a list of up to 10 items;
    the options as a list with the navigation in the body. A label longer than a button's title
    rules buttons out. In a list, a label longer than an item is shortened there and shown whole
    as the item's description, and one longer than a description rules the list out. An ending
    reply, one without options, one that asks for the phone number, and one without a
    conversation id or screen version stay numbered text.
    """
    if reply.end or not reply.options or reply.request_contact or not reply.body:
        return None
    if conversation_id is None or screen_version is None:
        return None

    def press_id(option: Option) -> str:
        return encode_press_id(conversation_id, screen_version, option.key)

    choices = (*reply.options, *reply.navigation)
    for shape, max_count, max_label in (
        (QUICK_REPLY, QUICK_REPLY_MAX_BUTTONS, QUICK_REPLY_MAX_TITLE),
        (LIST_PICKER, LIST_MAX_ITEMS, LIST_MAX_DESCRIPTION),
    ):
        for drawn, body in ((choices, reply.body), (reply.options, _with_navigation(reply))):
            if len(drawn) > max_count or any(len(o.label) > max_label for o in drawn):
                continue
            if not drawn or len(body) > MAX_BODY:
                continue
            variables = {"1": body}
            if shape == QUICK_REPLY:
                for i, option in enumerate(drawn):
                    variables[str(2 + 2 * i)] = option.label
                    variables[str(3 + 2 * i)] = press_id(option)
            else:
                variables["2"] = translate(language, N_("whatsapp.list_button"))
                for i, option in enumerate(drawn):
                    hint = translate(language, N_("whatsapp.list_item_hint"), key=option.key)
                    item = _shorten(option.label, LIST_MAX_ITEM)
                    variables[str(3 + 3 * i)] = item
                    variables[str(4 + 3 * i)] = press_id(option)
                    description = hint if item == option.label else option.label
                    variables[str(5 + 3 * i)] = description[:LIST_MAX_DESCRIPTION]
                if len(variables["2"]) > LIST_MAX_BUTTON:
                    return None
            return InteractivePlan(shape, len(drawn), language, variables)
    return None


def plan_outbox_reply(variables: dict[str, Any], language: str) -> InteractivePlan | None:
    """Plan an outbox row's `variables`; a row without a reply gets None (its plain body)."""
    data = variables.get("reply")
    if not isinstance(data, dict):
        return None
    conversation_id = variables.get("conversation_id")
    screen_version = variables.get("screen_version")
    return plan_interactive(
        Reply.from_json(data),
        conversation_id=conversation_id if isinstance(conversation_id, int) else None,
        screen_version=screen_version if isinstance(screen_version, int) else None,
        language=language,
    )


def _shorten(label: str, limit: int) -> str:
    """Return `label`, or its words that fit in `limit` characters with "..." after them."""
    if len(label) <= limit:
        return label
    room = limit - len(ELLIPSIS)
    cut = label[: room + 1].rsplit(" ", 1)[0] if " " in label[: room + 1] else label[:room]
    return cut[:room].rstrip(" ,.-") + ELLIPSIS


def _with_navigation(reply: Reply) -> str:
    lines = [f"{option.key}. {option.label}" for option in reply.navigation]
    return "\n\n".join([reply.body, "\n".join(lines)]) if lines else reply.body


def _var(position: int) -> str:
    return "{{" + str(position) + "}}"


def _sample_variables(content_type: str, count: int) -> dict[str, str]:
    """Return sample values for every variable, which Twilio shows in its console."""
    samples = {"1": "Choose an option"}
    if content_type == QUICK_REPLY:
        for i in range(count):
            samples[str(2 + 2 * i)] = f"Option {i + 1}"
            samples[str(3 + 2 * i)] = f"1:1:{i + 1}"
    else:
        samples["2"] = "Choose"
        for i in range(count):
            samples[str(3 + 3 * i)] = f"Option {i + 1}"
            samples[str(4 + 3 * i)] = f"1:1:{i + 1}"
            samples[str(5 + 3 * i)] = f"or type {i + 1}"
    return samples
