"""A running service on a real database, with demo data seeded under the frozen clock."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from dramatiq import Worker

from core.booking.demo import seed_demo
from core.clock import FrozenClock
from core.identity.patients import get_or_create_patient, register_patient
from jobs.broker import QUEUE_NAME
from myafya.app import SERVICES, Services, create_app
from myafya.settings import Settings
from sandbox.app import TWILIO_FAKE
from sandbox.store import SandboxStore
from tests.conftest import service_unavailable

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
    # A dramatiq worker the test runs on a real broker; the embedded one belongs to the app.
    worker: Worker | None = None

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

    async def drain(self) -> None:
        """Wait until every send job handed to the broker so far has run."""
        await self.services.dispatcher.drain()
        if self.worker is not None:
            await asyncio.to_thread(self._join_worker)

    def _join_worker(self) -> None:
        assert self.worker is not None
        self.worker.broker.join(QUEUE_NAME, timeout=60_000)
        self.worker.join()

    async def sent_sms(self) -> list[dict[str, Any]]:
        await self.drain()
        response = await self.client.get("/sandbox/messages")
        return list(await response.json())

    async def advance(self, seconds: float) -> dict[str, Any]:
        """Move the clock through `POST /sandbox/clock`, then wait for the jobs it queued."""
        response = await self.client.post("/sandbox/clock", json={"advance_seconds": seconds})
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        await self.drain()
        return body

    async def close(self) -> None:
        """Stop the app once nothing is sending to it or to its sandbox fakes.

        The worker threads and the Twilio fake's status callbacks connect to this server. A
        connection accepted just as the server stops stays open (aiohttp 3.14 closes only the
        connections it already tracks), and its transport's ResourceWarning then fails whichever
        test the garbage collector happens to run in.
        """
        await self.drain()
        twilio_fake = self.client.app.get(TWILIO_FAKE) if self.client.app else None
        if twilio_fake is not None:
            await twilio_fake.settle()
            await self.drain()  # a failed status callback can queue a fallback send
            await twilio_fake.settle()
        await self.client.close()

    async def stop(self) -> None:
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)
        await self.client.close()


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
    database_url: str,
    clock: FrozenClock,
    seed: bool = True,
    worker_threads: int = 0,
    **overrides: Any,
) -> RunningService:
    """Start the app; with a `broker_url` override and `worker_threads`, also a dramatiq worker
    in this process that consumes the app's broker."""
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
    worker = None
    if worker_threads:
        assert services.jobs is not None
        worker = Worker(services.jobs.broker, worker_threads=worker_threads, worker_timeout=100)
        worker.start()
    return RunningService(client, services, store, clock, worker)


@pytest.fixture
async def service(database_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    running = await start_service(database_url, clock)
    yield running
    await running.close()


@pytest.fixture
async def sqlite_service(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    """The service on SQLite only, for tests whose subject does not depend on the database."""
    import asyncio

    from core.db.migrate import upgrade_to_head

    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_service(sqlite_url, clock)
    yield running
    await running.close()


@pytest.fixture
def redis_broker() -> Iterator[dict[str, str]]:
    """Settings overrides for the local Redis with a key namespace of this test's own."""
    import redis

    url = "redis://127.0.0.1:6379/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        client.close()
        service_unavailable(f"Redis at {url} is unreachable: {exc}")
    namespace = f"myafya-test-{secrets.token_hex(4)}"
    yield {"broker_url": url, "broker_namespace": namespace}
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)
    client.close()
