from __future__ import annotations

import pytest

from myafya.settings import SANDBOX_AT_API_KEY, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("MYAFYA_") and key not in ("MYAFYA_REQUIRE_SERVICES",):
            monkeypatch.delenv(key)


def test_defaults_use_sandbox_and_sqlite() -> None:
    settings = load_settings(env_file=None)
    assert settings.sandbox_on
    assert settings.database_url == "sqlite:///var/myafya.db"
    assert settings.timezone == "Africa/Nairobi"
    assert settings.at_credentials[1] == SANDBOX_AT_API_KEY


def test_credentials_turn_sandbox_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAFYA_AT_USERNAME", "testclinic")
    monkeypatch.setenv("MYAFYA_AT_API_KEY", "test-key")
    settings = load_settings(env_file=None)
    assert not settings.sandbox_on
    assert settings.at_credentials == ("testclinic", "test-key")


def test_sandbox_forced_on_with_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAFYA_AT_USERNAME", "testclinic")
    monkeypatch.setenv("MYAFYA_AT_API_KEY", "test-key")
    monkeypatch.setenv("MYAFYA_SANDBOX", "1")
    assert load_settings(env_file=None).sandbox_on


def test_unknown_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAFYA_DATABSE_URL", "sqlite:///x.db")
    with pytest.raises(SettingsError, match="unknown setting MYAFYA_DATABSE_URL"):
        load_settings(env_file=None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MYAFYA_TIMEZONE", "Mars/Olympus"),
        ("MYAFYA_CONVERSATION_TIMEOUT_MINUTES", "0"),
        ("MYAFYA_CONVERSATION_TIMEOUT_MINUTES", "ten"),
        ("MYAFYA_DATABASE_URL", "mysql://u@h/db"),
        ("MYAFYA_SANDBOX", "perhaps"),
        ("MYAFYA_LOG_LEVEL", "LOUD"),
    ],
)
def test_invalid_setting_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"invalid setting {name}"):
        load_settings(env_file=None)


def test_invalid_setting_message_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAFYA_TIMEZONE", "Mars/Olympus")
    with pytest.raises(SettingsError) as raised:
        load_settings(env_file=None)

    message = str(raised.value)
    assert message.startswith("invalid setting MYAFYA_TIMEZONE: unknown IANA time zone"), message
    assert "Value error" not in message


def test_invalid_settings_rule_message_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAFYA_SANDBOX", "0")
    with pytest.raises(SettingsError) as raised:
        load_settings(env_file=None)

    message = str(raised.value)
    assert message.startswith("invalid settings: "), message
    assert "Value error" not in message


def test_env_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MYAFYA_CHANGE_CUTOFF_HOURS=6\n")
    assert load_settings(env_file=env_file).change_cutoff_hours == 6


def test_unknown_setting_in_env_file_is_named(tmp_path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MYAFYA_NOPE=1\n")
    with pytest.raises(SettingsError, match="MYAFYA_NOPE"):
        load_settings(env_file=env_file)


def test_secret_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAFYA_AT_API_KEY", "very-secret-key")
    monkeypatch.setenv("MYAFYA_AT_USERNAME", "testclinic")
    assert "very-secret-key" not in repr(load_settings(env_file=None))


def test_unrelated_env_file_lines_are_ignored(tmp_path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("EDITOR=vim\nMYAFYA_CHANGE_CUTOFF_HOURS=3\n")
    assert load_settings(env_file=env_file).change_cutoff_hours == 3


def test_misspelt_env_file_setting_named_once(tmp_path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MYAFYA_TIMZONE=Africa/Nairobi\n")
    with pytest.raises(SettingsError, match="unknown setting MYAFYA_TIMZONE;"):
        load_settings(env_file=env_file)


def test_live_mode_needs_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAFYA_SANDBOX", "0")
    with pytest.raises(SettingsError, match="MYAFYA_AT_USERNAME and MYAFYA_AT_API_KEY"):
        load_settings(env_file=None)


def test_log_level_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAFYA_LOG_LEVEL", "debug")
    assert load_settings(env_file=None).log_level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MYAFYA_CHANGE_CUTOFF_HOURS", "nan"),
        ("MYAFYA_USSD_SERVICE_CODE", "hello"),
        ("MYAFYA_PUBLIC_URL", "notaurl"),
        ("MYAFYA_PUBLIC_URL", "ftp://hooks.example.test"),
        ("MYAFYA_SANDBOX_URL", "https://hooks.example.test"),
        ("MYAFYA_SANDBOX_URL", "http://192.0.2.10:8080"),
        ("MYAFYA_SANDBOX_URL", "ftp://127.0.0.1"),
    ],
)
def test_more_invalid_settings_are_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"invalid setting {name}"):
        load_settings(env_file=None)


def test_invalid_allowed_network_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAFYA_AT_ALLOWED_NETWORKS", "192.0.2.0/24, not-an-address")
    with pytest.raises(SettingsError, match="invalid setting MYAFYA_AT_ALLOWED_NETWORKS"):
        load_settings(env_file=None)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:39001/", "http://[::1]:39001", "http://localhost:39001"]
)
def test_sandbox_url_on_loopback(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("MYAFYA_SANDBOX_URL", url)
    settings = load_settings(env_file=None)

    assert settings.fakes_url("http://127.0.0.1:8080") == url.rstrip("/")


def test_fakes_default_to_own_server() -> None:
    settings = load_settings(env_file=None)

    assert settings.fakes_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
