"""Send chat replies to Telegram users from dramatiq worker threads.

python-telegram-bot is async while the worker calls senders from its threads, so each thread
that sends gets an event loop and a `BotApi` of its own. The first send on a thread calls getMe
and later sends reuse the Bot. `close`, which the worker calls when it stops the thread, shuts
both down.
A reply's options become an inline keyboard (see `rendering`). A reply to a button press first
removes the pressed message's keyboard, so the user cannot press it again (see `callbacks`).
Logs carry outbox and Telegram message ids, never the text or the chat id.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from dataclasses import dataclass
from typing import Final

from telegram.error import TelegramError

from bot.channels.telegram.bot_api import BotApi, classify_error
from bot.channels.telegram.callbacks import remove_keyboard
from bot.channels.telegram.rendering import Markup, render_outbox_variables
from bot.engine.model import PRESSED_MESSAGE_KEY
from core.notify.outbox import OutboundMessage

log = logging.getLogger(__name__)

STATUS_SENT: Final = "sent"
STATUS_INVALID_CHAT_ID: Final = "InvalidChatId"

# A Telegram chat id as our outbox stores it: digits, negative for groups.
_CHAT_ID: Final = re.compile(r"-?[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one Telegram send. `provider_message_id` is `{chat id}:{message id}`,
    because Telegram numbers messages per chat."""

    provider_message_id: str | None
    provider_status: str
    accepted: bool
    retryable: bool
    error: str | None


@dataclass
class _ThreadState:
    loop: asyncio.AbstractEventLoop
    api: BotApi


class TelegramSender:
    """Sends outbox rows of channel "telegram"; `recipient` is the chat id."""

    def __init__(self, *, token: str, api_url: str) -> None:
        self._token = token
        self._api_url = api_url
        self._local = threading.local()

    def _state(self) -> _ThreadState:
        state: _ThreadState | None = getattr(self._local, "state", None)
        if state is None:
            state = _ThreadState(asyncio.new_event_loop(), BotApi(self._token, self._api_url))
            self._local.state = state
        return state

    def send_message_blocking(self, message: OutboundMessage) -> SendResult:
        """Send one outbox row, drawing its reply's options as buttons, and block until
        Telegram responds or the request times out."""
        text, markup = render_outbox_variables(message.variables, message.body)
        pressed = message.variables.get(PRESSED_MESSAGE_KEY)
        state = self._state()
        return state.loop.run_until_complete(
            self._send(
                state.api,
                message.recipient,
                text,
                markup,
                outbox_id=message.id,
                pressed_message_id=pressed if type(pressed) is int else None,
            )
        )

    def send_blocking(self, to: str, text: str) -> SendResult:
        """Send plain text to chat `to`."""
        state = self._state()
        return state.loop.run_until_complete(self._send(state.api, to, text, None, outbox_id=None))

    async def _send(
        self,
        api: BotApi,
        recipient: str,
        text: str,
        markup: Markup | None,
        *,
        outbox_id: int | None,
        pressed_message_id: int | None = None,
    ) -> SendResult:
        if _CHAT_ID.fullmatch(recipient) is None:
            return SendResult(
                None, STATUS_INVALID_CHAT_ID, False, False, "recipient is not a Telegram chat id"
            )
        chat_id = int(recipient)
        if pressed_message_id is not None:
            # The pressed keyboard goes first, so it cannot act twice. A removal that may
            # succeed later fails this send as retryable, and other failures let the send go
            # on. A retry removes it again, which Telegram rejects as "not modified".
            removal = await remove_keyboard(api, chat_id, pressed_message_id)
            if removal is not None and removal.retryable:
                return SendResult(
                    None, removal.provider_status, False, True, f"keyboard: {removal.error}"
                )
        try:
            bot = await api.bot()
            sent = await bot.send_message(chat_id=chat_id, text=text, reply_markup=markup)
        except TelegramError as exc:
            failure = classify_error(exc, api)
            log.warning(
                "Telegram send failed (%s, retryable=%s): %s",
                failure.provider_status,
                failure.retryable,
                failure.error,
                extra={"outbox_message_id": outbox_id},
            )
            return SendResult(
                None, failure.provider_status, False, failure.retryable, failure.error
            )
        provider_id = f"{chat_id}:{sent.message_id}"
        log.info("Telegram accepted message", extra={"outbox_message_id": outbox_id})
        return SendResult(provider_id, STATUS_SENT, True, False, None)

    def close(self) -> None:
        """Shut down this thread's Bot and event loop, if it made them."""
        state: _ThreadState | None = getattr(self._local, "state", None)
        if state is None:
            return
        self._local.state = None
        try:
            state.loop.run_until_complete(state.api.close())
        finally:
            state.loop.close()
