"""python-telegram-bot's networking backend on an aiohttp client session.

`Bot` sends every Bot API call through a `telegram.request.BaseRequest`, and its default one
uses httpx. When the web process still made two such calls per button press
(answerCallbackQuery and editMessageReplyMarkup), httpx and httpcore took about as much of the
event loop as handling the updates themselves in a profile of bench/channels.py.
aiohttp is already the service's web server, and its client costs a fraction of that per call
(bench/README.md). Errors map to the exceptions `Bot` expects from any backend: `TimedOut`
for a timeout and `NetworkError` for a failed connection.
"""

from __future__ import annotations

from typing import Final

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

# The type of `BaseRequest.DEFAULT_NONE`: Bot passes such a placeholder for a timeout that
# the caller left out, and the backend's own default applies.
_Default: Final = type(BaseRequest.DEFAULT_NONE)


class AiohttpRequest(BaseRequest):
    """One aiohttp session with at most `connection_pool_size` connections.

    `connect_timeout` bounds the wait for a pooled connection and its set-up, `read_timeout`
    each read of the response. aiohttp has no write timeout, so a stalled upload ends at the
    read timeout of the response.
    """

    __slots__ = ("_connect_timeout", "_pool_size", "_read_timeout", "_session")

    def __init__(
        self, *, connection_pool_size: int, connect_timeout: float, read_timeout: float
    ) -> None:
        self._pool_size = connection_pool_size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: float | object | None = BaseRequest.DEFAULT_NONE,
        write_timeout: float | object | None = BaseRequest.DEFAULT_NONE,
        connect_timeout: float | object | None = BaseRequest.DEFAULT_NONE,
        pool_timeout: float | object | None = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        read = self._read_timeout if isinstance(read_timeout, _Default) else read_timeout
        connect = (
            self._connect_timeout if isinstance(connect_timeout, _Default) else connect_timeout
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect,  # type: ignore[arg-type]
            sock_read=read,  # type: ignore[arg-type]
        )
        try:
            async with self._session.request(
                method, url, data=_body(request_data), timeout=timeout
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc


def _body(request_data: RequestData | None) -> aiohttp.FormData | dict[str, str] | None:
    """Form fields as Bot does with httpx: each parameter JSON-encoded, files as multipart."""
    if request_data is None:
        return None
    if not request_data.contains_files:
        return request_data.json_parameters
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, content_type) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=content_type)
    return form
