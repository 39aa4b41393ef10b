"""Button presses: the answer to each callback query, and the removal of pressed keyboards.

Telegram's apps show a progress indicator on a pressed button until the bot answers the callback
query, so every press is answered, whether it acted, was stale or was a repeated update. The
answer goes in the webhook's response, which saves a request per press. The Bot API performs
one method call given there as `{"method": …, parameters…}` and does not report its result
(Bot API documentation, "Making requests when getting updates"). A press whose update fails
gets a 500 and no answer, and Telegram's redelivery is answered.

The pressed keyboard is then removed (editMessageReplyMarkup) so it cannot be pressed again.
When the press queued a reply, the reply carries the pressed message's id and the worker
removes the keyboard just before it sends the reply (see `sender`). When a removal fails with
a retryable error, such as a network error or a 5xx, the reply waits for the retried send.
Otherwise the web process removes the keyboard in a background task, so the webhook responds
without waiting for the Bot API. Those removals are logged and not retried when they fail,
because a keyboard left in place only leads to a stale press, which gets a notice and does
nothing.

At most one removal per connection of the Bot API client runs at a time, and the others wait
their turn. Otherwise a burst of presses would queue in the client's connection pool. There
python-telegram-bot 22 gives up after its pool timeout (1 s by default), and every queued
request makes each later pool operation slower.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from telegram.error import BadRequest, TelegramError

from bot.channels.telegram.bot_api import CONNECTION_POOL_SIZE, ApiFailure, BotApi, classify_error

log = logging.getLogger(__name__)

ANSWER_METHOD: Final = "answerCallbackQuery"


def answer_in_response(callback_query_id: str, text: str | None) -> dict[str, Any]:
    """Return the webhook response body that answers a press with `text` (None shows
    nothing)."""
    answer: dict[str, Any] = {"method": ANSWER_METHOD, "callback_query_id": callback_query_id}
    if text:
        answer["text"] = text
    return answer


async def remove_keyboard(api: BotApi, chat_id: int, message_id: int) -> ApiFailure | None:
    """Remove the inline keyboard of message `message_id`. Return the failure, or None when
    the keyboard is gone or Telegram refused the edit as a bad request."""
    try:
        bot = await api.bot()
        await bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id)
    except BadRequest as exc:
        # Expected for a repeated press: the keyboard is already gone ("message is not
        # modified"), or the message is too old to edit.
        log.info("keyboard not removed: %s", api.redact(str(exc)))
    except TelegramError as exc:
        failure = classify_error(exc, api)
        log.warning(
            "removing a Telegram keyboard failed (%s, retryable=%s): %s",
            failure.provider_status,
            failure.retryable,
            failure.error,
        )
        return failure
    return None


class KeyboardRemovals:
    """Removes pressed keyboards from the web process, for presses that queued no reply."""

    def __init__(self, api: BotApi) -> None:
        self._api = api
        self._tasks: set[asyncio.Task[None]] = set()
        self._turns = asyncio.Semaphore(CONNECTION_POOL_SIZE)

    def remove_later(self, *, chat_id: int, message_id: int) -> None:
        """Remove the keyboard of message `message_id` in chat `chat_id`, in the background."""
        task = asyncio.get_running_loop().create_task(self._remove(chat_id, message_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _remove(self, chat_id: int, message_id: int) -> None:
        async with self._turns:
            await remove_keyboard(self._api, chat_id, message_id)

    async def drain(self) -> None:
        """Wait for the removals started so far; for shutdown and tests."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
        await self._api.close()
