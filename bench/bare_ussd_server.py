"""The baseline for bench/ussd.py: an aiohttp server that parses the USSD form and replies with a
constant `CON` screen.

It runs the way `myafya serve` runs aiohttp (uvloop when installed, no access log), so the
difference between the two is the product's own work: validation, the database and the dialog.

    python bench/bare_ussd_server.py --port 8091
"""

from __future__ import annotations

import argparse

from aiohttp import web

USSD_PATH = "/webhooks/africastalking/ussd"
REPLY = "CON MyAfya menu:\n1. Book a doctor\n2. My appointments\n3. Change language\n4. Help"


async def ussd_step(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {key: str(value) for key, value in form.items()}
    if "sessionId" not in fields or "text" not in fields:
        return web.Response(text="invalid request: sessionId or text missing", status=400)
    return web.Response(text=REPLY, content_type="text/plain")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post(USSD_PATH, ussd_step)
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
