"""Booking over USSD through the real webhook, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.engine.gsm7 import is_gsm7, septets
from tests.integration.ussd_screens import first_option, number_of, options

PHONE = "+254700000101"
REFERENCE = re.compile(r"MA-[A-Z0-9]{6}")


async def walk_booking(
    service, session: str, phone: str, prefix: str, *, later_day: bool = False
) -> tuple[str, str]:
    """Book the first free time of the first doctor; return the final screen and the input.

    With `later_day`, take the second day offered, which is beyond the change cut-off.
    """
    text = prefix
    for step in ("specialty", "doctor", "day", "time", "confirm"):
        status, screen = await service.ussd(session, phone, text)
        assert status == 200
        assert screen.startswith("CON "), screen
        choice = first_option(screen)
        if step == "day" and later_day:
            choice = str(int(choice) + 1)
        text = f"{text}*{choice}"
    status, screen = await service.ussd(session, phone, text)
    assert status == 200
    return screen, text


async def test_register_and_book_in_english(service) -> None:
    status, screen = await service.ussd("ATUid_en01", PHONE, "")
    assert status == 200
    assert screen.startswith("CON Welcome to MyAfya")
    assert "1. English" in screen
    assert "2. Kiswahili" in screen

    _, screen = await service.ussd("ATUid_en01", PHONE, "1")
    assert "full name" in screen
    _, screen = await service.ussd("ATUid_en01", PHONE, "1*Test Patient")
    assert "Privacy" in screen
    _, screen = await service.ussd("ATUid_en01", PHONE, "1*Test Patient*1")
    assert "Thank you, Test Patient" in screen
    assert number_of(screen, "Book a doctor") == "1"

    final, _ = await walk_booking(service, "ATUid_en01", PHONE, "1*Test Patient*1*1")
    assert final.startswith("END Booked!"), final
    reference = REFERENCE.search(final).group(0)

    messages = await service.sent_sms()
    assert len(messages) == 1
    assert messages[0]["to"] == PHONE
    assert reference in messages[0]["text"]
    assert "your appointment with Dr." in messages[0]["text"]
    assert (
        await service.scalar("SELECT status FROM appointments WHERE reference = :r", r=reference)
        == "booked"
    )
    assert (
        await service.scalar(
            "SELECT provider_message_id FROM outbox_messages WHERE status = 'sent'"
        )
        == messages[0]["provider_message_id"]
    )


async def test_register_and_book_in_kiswahili(service) -> None:
    phone = "+254700000102"
    _, screen = await service.ussd("ATUid_sw01", phone, "2")
    assert "Tafadhali andika jina lako kamili" in screen
    _, screen = await service.ussd("ATUid_sw01", phone, "2*Mteja Test")
    assert "Faragha" in screen
    _, screen = await service.ussd("ATUid_sw01", phone, "2*Mteja Test*1")
    assert "Asante, Mteja Test" in screen
    assert "Weka miadi na daktari" in screen

    final, _ = await walk_booking(service, "ATUid_sw01", phone, "2*Mteja Test*1*1")
    assert final.startswith("END Miadi imewekwa!"), final
    reference = REFERENCE.search(final).group(0)
    messages = await service.sent_sms()
    assert "miadi yako na" in messages[0]["text"]
    assert reference in messages[0]["text"]


async def test_first_request_can_carry_input(service) -> None:
    await service.register(PHONE)
    _, stepwise = await service.ussd("ATUid_step", PHONE, "")
    _, stepwise = await service.ussd("ATUid_step", PHONE, "1")
    _, stepwise = await service.ussd("ATUid_step", PHONE, "1*1")
    _, at_once = await service.ussd("ATUid_once", PHONE, "1*1")
    assert at_once == stepwise


async def test_duplicate_request_changes_nothing(service) -> None:
    await service.register(PHONE)
    prefix = "1"
    _, final_input = await walk_booking(service, "ATUid_dup", PHONE, prefix)
    version = await service.scalar("SELECT version FROM conversations WHERE phone = :p", p=PHONE)
    _, first = await service.ussd("ATUid_dup", PHONE, final_input)
    _, second = await service.ussd("ATUid_dup", PHONE, final_input)
    assert first == second
    assert first.startswith("END Booked!")
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1
    assert (
        await service.scalar("SELECT version FROM conversations WHERE phone = :p", p=PHONE)
        == version
    )
    assert len(await service.sent_sms()) == 1


async def test_book_cancel_and_rebook_same_slot(service) -> None:
    await service.register(PHONE)
    final, _ = await walk_booking(service, "ATUid_c1", PHONE, "1", later_day=True)
    reference = REFERENCE.search(final).group(0)
    slot_id = await service.scalar(
        "SELECT slot_id FROM appointments WHERE reference = :r", r=reference
    )

    _, screen = await service.ussd("ATUid_c2", PHONE, "2")
    assert "Your appointments" in screen
    _, screen = await service.ussd("ATUid_c2", PHONE, "2*1")
    assert reference in screen
    _, screen = await service.ussd("ATUid_c2", PHONE, "2*1*1")
    assert "Cancel your appointment" in screen
    _, screen = await service.ussd("ATUid_c2", PHONE, "2*1*1*1")
    assert screen == f"END Appointment {reference} is cancelled."
    assert (
        await service.scalar("SELECT status FROM appointments WHERE reference = :r", r=reference)
        == "cancelled"
    )

    # The same answers pick the same (now free again) first slot.
    final, _ = await walk_booking(service, "ATUid_c3", PHONE, "1", later_day=True)
    assert final.startswith("END Booked!")
    assert (
        await service.scalar(
            "SELECT COUNT(*) FROM appointments WHERE slot_id = :s AND status = 'booked'", s=slot_id
        )
        == 1
    )
    texts = [m["text"] for m in await service.sent_sms()]
    assert any("is cancelled" in text for text in texts)


async def test_reschedule_keeps_reference(service) -> None:
    await service.register(PHONE)
    final, _ = await walk_booking(service, "ATUid_r1", PHONE, "1", later_day=True)
    reference = REFERENCE.search(final).group(0)
    old_slot = await service.scalar(
        "SELECT slot_id FROM appointments WHERE reference = :r", r=reference
    )

    _, screen = await service.ussd("ATUid_r2", PHONE, "2*1*2")
    assert "Choose a new day" in screen
    text = "2*1*2*" + str(int(first_option(screen)) + 1)
    _, screen = await service.ussd("ATUid_r2", PHONE, text)
    # The first time of that day is the patient's own slot; take the second one.
    second = sorted(n for n in re.findall(r"^(\d+)\. \d\d:\d\d$", screen, re.MULTILINE))[1]
    _, screen = await service.ussd("ATUid_r2", PHONE, f"{text}*{second}")
    assert f"Move {reference}" in screen
    _, screen = await service.ussd("ATUid_r2", PHONE, f"{text}*{second}*1")
    assert screen.startswith(f"END Done. {reference} is now on")
    new_slot = await service.scalar(
        "SELECT slot_id FROM appointments WHERE reference = :r", r=reference
    )
    assert new_slot != old_slot
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == 1


async def test_language_switch(service) -> None:
    await service.register(PHONE)
    _, screen = await service.ussd("ATUid_lang", PHONE, "3")
    assert "Choose your language" in screen
    _, screen = await service.ussd("ATUid_lang", PHONE, "3*2")
    assert "Lugha yako sasa ni Kiswahili" in screen
    assert "Weka miadi na daktari" in screen
    assert await service.scalar("SELECT language FROM patients WHERE phone = :p", p=PHONE) == "sw"


async def test_help_screen(service) -> None:
    await service.register(PHONE)
    _, screen = await service.ussd("ATUid_help", PHONE, "4")
    assert "00 to the menu" in screen
    _, again = await service.ussd("ATUid_help", PHONE, "4*5")
    assert "Reply 0 to go back" in again


async def test_declined_consent_ends_without_patient(service) -> None:
    _, screen = await service.ussd("ATUid_no", PHONE, "1*Test Patient")
    assert "Privacy" in screen
    _, screen = await service.ussd("ATUid_no", PHONE, "1*Test Patient*2")
    assert screen.startswith("END We cannot book")
    assert await service.scalar("SELECT COUNT(*) FROM patients WHERE consented_at IS NOT NULL") == 0


async def test_invalid_name_reprompts(service) -> None:
    _, screen = await service.ussd("ATUid_name", PHONE, "1*x")
    assert screen.startswith("CON Please type your name in letters only (2 to 60)")
    for number, bad_name in enumerate(["12345", "Test 2nd", "Test😀", "ТестИмя"], start=1):
        _, screen = await service.ussd(f"ATUid_name{number}", PHONE, "1")
        _, screen = await service.ussd(f"ATUid_name{number}", PHONE, f"1*{bad_name}")
        assert "letters only" in screen, bad_name
    _, screen = await service.ussd("ATUid_name9", PHONE, "1")
    _, screen = await service.ussd("ATUid_name9", PHONE, "1*Wanjirũ O'Brien-Test")
    assert "Privacy" in screen


async def test_typographic_apostrophes_in_names(service) -> None:
    """Names typed with ’ (U+2019), ‘ (U+2018) or ʼ (U+02BC) are stored with the ASCII
    apostrophe, because it is the only one in GSM-7."""
    typed_names = {
        "+254700000110": ("O\u2019Neil Test", "O'Neil Test"),
        "+254700000111": ("Test Ng\u2018ang\u2019a", "Test Ng'ang'a"),
        "+254700000112": ("Test O\u02bcBrien", "Test O'Brien"),
    }
    for phone, (typed, stored) in typed_names.items():
        session = f"ATUid_apostrophe_{phone[-3:]}"
        _, screen = await service.ussd(session, phone, f"1*{typed}")
        assert "Privacy" in screen, typed

        _, screen = await service.ussd(session, phone, f"1*{typed}*1")

        assert f"Thank you, {stored}" in screen, typed
        assert is_gsm7(screen), screen
        name = await service.scalar("SELECT name FROM patients WHERE phone = :p", p=phone)
        assert name == stored


async def test_every_screen_fits_ussd(service) -> None:
    """Walk the main screens in both languages: 182 septets at most, GSM-7 only."""
    phones = {"en": "+254700000103", "sw": "+254700000104"}
    for language, phone in phones.items():
        await service.register(phone, language=language)
        for text in [
            "",
            "1",
            "1*1",
            "1*1*1",
            "1*1*1*1",
            "1*1*1*1*1",
            "2",
            "3",
            "4",
            "1*98",
            "1*1*1*98",
            "1*1*1*98*98",
            "9",
            "1*1*1*1*1*2",
        ]:
            _, screen = await service.ussd(f"ATUid_fit_{language}", phone, text)
            assert screen.startswith(("CON ", "END ")), screen
            assert is_gsm7(screen), screen
            assert septets(screen) <= 182, (len(screen), screen)


async def test_booked_screen_fits_ussd(service) -> None:
    phones = {"en": "+254700000105", "sw": "+254700000106"}
    follows = {"en": "A confirmation message follows.", "sw": "Utapokea ujumbe wa uthibitisho."}
    for language, phone in phones.items():
        await service.register(phone, language=language)

        session = f"ATUid_booked_{language}"
        _, confirm = await service.ussd(session, phone, "1*1*1*1*1")
        assert "1. " in confirm  # the confirm screen, which books only once it was shown

        _, screen = await service.ussd(session, phone, "1*1*1*1*1*1")

        assert screen.startswith("END "), screen
        assert follows[language] in screen
        assert is_gsm7(screen), screen
        assert septets(screen) <= 182, (len(screen), screen)


async def test_cancel_inside_cutoff_is_refused(service) -> None:
    """The cut-off can pass while the patient is on the confirmation screen."""
    await service.register(PHONE)
    final, _ = await walk_booking(service, "ATUid_late1", PHONE, "1")  # today, 09:30
    reference = REFERENCE.search(final).group(0)
    async with service.services.database.unit_of_work() as uow:
        # Start it just outside the cut-off, so the cancel screen is still offered.
        from core.db.database import Sql

        await uow.execute(
            Sql("UPDATE appointments SET starts_at = :at WHERE reference = :r"),
            at=service.clock.now() + timedelta(hours=2, minutes=5),
            r=reference,
        )
    for text in ("2", "2*1", "2*1*1"):
        _, screen = await service.ussd("ATUid_late2", PHONE, text)
    assert "Cancel your appointment" in screen
    service.clock.advance(6 * 60)  # now within 2 hours of the start
    _, screen = await service.ussd("ATUid_late2", PHONE, "2*1*1*1")
    assert screen.startswith("CON Appointments cannot be cancelled or changed less than 2 hours")
    assert (
        await service.scalar("SELECT status FROM appointments WHERE reference = :r", r=reference)
        == "booked"
    )


async def test_detail_inside_cutoff_offers_no_change(service) -> None:
    await service.register(PHONE)
    await walk_booking(service, "ATUid_lock1", PHONE, "1")  # today, 09:30
    for text in ("2", "2*1"):
        _, screen = await service.ussd("ATUid_lock2", PHONE, text)
    assert "can no longer be changed here" in screen
    assert "Cancel it" not in screen


async def test_kiswahili_times_use_swahili_time(service) -> None:
    phone = "+254700000105"
    await service.register(phone, language="sw")
    text = "1"
    for _ in range(3):  # service, doctor, day
        _, screen = await service.ussd("ATUid_swtime", phone, text)
        text += "*" + first_option(screen)
    _, screen = await service.ussd("ATUid_swtime", phone, text)
    assert "saa 3:30 asubuhi" in screen  # 09:30, the first free time today
    assert "09:30" not in screen


async def pick_and_confirm(service, session: str, phone: str, doctor: str, time_choice: str):
    text = "1*" + first_option((await service.ussd(session, phone, "1"))[1])
    _, screen = await service.ussd(session, phone, text)
    text += "*" + number_of(screen, doctor)
    _, screen = await service.ussd(session, phone, text)
    text += "*" + first_option(screen)
    _, screen = await service.ussd(session, phone, text)
    text += "*" + time_choice
    await service.ussd(session, phone, text)
    _, screen = await service.ussd(session, phone, text + "*1")
    return screen


async def test_patient_cannot_double_up_or_hoard(service) -> None:
    from core.booking.appointments import MAX_UPCOMING_PER_PATIENT

    await service.register(PHONE)
    first = await pick_and_confirm(service, "ATUid_h1", PHONE, "Kamau", "1")
    assert first.startswith("END Booked!")
    same_time = await pick_and_confirm(service, "ATUid_h2", PHONE, "Njeri", "1")
    assert same_time.startswith("CON You already have an appointment at that time.")
    for index in range(2, MAX_UPCOMING_PER_PATIENT + 1):
        screen = await pick_and_confirm(service, f"ATUid_h{index + 1}", PHONE, "Kamau", "1")
        assert screen.startswith("END Booked!"), screen
    refused = await pick_and_confirm(service, "ATUid_h9", PHONE, "Kamau", "1")
    assert refused.startswith(f"CON You already have {MAX_UPCOMING_PER_PATIENT} upcoming")
    assert await service.scalar("SELECT COUNT(*) FROM appointments") == MAX_UPCOMING_PER_PATIENT


async def test_home_after_language_step_keeps_language(service) -> None:
    _, name_prompt = await service.ussd("ATUid_lang00", PHONE, "2")
    assert name_prompt.startswith("CON ")
    assert "Kiswahili" not in name_prompt  # past the language question

    _, screen = await service.ussd("ATUid_lang00", PHONE, "2*00")

    # Home is the name question in Kiswahili, with nothing to go back to.
    assert screen == name_prompt.split("\n")[0]
    assert "Chagua lugha" not in screen


async def test_clash_hides_own_time(service) -> None:
    await service.register(PHONE)
    booked = await pick_and_confirm(service, "ATUid_c1", PHONE, "Kamau", "1")
    assert booked.startswith("END Booked!")

    # The same day with another doctor: the first time is the one already booked.
    text = "1*" + first_option((await service.ussd("ATUid_c2", PHONE, "1"))[1])
    _, screen = await service.ussd("ATUid_c2", PHONE, text)
    text += "*" + number_of(screen, "Njeri")
    _, screen = await service.ussd("ATUid_c2", PHONE, text)
    text += "*" + first_option(screen)
    _, times = await service.ussd("ATUid_c2", PHONE, text)
    clashing = next(label for label, number in options(times).items() if number == "1")
    await service.ussd("ATUid_c2", PHONE, text + "*1")
    _, clash = await service.ussd("ATUid_c2", PHONE, text + "*1*1")

    assert clash.startswith("CON You already have an appointment at that time.")
    assert clashing not in options(clash)
    assert options(clash), "no other time offered"
