"""Conversations over the real WhatsApp webhook, with replies sent through the twilio SDK to the
sandbox fake: booking, a move from USSD, duplicates and messages without text."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.conftest import RunningService, start_service
from tests.integration.twilio_support import (
    WHATSAPP_PATH,
    next_sid,
    post_signed,
    twilio_settings,
    whatsapp_form,
    whatsapp_messages,
)

PHONE = "+254700000102"


@pytest.fixture
async def service(database_url: str, clock: Any) -> AsyncIterator[RunningService]:
    running = await start_service(database_url, clock, **twilio_settings())
    yield running
    await running.close()


@pytest.fixture
async def sqlite_service(sqlite_url: str, clock: Any) -> AsyncIterator[RunningService]:
    from core.db.migrate import upgrade_to_head

    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_service(sqlite_url, clock, **twilio_settings())
    yield running
    await running.close()


async def say(service: RunningService, text: str | None, sid: str | None = None, **extra: str):
    status, body = await post_signed(
        service, WHATSAPP_PATH, whatsapp_form(sid or next_sid(), PHONE, text, **extra)
    )
    assert status == 200, body
    return body


async def last_reply(service: RunningService) -> str:
    """Return the text the fake accepted for the newest reply.

    Worker threads may send replies out of order, so the newest outbox row decides which one.
    """
    messages = await whatsapp_messages(service, PHONE)
    sid = await service.scalar(
        "SELECT provider_message_id FROM outbox_messages WHERE kind = 'reply' ORDER BY id DESC"
        " LIMIT 1"
    )
    texts = [m["text"] for m in messages if m["provider_message_id"] == sid]
    assert texts, "the newest reply was not sent"
    return str(texts[0])


async def walk_to_confirm(service: RunningService) -> str:
    await say(service, "hi")
    for _ in range(5):  # book, service, doctor, day, time: the first option each time
        await say(service, "1")
    screen = await last_reply(service)
    assert "Confirm appointment" in screen
    return screen


async def test_booking_transcript_over_whatsapp(service: RunningService) -> None:
    await service.register(PHONE)
    transcript = [
        ("hi", "MyAfya menu"),
        ("1", "Choose a service:"),
        ("1", "Choose a doctor:"),
        ("1", "choose a day:"),
        ("1", "choose a time:"),
        ("1", "Confirm appointment"),
        ("1", "Booked!"),
    ]
    for text, expected in transcript:
        await say(service, text)
        assert expected in await last_reply(service), text

    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1
    messages = await whatsapp_messages(service, PHONE)
    # Seven screens and the booking confirmation, which goes to WhatsApp because the patient
    # wrote there a moment ago.
    assert len(messages) == 8
    assert sum("is booked for" in m["text"] for m in messages) == 1
    assert await service.scalar("SELECT COUNT(*) FROM outbox_messages WHERE channel = 'sms'") == 0


async def test_registration_with_typographic_apostrophe(sqlite_service: RunningService) -> None:
    service = sqlite_service
    await say(service, "hi")
    await say(service, "1")  # English
    await say(service, "Siobh\u00e1n O\u2019Neil")
    assert "Privacy" in await last_reply(service)

    await say(service, "1")  # I agree

    assert "Thank you, Siobh\u00e1n O'Neil" in await last_reply(service)
    name = await service.scalar("SELECT name FROM patients WHERE phone = :p", p=PHONE)
    assert name == "Siobh\u00e1n O'Neil"


async def test_menu_drawn_as_list(sqlite_service: RunningService) -> None:
    await sqlite_service.register(PHONE)
    await say(sqlite_service, "hi")
    (message,) = await whatsapp_messages(sqlite_service, PHONE)
    conversation_id = await sqlite_service.scalar(
        "SELECT id FROM conversations WHERE phone = :p", p=PHONE
    )
    version = await sqlite_service.scalar(
        "SELECT version FROM conversations WHERE phone = :p", p=PHONE
    )

    assert message["text"] == "MyAfya menu:"
    assert message["interactive"]["type"] == "twilio/list-picker"
    first = message["interactive"]["items"][0]
    assert first == {
        "item": "Book a doctor",
        "id": f"{conversation_id}:{version}:1",
        "description": "or type 1",
    }


async def test_twenty_concurrent_copies_book_once(service: RunningService) -> None:
    await service.register(PHONE)
    await walk_to_confirm(service)
    before = len(await whatsapp_messages(service, PHONE))
    form = whatsapp_form("SM_TEST_0001", PHONE, "1")

    results = await asyncio.gather(*(post_signed(service, WHATSAPP_PATH, form) for _ in range(20)))

    assert [status for status, _ in results] == [200] * 20
    assert len({body for _, body in results}) == 1
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1
    after = await whatsapp_messages(service, PHONE)
    replies = [m for m in after[before:] if m["text"].startswith("Booked!")]
    assert len(replies) == 1
    assert (
        await service.scalar(
            "SELECT COUNT(*) FROM outbox_messages WHERE dedupe_key = 'reply:twilio:SM_TEST_0001'"
        )
        == 1
    )


async def test_retry_three_seconds_later_changes_nothing(service: RunningService) -> None:
    await service.register(PHONE)
    await walk_to_confirm(service)
    form = whatsapp_form("SM_TEST_0001", PHONE, "1")

    first = await post_signed(service, WHATSAPP_PATH, form)
    version = await service.scalar("SELECT version FROM conversations WHERE phone = :p", p=PHONE)
    service.clock.advance(3)
    again = await post_signed(service, WHATSAPP_PATH, form)

    assert again == first
    assert again == (200, '<?xml version="1.0" encoding="UTF-8"?><Response />')
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1
    after = await service.scalar("SELECT version FROM conversations WHERE phone = :p", p=PHONE)
    assert after == version
    booked = [m for m in await whatsapp_messages(service, PHONE) if m["text"].startswith("Booked")]
    assert len(booked) == 1


async def test_copy_while_first_in_flight(service: RunningService) -> None:
    await service.register(PHONE)
    await walk_to_confirm(service)
    form = whatsapp_form("SM_TEST_0001", PHONE, "1")
    database = service.services.database

    # Hold the conversation's lock so the first delivery stays in flight while the copy
    # arrives 50 ms later. Both requests then race for the dedupe row.
    async with database.unit_of_work() as uow:  # type: ignore[attr-defined]
        from core.db.database import Sql

        if uow.dialect == "postgresql":
            await uow.one(Sql("SELECT id FROM conversations WHERE phone = :p FOR UPDATE"), p=PHONE)
        first = asyncio.ensure_future(post_signed(service, WHATSAPP_PATH, form))
        await asyncio.sleep(0.05)
        copy = asyncio.ensure_future(post_signed(service, WHATSAPP_PATH, form))
        await asyncio.sleep(0.2)
        assert not first.done()
        assert not copy.done()
    results = await asyncio.gather(first, copy)

    assert [status for status, _ in results] == [200, 200]
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1
    booked = [m for m in await whatsapp_messages(service, PHONE) if m["text"].startswith("Booked")]
    assert len(booked) == 1


async def test_conversation_moves_from_ussd(sqlite_service: RunningService) -> None:
    service = sqlite_service
    await service.register(PHONE)
    for text in ("", "1", "1*1"):
        _, screen = await service.ussd("ATUid_move_0001", PHONE, text)
    assert "Choose a doctor" in screen

    await say(service, "hello")
    asked = await last_reply(service)
    assert "part-way through something on USSD" in asked
    (message,) = await whatsapp_messages(service, PHONE)
    # The label is longer than a list item, so the item shows it whole as its description.
    first = message["interactive"]["items"][0]
    assert first["item"] == "Continue where I left..."
    assert first["description"] == "Continue where I left off"
    await say(service, "1")
    assert "Choose a doctor" in await last_reply(service)
    await say(service, "1")
    assert "choose a day" in await last_reply(service)


@pytest.mark.parametrize(
    ("case", "fields"),
    [
        (
            "photo with empty Body",
            {
                "Body": "",
                "NumMedia": "1",
                "MediaContentType0": "image/jpeg",
                "MediaUrl0": "https://media.example.test/m/0001",
            },
        ),
        (
            "photo without Body",
            {
                "NumMedia": "1",
                "MediaContentType0": "image/jpeg",
                "MediaUrl0": "https://media.example.test/m/0001",
            },
        ),
        ("location", {"Latitude": "-1.2921", "Longitude": "36.8219"}),
    ],
)
async def test_message_without_text_asks_for_number(
    sqlite_service: RunningService, case: str, fields: dict[str, str]
) -> None:
    service = sqlite_service
    await service.register(PHONE)
    await say(service, "hi")
    form = whatsapp_form(next_sid(), PHONE, None, **fields)
    if "Body" in fields:
        form["Body"] = fields["Body"]

    status, body = await post_signed(service, WHATSAPP_PATH, form)

    assert status == 200, case
    assert body == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    reply = await last_reply(service)
    assert reply.startswith("Please reply with a number from the list."), case
    assert "MyAfya menu" in reply
