"""Field cases for USSD input handling: whole-session text, back and home keys, paging, errors."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import parse_qsl

import pytest

from bot.engine.gsm7 import is_gsm7, septets
from core.db.database import Sql
from core.i18n import translate
from tests.conftest import PAYLOADS
from tests.integration.conftest import start_service
from tests.integration.ussd_screens import first_option, number_of, options

PHONE = "+254700000101"


async def screens_for(service, session: str, inputs: list[str]) -> list[str]:
    result = []
    for text in inputs:
        status, screen = await service.ussd(session, PHONE, text)
        assert status == 200
        result.append(screen)
    return result


# --- B01: the whole session's input arrives in `text` ----------------------------------------


async def test_b01_cumulative_text(service) -> None:
    await service.register(PHONE)
    home, specialties, doctors, days = await screens_for(
        service, "ATUid_test_0001", ["", "1", "1*2", "1*2*1"]
    )
    assert "Book a doctor" in home
    assert "Choose a service" in specialties
    # "1*2" is the second service's doctor list, not main-menu option 2 (My appointments).
    assert "Choose a doctor" in doctors
    assert "Wanjiru" in doctors
    assert "choose a day" in days

    # Rebuilding from `text` in a fresh session gives the same screens as the stored session.
    for index, (text, expected) in enumerate([("1*2", doctors), ("1*2*1", days)]):
        _, rebuilt = await service.ussd(f"ATUid_rebuild_{index}", PHONE, text)
        assert rebuilt == expected

    _, control = await service.ussd("ATUid_control", PHONE, "2")
    assert "You have no upcoming appointments" in control


# --- B02: 0 = back, 00 = home, over replayed input -------------------------------------------


@pytest.mark.parametrize(
    ("with_navigation", "same_as"),
    [("1*2*0*3", "1*3"), ("1*2*0*0", ""), ("1*0*1*2", "1*2")],
)
async def test_b02_back_and_home(service, with_navigation: str, same_as: str) -> None:
    await service.register(PHONE)
    _, navigated = await service.ussd("ATUid_nav", PHONE, with_navigation)
    _, direct = await service.ussd("ATUid_direct", PHONE, same_as)
    assert navigated == direct


async def test_b02_back_on_home_shows_home(service) -> None:
    await service.register(PHONE)
    _, home = await service.ussd("ATUid_h1", PHONE, "")
    _, again = await service.ussd("ATUid_h1", PHONE, "0")
    assert again == home


async def test_b02_payload_session(service) -> None:
    """The captured back/home session: 1*2*0*3*00 is the main menu, *2 then My appointments."""
    await service.register("+254700000002")
    replies = []
    for step in range(1, 8):
        form = dict(
            parse_qsl(
                (PAYLOADS / f"at_ussd_back_step{step}.form").read_text(), keep_blank_values=True
            )
        )
        response = await service.client.post("/webhooks/africastalking/ussd", data=form)
        assert response.status == 200
        replies.append(await response.text())
    assert replies[3] == replies[1]  # 1*2*0 is back at the service list
    assert "Book a doctor" in replies[5]  # 1*2*0*3*00 is home
    assert "You have no upcoming appointments" in replies[6]


# --- B03: a list longer than one screen ------------------------------------------------------

INSERT_DOCTOR = Sql(
    "INSERT INTO doctors (clinic_id, specialty_id, name, fee_kes, slot_minutes, active) "
    "VALUES (1, :specialty_id, :name, 1200, 30, true)"
)


async def test_b03_long_doctor_list_pages(service) -> None:
    await service.register(PHONE)
    specialty_id = await service.scalar("SELECT id FROM specialties WHERE code = 'paediatrics'")
    async with service.services.database.unit_of_work() as uow:
        for index in range(11):
            await uow.execute(
                INSERT_DOCTOR,
                specialty_id=specialty_id,
                name=f"Dr. Wanjirũ Testname-Kariuki {index + 2} (Paediatrics)",
            )
    _, services = await service.ussd("ATUid_page", PHONE, "1")
    pick = number_of(services, "Children")
    seen: list[str] = []
    text = f"1*{pick}"
    for _ in range(12):
        _, screen = await service.ussd("ATUid_page", PHONE, text)
        assert septets(screen) <= 182, screen
        assert is_gsm7(screen)
        names = [label for label, n in options(screen).items() if n not in ("0", "00", "98")]
        for name in names:
            # No name is cut mid-word: each ends with its fee.
            assert name.endswith("KES 1,200") or name.endswith("KES 1,500"), name
            assert "Wanjiru" in name  # GSM-7 has no ũ, so USSD shows the nearest letter
        seen += names
        if "98. More" not in screen:
            break
        text += "*98"
    assert len(seen) == 12
    assert len(set(seen)) == 12

    # "…*98" shows page 2, and its numbers carry on from page 1.
    _, page_one = await service.ussd("ATUid_page2", PHONE, f"1*{pick}")
    _, page_two = await service.ussd("ATUid_page2", PHONE, f"1*{pick}*98")
    assert page_one != page_two
    last_on_one = max(int(n) for n in options(page_one).values() if n not in ("0", "00", "98"))
    assert min(int(n) for n in options(page_two).values() if n not in ("0", "00", "98")) == (
        last_on_one + 1
    )
    # The stored name keeps its ũ.
    assert (
        await service.scalar("SELECT COUNT(*) FROM doctors WHERE name LIKE :n", n="%Wanjirũ%") == 12
    )


# --- B04: every reply is CON or END, errors included, and slow work runs after the reply ------


async def test_b04_internal_error_answers_end_with_apology(service) -> None:
    await service.register(PHONE, language="sw")
    await service.ussd("ATUid_err", PHONE, "")
    async with service.services.database.unit_of_work() as uow:
        await uow.execute(
            Sql("UPDATE conversations SET data = 'not json' WHERE phone = :p"), p=PHONE
        )
    status, screen = await service.ussd("ATUid_err", PHONE, "1")
    assert status == 200
    assert screen == "END Samahani, kuna hitilafu. Tafadhali piga tena."


async def test_b04_error_for_unknown_patient_is_bilingual(service) -> None:
    await service.ussd("ATUid_err2", PHONE, "")
    async with service.services.database.unit_of_work() as uow:
        await uow.execute(Sql("UPDATE conversations SET data = '[' WHERE phone = :p"), p=PHONE)
    _, screen = await service.ussd("ATUid_err2", PHONE, "1")
    assert screen.startswith("END Sorry, something went wrong. Please dial again.\nSamahani")


async def test_b04_slow_sms_does_not_delay_reply(service) -> None:
    await service.register(PHONE)
    response = await service.client.post(
        "/sandbox/faults",
        # Below the SDK's 9 s read timeout, so the held send succeeds once let go.
        json={"service": "africastalking.sms", "delay_seconds": 8, "count": 1},
    )
    assert response.status == 204
    text = "1"
    for _ in range(5):
        _, screen = await service.ussd("ATUid_slow", PHONE, text)
        text += "*" + first_option(screen)
    _, screen = await service.ussd("ATUid_slow", PHONE, text)
    assert screen.startswith("END Booked!")
    # Had the reply waited for the send, the fake would have accepted the SMS by now.
    assert service.store.list() == []
    for _ in range(160):
        if service.store.waiting_delays() == 1:
            break
        await asyncio.sleep(0.05)
    assert service.store.waiting_delays() == 1, "the confirmation SMS never reached the fake"
    assert (await service.client.delete("/sandbox/faults")).status == 204
    messages = await service.sent_sms()  # waits for the background send
    assert len(messages) == 1


# --- B13: a timed-out conversation resumed after a restart -----------------------------------


async def test_b13_expired_conversation_restarts(database_url, clock) -> None:
    first = await start_service(database_url, clock)
    await first.register(PHONE)
    text = "1*1*1*1"  # service, doctor, day: the time list is on screen
    _, screen = await first.ussd("ATUid_b13", PHONE, text)
    assert "choose a time" in screen
    await first.client.close()  # the service restarts

    clock.advance(timedelta(minutes=30).total_seconds())
    second = await start_service(database_url, clock, seed=False)
    try:
        _, screen = await second.ussd("ATUid_b13", PHONE, text + "*2")
        assert screen.startswith("CON Your session timed out")
        assert "Book a doctor" in screen
        assert await second.scalar("SELECT COUNT(*) FROM appointments") == 0
        assert (
            await second.scalar(
                "SELECT flow || '.' || state FROM conversations WHERE phone = :p", p=PHONE
            )
            == "home.MENU"
        )
        assert (
            await second.scalar("SELECT expires_at FROM conversations WHERE phone = :p", p=PHONE)
            is None
        )
    finally:
        await second.client.close()


# --- other inputs ----------------------------------------------------------------------------


async def test_empty_answer_reprompts(service) -> None:
    await service.register("+254700000001")
    form = dict(
        parse_qsl((PAYLOADS / "at_ussd_edge_empty_input.form").read_text(), keep_blank_values=True)
    )
    response = await service.client.post("/webhooks/africastalking/ussd", data=form)
    screen = await response.text()
    assert screen.startswith("CON " + translate("en", "input.invalid_choice"))
    assert "Choose a service" in screen


async def test_unknown_choice_reprompts(service) -> None:
    await service.register(PHONE)
    _, screen = await service.ussd("ATUid_bad", PHONE, "7")
    assert screen.startswith("CON " + translate("en", "input.invalid_choice") + "\nMyAfya menu:")


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"serviceCode": "*384#", "phoneNumber": PHONE, "text": ""}, "sessionId"),
        ({"sessionId": "ATUid_x", "phoneNumber": PHONE, "text": ""}, "serviceCode"),
        ({"sessionId": "ATUid_x", "serviceCode": "*384#", "text": ""}, "phoneNumber"),
        ({"sessionId": "ATUid_x", "serviceCode": "*384#", "phoneNumber": PHONE}, "text"),
        (
            {
                "sessionId": "ATUid_x",
                "serviceCode": "*384#",
                "phoneNumber": "0700 000 10",
                "text": "",
            },
            "phoneNumber",
        ),
        (
            {
                "sessionId": "ATUid_x",
                "serviceCode": "*384#",
                "phoneNumber": "+254700000105x",
                "text": "",
            },
            "phoneNumber",
        ),
        (
            {"sessionId": "bad id!", "serviceCode": "*384#", "phoneNumber": PHONE, "text": ""},
            "sessionId",
        ),
        (
            {
                "sessionId": "ATUid_x",
                "serviceCode": "*384#",
                "phoneNumber": PHONE,
                "text": "1",
                "networkCode": "abc",
            },
            "networkCode",
        ),
    ],
)
async def test_malformed_request_is_rejected(service, form: dict[str, str], field: str) -> None:
    response = await service.client.post("/webhooks/africastalking/ussd", data=form)
    assert response.status == 400
    assert field in await response.text()
    assert await service.scalar("SELECT COUNT(*) FROM conversations") == 0


async def test_concurrent_steps_of_one_session_apply_in_order(service) -> None:
    await service.register(PHONE)
    texts = ["", "1", "1*1", "1*1*1"]
    results = await asyncio.gather(*(service.ussd("ATUid_conc", PHONE, t) for t in texts))
    assert all(status == 200 for status, _ in results)
    _, final = await service.ussd("ATUid_conc", PHONE, "1*1*1")
    assert "choose a day" in final


# --- requests that arrive late, out of order or typed ahead ----------------------------------


async def walk(service, session: str, answers: list[str]) -> str:
    screen = ""
    for count in range(len(answers) + 1):
        _, screen = await service.ussd(session, PHONE, "*".join(answers[:count]))
    return screen


async def test_typed_ahead_confirmation_stops_at_confirm(service) -> None:
    await service.register(PHONE)
    _, screen = await service.ussd("ATUid_ahead", PHONE, "1*1*1*1*1*1")
    assert screen.startswith("CON Confirm appointment")
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 0
    # The next answer replies to the confirm screen the patient has now seen.
    _, screen = await service.ussd("ATUid_ahead", PHONE, "1*1*1*1*1*1*1")
    assert screen.startswith("END Booked!")
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1


async def test_late_request_after_booking_changes_nothing(service) -> None:
    await service.register(PHONE)
    answers = ["1", "1", "1", "1", "1", "1"]
    booked = await walk(service, "ATUid_late", answers)
    assert booked.startswith("END Booked!")
    # The gateway delivers the request before the confirmation again, late.
    _, screen = await service.ussd("ATUid_late", PHONE, "1*1*1*1*1")
    assert screen == booked
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1
    assert len(await service.sent_sms()) == 1


async def test_diverging_requests_book_once(service) -> None:
    await service.register(PHONE)
    await walk(service, "ATUid_fork", ["1", "1", "1", "1"])
    confirm, other_time = "1*1*1*1*1", "1*1*1*1*2"
    results = await asyncio.gather(
        *(service.ussd("ATUid_fork", PHONE, text) for text in [confirm, other_time] * 3)
    )
    assert all(status == 200 for status, _ in results)
    assert await service.scalar("SELECT COUNT(*) FROM appointments") <= 1


async def test_new_dial_after_timeout_keeps_answer(service) -> None:
    await service.register(PHONE)
    await walk(service, "ATUid_old", ["1", "1"])
    service.clock.advance(3600)
    _, screen = await service.ussd("ATUid_new", PHONE, "2")
    assert screen.startswith("CON Your appointments:") or "no upcoming" in screen
    assert "timed out" not in screen


async def test_reprompt_keeps_page_numbers(service) -> None:
    await service.register(PHONE)
    prefix = "1*1*1"  # general practice, first doctor: the day list has two pages
    _, page_two = await service.ussd("ATUid_pg", PHONE, "*".join([*prefix.split("*")]))
    _, page_two = await service.ussd("ATUid_pg", PHONE, prefix + "*98")
    numbers = {n for n in options(page_two).values() if n not in ("0", "00", "98")}
    _, again = await service.ussd("ATUid_pg", PHONE, prefix + "*98*77")
    assert again.startswith("CON " + translate("en", "input.invalid_choice"))
    assert {n for n in options(again).values() if n not in ("0", "00", "98")} == numbers
    _, back = await service.ussd("ATUid_pg", PHONE, prefix + "*98*77*0")
    assert "1" in options(back).values()  # back a page, not back a screen
    assert "choose a day" in back


async def test_too_many_answers_end_with_apology(service) -> None:
    await service.register(PHONE)
    status, screen = await service.ussd("ATUid_long", PHONE, "*".join(["98"] * 300))
    assert status == 200
    assert screen == "END Sorry, something went wrong. Please dial again."
