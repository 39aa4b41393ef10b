"""Every captured Africa's Talking USSD payload through the real webhook."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

import pytest

from bot.engine.gsm7 import is_gsm7, septets
from tests.conftest import PAYLOADS

STEP_FILES = sorted(
    path.name for path in PAYLOADS.glob("at_ussd_*.form") if "session_end" not in path.name
)
SESSION_END_FILES = sorted(path.name for path in PAYLOADS.glob("at_ussd_*session_end*.form"))


def read_form(name: str) -> dict[str, str]:
    return dict(parse_qsl((PAYLOADS / name).read_text(), keep_blank_values=True))


def test_payload_files_found() -> None:
    assert len(STEP_FILES) >= 10
    assert len(SESSION_END_FILES) == 2


@pytest.mark.parametrize("name", STEP_FILES)
async def test_step_payload_gets_framed_reply(sqlite_service, name: str) -> None:
    response = await sqlite_service.client.post(
        "/webhooks/africastalking/ussd", data=read_form(name)
    )
    assert response.status == 200
    assert response.content_type == "text/plain"
    body = await response.text()
    assert body.startswith(("CON ", "END "))
    assert body[4:].strip() == body[4:].rstrip() and body[4:].strip()
    assert is_gsm7(body)
    assert septets(body) <= 182


async def test_captured_sessions_in_order(sqlite_service) -> None:
    """The happy-path and timeout sessions, step by step, as the gateway sends them."""
    for prefix, steps in (("at_ussd_step", 6), ("at_ussd_timeout_step", 2)):
        for step in range(1, steps + 1):
            response = await sqlite_service.client.post(
                "/webhooks/africastalking/ussd", data=read_form(f"{prefix}{step}.form")
            )
            assert response.status == 200
            assert (await response.text()).startswith(("CON ", "END "))


@pytest.mark.parametrize("name", SESSION_END_FILES)
async def test_session_end_is_recorded_once(sqlite_service, name: str) -> None:
    form = read_form(name)
    for _ in range(2):  # a repeated notification changes nothing
        response = await sqlite_service.client.post(
            "/webhooks/africastalking/ussd/events", data=form
        )
        assert response.status == 200
    rows = await sqlite_service.scalar(
        "SELECT COUNT(*) FROM ussd_session_events WHERE session_id = :s", s=form["sessionId"]
    )
    assert rows == 1
    status = await sqlite_service.scalar(
        "SELECT status FROM ussd_session_events WHERE session_id = :s", s=form["sessionId"]
    )
    assert status == form["status"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "Exploded"}, "status"),
        ({"status": None}, "status"),
        ({"sessionId": None}, "sessionId"),
        ({"hopsCount": "many"}, "hopsCount"),
        ({"phoneNumber": "12"}, "phoneNumber"),
        ({"hopsCount": "inf"}, "hopsCount"),
        ({"durationInMillis": "1e400"}, "durationInMillis"),
        ({"hopsCount": "99999999999999999999999"}, "hopsCount"),
        ({"hopsCount": "-1"}, "hopsCount"),
        ({"cost": "KES " + "9" * 30}, "cost"),
        ({"errorMessage": "x" * 1001}, "errorMessage"),
        ({"networkCode": "6" * 20}, "networkCode"),
    ],
)
async def test_bad_session_end_is_rejected(sqlite_service, change, field) -> None:
    form = read_form("at_ussd_session_end_success.form")
    for key, value in change.items():
        if value is None:
            form.pop(key)
        else:
            form[key] = value
    response = await sqlite_service.client.post("/webhooks/africastalking/ussd/events", data=form)
    assert response.status == 400
    assert field in await response.text()
    assert await sqlite_service.scalar("SELECT COUNT(*) FROM ussd_session_events") == 0


async def test_request_log_has_no_phone_or_text(sqlite_service, caplog) -> None:
    caplog.set_level(logging.INFO)
    form = read_form("at_ussd_step1.form")
    await sqlite_service.client.post("/webhooks/africastalking/ussd", data=form)
    form["text"] = "1"
    await sqlite_service.client.post("/webhooks/africastalking/ussd", data=form)
    form["text"] = "1*Secret Name"
    await sqlite_service.client.post("/webhooks/africastalking/ussd", data=form)
    steps = [r for r in caplog.records if r.getMessage() == "ussd step"]
    assert len(steps) == 3
    for record in steps:
        assert record.channel == "ussd"
        assert record.conversation_id
        assert record.outcome in ("continue", "end")
        assert record.elapsed_ms >= 0
    assert steps[-1].state_from == "registration.NAME"
    assert steps[-1].state_to == "registration.CONSENT"
    logged = "\n".join(str(vars(record)) for record in caplog.records)
    assert "700000001" not in logged
    assert "Secret Name" not in logged


async def test_health_ready_and_metrics(sqlite_service) -> None:
    client = sqlite_service.client
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["database"] == "ok"
    await client.post("/webhooks/africastalking/ussd", data=read_form("at_ussd_step1.form"))
    await client.post("/webhooks/africastalking/ussd", data={"text": ""})
    metrics = await (await client.get("/metrics")).text()
    assert 'myafya_inbound_requests_total{channel="ussd",outcome="continue"} 1.0' in metrics
    assert 'myafya_inbound_requests_total{channel="ussd",outcome="bad_request"} 1.0' in metrics
    assert 'myafya_step_seconds_count{channel="ussd"} 2.0' in metrics


async def test_readyz_reports_unreachable_database(sqlite_service) -> None:
    await sqlite_service.services.database.close()
    response = await sqlite_service.client.get("/readyz")
    assert response.status == 503


NOT_FORM_BODIES = [
    ("application/json", '{"sessionId": "ATUid_json", "phoneNumber": "+254700000102"}'),
    ("text/plain", "sessionId=ATUid_text&phoneNumber=%2B254700000102&text="),
    ("", "sessionId=ATUid_none&phoneNumber=%2B254700000102&text="),
]


@pytest.mark.parametrize(
    "path", ["/webhooks/africastalking/ussd", "/webhooks/africastalking/ussd/events"]
)
@pytest.mark.parametrize(("content_type", "body"), NOT_FORM_BODIES)
async def test_non_form_body_rejected(sqlite_service, path, content_type, body) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await sqlite_service.client.post(path, data=body.encode(), headers=headers)
    assert response.status == 415
    assert "must be application/x-www-form-urlencoded" in await response.text()
    assert await sqlite_service.scalar("SELECT COUNT(*) FROM conversations") == 0
    assert await sqlite_service.scalar("SELECT COUNT(*) FROM ussd_session_events") == 0
