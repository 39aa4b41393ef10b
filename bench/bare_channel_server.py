"""The baseline for bench/channels.py: an aiohttp server that parses each channel webhook's body
and replies as the provider expects, with no signature check, database or dialog.

It runs the way `myafya serve` runs aiohttp (uvloop when installed, no access log), so the
difference between the two is the product's own work.

    python bench/bare_channel_server.py --port 8092
"""

from __future__ import annotations

import argparse

from aiohttp import web

WHATSAPP_PATH = "/webhooks/twilio/whatsapp"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


async def whatsapp_message(request: web.Request) -> web.Response:
    form = await request.post()
    if "MessageSid" not in form or "From" not in form:
        return web.Response(text="invalid request: MessageSid or From missing", status=400)
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post(WHATSAPP_PATH, whatsapp_message)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    args = parser.parse_args()
    loop = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        pass
    web.run_app(
        create_app(), host="127.0.0.1", port=args.port, print=None, access_log=None, loop=loop
    )


if __name__ == "__main__":
    main()
