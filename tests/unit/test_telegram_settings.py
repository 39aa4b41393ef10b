"""Telegram settings: placeholders in the sandbox, the token and secret set together."""

from __future__ import annotations

import os

import pytest

from myafya.settings import (
    SANDBOX_TELEGRAM_BOT_TOKEN,
    SANDBOX_TELEGRAM_WEBHOOK_SECRET,
    SettingsError,
    load_settings,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("MYAFYA_") and key != "MYAFYA_REQUIRE_SERVICES":
            monkeypatch.delenv(key)


def live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAFYA_AT_USERNAME", "testclinic")
    monkeypatch.setenv("MYAFYA_AT_API_KEY", "test-key")


def test_sandbox_uses_placeholders() -> None:
    settings = load_settings(env_file=None)

    assert settings.telegram_credentials == (
        SANDBOX_TELEGRAM_BOT_TOKEN,
        SANDBOX_TELEGRAM_WEBHOOK_SECRET,
    )


def test_live_mode_without_telegram_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    live(monkeypatch)

    assert load_settings(env_file=None).telegram_credentials is None


def test_configured_values_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    live(monkeypatch)
    monkeypatch.setenv("MYAFYA_TELEGRAM_BOT_TOKEN", "8000000001:test-token")
    monkeypatch.setenv("MYAFYA_TELEGRAM_WEBHOOK_SECRET", "test_secret-1")

    settings = load_settings(env_file=None)

    assert settings.telegram_credentials == ("8000000001:test-token", "test_secret-1")


@pytest.mark.parametrize(
    "variable", ["MYAFYA_TELEGRAM_BOT_TOKEN", "MYAFYA_TELEGRAM_WEBHOOK_SECRET"]
)
def test_token_and_secret_go_together(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "8000000001" if variable.endswith("SECRET") else "1:x")

    with pytest.raises(SettingsError) as error:
        load_settings(env_file=None)

    assert "must be set together" in str(error.value)


@pytest.mark.parametrize("secret", ["has space", "x" * 257, "semi;colon"])
def test_invalid_secret_is_named(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("MYAFYA_TELEGRAM_BOT_TOKEN", "8000000001:test-token")
    monkeypatch.setenv("MYAFYA_TELEGRAM_WEBHOOK_SECRET", secret)

    with pytest.raises(SettingsError) as error:
        load_settings(env_file=None)

    assert "MYAFYA_TELEGRAM_WEBHOOK_SECRET" in str(error.value)
    assert secret not in str(error.value)
