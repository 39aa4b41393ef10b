"""Africa's Talking USSD requests, validated into typed values."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import InvalidPhoneNumber
from core.identity.phones import normalize_phone

MAX_TEXT_LENGTH = 1000
SESSION_ID = re.compile(r"^[A-Za-z0-9_\-.:]{1,100}$")
SERVICE_CODE = re.compile(r"^[*#0-9]{2,40}$")
NETWORK_CODE = re.compile(r"^[0-9]{1,10}$")


class InvalidRequest(Exception):
    """A provider request lacks a field or carries a malformed one; the message names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class UssdRequest:
    session_id: str
    service_code: str
    phone: str  # E.164
    network_code: str | None
    text: str


@dataclass(frozen=True)
class UssdSessionEnd:
    session_id: str
    status: str
    phone: str | None
    network_code: str | None
    hops: int | None
    duration_ms: int | None
    cost: str | None
    error_message: str | None
    date: str | None


SESSION_STATUSES = frozenset({"Success", "Incomplete", "Failed"})


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise InvalidRequest(name, "missing")
    return value


def _matching(form: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str:
    value = _required(form, name).strip()
    if not pattern.fullmatch(value):
        raise InvalidRequest(name, f"invalid value {value[:40]!r}")
    return value


def _phone(form: Mapping[str, str], name: str) -> str:
    try:
        return normalize_phone(_required(form, name))
    except InvalidPhoneNumber:
        raise InvalidRequest(name, "not a valid phone number") from None


def _network_code(form: Mapping[str, str]) -> str | None:
    network = form.get("networkCode", "").strip()
    if network and not NETWORK_CODE.fullmatch(network):
        raise InvalidRequest("networkCode", f"invalid value {network[:20]!r}")
    return network or None


def parse_ussd_request(form: Mapping[str, str]) -> UssdRequest:
    text = _required(form, "text")
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidRequest("text", f"longer than {MAX_TEXT_LENGTH} characters")
    network = _network_code(form)
    return UssdRequest(
        session_id=_matching(form, "sessionId", SESSION_ID),
        service_code=_matching(form, "serviceCode", SERVICE_CODE),
        phone=_phone(form, "phoneNumber"),
        network_code=network,
        text=text.strip(),
    )


# Largest hop count or duration stored; a 32-bit column on PostgreSQL.
MAX_COUNTER = 2**31 - 1
MAX_COST_LENGTH = 20  # "KES 0.10" or "0.0"; the column is VARCHAR(20)
MAX_ERROR_MESSAGE_LENGTH = 1000


def _optional_int(form: Mapping[str, str], name: str) -> int | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequest(name, f"not a number: {raw[:20]!r}") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_COUNTER:
        raise InvalidRequest(name, f"expected 0 to {MAX_COUNTER}, got {raw[:20]!r}")
    return int(value)


def _optional_text(form: Mapping[str, str], name: str, max_length: int) -> str | None:
    value = form.get(name) or None
    if value is not None and len(value) > max_length:
        raise InvalidRequest(name, f"longer than {max_length} characters")
    return value


def parse_session_end(form: Mapping[str, str]) -> UssdSessionEnd:
    status = _required(form, "status").strip()
    if status not in SESSION_STATUSES:
        raise InvalidRequest("status", f"expected one of {sorted(SESSION_STATUSES)}")
    phone = _phone(form, "phoneNumber") if form.get("phoneNumber") else None
    return UssdSessionEnd(
        session_id=_matching(form, "sessionId", SESSION_ID),
        status=status,
        phone=phone,
        network_code=_network_code(form),
        hops=_optional_int(form, "hopsCount"),
        duration_ms=_optional_int(form, "durationInMillis"),
        cost=_optional_text(form, "cost", MAX_COST_LENGTH),
        error_message=_optional_text(form, "errorMessage", MAX_ERROR_MESSAGE_LENGTH),
        date=(form.get("date") or None),
    )
