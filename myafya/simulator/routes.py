"""Routes of the USSD simulator page, registered only when the sandbox is on.

- `GET /simulator`: the page, with the configured service code filled in.
- `GET /simulator/static/{name}`: its script and style sheet.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Final

from aiohttp import web

SIMULATOR_DIR: Final = Path(__file__).parent
SERVICE_CODE_PLACEHOLDER: Final = "{{service_code}}"

# Only these files are served, so the Python sources next to them stay private.
STATIC_FILES: Final = {
    "simulator.js": "text/javascript",
    "simulator.css": "text/css",
}

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


def add_simulator_routes(app: web.Application, *, service_code: str) -> None:
    """Register the simulator page and its static files on `app`."""
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


def render_page(service_code: str) -> str:
    """Return the page's HTML with `service_code` escaped for text and attribute values."""
    template = (SIMULATOR_DIR / "index.html").read_text(encoding="utf-8")
    if SERVICE_CODE_PLACEHOLDER not in template:
        raise RuntimeError(
            f"simulator template index.html is missing the placeholder {SERVICE_CODE_PLACEHOLDER}"
        )
    return template.replace(SERVICE_CODE_PLACEHOLDER, html.escape(service_code, quote=True))
