"""`myafya worker` processes on PostgreSQL and Redis: a worker killed mid-batch, and two workers
competing for the same rows. The SMS fake is the test's own service, reached over loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from core.clock import FrozenClock
from core.db.database import Sql
from core.db.migrate import upgrade_to_head
from core.notify.outbox import DueMessage, enqueue_message
from jobs.broker import enqueue_sends
from tests.integration.conftest import RunningService, start_service

pytestmark = pytest.mark.postgres

WAIT_SECONDS = 60


def phone(index: int) -> str:
    return f"+2547000001{index:02d}"


@pytest.fixture
def migrated_postgres_url(postgres_url: str) -> str:
    upgrade_to_head(postgres_url)
    return postgres_url


@pytest.fixture
async def service(
    migrated_postgres_url: str, redis_broker: dict[str, str]
) -> AsyncIterator[RunningService]:
    # The worker processes read the wall clock, so the service's clock starts there too.
    clock = FrozenClock(datetime.now(UTC))
    running = await start_service(
        migrated_postgres_url, clock, seed=False, quiet_hours="", **redis_broker
    )
    yield running
    await running.stop()


@pytest.fixture
def workers(service: RunningService, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def start_worker(
    service: RunningService,
    started: list[subprocess.Popen[bytes]],
    log_path: Path,
    *arguments: str,
) -> subprocess.Popen[bytes]:
    settings = service.services.settings
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MYAFYA_")}
    environment.update(
        {
            "MYAFYA_DATABASE_URL": settings.database_url,
            "MYAFYA_BROKER_URL": settings.broker_url or "",
            "MYAFYA_BROKER_NAMESPACE": settings.broker_namespace,
            "MYAFYA_SANDBOX": "true",
            "MYAFYA_PUBLIC_URL": f"http://127.0.0.1:{service.client.server.port}",
            "MYAFYA_AT_USERNAME": settings.at_username or "",
            "MYAFYA_AT_API_KEY": settings.at_api_key.get_secret_value(),
            "MYAFYA_LOG_LEVEL": "WARNING",
            # The wall clock may be at night in Nairobi, and these messages must not wait.
            "MYAFYA_QUIET_HOURS": "",
        }
    )
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "myafya", "worker", *arguments],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    started.append(process)
    return process


async def write_messages(service: RunningService, count: int, copies: int = 1) -> list[int]:
    ids = []
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        for copy in range(copies):
            for index in range(count):
                message_id = await enqueue_message(
                    uow,
                    dedupe_key=f"test:worker:{copy}:{index}",
                    patient_id=None,
                    recipient=phone(index),
                    channel="sms",
                    template="sms.reminder",
                    variables={},
                    language="en",
                    body=f"Test message {copy}",
                    now=service.clock.now(),
                    kind="reminder",
                )
                ids.append(message_id)
    return ids


async def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def statuses(service: RunningService) -> Counter[str]:
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        rows = await uow.all(Sql("SELECT status FROM outbox_messages"))
    return Counter(row["status"] for row in rows)


async def test_killed_worker_loses_nothing(
    service: RunningService, workers: list, tmp_path: Path
) -> None:
    ids = await write_messages(service, 20)
    await service.advance(0)  # hand all 20 to Redis

    # Lock three rows, so three of the worker's four threads wait in their claims of them: the
    # worker dies with those in flight, before they reach the SMS gateway, while the fourth
    # thread sends the rest.
    locked = ids[4:7]
    locker = await asyncpg.connect(service.services.settings.database_url)
    locks = locker.transaction()
    await locks.start()
    await locker.execute("SELECT id FROM outbox_messages WHERE id = ANY($1) FOR UPDATE", locked)

    first = start_worker(service, workers, tmp_path / "worker.log", "--threads", "4")
    await wait_for(lambda: _sent_count(service, 17), "the unlocked rows to be sent")

    async def claims_waiting() -> bool:
        waiting = await locker.fetchval(
            "SELECT COUNT(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return bool(waiting >= len(locked))

    await wait_for(claims_waiting, "every worker thread to wait on a locked row")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    await locks.rollback()
    await locker.close()
    assert await statuses(service) == Counter({"sent": 17, "queued": 3})

    start_worker(service, workers, tmp_path / "worker.log", "--threads", "4")
    # The jobs the dead worker had prefetched are gone with it; the scheduler hands those rows
    # over again once `requeue_after` (2 minutes) has passed.
    await service.advance(130)
    await wait_for(lambda: _sent_count(service, 20), "every message to be sent")
    await asyncio.sleep(1)  # room for a duplicate to show up
    sent = Counter(message.to for message in service.store.list())
    assert sent == Counter({phone(index): 1 for index in range(20)})
    assert await statuses(service) == Counter({"sent": 20})


async def test_two_workers_never_share_a_row(
    service: RunningService, workers: list, tmp_path: Path
) -> None:
    ids = await write_messages(service, 100, copies=2)
    # Every row also gets two extra jobs, so both workers try to claim the same rows.
    extra = [DueMessage(message_id, 0) for message_id in ids] * 2
    await asyncio.to_thread(enqueue_sends, service.services.jobs.broker, extra)

    # Both workers run a scheduler too, so their claims of due rows compete as well.
    for name in ("a", "b"):
        start_worker(service, workers, tmp_path / f"worker-{name}.log", "--threads", "4")
    await wait_for(lambda: _sent_count(service, 200), "every message to be sent")
    await asyncio.sleep(1)

    sent = Counter((message.to, message.text) for message in service.store.list())
    assert len(sent) == 200
    assert set(sent.values()) == {1}
    assert await statuses(service) == Counter({"sent": 200})


async def _sent_count(service: RunningService, expected: int) -> bool:
    return len(service.store.list()) >= expected
