"""Presses that queue no reply, so that the web process removes their keyboards itself, when more
arrive at once than its Bot API connection pool has connections and the Bot API is slow."""

from __future__ import annotations

import asyncio

from core.db.migrate import upgrade_to_head
from tests.integration.telegram_support import (
    TelegramUser,
    button_data,
    buttons,
    callback_answers,
    post_update,
    press_update,
    start_telegram_service,
)

# More than the connection pool of the web process's Bot API client (8 connections).
USERS = 12
# Longer than the time python-telegram-bot waits for a free pool connection (1 s).
BOT_API_DELAY_SECONDS = 1.5


async def test_burst_of_stale_presses_answered_and_keyboards_removed(sqlite_url, clock) -> None:
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    service = await start_telegram_service(sqlite_url, clock)
    try:
        users = [TelegramUser(service, 7000000061 + index) for index in range(USERS)]
        # Each user's first menu keeps its keyboard when the second one is sent, and a press on
        # it is stale while the second screen is live, so it queues no reply.
        first_menus = [await user.send("/start") for user in users]
        for user, menu in zip(users, first_menus, strict=True):
            await user.send("/start")
            messages = {m["message_id"]: m for m in await user.messages()}
            assert buttons(messages[menu["message_id"]]) != []
        response = await service.client.post(
            "/sandbox/faults",
            json={
                "service": "telegram.bot_api",
                "delay_seconds": BOT_API_DELAY_SECONDS,
                "count": 2 * USERS,
            },
        )
        assert response.status == 204, await response.text()

        presses = [
            press_update(user.user_id, button_data(menu, "1"), menu["message_id"])
            for user, menu in zip(users, first_menus, strict=True)
        ]
        statuses = await asyncio.gather(*(post_update(service, press) for press in presses))

        assert [status for status, _ in statuses] == [200] * USERS
        answered = {answer["callback_query_id"] for answer in await callback_answers(service)}
        assert answered == {press["callback_query"]["id"] for press in presses}
        for user, menu in zip(users, first_menus, strict=True):
            messages = {m["message_id"]: m for m in await user.messages()}
            assert buttons(messages[menu["message_id"]]) == []
            assert len(messages) == 2  # no reply to the stale presses
    finally:
        await service.stop()
