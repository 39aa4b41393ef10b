"""Africa's Talking SMS delivery reports: `POST /webhooks/africastalking/sms/delivery/{secret}`.

AT signs nothing, so the callback URL carries a secret path segment that must equal
`MYAFYA_AT_WEBHOOK_SECRET` (in the sandbox without it, the placeholder). A request without it
gets 403, with the reason in the body, and changes nothing. The form fields are `id` (the
`messageId` of the send), `status`, `phoneNumber`, `networkCode`, `failureReason` (only for
Rejected and Failed) and `retryCount`. Reports are deduplicated on (`id`, `status`), because AT
does not document whether it repeats them.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from bot.channels.forms import unsupported_form_body
from core.clock import Clock
from core.notify.delivery import record_delivery_report
from core.notify.statuses import AFRICASTALKING

log = logging.getLogger(__name__)

MAX_FIELD_LENGTH = 100  # delivery_reports.provider_message_id is VARCHAR(100)


class AfricasTalkingDeliveryReports:
    def __init__(self, *, secret: SecretStr | None, clock: Clock, database: Any) -> None:
        self._secret = secret.get_secret_value().encode() if secret else None
        self._clock = clock
        self._database = database

    def _authorised(self, given: str) -> bool:
        if not self._secret:
            return False
        return hmac.compare_digest(given.encode(), self._secret)

    async def handle(self, request: web.Request) -> web.Response:
        if not self._authorised(request.match_info.get("secret", "")):
            # The body names the reason but never the secret.
            if not self._secret:
                reason = "MYAFYA_AT_WEBHOOK_SECRET is not set, so every request is rejected"
            else:
                reason = "the last path segment is not MYAFYA_AT_WEBHOOK_SECRET"
            log.warning("delivery report rejected: %s", reason)
            return web.Response(status=403, text=f"forbidden: {reason}")
        if (rejection := unsupported_form_body(request)) is not None:
            log.info(
                "delivery report rejected: content type %r is not a form", request.content_type
            )
            return rejection

        form = await request.post()
        fields: dict[str, Any] = {}
        for name in ("id", "status"):
            value = form.get(name)
            if not isinstance(value, str) or not value.strip():
                log.info("delivery report rejected: field %r is missing", name)
                return web.Response(status=400, text=f"missing form field '{name}'")
            if len(value) > MAX_FIELD_LENGTH:
                return web.Response(status=400, text=f"form field '{name}' is too long")
            fields[name] = value.strip()
        raw_reason = form.get("failureReason")
        # delivery_reports.failure_reason is VARCHAR(80); AT's reasons are far shorter.
        failure_reason = raw_reason.strip()[:80] if isinstance(raw_reason, str) else ""

        async with self._database.unit_of_work() as uow:
            outcome = await record_delivery_report(
                uow,
                provider=AFRICASTALKING,
                provider_message_id=fields["id"],
                provider_status=fields["status"],
                failure_reason=failure_reason or None,
                now=self._clock.now(),
            )
        log.info(
            "delivery report %s",
            outcome.value,
            extra={"provider_message_id": fields["id"], "provider_status": fields["status"]},
        )
        return web.Response(status=200, text="ok")
