"""A running service on a real database, with demo data seeded under the frozen clock."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from core.booking.demo import seed_demo
from core.clock import FrozenClock
from core.identity.patients import get_or_create_patient, register_patient
from myafya.app import SERVICES, Services, create_app
from myafya.settings import Settings
from sandbox.store import SandboxStore

SERVICE_CODE = "*384*12345#"
DEMO_PASSWORD = "demo-password-for-tests"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningService:
    client: TestClient
    services: Services
    store: SandboxStore
    clock: FrozenClock

    async def ussd(self, session_id: str, phone: str, text: str, **extra: str) -> tuple[int, str]:
        form = {
            "sessionId": session_id,
            "serviceCode": SERVICE_CODE,
            "phoneNumber": phone,
            "networkCode": "63902",
            "text": text,
            **extra,
        }
        response = await self.client.post("/webhooks/africastalking/ussd", data=form)
        return response.status, await response.text()

    async def register(self, phone: str, name: str = "Test Patient", language: str = "en") -> int:
        async with self.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
            patient = await get_or_create_patient(uow, phone=phone, now=self.clock.now())
            await register_patient(
                uow,
                patient_id=patient.id,
                name=name,
                language=language,
                consented_at=self.clock.now(),
            )
        return patient.id

    async def scalar(self, sql: str, **params: Any) -> Any:
        from core.db.database import Sql

        async with self.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
            return await uow.scalar(Sql(sql), **params)

    async def sent_sms(self) -> list[dict[str, Any]]:
        await self.services.dispatcher.drain()
        response = await self.client.get("/sandbox/messages")
        return list(await response.json())


def service_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "sandbox": True,
        "ussd_service_code": SERVICE_CODE,
        "at_username": "testclinic",
        "at_api_key": "test-api-key-not-secret",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def start_service(
    database_url: str, clock: FrozenClock, seed: bool = True, **overrides: Any
) -> RunningService:
    port = free_port()
    settings = service_settings(database_url, **overrides)
    store = SandboxStore()
    app = create_app(
        settings, self_url=f"http://127.0.0.1:{port}", clock=clock, sandbox_store=store
    )
    client = TestClient(TestServer(app, host="127.0.0.1", port=port))
    await client.start_server()
    services = app[SERVICES]
    if seed:
        async with services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
            await seed_demo(
                uow, now=clock.now(), zone=settings.zone, password_for=lambda _: DEMO_PASSWORD
            )
    return RunningService(client, services, store, clock)


@pytest.fixture
async def service(database_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    running = await start_service(database_url, clock)
    yield running
    await running.client.close()


@pytest.fixture
async def sqlite_service(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    """The service on SQLite only, for tests whose subject does not depend on the database."""
    import asyncio

    from core.db.migrate import upgrade_to_head

    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_service(sqlite_url, clock)
    yield running
    await running.client.close()
