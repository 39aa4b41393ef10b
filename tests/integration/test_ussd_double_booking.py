"""Field case B14 over USSD: many patients confirm the same slot at the same instant."""

from __future__ import annotations

import asyncio
import re

from tests.integration.ussd_screens import first_option

ATTEMPTS = 50


async def test_one_slot_fifty_confirmations(service) -> None:
    phones = [f"+2547000{index:05d}" for index in range(200, 200 + ATTEMPTS)]
    confirm_inputs = {}
    for phone in phones:
        await service.register(phone)
        text = "1"
        for _ in range(4):  # specialty, doctor, day, time
            _, screen = await service.ussd(f"ATUid_{phone[1:]}", phone, text)
            text += "*" + first_option(screen)
        _, screen = await service.ussd(f"ATUid_{phone[1:]}", phone, text)
        assert screen.startswith("CON Confirm appointment"), screen
        confirm_inputs[phone] = text + "*1"

    results = await asyncio.gather(
        *(service.ussd(f"ATUid_{phone[1:]}", phone, confirm_inputs[phone]) for phone in phones)
    )

    assert all(status == 200 for status, _ in results)
    booked = [screen for _, screen in results if screen.startswith("END Booked!")]
    taken = [screen for _, screen in results if "that time has just been taken" in screen]
    assert len(booked) == 1
    assert len(taken) == ATTEMPTS - 1
    for screen in taken:
        offered = re.findall(r"^[123]\. .+ \d\d:\d\d$", screen, re.MULTILINE)
        assert len(offered) == 3, screen
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1

    # A patient who lost can book one of the times offered.
    loser = next(
        phone for (_, screen), phone in zip(results, phones, strict=True) if "taken" in screen
    )
    _, screen = await service.ussd(f"ATUid_{loser[1:]}", loser, confirm_inputs[loser] + "*1")
    assert screen.startswith("CON Confirm appointment")
    _, screen = await service.ussd(f"ATUid_{loser[1:]}", loser, confirm_inputs[loser] + "*1*1")
    assert screen.startswith("END Booked!")
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 2
