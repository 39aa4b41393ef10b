"""A fake of Twilio's Content API: `POST /v1/Content` and `GET /v1/Content/{sid}`.

The real `twilio` SDK talks to it when `client.content.base_url` is `{server}/sandbox/twilio`.
It takes the JSON body of `client.content.v1.contents.create`, checks HTTP Basic authentication
and the `twilio/text`, `twilio/quick-reply` and `twilio/list-picker` types against the limits
of twilio.com/docs/content (read December 2026), and keeps each resource in memory. The Messages
fake calls `render` for the text and the buttons or items of a `ContentSid` send.

NOTE: Twilio's error codes for an invalid Content resource were not found. The fake answers
400 with code 400, the shape Twilio's helper libraries show for other validation errors.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from email.utils import format_datetime
from typing import Any, Final

from aiohttp import web

from core.clock import Clock
from sandbox.store import SandboxStore

CONTENT_FAULT_SERVICE: Final = "twilio.content"  # delay or HTTP error on every create

# Limits of twilio.com/docs/content/twilio-quick-reply and /twiliolist-picker.
MAX_BODY: Final = 1024
MAX_TEXT_BODY: Final = 1600
MAX_QUICK_REPLY_ACTIONS: Final = 10
# An in-session WhatsApp message without template approval contains at most 3 quick replies.
MAX_SESSION_QUICK_REPLIES: Final = 3
MAX_LIST_ITEMS: Final = 10
MAX_ITEM: Final = 24
MAX_DESCRIPTION: Final = 72
MAX_ID: Final = 200
# WhatsApp's maximum reply-button title, also applied to the list picker's button text.
MAX_BUTTON_TITLE: Final = 20

TEXT: Final = "twilio/text"
QUICK_REPLY: Final = "twilio/quick-reply"
LIST_PICKER: Final = "twilio/list-picker"
SUPPORTED_TYPES: Final = (TEXT, QUICK_REPLY, LIST_PICKER)

log = logging.getLogger(__name__)

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
CONTENT_BASE: Final = "https://content.twilio.com/v1/Content"


class ContentError(Exception):
    """A Content resource or a send's variables break a rule, which the message names."""


@dataclass(frozen=True)
class RenderedContent:
    """The message WhatsApp would show for a send: its text, and its buttons or list."""

    text: str
    interactive: dict[str, Any] | None


