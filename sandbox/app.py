"""Routes of the sandbox: the provider fakes and the endpoints tests and trainers drive them with.

- `POST /sandbox/africastalking/version1/messaging`: the Africa's Talking SMS fake. Point the SDK
  at `{server}/sandbox/africastalking`.
- `POST /sandbox/twilio/2010-04-01/Accounts/{sid}/Messages.json`: the Twilio Messages API fake.
  Point the SDK's `client.api.base_url` at `{server}/sandbox/twilio`.
- `POST /sandbox/twilio/v1/Content`, `GET /sandbox/twilio/v1/Content/{sid}`: the Content API
  fake. Point the SDK's `client.content.base_url` at `{server}/sandbox/twilio` too.
- `/sandbox/telegram/bot{token}/{method}`: the Telegram Bot API fake (see `sandbox.telegram`).
  Point python-telegram-bot's `base_url` at `{server}/sandbox/telegram/bot`.
- `GET /sandbox/messages[?to=+2547…]`: messages the fakes accepted, newest last. An interactive
  WhatsApp message also has `interactive`: its `content_sid` and `type`, and its quick-reply
  `buttons` (`title`, `id`) or its list picker (`button`, `items` of `item`, `id`,
  `description`).
- `DELETE /sandbox/messages`: forget them.
- `POST /sandbox/faults`: `{"service", "http_status", "delay_seconds", "count"}` makes the next
  `count` requests to that fake wait `delay_seconds` (optional), then fail with `http_status`
  (optional; without it they succeed after the delay). One of the two is required.
  `{"service": "twilio.whatsapp", "to": "whatsapp:+2547…", "error_code": 63016, "count",
  "stage"}` makes the next `count` sends to that WhatsApp number fail with the error code, in the
  API response (`stage` "api", the default) or in a `failed` status callback ("status_callback").
- `DELETE /sandbox/faults`: forget the pending faults; requests waiting out an injected delay go
  on at once.
- `POST /sandbox/africastalking/blacklist`: `{"phone"}` makes sends to that number fail with
  `UserInBlacklist`.
- `GET /sandbox/clock`: `{"now"}`, the service's current time in UTC.
- `POST /sandbox/clock`: `{"advance_seconds": N}` moves the service's clock forward by N seconds,
  then hands the work that fell due to the job queue before it responds with `{"now", "queued"}`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, Protocol, TypeVar

from aiohttp import web

from core.clock import Clock
from sandbox.africastalking import SMS_FAULT_SERVICE, AfricasTalkingSmsFake, is_valid_e164
from sandbox.store import SandboxMessage, SandboxStore
from sandbox.telegram import TELEGRAM_FAULT_SERVICE
from sandbox.twilio import MESSAGES_FAULT_SERVICE as TWILIO_MESSAGES_FAULT
from sandbox.twilio import RECIPIENT_FAULT_SERVICE as TWILIO_RECIPIENT_FAULT
from sandbox.twilio import FaultRequestError, TwilioMessagesFake
from sandbox.twilio_content import CONTENT_FAULT_SERVICE as TWILIO_CONTENT_FAULT

log = logging.getLogger(__name__)

# Long enough to outlast a USSD gateway's wait for a reply, short enough for a test.
MAX_FAULT_DELAY_SECONDS = 30

FAULT_SERVICES: Final = frozenset(
    {SMS_FAULT_SERVICE, TWILIO_MESSAGES_FAULT, TWILIO_CONTENT_FAULT, TELEGRAM_FAULT_SERVICE}
)

# A year: enough to walk through any reminder or expiry, and it keeps datetimes in range.
MAX_CLOCK_ADVANCE_SECONDS = 366 * 24 * 3600

_FieldType = TypeVar("_FieldType")


# The Twilio fake of an app that has one, so a caller can wait for its status callbacks.
TWILIO_FAKE = web.AppKey("sandbox_twilio_fake", TwilioMessagesFake)


class AdvanceableClock(Protocol):
    def now(self) -> Any: ...

    def advance(self, seconds: float) -> Any: ...


def add_sandbox_routes(
    app: web.Application,
    *,
    store: SandboxStore,
    clock: Clock,
    at_username: str,
    at_api_key: str,
    at_sender_ids: frozenset[str],
    claim_due_work: Callable[[], Awaitable[int]] | None = None,
    twilio_account: tuple[str, str] | None = None,
    twilio_templates: Iterable[str] = (),
    self_url: str | None = None,
) -> None:
    """Register the fakes and the sandbox control endpoints on `app`.

    `claim_due_work` runs after each clock advance and returns how many jobs it queued.
    `twilio_account` (account SID, auth token) enables the Twilio fake, which posts its status
    callbacks to `self_url`, this server's own address, and accepts sends of the approved
    template SIDs in `twilio_templates`.
    """
    sms_fake = AfricasTalkingSmsFake(
        store=store,
        clock=clock,
        username=at_username,
        api_key=at_api_key,
        sender_ids=at_sender_ids,
    )
    twilio_fake = None
    if twilio_account is not None:
        twilio_fake = TwilioMessagesFake(
            store=store,
            clock=clock,
            account_sid=twilio_account[0],
            auth_token=twilio_account[1],
            callback_base_url=self_url,
            templates=twilio_templates,
        )
        app.router.add_post(
            "/sandbox/twilio/2010-04-01/Accounts/{account_sid}/Messages.json",
            twilio_fake.handle_create,
        )
        app.router.add_post("/sandbox/twilio/v1/Content", twilio_fake.contents.handle_create)
        app.router.add_get(
            "/sandbox/twilio/v1/Content/{content_sid}", twilio_fake.contents.handle_fetch
        )

        async def close_twilio_fake(app: web.Application) -> None:
            assert twilio_fake is not None
            await twilio_fake.close()

        app.on_cleanup.append(close_twilio_fake)
        app[TWILIO_FAKE] = twilio_fake
    control = _SandboxControl(store, twilio_fake)

    app.router.add_post("/sandbox/africastalking/version1/messaging", sms_fake.handle_send)
    app.router.add_post("/sandbox/africastalking/blacklist", control.add_to_blacklist)
    app.router.add_get("/sandbox/messages", control.list_messages)
    app.router.add_delete("/sandbox/messages", control.clear_messages)
    app.router.add_post("/sandbox/faults", control.inject_fault)
    app.router.add_delete("/sandbox/faults", control.end_faults)
    if hasattr(clock, "advance"):
        clock_control = _ClockControl(clock, claim_due_work)  # type: ignore[arg-type]
        app.router.add_get("/sandbox/clock", clock_control.read)
        app.router.add_post("/sandbox/clock", clock_control.advance)


class _InvalidField(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid field '{field}': {reason}")
        self.field = field


class _SandboxControl:
    """Handlers that let tests and trainers read and steer the fakes."""

    def __init__(self, store: SandboxStore, twilio_fake: TwilioMessagesFake | None = None) -> None:
        self._store = store
        self._twilio_fake = twilio_fake

    async def list_messages(self, request: web.Request) -> web.Response:
        messages = self._store.list()
        recipient = request.query.get("to")
        if recipient is not None:
            phone = _normalise_query_phone(recipient)
            messages = [message for message in messages if message.to == phone]
        return web.json_response([_message_json(message) for message in messages])

    async def clear_messages(self, request: web.Request) -> web.Response:
        self._store.clear()
        return web.Response(status=204)

    async def inject_fault(self, request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            service = _required_field(body, "service", str)
            if service == TWILIO_RECIPIENT_FAULT and self._twilio_fake is not None:
                try:
                    self._twilio_fake.inject_recipient_fault(body)
                except FaultRequestError as exc:
                    raise _InvalidField(exc.field, exc.reason) from None
                return web.Response(status=204)
            if service not in FAULT_SERVICES:
                known = ", ".join(sorted(FAULT_SERVICES))
                raise _InvalidField(
                    "service", f"unknown service {service!r}; expected one of {known}"
                )
            http_status = body.get("http_status")
            delay_seconds = body.get("delay_seconds", 0)
            count = _required_field(body, "count", int)
            if http_status is None and not delay_seconds:
                raise _InvalidField(
                    "http_status", "missing; give http_status, delay_seconds or both"
                )
            if http_status is not None and (
                not isinstance(http_status, int) or isinstance(http_status, bool)
            ):
                raise _InvalidField("http_status", "expected an integer")
            if isinstance(delay_seconds, bool) or not isinstance(delay_seconds, int | float):
                raise _InvalidField("delay_seconds", "expected a number of seconds")
            if not 0 <= delay_seconds <= MAX_FAULT_DELAY_SECONDS:
                raise _InvalidField(
                    "delay_seconds", f"expected 0 to {MAX_FAULT_DELAY_SECONDS}, got {delay_seconds}"
                )
            if http_status is not None and not 400 <= http_status <= 599:
                raise _InvalidField("http_status", f"expected 400 to 599, got {http_status}")
            if count < 1:
                raise _InvalidField("count", f"expected at least 1, got {count}")
        except _InvalidField as exc:
            return _bad_request(exc)

        self._store.inject_fault(service, http_status, count, float(delay_seconds))
        return web.Response(status=204)

    async def end_faults(self, request: web.Request) -> web.Response:
        self._store.end_faults()
        if self._twilio_fake is not None:
            self._twilio_fake.end_recipient_faults()
        return web.Response(status=204)

    async def add_to_blacklist(self, request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            phone = _required_field(body, "phone", str)
            if not is_valid_e164(phone):
                raise _InvalidField("phone", "expected a valid E.164 number such as +254700000001")
        except _InvalidField as exc:
            return _bad_request(exc)

        self._store.add_to_blacklist(phone)
        return web.Response(status=204)


class _ClockControl:
    """Test-clock handlers, in the manner of Stripe's test clocks."""

    def __init__(
        self, clock: AdvanceableClock, claim_due_work: Callable[[], Awaitable[int]] | None
    ) -> None:
        self._clock = clock
        self._claim_due_work = claim_due_work

    async def read(self, request: web.Request) -> web.Response:
        return web.json_response({"now": self._clock.now().isoformat()})

    async def advance(self, request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            if "advance_seconds" not in body:
                raise _InvalidField("advance_seconds", "missing")
            seconds = body["advance_seconds"]
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise _InvalidField("advance_seconds", f"expected a number, got {seconds!r}")
            if not math.isfinite(seconds) or not 0 <= seconds <= MAX_CLOCK_ADVANCE_SECONDS:
                raise _InvalidField(
                    "advance_seconds",
                    f"expected 0 to {MAX_CLOCK_ADVANCE_SECONDS} seconds, got {seconds}",
                )
        except _InvalidField as exc:
            return _bad_request(exc)

        now = self._clock.advance(float(seconds))
        queued = await self._claim_due_work() if self._claim_due_work is not None else 0
        log.info("Sandbox clock advanced by %s s; %d jobs queued", seconds, queued)
        return web.json_response({"now": now.isoformat(), "queued": queued})


def _normalise_query_phone(value: str) -> str:
    # An unescaped "+" in a query string decodes to a space, so `?to=+2547…` arrives as " 2547…".
    digits = value.strip().removeprefix("+")
    return "+" + digits


def _message_json(message: SandboxMessage) -> dict[str, Any]:
    data: dict[str, Any] = {
        "channel": message.channel,
        "provider": message.provider,
        "to": message.to,
        "text": message.text,
        "provider_message_id": message.provider_message_id,
        "sent_at": message.sent_at,
    }
    if message.interactive is not None:
        data["interactive"] = message.interactive
    return data


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise _InvalidField("body", f"not valid JSON ({exc.msg})") from exc
    if not isinstance(body, dict):
        raise _InvalidField("body", "expected a JSON object")
    return body


def _required_field(body: dict[str, Any], field: str, kind: type[_FieldType]) -> _FieldType:
    if field not in body:
        raise _InvalidField(field, "missing")
    value = body[field]
    # bool is a subclass of int, but `true` is no HTTP status or count.
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _InvalidField(field, f"expected {kind.__name__}, got {value!r}")
    return value


def _bad_request(error: _InvalidField) -> web.Response:
    log.info("Sandbox control request rejected: %s", error)
    return web.json_response({"error": str(error), "field": error.field}, status=400)
