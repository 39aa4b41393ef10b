"""A fake of the Telegram Bot API at `/sandbox/telegram/bot{token}/{method}`.

It answers getMe, sendMessage, answerCallbackQuery and editMessageReplyMarkup in the Bot API's
shapes: `{"ok": true, "result": …}` on success and `{"ok": false, "error_code": N,
"description": …}` otherwise, with 401 "Unauthorized" for a wrong token and 404 for an unknown
method. Parameters come from a JSON body, a form (python-telegram-bot sends a form whose
non-string values are JSON-encoded) or the query string, as the real API accepts them.

Every message it accepts goes into the `SandboxStore` (channel "telegram", `to` = the chat id).
`GET /sandbox/telegram/messages` lists them with their current keyboards, and
`GET /sandbox/telegram/callback-answers` lists the answered button presses.

A bot may answer a webhook update with a method call, `{"method": …, parameters…}`, which
Telegram performs without reporting the result. Whatever plays Telegram in the sandbox (the
simulator's chat pane, the tests) posts that response to `POST /sandbox/telegram/webhook-reply`,
which performs it as the bot's own call and answers in the Bot API's shape.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

from aiohttp import web

from core.clock import Clock
from sandbox.store import SandboxStore

log = logging.getLogger(__name__)

PROVIDER: Final = "telegram"
TELEGRAM_FAULT_SERVICE: Final = "telegram.bot_api"

BOT_FIRST_NAME: Final = "MyAfya Sandbox Bot"
BOT_USERNAME: Final = "myafya_sandbox_bot"
DEFAULT_BOT_ID: Final = 8000000001

# Limits of the real Bot API, from python-telegram-bot 22.8's `telegram.constants`.
MAX_TEXT_CHARS: Final = 4096
MAX_CALLBACK_DATA_BYTES: Final = 64
MAX_CALLBACK_ANSWER_CHARS: Final = 200

# NOTE: error descriptions follow the real API's "Bad Request: …" form, but their wording
# was not checked against Telegram. Callers should rely on the HTTP status only.
NOT_MODIFIED: Final = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _bad_request(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


@dataclass
class FakeMessage:
    """A message the fake sent, with its keyboard as the Bot API would return it."""

    chat_id: int
    message_id: int
    date: int
    text: str
    reply_markup: dict[str, Any] | None = None

    def to_api(self, bot_user: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "message_id": self.message_id,
            "from": bot_user,
            "chat": {"id": self.chat_id, "type": "private", "first_name": "Sandbox"},
            "date": self.date,
            "text": self.text,
        }
        # Telegram returns only inline keyboards with a message; reply keyboards stay client-side.
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            result["reply_markup"] = self.reply_markup
        return result


@dataclass(frozen=True)
class CallbackAnswer:
    callback_query_id: str
    text: str | None
    show_alert: bool


@dataclass
class _Chats:
    messages: dict[tuple[int, int], FakeMessage] = field(default_factory=dict)
    next_id: dict[int, int] = field(default_factory=dict)
    answers: list[CallbackAnswer] = field(default_factory=list)


class TelegramBotApiFake:
    """Request handlers of the fake, bound to the one bot token it accepts."""

    def __init__(self, *, store: SandboxStore, clock: Clock, token: str) -> None:
        if not token:
            raise ValueError("the Telegram fake needs a non-empty bot token")
        self._store = store
        self._clock = clock
        self._token = token.encode()
        bot_id = token.split(":", 1)[0]
        self._bot_user = {
            "id": int(bot_id) if bot_id.isdigit() else DEFAULT_BOT_ID,
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": BOT_USERNAME,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self._chats = _Chats()
        self._methods = {
            "getme": self._get_me,
            "sendmessage": self._send_message,
            "answercallbackquery": self._answer_callback_query,
            "editmessagereplymarkup": self._edit_message_reply_markup,
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/sandbox/telegram/bot{token}/{method}", self.handle)
        app.router.add_post("/sandbox/telegram/webhook-reply", self.perform_webhook_reply)
        app.router.add_get("/sandbox/telegram/messages", self.list_messages)
        app.router.add_get("/sandbox/telegram/callback-answers", self.list_callback_answers)

    async def handle(self, request: web.Request) -> web.Response:
        """Handle one Bot API call as Telegram does; method names are case-insensitive."""
        fault = self._store.take_fault(TELEGRAM_FAULT_SERVICE)
        if fault is not None and fault.delay_seconds:
            log.info("Sandbox Telegram call delayed by %.1f s as injected", fault.delay_seconds)
            await self._store.wait_injected_delay(fault.delay_seconds)
        if fault is not None and fault.http_status is not None:
            log.info("Sandbox Telegram call failed with injected HTTP %d", fault.http_status)
            return _error_response(_injected_error(fault.http_status))

        if not hmac.compare_digest(request.match_info["token"].encode(), self._token):
            log.warning("Sandbox Telegram call rejected: wrong bot token")
            return _error_response(_ApiError(401, "Unauthorized"))
        method = self._methods.get(request.match_info["method"].lower())
        if method is None:
            return _error_response(_ApiError(404, "Not Found: method not found"))
        try:
            params = await _read_params(request)
            return _ok(method(params))
        except _ApiError as exc:
            log.info("Sandbox Telegram call rejected: %s", exc.description)
            return _error_response(exc)

    async def perform_webhook_reply(self, request: web.Request) -> web.Response:
        """Perform the method call a webhook's response gave, as Telegram does."""
        try:
            if request.content_type != "application/json":
                raise _bad_request("a webhook reply must be a JSON object")
            params = await _read_params(request)
            name = params.pop("method", None)
            if name is None or name == "":
                raise _bad_request("method is empty")
            if not isinstance(name, str):
                raise _bad_request("method must be a string")
            method = self._methods.get(name.lower())
            if method is None:
                raise _ApiError(404, f"Not Found: method not found: {name[:64]}")
            return _ok(method(params))
        except _ApiError as exc:
            log.info("Sandbox Telegram webhook reply rejected: %s", exc.description)
            return _error_response(exc)

    # --- Bot API methods -----------------------------------------------------------------

    def _get_me(self, params: dict[str, Any]) -> Any:
        return self._bot_user

    def _send_message(self, params: dict[str, Any]) -> Any:
        chat_id = _chat_id(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _bad_request("message text is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise _bad_request("message is too long")
        markup = _reply_markup(params)

        message_id = self._chats.next_id.get(chat_id, 1)
        self._chats.next_id[chat_id] = message_id + 1
        now = self._clock.now()
        message = FakeMessage(chat_id, message_id, int(now.timestamp()), text, markup)
        self._chats.messages[(chat_id, message_id)] = message
        self._store.add(
            channel="telegram",
            provider=PROVIDER,
            to=str(chat_id),
            text=text,
            provider_message_id=f"{chat_id}:{message_id}",
            sent_at=now,
        )
        return message.to_api(self._bot_user)

    def _answer_callback_query(self, params: dict[str, Any]) -> Any:
        query_id = params.get("callback_query_id")
        if not isinstance(query_id, str) or not query_id:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = params.get("text")
        if text is not None and not isinstance(text, str):
            raise _bad_request("text must be a string")
        if text is not None and len(text) > MAX_CALLBACK_ANSWER_CHARS:
            raise _bad_request("MESSAGE_TOO_LONG")
        show_alert = params.get("show_alert") in (True, "true")
        self._chats.answers.append(CallbackAnswer(query_id, text or None, show_alert))
        return True

    def _edit_message_reply_markup(self, params: dict[str, Any]) -> Any:
        if params.get("inline_message_id"):
            raise _bad_request("message to edit not found")
        chat_id = _chat_id(params)
        message_id = _integer(params.get("message_id"), "message_id")
        message = self._chats.messages.get((chat_id, message_id))
        if message is None:
            raise _bad_request("message to edit not found")
        markup = _reply_markup(params)
        if markup is not None and "inline_keyboard" not in markup:
            raise _bad_request("inline keyboard expected")
        if not markup or not markup["inline_keyboard"]:
            markup = None
        current = message.reply_markup if message.reply_markup else None
        if markup == current:
            raise _ApiError(400, NOT_MODIFIED)
        message.reply_markup = markup
        return message.to_api(self._bot_user)

    # --- sandbox control -----------------------------------------------------------------

    async def list_messages(self, request: web.Request) -> web.Response:
        """List sent messages, oldest first; `?chat_id=N` keeps one chat's."""
        chat = request.query.get("chat_id")
        messages = [
            {
                "chat_id": m.chat_id,
                "message_id": m.message_id,
                "date": m.date,
                "text": m.text,
                "reply_markup": m.reply_markup,
            }
            for m in self._chats.messages.values()
            if chat is None or str(m.chat_id) == chat
        ]
        return web.json_response(messages)

    async def list_callback_answers(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "callback_query_id": a.callback_query_id,
                    "text": a.text,
                    "show_alert": a.show_alert,
                }
                for a in self._chats.answers
            ]
        )


