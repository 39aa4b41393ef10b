"""The chat panes' sandbox helpers: the settings they read and the Twilio signing endpoint.

A form signed by the helper must pass the real WhatsApp webhook's signature check, and the
Telegram secret it hands out must pass the Telegram webhook's, because the panes post exactly
those requests.
"""

from __future__ import annotations

from typing import Any

from twilio.request_validator import RequestValidator

from myafya.settings import SANDBOX_TELEGRAM_WEBHOOK_SECRET, SANDBOX_TWILIO_AUTH_TOKEN
from tests.integration.conftest import RunningService

PHONE = "+254700000161"
WHATSAPP_PATH = "/webhooks/twilio/whatsapp"


def whatsapp_form(config: dict[str, Any], sid: str, body: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "AccountSid": config["account_sid"],
        "From": f"whatsapp:{PHONE}",
        "To": config["to"],
        "Body": body,
        "NumMedia": "0",
        "ProfileName": "Test Patient",
        "WaId": PHONE.removeprefix("+"),
        "MessageType": "text",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }


async def chat_config(service: RunningService) -> dict[str, Any]:
    response = await service.client.get("/simulator/chats")
    assert response.status == 200
    config: dict[str, Any] = await response.json()
    return config


async def sign(service: RunningService, path: str, params: Any) -> tuple[int, dict[str, Any]]:
    response = await service.client.post(
        "/sandbox/twilio/sign", json={"path": path, "params": params}
    )
    return response.status, await response.json()


async def test_chat_config_has_sandbox_values(sqlite_service: RunningService) -> None:
    config = await chat_config(sqlite_service)

    assert config["whatsapp"]["account_sid"].startswith("AC")
    assert config["whatsapp"]["to"].startswith("whatsapp:+")
    assert config["telegram"] == {"secret_token": SANDBOX_TELEGRAM_WEBHOOK_SECRET}


async def test_signature_matches_public_url(sqlite_service: RunningService) -> None:
    config = await chat_config(sqlite_service)
    form = whatsapp_form(config["whatsapp"], "SM" + "1" * 32, "hello")

    status, body = await sign(sqlite_service, WHATSAPP_PATH, form)

    assert status == 200
    public_url = sqlite_service.services.settings.public_url
    validator = RequestValidator(SANDBOX_TWILIO_AUTH_TOKEN)
    assert validator.validate(public_url + WHATSAPP_PATH, form, body["signature"])


async def test_signed_form_passes_webhook(sqlite_service: RunningService) -> None:
    config = await chat_config(sqlite_service)
    form = whatsapp_form(config["whatsapp"], "SM" + "2" * 32, "hello")
    _, body = await sign(sqlite_service, WHATSAPP_PATH, form)

    response = await sqlite_service.client.post(
        WHATSAPP_PATH, data=form, headers={"X-Twilio-Signature": body["signature"]}
    )

    assert response.status == 200
    replies = [m for m in await sqlite_service.sent_sms() if m["channel"] == "whatsapp"]
    assert [m["to"] for m in replies] == [PHONE]


async def test_secret_passes_telegram_webhook(sqlite_service: RunningService) -> None:
    config = await chat_config(sqlite_service)
    update = {
        "update_id": 500000001,
        "message": {
            "message_id": 1,
            "from": {"id": 100000161, "is_bot": False, "first_name": "Test"},
            "chat": {"id": 100000161, "type": "private", "first_name": "Test"},
            "date": 1800000000,
            "text": "hello",
        },
    }

    response = await sqlite_service.client.post(
        "/webhooks/telegram",
        json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": config["telegram"]["secret_token"]},
    )

    assert response.status == 200


BAD_SIGN_REQUESTS = [
    ("/webhooks/telegram", {}, "path"),
    ("/sandbox/messages", {}, "path"),
    (None, {}, "path"),
    (WHATSAPP_PATH, ["Body", "hi"], "params"),
    (WHATSAPP_PATH, {"Body": 1}, "params"),
    (WHATSAPP_PATH, {f"F{i}": "x" for i in range(101)}, "params"),
    (WHATSAPP_PATH, {"Body": "x" * 5001}, "params"),
]


async def test_sign_rejects_bad_input(sqlite_service: RunningService) -> None:
    for path, params, field in BAD_SIGN_REQUESTS:
        status, body = await sign(sqlite_service, path, params)
        assert status == 400, (path, params)
        assert body["field"] == field, (path, params)


async def test_sign_rejects_non_json(sqlite_service: RunningService) -> None:
    response = await sqlite_service.client.post("/sandbox/twilio/sign", data=b"not json")
    assert response.status == 400
    assert (await response.json())["field"] == "body"
