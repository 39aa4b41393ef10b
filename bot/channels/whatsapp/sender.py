"""Send WhatsApp (and SMS) through Twilio's Messages API with the `twilio` SDK (9.x).

The SDK is blocking (it uses `requests`), so worker threads call `send_message_blocking`. Each
outbox row is one `POST /2010-04-01/Accounts/{sid}/Messages.json`: free-form `Body` inside the
WhatsApp window, or the approved template (`ContentSid` + `ContentVariables`) when the row's
route is `whatsapp_template` (see core.notify.whatsapp_window). A free-form reply with options
goes as quick-reply buttons or a list picker where they fit (see `interactive`): the `ContentSid`
of a Content API resource created once per shape, with the screen's texts as `ContentVariables`.
A resource Twilio no longer knows (error 21655) is created again and the reply sent once more.
When that resource is unavailable, or Twilio rejects the interactive message, the reply goes
as numbered text (a second request in the latter case). Each outcome becomes a
`SendResult` that states whether trying again could help. Logs carry message SIDs and error
codes, never text or numbers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from bot.channels.sms.rendering import render_outbound_sms
from bot.channels.whatsapp.contents import ContentResources, ContentStore
from bot.channels.whatsapp.interactive import plan_outbox_reply
from bot.channels.whatsapp.rendering import message_text, template_variables
from core.notify.outbox import MessageStatus, OutboundMessage
from core.notify.policy import Route
from core.notify.whatsapp_window import ROUTE_KEY, WINDOW_CLOSED_ERROR, phone_of, whatsapp_address

log = logging.getLogger(__name__)

# Seconds for connecting and reading each API request; the send job's time limit is 60 s.
REQUEST_TIMEOUT_SECONDS: Final = 10.0

STATUS_TIMED_OUT: Final = "TimedOut"
STATUS_CONNECTION_FAILED: Final = "ConnectionFailed"
STATUS_NO_TEMPLATE: Final = "NoTemplate"
STATUS_NOT_CONFIGURED: Final = "NotConfigured"
STATUS_SDK_ERROR: Final = "SdkError"
# Twilio's error for a ContentSid that is not a resource of the account, such as a deleted one
# (twilio.com/docs/api/errors/21655).
UNKNOWN_CONTENT_ERROR: Final = "21655"

# Failed interactive sends that numbered text must not follow. Outside the window text fails too,
# and the window fallback takes over. After an unreadable response the interactive message may
# have gone out.
_NO_TEXT_AFTER: Final = frozenset({WINDOW_CLOSED_ERROR, STATUS_SDK_ERROR})

# The SDK logs every request's URL and headers at INFO; ours log the outcome instead.
_SDK_LOGGER = logging.getLogger("myafya.twilio_sdk")
_SDK_LOGGER.setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one Twilio send.

    `provider_status` is Twilio's message status (`queued`) when accepted, else Twilio's error
    code (`63016`) or one of the STATUS_* names above. `error` never contains the text or the
    number.
    """

    provider_message_id: str | None
    provider_status: str
    accepted: bool
    retryable: bool
    error: str | None


