"""Replies to one chat go out in the order they were written, even when the provider is slow.

A real dramatiq worker sends through the real `africastalking` SDK to the sandbox fake, whose
first send waits while the patient's next messages arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from core.clock import FrozenClock
from core.db.database import Sql
from core.db.migrate import upgrade_to_head
from tests.integration.conftest import RunningService
from tests.integration.sms_setup import SmsPhone, start_sms_service

PHONE = "+254700000181"
OTHER_PHONE = "+254700000182"
INPUTS = ("HELP", "MENU", "BOOK", "HELP", "MENU")
FIRST_SEND_DELAY_SECONDS = 2
# Below the SDK's 9 s read timeout, so the held send is never retried.
HOLD_SECONDS = 8


async def slow_down_first_send(service: RunningService, seconds: float) -> None:
    response = await service.client.post(
        "/sandbox/faults",
        json={"service": "africastalking.sms", "delay_seconds": seconds, "count": 1},
    )
    assert response.status == 204, await response.text()


async def release_held_send(service: RunningService) -> None:
    response = await service.client.delete("/sandbox/faults")
    assert response.status == 204, await response.text()


async def wait_until(condition: Callable[[], Awaitable[bool]], event: str) -> None:
    """Poll `condition` for at most HOLD_SECONDS."""
    for _ in range(HOLD_SECONDS * 20):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {HOLD_SECONDS} s waiting for {event}")


async def reply_ids_in_written_order(service: RunningService, phone: str) -> list[str]:
    async with service.services.database.unit_of_work() as uow:  # type: ignore[attr-defined]
        rows = await uow.all(
            Sql(
                "SELECT provider_message_id FROM outbox_messages"
                " WHERE recipient = :phone AND kind = 'reply' ORDER BY id"
            ),
            phone=phone,
        )
    return [row["provider_message_id"] for row in rows]


async def received_ids(service: RunningService, phone: str, *, wait: bool = True) -> list[str]:
    """Ids of the messages the fake accepted for `phone`; with `wait`, once the worker is idle."""
    if wait:
        messages: list[dict[str, Any]] = await service.sent_sms()
    else:
        messages = await (await service.client.get("/sandbox/messages")).json()
    return [m["provider_message_id"] for m in messages if m["to"] == phone]


async def send_quickly(service: RunningService, phone: str, inputs: tuple[str, ...]) -> None:
    """Post the inbound SMS one after another without waiting for any reply to go out."""
    sms = SmsPhone(service, phone)
    for text in inputs:
        assert await sms.send(text) == 200


async def check_replies_in_order(service: RunningService) -> None:
    await service.register(PHONE)
    await slow_down_first_send(service, FIRST_SEND_DELAY_SECONDS)

    await send_quickly(service, PHONE, INPUTS)

    received = await received_ids(service, PHONE)  # waits for the worker to be idle
    written = await reply_ids_in_written_order(service, PHONE)
    assert len(written) == len(INPUTS)
    assert None not in written, "a reply was not sent"
    # Reply numbers in the order the fake received them, 1 being the first written.
    assert [written.index(pid) + 1 for pid in received] == list(range(1, len(INPUTS) + 1))


@pytest.fixture
async def embedded_service(database_url: str, clock: FrozenClock) -> Any:
    running = await start_sms_service(database_url, clock)
    yield running
    await running.drain()
    await running.client.close()


async def test_replies_keep_order_embedded(embedded_service: RunningService) -> None:
    await check_replies_in_order(embedded_service)


async def test_replies_keep_order_on_redis(
    postgres_url: str, clock: FrozenClock, redis_broker: dict[str, str]
) -> None:
    await asyncio.to_thread(upgrade_to_head, postgres_url)
    service = await start_sms_service(postgres_url, clock, worker_threads=4, **redis_broker)
    try:
        await check_replies_in_order(service)
    finally:
        await service.stop()


async def test_other_chat_does_not_wait(embedded_service: RunningService) -> None:
    service = embedded_service
    await service.register(PHONE)
    await service.register(OTHER_PHONE)
    await slow_down_first_send(service, HOLD_SECONDS)

    async def first_send_held() -> bool:
        return service.store.waiting_delays() == 1

    async def other_chat_answered() -> bool:
        return bool(await received_ids(service, OTHER_PHONE, wait=False))

    await send_quickly(service, PHONE, ("HELP",))
    await wait_until(first_send_held, "the fake holding the first reply")
    await send_quickly(service, OTHER_PHONE, ("HELP",))
    # The other chat's reply gets through while the first chat's is still held.
    await wait_until(other_chat_answered, "the other chat's reply")
    await release_held_send(service)

    messages = await service.sent_sms()
    assert [m["to"] for m in messages] == [OTHER_PHONE, PHONE]
