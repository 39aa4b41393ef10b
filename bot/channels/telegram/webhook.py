"""Telegram webhook: `POST /webhooks/telegram`.

Telegram sends the secret given to setWebhook in `X-Telegram-Bot-Api-Secret-Token`. It is
compared in constant time before the body is read, and a missing or wrong one gets 403 with
nothing processed. Each update is applied exactly once: its `update_id` is the dedupe key of
`handle_message`, inserted in the transaction of the conversation step, so a redelivered or
concurrent copy gets the same 200 and changes nothing. Button presses are checked against the
conversation and screen they were drawn for, and every press is answered in the response to its
update (see `callbacks`).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

import orjson
from aiohttp import web
from telegram import Bot

from bot.channels.telegram import identities
from bot.channels.telegram.callbacks import KeyboardRemovals, answer_in_response
from bot.channels.telegram.rendering import TELEGRAM_LIMITS, decode_callback_data
from bot.channels.telegram.updates import (
    ButtonPress,
    ChatMessage,
    Ignored,
    InvalidUpdate,
    SharedContact,
    parse_update,
    read_event,
)
from bot.engine.engine import LANGUAGE_CHOSEN_KEY
from bot.engine.host import (
    INVALID_PHONE_CONTACT,
    RECORD_INBOUND,
    ConversationHost,
    handle_message,
    resend_current_screen,
)
from bot.engine.model import InboundMessage, Input, InputKind, MessageResult
from core.db.database import Sql, UnitOfWork
from core.errors import InvalidPhoneNumber
from core.i18n import translate
from core.identity.phones import normalize_phone

log = logging.getLogger(__name__)

PROVIDER: Final = "telegram"
CHANNEL: Final = "telegram"
SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105  (a header name)

_CONVERSATION_LANGUAGE = Sql("SELECT language FROM conversations WHERE phone = :key")
_UNLINKED_LANGUAGE = Sql("SELECT language, data FROM conversations WHERE phone = :key")


class TelegramWebhook:
    def __init__(
        self,
        *,
        host: ConversationHost,
        bot: Bot,
        secret: str | None,
        keyboards: KeyboardRemovals,
        metrics: Any,
    ) -> None:
        """`bot` is used only to parse updates; `secret` None rejects every request.

        `metrics` is the app's `myafya.metrics.Metrics`.
        """
        self._host = host
        self._bot = bot
        self._secret = secret.encode() if secret else None
        self._keyboards = keyboards
        self._metrics = metrics

    def _authorised(self, request: web.Request) -> bool:
        if not self._secret:
            return False
        given = request.headers.get(SECRET_HEADER, "")
        return hmac.compare_digest(given.encode(), self._secret)

    async def handle(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            reason = "not configured" if not self._secret else "missing or wrong secret token"
            log.warning("Telegram update rejected: %s", reason)
            self._metrics.requests.labels(channel=CHANNEL, outcome="forbidden").inc()
            return web.Response(status=403, text="forbidden")

        started = time.perf_counter()
        try:
            update = parse_update(await request.read(), self._bot)
            event = read_event(update)
        except InvalidUpdate as exc:
            log.info("Telegram update rejected: %s", exc)
            self._metrics.requests.labels(channel=CHANNEL, outcome="invalid").inc()
            return web.json_response({"error": str(exc), "field": exc.field}, status=400)

        update_id = str(update.update_id)
        try:
            outcome, details, answer = await self._apply(update_id, event)
        except Exception:
            # Telegram redelivers after a non-2xx response. The step's transaction rolled back,
            # so the retry starts afresh, except after a stale press (see `_press`).
            log.exception("Telegram update %s failed", update_id)
            self._metrics.requests.labels(channel=CHANNEL, outcome="error").inc()
            return web.Response(status=500, text="internal error")

        elapsed = time.perf_counter() - started
        self._metrics.requests.labels(channel=CHANNEL, outcome=outcome).inc()
        self._metrics.step_seconds.labels(channel=CHANNEL).observe(elapsed)
        log.info(
            "Telegram update",
            extra={
                "update_id": update_id,
                "event": type(event).__name__,
                "outcome": outcome,
                "elapsed_ms": round(elapsed * 1000, 1),
                **details,
            },
        )
        if answer is not None:
            return web.json_response(answer)
        return web.Response(status=200)

    async def _apply(
        self, update_id: str, event: Any
    ) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        """Apply one update; return its outcome, details for the log, and the Bot API method
        for the response, if any."""
        match event:
            case Ignored(reason):
                return "ignored", {"reason": reason}, None
            case ChatMessage(user_id, chat_id, received, language):
                # The user is recorded in the step's own transaction, which also finds their
                # key: the linked phone number or the `tg:` one.
                message = self._message(
                    update_id,
                    identities.unlinked_key(user_id),
                    chat_id,
                    received,
                    language,
                    resolve_key=_user_recorder(user_id, chat_id),
                )
                result = await handle_message(self._host, message)
                return _outcome(result), _result_details(result), None
            case SharedContact():
                key, received, language, chosen = await self._link_contact(event)
                message = self._message(
                    update_id,
                    key,
                    event.chat_id,
                    received,
                    language,
                    initial_language_chosen=chosen,
                )
                result = await handle_message(self._host, message)
                return _outcome(result), _result_details(result), None
            case ButtonPress():
                return await self._press(update_id, event)
        raise TypeError(f"unknown Telegram event {event!r}")

    def _message(
        self, update_id: str, key: str, chat_id: int, received: Input, language: str, **fields: Any
    ) -> InboundMessage:
        """Build the host's message for one update. `language` is for a conversation the update
        creates, and `fields` sets further InboundMessage fields."""
        return InboundMessage(
            channel=CHANNEL,
            provider=PROVIDER,
            provider_message_id=update_id,
            key=key,
            reply_to=str(chat_id),
            input=received,
            received_at=self._host.clock.now(),
            limits=TELEGRAM_LIMITS,
            initial_language=language,
            **fields,
        )

    async def _link_contact(self, event: SharedContact) -> tuple[str, Input, str, bool]:
        """Link the sender's own contact and return the conversation key, the input, the
        language for a conversation of the phone number that does not exist yet, and whether
        the user chose that language in a menu.

        That language is the one of the user's `tg:` conversation, which contains any choice they
        made before linking, and else the update's own. Someone else's contact, or a number
        that is not valid, links nothing. It reaches the host as a contact input that is not
        the key, so the reply starts with a notice that explains why. For the sender's own number
        that is not valid, the input's text is `INVALID_PHONE_CONTACT`.
        """
        phone: str | None = None
        unlinked_input = Input(InputKind.CONTACT)
        if event.contact_user_id == event.user_id:
            try:
                phone = normalize_phone(event.phone_number)
            except InvalidPhoneNumber:
                log.info("Telegram contact not linked: the phone number is not valid")
                unlinked_input = Input(InputKind.CONTACT, INVALID_PHONE_CONTACT)
        else:
            log.info("Telegram contact not linked: it is not the sender's own")
        now = self._host.clock.now()
        async with self._host.database.unit_of_work() as uow:
            if phone is None:
                key = await identities.record_user(
                    uow, user_id=event.user_id, chat_id=event.chat_id, now=now
                )
                return key, unlinked_input, event.language, False
            await identities.link_phone(
                uow, user_id=event.user_id, chat_id=event.chat_id, phone=phone, now=now
            )
            unlinked = await uow.one(_UNLINKED_LANGUAGE, key=identities.unlinked_key(event.user_id))
        if unlinked is None or not unlinked["language"]:
            return phone, Input(InputKind.CONTACT, phone), event.language, False
        chosen = bool(orjson.loads(unlinked["data"]).get(LANGUAGE_CHOSEN_KEY))
        return phone, Input(InputKind.CONTACT, phone), unlinked["language"], chosen

    async def _press(
        self, update_id: str, event: ButtonPress
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """Apply a press; return its outcome, details for the log and its answer."""
        decoded = decode_callback_data(event.data)
        if decoded is None:
            stale, language = await self._record_undecodable_press(update_id, event)
            outcome = "stale_screen" if stale else "duplicate"
            details: dict[str, Any] = {}
            replied = False
        else:
            message = self._message(
                update_id,
                identities.unlinked_key(event.user_id),
                event.chat_id,
                Input.of_text(decoded.key),
                event.language,
                screen_version=decoded.screen_version,
                screen_conversation_id=decoded.conversation_id,
                resolve_key=_user_recorder(event.user_id, event.chat_id),
                # The reply's sender removes the pressed keyboard.
                pressed_message_id=event.message_id,
            )
            result = await handle_message(self._host, message)
            stale = result.stale_screen
            language = result.language or event.language
            replied = not (result.duplicate or stale)
            if stale:
                # After a finished or timed-out flow the latest message has no buttons to use,
                # so the home menu is sent. A live screen's latest message already has them.
                # NOTE: the press's dedupe row has committed by now. If this resend fails, the
                # update gets a 500 and its redelivery is a duplicate, which is answered and
                # removes the keyboard but gets neither the home menu nor the notice.
                replied = await resend_current_screen(self._host, message, None, live_screen=False)
            outcome = _outcome(result)
            details = _result_details(result)

        if not replied and event.message_id is not None:
            # No reply of this update will remove the keyboard. A duplicate removes it too,
            # because the first copy may have failed before it queued its reply.
            self._keyboards.remove_later(chat_id=event.chat_id, message_id=event.message_id)
        notice = translate(language, "telegram.menu_expired") if stale else None
        return outcome, details, answer_in_response(event.callback_query_id, notice)

    async def _record_undecodable_press(
        self, update_id: str, event: ButtonPress
    ) -> tuple[bool, str]:
        """Record the update of a press whose data our keyboards never carry, so a redelivery
        counts as a duplicate, and act on nothing.

        Return whether the update is new and the language of the user's conversation.
        """
        now = self._host.clock.now()
        async with self._host.database.unit_of_work() as uow:
            key = await identities.record_user(
                uow, user_id=event.user_id, chat_id=event.chat_id, now=now
            )
            row = await uow.one(_CONVERSATION_LANGUAGE, key=key)
            fresh = await _record_update(uow, update_id, now)
        return fresh, (row["language"] if row else None) or event.language


def _user_recorder(user_id: int, chat_id: int) -> Callable[[UnitOfWork, datetime], Awaitable[str]]:
    """Return a `resolve_key` that records the user's chat and returns their key."""

    async def record(uow: UnitOfWork, now: datetime) -> str:
        return await identities.record_user(uow, user_id=user_id, chat_id=chat_id, now=now)

    return record


async def _record_update(uow: UnitOfWork, update_id: str, now: Any) -> bool:
    """Insert the dedupe row of an update no conversation step handles; False if it exists."""
    recorded = await uow.scalar(
        RECORD_INBOUND,
        provider=PROVIDER,
        provider_message_id=update_id,
        channel=CHANNEL,
        received_at=now,
    )
    return recorded is not None


def _outcome(result: MessageResult) -> str:
    if result.duplicate:
        return "duplicate"
    if result.stale_screen:
        return "stale_screen"
    return "ok"


def _result_details(result: MessageResult) -> dict[str, Any]:
    return {
        "conversation_id": result.conversation_id,
        "state_before": result.state_before,
        "state_after": result.state_after,
    }