class TwilioSender:
    """Sends outbox rows of the `whatsapp` channel, and of `sms` when an SMS number is set."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        whatsapp_from: str | None,
        sms_from: str | None,
        templates: Mapping[str, str],
        status_callback_url: str | None,
        base_url: str | None = None,
        content_store: ContentStore | None = None,
    ) -> None:
        """`base_url` replaces `https://api.twilio.com` and `https://content.twilio.com`, for
        example with the sandbox fake. Without a `content_store` replies are numbered text."""
        http_client = TwilioHttpClient(timeout=REQUEST_TIMEOUT_SECONDS, logger=_SDK_LOGGER)
        # Worker threads live long and send rarely, so a kept-alive connection would mostly sit
        # idle, and it outlives a server that stops, such as the sandbox in tests.
        assert http_client.session is not None
        http_client.session.headers["Connection"] = "close"
        self._client = Client(account_sid, auth_token, http_client=http_client)
        # TWILIO_EDGE or TWILIO_REGION in the environment would rewrite the API host, also the
        # fake's, so both are cleared.
        self._client.edge = None
        self._client.region = None
        if base_url is not None:
            self._client.api.base_url = base_url.rstrip("/")
            self._client.content.base_url = base_url.rstrip("/")
        self._contents = (
            ContentResources(self._client, account_sid, content_store)
            if content_store is not None
            else None
        )
        self._whatsapp_from = whatsapp_from
        self._sms_from = sms_from
        self._templates = dict(templates)
        self._status_callback_url = status_callback_url

    def send_blocking(self, to: str, text: str) -> SendResult:
        """Send free-form `text`: to WhatsApp for `whatsapp:+2547…`, else by SMS."""
        channel = "whatsapp" if to.startswith("whatsapp:") else "sms"
        return self.send_message_blocking(
            OutboundMessage(
                id=0,
                recipient=to,
                channel=channel,
                body=text,
                status=MessageStatus.SENDING,
                attempts=1,
            )
        )

    def send_message_blocking(self, message: OutboundMessage) -> SendResult:
        """Send one outbox row and classify the outcome, blocking until Twilio responds."""
        if message.channel == "whatsapp":
            if not self._whatsapp_from:
                return _failure(STATUS_NOT_CONFIGURED, "no WhatsApp sender number", False)
            sender, recipient = self._whatsapp_from, whatsapp_address(phone_of(message.recipient))
        else:
            if not self._sms_from:
                return _failure(STATUS_NOT_CONFIGURED, "no Twilio SMS sender number", False)
            sender, recipient = self._sms_from, phone_of(message.recipient)

        fields: dict[str, str] = {"to": recipient, "from_": sender}
        if self._status_callback_url:
            fields["status_callback"] = self._status_callback_url
        if message.variables.get(ROUTE_KEY) == Route.WHATSAPP_TEMPLATE.value:
            content_sid = self._templates.get(message.kind or "")
            if content_sid is None:
                return _failure(
                    STATUS_NO_TEMPLATE, f"no approved template for {message.kind}", False
                )
            fields["content_sid"] = content_sid
            fields["content_variables"] = json.dumps(template_variables(message))
        elif message.channel == "whatsapp":
            result = self._send_interactive(fields, message)
            if result is not None:
                if result.accepted or result.retryable or result.provider_status in _NO_TEXT_AFTER:
                    return result
                # Twilio rejected the interactive message itself, so nothing went out, and
                # numbered text can still deliver the reply.
                log.warning(
                    "outbox message %s: interactive send rejected (%s), sending numbered text",
                    message.id,
                    result.provider_status,
                )
            fields["body"] = message_text(message)
        else:
            # The same numbered GSM-7 text as SMS through Africa's Talking, so each part costs
            # the same whichever provider sends it.
            fields["body"] = render_outbound_sms(message)
        return self._create(fields, message.id)

    def _send_interactive(
        self, fields: dict[str, str], message: OutboundMessage
    ) -> SendResult | None:
        """Send a reply whose options fit buttons or a list as a Content resource, or return
        None to send numbered text.

        When Twilio rejects the cached resource with error 21655 (for example, it was deleted),
        the resource is forgotten, created again and sent once more.
        """
        plan = plan_outbox_reply(message.variables, message.language)
        if plan is None or self._contents is None:
            return None
        content_sid = self._contents.content_sid(plan)
        if content_sid is None:
            log.warning("outbox message %s goes as numbered text: no WhatsApp content", message.id)
            return None
        variables = json.dumps(plan.variables, ensure_ascii=False)
        result = self._create(
            {**fields, "content_sid": content_sid, "content_variables": variables}, message.id
        )
        if result.provider_status != UNKNOWN_CONTENT_ERROR:
            return result
        log.warning(
            "outbox message %s: Twilio rejected WhatsApp content %s as unknown, creating it again",
            message.id,
            content_sid,
        )
        self._contents.forget(plan, content_sid)
        content_sid = self._contents.content_sid(plan)
        if content_sid is None:
            return result
        return self._create(
            {**fields, "content_sid": content_sid, "content_variables": variables}, message.id
        )

    def _create(self, fields: dict[str, str], outbox_id: int) -> SendResult:
        try:
            created = self._client.messages.create(**fields)
        except TwilioRestException as exc:
            return _rest_error(exc)
        except requests.exceptions.Timeout:
            return _failure(STATUS_TIMED_OUT, "request to Twilio timed out", True)
        except requests.exceptions.ConnectionError:
            return _failure(STATUS_CONNECTION_FAILED, "could not connect to Twilio", True)
        except TwilioException as exc:
            # The SDK could not read the response; the message may have gone out, so a retry
            # could send it twice.
            return _failure(STATUS_SDK_ERROR, f"unreadable Twilio response: {exc}", False)
        log.info(
            "Twilio accepted outbox message %s as %s (%s)", outbox_id, created.sid, created.status
        )
        return SendResult(
            provider_message_id=created.sid,
            provider_status=str(created.status or "queued"),
            accepted=True,
            retryable=False,
            error=None,
        )


def _rest_error(exc: TwilioRestException) -> SendResult:
    code = str(exc.code) if exc.code is not None else f"HTTP{exc.status}"
    if code == WINDOW_CLOSED_ERROR:
        return _failure(code, "Twilio error 63016: outside the WhatsApp 24-hour window", False)
    # Throttling and Twilio's own faults pass; a rejected request or credential stays rejected.
    retryable = exc.status == 429 or exc.status >= 500
    return _failure(
        code, f"Twilio rejected the message: HTTP {exc.status}, error {code}", retryable
    )


def _failure(provider_status: str, error: str, retryable: bool) -> SendResult:
    log.warning("Twilio send failed (%s, retryable=%s): %s", provider_status, retryable, error)
    return SendResult(
        provider_message_id=None,
        provider_status=provider_status,
        accepted=False,
        retryable=retryable,
        error=error,
    )
