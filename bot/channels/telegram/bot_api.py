"""The Telegram Bot API through python-telegram-bot's `Bot`, pointed at Telegram or the fake.

`Bot` is async and keeps a connection pool (an aiohttp session, see `transport`) that belongs
to the event loop it first ran on, so each loop that talks to the Bot API gets its own
`BotApi`. The token is part of every request URL, so error texts are logged only after
`redact` has removed it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from telegram import Bot
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.channels.telegram.transport import AiohttpRequest

log = logging.getLogger(__name__)

TELEGRAM_API_URL: Final = "https://api.telegram.org"

# Seconds. A send that times out is retried from the outbox.
CONNECT_TIMEOUT: Final = 3.0
READ_TIMEOUT: Final = 10.0
# Concurrent requests per BotApi: worker threads send one message at a time, and the web
# process removes pressed keyboards in the background.
CONNECTION_POOL_SIZE: Final = 8


def build_bot(token: str, api_url: str) -> Bot:
    """Build a Bot whose requests go to `{api_url}/bot{token}/METHOD` over HTTP/1.1, the only
    version aiohttp's client speaks (python-telegram-bot warns that HTTP/2 does not work with
    a self-hosted Bot API server such as the sandbox fake)."""
    api_url = api_url.rstrip("/")

    def request() -> AiohttpRequest:
        return AiohttpRequest(
            connection_pool_size=CONNECTION_POOL_SIZE,
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
        )

    return Bot(
        token,
        base_url=f"{api_url}/bot",
        base_file_url=f"{api_url}/file/bot",
        request=request(),
        get_updates_request=request(),
    )


class BotApi:
    """One Bot for one event loop, initialised (getMe) on first use and closed by `close`."""

    def __init__(self, token: str, api_url: str) -> None:
        self._token = token
        self._api_url = api_url
        self._bot: Bot | None = None
        self._lock: asyncio.Lock | None = None

    async def bot(self) -> Bot:
        """Return the initialised Bot. Raises TelegramError when getMe fails; the next call
        tries again."""
        if self._bot is not None:
            return self._bot
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._bot is None:
                bot = build_bot(self._token, self._api_url)
                try:
                    await bot.initialize()
                except BaseException:
                    await bot.shutdown()
                    raise
                log.info("Telegram bot ready", extra={"bot_username": bot.username})
                self._bot = bot
        return self._bot

    async def close(self) -> None:
        bot, self._bot = self._bot, None
        if bot is not None:
            await bot.shutdown()

    def redact(self, text: str) -> str:
        """Return `text` with the bot token replaced, for logs and stored errors."""
        return text.replace(self._token, "<token>") if self._token else text


@dataclass(frozen=True)
class ApiFailure:
    """The outcome of a failed Bot API call: the status name, whether a later attempt may
    succeed, and a short reason without the token."""

    provider_status: str
    retryable: bool
    error: str


def classify_error(exc: TelegramError, api: BotApi) -> ApiFailure:
    """Map python-telegram-bot's exception types to a send outcome."""
    reason = api.redact(exc.message)
    if isinstance(exc, RetryAfter):
        return ApiFailure("RetryAfter", True, f"Telegram asked to wait: {reason}")
    if isinstance(exc, TimedOut):
        # The message may have gone out; retrying risks a duplicate rather than a loss.
        return ApiFailure("TimedOut", True, "request to the Telegram Bot API timed out")
    if isinstance(exc, InvalidToken):
        return ApiFailure("InvalidToken", False, "the Telegram bot token was rejected")
    if isinstance(exc, Forbidden):
        # Typically the user blocked the bot; nothing changes that until they unblock it.
        return ApiFailure(
            "Forbidden", False, f"Telegram rejected the message as forbidden: {reason}"
        )
    if isinstance(exc, BadRequest):
        return ApiFailure("BadRequest", False, f"Telegram rejected the request: {reason}")
    if isinstance(exc, ChatMigrated):
        return ApiFailure("ChatMigrated", False, "the chat became a supergroup")
    if isinstance(exc, NetworkError):
        return ApiFailure("NetworkError", True, f"Telegram Bot API request failed: {reason}")
    return ApiFailure("TelegramError", False, f"Telegram Bot API error: {reason}")
