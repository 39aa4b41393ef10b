"""MYAFYA_SANDBOX_URL: the provider SDKs call the fakes of another loopback server."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from sandbox.app import add_sandbox_routes
from sandbox.store import SandboxStore
from tests.integration.conftest import start_service
from tests.integration.ussd_screens import first_option

PHONE = "+254700000191"


async def test_confirmation_goes_to_configured_fakes(
    sqlite_url: str, clock: Any, aiohttp_server: Any
) -> None:
    from core.db.migrate import upgrade_to_head

    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    other_store = SandboxStore()
    fakes = web.Application()
    add_sandbox_routes(
        fakes,
        store=other_store,
        clock=clock,
        at_username="testclinic",
        at_api_key="test-api-key-not-secret",
        at_sender_ids=frozenset(),
    )
    fakes_server = await aiohttp_server(fakes, host="127.0.0.1")
    service = await start_service(
        sqlite_url, clock, sandbox_url=f"http://127.0.0.1:{fakes_server.port}"
    )
    try:
        await service.register(PHONE)
        text = "1"
        for _ in range(5):  # service, doctor, day, time, confirm
            _, screen = await service.ussd("ATUid_fakes", PHONE, text)
            text += "*" + first_option(screen)
        _, screen = await service.ussd("ATUid_fakes", PHONE, text)
        assert screen.startswith("END Booked!")
        await service.drain()
    finally:
        await service.close()

    assert [message.to for message in other_store.list()] == [PHONE]
    assert service.store.list() == []
