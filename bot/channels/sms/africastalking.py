"""Send SMS through Africa's Talking with its Python SDK (`africastalking` 2.0.3).

The SDK is blocking (it calls `requests.post`), so each send runs in a worker thread. Its outcomes
are mapped to a `SendResult` that states whether the message went out and whether trying
again could help. Logs carry provider ids and statuses, never the text or the phone number.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Final

import requests
from africastalking.Service import AfricasTalkingException, validate_phone
from africastalking.SMS import SMSService

from bot.channels.sms.rendering import render_outbound_sms
from core.notify.outbox import OutboundMessage

log = logging.getLogger(__name__)

# Per-recipient `statusCode`s: 100 Processed, 101 Sent, 102 Queued.
ACCEPTED_STATUS_CODES: Final = frozenset({100, 101, 102})

# 500 InternalServerError and 501 GatewayError are faults at AT or its gateway that a later attempt
# can get past. 405 InsufficientBalance is not retried: like a rejected API key, it lasts until an
# operator acts (tops up the account), so retrying on a timer only uses up the attempts.
RETRYABLE_STATUS_CODES: Final = frozenset({500, 501})

# The SDK raises `AfricasTalkingException(response.text)` for every non-2xx response and keeps no
# status code, so a rejected key is recognised only by this 401 body.
AUTHENTICATION_INVALID_BODY: Final = "The supplied authentication is invalid"

# `provider_status` values for outcomes that carry no AT status name.
STATUS_AUTHENTICATION_REJECTED: Final = "AuthenticationRejected"
STATUS_HTTP_ERROR: Final = "HttpError"
STATUS_CONNECTION_FAILED: Final = "ConnectionFailed"
STATUS_TIMED_OUT: Final = "TimedOut"
STATUS_UNEXPECTED_RESPONSE: Final = "UnexpectedResponse"
STATUS_INVALID_PHONE_NUMBER: Final = "InvalidPhoneNumber"
STATUS_INVALID_SENDER_ID: Final = "InvalidSenderId"


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one SMS send to one recipient.

    `status_code` is AT's per-recipient `statusCode` (101 Sent, 406 UserInBlacklist, …), not an
    HTTP status: AT's 401 means RiskHold there. It is None when AT returned no recipient entry.
    `error` is a short English reason without secrets or the phone number, None when accepted.
    """

    provider_message_id: str | None
    provider_status: str
    status_code: int | None
    accepted: bool
    retryable: bool
    error: str | None


class AfricasTalkingSmsSender:
    """Sends one SMS at a time through Africa's Talking's bulk SMS API."""

    def __init__(
        self, username: str, api_key: str, sender_id: str | None, base_url: str | None
    ) -> None:
        """Build the SDK's SMS service.

        `base_url` replaces the SDK's hard-coded host, for example with the sandbox fake, and gets
        `/version1` appended as the SDK does. `sender_id` None omits the `from` field, so AT picks
        the sender.
        """
        # The SMS service is built directly because `africastalking.initialize` also builds
        # every other service, and its WhatsApp service warns or raises for the sandbox username.
        self._service = SMSService(username, api_key)
        if base_url is not None:
            self._service._baseUrl = base_url.rstrip("/") + "/version1"
        self._sender_id = sender_id

    async def send(self, to: str, text: str) -> SendResult:
        """Send `text` to the E.164 number `to` from a worker thread; see `send_blocking`."""
        return await asyncio.to_thread(self.send_blocking, to, text)

    def send_message_blocking(self, message: OutboundMessage) -> SendResult:
        """Send an outbox row as SMS text, normalised to GSM-7 and a reply drawn as numbered
        text (see `bot.channels.sms.rendering`)."""
        return self.send_blocking(message.recipient, render_outbound_sms(message))

    def send_blocking(self, to: str, text: str) -> SendResult:
        """Send `text` to the E.164 number `to` and classify the outcome, blocking the calling
        thread until Africa's Talking answers or the SDK's timeout (3 s connect, 9 s read).

        Other `requests` exceptions propagate, chiefly configuration errors such as an invalid base
        URL (`requests.exceptions.InvalidURL`, `MissingSchema`) that retrying cannot fix.
        """
        if not validate_phone(to):
            # The SDK would raise ValueError for this before sending anything.
            return _failure(
                STATUS_INVALID_PHONE_NUMBER, "phone number is not in E.164 format", retryable=False
            )

        try:
            response = self._service.send(text, [to], sender_id=self._sender_id)
        except AfricasTalkingException as exc:
            return _http_error_result(str(exc))
        except requests.exceptions.Timeout:
            return _failure(
                STATUS_TIMED_OUT, "request to Africa's Talking timed out", retryable=True
            )
        except requests.exceptions.ConnectionError:
            return _failure(
                STATUS_CONNECTION_FAILED, "could not connect to Africa's Talking", retryable=True
            )
        except requests.exceptions.ChunkedEncodingError:
            return _failure(
                STATUS_CONNECTION_FAILED,
                "connection to Africa's Talking broke while reading the response",
                retryable=True,
            )
        except requests.exceptions.JSONDecodeError:
            return _unexpected_response("response declared JSON but is not valid JSON")

        return _result_from_response(response, to)


