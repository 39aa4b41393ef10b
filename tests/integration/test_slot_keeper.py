"""The slot keeper's start-up run logs its result, not a failure."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from myafya.app import keep_slots_ahead


async def test_slot_keeper_logs_success(sqlite_service, caplog: pytest.LogCaptureFixture) -> None:
    services = sqlite_service.services
    caplog.set_level(logging.INFO, logger="myafya.app")

    keeper = asyncio.get_running_loop().create_task(
        keep_slots_ahead(services.database, services.clock, services.settings)
    )
    for _ in range(100):
        if any(record.getMessage() == "slots extended" for record in caplog.records):
            break
        await asyncio.sleep(0.05)
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper

    messages = [record.getMessage() for record in caplog.records if record.name == "myafya.app"]
    assert "slots extended" in messages
    assert not any(message.startswith("extending slots failed") for message in messages)
