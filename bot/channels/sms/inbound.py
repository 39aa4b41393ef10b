"""Africa's Talking inbound SMS: the callback for messages patients send to our short code.

Africa's Talking signs nothing, so a request is accepted on one of two paths:
- `POST /webhooks/africastalking/sms/{secret}`, when `{secret}` equals
  `MYAFYA_AT_WEBHOOK_SECRET` (compared in constant time), or the sandbox placeholder when the
  sandbox is on and the setting is unset. This is the one to register.
- `POST /webhooks/africastalking/sms`, only from an address in `MYAFYA_AT_ALLOWED_NETWORKS`;
  with that setting empty, this path rejects every request.
Anything else gets 403 before the body is read, with the reason in the body. The form fields are
`from`, `to`, `text`, `date` (`2017-05-03T06:04:45Z` or `2017-05-03 06:04:45`, read as UTC),
`id`, and the optional `linkId` and `networkCode`; other fields are ignored. Messages are
deduplicated on `id`.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Network
from typing import Any, Final

from aiohttp import web
from pydantic import SecretStr

from bot.channels.forms import unsupported_form_body
from bot.channels.sms.rendering import SMS_LIMITS
from bot.channels.sms.two_way import handle_sms
from bot.channels.ussd.parsing import InvalidRequest
from bot.channels.ussd.webhook import client_allowed
from bot.engine.host import ConversationHost
from bot.engine.model import InboundMessage, Input
from core.errors import InvalidPhoneNumber
from core.identity.phones import normalize_phone

log = logging.getLogger(__name__)

PROVIDER: Final = "africastalking"
CHANNEL: Final = "sms"

# inbound_messages.provider_message_id is VARCHAR(100).
MESSAGE_ID: Final = re.compile(r"[A-Za-z0-9_\-.:]{1,100}")
# A short code or an alphanumeric sender id.
RECIPIENT: Final = re.compile(r"[A-Za-z0-9+ _\-]{1,40}")
NETWORK_CODE: Final = re.compile(r"[0-9]{1,10}")
LINK_ID: Final = re.compile(r"[A-Za-z0-9_\-.:]{1,100}")
# Ten concatenated parts of 153 GSM-7 characters: a chosen bound, as Africa's Talking
# documents no maximum.
MAX_TEXT_LENGTH: Final = 1530
DATE_FORMATS: Final = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S")
# The URL to register, which the 403 of the plain path names. It contains no secret.
SECRET_PATH_TEMPLATE: Final = "/webhooks/africastalking/sms/{MYAFYA_AT_WEBHOOK_SECRET}"  # noqa: S105


@dataclass(frozen=True)
class InboundSms:
    message_id: str
    phone: str  # E.164
    to: str
    text: str
    sent_at: datetime  # UTC
    link_id: str | None
    network_code: str | None


def parse_inbound_sms(form: Mapping[str, str]) -> InboundSms:
    """Validate the callback's form fields; raises InvalidRequest naming the first bad field."""
    text = _required(form, "text")
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidRequest("text", f"longer than {MAX_TEXT_LENGTH} characters")
    try:
        phone = normalize_phone(_required(form, "from"))
    except InvalidPhoneNumber:
        raise InvalidRequest("from", "not a valid phone number") from None
    return InboundSms(
        message_id=_matching(form, "id", MESSAGE_ID),
        phone=phone,
        to=_matching(form, "to", RECIPIENT),
        text=text,
        sent_at=_date(_required(form, "date")),
        link_id=_optional(form, "linkId", LINK_ID),
        network_code=_optional(form, "networkCode", NETWORK_CODE),
    )


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


