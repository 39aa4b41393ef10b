"""Every patient-facing message id has a complete English and Kiswahili text."""

from __future__ import annotations

import inspect
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

import core.errors
from core.i18n import LANGUAGES, catalogue, translate

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"Text": (1,), "translate": (2,), "N_": (1,)}


def used_message_ids() -> set[str]:
    ids: set[str] = set()
    for folder in ("bot", "core", "myafya"):
        for _, _, message, _, _ in extract_from_dir(
            ROOT / folder, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            if isinstance(message, str):
                ids.add(message)
    for _, error in inspect.getmembers(core.errors, inspect.isclass):
        if issubclass(error, core.errors.DomainError):
            ids.add(error.message_id)
    return ids


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_code_uses_message_ids() -> None:
    ids = used_message_ids()
    assert "home.title" in ids
    assert "booking.confirm" in ids
    assert "sms.booking_confirmed" in ids  # marked with N_ and translated later


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_used_id_is_translated(language: str) -> None:
    missing = sorted(used_message_ids() - set(catalogue(language)))
    assert missing == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_has_no_unused_ids(language: str) -> None:
    unused = sorted(set(catalogue(language)) - used_message_ids())
    assert unused == []


def test_catalogues_have_the_same_ids() -> None:
    assert set(catalogue("en")) == set(catalogue("sw"))


def test_translations_keep_placeholders() -> None:
    for message_id, english in catalogue("en").items():
        assert placeholders(catalogue("sw")[message_id]) == placeholders(english), message_id


def test_kiswahili_differs_from_english() -> None:
    same = [
        message_id
        for message_id, english in catalogue("en").items()
        if catalogue("sw")[message_id] == english
    ]
    assert same == []


def test_translate_formats_and_falls_back() -> None:
    assert translate("sw", "registration.done", name="Amina") == "Asante, Amina. Umesajiliwa."
    assert translate(None, "nav.back") == "Back"
    assert translate("fr", "nav.back") == "Back"