def _failure(provider_status: str, error: str, *, retryable: bool) -> SendResult:
    log.warning("Africa's Talking SMS send failed (%s): %s", provider_status, error)
    return SendResult(
        provider_message_id=None,
        provider_status=provider_status,
        status_code=None,
        accepted=False,
        retryable=retryable,
        error=error,
    )


def _http_error_result(body: str) -> SendResult:
    if body.strip() == AUTHENTICATION_INVALID_BODY:
        return _failure(
            STATUS_AUTHENTICATION_REJECTED,
            "authentication rejected by Africa's Talking",
            retryable=False,
        )
    # NOTE: without the status code, every other non-2xx response (including a 4xx for a
    # malformed request) is treated as a server failure and retried.
    return _failure(
        STATUS_HTTP_ERROR, "Africa's Talking returned an HTTP error status", retryable=True
    )


def _unexpected_response(reason: str) -> SendResult:
    # A 2xx means AT took the request, so the message may have gone out and a retry could send
    # it twice. Not retrying trades a possible loss for no duplicate.
    return _failure(
        STATUS_UNEXPECTED_RESPONSE,
        f"unexpected Africa's Talking response: {reason}",
        retryable=False,
    )


def _result_from_response(response: Any, to: str) -> SendResult:
    """Map a 2xx body, which the SDK returns as a dict only for `application/json`."""
    if not isinstance(response, dict):
        return _unexpected_response("body is not JSON")
    data = response.get("SMSMessageData")
    if not isinstance(data, dict) or not isinstance(data.get("Recipients"), list):
        return _unexpected_response("SMSMessageData.Recipients is missing")

    recipients: list[Any] = data["Recipients"]
    if not recipients:
        # The whole request was rejected, and `Message` names the reason.
        message = data.get("Message")
        if message == STATUS_INVALID_SENDER_ID:
            return _failure(
                STATUS_INVALID_SENDER_ID,
                "sender id is not allowed for this Africa's Talking account",
                retryable=False,
            )
        return _failure(
            str(message) if message else STATUS_UNEXPECTED_RESPONSE,
            "Africa's Talking accepted no recipient",
            retryable=False,
        )

    recipient = _find_recipient(recipients, to)
    if recipient is None:
        return _unexpected_response("no recipient entry for the requested number")
    status = recipient.get("status")
    status_code = recipient.get("statusCode")
    message_id = recipient.get("messageId")
    if not isinstance(status, str) or not isinstance(status_code, int):
        return _unexpected_response("recipient entry lacks status or statusCode")

    if status_code in ACCEPTED_STATUS_CODES:
        if not isinstance(message_id, str) or message_id == "None":
            return _unexpected_response("accepted recipient entry lacks messageId")
        log.info("Africa's Talking accepted SMS %s (%s)", message_id, status)
        return SendResult(
            provider_message_id=message_id,
            provider_status=status,
            status_code=status_code,
            accepted=True,
            retryable=False,
            error=None,
        )

    retryable = status_code in RETRYABLE_STATUS_CODES
    error = f"Africa's Talking rejected the recipient: {status} ({status_code})"
    log.warning("Africa's Talking SMS send failed (%s, retryable=%s)", status, retryable)
    return SendResult(
        provider_message_id=None,
        provider_status=status,
        status_code=status_code,
        accepted=False,
        retryable=retryable,
        error=error,
    )


def _find_recipient(recipients: list[Any], to: str) -> dict[str, Any] | None:
    for entry in recipients:
        if isinstance(entry, dict) and entry.get("number") == to:
            return entry
    # The request named one recipient, so a single entry is its result even if AT rewrote
    # the number.
    if len(recipients) == 1 and isinstance(recipients[0], dict):
        return recipients[0]
    return None
