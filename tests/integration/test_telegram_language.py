"""The language of a Telegram user's first screen: Telegram's `language_code` picks it for a new
conversation, and the patient's own choice wins over it afterwards."""

from __future__ import annotations

import pytest

from tests.integration.telegram_support import TelegramUser, start_telegram_service

WELCOME_EN = "Welcome to MyAfya. You can look at our services"
WELCOME_SW = "Karibu MyAfya. Unaweza kuangalia huduma"


@pytest.fixture
async def telegram_service(database_url, clock):
    running = await start_telegram_service(database_url, clock)
    yield running
    await running.stop()


@pytest.mark.parametrize(
    ("language_code", "welcome", "stored"),
    [
        ("sw", WELCOME_SW, "sw"),
        ("sw-KE", WELCOME_SW, "sw"),
        ("en-GB", WELCOME_EN, "en"),
        ("fr", WELCOME_EN, "en"),
        (None, WELCOME_EN, "en"),
    ],
)
async def test_first_screen_follows_language_code(
    telegram_service, language_code, welcome, stored
) -> None:
    user = TelegramUser(telegram_service, 7000000051, language_code=language_code)

    opening = await user.send("/start")

    assert opening["text"].startswith(welcome)
    language = await telegram_service.scalar(
        "SELECT language FROM conversations WHERE phone = 'tg:7000000051'"
    )
    assert language == stored


async def test_first_button_press_follows_language_code(telegram_service) -> None:
    user = TelegramUser(telegram_service, 7000000052, language_code="sw")

    opening = await user.send("hello")
    services = await user.press(opening, "1")

    assert opening["text"].startswith(WELCOME_SW)
    assert services["text"] == "Chagua huduma:"


async def test_chosen_english_survives_kiswahili_updates(telegram_service) -> None:
    user = TelegramUser(telegram_service, 7000000053, language_code="sw")
    opening = await user.send("/start")
    choose = await user.press(opening, "3")  # Badilisha lugha
    changed = await user.press(choose, "1")  # English
    assert changed["text"].startswith("Your language is now English.")

    again = await user.send("/start")
    services = await user.press(again, "1")

    assert again["text"].startswith(WELCOME_EN)
    assert services["text"] == "Choose a service:"
    language = await telegram_service.scalar(
        "SELECT language FROM conversations WHERE phone = 'tg:7000000053'"
    )
    assert language == "en"


async def test_registered_patient_keeps_language_on_linking(telegram_service) -> None:
    await telegram_service.register("+254700000154", language="en")
    user = TelegramUser(telegram_service, 7000000054, language_code="sw")
    await user.send("/start")

    linked = await user.share_contact("+254700000154")

    assert linked["text"].startswith("Thank you. Your phone number is now linked")
    assert "MyAfya menu:" in linked["text"]


async def test_new_phone_registers_in_language_code(telegram_service) -> None:
    user = TelegramUser(telegram_service, 7000000055, language_code="sw")
    await user.send("/start")

    linked = await user.share_contact("+254700000155")

    assert linked["text"].startswith("Asante. Nambari yako ya simu sasa imeunganishwa")
    assert "Karibu MyAfya! Chagua lugha:" in linked["text"]


async def test_choice_before_linking_carries_over(telegram_service) -> None:
    user = TelegramUser(telegram_service, 7000000056, language_code="en")
    opening = await user.send("/start")
    choose = await user.press(opening, "3")  # Change language
    await user.press(choose, "2")  # Kiswahili

    linked = await user.share_contact("+254700000156")

    assert linked["text"].startswith("Asante. Nambari yako ya simu sasa imeunganishwa")
    assert "Tafadhali andika jina lako kamili:" in linked["text"]
    assert "Chagua lugha" not in linked["text"]


async def test_chosen_english_skips_language_question(telegram_service) -> None:
    user = TelegramUser(telegram_service, 7000000057, language_code="sw")
    opening = await user.send("/start")
    choose = await user.press(opening, "3")  # Badilisha lugha
    await user.press(choose, "1")  # English

    linked = await user.share_contact("+254700000157")

    assert linked["text"].startswith("Thank you. Your phone number is now linked")
    assert "Please type your full name:" in linked["text"]
    assert "Choose a language" not in linked["text"]
    back_home = await user.send("00")
    assert back_home["text"].startswith("Please type your full name:")

    privacy = await user.send("Test Patient")
    assert privacy["text"].startswith("Privacy:")
    await user.press(privacy, "1")  # I agree
    language = await telegram_service.scalar(
        "SELECT language FROM patients WHERE phone = '+254700000157'"
    )
    assert language == "en"
