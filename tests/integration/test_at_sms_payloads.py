"""Every captured Africa's Talking SMS callback as a table case: valid, wrong secret, missing
field and duplicate, each with what it wrote to the database.

Inbound SMS have more cases in test_sms_inbound; this file checks that each captured payload
goes through its webhook as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import pytest

from core.clock import FrozenClock
from core.db.migrate import upgrade_to_head
from tests.conftest import PAYLOADS
from tests.integration.conftest import RunningService
from tests.integration.sms_setup import AT_SECRET, start_sms_service

DELIVERY_PATH = "/webhooks/africastalking/sms/delivery"
INBOUND_PATH = "/webhooks/africastalking/sms"

# Each payload, the webhook it goes to, its required fields and the table a valid one writes to.
CASES = [
    ("at_sms_inbound.form", INBOUND_PATH, ("from", "to", "text", "date", "id"), "inbound_messages"),
    ("at_sms_delivery_report_success.form", DELIVERY_PATH, ("id", "status"), "delivery_reports"),
    ("at_sms_delivery_report_sent.form", DELIVERY_PATH, ("id", "status"), "delivery_reports"),
    ("at_sms_delivery_report_failed.form", DELIVERY_PATH, ("id", "status"), "delivery_reports"),
    (
        "at_sms_delivery_report_rejected_blacklist.form",
        DELIVERY_PATH,
        ("id", "status"),
        "delivery_reports",
    ),
]


@pytest.fixture
async def sms_service(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_sms_service(sqlite_url, clock)
    yield running
    await running.client.close()


def payload(name: str) -> dict[str, str]:
    return dict(parse_qsl((PAYLOADS / name).read_text().strip(), keep_blank_values=True))


async def count(service: RunningService, table: str) -> int:
    return int(await service.scalar(f"SELECT COUNT(*) FROM {table}"))


@pytest.mark.parametrize(("name", "path", "required", "table"), CASES)
async def test_payload_table(
    sms_service: RunningService, name: str, path: str, required: tuple[str, ...], table: str
) -> None:
    form = payload(name)

    wrong = await sms_service.client.post(f"{path}/wrong-secret", data=form)
    assert wrong.status == 403
    assert await count(sms_service, table) == 0

    for field in required:
        incomplete = {key: value for key, value in form.items() if key != field}
        response = await sms_service.client.post(f"{path}/{AT_SECRET}", data=incomplete)
        assert response.status == 400, field
        assert field in await response.text()
    assert await count(sms_service, table) == 0

    first = await sms_service.client.post(f"{path}/{AT_SECRET}", data=form)
    again = await sms_service.client.post(f"{path}/{AT_SECRET}", data=form)
    assert first.status == 200
    assert again.status == 200
    assert await count(sms_service, table) == 1
