"""Content-type check for the webhooks that providers post as URL-encoded forms.

aiohttp's `request.post()` returns an empty form for a JSON or plain-text body, so without this
check such a request fails later with a misleading "field missing" error.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"


def unsupported_form_body(request: web.Request) -> web.Response | None:
    """Return a 415 response naming the expected content type when the request's body is not
    declared as a URL-encoded form, or None when it is. Reads only the headers."""
    if request.content_type == FORM_CONTENT_TYPE:
        return None
    return web.Response(
        status=415,
        text=(
            f"unsupported content type {request.content_type!r}: "
            f"the body must be {FORM_CONTENT_TYPE}"
        ),
        content_type="text/plain",
    )
