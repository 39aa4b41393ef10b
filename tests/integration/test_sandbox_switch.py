"""Sandbox routes exist only in sandbox mode; slots are kept ahead at start-up."""

from __future__ import annotations

import asyncio
from datetime import datetime

from core.db.migrate import upgrade_to_head
from tests.integration.conftest import start_service


async def test_live_mode_has_no_sandbox_routes(sqlite_url, clock) -> None:
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_service(sqlite_url, clock, seed=False, sandbox=False)
    try:
        assert not running.services.settings.sandbox_on
        for path in ("/sandbox/messages", "/simulator"):
            response = await running.client.get(path)
            assert response.status == 404, path
        response = await running.client.post(
            "/sandbox/africastalking/version1/messaging", data={"username": "x"}
        )
        assert response.status == 404
    finally:
        await running.client.close()


async def test_sandbox_mode_has_sandbox_routes(sqlite_service) -> None:
    for path in ("/sandbox/messages", "/simulator"):
        response = await sqlite_service.client.get(path)
        assert response.status == 200, path


async def test_start_up_extends_slots(sqlite_url, clock) -> None:
    """A restart a week after seeding still offers the full booking horizon."""
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    first = await start_service(sqlite_url, clock)
    # SQLite returns an aggregate as text: it has no declared column type to convert by.
    latest_before = datetime.fromisoformat(await first.scalar("SELECT MAX(starts_at) FROM slots"))
    await first.client.close()

    clock.advance(7 * 24 * 3600)
    second = await start_service(sqlite_url, clock, seed=False)
    try:
        for _ in range(50):
            latest_after = datetime.fromisoformat(
                await second.scalar("SELECT MAX(starts_at) FROM slots")
            )
            if latest_after > latest_before:
                break
            await asyncio.sleep(0.05)
        assert (latest_after - latest_before).days >= 6
    finally:
        await second.client.close()


async def test_ussd_allowlist_rejects_other_clients(sqlite_url, clock) -> None:
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_service(sqlite_url, clock, seed=False, at_allowed_networks="192.0.2.0/24")
    try:
        form = {
            "sessionId": "ATUid_x",
            "serviceCode": "*384*12345#",
            "phoneNumber": "+254700000001",
            "text": "",
        }
        response = await running.client.post("/webhooks/africastalking/ussd", data=form)
        assert response.status == 403
        response = await running.client.post("/webhooks/africastalking/ussd/events", data=form)
        assert response.status == 403
        assert await running.scalar("SELECT COUNT(*) FROM conversations") == 0
    finally:
        await running.client.close()


async def test_ussd_allowlist_admits_listed_client(sqlite_url, clock) -> None:
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_service(sqlite_url, clock, seed=False, at_allowed_networks="127.0.0.1")
    try:
        form = {
            "sessionId": "ATUid_x",
            "serviceCode": "*384*12345#",
            "phoneNumber": "+254700000001",
            "text": "",
        }
        response = await running.client.post("/webhooks/africastalking/ussd", data=form)
        assert response.status == 200
    finally:
        await running.client.close()
