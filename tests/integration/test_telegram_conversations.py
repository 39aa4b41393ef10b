"""Conversations over Telegram: linking a phone, booking with buttons, stale keyboards, and
the field cases of repeated updates and of time-outs across a restart."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest

from core.db.migrate import upgrade_to_head
from tests.integration.conftest import RunningService
from tests.integration.telegram_support import (
    TelegramUser,
    button_data,
    button_labels,
    callback_answers,
    message_update,
    post_update,
    press_update,
    settle,
    start_telegram_service,
)

EXPIRED = "This menu has expired. Please use the buttons on the latest message."


@pytest.fixture
async def telegram_service(database_url, clock):
    running = await start_telegram_service(database_url, clock)
    yield running
    await running.stop()


@pytest.fixture
async def sqlite_telegram(sqlite_url, clock):
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_telegram_service(sqlite_url, clock)
    yield running
    await running.stop()


async def message_by_id(user: TelegramUser, message_id: int) -> dict[str, Any]:
    return next(m for m in await user.messages() if m["message_id"] == message_id)


async def link_registered_patient(service: RunningService, user: TelegramUser, phone: str):
    """Register `phone`, link it from Telegram and return the bot's home menu message."""
    await service.register(phone)
    await user.send("/start")
    return await user.share_contact(phone)


async def walk_to_times(user: TelegramUser, home: dict[str, Any]) -> dict[str, Any]:
    """From the home menu, press the first option of book, service, doctor and day."""
    message = home
    for _ in range(4):
        message = await user.press(message, "1")
    assert ": choose a time" in message["text"]
    return message


async def test_booking_transcript_after_linking(telegram_service) -> None:
    service = telegram_service
    user = TelegramUser(service, 7000000021)

    opening = await user.send("/start")
    assert opening["text"].startswith("Welcome to MyAfya. You can look at our services")

    share = await user.press(opening, "2")  # Book a doctor
    assert share["reply_markup"]["keyboard"] == [
        [{"text": "Share my phone number", "request_contact": True}]
    ]
    linked = await user.share_contact("+254700000121")
    assert linked["text"].startswith("Thank you. Your phone number is now linked")
    assert button_labels(linked) == ["1. English", "2. Kiswahili"]

    name = await user.press(linked, "1")
    assert "full name" in name["text"]
    privacy = await user.send("Test Patient")
    home = await user.press(privacy, "1")  # I agree
    assert "Thank you, Test Patient" in home["text"]
    times = await walk_to_times(user, home)
    confirm = await user.press(times, "1")
    assert confirm["text"].startswith("Confirm appointment")
    booked = await user.press(confirm, "1")

    assert booked["text"].startswith("Booked!")
    assert booked["reply_markup"] is None
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1
    patient_phone = await service.scalar(
        "SELECT p.phone FROM appointments a JOIN patients p ON p.id = a.patient_id"
    )
    assert patient_phone == "+254700000121"
    sms = [m for m in await service.sent_sms() if m["channel"] == "sms"]
    assert [m["to"] for m in sms] == ["+254700000121"]

    # Every press was answered, without a notice, and its keyboard removed.
    answers = await callback_answers(service)
    assert len(answers) == 9
    assert {answer["text"] for answer in answers} == {None}
    for pressed in (opening, linked, home, times, confirm):
        assert (await message_by_id(user, pressed["message_id"]))["reply_markup"] is None


async def test_unlinked_user_browses_but_cannot_book(sqlite_telegram) -> None:
    user = TelegramUser(sqlite_telegram, 7000000022)

    opening = await user.send("hello")
    services = await user.press(opening, "1")
    assert services["text"] == "Choose a service:"
    doctors = await user.press(services, "1")
    assert "Dr. Test Kamau KES 1,000" in " ".join(button_labels(doctors))
    share = await user.press(doctors, "1")
    assert "Share my phone number" in share["text"]
    typed = await user.send("0700000122")

    assert typed["text"].startswith('Please tap "Share my phone number" below.')
    assert await sqlite_telegram.scalar("SELECT COUNT(*) FROM patients") == 0
    assert await sqlite_telegram.scalar("SELECT phone FROM channel_identities") is None


