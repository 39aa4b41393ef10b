"""One patient across channels: the same booking transcript on each channel, and a conversation
started on USSD that goes on over SMS, all through the real webhooks.

Expected screens come from the catalogues (the first literal words of each message), so the
checks follow wording changes. Each channel's driver sends one answer and returns the reply the
patient sees.
"""

from __future__ import annotations

import asyncio
import string
from collections.abc import AsyncIterator
from typing import Protocol

import pytest

from core.clock import FrozenClock
from core.db.migrate import upgrade_to_head
from core.i18n import catalogue
from tests.integration.conftest import RunningService
from tests.integration.sms_setup import SmsPhone, start_sms_service
from tests.integration.telegram_support import TELEGRAM_SETTINGS, TelegramUser
from tests.integration.twilio_support import WHATSAPP_PATH, post_signed, sign, whatsapp_form

PHONE = "+254700000151"
TELEGRAM_USER_ID = 100000151

# Answers of a new patient who registers in English and books the first free slot, each with the
# catalogue message the reply to it must show.
BOOKING_TRANSCRIPT = [
    ("1", "registration.ask_name"),  # English
    ("Test Patient", "registration.privacy"),
    ("1", "home.title"),  # I agree
    ("1", "booking.choose_specialty"),
    ("1", "booking.choose_doctor"),
    ("1", "booking.choose_day"),
    ("1", "booking.choose_time"),
    ("1", "booking.confirm"),
    ("1", "booking.booked"),
]


def fixed_words(message_id: str, language: str = "en") -> str:
    """Return the first literal words of a catalogue message, without its placeholders."""
    for literal, _field, _spec, _conversion in string.Formatter().parse(
        catalogue(language)[message_id]
    ):
        words = " ".join(literal.split()).strip(" :.,")
        if words:
            return words
    raise AssertionError(f"message {message_id!r} has no literal text")


def shows(reply: str, message_id: str) -> bool:
    return fixed_words(message_id) in " ".join(reply.split())


class Channel(Protocol):
    name: str

    async def open(self) -> str:
        """Start talking to the service and return the first screen."""
        ...

    async def answer(self, text: str) -> str: ...


class UssdChannel:
    name = "ussd"

    def __init__(self, service: RunningService, phone: str, session_id: str) -> None:
        self.service = service
        self.phone = phone
        self.session_id = session_id
        self.answers: list[str] = []

    async def open(self) -> str:
        return await self._post()

    async def answer(self, text: str) -> str:
        self.answers.append(text)
        return await self._post()

    async def _post(self) -> str:
        status, body = await self.service.ussd(self.session_id, self.phone, "*".join(self.answers))
        assert status == 200, body
        return body.removeprefix("CON ").removeprefix("END ")


class SmsChannel:
    name = "sms"

    def __init__(self, service: RunningService, phone: str) -> None:
        self.phone = SmsPhone(service, phone)

    async def open(self) -> str:
        return await self.phone.text("Hello")

    async def answer(self, text: str) -> str:
        replies = await self._send(text)
        # Booking on SMS also sends the confirmation SMS, and worker threads may send the two in
        # either order, so the reply is the text that is not the confirmation.
        screens = [reply for reply in replies if not shows(reply, "sms.booking_confirmed")]
        assert screens, f"only the confirmation came back for {text!r}"
        return screens[-1]

    async def _send(self, text: str) -> list[str]:
        assert await self.phone.send(text) == 200
        replies = await self.phone.replies()
        assert replies, f"no reply to {text!r}"
        return replies


class TelegramChannel:
    """A Telegram user who links the phone number by sharing the contact, then types answers."""

    name = "telegram"

    def __init__(self, service: RunningService, phone: str, user_id: int) -> None:
        self.user = TelegramUser(service, user_id)
        self.phone = phone

    async def open(self) -> str:
        welcome = await self.user.send("/start")
        assert shows(welcome["text"], "link.welcome"), welcome
        share = await self.user.press(welcome, "2")  # book, which needs the phone number
        assert shows(share["text"], "link.share"), share
        linked = await self.user.share_contact(self.phone)
        assert shows(linked["text"], "link.linked"), linked
        return str(linked["text"])

    async def answer(self, text: str) -> str:
        return str((await self.user.send(text))["text"])


