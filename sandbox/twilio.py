"""A fake of Twilio's Messages API, `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.

The real `twilio` SDK talks to it when `client.api.base_url` is `{server}/sandbox/twilio`. It
checks HTTP Basic authentication (account SID and auth token), takes `Body` or `ContentSid`
with `ContentVariables`, responds with 201 in the shape of Twilio's message resource, and records
each accepted message in the `SandboxStore` (channel "whatsapp" or "sms"). A `ContentSid` of a
resource made through the Content API fake (`sandbox.twilio_content`, reached as `self.contents`)
is recorded as the text and the buttons or list items WhatsApp would show, and one of the
configured templates as its SID and variables. Any other `ContentSid` gets error 21655. Errors
use Twilio's JSON error body and codes, which the SDK turns into `TwilioRestException.code`.

After accepting a message with a `StatusCallback`, it posts the status callbacks `sent` and
then `delivered`, signed with the auth token like Twilio's, to this server's own address, never
to the host named in the callback URL. `/sandbox/faults` can make sends to one WhatsApp number
fail with an error code, such as 63016, in the API response or in a `failed` status callback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import format_datetime
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from core.clock import Clock
from core.notify.segments import count_segments
from sandbox.store import SandboxStore
from sandbox.twilio_content import ContentError, TwilioContentFake

log = logging.getLogger(__name__)

PROVIDER: Final = "twilio"
MESSAGES_FAULT_SERVICE: Final = "twilio.messages"  # delay or HTTP error on every send
RECIPIENT_FAULT_SERVICE: Final = "twilio.whatsapp"  # an error code for one WhatsApp number
FAULT_STAGES: Final = ("api", "status_callback")
API_VERSION: Final = "2010-04-01"
MAX_BODY_CHARACTERS: Final = 1600
# Time between accepting a message and its `sent` callback, and between `sent` and `delivered`.
CALLBACK_DELAY_SECONDS: Final = 0.2

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")
WHATSAPP_PREFIX: Final = "whatsapp:"


class FaultRequestError(Exception):
    """A `/sandbox/faults` request for this fake names an invalid value; `field` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"invalid field '{field}': {reason}")
        self.field = field
        self.reason = reason


@dataclass(slots=True)
class _RecipientFault:
    error_code: int
    stage: str
    remaining: int


