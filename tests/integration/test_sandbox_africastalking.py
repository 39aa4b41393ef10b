"""The Africa's Talking SMS fake, driven by the real SDK through AfricasTalkingSmsSender.

Every request goes to an aiohttp test server on 127.0.0.1. The SDK blocks, so the sender runs it
in a worker thread while the server responds on the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from africastalking.SMS import SMSService
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.channels.sms.africastalking import AfricasTalkingSmsSender, SendResult
from core.clock import FrozenClock
from sandbox.app import add_sandbox_routes
from sandbox.store import SandboxStore
from tests.conftest import DEFAULT_NOW, PAYLOADS

USERNAME = "sandbox"
API_KEY = "fake-api-key-for-tests"
SENDER_ID = "TESTCLINIC"
PATIENT = "+254700000001"
BLACKLISTED_PATIENT = "+254700000002"
TEXT = "Habari Test Patient, miadi yako ni kesho saa 3:00 asubuhi."

MESSAGE_ID = re.compile(r"ATXid_[0-9a-f]{32}")
ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
def store() -> SandboxStore:
    return SandboxStore()


@pytest.fixture
async def server(
    aiohttp_server: ServerFactory, store: SandboxStore, clock: FrozenClock
) -> TestServer:
    app = web.Application()
    add_sandbox_routes(
        app,
        store=store,
        clock=clock,
        at_username=USERNAME,
        at_api_key=API_KEY,
        at_sender_ids=frozenset({SENDER_ID}),
    )
    return await aiohttp_server(app, host="127.0.0.1")


@pytest.fixture
def base_url(server: TestServer) -> str:
    return str(server.make_url("/sandbox/africastalking"))


@pytest.fixture
def sender(base_url: str) -> AfricasTalkingSmsSender:
    return AfricasTalkingSmsSender(USERNAME, API_KEY, SENDER_ID, base_url)


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


def sdk_service(base_url: str) -> Any:
    service = SMSService(USERNAME, API_KEY)
    service._baseUrl = base_url + "/version1"
    return service


async def post_json(
    http: aiohttp.ClientSession, server: TestServer, path: str, body: Any
) -> tuple[int, Any]:
    async with http.post(server.make_url(path), json=body) as response:
        payload = await response.json() if response.status == 400 else None
        return response.status, payload


def assert_no_personal_data(result: SendResult) -> None:
    for secret in (API_KEY, PATIENT, BLACKLISTED_PATIENT, TEXT):
        assert secret not in (result.error or "")


async def test_send_success_recorded(sender: AfricasTalkingSmsSender, store: SandboxStore) -> None:
    result = await sender.send(PATIENT, TEXT)

    assert result.accepted
    assert not result.retryable
    assert result.provider_status == "Success"
    assert result.status_code == 101
    assert result.error is None
    assert result.provider_message_id is not None
    assert MESSAGE_ID.fullmatch(result.provider_message_id)

    [message] = store.list()
    assert message.channel == "sms"
    assert message.provider == "africastalking"
    assert message.to == PATIENT
    assert message.text == TEXT
    assert message.provider_message_id == result.provider_message_id
    assert message.sent_at == DEFAULT_NOW.isoformat()


async def test_send_logs_no_number_or_text(
    sender: AfricasTalkingSmsSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    await sender.send(PATIENT, TEXT)
    await sender.send("+25470000", TEXT)

    assert caplog.records
    assert PATIENT not in caplog.text
    assert "+25470000" not in caplog.text
    assert TEXT not in caplog.text


async def test_partial_failure_matches_recorded_shape(
    base_url: str, server: TestServer, http: aiohttp.ClientSession, store: SandboxStore
) -> None:
    status, _ = await post_json(
        http, server, "/sandbox/africastalking/blacklist", {"phone": BLACKLISTED_PATIENT}
    )
    assert status == 204
    recorded = json.loads((PAYLOADS / "at_sms_send_response_partial_failure.json").read_text())

    response = await asyncio.to_thread(
        sdk_service(base_url).send, TEXT, [PATIENT, BLACKLISTED_PATIENT], sender_id=SENDER_ID
    )

    assert isinstance(response, dict)
    assert response.keys() == recorded.keys()
    data, recorded_data = response["SMSMessageData"], recorded["SMSMessageData"]
    assert data.keys() == recorded_data.keys()
    assert data["Message"] == recorded_data["Message"]
    assert len(data["Recipients"]) == len(recorded_data["Recipients"])
    for entry, recorded_entry in zip(data["Recipients"], recorded_data["Recipients"], strict=True):
        assert entry.keys() == recorded_entry.keys()
        for key, value in entry.items():
            assert type(value) is type(recorded_entry[key]), key

    good, blacklisted = data["Recipients"]
    assert MESSAGE_ID.fullmatch(good["messageId"])
    assert {key: good[key] for key in ("cost", "number", "status", "statusCode")} == {
        "cost": "KES 0.8000",
        "number": PATIENT,
        "status": "Success",
        "statusCode": 101,
    }
    assert blacklisted == recorded_data["Recipients"][1]
    assert [message.to for message in store.list()] == [PATIENT]


async def test_multipart_message_cost(base_url: str) -> None:
    response = await asyncio.to_thread(sdk_service(base_url).send, "a" * 161, [PATIENT])

    data = response["SMSMessageData"]
    assert data["Message"] == "Sent to 1/1 Total Cost: KES 1.6000 Message parts: 2"
    assert data["Recipients"][0]["cost"] == "KES 1.6000"


async def test_send_to_blacklisted_number(
    sender: AfricasTalkingSmsSender,
    server: TestServer,
    http: aiohttp.ClientSession,
    store: SandboxStore,
) -> None:
    await post_json(
        http, server, "/sandbox/africastalking/blacklist", {"phone": BLACKLISTED_PATIENT}
    )

    result = await sender.send(BLACKLISTED_PATIENT, TEXT)

    assert not result.accepted
    assert not result.retryable
    assert result.provider_status == "UserInBlacklist"
    assert result.status_code == 406
    assert result.provider_message_id is None
    assert_no_personal_data(result)
    assert store.list() == []


@pytest.mark.parametrize(
    ("username", "api_key"),
    [
        pytest.param(USERNAME, "wrong-api-key", id="wrong-api-key"),
        pytest.param("someone-else", API_KEY, id="wrong-username"),
    ],
)
async def test_wrong_credentials_not_retryable(
    base_url: str, store: SandboxStore, username: str, api_key: str
) -> None:
    sender = AfricasTalkingSmsSender(username, api_key, SENDER_ID, base_url)

    result = await sender.send(PATIENT, TEXT)

    assert not result.accepted
    assert not result.retryable
    assert result.status_code is None
    assert result.error == "authentication rejected by Africa's Talking"
    assert "wrong-api-key" not in (result.error or "")
    assert store.list() == []


async def test_wrong_api_key_raw_response(server: TestServer, http: aiohttp.ClientSession) -> None:
    recorded = (PAYLOADS / "at_sms_send_response_401.txt").read_text().strip()
    url = server.make_url("/sandbox/africastalking/version1/messaging")

    async with http.post(
        url, data={"username": USERNAME, "to": PATIENT, "message": TEXT}, headers={"apiKey": "x"}
    ) as response:
        body = await response.text()

    assert response.status == 401
    assert response.content_type == "text/plain"
    assert body == recorded


async def test_invalid_sender_id(base_url: str, store: SandboxStore) -> None:
    sender = AfricasTalkingSmsSender(USERNAME, API_KEY, "NOTOURS", base_url)

    result = await sender.send(PATIENT, TEXT)

    assert not result.accepted
    assert not result.retryable
    assert result.provider_status == "InvalidSenderId"
    assert result.status_code is None
    assert store.list() == []


async def test_invalid_sender_id_raw_response(base_url: str) -> None:
    recorded = json.loads((PAYLOADS / "at_sms_send_response_invalid_sender.json").read_text())

    response = await asyncio.to_thread(
        sdk_service(base_url).send, TEXT, [PATIENT], sender_id="NOTOURS"
    )

    assert response == recorded


async def test_no_sender_id_uses_default(base_url: str, store: SandboxStore) -> None:
    sender = AfricasTalkingSmsSender(USERNAME, API_KEY, None, base_url)

    result = await sender.send(PATIENT, TEXT)

    assert result.accepted
    assert len(store.list()) == 1


async def test_injected_fault_retryable_then_success(
    sender: AfricasTalkingSmsSender,
    server: TestServer,
    http: aiohttp.ClientSession,
    store: SandboxStore,
) -> None:
    status, _ = await post_json(
        http,
        server,
        "/sandbox/faults",
        {"service": "africastalking.sms", "http_status": 503, "count": 2},
    )
    assert status == 204

    first = await sender.send(PATIENT, TEXT)
    second = await sender.send(PATIENT, TEXT)
    assert store.list() == []
    third = await sender.send(PATIENT, TEXT)

    for result in (first, second):
        assert not result.accepted
        assert result.retryable
        assert result.provider_status == "HttpError"
        assert_no_personal_data(result)
    assert third.accepted
    assert [message.provider_message_id for message in store.list()] == [third.provider_message_id]


async def test_ending_faults_releases_a_delayed_send(
    sender: AfricasTalkingSmsSender,
    server: TestServer,
    http: aiohttp.ClientSession,
    store: SandboxStore,
) -> None:
    # Longer than the SDK's 9 s read timeout: the send succeeds only if the delay is cut short.
    status, _ = await post_json(
        http,
        server,
        "/sandbox/faults",
        {"service": "africastalking.sms", "delay_seconds": 30, "count": 2},
    )
    assert status == 204
    sending = asyncio.create_task(sender.send(PATIENT, TEXT))
    for _ in range(500):
        if store.waiting_delays():
            break
        await asyncio.sleep(0.01)
    assert store.waiting_delays() == 1

    async with http.delete(server.make_url("/sandbox/faults")) as response:
        assert response.status == 204
    result = await sending

    assert result.accepted
    assert store.waiting_delays() == 0
    # The second injected delay was forgotten too.
    assert store.take_fault("africastalking.sms") is None


async def test_connection_refused_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more, so the connection is refused.
    sender = AfricasTalkingSmsSender(USERNAME, API_KEY, SENDER_ID, f"http://127.0.0.1:{port}")

    result = await sender.send(PATIENT, TEXT)

    assert not result.accepted
    assert result.retryable
    assert result.provider_status == "ConnectionFailed"


async def test_invalid_number_from_provider(
    sender: AfricasTalkingSmsSender, store: SandboxStore
) -> None:
    # "+25470000" passes the SDK's own pattern, so the fake rejects it as AT would.
    result = await sender.send("+25470000", TEXT)

    assert not result.accepted
    assert not result.retryable
    assert result.provider_status == "InvalidPhoneNumber"
    assert result.status_code == 403
    assert result.provider_message_id is None
    assert "+25470000" not in (result.error or "")
    assert store.list() == []


async def test_local_number_rejected_before_request(
    sender: AfricasTalkingSmsSender, store: SandboxStore
) -> None:
    # A pending fault is used up by any request, so one still pending proves none was sent.
    store.inject_fault("africastalking.sms", 503, 1)

    result = await sender.send("0700000001", TEXT)

    assert not result.accepted
    assert not result.retryable
    assert result.provider_status == "InvalidPhoneNumber"
    assert result.status_code is None
    assert "0700000001" not in (result.error or "")
    fault = store.take_fault("africastalking.sms")
    assert fault is not None
    assert fault.http_status == 503


async def test_list_and_clear_messages(
    sender: AfricasTalkingSmsSender, server: TestServer, http: aiohttp.ClientSession
) -> None:
    other = "+254700000003"
    await sender.send(PATIENT, "first")
    await sender.send(other, "second")
    await sender.send(PATIENT, "third")

    async with http.get(server.make_url("/sandbox/messages")) as response:
        assert response.status == 200
        listed = await response.json()
    async with http.get(server.make_url("/sandbox/messages?to=%2B254700000001")) as response:
        filtered = await response.json()
    # An unescaped "+" decodes to a space, and the filter accepts that as well.
    async with http.get(server.make_url("/sandbox/messages?to=+254700000003")) as response:
        unescaped = await response.json()

    assert [entry["text"] for entry in listed] == ["first", "second", "third"]
    assert listed[0].keys() == {
        "channel",
        "provider",
        "to",
        "text",
        "provider_message_id",
        "sent_at",
    }
    assert listed[0]["channel"] == "sms"
    assert listed[0]["provider"] == "africastalking"
    assert listed[0]["to"] == PATIENT
    assert MESSAGE_ID.fullmatch(listed[0]["provider_message_id"])
    assert listed[0]["sent_at"] == DEFAULT_NOW.isoformat()
    assert [entry["text"] for entry in filtered] == ["first", "third"]
    assert [entry["text"] for entry in unescaped] == ["second"]

    async with http.delete(server.make_url("/sandbox/messages")) as response:
        assert response.status == 204
    async with http.get(server.make_url("/sandbox/messages")) as response:
        assert await response.json() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"http_status": 503, "count": 1}, "service", id="service-missing"),
        pytest.param(
            {"service": "twilio.nope", "http_status": 503, "count": 1},
            "service",
            id="service-unknown",
        ),
        pytest.param(
            {"service": "nope", "http_status": 500}, "service", id="service-unknown-count-missing"
        ),
        pytest.param({"service": 5, "http_status": 503, "count": 1}, "service", id="service-int"),
        pytest.param(
            {"service": "africastalking.sms", "count": 1}, "http_status", id="status-missing"
        ),
        pytest.param(
            {"service": "africastalking.sms", "http_status": "503", "count": 1},
            "http_status",
            id="status-string",
        ),
        pytest.param(
            {"service": "africastalking.sms", "http_status": 200, "count": 1},
            "http_status",
            id="status-2xx",
        ),
        pytest.param(
            {"service": "africastalking.sms", "http_status": 503, "count": 0}, "count", id="count-0"
        ),
        pytest.param(
            {"service": "africastalking.sms", "http_status": 503, "count": True},
            "count",
            id="count-bool",
        ),
        pytest.param(
            {"service": "africastalking.sms", "http_status": 503}, "count", id="count-missing"
        ),
        pytest.param(["africastalking.sms", 503, 1], "body", id="body-list"),
        pytest.param(
            {"service": "africastalking.sms", "delay_seconds": 99, "count": 1},
            "delay_seconds",
            id="delay-too-long",
        ),
        pytest.param(
            {"service": "africastalking.sms", "delay_seconds": "3", "count": 1},
            "delay_seconds",
            id="delay-string",
        ),
    ],
)
async def test_faults_bad_input_names_field(
    server: TestServer, http: aiohttp.ClientSession, store: SandboxStore, body: Any, field: str
) -> None:
    status, payload = await post_json(http, server, "/sandbox/faults", body)

    assert status == 400
    assert payload["field"] == field
    assert f"'{field}'" in payload["error"]
    assert store.take_fault("africastalking.sms") is None


async def test_faults_invalid_json(server: TestServer, http: aiohttp.ClientSession) -> None:
    async with http.post(server.make_url("/sandbox/faults"), data=b"{not json") as response:
        payload = await response.json()

    assert response.status == 400
    assert payload["field"] == "body"


@pytest.mark.parametrize("phone", ["0700000001", "+25470000", "+254 700 000 001", 254700000001])
async def test_blacklist_bad_phone(
    server: TestServer, http: aiohttp.ClientSession, phone: Any
) -> None:
    status, payload = await post_json(
        http, server, "/sandbox/africastalking/blacklist", {"phone": phone}
    )

    assert status == 400
    assert payload["field"] == "phone"


async def test_recorded_request_form_accepted(
    server: TestServer, http: aiohttp.ClientSession, store: SandboxStore
) -> None:
    body = (PAYLOADS / "at_sms_send_request.form").read_bytes().strip()
    headers = {
        "apiKey": API_KEY,
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
    }

    async with http.post(
        server.make_url("/sandbox/africastalking/version1/messaging"), data=body, headers=headers
    ) as response:
        content_type = response.headers["Content-Type"]
        payload = await response.json()

    assert response.status == 201
    # The SDK parses the body only when the header is exactly this, with no charset.
    assert content_type == "application/json"
    data = payload["SMSMessageData"]
    assert data["Message"] == "Sent to 2/2 Total Cost: KES 1.6000 Message parts: 1"
    assert [entry["number"] for entry in data["Recipients"]] == ["+254700000001", "+254733000003"]
    assert [entry["status"] for entry in data["Recipients"]] == ["Success", "Success"]
    assert [message.to for message in store.list()] == ["+254700000001", "+254733000003"]
