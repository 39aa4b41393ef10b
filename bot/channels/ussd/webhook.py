"""Africa's Talking USSD webhooks: each step is one POST answered with `CON …` or `END …`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from aiohttp import web

from bot.channels.forms import unsupported_form_body
from bot.channels.ussd.parsing import InvalidRequest, parse_session_end, parse_ussd_request
from bot.engine.gsm7 import fit, gsm7_length, to_gsm7
from bot.engine.host import ConversationHost, TooManyAnswers
from bot.engine.model import Reply
from core.clock import Clock
from core.db.database import Sql
from core.i18n import N_, translate

log = logging.getLogger(__name__)

# One USSD screen: 160 octets, which hold 182 GSM-7 septets.
USSD_MAX_SEPTETS = 182

RECORD_SESSION_END = Sql(
    """
    INSERT INTO ussd_session_events (
        session_id, status, network_code, hops, duration_ms, cost, error_message, ended_at,
        received_at
    ) VALUES (
        :session_id, :status, :network_code, :hops, :duration_ms, :cost, :error_message,
        :ended_at, :received_at
    )
    ON CONFLICT (session_id) DO NOTHING
    """
)


def render_ussd(reply: Reply) -> str:
    """Format a reply for the gateway: GSM-7 only, at most 182 septets, never an empty body."""
    prefix = "END " if reply.end else "CON "
    text = to_gsm7(reply.as_text()).strip() or "..."
    if len(prefix) + gsm7_length(text) > USSD_MAX_SEPTETS:
        text = fit(text, USSD_MAX_SEPTETS - len(prefix))
    return prefix + text


def apology(language: str | None) -> str:
    """Return the END reply for a failed step, in the patient's language when it is known."""
    message_id = N_("error.apology") if language else N_("error.apology_bilingual")
    return render_ussd(Reply(body=translate(language, message_id), end=True))


def _text_response(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/plain")


def client_allowed(remote: str | None, networks: Sequence[IPv4Network | IPv6Network]) -> bool:
    """Check the peer address against the allowlist; an empty list allows every client."""
    if not networks:
        return True
    try:
        address = ip_address(remote or "")
    except ValueError:
        return False
    return any(address in network for network in networks)


class UssdWebhook:
    """Africa's Talking signs no USSD request, so the only check is the caller's address."""

    def __init__(
        self,
        *,
        host: ConversationHost,
        clock: Clock,
        metrics: Any,
        allowed_networks: Sequence[IPv4Network | IPv6Network] = (),
    ) -> None:
        self.host = host
        self.clock = clock
        self.metrics = metrics
        self.allowed_networks = tuple(allowed_networks)
        # Metric children by outcome: labels() costs about 1 µs a call, and every step uses both.
        self._step_counters: dict[str, Any] = {}
        self._step_seconds = metrics.step_seconds.labels("ussd")

    def _forbidden(self, request: web.Request, endpoint: str) -> web.Response | None:
        if client_allowed(request.remote, self.allowed_networks):
            return None
        self.metrics.requests.labels(endpoint, "forbidden").inc()
        log.warning("ussd request from an address not in MYAFYA_AT_ALLOWED_NETWORKS rejected")
        return _text_response("forbidden: client address not allowed", status=403)

    def _not_a_form(self, request: web.Request, endpoint: str) -> web.Response | None:
        rejection = unsupported_form_body(request)
        if rejection is not None:
            self.metrics.requests.labels(endpoint, "bad_request").inc()
            log.info(
                "ussd request rejected: content type %r is not a form",
                request.content_type,
                extra={"channel": "ussd"},
            )
        return rejection

    async def handle_step(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        if (rejection := self._forbidden(request, "ussd")) is not None:
            return rejection
        if (rejection := self._not_a_form(request, "ussd")) is not None:
            return rejection
        form = await request.post()
        fields = {key: str(value) for key, value in form.items()}
        try:
            ussd = parse_ussd_request(fields)
        except InvalidRequest as exc:
            self._observe("bad_request", started)
            log.info("ussd request rejected", extra={"channel": "ussd", "field": exc.field})
            return _text_response(f"invalid request: {exc}", status=400)

        try:
            result = await self.host.handle_ussd(
                session_id=ussd.session_id, phone=ussd.phone, text=ussd.text
            )
        except TooManyAnswers as exc:
            log.warning("ussd request rejected: %s", exc, extra={"channel": "ussd"})
            self._observe("rejected", started)
            return _text_response(await self._apology_for(ussd.phone))
        except Exception:
            log.exception("ussd step failed", extra={"channel": "ussd"})
            self._observe("error", started)
            return _text_response(await self._apology_for(ussd.phone))

        body = render_ussd(result.reply)
        if result.duplicate:
            outcome = "duplicate"
        elif result.stale:
            outcome = "stale"
        elif result.reply.end:
            outcome = "end"
        else:
            outcome = "continue"
        elapsed_ms = self._observe(outcome, started)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "ussd step",
                extra={
                    "channel": "ussd",
                    "conversation_id": result.conversation_id,
                    "state_from": result.state_before,
                    "state_to": result.state_after,
                    "outcome": outcome,
                    "elapsed_ms": round(elapsed_ms, 2),
                },
            )
        return _text_response(body)

    async def _apology_for(self, phone: str) -> str:
        try:
            language = await self.host.language_for(phone)
        except Exception:
            log.exception("could not read the patient's language for an apology")
            language = None
        return apology(language)

    async def handle_session_end(self, request: web.Request) -> web.Response:
        if (rejection := self._forbidden(request, "ussd_events")) is not None:
            return rejection
        if (rejection := self._not_a_form(request, "ussd_events")) is not None:
            return rejection
        form = await request.post()
        fields = {key: str(value) for key, value in form.items()}
        try:
            event = parse_session_end(fields)
        except InvalidRequest as exc:
            self.metrics.requests.labels("ussd_events", "bad_request").inc()
            return _text_response(f"invalid request: {exc}", status=400)
        now = self.clock.now()
        async with self.host.database.unit_of_work() as uow:
            await uow.execute(
                RECORD_SESSION_END,
                session_id=event.session_id,
                status=event.status,
                network_code=event.network_code,
                hops=event.hops,
                duration_ms=event.duration_ms,
                cost=event.cost,
                error_message=event.error_message,
                ended_at=now,
                received_at=now,
            )
        self.metrics.requests.labels("ussd_events", event.status.lower()).inc()
        log.info("ussd session ended", extra={"channel": "ussd", "status": event.status})
        return _text_response("OK")

    def _observe(self, outcome: str, started: float) -> float:
        elapsed = time.perf_counter() - started
        counter = self._step_counters.get(outcome)
        if counter is None:
            counter = self._step_counters[outcome] = self.metrics.requests.labels("ussd", outcome)
        counter.inc()
        self._step_seconds.observe(elapsed)
        return elapsed * 1000
