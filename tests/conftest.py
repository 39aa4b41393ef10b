"""Fixtures shared by every test: a frozen clock and real databases.

PostgreSQL tests run against the server named by MYAFYA_TEST_POSTGRES_URL (default: the local
trust-auth server, database `test`), each in a database of its own that is dropped afterwards.
They skip when the server is unreachable, unless MYAFYA_REQUIRE_SERVICES=1 makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.clock import FrozenClock
from core.db.database import PostgresDatabase, SqliteDatabase, open_database
from core.db.migrate import upgrade_to_head

PAYLOADS = Path(__file__).resolve().parents[1].parent / "shared" / "payloads"
POSTGRES_ADMIN_URL = os.environ.get(
    "MYAFYA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_SERVICES = os.environ.get("MYAFYA_REQUIRE_SERVICES") == "1"

# Monday 1 February 2027, 06:00 UTC = 09:00 in Nairobi.
DEFAULT_NOW = datetime(2027, 2, 1, 6, 0, tzinfo=UTC)


def service_unavailable(reason: str) -> None:
    """Skip the test, or fail it when CI requires every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (MYAFYA_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(DEFAULT_NOW)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'myafya.db'}"


async def _admin_execute(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """Create an empty PostgreSQL database for one test and drop it afterwards."""
    name = f"myafya_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError) as exc:
        service_unavailable(f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {exc}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated, empty database of each kind."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    upgrade_to_head(url)
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[SqliteDatabase | PostgresDatabase]:
    db = await open_database(database_url)
    yield db
    await db.close()


@pytest.fixture
async def sqlite_database(sqlite_url: str) -> AsyncIterator[SqliteDatabase | PostgresDatabase]:
    """A migrated SQLite database, for tests that do not depend on the database kind."""
    await asyncio.to_thread(upgrade_to_head, sqlite_url)
    db = await open_database(sqlite_url)
    yield db
    await db.close()
