"""Notices fit whole on USSD list screens, and the first screen's notice is in both languages.

When a notice does not fit beside a page, the engine puts it in place of the screen's own text,
and when it still does not fit, the page shows fewer choices. The fullest pages of the demo data
leave the notice the least room, so every list screen from services to times is tried, page by
page.
"""

from __future__ import annotations

import itertools

import pytest

from bot.engine.gsm7 import is_gsm7, septets
from core.i18n import LANGUAGES, translate
from tests.integration.conftest import RunningService
from tests.integration.ussd_screens import first_option, number_of, options

PHONES = {"en": "+254700000171", "sw": "+254700000172"}
# Services, doctors, days and times: the lists below the home menu's booking entry.
LIST_DEPTH = 4
MORE = "98"
NAVIGATION_KEYS = ("0", "00", MORE)
# A number that no demo list offers and no navigation key uses.
NOT_ON_ANY_LIST = "90"
USSD_MAX_SEPTETS = 182

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


def choices(screen: str) -> list[str]:
    """Return the labels of a screen's choices, without the navigation lines."""
    return [label for label, number in options(screen).items() if number not in NAVIGATION_KEYS]


async def every_page(
    service: RunningService, session: str, phone: str, answers: list[str]
) -> tuple[list[str], list[str]]:
    """Follow "98" from the screen after `answers`, and return each page and every choice."""
    pages = []
    labels: list[str] = []
    while True:
        _, screen = await service.ussd(session, phone, "*".join(answers))
        pages.append(screen)
        labels += choices(screen)
        if MORE not in options(screen).values():
            return pages, labels
        answers = [*answers, MORE]


async def walk_to_times(
    service: RunningService, session: str, phone: str, doctor: str
) -> list[str]:
    """Return the answers that reach `doctor`'s times on the first day, sent in `session`."""
    answers = ["1"]
    for pick in (first_option, lambda screen: number_of(screen, doctor), first_option):
        _, screen = await service.ussd(session, phone, "*".join(answers))
        answers.append(pick(screen))
    return answers


async def confirm_first_time(
    service: RunningService, session: str, phone: str, doctor: str
) -> tuple[list[str], str]:
    """Confirm `doctor`'s first free time on the first day, and return the answers and reply."""
    answers = [*await walk_to_times(service, session, phone, doctor), "1"]
    await service.ussd(session, phone, "*".join(answers))  # the confirm screen
    answers.append("1")  # yes
    _, reply = await service.ussd(session, phone, "*".join(answers))
    return answers, reply


@pytest.mark.parametrize("language", LANGUAGES)
async def test_long_notice_shortens_page(sqlite_service: RunningService, language: str) -> None:
    """Two doctors offer the same first time, so confirming the second clashes with the first."""
    phone = {"en": "+254700000173", "sw": "+254700000174"}[language]
    await sqlite_service.register(phone, language=language)
    notice = translate(language, "booking.already_booked_then")
    _, booked = await confirm_first_time(sqlite_service, "ATUid_clash1", phone, "Kamau")
    assert booked.startswith("END "), booked
    time_list = await walk_to_times(sqlite_service, "ATUid_clash2", phone, "Njeri")
    _, listed = await every_page(sqlite_service, "ATUid_clash2", phone, time_list)

    answers, screen = await confirm_first_time(sqlite_service, "ATUid_clash3", phone, "Njeri")

    assert screen.startswith(f"CON {notice}\n"), screen
    assert septets(screen) <= USSD_MAX_SEPTETS, screen
    assert is_gsm7(screen), screen
    assert "..." not in screen, screen
    assert choices(screen), screen
    assert number_of(screen, translate(language, "nav.more")) == MORE

    # The list leaves out the first time, the patient's own, and the shorter page moves the
    # rest of the list to the next pages, so "98" skips no other time.
    pages, paged = await every_page(sqlite_service, "ATUid_clash3", phone, answers)
    assert paged == listed[1:]
    for page in pages:
        assert septets(page) <= USSD_MAX_SEPTETS, page

    # Back to the first page shows the shortened page again, without the notice.
    turns = len(pages) - 1
    back_answers = [*answers, *[MORE] * turns, *["0"] * turns]
    _, back = await sqlite_service.ussd("ATUid_clash3", phone, "*".join(back_answers))
    assert choices(back) == choices(screen)
    assert not back.startswith(f"CON {notice}"), back


async def test_first_screen_notice_is_bilingual(sqlite_service: RunningService) -> None:
    phone = "+254700000175"
    _, welcome = await sqlite_service.ussd("ATUid_welcome", phone, "")
    welcome_text = welcome.removeprefix("CON ")
    english = translate("en", "input.invalid_choice")
    kiswahili = translate("sw", "input.invalid_choice")

    for answers in ("7", "7*7", "7*7*98"):
        _, screen = await sqlite_service.ussd("ATUid_welcome", phone, answers)

        notice, _, rest = screen.removeprefix("CON ").partition("\n" + welcome_text[:20])
        assert rest, screen  # the welcome follows the notice
        assert english in notice, screen
        assert kiswahili in notice, screen
        # The notice lists the languages in the order the welcome below it does.
        english_first = welcome_text.startswith("Welcome")
        assert (notice.index(english) < notice.index(kiswahili)) == english_first, screen
        assert options(screen) == options(welcome), screen
        assert septets(screen) <= USSD_MAX_SEPTETS, screen
