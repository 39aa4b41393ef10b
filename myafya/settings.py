"""Settings from `MYAFYA_*` environment variables, with a `.env` file read in development."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.notify.policy import DeliveryPolicy, MessageKind, QuietHours

ENV_PREFIX = "MYAFYA_"

# Variables with the prefix that the test suite and CI read; they are not service settings.
TEST_VARIABLES = frozenset({"MYAFYA_REQUIRE_SERVICES", "MYAFYA_TEST_POSTGRES_URL"})

# Placeholder credentials the sandbox fakes accept when no real ones are configured.
SANDBOX_AT_USERNAME = "sandbox"
SANDBOX_AT_API_KEY = "sandbox-api-key"
SANDBOX_AT_WEBHOOK_SECRET = "sandbox-at-webhook-secret"  # noqa: S105  (a placeholder)
SANDBOX_TELEGRAM_BOT_TOKEN = "8000000001:sandbox-telegram-bot-token"  # noqa: S105  (a placeholder)
SANDBOX_TELEGRAM_WEBHOOK_SECRET = "sandbox-telegram-webhook-secret"  # noqa: S105  (a placeholder)
SANDBOX_TWILIO_ACCOUNT_SID = "AC00000000000000000000000000000000"
SANDBOX_TWILIO_AUTH_TOKEN = "sandbox-twilio-auth-token"  # noqa: S105  (a placeholder)
SANDBOX_TWILIO_WHATSAPP_FROM = "whatsapp:+254700000100"
SANDBOX_TWILIO_SMS_FROM = "+254700000100"
# Content SIDs the sandbox uses for WhatsApp templates when MYAFYA_TWILIO_TEMPLATE_SIDS is unset.
SANDBOX_TWILIO_TEMPLATE_SIDS = (
    "reminder=HX00000000000000000000000000000001,booked=HX00000000000000000000000000000002"
)


def parse_networks(value: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """Parse "10.0.0.0/8, 192.0.2.7" into networks; a bare address is a network of one."""
    networks = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"invalid address or network {part!r}, e.g. 192.0.2.0/24") from None
    return tuple(networks)


class SettingsError(Exception):
    """A setting is unknown or invalid; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        # Other variables in .env are not ours; misspelt MYAFYA_ ones are caught by name below.
        extra="ignore",
        case_sensitive=False,
    )

    database_url: str = Field(
        default="sqlite:///var/myafya.db",
        description="sqlite:///PATH for the embedded default, postgresql://… in production",
    )
    public_url: str = "http://127.0.0.1:8080"
    sandbox: bool | None = Field(
        default=None,
        description="Send provider calls to the loopback fakes; on when no credentials are set",
    )
    sandbox_url: str | None = Field(
        default=None,
        description="Loopback URL of the server whose /sandbox/ fakes the provider SDKs call",
    )
    timezone: str = "Africa/Nairobi"

    at_username: str | None = None
    at_api_key: SecretStr | None = None
    at_sender_id: str | None = None
    ussd_service_code: str = Field(default="*384*12345#", pattern=r"^\*[0-9*]+#$")
    at_allowed_networks: str = Field(
        default="",
        description="Comma-separated addresses or CIDR networks allowed to call the Africa's "
        "Talking USSD webhooks (empty allows any) and the inbound SMS webhook without a secret "
        "path segment (empty allows none)",
    )

    conversation_timeout_minutes: int = Field(default=10, ge=1, le=24 * 60)
    change_cutoff_hours: float = Field(default=2.0, ge=0, le=24 * 14, allow_inf_nan=False)
    booking_horizon_days: int = Field(default=14, ge=1, le=90)
    booking_lead_minutes: int = Field(default=15, ge=0, le=24 * 60)

    broker_url: str | None = Field(
        default=None,
        description="redis://… or amqp://… for `myafya worker`; unset runs jobs inside serve",
    )
    broker_namespace: str = Field(default="myafya", min_length=1, max_length=40)
    reminder_offsets_minutes: str = "1440,60"
    quiet_hours: str = "21:00-07:00"
    max_send_attempts: int = Field(default=8, ge=1, le=50)
    at_webhook_secret: SecretStr | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = Field(
        default=None,
        description="The secret_token given to setWebhook: 1 to 256 of A-Z, a-z, 0-9, _ and -",
    )

    twilio_account_sid: str | None = Field(default=None, pattern=r"^AC[0-9a-fA-F]{32}$")
    twilio_auth_token: SecretStr | None = None
    twilio_whatsapp_from: str | None = Field(default=None, pattern=r"^whatsapp:\+[1-9]\d{6,14}$")
    twilio_sms_from: str | None = Field(default=None, pattern=r"^\+[1-9]\d{6,14}$")
    twilio_template_sids: str = Field(
        default="",
        description="Approved WhatsApp templates by message kind, e.g. reminder=HX…,booked=HX…",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or CIDR networks whose X-Forwarded-Proto and "
        "X-Forwarded-Host headers are honoured; empty trusts none",
    )

    demo_password: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
        return value.rstrip("/")

    @field_validator("sandbox_url")
    @classmethod
    def _loopback_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlsplit(value)
        if parsed.scheme not in ("http", "https") or not is_loopback_url(value):
            raise ValueError(
                f"expected an http:// URL on a loopback address such as 127.0.0.1, got {value!r}"
            )
        return value.rstrip("/")

    @field_validator("at_allowed_networks")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @property
    def at_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return parse_networks(self.at_allowed_networks)

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        parse_networks(value)
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return parse_networks(self.trusted_proxies)

    @field_validator("twilio_template_sids")
    @classmethod
    def _valid_template_sids(cls, value: str) -> str:
        parse_template_sids(value)
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _valid_telegram_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram's setWebhook accepts only these characters and lengths for secret_token.
        secret = value.get_secret_value() if value is not None else None
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ValueError("expected 1 to 256 characters from A-Z, a-z, 0-9, _ and -")
        return value

    @model_validator(mode="after")
    def _telegram_token_with_secret(self) -> Settings:
        if bool(self.telegram_bot_token) != bool(self.telegram_webhook_secret):
            raise ValueError(
                "MYAFYA_TELEGRAM_BOT_TOKEN and MYAFYA_TELEGRAM_WEBHOOK_SECRET must be set together"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}, e.g. Africa/Nairobi") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError(
                f"unsupported database URL scheme in {value.split(':', 1)[0]!r}; "
                "use sqlite:///PATH or postgresql://USER@HOST/DB"
            )
        return value

    @field_validator("broker_url")
    @classmethod
    def _supported_broker(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
            raise ValueError(
                f"unsupported broker URL scheme in {value.split(':', 1)[0]!r}; "
                "use redis://HOST:PORT/DB or amqp://USER:PASSWORD@HOST:PORT/VHOST"
            )
        return value

    @field_validator("reminder_offsets_minutes")
    @classmethod
    def _valid_offsets(cls, value: str) -> str:
        parse_reminder_offsets(value)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _valid_quiet_hours(cls, value: str) -> str:
        QuietHours.parse(value)
        return value

    @model_validator(mode="after")
    def _choose_sandbox(self) -> Settings:
        if self.sandbox is None:
            self.sandbox = not self.has_provider_credentials
        if not self.sandbox and not self.has_provider_credentials:
            raise ValueError(
                "live mode (MYAFYA_SANDBOX=0) needs MYAFYA_AT_USERNAME and MYAFYA_AT_API_KEY"
            )
        if bool(self.twilio_account_sid) != bool(self.twilio_auth_token):
            raise ValueError(
                "MYAFYA_TWILIO_ACCOUNT_SID and MYAFYA_TWILIO_AUTH_TOKEN must be set together"
            )
        return self

    @property
    def has_provider_credentials(self) -> bool:
        return bool(self.at_username and self.at_api_key)

    @property
    def sandbox_on(self) -> bool:
        return bool(self.sandbox)

    def fakes_url(self, own_url: str) -> str:
        """Return the base URL of the provider fakes: `sandbox_url`, or else `own_url`."""
        return self.sandbox_url or own_url

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def delivery_policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(
            zone=self.zone,
            reminder_offsets=parse_reminder_offsets(self.reminder_offsets_minutes),
            quiet_hours=QuietHours.parse(self.quiet_hours),
            max_attempts=self.max_send_attempts,
            whatsapp=self.whatsapp_enabled,
            whatsapp_templates=frozenset(self.whatsapp_templates),
        )

    @property
    def at_credentials(self) -> tuple[str, str]:
        """Return the Africa's Talking username and API key, or the sandbox placeholders."""
        if self.at_username and self.at_api_key:
            return self.at_username, self.at_api_key.get_secret_value()
        return SANDBOX_AT_USERNAME, SANDBOX_AT_API_KEY

    @property
    def at_webhook_path_secret(self) -> SecretStr | None:
        """Return the secret path segment of the Africa's Talking SMS callbacks: the configured
        one, the sandbox placeholder, or None outside the sandbox when none is set."""
        if self.at_webhook_secret:
            return self.at_webhook_secret
        if self.sandbox_on:
            return SecretStr(SANDBOX_AT_WEBHOOK_SECRET)
        return None

    @property
    def telegram_credentials(self) -> tuple[str, str] | None:
        """Return the Telegram bot token and webhook secret, the sandbox placeholders, or None
        when Telegram is not configured outside the sandbox."""
        if self.telegram_bot_token and self.telegram_webhook_secret:
            return (
                self.telegram_bot_token.get_secret_value(),
                self.telegram_webhook_secret.get_secret_value(),
            )
        if self.sandbox_on:
            return SANDBOX_TELEGRAM_BOT_TOKEN, SANDBOX_TELEGRAM_WEBHOOK_SECRET
        return None

    @property
    def twilio_credentials(self) -> tuple[str, str] | None:
        """Return the Twilio account SID and auth token, the sandbox placeholders, or None
        when Twilio is not configured outside the sandbox."""
        if self.twilio_account_sid and self.twilio_auth_token:
            return self.twilio_account_sid, self.twilio_auth_token.get_secret_value()
        if self.sandbox_on:
            return SANDBOX_TWILIO_ACCOUNT_SID, SANDBOX_TWILIO_AUTH_TOKEN
        return None

    @property
    def whatsapp_from(self) -> str | None:
        if self.twilio_whatsapp_from or not self.sandbox_on:
            return self.twilio_whatsapp_from
        return SANDBOX_TWILIO_WHATSAPP_FROM

    @property
    def twilio_sms_sender(self) -> str | None:
        if self.twilio_sms_from or not self.sandbox_on:
            return self.twilio_sms_from
        return SANDBOX_TWILIO_SMS_FROM

    @property
    def whatsapp_enabled(self) -> bool:
        """Whether WhatsApp messages can be sent: Twilio credentials and a sender number."""
        return self.twilio_credentials is not None and self.whatsapp_from is not None

    @property
    def whatsapp_templates(self) -> dict[str, str]:
        """Return the approved template Content SID for each message kind that has one."""
        if self.twilio_template_sids.strip() or not self.sandbox_on:
            return parse_template_sids(self.twilio_template_sids)
        return parse_template_sids(SANDBOX_TWILIO_TEMPLATE_SIDS)


def parse_reminder_offsets(text: str) -> tuple[timedelta, ...]:
    """Parse minutes before the appointment, e.g. "1440,60"; an empty text means no reminders."""
    offsets = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            minutes = int(part)
        except ValueError:
            raise ValueError(f"expected whole minutes separated by commas, got {part!r}") from None
        if not 1 <= minutes <= 60 * 24 * 30:
            raise ValueError(f"expected 1 to 43200 minutes before the appointment, got {minutes}")
        offsets.append(timedelta(minutes=minutes))
    return tuple(sorted(set(offsets), reverse=True))


TEMPLATE_KINDS: Final = frozenset(kind.value for kind in MessageKind)
_CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")


def parse_template_sids(text: str) -> dict[str, str]:
    """Parse "reminder=HX…,booked=HX…" into {message kind: Content SID}."""
    templates: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        kind, separator, sid = (piece.strip() for piece in part.partition("="))
        if not separator or kind not in TEMPLATE_KINDS:
            known = ", ".join(sorted(TEMPLATE_KINDS))
            raise ValueError(
                f"invalid template entry {part.strip()!r}: expected KIND=HX… with "
                f"KIND one of {known}"
            )
        if _CONTENT_SID.fullmatch(sid) is None:
            raise ValueError(
                f"invalid Content SID {sid!r} for {kind}: expected HX and 32 hex digits"
            )
        templates[kind] = sid
    return templates


def _unknown_variables(environ: dict[str, str]) -> list[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(
        key
        for key in environ
        if key.upper().startswith(ENV_PREFIX) and key.upper() not in known | TEST_VARIABLES
    )


def load_settings(env_file: Path | None = Path(".env"), **overrides: Any) -> Settings:
    """Read and validate settings, raising SettingsError that names the offending variable."""
    variables = dict(os.environ)
    if env_file is not None and env_file.is_file():
        variables.update({k: v or "" for k, v in dotenv_values(env_file).items()})
    unknown = _unknown_variables(variables)
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]}; check its spelling or remove it")
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = _error_reason(first)
        if not first["loc"]:  # a rule across several settings names them in its message
            raise SettingsError(f"invalid settings: {reason}") from None
        name = ENV_PREFIX + "_".join(str(part) for part in first["loc"]).upper()
        raise SettingsError(f"invalid setting {name}: {reason}") from None


def _error_reason(error: ErrorDetails) -> str:
    """Return the reason of one validation error without pydantic's "Value error, " prefix.

    For a ValueError raised by a validator, that is the exception's own message.
    """
    if error["type"] == "value_error":
        raised = error.get("ctx", {}).get("error")
        if raised is not None:
            return str(raised)
    return error["msg"]


def is_loopback_url(url: str) -> bool:
    """Return whether the URL's host is localhost or a loopback address."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
