"""X-Twilio-Signature against captured vectors, and the URL rebuilt behind proxies."""

from __future__ import annotations

import json
from ipaddress import ip_network
from unittest import mock
from urllib.parse import parse_qsl

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from bot.channels.whatsapp.signature import InvalidSignature, TwilioSignatureCheck, form_parameters
from tests.conftest import PAYLOADS

SIGNATURES = json.loads((PAYLOADS / "twilio_signatures.json").read_text())
TOKEN = SIGNATURES["auth_token"]
PROXY = "192.0.2.10"
CLIENT = "198.51.100.7"


def request_to(path: str, *, signature: str | None, peer: str = CLIENT, **headers: str):
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 40000) if name == "peername" else default
    )
    all_headers = dict(headers)
    if signature is not None:
        all_headers["X-Twilio-Signature"] = signature
    return make_mocked_request("POST", path, headers=all_headers, transport=transport)


def check(public_url: str = "https://example.test", proxies: str = "") -> TwilioSignatureCheck:
    networks = [ip_network(part) for part in proxies.split(",") if part]
    return TwilioSignatureCheck(auth_token=TOKEN, public_url=public_url, trusted_proxies=networks)


@pytest.mark.parametrize("vector", SIGNATURES["vectors"], ids=lambda v: v["file"])
def test_captured_signature_accepted(vector: dict[str, str]) -> None:
    body = (PAYLOADS / vector["file"]).read_bytes().strip()
    path = vector["url"].removeprefix("https://example.test")
    request = request_to(path, signature=vector["x_twilio_signature"])

    check().verify(request, form_parameters(body))


@pytest.mark.parametrize("vector", SIGNATURES["vectors"], ids=lambda v: v["file"])
def test_changed_field_rejected(vector: dict[str, str]) -> None:
    fields = parse_qsl((PAYLOADS / vector["file"]).read_text().strip(), keep_blank_values=True)
    changed = MultiDict(
        [(name, value + "x" if name == "MessageSid" else value) for name, value in fields]
    )
    path = vector["url"].removeprefix("https://example.test")
    request = request_to(path, signature=vector["x_twilio_signature"])

    with pytest.raises(InvalidSignature):
        check().verify(request, changed)


def test_json_body_variant_accepted() -> None:
    # Twilio signs a JSON body through the bodySHA256 query parameter; the validator takes
    # the raw body as a string.
    variant = SIGNATURES["json_body_variant"]
    path = variant["url"].removeprefix("https://example.test")
    request = request_to(path, signature=variant["x_twilio_signature"])

    assert RequestValidator(TOKEN).validate(
        check().candidate_urls(request)[0], variant["body"], variant["x_twilio_signature"]
    )


def test_missing_signature_rejected() -> None:
    vector = SIGNATURES["vectors"][0]
    body = (PAYLOADS / vector["file"]).read_bytes().strip()
    request = request_to("/webhooks/twilio/inbound", signature=None)

    with pytest.raises(InvalidSignature, match="missing"):
        check().verify(request, form_parameters(body))


def test_unconfigured_token_rejects_everything() -> None:
    vector = SIGNATURES["vectors"][0]
    body = (PAYLOADS / vector["file"]).read_bytes().strip()
    request = request_to("/webhooks/twilio/inbound", signature=vector["x_twilio_signature"])
    unconfigured = TwilioSignatureCheck(auth_token=None, public_url="https://example.test")

    with pytest.raises(InvalidSignature, match="not configured"):
        unconfigured.verify(request, form_parameters(body))


def test_non_utf8_body_rejected() -> None:
    with pytest.raises(InvalidSignature):
        form_parameters(b"Body=\xff")


def test_public_url_path_prefix_kept() -> None:
    request = request_to("/webhooks/twilio/sms?x=1", signature="x")

    urls = check("https://example.test/myafya/").candidate_urls(request)

    assert urls == ["https://example.test/myafya/webhooks/twilio/sms?x=1"]


def test_forwarded_headers_from_trusted_proxy() -> None:
    request = request_to(
        "/webhooks/twilio/sms",
        signature="x",
        peer=PROXY,
        **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.test"},
    )

    urls = check("http://127.0.0.1:8080", proxies=f"{PROXY}/32").candidate_urls(request)

    assert urls == [
        "http://127.0.0.1:8080/webhooks/twilio/sms",
        "https://hooks.example.test/webhooks/twilio/sms",
    ]


def test_forwarded_headers_from_other_address_ignored() -> None:
    request = request_to(
        "/webhooks/twilio/sms",
        signature="x",
        peer=CLIENT,
        **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.test"},
    )

    urls = check("http://127.0.0.1:8080", proxies=f"{PROXY}/32").candidate_urls(request)

    assert urls == ["http://127.0.0.1:8080/webhooks/twilio/sms"]


def test_forwarded_first_hop_used() -> None:
    request = request_to(
        "/webhooks/twilio/sms",
        signature="x",
        peer=PROXY,
        **{"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "hooks.example.test, lb"},
    )

    urls = check("http://127.0.0.1:8080", proxies=PROXY).candidate_urls(request)

    assert urls[1] == "https://hooks.example.test/webhooks/twilio/sms"


def test_forwarded_scheme_other_than_http_ignored() -> None:
    request = request_to(
        "/webhooks/twilio/sms",
        signature="x",
        peer=PROXY,
        **{"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "hooks.example.test"},
    )

    assert check("http://127.0.0.1:8080", proxies=PROXY).candidate_urls(request) == [
        "http://127.0.0.1:8080/webhooks/twilio/sms"
    ]
