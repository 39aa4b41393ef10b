"""The parts that the bare baseline servers of the benchmarks share: an app with a health check,
and `serve`, which runs it the way `myafya serve` runs aiohttp (uvloop when installed, no access
log). A bare server therefore differs from ours only by the product's own work.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(posts: Mapping[str, Handler]) -> web.Application:
    """Return an app with `GET /healthz` and one POST route per path in `posts`."""
    app = web.Application()
    for path, handler in posts.items():
        app.router.add_post(path, handler)
    app.router.add_get("/healthz", healthz)
    return app


def serve(app: web.Application, description: str) -> None:
    """Serve `app` on 127.0.0.1 at the port given by `--port` until interrupted."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    args = parser.parse_args()
    loop = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None, loop=loop)
