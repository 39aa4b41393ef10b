"""The delivery pipeline on RabbitMQ, as `MYAFYA_BROKER_URL=amqp://…` configures it."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import service_unavailable
from tests.integration.conftest import start_service
from tests.integration.test_delivery_pipeline import phone, write_messages

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture
def rabbitmq_url() -> str:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            pass
    except OSError as exc:
        service_unavailable(f"RabbitMQ at 127.0.0.1:5672 is unreachable: {exc}")
    return RABBITMQ_URL


async def test_messages_go_out_through_rabbitmq(sqlite_url, clock, rabbitmq_url) -> None:
    import asyncio

    from core.db.migrate import upgrade_to_head

    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    service = await start_service(sqlite_url, clock, worker_threads=2, broker_url=rabbitmq_url)
    try:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        assert isinstance(service.services.jobs.broker, RabbitmqBroker)
        ids = await write_messages(service, 3)
        await service.advance(0)  # the scheduler hands the due rows to RabbitMQ
        messages = await service.sent_sms()
        assert sorted(m["to"] for m in messages) == [phone(i) for i in range(3)]
        assert len(ids) == 3
    finally:
        await service.stop()
