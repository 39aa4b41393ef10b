"""The invalid-choice notice fits whole on every USSD list screen of the demo booking flow.

When the notice does not fit beside a page, the engine puts it in place of the screen's own text
and cuts it by words if it is still too long. The fullest pages of the demo data leave the notice
the least room, so every list screen from services to times is tried, page by page.
"""

from __future__ import annotations

import itertools

import pytest

from core.i18n import LANGUAGES, translate
from tests.integration.conftest import RunningService
from tests.integration.ussd_screens import options

PHONES = {"en": "+254700000171", "sw": "+254700000172"}
# Services, doctors, days and times: the lists below the home menu's booking entry.
LIST_DEPTH = 4
MORE = "98"
NAVIGATION_KEYS = ("0", "00", MORE)
# A number that no demo list offers and no navigation key uses.
NOT_ON_ANY_LIST = "90"

_sessions = itertools.count(1)


async def screen_after(service: RunningService, phone: str, answers: list[str]) -> str:
    status, screen = await service.ussd(f"ATUid_fit{next(_sessions)}", phone, "*".join(answers))
    assert status == 200, answers
    return screen


async def list_screens(
    service: RunningService, phone: str, answers: list[str], depth: int
) -> list[tuple[list[str], str]]:
    """Return every list screen reachable from `answers`, with the answers that reach it."""
    screen = await screen_after(service, phone, answers)
    found = [(answers, screen)]
    numbers = options(screen).values()
    if MORE in numbers:
        found += await list_screens(service, phone, [*answers, MORE], depth)
    if depth > 1:
        for number in numbers:
            if number not in NAVIGATION_KEYS:
                found += await list_screens(service, phone, [*answers, number], depth - 1)
    return found


@pytest.mark.parametrize("language", LANGUAGES)
async def test_notice_fits_every_list_screen(sqlite_service: RunningService, language: str) -> None:
    phone = PHONES[language]
    await sqlite_service.register(phone, language=language)
    notice = translate(language, "input.invalid_choice")

    screens = await list_screens(sqlite_service, phone, ["1"], LIST_DEPTH)
    fullest = max(len(screen) for _, screen in screens)
    assert fullest >= 175, "the demo data no longer fills a USSD screen; pick fuller lists"

    for answers, screen in screens:
        reprompt = await screen_after(sqlite_service, phone, [*answers, NOT_ON_ANY_LIST])
        assert reprompt.startswith(f"CON {notice}\n"), (answers, reprompt)
        assert options(reprompt) == options(screen), answers
