"""Wiring of the Telegram channel: the webhook, the sender, and the Bot API fake in the sandbox.

Part of the composition root. With the sandbox on, every Bot API call goes to this server's fake
at `/sandbox/telegram`, and the placeholder token and secret apply unless real ones are set.
Outside the sandbox, Telegram is off until MYAFYA_TELEGRAM_BOT_TOKEN and
MYAFYA_TELEGRAM_WEBHOOK_SECRET are set, and the webhook then rejects every request with 403.
"""

from __future__ import annotations

from aiohttp import web

from bot.channels.telegram.bot_api import TELEGRAM_API_URL, BotApi, build_bot
from bot.channels.telegram.callbacks import KeyboardRemovals
from bot.channels.telegram.sender import TelegramSender
from bot.channels.telegram.webhook import TelegramWebhook
from bot.engine.host import ConversationHost
from core.clock import Clock
from myafya.settings import Settings
from sandbox.store import SandboxStore
from sandbox.telegram import TelegramBotApiFake

TELEGRAM_WEBHOOK = web.AppKey("telegram_webhook", TelegramWebhook)
TELEGRAM_KEYBOARDS = web.AppKey("telegram_keyboards", KeyboardRemovals)

WEBHOOK_PATH = "/webhooks/telegram"

# Token that the webhook's parsing-only Bot carries when Telegram is not configured; that Bot
# never sends a request.
_UNUSED_TOKEN = "0:telegram-not-configured"  # noqa: S105  (not a credential)


def telegram_api_url(settings: Settings, fakes_url: str) -> str:
    return f"{fakes_url}/sandbox/telegram" if settings.sandbox_on else TELEGRAM_API_URL


def build_telegram_sender(settings: Settings, fakes_url: str) -> TelegramSender | None:
    """Return the worker's sender, or None when Telegram is not configured."""
    credentials = settings.telegram_credentials
    if credentials is None:
        return None
    token, _ = credentials
    return TelegramSender(token=token, api_url=telegram_api_url(settings, fakes_url))


def start_telegram(
    app: web.Application,
    *,
    settings: Settings,
    host: ConversationHost,
    metrics: object,
    fakes_url: str,
) -> None:
    """Build the webhook and its keyboard removals; call from the app's start-up context."""
    credentials = settings.telegram_credentials
    token, secret = credentials if credentials else (_UNUSED_TOKEN, None)
    api_url = telegram_api_url(settings, fakes_url)
    keyboards = KeyboardRemovals(BotApi(token, api_url))
    app[TELEGRAM_KEYBOARDS] = keyboards
    app[TELEGRAM_WEBHOOK] = TelegramWebhook(
        host=host,
        bot=build_bot(token, api_url),
        secret=secret,
        keyboards=keyboards,
        metrics=metrics,
    )


async def stop_telegram(app: web.Application) -> None:
    """Wait for pending keyboard removals and close their Bot API connections."""
    await app[TELEGRAM_KEYBOARDS].close()


def add_telegram_routes(app: web.Application) -> None:
    async def telegram_update(request: web.Request) -> web.StreamResponse:
        return await request.app[TELEGRAM_WEBHOOK].handle(request)

    app.router.add_post(WEBHOOK_PATH, telegram_update)


def add_telegram_fake(
    app: web.Application, *, settings: Settings, store: SandboxStore, clock: Clock
) -> None:
    """Serve the Bot API fake under `/sandbox/telegram`; the sandbox must be on."""
    credentials = settings.telegram_credentials
    assert credentials is not None, "the sandbox always has Telegram credentials"
    TelegramBotApiFake(store=store, clock=clock, token=credentials[0]).add_routes(app)
