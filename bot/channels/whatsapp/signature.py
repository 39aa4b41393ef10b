"""Twilio's `X-Twilio-Signature` check, shared by every Twilio webhook.

Twilio signs the full URL it requested plus the POST parameters, with HMAC-SHA1 keyed by the
account's auth token (twilio.com/docs/usage/webhooks/webhooks-security). Behind a proxy that
ends TLS the app sees `http://…` on an internal host, so the URL is rebuilt from
MYAFYA_PUBLIC_URL and the request's path and query. A proxy listed in MYAFYA_TRUSTED_PROXIES
may name another public scheme and host in `X-Forwarded-Proto` and `X-Forwarded-Host`; the
request passes when its signature matches either URL. Forwarded headers from any other address
are ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator

log = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-Twilio-Signature"


class InvalidSignature(Exception):
    """The request is not signed with our auth token for any URL we accept."""


def form_parameters(body: bytes) -> MultiDict[str]:
    """Decode an `application/x-www-form-urlencoded` body, keeping empty and repeated fields.

    Raises InvalidSignature for a body that is not UTF-8, because it cannot be what Twilio
    signed.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("body is not UTF-8") from None
    return MultiDict(parse_qsl(text, keep_blank_values=True))


class TwilioSignatureCheck:
    def __init__(
        self,
        *,
        auth_token: str | None,
        public_url: str,
        trusted_proxies: Sequence[IPv4Network | IPv6Network] = (),
    ) -> None:
        """`auth_token` None rejects every request: Twilio is not configured."""
        self._validator = RequestValidator(auth_token) if auth_token else None
        self._public_url = public_url.rstrip("/")
        self._trusted_proxies = tuple(trusted_proxies)

    def candidate_urls(self, request: web.Request) -> list[str]:
        """Return the URLs Twilio may have signed for this request, the public URL first."""
        path = request.rel_url.raw_path_qs
        urls = [self._public_url + path]
        if self._from_trusted_proxy(request.remote):
            proto = _first_value(request.headers.get("X-Forwarded-Proto"))
            host = _first_value(request.headers.get("X-Forwarded-Host"))
            if proto in ("http", "https") and host:
                forwarded = f"{proto}://{host}{path}"
                if urlsplit(forwarded).hostname and forwarded not in urls:
                    urls.append(forwarded)
        return urls

    def verify(self, request: web.Request, parameters: MultiDict[str]) -> None:
        """Raise InvalidSignature unless the request's signature matches `parameters` for one
        of the candidate URLs."""
        if self._validator is None:
            raise InvalidSignature("MYAFYA_TWILIO_AUTH_TOKEN is not configured")
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            raise InvalidSignature(f"{SIGNATURE_HEADER} header is missing")
        for url in self.candidate_urls(request):
            # RequestValidator compares in constant time and tries the URL with and without
            # the default port.
            if self._validator.validate(url, parameters, signature):
                return
        raise InvalidSignature(f"{SIGNATURE_HEADER} does not match the request")

    def _from_trusted_proxy(self, remote: str | None) -> bool:
        if not self._trusted_proxies or not remote:
            return False
        try:
            address = ip_address(remote)
        except ValueError:
            return False
        return any(address in network for network in self._trusted_proxies)


def _first_value(header: str | None) -> str:
    """Return the first entry of a comma-separated forwarded header: the client-facing hop."""
    return (header or "").split(",")[0].strip().lower()
