"""The chat path of the host: exactly-once messages, stale buttons, moving between channels."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

from bot.engine.host import handle_message
from bot.engine.model import InboundMessage, Input, ScreenLimits

PHONE = "+254700000120"
CHAT_LIMITS = ScreenLimits(max_chars=None, max_choices=9)
_ids = itertools.count(1)


def chat(service, text: str, *, message_id: str | None = None, screen_version=None):
    return InboundMessage(
        channel="whatsapp",
        provider="twilio",
        provider_message_id=message_id or f"SM_TEST_{next(_ids):04d}",
        key=PHONE,
        reply_to=f"whatsapp:{PHONE}",
        input=Input.of_text(text),
        received_at=service.clock.now(),
        limits=CHAT_LIMITS,
        screen_version=screen_version,
    )


async def send(service, text: str, **kwargs):
    return await handle_message(service.services.host, chat(service, text, **kwargs))


async def test_first_message_shows_opening_screen(service) -> None:
    result = await send(service, "hello")
    assert result.reply is not None
    assert "Welcome to MyAfya" in result.reply.body
    assert [o.label for o in result.reply.options] == ["English", "Kiswahili"]


async def test_booking_over_chat(service) -> None:
    await service.register(PHONE)
    result = await send(service, "hi")
    assert "MyAfya menu" in result.reply.body
    for _ in range(5):  # book, service, doctor, day, time
        result = await send(service, result.reply.options[0].key)
    assert "Confirm appointment" in result.reply.body
    result = await send(service, "1")
    assert result.reply.end
    assert result.reply.body.startswith("Booked!")
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1
    replies = await service.scalar(
        "SELECT COUNT(*) FROM outbox_messages WHERE kind = 'reply' AND channel = 'whatsapp'"
    )
    assert replies == 7


async def test_duplicate_message_changes_nothing(service) -> None:
    await service.register(PHONE)
    await send(service, "hi")
    first = await send(service, "1", message_id="SM_TEST_DUP")
    again = await send(service, "1", message_id="SM_TEST_DUP")
    assert first.reply is not None
    assert again.duplicate
    assert again.reply is None
    assert (
        await service.scalar(
            "SELECT COUNT(*) FROM outbox_messages WHERE dedupe_key = 'reply:twilio:SM_TEST_DUP'"
        )
        == 1
    )


async def test_twenty_concurrent_copies_book_once(service) -> None:
    await service.register(PHONE)
    result = await send(service, "hi")
    for _ in range(5):
        result = await send(service, result.reply.options[0].key)
    copies = [chat(service, "1", message_id="SM_TEST_0001") for _ in range(20)]
    results = await asyncio.gather(
        *(handle_message(service.services.host, copy) for copy in copies)
    )
    assert sum(1 for r in results if not r.duplicate) == 1
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1
    assert (
        await service.scalar(
            "SELECT COUNT(*) FROM outbox_messages WHERE dedupe_key = 'reply:twilio:SM_TEST_0001'"
        )
        == 1
    )


async def test_stale_button_does_not_act(service) -> None:
    await service.register(PHONE)
    shown = await send(service, "hi")
    await send(service, "1")  # the patient moved on
    stale = await send(service, "2", screen_version=shown.conversation_version)
    assert stale.stale_screen
    assert stale.reply is None
    assert (
        await service.scalar("SELECT state FROM conversations WHERE phone = :p", p=PHONE)
        == "SPECIALTY"
    )


async def test_continue_from_ussd_on_whatsapp(service) -> None:
    await service.register(PHONE)
    for text in ("", "1", "1*1"):
        _, screen = await service.ussd("ATUid_move", PHONE, text)
    assert "Choose a doctor" in screen
    asked = await send(service, "hello")
    assert "part-way through something on USSD" in asked.reply.body
    assert [o.label for o in asked.reply.options] == ["Continue where I left off", "Start again"]
    resumed = await send(service, "1")
    assert "Choose a doctor" in resumed.reply.body
    picked = await send(service, resumed.reply.options[0].key)
    assert "choose a day" in picked.reply.body


async def test_start_again_after_moving_channel(service) -> None:
    await service.register(PHONE)
    for text in ("", "1", "1*1"):
        await service.ussd("ATUid_move2", PHONE, text)
    await send(service, "hello")
    restarted = await send(service, "2")
    assert "MyAfya menu" in restarted.reply.body


async def test_expired_chat_starts_again(service) -> None:
    await service.register(PHONE)
    result = await send(service, "hi")
    for _ in range(4):
        result = await send(service, result.reply.options[0].key)
    service.clock.advance(timedelta(minutes=30).total_seconds())
    late = await send(service, "2")
    assert late.reply.body.startswith("Your session timed out")
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 0
