"""Inbound SMS through the real Africa's Talking webhook, and the replies the sandbox received."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import parse_qsl

from core.clock import FrozenClock
from tests.conftest import PAYLOADS
from tests.integration.conftest import RunningService, start_service

AT_SECRET = "test-at-webhook-secret"
INBOUND_PATH = f"/webhooks/africastalking/sms/{AT_SECRET}"
_message_ids = itertools.count(1)


def inbound_payload() -> dict[str, str]:
    """The captured inbound SMS form, as an ordered dict of its fields."""
    body = (PAYLOADS / "at_sms_inbound.form").read_text().strip()
    return dict(parse_qsl(body, keep_blank_values=True))


async def start_sms_service(
    database_url: str, clock: FrozenClock, **overrides: Any
) -> RunningService:
    return await start_service(database_url, clock, at_webhook_secret=AT_SECRET, **overrides)


class SmsPhone:
    """A phone texting the service, reading the replies the sandbox accepted for it."""

    def __init__(self, service: RunningService, phone: str) -> None:
        self.service = service
        self.phone = phone
        self.seen = 0

    async def send(self, text: str, *, message_id: str | None = None) -> int:
        """Post one inbound SMS and return the HTTP status."""
        form = {
            **inbound_payload(),
            "from": self.phone,
            "text": text,
            "id": message_id or f"00000000-0000-4000-8000-{next(_message_ids):012d}",
        }
        response = await self.service.client.post(INBOUND_PATH, data=form)
        return response.status

    async def replies(self) -> list[str]:
        """Return the texts sent to this phone since the last call, oldest first."""
        messages = [m for m in await self.service.sent_sms() if m["to"] == self.phone]
        new = messages[self.seen :]
        self.seen = len(messages)
        return [m["text"] for m in new]

    async def text(self, text: str) -> str:
        """Send `text` and return the one reply it got."""
        status = await self.send(text)
        assert status == 200, f"inbound SMS {text!r} got HTTP {status}"
        replies = await self.replies()
        assert len(replies) == 1, f"expected one reply to {text!r}, got {replies}"
        return replies[0]
