from __future__ import annotations

import pytest

from core.errors import InvalidPhoneNumber
from core.identity.phones import normalize_phone, to_daraja

# The shapes Kenyan users type one number in.
KENYAN_FORMS = [
    "0700 000 105",
    "+254 700 000 105",
    "254700000105",
    "+254700000105",
    "(0700) 000-105",
    "700000105",
    "whatsapp:+254700000105",
    "tel:+254-700-000-105",
    "  0700000105 ",
    "0700.000.105",
]


@pytest.mark.parametrize("raw", KENYAN_FORMS)
def test_normalize_phone_kenyan_forms(raw: str) -> None:
    assert normalize_phone(raw) == "+254700000105"


def test_normalize_phone_too_short() -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_phone("0700 000 10")
    assert str(caught.value) == "0700 000 10 is not a valid phone number: it is too short"
    assert caught.value.params["value"] == "0700 000 10"
    assert caught.value.message_id == "error.invalid_phone"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "the phone number is missing"),
        ("whatsapp:", "the phone number is missing"),
        ("not a number", "not a valid phone number: it is not a number"),
        ("+999 700 000 105", "not a valid phone number: the country code is unknown"),
        ("0700 000 105 555", "not a valid phone number: it is too long"),
    ],
)
def test_normalize_phone_rejects(raw: str, problem: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=problem):
        normalize_phone(raw)


@pytest.mark.parametrize(
    ("raw", "character"),
    [
        ("+254700000105x", "x"),
        ("0700 000 105 ext 5", "e"),
        ("0700-MYAFYA", "M"),
        ("+254 700 000 105;", ";"),
        ("0700/000/105", "/"),
        ("+254700000105#", "#"),
        ("0700\t000 105", "\t"),
        ("whatsapp:+254700000105abc", "a"),
    ],
)
def test_normalize_phone_rejects_stray_characters(raw: str, character: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_phone(raw)
    assert f"it contains {character!r}, which is not part of a phone number" in str(caught.value)
    assert caught.value.params["value"] == raw


def test_normalize_phone_other_region() -> None:
    assert normalize_phone("020 7946 0000", region="GB") == "+442079460000"


def test_normalize_phone_keeps_foreign_country_code() -> None:
    assert normalize_phone("+44 20 7946 0000") == "+442079460000"


def test_to_daraja_kenyan_number() -> None:
    assert to_daraja("+254700000105") == "254700000105"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0700000105", "not in E.164 form"),
        ("+442079460000", "not a Kenyan number"),
        ("+25470000010", "not a valid phone number"),
    ],
)
def test_to_daraja_rejects(value: str, problem: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=problem):
        to_daraja(value)
