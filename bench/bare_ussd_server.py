"""The baseline for bench/ussd.py: an aiohttp server that parses the USSD form and replies with a
constant `CON` screen.

It runs the way `myafya serve` runs aiohttp (see bare_server.py), so the difference between the
two is the product's own work: validation, the database and the dialog.

    python bench/bare_ussd_server.py --port 8091
"""

from __future__ import annotations

from aiohttp import web
from bare_server import create_app, serve

USSD_PATH = "/webhooks/africastalking/ussd"
REPLY = "CON MyAfya menu:\n1. Book a doctor\n2. My appointments\n3. Change language\n4. Help"


async def ussd_step(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {key: str(value) for key, value in form.items()}
    if "sessionId" not in fields or "text" not in fields:
        return web.Response(text="invalid request: sessionId or text missing", status=400)
    return web.Response(text=REPLY, content_type="text/plain")


if __name__ == "__main__":
    serve(create_app({USSD_PATH: ussd_step}), __doc__.splitlines()[0])
