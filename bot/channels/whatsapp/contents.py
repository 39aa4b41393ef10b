"""Twilio Content API resources for interactive replies, created once per account and cached.

`ContentResources.content_sid(plan)` returns the resource of a plan's shape: from memory, else
from the `whatsapp_contents` table, else created with `client.content.v1.contents.create` and
stored. Any failure returns None, and the sender then sends numbered text, so a reply is never
lost to the Content API.

A resource deleted at Twilio, or unknown to the sandbox's fake after a restart, makes a send
fail with error 21655. The sender then calls `forget`, which drops the SID from memory and from
the table, and `content_sid` creates the resource again.

NOTE: two processes that miss at the same moment both create a resource, and the one whose row
loses the insert stays unused at Twilio.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import requests
from twilio.base.exceptions import TwilioException
from twilio.rest import Client
from twilio.rest.content.v1.content import ContentList

from bot.channels.whatsapp.interactive import InteractivePlan
from core.db.database import Sql, UnitOfWork, open_database

log = logging.getLogger(__name__)

_Result = TypeVar("_Result")

_FIND = Sql(
    "SELECT content_sid FROM whatsapp_contents"
    " WHERE account_sid = :account_sid AND content_key = :content_key"
)
_INSERT = Sql(
    """
    INSERT INTO whatsapp_contents (account_sid, content_key, content_sid, created_at)
    VALUES (:account_sid, :content_key, :content_sid, :created_at)
    ON CONFLICT (account_sid, content_key) DO NOTHING
    """
)
# Only the rejected SID, so a resource that another process has just created again stays.
_DELETE = Sql(
    "DELETE FROM whatsapp_contents"
    " WHERE account_sid = :account_sid AND content_key = :content_key"
    " AND content_sid = :content_sid"
)


class ContentStore(Protocol):
    """Storage of created Content resources, shared by processes and kept across restarts."""

    def find(self, account_sid: str, content_key: str) -> str | None: ...

    def save(self, account_sid: str, content_key: str, content_sid: str) -> str:
        """Store a new resource and return the SID stored for the key. That is an earlier
        writer's SID when another process created the same resource at the same time."""
        ...

    def delete(self, account_sid: str, content_key: str, content_sid: str) -> None:
        """Delete the stored resource of the key when its SID is `content_sid`."""
        ...


class DatabaseContentStore:
    """`ContentStore` on the service database, for the blocking sender's worker threads.

    Each call opens the database on a private event loop and closes both again, because a miss
    in the sender's memory happens a few times per process, never once per message.
    """

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url

    def find(self, account_sid: str, content_key: str) -> str | None:
        async def find(uow: UnitOfWork) -> str | None:
            found = await uow.scalar(_FIND, account_sid=account_sid, content_key=content_key)
            return str(found) if found is not None else None

        return self._run(find)

    def save(self, account_sid: str, content_key: str, content_sid: str) -> str:
        async def save(uow: UnitOfWork) -> str:
            await uow.execute(
                _INSERT,
                account_sid=account_sid,
                content_key=content_key,
                content_sid=content_sid,
                created_at=datetime.now(UTC),
            )
            return str(await uow.scalar(_FIND, account_sid=account_sid, content_key=content_key))

        return self._run(save)

    def delete(self, account_sid: str, content_key: str, content_sid: str) -> None:
        async def delete(uow: UnitOfWork) -> None:
            await uow.execute(
                _DELETE, account_sid=account_sid, content_key=content_key, content_sid=content_sid
            )

        self._run(delete)

    def _run(self, work: Callable[[UnitOfWork], Awaitable[_Result]]) -> _Result:
        """Run `work` in one transaction on a database opened for this call only."""

        async def run() -> _Result:
            database = await open_database(self._database_url)
            try:
                async with database.unit_of_work() as uow:
                    return await work(uow)
            finally:
                await database.close()

        # A loop of its own, never set as the thread's current loop, so the worker thread's
        # loop and any other the thread keeps are left alone.
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(run())
        finally:
            loop.close()


class ContentResources:
    """The Content resources of one Twilio account, created on first use."""

    def __init__(self, client: Client, account_sid: str, store: ContentStore) -> None:
        self._client = client
        self._account_sid = account_sid
        self._store = store
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def content_sid(self, plan: InteractivePlan) -> str | None:
        """Return the SID of the resource for `plan`'s shape, or None when it is unavailable."""
        key = plan.content_key()
        with self._lock:
            known = self._known.get(key)
        if known is not None:
            return known
        try:
            sid = self._store.find(self._account_sid, key)
        except Exception:
            # Whatever the database error, the reply goes out as text and the next one tries again.
            log.exception("reading the WhatsApp content cache failed for %s", key)
            return None
        if sid is None:
            sid = self._create(plan, key)
            if sid is None:
                return None
            try:
                sid = self._store.save(self._account_sid, key, sid)
            except Exception:
                # The resource exists at Twilio, so this process still uses it.
                log.exception("storing WhatsApp content %s for %s failed", sid, key)
        with self._lock:
            self._known[key] = sid
        return sid

    def forget(self, plan: InteractivePlan, content_sid: str) -> None:
        """Remove `content_sid`, which Twilio rejected as invalid, as the resource of `plan`'s
        shape, so the next `content_sid` call creates the resource again."""
        key = plan.content_key()
        with self._lock:
            if self._known.get(key) == content_sid:
                del self._known[key]
        try:
            self._store.delete(self._account_sid, key, content_sid)
        except Exception:
            # The next process to start reads the SID again and removes it after its first
            # rejected send.
            log.exception("deleting WhatsApp content %s for %s failed", content_sid, key)
        log.info("forgot WhatsApp content %s for %s", content_sid, key)

    def _create(self, plan: InteractivePlan, key: str) -> str | None:
        request = ContentList.ContentCreateRequest(plan.definition())
        try:
            created = self._client.content.v1.contents.create(request)
        except TwilioException as exc:
            log.warning("creating WhatsApp content %s failed: %s", key, exc)
            return None
        except requests.RequestException as exc:
            log.warning("creating WhatsApp content %s failed: %s", key, type(exc).__name__)
            return None
        if not created.sid:
            log.warning("creating WhatsApp content %s returned no SID", key)
            return None
        log.info("created WhatsApp content %s for %s", created.sid, key)
        return str(created.sid)
