"""The baseline for bench/channels.py: an aiohttp server that parses each chat webhook's body
and replies as the provider expects, with no signature or secret check, database or dialog.

It runs the way `myafya serve` runs aiohttp (see bare_server.py), so the difference between the
two is the product's own work.

    python bench/bare_channel_server.py --port 8092
"""

from __future__ import annotations

import json

from aiohttp import web
from bare_server import create_app, serve

WHATSAPP_PATH = "/webhooks/twilio/whatsapp"
TELEGRAM_PATH = "/webhooks/telegram"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


async def whatsapp_message(request: web.Request) -> web.Response:
    form = await request.post()
    if "MessageSid" not in form or "From" not in form:
        return web.Response(text="invalid request: MessageSid or From missing", status=400)
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


async def telegram_update(request: web.Request) -> web.Response:
    try:
        update = json.loads(await request.read())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return web.Response(text="invalid request: body is not JSON", status=400)
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        return web.Response(text="invalid request: update_id missing", status=400)
    if not any(isinstance(update.get(field), dict) for field in ("message", "callback_query")):
        return web.Response(text="invalid request: message or callback_query missing", status=400)
    return web.Response(status=200)


if __name__ == "__main__":
    app = create_app({WHATSAPP_PATH: whatsapp_message, TELEGRAM_PATH: telegram_update})
    serve(app, __doc__.splitlines()[0])