class TwilioContentFake:
    """Request handlers of the fake and the resources it created, for one account."""

    def __init__(
        self, *, store: SandboxStore, clock: Clock, account_sid: str, check_credentials: Any
    ) -> None:
        """`check_credentials(request, check_path=False)` returns whether the request's Basic
        authentication is the account's, as the Messages fake checks it."""
        self._store = store
        self._clock = clock
        self._account_sid = account_sid
        self._check_credentials = check_credentials
        self._lock = threading.Lock()
        self._resources: dict[str, dict[str, Any]] = {}

    async def handle_create(self, request: web.Request) -> web.Response:
        """Handle `POST /v1/Content` as Twilio does: 201 with the new resource."""
        fault = self._store.take_fault(CONTENT_FAULT_SERVICE)
        if fault is not None and fault.delay_seconds:
            await self._store.wait_injected_delay(fault.delay_seconds)
        if fault is not None and fault.http_status is not None:
            log.info(
                "Sandbox Twilio content create failed with injected HTTP %d", fault.http_status
            )
            return _error(fault.http_status, 20500, "Sandbox fault: injected error")
        if not self._check_credentials(request, check_path=False):
            return _error(401, 20003, "Authenticate")
        try:
            body = json.loads(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, 400, "The request body is not valid JSON.")
        try:
            resource = self._validated(body)
        except ContentError as exc:
            return _error(400, 400, str(exc))
        with self._lock:
            self._resources[resource["sid"]] = resource
        return web.json_response(resource, status=201)

    async def handle_fetch(self, request: web.Request) -> web.Response:
        """Handle `GET /v1/Content/{sid}`."""
        if not self._check_credentials(request, check_path=False):
            return _error(401, 20003, "Authenticate")
        with self._lock:
            resource = self._resources.get(request.match_info["content_sid"])
        if resource is None:
            return _error(404, 20404, "The requested resource was not found")
        return web.json_response(resource)

    def has(self, content_sid: str) -> bool:
        with self._lock:
            return content_sid in self._resources

    def count(self) -> int:
        """Return how many resources were created; tests check that each is created once."""
        with self._lock:
            return len(self._resources)

    def render(self, content_sid: str, variables: dict[str, Any]) -> RenderedContent:
        """Return the message a send of `content_sid` with `variables` shows on WhatsApp. A
        variable the send leaves out takes the resource's default value from `variables`.

        Raises ContentError for an unknown resource, a missing variable or a value that breaks
        a limit once filled in, such as a button title over 20 characters.
        """
        with self._lock:
            resource = self._resources.get(content_sid)
        if resource is None:
            raise ContentError(f"Content {content_sid} was not found.")
        values = {**resource["variables"], **{str(k): str(v) for k, v in variables.items()}}

        def fill(template: str, field: str, limit: int) -> str:
            def value(match: re.Match[str]) -> str:
                name = match[1]
                if name not in values:
                    raise ContentError(f"ContentVariables has no value for {{{{{name}}}}}.")
                return str(values[name])

            text = _VARIABLE.sub(value, template)
            if len(text) > limit:
                raise ContentError(f"{field} is longer than {limit} characters once filled in.")
            return text

        types = resource["types"]
        if QUICK_REPLY in types:
            spec = types[QUICK_REPLY]
            actions = spec["actions"]
            if len(actions) > MAX_SESSION_QUICK_REPLIES:
                raise ContentError(
                    f"An in-session WhatsApp message contains at most {MAX_SESSION_QUICK_REPLIES}"
                    " quick replies."
                )
            buttons = [
                {
                    "title": fill(action["title"], "actions.title", MAX_BUTTON_TITLE),
                    "id": fill(action.get("id") or action["title"], "actions.id", MAX_ID),
                }
                for action in actions
            ]
            text = fill(spec["body"], "body", MAX_BODY)
            return RenderedContent(text, {"type": QUICK_REPLY, "buttons": buttons})
        if LIST_PICKER in types:
            spec = types[LIST_PICKER]
            items = [
                {
                    "item": fill(item["item"], "items.item", MAX_ITEM),
                    "id": fill(item["id"], "items.id", MAX_ID),
                    "description": fill(
                        item.get("description") or "", "items.description", MAX_DESCRIPTION
                    ),
                }
                for item in spec["items"]
            ]
            interactive = {
                "type": LIST_PICKER,
                "button": fill(spec["button"], "button", MAX_BUTTON_TITLE),
                "items": items,
            }
            return RenderedContent(fill(spec["body"], "body", MAX_BODY), interactive)
        return RenderedContent(fill(types[TEXT]["body"], "body", MAX_TEXT_BODY), None)

    def _validated(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ContentError("The request body must be a JSON object.")
        language = body.get("language")
        if not isinstance(language, str) or not language.strip():
            raise ContentError("language is required.")
        friendly_name = body.get("friendly_name")
        if friendly_name is not None and not isinstance(friendly_name, str):
            raise ContentError("friendly_name must be a string.")
        variables = body.get("variables") or {}
        if not isinstance(variables, dict) or not all(
            isinstance(value, str) for value in variables.values()
        ):
            raise ContentError("variables must be an object of strings.")
        raw_types = body.get("types")
        if not isinstance(raw_types, dict):
            raise ContentError("types is required.")
        # The SDK sends every type it has a class for, the unused ones as null.
        types = {name: spec for name, spec in raw_types.items() if spec is not None}
        unsupported = sorted(set(types) - set(SUPPORTED_TYPES))
        if unsupported:
            raise ContentError(f"The sandbox does not support the type {unsupported[0]}.")
        if not types:
            raise ContentError("types must contain at least one content type.")
        for name, spec in types.items():
            _check_type(name, spec)

        sid = "HX" + secrets.token_hex(16)
        stamp = format_datetime(self._clock.now())
        return {
            "sid": sid,
            "account_sid": self._account_sid,
            "friendly_name": friendly_name,
            "language": language,
            "variables": variables,
            "types": types,
            "url": f"{CONTENT_BASE}/{sid}",
            "date_created": stamp,
            "date_updated": stamp,
            "links": {
                "approval_create": f"{CONTENT_BASE}/{sid}/ApprovalRequests/whatsapp",
                "approval_fetch": f"{CONTENT_BASE}/{sid}/ApprovalRequests",
            },
        }


def _check_type(name: str, spec: Any) -> None:
    if not isinstance(spec, dict):
        raise ContentError(f"{name} must be an object.")
    limit = MAX_TEXT_BODY if name == TEXT else MAX_BODY
    _check_text(spec, "body", f"{name}.body", limit)
    if name == QUICK_REPLY:
        actions = spec.get("actions")
        if not isinstance(actions, list) or not 1 <= len(actions) <= MAX_QUICK_REPLY_ACTIONS:
            raise ContentError(f"{name}.actions must hold 1 to {MAX_QUICK_REPLY_ACTIONS} items.")
        for action in actions:
            if not isinstance(action, dict) or action.get("type") != "QUICK_REPLY":
                raise ContentError(f"{name}.actions[].type must be QUICK_REPLY.")
            _check_text(action, "title", f"{name}.actions[].title", MAX_BUTTON_TITLE)
            if action.get("id") is not None:
                _check_text(action, "id", f"{name}.actions[].id", MAX_ID)
    elif name == LIST_PICKER:
        _check_text(spec, "button", f"{name}.button", MAX_BUTTON_TITLE)
        items = spec.get("items")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_LIST_ITEMS:
            raise ContentError(f"{name}.items must hold 1 to {MAX_LIST_ITEMS} items.")
        for item in items:
            if not isinstance(item, dict):
                raise ContentError(f"{name}.items[] must be objects.")
            _check_text(item, "item", f"{name}.items[].item", MAX_ITEM)
            _check_text(item, "id", f"{name}.items[].id", MAX_ID)
            _check_text(item, "description", f"{name}.items[].description", MAX_DESCRIPTION)


def _check_text(spec: dict[str, Any], key: str, field: str, limit: int) -> None:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ContentError(f"{field} is required.")
    if len(value) > limit:
        raise ContentError(f"{field} is longer than {limit} characters.")


def _error(status: int, code: int, message: str) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status)
