"""Routes of the simulator page, registered only when the sandbox is on.

- `GET /simulator`: the page, with the configured service code filled in.
- `GET /simulator/static/{name}`: its scripts and style sheet.
- `GET /simulator/chats`: what the WhatsApp and Telegram panes need to post as the providers do:
  the Twilio account SID and our WhatsApp number, and the Telegram webhook secret token.
- `POST /sandbox/twilio/sign`: `{"path", "params"}` returns `{"signature"}`, the
  `X-Twilio-Signature` of that form posted to `{MYAFYA_PUBLIC_URL}{path}`.

The page runs in a browser, which must never hold a live auth token or webhook secret. These
helpers exist only in the sandbox, where the credentials are the sandbox's own, so the webhooks
authenticate the panes' requests exactly as they authenticate the providers'.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from twilio.request_validator import RequestValidator

from myafya.settings import Settings

SIMULATOR_DIR: Final = Path(__file__).parent
SERVICE_CODE_PLACEHOLDER: Final = "{{service_code}}"

# Only these files are served, so the Python sources next to them stay private.
STATIC_FILES: Final = {
    "simulator.js": "text/javascript",
    "chats.js": "text/javascript",
    "simulator.css": "text/css",
}

# The webhooks the signing helper signs for; any other path is rejected.
SIGNABLE_PATHS: Final = frozenset({"/webhooks/twilio/whatsapp", "/webhooks/twilio/sms"})
# A Twilio inbound form has about twenty fields; these bounds only stop abuse of the helper.
MAX_SIGNED_FIELDS: Final = 100
MAX_SIGNED_VALUE_LENGTH: Final = 5000


@dataclass(frozen=True)
class ChatCredentials:
    """The sandbox credentials the chat panes post with; None leaves a pane switched off."""

    public_url: str
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    whatsapp_number: str | None = None  # ours, as Twilio writes it: whatsapp:+2547…
    telegram_secret_token: str | None = None


# The page loads nothing from other origins and talks only to this server.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def chat_credentials(settings: Settings) -> ChatCredentials:
    """Collect the sandbox credentials the chat panes post with."""
    twilio = settings.twilio_credentials
    telegram = settings.telegram_credentials
    return ChatCredentials(
        public_url=settings.public_url,
        twilio_account_sid=twilio[0] if twilio else None,
        twilio_auth_token=twilio[1] if twilio else None,
        whatsapp_number=settings.whatsapp_from,
        telegram_secret_token=telegram[1] if telegram else None,
    )


def add_simulator_routes(
    app: web.Application, *, service_code: str, chats: ChatCredentials | None = None
) -> None:
    """Register the simulator page, its static files and the chat panes' helpers on `app`."""
    page = render_page(service_code)
    assets = {name: (SIMULATOR_DIR / name).read_bytes() for name in STATIC_FILES}

    async def simulator_page(request: web.Request) -> web.Response:
        return web.Response(
            text=page, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS
        )

    async def static_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in assets:
            raise web.HTTPNotFound(text=f"simulator file {name!r} not found")
        return web.Response(
            body=assets[name],
            content_type=STATIC_FILES[name],
            charset="utf-8",
            headers=SECURITY_HEADERS,
        )

    app.router.add_get("/simulator", simulator_page)
    app.router.add_get("/simulator/static/{name}", static_file)
    helpers = _ChatHelpers(chats or ChatCredentials(public_url=""))
    app.router.add_get("/simulator/chats", helpers.describe)
    app.router.add_post("/sandbox/twilio/sign", helpers.sign)


class _ChatHelpers:
    """The chat panes' sandbox-only helpers: their settings and Twilio request signing."""

    def __init__(self, chats: ChatCredentials) -> None:
        self._chats = chats
        token = chats.twilio_auth_token
        self._validator = RequestValidator(token) if token and chats.twilio_account_sid else None

    async def describe(self, request: web.Request) -> web.Response:
        chats = self._chats
        whatsapp = None
        if self._validator is not None and chats.whatsapp_number:
            whatsapp = {"account_sid": chats.twilio_account_sid, "to": chats.whatsapp_number}
        telegram = None
        if chats.telegram_secret_token:
            telegram = {"secret_token": chats.telegram_secret_token}
        return web.json_response(
            {"whatsapp": whatsapp, "telegram": telegram}, headers={"Cache-Control": "no-store"}
        )

    async def sign(self, request: web.Request) -> web.Response:
        if self._validator is None:
            return web.json_response(
                {"error": "Twilio is not configured in this sandbox"}, status=404
            )
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _invalid("body", "not valid JSON")
        if not isinstance(body, dict):
            return _invalid("body", "expected a JSON object")
        path = body.get("path")
        if path not in SIGNABLE_PATHS:
            known = ", ".join(sorted(SIGNABLE_PATHS))
            return _invalid("path", f"expected one of {known}, got {str(path)[:80]!r}")
        params = body.get("params")
        problem = _form_problem(params)
        if problem is not None:
            return _invalid("params", problem)
        signature = self._validator.compute_signature(self._chats.public_url + path, params)
        return web.json_response({"signature": signature}, headers={"Cache-Control": "no-store"})


def _form_problem(params: Any) -> str | None:
    """Return why `params` is not a form of string fields, or None when it is one."""
    if not isinstance(params, dict):
        return "expected an object of form fields"
    if len(params) > MAX_SIGNED_FIELDS:
        return f"expected at most {MAX_SIGNED_FIELDS} fields, got {len(params)}"
    for name, value in params.items():
        if not isinstance(value, str):
            return f"field {name[:40]!r} is not a string"
        if len(value) > MAX_SIGNED_VALUE_LENGTH:
            return f"field {name[:40]!r} is longer than {MAX_SIGNED_VALUE_LENGTH} characters"
    return None


def _invalid(field: str, reason: str) -> web.Response:
    return web.json_response(
        {"error": f"invalid field '{field}': {reason}", "field": field}, status=400
    )


def render_page(service_code: str) -> str:
    """Return the page's HTML with `service_code` escaped for text and attribute values."""
    template = (SIMULATOR_DIR / "index.html").read_text(encoding="utf-8")
    if SERVICE_CODE_PLACEHOLDER not in template:
        raise RuntimeError(
            f"simulator template index.html is missing the placeholder {SERVICE_CODE_PLACEHOLDER}"
        )
    return template.replace(SERVICE_CODE_PLACEHOLDER, html.escape(service_code, quote=True))
