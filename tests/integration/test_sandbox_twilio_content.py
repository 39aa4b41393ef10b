"""The Content API fake at `/sandbox/twilio/v1/Content`, driven by the real twilio SDK: created
resources, rejected fields, and `ContentSid` sends recorded with their buttons or list items."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from twilio.rest.content.v1.content import ContentList

from core.clock import FrozenClock
from tests.integration.conftest import RunningService, start_service
from tests.integration.twilio_support import ACCOUNT_SID, AUTH_TOKEN, WHATSAPP_FROM, twilio_settings

PHONE = "+254700000133"


@pytest.fixture
async def service(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[RunningService]:
    from core.db.migrate import upgrade_to_head

    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    running = await start_service(sqlite_url, clock, seed=False, **twilio_settings())
    yield running
    await running.client.close()


def sdk_client(service: RunningService, token: str = AUTH_TOKEN) -> Client:
    """The twilio SDK with both the Messages and the Content API pointed at the fake."""
    client = Client(ACCOUNT_SID, token)
    client.edge = None
    client.region = None
    base_url = str(service.client.make_url("/sandbox/twilio"))
    client.api.base_url = base_url
    client.content.base_url = base_url
    return client


def quick_reply_request(title: str = "{{2}}") -> Any:
    return ContentList.ContentCreateRequest(
        {
            "friendly_name": "test_quick_reply",
            "language": "en",
            "variables": {"1": "Pick one", "2": "Yes", "3": "1:1:1"},
            "types": {
                "twilio/quick-reply": {
                    "body": "{{1}}",
                    "actions": [{"type": "QUICK_REPLY", "title": title, "id": "{{3}}"}],
                }
            },
        }
    )


async def accepted(service: RunningService) -> list[dict[str, Any]]:
    response = await service.client.get("/sandbox/messages")
    return list(await response.json())


async def test_create_and_fetch_through_sdk(service: RunningService) -> None:
    client = sdk_client(service)

    created = await asyncio.to_thread(client.content.v1.contents.create, quick_reply_request())
    fetched = await asyncio.to_thread(client.content.v1.contents(created.sid).fetch)

    assert created.sid.startswith("HX")
    assert len(created.sid) == 34
    assert created.language == "en"
    assert fetched.sid == created.sid
    assert fetched.types["twilio/quick-reply"]["actions"][0]["id"] == "{{3}}"


@pytest.mark.parametrize(
    ("case", "title", "message"),
    [
        ("title over 20", "x" * 21, "actions[].title is longer than 20 characters"),
        ("empty title", "", "actions[].title is required"),
    ],
)
async def test_create_rejects_bad_title(
    service: RunningService, case: str, title: str, message: str
) -> None:
    client = sdk_client(service)

    with pytest.raises(TwilioRestException) as raised:
        await asyncio.to_thread(client.content.v1.contents.create, quick_reply_request(title))

    assert raised.value.status == 400, case
    assert message in raised.value.msg, case


async def test_create_rejects_eleven_items(service: RunningService) -> None:
    client = sdk_client(service)
    items = [{"item": f"Item {i}", "id": str(i), "description": "d"} for i in range(11)]
    request = ContentList.ContentCreateRequest(
        {
            "language": "en",
            "types": {"twilio/list-picker": {"body": "Pick", "button": "Choose", "items": items}},
        }
    )

    with pytest.raises(TwilioRestException) as raised:
        await asyncio.to_thread(client.content.v1.contents.create, request)

    assert raised.value.status == 400
    assert "items must hold 1 to 10 items" in raised.value.msg


async def test_create_rejects_wrong_token(service: RunningService) -> None:
    client = sdk_client(service, token="0" * 32)

    with pytest.raises(TwilioRestException) as raised:
        await asyncio.to_thread(client.content.v1.contents.create, quick_reply_request())

    assert raised.value.status == 401


async def test_send_rejects_title_over_limit_once_filled(service: RunningService) -> None:
    client = sdk_client(service)
    created = await asyncio.to_thread(client.content.v1.contents.create, quick_reply_request())

    with pytest.raises(TwilioRestException) as raised:
        await asyncio.to_thread(
            client.messages.create,
            to=f"whatsapp:{PHONE}",
            from_=WHATSAPP_FROM,
            content_sid=created.sid,
            content_variables=json.dumps({"1": "Pick", "2": "x" * 21, "3": "1:1:1"}),
        )

    assert raised.value.status == 400
    assert raised.value.code == 21656
    assert await accepted(service) == []


async def test_send_recorded_with_list_items(service: RunningService) -> None:
    client = sdk_client(service)
    request = ContentList.ContentCreateRequest(
        {
            "language": "sw",
            "types": {
                "twilio/list-picker": {
                    "body": "{{1}}",
                    "button": "{{2}}",
                    "items": [{"item": "{{3}}", "id": "{{4}}", "description": "{{5}}"}],
                }
            },
        }
    )
    created = await asyncio.to_thread(client.content.v1.contents.create, request)
    variables = {"1": "Chagua daktari:", "2": "Chagua", "3": "Dr. Test", "4": "1:2:1", "5": "1"}

    sent = await asyncio.to_thread(
        client.messages.create,
        to=f"whatsapp:{PHONE}",
        from_=WHATSAPP_FROM,
        content_sid=created.sid,
        content_variables=json.dumps(variables),
    )

    (message,) = await accepted(service)
    assert message["provider_message_id"] == sent.sid
    assert message["text"] == "Chagua daktari:"
    assert message["interactive"] == {
        "content_sid": created.sid,
        "type": "twilio/list-picker",
        "button": "Chagua",
        "items": [{"item": "Dr. Test", "id": "1:2:1", "description": "1"}],
    }


async def test_send_rejects_missing_variable(service: RunningService) -> None:
    client = sdk_client(service)
    request = quick_reply_request()
    request.variables = {}  # no default value for {{2}}
    created = await asyncio.to_thread(client.content.v1.contents.create, request)

    with pytest.raises(TwilioRestException) as raised:
        await asyncio.to_thread(
            client.messages.create,
            to=f"whatsapp:{PHONE}",
            from_=WHATSAPP_FROM,
            content_sid=created.sid,
            content_variables=json.dumps({"1": "Pick", "3": "1:1:1"}),
        )

    assert raised.value.code == 21656
    assert "no value for {{2}}" in raised.value.msg
    assert await accepted(service) == []


async def test_send_uses_default_values(service: RunningService) -> None:
    client = sdk_client(service)
    created = await asyncio.to_thread(client.content.v1.contents.create, quick_reply_request())

    await asyncio.to_thread(
        client.messages.create,
        to=f"whatsapp:{PHONE}",
        from_=WHATSAPP_FROM,
        content_sid=created.sid,
        content_variables=json.dumps({"1": "Pick"}),
    )

    (message,) = await accepted(service)
    assert message["interactive"]["buttons"] == [{"title": "Yes", "id": "1:1:1"}]
