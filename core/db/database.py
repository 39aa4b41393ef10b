"""The async unit of work and the two database backends behind it.

Statements are SQL text with `:name` parameters, compiled once per dialect by SQLAlchemy 2.0 and
run directly on the driver: the stdlib `sqlite3` module for the embedded default, asyncpg for
PostgreSQL. A profile on this project's 2-core VM, before any product code, put the SQLAlchemy
async layer at about 3 ms of CPU for one session read and upsert. Stdlib sqlite3 did the same
work in about 0.04 ms, and a USSD step runs a handful of such statements.
The tables themselves are defined once in `core.db.schema` and created by Alembic.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

log = logging.getLogger(__name__)

Row = Mapping[str, Any]
AfterCommit = Callable[[], Awaitable[None]]

_DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.asyncpg.dialect(),  # type: ignore[no-untyped-call]
}


class UniqueViolation(Exception):
    """An insert or update broke a unique constraint or index."""

    def __init__(self, constraint: str) -> None:
        super().__init__(f"unique constraint violated: {constraint}")
        self.constraint = constraint


class Sql:
    """One SQL statement, compiled on first use for each dialect.

    `{for_update}` in the text becomes ` FOR UPDATE` on PostgreSQL and nothing on SQLite, where
    `BEGIN IMMEDIATE` already holds the database's single write lock.
    """

    __slots__ = ("_compiled", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._compiled: dict[str, tuple[str, tuple[str, ...]]] = {}

    def compiled(self, dialect: str) -> tuple[str, tuple[str, ...]]:
        found = self._compiled.get(dialect)
        if found is None:
            source = self.source.replace(
                "{for_update}", " FOR UPDATE" if dialect == "postgresql" else ""
            )
            result = text(source).compile(dialect=_DIALECTS[dialect])
            found = (str(result), tuple(result.positiontup or ()))
            self._compiled[dialect] = found
        return found


class UnitOfWork(Protocol):
    dialect: str

    async def all(self, sql: Sql, **params: Any) -> list[Row]: ...

    async def one(self, sql: Sql, **params: Any) -> Row | None: ...

    async def scalar(self, sql: Sql, **params: Any) -> Any: ...

    async def execute(self, sql: Sql, **params: Any) -> int: ...

    def savepoint(self) -> Any: ...

    def after_commit(self, callback: AfterCommit) -> None: ...


class Database(Protocol):
    dialect: str

    def unit_of_work(self) -> Any: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def _ordered(names: tuple[str, ...], params: Mapping[str, Any]) -> list[Any]:
    try:
        return [params[name] for name in names]
    except KeyError as exc:
        raise TypeError(f"missing SQL parameter {exc.args[0]!r}") from None


# --- SQLite ---------------------------------------------------------------------------------


_latest_reading: tuple[datetime | None, str] = (None, "")


def _adapt_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime passed to the database; use the clock's UTC values")
    # The clock's values are already in UTC, and astimezone() would build a new object.
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    if not utc.microsecond:
        return _sqlite_utc_text(utc)
    # A clock reading. A request passes its one reading to several statements, and later
    # requests rarely pass it again, so only the latest is kept. In the LRU cache each new
    # reading would evict an instant that steps do pass again.
    global _latest_reading
    latest = _latest_reading
    if latest[0] is utc:
        return latest[1]
    text = _format_sqlite_utc(utc)
    _latest_reading = (utc, text)  # one tuple, so threads never see half of a pair
    return text


def _adapt_date(value: date) -> str:
    return value.isoformat()


# Steps pass the same instants again and again (slot starts, the day boundaries of the booking
# horizon), so the text is cached. The key is the UTC value, because local times in a DST fold
# compare equal while they are different instants.
@lru_cache(maxsize=4096)
def _sqlite_utc_text(utc: datetime) -> str:
    return _format_sqlite_utc(utc)


def _format_sqlite_utc(utc: datetime) -> str:
    # The text of isoformat(" ", "microseconds") on the naive UTC value, as SQLAlchemy's SQLite
    # DateTime stores it, so either reader understands the rows. Formatting with % takes less
    # than half the time of replace() and isoformat() on CPython 3.11.
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031  # faster than f-strings
        utc.year,
        utc.month,
        utc.day,
        utc.hour,
        utc.minute,
        utc.second,
        utc.microsecond,
    )


def _read_sqlite_datetime(raw: bytes) -> datetime:
    text = raw.decode()
    # Parsing the text with a "+00:00" suffix takes about a fifth of the time of parsing it and
    # then calling replace(tzinfo=UTC) on CPython 3.11. The slow path is for text that already
    # has an offset, and for a bare date, which the suffix turns into a naive datetime.
    try:
        value = datetime.fromisoformat(text + "+00:00")
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        value = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return value


def _read_sqlite_date(raw: bytes) -> date:
    return date.fromisoformat(raw.decode())


# sqlite3 calls an adapter only for a value of exactly that type, from C, so the other bound
# values of a statement pass through without a Python call each.
sqlite3.register_adapter(datetime, _adapt_datetime)
sqlite3.register_adapter(date, _adapt_date)
sqlite3.register_converter("DATETIME", _read_sqlite_datetime)
sqlite3.register_converter("DATE", _read_sqlite_date)


@dataclass
class _SqliteUnit:
    connection: sqlite3.Connection
    dialect: str = "sqlite"
    callbacks: list[AfterCommit] = field(default_factory=list)
    _savepoints: int = 0

    def _run(self, sql: Sql, params: Mapping[str, Any]) -> sqlite3.Cursor:
        statement, names = sql.compiled("sqlite")
        try:
            return self.connection.execute(statement, _ordered(names, params))
        except sqlite3.IntegrityError as exc:
            if "UNIQUE constraint failed" in str(exc):
                raise UniqueViolation(str(exc).split(": ", 1)[-1]) from exc
            raise

    async def all(self, sql: Sql, **params: Any) -> list[Row]:
        return self._run(sql, params).fetchall()

    async def one(self, sql: Sql, **params: Any) -> Row | None:
        row: Row | None = self._run(sql, params).fetchone()
        return row

    async def scalar(self, sql: Sql, **params: Any) -> Any:
        row = self._run(sql, params).fetchone()
        return None if row is None else row[0]

    async def execute(self, sql: Sql, **params: Any) -> int:
        return self._run(sql, params).rowcount

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        self._savepoints += 1
        name = f"sp_{self._savepoints}"
        self.connection.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.connection.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self.connection.execute(f"RELEASE SAVEPOINT {name}")
            raise
        self.connection.execute(f"RELEASE SAVEPOINT {name}")

    def after_commit(self, callback: AfterCommit) -> None:
        self.callbacks.append(callback)


class _CommitGroup:
    """Units of work on one connection that share one write transaction and its COMMIT.

    Statements run synchronously on the loop thread, so each unit would otherwise run from
    BEGIN to COMMIT on its own and pay for a COMMIT of its own. Instead, the unit that finds no
    transaction open yields once to the event loop before its BEGIN. Units that arrive
    meanwhile wait at a gate, and once the transaction is open, they and every other unit that
    arrives before the commit run inside savepoints of it. A task commits for all of them after
    the requests that were ready by then. A unit alone, with no other one waiting, commits at
    once. A unit that fails rolls back to its savepoint and leaves the others' work alone.
    Every unit still waits for the COMMIT before it returns and before its after-commit
    callbacks run. A unit that fails while others wait also waits, and raises the COMMIT's
    error if that fails, because its own error may come from their uncommitted rows.

    The turn of the event loop before each BEGIN leaves SQLite's write lock free while the loop
    does other work. Writers on other connections, such as the worker's threads and other
    processes, poll for the lock in SQLite's busy handler, so they still get it under full load.

    NOTE: a unit's body must await nothing but its own statements. A unit that waits for
    something else holds the lock, so every unit of its group waits for it too, and one that
    waits for an earlier unit of its own group to return never finishes.
    """

    __slots__ = (
        "_background",
        "_closed",
        "_closing",
        "_committer",
        "_connection",
        "_gate",
        "_lock",
        "_members",
        "_waiting",
    )

    def __init__(self, connection: sqlite3.Connection, lock: asyncio.Lock) -> None:
        self._connection = connection
        self._lock = lock
        # Set while a unit waits to open the next transaction.
        self._gate: asyncio.Event | None = None
        # Units waiting for the open transaction's COMMIT: each one's future and callbacks.
        self._members: list[tuple[asyncio.Future[None], list[AfterCommit]]] = []
        # Units waiting at the gate or for the lock, and the task that commits the open group.
        self._waiting = 0
        self._committer: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Set by close(): new units raise, then the connection is closed.
        self._closing = False
        self._closed = False

    async def enter(self) -> None:
        """Take the lock and open a savepoint in the group's transaction, opening the
        transaction first when none is open."""
        while True:
            self._raise_if_closed()
            if self._connection.in_transaction:
                await self._count_waiting(self._lock.acquire())
                if not self._closing and self._connection.in_transaction:
                    break
                # Closed, or committed while this unit waited for the lock.
                self._lock.release()
            elif self._gate is not None:
                await self._count_waiting(self._gate.wait())
            else:
                await self._open()
                break
        try:
            self._connection.execute("SAVEPOINT unit_of_work")
        except BaseException:
            try:
                self._settle()
            finally:
                self._lock.release()
            raise

    async def _count_waiting(self, wait: Awaitable[object]) -> None:
        """Await `wait` while counted among the units that wait to join the group."""
        self._waiting += 1
        try:
            await wait
        finally:
            self._waiting -= 1

    def _raise_if_closed(self) -> None:
        if self._closing:
            raise sqlite3.ProgrammingError("the database is closed")

    async def _open(self) -> None:
        """Begin the next transaction, one turn of the event loop from now, and take the lock."""
        gate = self._gate = asyncio.Event()
        try:
            await asyncio.sleep(0)
            await self._lock.acquire()
            try:
                self._raise_if_closed()
                self._fail_if_lost()
                self._connection.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._lock.release()
                raise
        finally:
            self._gate = None
            gate.set()

    def leave(self, callbacks: list[AfterCommit], *, failed: bool) -> asyncio.Future[None] | None:
        """Close the unit's savepoint and release the lock.

        Return the future of the group's COMMIT, which a unit that succeeded waits for, and a
        unit that failed too while other units wait for that COMMIT. Return None when there is
        nothing to wait for."""
        waiter: asyncio.Future[None] | None = None
        try:
            if failed:
                self._roll_back_unit()
                if self._members:
                    waiter = asyncio.get_running_loop().create_future()
                    self._members.append((waiter, []))
            else:
                try:
                    self._connection.execute("RELEASE SAVEPOINT unit_of_work")
                except BaseException:
                    self._roll_back_unit()
                    raise
                waiter = asyncio.get_running_loop().create_future()
                self._members.append((waiter, callbacks))
        finally:
            try:
                self._settle()
            finally:
                self._lock.release()
        return waiter

    def _roll_back_unit(self) -> None:
        """Undo the unit's savepoint, or the whole transaction when the savepoint cannot be
        undone, which fails the units that wait for it."""
        if self._connection.in_transaction:
            try:
                self._connection.execute("ROLLBACK TO SAVEPOINT unit_of_work")
                self._connection.execute("RELEASE SAVEPOINT unit_of_work")
            except sqlite3.Error:
                log.exception("rolling back a unit's savepoint failed; rolling back its group")
                self._connection.execute("ROLLBACK")
        self._fail_if_lost()

    def _settle(self) -> None:
        """Commit now or later, after a unit has ended, with the lock held."""
        if self._committer is not None:
            return
        if self._waiting == 0 and len(self._members) <= 1:
            # No other unit waits to join, so a task to commit later would only add a turn
            # of the event loop.
            self._commit()
        else:
            self._committer = self._spawn(self._commit_under_lock())

    def _fail_if_lost(self) -> None:
        """Fail the waiting units when their transaction is gone: SQLite rolls back the whole
        transaction on some errors (a full disk, an I/O error), savepoints included."""
        if self._members and not self._connection.in_transaction:
            self._fail_members(
                self._members,
                sqlite3.OperationalError("the transaction was rolled back before its commit"),
            )
            self._members = []

    @staticmethod
    def _fail_members(
        members: list[tuple[asyncio.Future[None], list[AfterCommit]]], error: BaseException
    ) -> None:
        for waiter, _ in members:
            if not waiter.done():
                waiter.set_exception(error)

    def _commit(self) -> None:
        """Commit the open transaction, with the lock held, and settle its units' futures."""
        if self._closed:
            return
        self._fail_if_lost()
        members, self._members = self._members, []
        if not self._connection.in_transaction:
            return
        try:
            self._connection.execute("COMMIT")
        except BaseException as exc:
            self._fail_members(members, exc)
            if self._connection.in_transaction:
                self._connection.execute("ROLLBACK")
            return
        orphaned: list[AfterCommit] = []
        for waiter, callbacks in members:
            if waiter.cancelled():
                # The unit's task was cancelled while it waited, but its work is committed,
                # so its callbacks still run.
                orphaned.extend(callbacks)
            elif not waiter.done():
                waiter.set_result(None)
        if orphaned:
            self.run_orphaned(orphaned)

    async def _commit_under_lock(self) -> None:
        async with self._lock:
            self._committer = None
            self._commit()

    def run_orphaned(self, callbacks: list[AfterCommit]) -> None:
        """Run the after-commit callbacks of a committed unit whose task was cancelled."""
        self._spawn(self._run_callbacks(callbacks))

    @staticmethod
    async def _run_callbacks(callbacks: list[AfterCommit]) -> None:
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                log.exception("an after-commit callback of a cancelled unit of work failed")

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def flush(self) -> None:
        """Wait until the group's background tasks, if any, have finished."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def close(self) -> None:
        """Reject new units and the ones waiting for the lock, let the running one finish, and
        commit the open group before the connection closes."""
        self._closing = True
        async with self._lock:
            self._commit()
        await self.flush()
        self._closed = True


class _SqliteTransaction:
    """One unit of work: the lock and a savepoint of the group's transaction (see
    `_CommitGroup`), then, once the group has committed, the after-commit callbacks. A class
    rather than a generator-based context manager, because every request opens at least one."""

    __slots__ = ("_connection", "_group", "_unit")

    def __init__(self, connection: sqlite3.Connection, group: _CommitGroup) -> None:
        self._connection = connection
        self._group = group
        self._unit: _SqliteUnit | None = None

    async def __aenter__(self) -> _SqliteUnit:
        await self._group.enter()
        self._unit = _SqliteUnit(self._connection)
        return self._unit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._unit is not None
        failed = exc_type is not None
        callbacks = self._unit.callbacks
        committed = self._group.leave(callbacks, failed=failed)
        if committed is None:
            return
        try:
            await committed
        except asyncio.CancelledError:
            if not failed and _succeeded(committed):
                # Cancelled after the COMMIT: the work is committed, so the callbacks run.
                self._group.run_orphaned(callbacks)
            raise
        if failed:
            return  # the unit's own error propagates
        for callback in callbacks:
            await callback()


def _succeeded(future: asyncio.Future[None]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


class _Checkpointer:
    """A thread that copies the WAL into the database file with PASSIVE checkpoints.

    A checkpoint writes and syncs the database file, so on the event loop it would stall every
    request for that long. PASSIVE neither waits for nor blocks readers and writers, and the
    sqlite3 module releases the GIL while the checkpoint runs.
    """

    def __init__(self, path: Path, interval_seconds: float) -> None:
        self._path = path
        self._interval = interval_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None)
        try:
            while not self._stopping.wait(self._interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    log.warning("SQLite checkpoint of %s failed: %s", self._path, exc)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()


class SqliteDatabase:
    """One stdlib sqlite3 connection in WAL mode, used from the event loop's thread.

    SQLite has a single writer, so units of work in this process take turns on an asyncio lock
    inside a write transaction opened with BEGIN IMMEDIATE, which also orders them against
    other processes. Units that arrive close together share that transaction and its COMMIT
    (`_CommitGroup`). Statements run on the loop thread without a thread hop:
    each takes tens of microseconds.
    NOTE: while another process holds the write lock, the loop waits for it (up to
    `busy_timeout_ms`); keep other writers' transactions short.

    With `checkpoint_interval_seconds`, this connection never checkpoints the WAL itself, and
    a thread does it at that interval instead, so commits on the loop stay short.
    """

    dialect = "sqlite"

    def __init__(
        self,
        path: Path,
        busy_timeout_ms: int = 5000,
        checkpoint_interval_seconds: float | None = None,
    ) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(
            path,
            isolation_level=None,
            detect_types=sqlite3.PARSE_DECLTYPES,
            check_same_thread=False,
        )
        self._connection.row_factory = sqlite3.Row
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute("PRAGMA foreign_keys=ON")
        self._connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        self._lock = asyncio.Lock()
        self._group = _CommitGroup(self._connection, self._lock)
        self._checkpointer: _Checkpointer | None = None
        if checkpoint_interval_seconds is not None:
            self._connection.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = _Checkpointer(path, checkpoint_interval_seconds)

    def unit_of_work(self) -> _SqliteTransaction:
        return _SqliteTransaction(self._connection, self._group)

    async def ping(self) -> None:
        self._connection.execute("SELECT 1").fetchone()

    async def close(self) -> None:
        await self._group.close()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
        self._connection.close()


# --- PostgreSQL -----------------------------------------------------------------------------


@dataclass
class _PostgresUnit:
    connection: Any  # asyncpg.Connection
    dialect: str = "postgresql"
    callbacks: list[AfterCommit] = field(default_factory=list)

    async def _call(self, method: str, sql: Sql, params: Mapping[str, Any]) -> Any:
        import asyncpg

        statement, names = sql.compiled("postgresql")
        try:
            return await getattr(self.connection, method)(statement, *_ordered(names, params))
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(exc.constraint_name or "unknown") from exc

    async def all(self, sql: Sql, **params: Any) -> list[Row]:
        rows: list[Row] = await self._call("fetch", sql, params)
        return rows

    async def one(self, sql: Sql, **params: Any) -> Row | None:
        row: Row | None = await self._call("fetchrow", sql, params)
        return row

    async def scalar(self, sql: Sql, **params: Any) -> Any:
        return await self._call("fetchval", sql, params)

    async def execute(self, sql: Sql, **params: Any) -> int:
        status: str = await self._call("execute", sql, params)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with self.connection.transaction():
            yield

    def after_commit(self, callback: AfterCommit) -> None:
        self.callbacks.append(callback)


class PostgresDatabase:
    """An asyncpg pool; each unit of work is one transaction on one pooled connection."""

    dialect = "postgresql"

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 2, max_size: int = 10) -> PostgresDatabase:
        import asyncpg

        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
        return cls(pool)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[_PostgresUnit]:
        async with self._pool.acquire() as connection:
            unit = _PostgresUnit(connection)
            async with connection.transaction():
                yield unit
        for callback in unit.callbacks:
            await callback()

    async def ping(self) -> None:
        async with self._pool.acquire() as connection:
            await connection.fetchval("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()


# --- URLs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed `MYAFYA_DATABASE_URL`, with the driver forms each consumer needs."""

    dialect: str
    sqlite_path: Path | None = None
    postgres_dsn: str | None = None

    @classmethod
    def parse(cls, url: str) -> DatabaseUrl:
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise ValueError(f"invalid database URL {url!r}: expected SCHEME://…")
        driver_less = scheme.split("+", 1)[0]
        if driver_less == "sqlite":
            path = rest[1:] if rest.startswith("/") else rest
            if not path:
                raise ValueError(f"invalid SQLite URL {url!r}: expected sqlite:///PATH")
            return cls("sqlite", sqlite_path=Path(path))
        if driver_less in ("postgresql", "postgres"):
            return cls("postgresql", postgres_dsn=f"postgresql://{rest}")
        raise ValueError(f"unsupported database URL scheme {scheme!r}")

    @property
    def sqlalchemy_async_url(self) -> str:
        if self.dialect == "sqlite":
            return f"sqlite+aiosqlite:///{self.sqlite_path}"
        assert self.postgres_dsn is not None
        return self.postgres_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


async def open_database(
    url: str, *, checkpoint_interval_seconds: float | None = None
) -> SqliteDatabase | PostgresDatabase:
    """Open the database at `url`. `checkpoint_interval_seconds` applies to SQLite only: see
    `SqliteDatabase`."""
    parsed = DatabaseUrl.parse(url)
    if parsed.dialect == "sqlite":
        assert parsed.sqlite_path is not None
        return SqliteDatabase(
            parsed.sqlite_path, checkpoint_interval_seconds=checkpoint_interval_seconds
        )
    assert parsed.postgres_dsn is not None
    return await PostgresDatabase.connect(parsed.postgres_dsn)


def rows_to_dicts(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]