async def test_someone_elses_contact_is_rejected(sqlite_telegram) -> None:
    user = TelegramUser(sqlite_telegram, 7000000023)
    await user.send("/start")

    reply = await user.share_contact("+254700000123", owner=7000000999)
    without_owner = await user.share_contact("+254700000123", owner=None)

    assert reply["text"].startswith("We can only link your own phone number.")
    assert without_owner["text"].startswith("We can only link your own phone number.")
    assert await sqlite_telegram.scalar("SELECT phone FROM channel_identities") is None
    assert await sqlite_telegram.scalar("SELECT phone FROM conversations") == "tg:7000000023"


async def test_invalid_own_number_notice(sqlite_telegram) -> None:
    notices = {
        "en": "That phone number is not valid. Please share your own mobile number.",
        "sw": "Nambari hiyo ya simu si sahihi. Tafadhali tuma nambari yako ya simu ya mkononi.",
    }
    for user_id, language in ((7000000031, "en"), (7000000032, "sw")):
        user = TelegramUser(sqlite_telegram, user_id, language_code=language)
        await user.send("/start")

        reply = await user.share_contact("12")

        assert reply["text"].startswith(notices[language]), reply["text"]
        assert "only link your own" not in reply["text"]
        assert button_labels(reply), "the current screen follows the notice"
    assert await sqlite_telegram.scalar("SELECT phone FROM channel_identities") is None


async def test_stale_keyboard_press_does_nothing(sqlite_telegram) -> None:
    user = TelegramUser(sqlite_telegram, 7000000024)
    first = await user.send("/start")
    await user.press(first, "1")  # moves on to the service list
    state = await sqlite_telegram.scalar("SELECT state FROM conversations")
    sent = len(await user.messages())

    status, _ = await post_update(
        sqlite_telegram, press_update(user.user_id, button_data(first, "2"), first["message_id"])
    )

    assert status == 200
    assert await sqlite_telegram.scalar("SELECT state FROM conversations") == state
    assert len(await user.messages()) == sent
    answers = await callback_answers(sqlite_telegram)
    assert [answer["text"] for answer in answers] == [None, EXPIRED]


async def test_stale_press_after_booking_sends_home(sqlite_telegram) -> None:
    user = TelegramUser(sqlite_telegram, 7000000028)
    home = await link_registered_patient(sqlite_telegram, user, "+254700000128")
    confirm = await user.press(await walk_to_times(user, home), "1")
    booked = await user.press(confirm, "1")
    assert booked["text"].startswith("Booked!")

    # Confirm again: the latest message has no buttons, so the home menu is sent with some.
    status, _ = await post_update(
        sqlite_telegram,
        press_update(user.user_id, button_data(confirm, "1"), confirm["message_id"]),
    )

    assert status == 200
    menu = await user.last_message()
    assert "MyAfya menu" in menu["text"]
    assert "1. Book a doctor" in button_labels(menu)
    assert await sqlite_telegram.scalar("SELECT COUNT(*) FROM appointments") == 1
    assert (await callback_answers(sqlite_telegram))[-1]["text"] == EXPIRED
    services = await user.press(menu, "1")  # the new menu's buttons act
    assert services["text"] == "Choose a service:"


async def test_keyboard_from_before_linking_is_stale(sqlite_telegram) -> None:
    service = sqlite_telegram
    user = TelegramUser(service, 7000000025)
    old_menu = await user.send("/start")
    home = await link_registered_patient(service, user, "+254700000125")
    assert "MyAfya menu" in home["text"]
    sent = len(await user.messages())

    # "1" on the old menu would open booking if it were read in the phone's conversation.
    status, _ = await post_update(
        service, press_update(user.user_id, button_data(old_menu, "1"), old_menu["message_id"])
    )

    assert status == 200
    assert len(await user.messages()) == sent
    assert (
        await service.scalar("SELECT state FROM conversations WHERE phone = '+254700000125'")
        == "MENU"
    )
    assert (await callback_answers(service))[-1]["text"] == EXPIRED


