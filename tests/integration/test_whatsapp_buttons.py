"""WhatsApp conversations driven by quick-reply presses and list selections through the real
webhook, with replies sent by the service's worker through the twilio SDK to the sandbox fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.integration.conftest import RunningService, start_service
from tests.integration.twilio_support import (
    WHATSAPP_FROM,
    WHATSAPP_PATH,
    next_sid,
    post_signed,
    twilio_settings,
    whatsapp_form,
    whatsapp_messages,
)

PHONE = "+254700000132"


@pytest.fixture
async def service(database_url: str, clock: Any) -> AsyncIterator[RunningService]:
    running = await start_service(database_url, clock, **twilio_settings())
    yield running
    await running.close()


async def newest_reply(service: RunningService) -> dict[str, Any]:
    """Return the message the fake accepted for the newest reply row."""
    messages = await whatsapp_messages(service, PHONE)
    sid = await service.scalar(
        "SELECT provider_message_id FROM outbox_messages WHERE kind = 'reply' ORDER BY id DESC"
        " LIMIT 1"
    )
    (message,) = [m for m in messages if m["provider_message_id"] == sid]
    return message


def press_form(message: dict[str, Any], index: int, sid: str | None = None) -> dict[str, str]:
    """The webhook form of pressing button or list item `index` of `message`, as Twilio posts
    it: the id in `ButtonPayload` or `ListId`, the title shown in `Body`."""
    interactive = message["interactive"]
    extra = {
        "MessageType": "interactive",
        "OriginalRepliedMessageSid": message["provider_message_id"],
        "OriginalRepliedMessageSender": WHATSAPP_FROM,
    }
    if interactive["type"] == "twilio/quick-reply":
        button = interactive["buttons"][index]
        title = button["title"]
        extra |= {"ButtonPayload": button["id"], "ButtonText": title}
    else:
        item = interactive["items"][index]
        title = item["item"]
        extra |= {"ListId": item["id"], "ListTitle": title}
    return whatsapp_form(sid or next_sid(), PHONE, title, **extra)


async def press(service: RunningService, message: dict[str, Any], index: int) -> None:
    status, body = await post_signed(service, WHATSAPP_PATH, press_form(message, index))
    assert status == 200, body


async def say(service: RunningService, text: str) -> None:
    status, body = await post_signed(service, WHATSAPP_PATH, whatsapp_form(next_sid(), PHONE, text))
    assert status == 200, body


async def version(service: RunningService) -> int:
    return int(await service.scalar("SELECT version FROM conversations WHERE phone = :p", p=PHONE))


async def walk_to_doctors(service: RunningService) -> dict[str, Any]:
    await service.register(PHONE)
    await say(service, "hi")
    home = await newest_reply(service)
    await press(service, home, 0)  # Book a doctor
    await press(service, await newest_reply(service), 0)  # the first service
    doctors = await newest_reply(service)
    assert "Choose a doctor" in doctors["text"]
    return home


async def test_booking_by_presses(service: RunningService) -> None:
    await walk_to_doctors(service)
    shapes = []
    for expected in ("choose a day", "choose a time", "Confirm appointment"):
        screen = await newest_reply(service)
        shapes.append(screen["interactive"]["type"])
        await press(service, screen, 0)
        assert expected in (await newest_reply(service))["text"]

    confirm = await newest_reply(service)
    titles = [b["title"] for b in confirm["interactive"].get("buttons", [])]
    titles += [i["item"] for i in confirm["interactive"].get("items", [])]
    assert titles[0] == "Confirm"
    await press(service, confirm, 0)

    booked = await newest_reply(service)
    assert booked["text"].startswith("Booked!")
    assert "interactive" not in booked  # an ending reply is text
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1
    assert "twilio/list-picker" in shapes
    # One resource per shape and count, however many screens used it.
    contents = await service.scalar("SELECT COUNT(*) FROM whatsapp_contents")
    sids = {
        m["interactive"]["content_sid"]
        for m in await whatsapp_messages(service, PHONE)
        if "interactive" in m
    }
    assert contents == len(sids)


async def test_typed_number_after_buttons(service: RunningService) -> None:
    await walk_to_doctors(service)

    await say(service, "1")

    assert "choose a day" in (await newest_reply(service))["text"]


async def test_stale_press_gets_current_screen(service: RunningService) -> None:
    home = await walk_to_doctors(service)
    before = await version(service)
    doctors = await newest_reply(service)

    await press(service, home, 1)  # "My appointments" on the first menu

    assert await version(service) == before
    notice = await newest_reply(service)
    assert notice["text"].startswith("That menu is out of date, so nothing was changed.")
    assert "Choose a doctor" in notice["text"]
    assert notice["interactive"]["type"] == doctors["interactive"]["type"]
    first_id = (notice["interactive"].get("items") or notice["interactive"]["buttons"])[0]["id"]
    assert first_id.split(":")[1] == str(before)

    await press(service, notice, 0)  # the resent screen's buttons act

    assert "choose a day" in (await newest_reply(service))["text"]


async def book_by_presses(service: RunningService) -> dict[str, Any]:
    """Book the first time of the first doctor by presses and return the confirm screen."""
    await walk_to_doctors(service)
    for _ in range(3):  # doctor, day, time
        await press(service, await newest_reply(service), 0)
    confirm = await newest_reply(service)
    assert confirm["text"].startswith("Confirm appointment")
    await press(service, confirm, 0)
    assert (await newest_reply(service))["text"].startswith("Booked!")
    return confirm


async def test_booked_reply_promises_no_sms(service: RunningService) -> None:
    await book_by_presses(service)

    booked = await newest_reply(service)

    assert "A confirmation message follows." in booked["text"]
    assert "SMS" not in booked["text"]


async def test_stale_confirm_after_booking_gets_home(service: RunningService) -> None:
    confirm = await book_by_presses(service)

    await press(service, confirm, 0)  # Confirm again, on the finished flow's old screen

    notice = await newest_reply(service)
    assert notice["text"].startswith("That menu is out of date, so nothing was changed.")
    assert "MyAfya menu:" in notice["text"]
    assert "interactive" in notice
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1
    first_id = (notice["interactive"].get("items") or notice["interactive"]["buttons"])[0]["id"]
    assert first_id.split(":")[1] == str(await version(service))

    await press(service, notice, 0)  # the home menu's buttons act: Book a doctor

    assert "Choose a service" in (await newest_reply(service))["text"]


async def test_stale_press_after_timeout_drops_notices(service: RunningService) -> None:
    home = await walk_to_doctors(service)
    await say(service, "banana")
    assert "Choose a number from the list." in (await newest_reply(service))["text"]
    await service.advance(11 * 60)  # past the 10-minute inactivity timeout

    await press(service, home, 1)

    notice = await newest_reply(service)
    assert notice["text"].startswith("That menu is out of date, so nothing was changed.")
    assert "MyAfya menu:" in notice["text"]
    assert "Choose a number from the list" not in notice["text"]
    assert "Choose a doctor" not in notice["text"]


async def test_stale_press_drops_old_notices(service: RunningService) -> None:
    home = await walk_to_doctors(service)
    await say(service, "banana")

    await press(service, home, 1)

    notice = await newest_reply(service)
    assert notice["text"].startswith("That menu is out of date, so nothing was changed.")
    assert "Choose a doctor" in notice["text"]
    assert "Choose a number from the list" not in notice["text"]


async def test_stale_press_redelivered_answers_once(service: RunningService) -> None:
    home = await walk_to_doctors(service)
    form = press_form(home, 1)

    first = await post_signed(service, WHATSAPP_PATH, form)
    again = await post_signed(service, WHATSAPP_PATH, form)

    assert first == again
    messages = await whatsapp_messages(service, PHONE)
    notices = [m for m in messages if m["text"].startswith("That menu is out of date")]
    assert len(notices) == 1


async def test_press_from_other_conversation(service: RunningService) -> None:
    await walk_to_doctors(service)
    doctors = await newest_reply(service)
    form = press_form(doctors, 0)
    field = "ListId" if "ListId" in form else "ButtonPayload"
    _, current_version, key = form[field].split(":")
    form[field] = f"999999:{current_version}:{key}"

    status, _ = await post_signed(service, WHATSAPP_PATH, form)

    assert status == 200
    assert await version(service) == int(current_version)
    assert (await newest_reply(service))["text"].startswith("That menu is out of date")


async def test_press_in_swahili(service: RunningService) -> None:
    await service.register(PHONE, language="sw")
    await say(service, "habari")

    home = await newest_reply(service)

    assert home["interactive"]["button"] == "Chagua"
    assert home["interactive"]["items"][0]["description"] == "au andika 1"


@pytest.mark.parametrize("index", [0, 1])
async def test_press_with_bad_signature_rejected(service: RunningService, index: int) -> None:
    await service.register(PHONE)
    await say(service, "hi")
    home = await newest_reply(service)
    before = await version(service)
    form = press_form(home, index)

    status, body = await post_signed(service, WHATSAPP_PATH, form, signature="bm90IHZhbGlk")

    assert status == 403
    assert body == "forbidden: invalid X-Twilio-Signature"
    assert await version(service) == before
    recorded = await service.scalar(
        "SELECT COUNT(*) FROM inbound_messages WHERE provider_message_id = :sid",
        sid=form["MessageSid"],
    )
    assert recorded == 0


@pytest.mark.parametrize("field", ["MessageSid", "From"])
async def test_press_missing_field_rejected(service: RunningService, field: str) -> None:
    await service.register(PHONE)
    await say(service, "hi")
    home = await newest_reply(service)
    before = await version(service)
    form = press_form(home, 0)
    del form[field]

    status, body = await post_signed(service, WHATSAPP_PATH, form)

    assert status == 400
    assert body.startswith(f"invalid request: invalid field '{field}': missing")
    assert await version(service) == before