async def _read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            # RecursionError: nesting deeper than the json module's recursion allows.
            raise _bad_request("can't parse JSON body") from None
        if not isinstance(body, dict):
            raise _bad_request("expected a JSON object")
        params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        params.update({name: value for name, value in form.items() if isinstance(value, str)})
    return params


def _chat_id(params: dict[str, Any]) -> int:
    value = params.get("chat_id")
    if value is None or value == "":
        raise _bad_request("chat_id is empty")
    try:
        return _integer(value, "chat_id")
    except _ApiError:
        raise _bad_request("chat not found") from None


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise _bad_request(f"invalid {name}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise _bad_request(f"invalid {name}")


def _reply_markup(params: dict[str, Any]) -> dict[str, Any] | None:
    value = params.get("reply_markup")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise _bad_request("can't parse reply keyboard markup JSON object") from None
    if not isinstance(value, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    rows = value.get("inline_keyboard")
    if rows is not None:
        _check_inline_keyboard(rows)
    return value


def _check_inline_keyboard(rows: Any) -> None:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad_request(
            'field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays'
        )
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise _bad_request("can't parse inline keyboard button: Text is missing")
            data = button.get("callback_data")
            if data is not None and not (
                isinstance(data, str) and 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES
            ):
                raise _bad_request("BUTTON_DATA_INVALID")


def _injected_error(status: int) -> _ApiError:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return _ApiError(status, f"{phrase}: injected by the sandbox")


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error_response(error: _ApiError) -> web.Response:
    body: dict[str, Any] = {
        "ok": False,
        "error_code": error.status,
        "description": error.description,
    }
    if error.status == 429:
        body["parameters"] = {"retry_after": 1}
    return web.json_response(body, status=error.status)