def _optional(form: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str | None:
    value = form.get(name, "").strip()
    if not value:
        return None
    if not pattern.fullmatch(value):
        raise InvalidRequest(name, f"invalid value {value[:40]!r}")
    return value


def _date(raw: str) -> datetime:
    value = raw.strip()
    for pattern in DATE_FORMATS:
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    expected = "expected 2017-05-03T06:04:45Z or 2017-05-03 06:04:45"
    raise InvalidRequest("date", f"invalid value {value[:40]!r}; {expected}")


def _text_response(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/plain")


class AfricasTalkingInboundSms:
    def __init__(
        self,
        *,
        host: ConversationHost,
        secret: SecretStr | None,
        allowed_networks: Sequence[IPv4Network | IPv6Network],
        metrics: Any,
    ) -> None:
        self._host = host
        self._secret = secret.get_secret_value().encode() if secret else None
        self._allowed_networks = tuple(allowed_networks)
        self._metrics = metrics

    async def handle_with_secret(self, request: web.Request) -> web.Response:
        """Handle `POST /webhooks/africastalking/sms/{secret}`."""
        path_secret = request.match_info.get("secret", "").encode()
        if not self._secret:
            return self._forbidden(
                "MYAFYA_AT_WEBHOOK_SECRET is not set, so every request is rejected"
            )
        if not hmac.compare_digest(path_secret, self._secret):
            return self._forbidden("the last path segment is not MYAFYA_AT_WEBHOOK_SECRET")
        return await self._handle(request)

    async def handle_from_network(self, request: web.Request) -> web.Response:
        """Handle `POST /webhooks/africastalking/sms` from an allowed address."""
        if not self._allowed_networks:
            return self._forbidden(
                "MYAFYA_AT_ALLOWED_NETWORKS is empty, so this path accepts no client; post to "
                f"{SECRET_PATH_TEMPLATE} instead"
            )
        if not client_allowed(request.remote, self._allowed_networks):
            return self._forbidden("the client address is not in MYAFYA_AT_ALLOWED_NETWORKS")
        return await self._handle(request)

    def _forbidden(self, reason: str) -> web.Response:
        """Reject a request with 403. The body names the reason but never the secret."""
        self._metrics.requests.labels(CHANNEL, "forbidden").inc()
        log.warning("inbound SMS rejected: %s", reason, extra={"channel": CHANNEL})
        return _text_response(f"forbidden: {reason}", status=403)

    async def _handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        if (rejection := unsupported_form_body(request)) is not None:
            self._observe("bad_request", started)
            log.info(
                "inbound SMS rejected: content type %r is not a form",
                request.content_type,
                extra={"channel": CHANNEL},
            )
            return rejection
        form = await request.post()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        try:
            sms = parse_inbound_sms(fields)
        except InvalidRequest as exc:
            self._observe("bad_request", started)
            log.info("inbound SMS rejected", extra={"channel": CHANNEL, "field": exc.field})
            return _text_response(f"invalid request: {exc}", status=400)

        message = InboundMessage(
            channel=CHANNEL,
            provider=PROVIDER,
            provider_message_id=sms.message_id,
            key=sms.phone,
            reply_to=sms.phone,
            input=Input.of_text(sms.text),
            received_at=sms.sent_at,
            limits=SMS_LIMITS,
        )
        try:
            result = await handle_sms(self._host, message)
        except Exception:
            # Nothing committed, so the gateway's retry, if it sends one, is safe.
            log.exception(
                "inbound SMS failed",
                extra={"channel": CHANNEL, "provider_message_id": sms.message_id},
            )
            self._observe("error", started)
            return _text_response("internal error", status=500)

        elapsed_ms = self._observe(result.outcome, started)
        step = result.message_result
        log.info(
            "inbound SMS",
            extra={
                "channel": CHANNEL,
                "provider_message_id": sms.message_id,
                "keyword": result.keyword.name if result.keyword else None,
                "conversation_id": step.conversation_id if step else None,
                "state_from": step.state_before if step else None,
                "state_to": step.state_after if step else None,
                "outcome": result.outcome,
                "elapsed_ms": round(elapsed_ms, 2),
            },
        )
        return _text_response("OK")

    def _observe(self, outcome: str, started: float) -> float:
        elapsed = time.perf_counter() - started
        self._metrics.requests.labels(CHANNEL, outcome).inc()
        self._metrics.step_seconds.labels(CHANNEL).observe(elapsed)
        return elapsed * 1000
