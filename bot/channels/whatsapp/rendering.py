"""What a Twilio send carries for an outbox row: numbered text, or a template's variables.

Replies are numbered text ("1. Book a doctor"), which WhatsApp shows in every client and which
needs no Content API resource. See the README's WhatsApp section for why quick-reply buttons and
list pickers are not drawn.
"""

from __future__ import annotations

from typing import Any, Final

from bot.engine.model import Reply
from core.notify.outbox import OutboundMessage

# Twilio's Messages API rejects a longer Body (error 21617).
MAX_BODY_CHARACTERS: Final = 1600
ELLIPSIS: Final = "..."

# Positions of the variables in the approved templates, by message kind. A kind not listed here
# gets its whole text as variable 1.
TEMPLATE_VARIABLES: Final[dict[str, tuple[str, ...]]] = {
    "reminder": ("doctor", "when", "reference"),
    "booked": ("doctor", "when", "reference"),
    "moved": ("doctor", "when", "reference"),
    "cancelled": ("doctor", "when", "reference"),
}


def message_text(message: OutboundMessage) -> str:
    """Return the text of a row: its reply drawn as numbered text, or its stored body."""
    reply_data = message.variables.get("reply")
    text = Reply.from_json(reply_data).as_text() if isinstance(reply_data, dict) else message.body
    if len(text) > MAX_BODY_CHARACTERS:
        text = text[: MAX_BODY_CHARACTERS - len(ELLIPSIS)] + ELLIPSIS
    return text


def template_variables(message: OutboundMessage) -> dict[str, str]:
    """Return a template's `ContentVariables` ({"1": …, "2": …}) for a row."""
    names = TEMPLATE_VARIABLES.get(message.kind or "")
    if names is None:
        return {"1": message_text(message)}
    values: dict[str, Any] = message.variables
    return {str(position): str(values.get(name, "")) for position, name in enumerate(names, 1)}