class WhatsAppChannel:
    """A WhatsApp user writing through the signed Twilio webhook; replies come from the fake."""

    name = "whatsapp"

    def __init__(self, service: RunningService, phone: str) -> None:
        self.service = service
        self.phone = phone
        self.sent = 0

    async def open(self) -> str:
        return await self.answer("Hello")

    async def answer(self, text: str) -> str:
        self.sent += 1
        settings = self.service.services.settings
        credentials = settings.twilio_credentials
        assert credentials is not None
        form = whatsapp_form(f"SM{self.sent:032d}", self.phone, text)
        url = settings.public_url + WHATSAPP_PATH
        status, body = await post_signed(
            self.service, WHATSAPP_PATH, form, signature=sign(url, form, credentials[1])
        )
        assert status == 200, body
        await self.service.drain()
        # Worker threads may send replies out of order, so the newest reply row decides.
        sid = await self.service.scalar(
            "SELECT provider_message_id FROM outbox_messages WHERE kind = 'reply'"
            " ORDER BY id DESC LIMIT 1"
        )
        texts = [
            m["text"] for m in await self.service.sent_sms() if m["provider_message_id"] == sid
        ]
        assert texts, f"no reply to {text!r}"
        return str(texts[0])


@pytest.fixture
async def sms_service(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_sms_service(sqlite_url, clock, **TELEGRAM_SETTINGS)
    yield running
    await running.client.close()


def make_channel(name: str, service: RunningService) -> Channel:
    if name == "ussd":
        return UssdChannel(service, PHONE, "ATUid_transcript")
    if name == "telegram":
        return TelegramChannel(service, PHONE, TELEGRAM_USER_ID)
    if name == "whatsapp":
        return WhatsAppChannel(service, PHONE)
    return SmsChannel(service, PHONE)


@pytest.mark.parametrize("channel_name", ["ussd", "sms", "telegram", "whatsapp"])
async def test_same_booking_transcript(sms_service: RunningService, channel_name: str) -> None:
    channel = make_channel(channel_name, sms_service)

    reply = await channel.open()
    assert shows(reply, "registration.welcome"), reply
    for answer, expected in BOOKING_TRANSCRIPT:
        reply = await channel.answer(answer)
        assert shows(reply, expected), (
            f"{channel_name}: after {answer!r} expected {expected}:\n{reply}"
        )

    booked_channel = await sms_service.scalar("SELECT channel FROM appointments")
    assert booked_channel == channel_name
    assert await sms_service.scalar("SELECT COUNT(*) FROM appointments") == 1
    reference = await sms_service.scalar("SELECT reference FROM appointments")
    assert reference in reply
    confirmations = [
        m for m in await sms_service.sent_sms() if m["to"] == PHONE and reference in m["text"]
    ]
    assert any(shows(m["text"], "sms.booking_confirmed") for m in confirmations)


async def test_ussd_booking_continues_on_sms(sms_service: RunningService) -> None:
    await sms_service.register(PHONE)
    ussd = UssdChannel(sms_service, PHONE, "ATUid_moved")
    await ussd.open()
    await ussd.answer("1")  # book
    assert shows(await ussd.answer("1"), "booking.choose_doctor")
    sms = SmsChannel(sms_service, PHONE)

    prompt = await sms.answer("hello")

    assert "USSD" in prompt
    assert shows(prompt, "resume.prompt")
    assert f"1. {catalogue('en')['resume.continue']}" in prompt
    assert f"2. {catalogue('en')['resume.restart']}" in prompt
    assert shows(await sms.answer("1"), "booking.choose_doctor")
    for _ in range(3):  # doctor, day, time
        await sms.answer("1")
    assert shows(await sms.answer("1"), "booking.booked")
    assert await sms_service.scalar("SELECT channel FROM appointments") == "sms"


async def test_start_again_after_ussd(sms_service: RunningService) -> None:
    await sms_service.register(PHONE)
    ussd = UssdChannel(sms_service, PHONE, "ATUid_restart")
    await ussd.open()
    await ussd.answer("1")
    sms = SmsChannel(sms_service, PHONE)
    await sms.answer("hi")

    restarted = await sms.answer("2")

    assert shows(restarted, "home.title")
    assert await sms_service.scalar("SELECT flow FROM conversations") == "home"


async def test_keyword_skips_resume_question(sms_service: RunningService) -> None:
    await sms_service.register(PHONE)
    ussd = UssdChannel(sms_service, PHONE, "ATUid_keyword")
    await ussd.open()
    await ussd.answer("1")
    await ussd.answer("1")
    sms = SmsChannel(sms_service, PHONE)

    assert shows(await sms.answer("CANCEL"), "appointments.title")
