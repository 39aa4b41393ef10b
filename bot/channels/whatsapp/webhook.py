"""Twilio webhooks: WhatsApp and SMS inbound messages, and message status callbacks.

- `POST /webhooks/twilio/whatsapp`: a WhatsApp message to our number. A pressed button or list
  item of ours acts only on the screen it was drawn for; one from an older message changes
  nothing and gets the current screen again.
- `POST /webhooks/twilio/sms`: an SMS to our Twilio number, applied by the two-way SMS handler
  (keywords, then the conversation).
- `POST /webhooks/twilio/status`: the `StatusCallback` of a message we sent.

Each request's `X-Twilio-Signature` is checked before any field is read; a failed check gets
403 and changes nothing. Inbound messages get an empty TwiML response, because replies go out
through the outbox and the Messages API after the transaction commits. A message Twilio
delivers again gets the same empty TwiML and changes nothing: the host's dedupe row on
`MessageSid` decides. Status callbacks are stored once per (`MessageSid`, `MessageStatus`) and
move the outbox row forward only; error 63016 starts the window fallback.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from twilio.twiml.messaging_response import MessagingResponse

from bot.channels.forms import unsupported_form_body
from bot.channels.sms.rendering import SMS_LIMITS
from bot.channels.sms.two_way import SmsResult, handle_sms
from bot.channels.whatsapp.parsing import InvalidField, parse_inbound, parse_status
from bot.channels.whatsapp.presses import resend_current_screen
from bot.channels.whatsapp.signature import InvalidSignature, TwilioSignatureCheck, form_parameters
from bot.engine.host import ConversationHost, handle_message
from bot.engine.model import InboundMessage, MessageResult, ScreenLimits
from core.db.database import Sql
from core.notify.delivery import ReportOutcome, record_delivery_report
from core.notify.dispatch import OutboxDispatcher
from core.notify.policy import DeliveryPolicy
from core.notify.statuses import TWILIO
from core.notify.whatsapp_window import fall_back_after_window_error, whatsapp_address

log = logging.getLogger(__name__)

# `<?xml version="1.0" encoding="UTF-8"?><Response />`: Twilio sends no reply of its own.
EMPTY_TWIML: Final = MessagingResponse().to_xml()

# Chat replies are limited only in the number of choices; the sender cuts a text that is
# longer than the Body limit of Twilio.
WHATSAPP_LIMITS: Final = ScreenLimits(max_chars=None, max_choices=9)

_FIND_ROW = Sql(
    "SELECT id FROM outbox_messages WHERE provider_message_id = :sid ORDER BY id LIMIT 1"
)

InboundHandler = Callable[[InboundMessage], Awaitable[Any]]


def twiml_response(status: int = 200) -> web.Response:
    return web.Response(text=EMPTY_TWIML, status=status, content_type="text/xml")


def _text_response(text: str, status: int) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/plain")


class TwilioWebhooks:
    def __init__(
        self,
        *,
        host: ConversationHost,
        signature: TwilioSignatureCheck,
        policy: DeliveryPolicy,
        metrics: Any,
        dispatcher: OutboxDispatcher | None = None,
    ) -> None:
        self._host = host
        self._signature = signature
        self._policy = policy
        self._metrics = metrics
        self._dispatcher = dispatcher

    async def _to_conversation(self, message: InboundMessage) -> Any:
        return await handle_message(self._host, message)

    async def _to_two_way_sms(self, message: InboundMessage) -> Any:
        # Keywords (STOP, BOOK, …) first, then the conversation, as for Africa's Talking.
        return await handle_sms(self._host, message)

    async def handle_whatsapp(self, request: web.Request) -> web.Response:
        return await self._inbound(request, "whatsapp", self._to_conversation, WHATSAPP_LIMITS)

    async def handle_sms(self, request: web.Request) -> web.Response:
        return await self._inbound(request, "sms", self._to_two_way_sms, SMS_LIMITS)

    async def _authenticated_form(self, request: web.Request, endpoint: str) -> dict[str, str]:
        """Read the body and check its signature; raise InvalidSignature when it fails."""
        body = await request.read()
        try:
            parameters = form_parameters(body)
            self._signature.verify(request, parameters)
        except InvalidSignature as exc:
            self._metrics.requests.labels(endpoint, "forbidden").inc()
            log.warning("Twilio webhook rejected: %s", exc, extra={"endpoint": endpoint})
            raise
        # A repeated field keeps its first value.
        form: dict[str, str] = {}
        for name, value in parameters.items():
            form.setdefault(name, value)
        return form

    def _not_a_form(self, request: web.Request, endpoint: str) -> web.Response | None:
        rejection = unsupported_form_body(request)
        if rejection is not None:
            self._metrics.requests.labels(endpoint, "bad_request").inc()
            log.info(
                "Twilio webhook rejected: content type %r is not a form",
                request.content_type,
                extra={"endpoint": endpoint},
            )
        return rejection

    async def _inbound(
        self,
        request: web.Request,
        channel: str,
        handler: InboundHandler,
        limits: ScreenLimits,
    ) -> web.Response:
        started = time.perf_counter()
        endpoint = f"twilio_{channel}"
        try:
            form = await self._authenticated_form(request, endpoint)
        except InvalidSignature:
            return _text_response("forbidden: invalid X-Twilio-Signature", 403)
        if (rejection := self._not_a_form(request, endpoint)) is not None:
            return rejection
        try:
            parsed = parse_inbound(form, whatsapp=channel == "whatsapp")
        except InvalidField as exc:
            self._metrics.requests.labels(endpoint, "bad_request").inc()
            log.info("Twilio %s webhook rejected", channel, extra={"field": exc.field})
            return _text_response(f"invalid request: {exc}", 400)

        if parsed.phone is None:
            # Nothing to key a conversation on, such as a business-scoped WhatsApp user id.
            self._metrics.requests.labels(endpoint, "ignored").inc()
            log.info(
                "Twilio %s message ignored: the sender is not a phone number",
                channel,
                extra={"message_sid": parsed.message_sid},
            )
            return twiml_response()

        message = InboundMessage(
            channel=channel,
            provider=TWILIO,
            provider_message_id=parsed.message_sid,
            key=parsed.phone,
            reply_to=whatsapp_address(parsed.phone) if channel == "whatsapp" else parsed.phone,
            input=parsed.input,
            received_at=self._host.clock.now(),
            limits=limits,
        )
        try:
            if parsed.press is not None and channel == "whatsapp":
                # The host treats a press drawn for another conversation or an older screen
                # as stale.
                message = dataclasses.replace(
                    message,
                    screen_version=parsed.press.screen_version,
                    screen_conversation_id=parsed.press.conversation_id,
                )
            result = await handler(message)
            if isinstance(result, MessageResult) and result.stale_screen:
                await resend_current_screen(self._host, message)
        except Exception:
            self._observe(endpoint, "error", started)
            log.exception(
                "Twilio %s message failed", channel, extra={"message_sid": parsed.message_sid}
            )
            return _text_response("internal error; the message was not applied", 500)

        outcome = _outcome(result)
        elapsed_ms = self._observe(endpoint, outcome, started)
        log.info(
            "Twilio %s message",
            channel,
            extra={
                "channel": channel,
                "message_sid": parsed.message_sid,
                "input_kind": parsed.input.kind.value,
                "conversation_id": getattr(result, "conversation_id", None),
                "state_from": getattr(result, "state_before", None),
                "state_to": getattr(result, "state_after", None),
                "outcome": outcome,
                "elapsed_ms": round(elapsed_ms, 2),
            },
        )
        return twiml_response()

    async def handle_status(self, request: web.Request) -> web.Response:
        endpoint = "twilio_status"
        try:
            form = await self._authenticated_form(request, endpoint)
        except InvalidSignature:
            return _text_response("forbidden: invalid X-Twilio-Signature", 403)
        if (rejection := self._not_a_form(request, endpoint)) is not None:
            return rejection
        try:
            status = parse_status(form)
        except InvalidField as exc:
            self._metrics.requests.labels(endpoint, "bad_request").inc()
            log.info("Twilio status callback rejected", extra={"field": exc.field})
            return _text_response(f"invalid request: {exc}", 400)

        now = self._host.clock.now()
        fallback_id: int | None = None
        async with self._host.database.unit_of_work() as uow:
            outcome = await record_delivery_report(
                uow,
                provider=TWILIO,
                provider_message_id=status.message_sid,
                provider_status=status.status,
                failure_reason=status.error_code,
                now=now,
            )
            if outcome is ReportOutcome.APPLIED and status.error_code is not None:
                row_id = await uow.scalar(_FIND_ROW, sid=status.message_sid)
                if row_id is not None:
                    fallback_id = await fall_back_after_window_error(
                        uow,
                        message_id=row_id,
                        error_code=status.error_code,
                        now=now,
                        policy=self._policy,
                    )
            if fallback_id is not None and self._dispatcher is not None:
                self._dispatch_after_commit(uow, fallback_id)
        self._metrics.requests.labels(endpoint, outcome.value).inc()
        log.info(
            "Twilio status callback %s",
            outcome.value,
            extra={
                "message_sid": status.message_sid,
                "provider_status": status.status,
                "error_code": status.error_code,
                "fallback_outbox_id": fallback_id,
            },
        )
        return _text_response("ok", 200)

    def _dispatch_after_commit(self, uow: Any, message_id: int) -> None:
        dispatcher = self._dispatcher
        assert dispatcher is not None

        async def send_after_commit() -> None:
            dispatcher.dispatch_later(message_id)

        uow.after_commit(send_after_commit)

    def _observe(self, endpoint: str, outcome: str, started: float) -> float:
        elapsed = time.perf_counter() - started
        self._metrics.requests.labels(endpoint, outcome).inc()
        self._metrics.step_seconds.labels(endpoint).observe(elapsed)
        return elapsed * 1000


def _outcome(result: MessageResult | SmsResult) -> str:
    if isinstance(result, SmsResult):
        return result.outcome
    if result.duplicate:
        return "duplicate"
    return "stale" if result.stale_screen else "applied"