async def test_callback_data_fits_telegram_limit(sqlite_telegram) -> None:
    user = TelegramUser(sqlite_telegram, 7000000026)
    home = await link_registered_patient(sqlite_telegram, user, "+254700000126")
    times = await walk_to_times(user, home)

    for message in (home, times):
        data = [
            button["callback_data"]
            for row in message["reply_markup"]["inline_keyboard"]
            for button in row
        ]
        assert data
        assert all(len(item.encode()) <= 64 for item in data)


async def test_typed_number_still_works(sqlite_telegram) -> None:
    user = TelegramUser(sqlite_telegram, 7000000027)
    await link_registered_patient(sqlite_telegram, user, "+254700000127")

    services = await user.send("1")

    assert services["text"] == "Choose a service:"


async def test_conversation_moves_from_ussd_to_telegram(sqlite_telegram) -> None:
    service = sqlite_telegram
    phone = "+254700000128"
    await service.register(phone)
    for text in ("", "1", "1*1"):
        _, screen = await service.ussd("ATUid_tg_move", phone, text)
    assert "Choose a doctor" in screen
    user = TelegramUser(service, 7000000028)
    await user.send("/start")

    asked = await user.share_contact(phone)
    assert "part-way through something on USSD" in asked["text"]
    resumed = await user.press(asked, "1")

    assert "Choose a doctor" in resumed["text"]


# --- B12: the same update delivered twice and to two instances --------------------------------


async def test_repeated_update_books_once(telegram_service, database_url, clock) -> None:
    service = telegram_service
    user = TelegramUser(service, 111000111)
    home = await link_registered_patient(service, user, "+254700000111")
    times = await walk_to_times(user, home)
    await user.press(times, "1")  # the confirm screen
    update = message_update(user.user_id, update_id=900000001, text="1")
    other = await start_telegram_service(database_url, clock, seed=False)
    try:
        first = await post_update(service, update)
        clock.advance(2)
        again = await post_update(service, update)
        elsewhere = await post_update(other, update)
        await settle(other)
        other_sent = await other.client.get("/sandbox/telegram/messages")
        other_messages = await other_sent.json()
    finally:
        await other.stop()

    assert [first[0], again[0], elsewhere[0]] == [200, 200, 200]
    assert other_messages == []
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1
    booked = [m for m in await user.messages() if m["text"].startswith("Booked!")]
    assert len(booked) == 1
    replies = await service.scalar(
        "SELECT COUNT(*) FROM outbox_messages WHERE dedupe_key = 'reply:telegram:900000001'"
    )
    assert replies == 1

    # A day and an hour later the update id is still known, so a late copy changes nothing.
    await service.advance(timedelta(hours=25).total_seconds())
    late = await post_update(service, update)
    assert late[0] == 200
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1
    assert len([m for m in await user.messages() if m["text"].startswith("Booked!")]) == 1


# --- B13: a time-out that survives a restart ------------------------------------------------


async def test_timeout_after_restart_books_nothing(database_url, clock) -> None:
    clock.advance(timedelta(hours=1).total_seconds())  # 10:00 in Nairobi
    first = await start_telegram_service(database_url, clock)
    try:
        user = TelegramUser(first, 111000112)
        home = await link_registered_patient(first, user, "+254700000112")
        times = await walk_to_times(user, home)
        assert len(button_labels(times)) >= 3  # two times and navigation at least
    finally:
        await first.stop()

    clock.advance(timedelta(minutes=3).total_seconds())
    restarted = await start_telegram_service(database_url, clock, seed=False)
    try:
        clock.advance(timedelta(minutes=27).total_seconds())  # 10:30
        user = TelegramUser(restarted, 111000112)
        reply = await user.send("2")
        row = await restarted.scalar("SELECT data FROM conversations WHERE phone = '+254700000112'")
        state = await restarted.scalar(
            "SELECT flow || '.' || state FROM conversations WHERE phone = '+254700000112'"
        )
        appointments = await restarted.scalar("SELECT COUNT(*) FROM appointments")
    finally:
        await restarted.stop()

    assert reply["text"].startswith("Your session timed out")
    assert "MyAfya menu" in reply["text"]
    assert "1. Book a doctor" in button_labels(reply)
    assert appointments == 0
    assert state == "home.MENU"
    data = json.loads(row)
    assert "slot_id" not in data
    assert "day" not in data
    assert "doctor_id" not in data
