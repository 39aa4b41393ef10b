"""python-telegram-bot's `Bot` over `AiohttpRequest`, against small Bot API servers on loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from aiohttp import web
from telegram import Bot
from telegram.error import BadRequest, NetworkError, TimedOut

from bot.channels.telegram.transport import AiohttpRequest

TOKEN = "123456:bench-and-test-token"
ME = {"id": 123456, "is_bot": True, "first_name": "MyAfya test", "username": "myafya_test_bot"}


def _bot(base_url: str, *, read_timeout: float = 5.0) -> Bot:
    request = AiohttpRequest(connection_pool_size=2, connect_timeout=2.0, read_timeout=read_timeout)
    return Bot(TOKEN, base_url=f"{base_url}/bot", request=request, get_updates_request=request)


async def _serve(aiohttp_server: Any, handler: Any) -> str:
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", handler)
    server = await aiohttp_server(app, host="127.0.0.1")
    return f"http://127.0.0.1:{server.port}"


async def test_form_fields_and_result(aiohttp_server: Any) -> None:
    received: list[tuple[str, dict[str, str], str]] = []

    async def handler(request: web.Request) -> web.Response:
        form = await request.post()
        received.append(
            (
                request.match_info["method"],
                {k: str(v) for k, v in form.items()},
                request.content_type,
            )
        )
        if request.match_info["method"] == "getMe":
            return web.json_response({"ok": True, "result": ME})
        return web.json_response({"ok": True, "result": True})

    bot = _bot(await _serve(aiohttp_server, handler))
    async with bot:
        answered = await bot.answer_callback_query("query-1", text="Menu expired")

    assert answered is True
    assert [method for method, _, _ in received] == ["getMe", "answerCallbackQuery"]
    _, fields, content_type = received[1]
    assert content_type == "application/x-www-form-urlencoded"
    assert fields == {"callback_query_id": "query-1", "text": "Menu expired"}


async def test_files_go_as_multipart(aiohttp_server: Any) -> None:
    received: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.Response:
        if request.match_info["method"] == "getMe":
            return web.json_response({"ok": True, "result": ME})
        form = await request.post()
        received["content_type"] = request.content_type
        received["chat_id"] = form["chat_id"]
        upload = form["document"]
        assert isinstance(upload, web.FileField)
        received["filename"] = upload.filename
        received["content"] = upload.file.read()
        message = {
            "message_id": 7,
            "date": 1_700_000_000,
            "chat": {"id": 42, "type": "private"},
        }
        return web.json_response({"ok": True, "result": message})

    bot = _bot(await _serve(aiohttp_server, handler))
    async with bot:
        message = await bot.send_document(42, document=b"fake lab report", filename="report.txt")

    assert message.message_id == 7
    assert received["content_type"] == "multipart/form-data"
    assert received["chat_id"] == "42"
    assert received["filename"] == "report.txt"
    assert received["content"] == b"fake lab report"


async def test_api_error_raises_bad_request(aiohttp_server: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.match_info["method"] == "getMe":
            return web.json_response({"ok": True, "result": ME})
        return web.json_response(
            {"ok": False, "error_code": 400, "description": "Bad Request: query is too old"},
            status=400,
        )

    bot = _bot(await _serve(aiohttp_server, handler))
    async with bot:
        with pytest.raises(BadRequest, match=r"(?i)query is too old"):
            await bot.answer_callback_query("query-2")


async def test_slow_answer_raises_timed_out(aiohttp_server: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.match_info["method"] == "getMe":
            return web.json_response({"ok": True, "result": ME})
        await asyncio.sleep(2)
        return web.json_response({"ok": True, "result": True})

    bot = _bot(await _serve(aiohttp_server, handler), read_timeout=0.2)
    async with bot:
        with pytest.raises(TimedOut):
            await bot.answer_callback_query("query-3")


async def test_refused_connection_raises_network_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now, so the connection is refused.
    bot = _bot(f"http://127.0.0.1:{port}")
    request = bot.request
    await request.initialize()
    try:
        with pytest.raises(NetworkError, match=r"aiohttp\.ClientConnectorError"):
            await bot.get_me()
    finally:
        await request.shutdown()


async def test_request_before_initialize_raises() -> None:
    request = AiohttpRequest(connection_pool_size=1, connect_timeout=1.0, read_timeout=1.0)
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1:9/bot/getMe", "POST")
