"""Button-press answers when more presses arrive at once than the Bot API connection pool has
connections, and the Bot API is slow."""

from __future__ import annotations

import asyncio

from core.db.migrate import upgrade_to_head
from tests.integration.telegram_support import (
    TelegramUser,
    button_data,
    callback_answers,
    post_update,
    press_update,
    start_telegram_service,
)

# More than the connection pool of the web process's Bot API client (8 connections).
USERS = 12
# Longer than the time python-telegram-bot waits for a free pool connection (1 s).
BOT_API_DELAY_SECONDS = 1.5


async def test_burst_of_presses_all_answered(sqlite_url, clock) -> None:
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    service = await start_telegram_service(sqlite_url, clock)
    try:
        users = [TelegramUser(service, 7000000061 + index) for index in range(USERS)]
        openings = [await user.send("/start") for user in users]
        response = await service.client.post(
            "/sandbox/faults",
            json={
                "service": "telegram.bot_api",
                "delay_seconds": BOT_API_DELAY_SECONDS,
                "count": 4 * USERS,
            },
        )
        assert response.status == 204, await response.text()

        presses = [
            press_update(user.user_id, button_data(opening, "1"), opening["message_id"])
            for user, opening in zip(users, openings, strict=True)
        ]
        statuses = await asyncio.gather(*(post_update(service, press) for press in presses))

        assert [status for status, _ in statuses] == [200] * USERS
        answered = {answer["callback_query_id"] for answer in await callback_answers(service)}
        expected = {press["callback_query"]["id"] for press in presses}
        assert answered == expected
    finally:
        await service.stop()
