"""A fake of Africa's Talking's bulk SMS endpoint, `POST /version1/messaging`.

It responds in the shapes of AT's recorded responses, so the real `africastalking` SDK can talk to
it: 201 with a bare `application/json` body on success, 401 `text/plain` for a wrong key or
username, `InvalidSenderId` for an unknown `from`, and per-recipient failures inside the 201.
Every recipient it accepts is recorded in the `SandboxStore`.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

import phonenumbers
from aiohttp import web

from core.clock import Clock
from core.notify.segments import count_segments
from sandbox.store import SandboxStore

log = logging.getLogger(__name__)

PROVIDER: Final = "africastalking"
SMS_FAULT_SERVICE: Final = "africastalking.sms"

AUTHENTICATION_INVALID_BODY: Final = "The supplied authentication is invalid"
COST_PER_PART: Final = Decimal("0.8000")  # KES per message part, as in AT's recorded responses
CURRENCY: Final = "KES"

STATUS_SUCCESS: Final = ("Success", 101)
STATUS_INVALID_PHONE_NUMBER: Final = ("InvalidPhoneNumber", 403)
STATUS_USER_IN_BLACKLIST: Final = ("UserInBlacklist", 406)

_E164_SHAPE = re.compile(r"\+[1-9]\d{1,14}")


def is_valid_e164(number: str) -> bool:
    """Return whether `number` is a valid phone number written in strict E.164 (`+` and digits)."""
    if _E164_SHAPE.fullmatch(number) is None:
        return False
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(parsed)


class AfricasTalkingSmsFake:
    """The request handler of the fake, bound to the credentials and sender ids it accepts.

    The `bulkSMSMode` and `enqueue` form fields are accepted and ignored.
    """

    def __init__(
        self,
        *,
        store: SandboxStore,
        clock: Clock,
        username: str,
        api_key: str,
        sender_ids: frozenset[str],
    ) -> None:
        if not username or not api_key:
            raise ValueError("the Africa's Talking fake needs a non-empty username and API key")
        self._store = store
        self._clock = clock
        self._username = username.encode()
        self._api_key = api_key.encode()
        self._sender_ids = sender_ids

    async def handle_send(self, request: web.Request) -> web.Response:
        """Handle `POST {base}/version1/messaging` as Africa's Talking does."""
        fault = self._store.take_fault(SMS_FAULT_SERVICE)
        if fault is not None and fault.delay_seconds:
            log.info("Sandbox SMS send delayed by %.1f s as injected", fault.delay_seconds)
            await self._store.wait_injected_delay(fault.delay_seconds)
        if fault is not None and fault.http_status is not None:
            log.info("Sandbox SMS send failed with injected HTTP %d", fault.http_status)
            return web.Response(
                status=fault.http_status,
                text=f"Sandbox fault: HTTP {fault.http_status}",
                content_type="text/plain",
            )

        form = await request.post()
        if not self._is_authenticated(
            request.headers.get("apiKey", ""), _form_text(form, "username")
        ):
            log.warning("Sandbox SMS send rejected: invalid username or API key")
            return web.Response(
                status=401, text=AUTHENTICATION_INVALID_BODY, content_type="text/plain"
            )

        # NOTE: the body AT returns for a missing field is not in its recorded responses, so this
        # 400 is a guess at the status and wording.
        recipients = [number.strip() for number in (_form_text(form, "to") or "").split(",")]
        recipients = [number for number in recipients if number]
        if not recipients:
            return _missing_field_response("to")
        message = _form_text(form, "message")
        if message is None:
            return _missing_field_response("message")

        sender_id = _form_text(form, "from")
        if sender_id and sender_id not in self._sender_ids:
            log.info("Sandbox SMS send rejected: sender id is not allowed")
            return _json_response(
                {"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}}
            )

        return _json_response(self._send_to_each(recipients, message))

    def _is_authenticated(self, api_key: str, username: str | None) -> bool:
        # Compare both values every time, in constant time, so timing reveals neither.
        key_matches = hmac.compare_digest(api_key.encode(), self._api_key)
        username_matches = hmac.compare_digest((username or "").encode(), self._username)
        return key_matches and username_matches

    def _send_to_each(self, recipients: list[str], message: str) -> dict[str, Any]:
        """Accept or reject each recipient, record the accepted ones and build the 201 body."""
        parts = count_segments(message).segments
        cost_per_recipient = COST_PER_PART * parts
        sent_count = 0
        entries: list[dict[str, Any]] = []

        for number in recipients:
            if not is_valid_e164(number):
                entries.append(_failed_recipient(number, STATUS_INVALID_PHONE_NUMBER))
                continue
            if self._store.is_blacklisted(number):
                entries.append(_failed_recipient(number, STATUS_USER_IN_BLACKLIST))
                continue

            message_id = "ATXid_" + secrets.token_hex(16)
            self._store.add(
                channel="sms",
                provider=PROVIDER,
                to=number,
                text=message,
                provider_message_id=message_id,
                sent_at=self._clock.now(),
            )
            sent_count += 1
            status, status_code = STATUS_SUCCESS
            entries.append(
                {
                    "cost": f"{CURRENCY} {cost_per_recipient:.4f}",
                    "messageId": message_id,
                    "number": number,
                    "status": status,
                    "statusCode": status_code,
                }
            )

        total_cost = cost_per_recipient * sent_count
        summary = (
            f"Sent to {sent_count}/{len(recipients)} Total Cost: {CURRENCY} {total_cost:.4f} "
            f"Message parts: {parts}"
        )
        return {"SMSMessageData": {"Message": summary, "Recipients": entries}}


def _form_text(form: Mapping[str, Any], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _failed_recipient(number: str, status: tuple[str, int]) -> dict[str, Any]:
    name, code = status
    return {"cost": "0", "messageId": "None", "number": number, "status": name, "statusCode": code}


def _missing_field_response(field: str) -> web.Response:
    log.info("Sandbox SMS send rejected: form field %r is missing", field)
    return web.Response(
        status=400,
        text=f"Request is missing required form field '{field}'",
        content_type="text/plain",
    )


def _json_response(payload: dict[str, Any]) -> web.Response:
    # The SDK parses a 2xx body only when Content-Type is exactly `application/json`. Passing
    # `body` bytes keeps aiohttp from appending `; charset=utf-8`, which `web.json_response` does.
    return web.Response(
        status=201, body=json.dumps(payload).encode(), content_type="application/json"
    )