class TwilioMessagesFake:
    """Request handler of the fake, bound to the account it accepts."""

    def __init__(
        self,
        *,
        store: SandboxStore,
        clock: Clock,
        account_sid: str,
        auth_token: str,
        callback_base_url: str | None,
        templates: Iterable[str] = (),
    ) -> None:
        """`callback_base_url` is this server's own address; None sends no status callbacks.
        `templates` are the Content SIDs of the account's approved WhatsApp templates, which
        the fake accepts without a definition. It rejects any other SID that its Content API
        fake did not create."""
        if not account_sid or not auth_token:
            raise ValueError("the Twilio fake needs an account SID and an auth token")
        self._store = store
        self._clock = clock
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._templates = frozenset(templates)
        self._validator = RequestValidator(auth_token)
        self._callback_base_url = callback_base_url.rstrip("/") if callback_base_url else None
        self._lock = threading.Lock()
        self._faults: dict[str, _RecipientFault] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.contents = TwilioContentFake(
            store=store, clock=clock, account_sid=account_sid, check_credentials=self._authenticated
        )

    # --- faults ---------------------------------------------------------------------------

    def inject_recipient_fault(self, body: dict[str, Any]) -> None:
        """Make the next `count` sends to WhatsApp number `to` fail with `error_code`.

        `stage` "api" (the default) fails the API request; "status_callback" accepts the
        message and reports `failed` with the code in its status callback.
        """
        to = body.get("to")
        if not isinstance(to, str) or not to.startswith(WHATSAPP_PREFIX):
            raise FaultRequestError("to", "expected a WhatsApp address such as whatsapp:+2547…")
        if _E164.fullmatch(to.removeprefix(WHATSAPP_PREFIX)) is None:
            raise FaultRequestError("to", "expected whatsapp: and an E.164 number")
        error_code = body.get("error_code")
        if isinstance(error_code, bool) or not isinstance(error_code, int):
            raise FaultRequestError("error_code", "expected a Twilio error code such as 63016")
        if not 10000 <= error_code <= 99999:
            raise FaultRequestError("error_code", f"expected 5 digits, got {error_code}")
        stage = body.get("stage", "api")
        if stage not in FAULT_STAGES:
            raise FaultRequestError("stage", f"expected one of {', '.join(FAULT_STAGES)}")
        count = body.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise FaultRequestError("count", "expected an integer of at least 1")
        with self._lock:
            self._faults[to] = _RecipientFault(error_code, stage, count)

    def end_recipient_faults(self) -> None:
        """Forget the pending per-recipient faults."""
        with self._lock:
            self._faults.clear()

    def _take_recipient_fault(self, to: str) -> _RecipientFault | None:
        with self._lock:
            fault = self._faults.get(to)
            if fault is None:
                return None
            fault.remaining -= 1
            if fault.remaining == 0:
                del self._faults[to]
            return _RecipientFault(fault.error_code, fault.stage, 1)

    # --- the Messages API -----------------------------------------------------------------

    async def handle_create(self, request: web.Request) -> web.Response:
        """Handle `POST {base}/2010-04-01/Accounts/{sid}/Messages.json` as Twilio does."""
        fault = self._store.take_fault(MESSAGES_FAULT_SERVICE)
        if fault is not None and fault.delay_seconds:
            log.info("Sandbox Twilio send delayed by %.1f s as injected", fault.delay_seconds)
            await self._store.wait_injected_delay(fault.delay_seconds)
        if fault is not None and fault.http_status is not None:
            log.info("Sandbox Twilio send failed with injected HTTP %d", fault.http_status)
            return _error(fault.http_status, 20500, "Sandbox fault: injected error")

        if not self._authenticated(request):
            log.warning("Sandbox Twilio send rejected: invalid account SID or auth token")
            return _error(401, 20003, "Authenticate")

        form = {key: str(value) for key, value in (await request.post()).items()}
        to = form.get("To", "").strip()
        sender = form.get("From", "").strip()
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not sender:
            return _error(400, 21603, "A 'From' phone number is required.")
        whatsapp = to.startswith(WHATSAPP_PREFIX)
        if whatsapp != sender.startswith(WHATSAPP_PREFIX):
            return _error(400, 21910, "Invalid 'From' and 'To' pair: both or neither WhatsApp.")
        if _E164.fullmatch(to.removeprefix(WHATSAPP_PREFIX)) is None:
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")

        text = form.get("Body", "")
        interactive: dict[str, Any] | None = None
        content_sid = form.get("ContentSid", "").strip()
        if content_sid:
            if _CONTENT_SID.fullmatch(content_sid) is None:
                return _error(400, 21655, "The ContentSid is Invalid.")
            variables = form.get("ContentVariables", "{}")
            try:
                parsed = json.loads(variables)
            except json.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                return _error(400, 21656, "The ContentVariables Parameter is invalid.")
            if self.contents.has(content_sid):
                # A resource created through the Content API fake: record what WhatsApp shows.
                try:
                    rendered = self.contents.render(content_sid, parsed)
                except ContentError as exc:
                    return _error(400, 21656, f"The ContentVariables Parameter is invalid: {exc}")
                text = rendered.text
                if rendered.interactive is not None:
                    interactive = {"content_sid": content_sid, **rendered.interactive}
            elif content_sid in self._templates:
                # An approved template configured by SID, which the fake has no definition of.
                text = f"[template {content_sid}] {json.dumps(parsed, ensure_ascii=False)}"
            else:
                # Twilio's error for a resource that was deleted or never existed, which here
                # includes every resource created before the fake last started.
                log.info("Sandbox Twilio send rejected: unknown ContentSid %s", content_sid)
                return _error(400, 21655, "The ContentSid is Invalid.")
        elif not text:
            return _error(400, 21619, "A text message Body or Media URL must be specified.")
        elif len(text) > MAX_BODY_CHARACTERS:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 limit.")

        recipient_fault = self._take_recipient_fault(to) if whatsapp else None
        if recipient_fault is not None and recipient_fault.stage == "api":
            log.info(
                "Sandbox Twilio send failed with injected error %d", recipient_fault.error_code
            )
            return _error(400, recipient_fault.error_code, "Sandbox fault: injected error")

        sid = "SM" + secrets.token_hex(16)
        now = self._clock.now()
        self._store.add(
            channel="whatsapp" if whatsapp else "sms",
            provider=PROVIDER,
            to=to.removeprefix(WHATSAPP_PREFIX),
            text=text,
            provider_message_id=sid,
            sent_at=now,
            interactive=interactive,
        )
        callback_url = form.get("StatusCallback", "").strip()
        if callback_url and self._callback_base_url:
            failed_code = recipient_fault.error_code if recipient_fault else None
            self._start_callbacks(callback_url, sid, to, sender, failed_code)

        segments = "1" if whatsapp else str(count_segments(text).segments)
        return web.json_response(self._resource(sid, to, sender, text, segments, now), status=201)

    def _authenticated(self, request: web.Request, *, check_path: bool = True) -> bool:
        """Return whether the Basic credentials, and with `check_path` the account SID in the
        path, are the account's. The Content API has no account SID in its paths."""
        login, password = _basic_credentials(request.headers.get("Authorization", ""))
        # Compare every part every time, in constant time, so timing reveals none of them.
        login_matches = hmac.compare_digest(login.encode(), self._account_sid.encode())
        password_matches = hmac.compare_digest(password.encode(), self._auth_token.encode())
        path_sid = request.match_info.get("account_sid", "") if check_path else self._account_sid
        path_matches = hmac.compare_digest(path_sid.encode(), self._account_sid.encode())
        return login_matches and password_matches and path_matches

    def _resource(
        self, sid: str, to: str, sender: str, text: str, segments: str, now: Any
    ) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self._account_sid}/Messages/{sid}"
        stamp = format_datetime(now)
        return {
            "account_sid": self._account_sid,
            "api_version": API_VERSION,
            "body": "" if text.startswith("[template ") else text,
            "date_created": stamp,
            "date_sent": None,
            "date_updated": stamp,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": segments,
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": to,
            "uri": f"{uri}.json",
        }

    # --- status callbacks -----------------------------------------------------------------

    def _start_callbacks(
        self, url: str, sid: str, to: str, sender: str, failed_code: int | None
    ) -> None:
        task = asyncio.get_running_loop().create_task(
            self._post_callbacks(url, sid, to, sender, failed_code)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post_callbacks(
        self, url: str, sid: str, to: str, sender: str, failed_code: int | None
    ) -> None:
        statuses = ["failed"] if failed_code is not None else ["sent", "delivered"]
        for status in statuses:
            await asyncio.sleep(CALLBACK_DELAY_SECONDS)
            fields = _callback_fields(self._account_sid, sid, status, to, sender, failed_code)
            try:
                await self._post_signed(url, fields)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("Sandbox Twilio status callback %s failed: %s", status, exc)
                return

    async def _post_signed(self, url: str, fields: dict[str, str]) -> None:
        """POST `fields` to this server at the path of `url`, signed for `url` itself."""
        assert self._callback_base_url is not None
        parts = urlsplit(url)
        target = self._callback_base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        signature = self._validator.compute_signature(url, fields)
        if self._session is None:
            # One connection per callback, so none is left open when the server stops.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True),
                timeout=aiohttp.ClientTimeout(total=10),
            )
        async with self._session.post(
            target, data=fields, headers={"X-Twilio-Signature": signature}
        ) as response:
            if response.status != 200:
                log.warning("Sandbox Twilio status callback got HTTP %d", response.status)

    async def settle(self) -> None:
        """Wait until every status callback started so far has been posted or has failed."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel pending status callbacks and close the HTTP session."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None


def _callback_fields(
    account_sid: str, sid: str, status: str, to: str, sender: str, error_code: int | None
) -> dict[str, str]:
    fields = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "To": to,
        "From": sender,
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
    }
    if to.startswith(WHATSAPP_PREFIX):
        fields["ChannelPrefix"] = "whatsapp"
        fields["ChannelToAddress"] = to.removeprefix(WHATSAPP_PREFIX)
        fields["ChannelInstallSid"] = "XE" + "0" * 32
        if status == "delivered":
            fields["EventType"] = "DELIVERED"
    if error_code is not None:
        fields["ErrorCode"] = str(error_code)
    return fields


def _basic_credentials(header: str) -> tuple[str, str]:
    """Return the login and password of an HTTP Basic `Authorization` header, or empty strings."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    login, _, password = decoded.partition(":")
    return login, password


def _error(status: int, code: int, message: str) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status)
