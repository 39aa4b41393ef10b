"""Answer button presses from the web process: answerCallbackQuery, then remove the keyboard.

Telegram's apps show a progress indicator on a pressed button until the bot answers the callback
query, so every press is answered, whether it acted, was stale or was a repeated update. The
pressed keyboard is then removed (editMessageReplyMarkup) so it cannot be pressed again. Both
calls run as background tasks, so the webhook responds without waiting for the Bot API.
Failures are logged and not retried, because an answer is only useful within seconds.

At most one press per connection of the Bot API client is answered at a time, and the others
wait their turn. Otherwise a burst of presses would queue in the client's connection pool.
There python-telegram-bot 22 gives up after its pool timeout (1 s by default), so the press
stays unanswered, and every queued request makes each later pool operation slower.
"""

from __future__ import annotations

import asyncio
import logging

from telegram.error import BadRequest, TelegramError

from bot.channels.telegram.bot_api import CONNECTION_POOL_SIZE, BotApi

log = logging.getLogger(__name__)


class CallbackAnswers:
    def __init__(self, api: BotApi) -> None:
        self._api = api
        self._tasks: set[asyncio.Task[None]] = set()
        self._turns = asyncio.Semaphore(CONNECTION_POOL_SIZE)

    def answer_later(
        self,
        *,
        callback_query_id: str,
        text: str | None,
        chat_id: int,
        message_id: int | None,
    ) -> None:
        """Answer the press with `text` (None shows nothing) and remove its keyboard, in the
        background. `message_id` None skips the removal."""
        task = asyncio.get_running_loop().create_task(
            self._answer(callback_query_id, text, chat_id, message_id)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(
        self, callback_query_id: str, text: str | None, chat_id: int, message_id: int | None
    ) -> None:
        async with self._turns:
            await self._answer_now(callback_query_id, text, chat_id, message_id)

    async def _answer_now(
        self, callback_query_id: str, text: str | None, chat_id: int, message_id: int | None
    ) -> None:
        try:
            bot = await self._api.bot()
            await bot.answer_callback_query(callback_query_id, text=text)
        except TelegramError as exc:
            log.warning("answering a Telegram button press failed: %s", self._api.redact(str(exc)))
            return
        if message_id is None:
            return
        try:
            await bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id)
        except BadRequest as exc:
            # Expected for a repeated press: the keyboard is already gone ("message is not
            # modified"), or the message is too old to edit.
            log.info("keyboard not removed: %s", self._api.redact(str(exc)))
        except TelegramError as exc:
            log.warning("removing a Telegram keyboard failed: %s", self._api.redact(str(exc)))

    async def drain(self) -> None:
        """Wait for the answers started so far; for shutdown and tests."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        await self._api.close()
