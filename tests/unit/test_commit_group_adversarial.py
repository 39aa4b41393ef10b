"""Adversarial tests of the shared SQLite commit (`_CommitGroup` and `_SqliteTransaction`).

Every check reads the outcome through a second connection, which reads only committed rows, and
compares it with what each unit of work reported. A unit that returned must be committed, a
unit that raised must not be, and no unit may wait forever. Waits that could hang are bounded by
`asyncio.wait_for`, so a deadlock fails the test instead of stalling the run.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing, suppress
from pathlib import Path

import pytest

from core.db.database import Sql, SqliteDatabase, UniqueViolation

# Bound for waits that finish in milliseconds when the code is correct.
HANG_TIMEOUT_SECONDS = 2.0

SCHEMA = [
    Sql("CREATE TABLE notes (body TEXT NOT NULL)"),
    # A duplicate code makes SQLite roll back the whole transaction, savepoints included, as it
    # does on its own after a full disk or an I/O error.
    Sql("CREATE TABLE codes (code TEXT NOT NULL UNIQUE ON CONFLICT ROLLBACK)"),
    Sql("CREATE TABLE slots (slot INTEGER NOT NULL UNIQUE)"),
    Sql("CREATE TABLE visits (slot INTEGER NOT NULL, patient TEXT NOT NULL)"),
    Sql("CREATE TABLE parents (id INTEGER PRIMARY KEY)"),
    # SQLite checks a deferred foreign key at COMMIT, so a row without a parent makes the
    # COMMIT itself fail, after every unit of the group has released its savepoint.
    Sql(
        "CREATE TABLE children (parent_id INTEGER NOT NULL"
        " REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)"
    ),
    Sql("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"),
]

INSERT_NOTE = Sql("INSERT INTO notes (body) VALUES (:body)")
INSERT_CODE = Sql("INSERT INTO codes (code) VALUES (:code)")
BOOK_SLOT = Sql("INSERT INTO slots (slot) VALUES (:slot)")
COUNT_VISITS = Sql("SELECT count(*) FROM visits WHERE slot = :slot")
INSERT_VISIT = Sql("INSERT INTO visits (slot, patient) VALUES (:slot, :patient)")
INSERT_ORPHAN_CHILD = Sql("INSERT INTO children (parent_id) VALUES (999)")


def _committed(path: Path, query: str) -> list[tuple]:
    """Return the rows of `query` as another connection reads them, sorted."""
    with closing(sqlite3.connect(path)) as reader:
        return sorted(reader.execute(query).fetchall())


def _committed_notes(path: Path) -> list[str]:
    return [body for (body,) in _committed(path, "SELECT body FROM notes")]


@pytest.fixture
async def grouped_database(tmp_path):
    path = tmp_path / "x.db"
    database = SqliteDatabase(path)
    for statement in SCHEMA:
        async with database.unit_of_work() as uow:
            await uow.execute(statement)
    yield database, path
    try:
        left_open = database._connection.in_transaction
    except sqlite3.ProgrammingError:
        return  # The test closed the database.
    if left_open:
        # A test that found a transaction left open closes without committing it.
        database._connection.close()
    else:
        await database.close()


async def _write_note(database: SqliteDatabase, body: str) -> None:
    async with database.unit_of_work() as uow:
        await uow.execute(INSERT_NOTE, body=body)


async def _assert_database_usable(database: SqliteDatabase, path: Path) -> None:
    """Check that the lock is free and no transaction is left open, by committing a unit."""
    await asyncio.wait_for(_write_note(database, "probe"), HANG_TIMEOUT_SECONDS)
    assert "probe" in _committed_notes(path)
    assert not database._connection.in_transaction


# --- Cancellation -----------------------------------------------------------------------------


async def test_cancel_after_commit_keeps_callbacks(grouped_database) -> None:
    """A unit whose task is cancelled after its group committed, but before the task resumed,
    has committed work, so its after-commit callbacks must still run, as they do for a task
    cancelled before the COMMIT. The other unit's callback simulates any cancellation that
    lands in that loop iteration, such as a request timeout that fires."""
    database, path = grouped_database
    calls: list[str] = []
    tasks: dict[str, asyncio.Task[None]] = {}

    async def cancel_second() -> None:
        # Both futures are settled by now, and the second task has not resumed yet.
        tasks["second"].cancel()

    async def record_second() -> None:
        calls.append("second")

    async def write(body: str, callback) -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body=body)
            uow.after_commit(callback)

    tasks["first"] = asyncio.create_task(write("first", cancel_second))
    tasks["second"] = asyncio.create_task(write("second", record_second))
    await tasks["first"]
    with pytest.raises(asyncio.CancelledError):
        await tasks["second"]
    await database._group.flush()

    assert _committed_notes(path) == ["first", "second"]
    assert calls == ["second"]


async def test_cancel_opener_during_yield(grouped_database) -> None:
    """The unit that opens the group is cancelled in its turn of the event loop before BEGIN.
    The unit waiting at the gate must open the transaction itself and commit."""
    database, path = grouped_database
    opener = asyncio.create_task(_write_note(database, "opener"))
    follower = asyncio.create_task(_write_note(database, "follower"))
    await asyncio.sleep(0)
    # The opener is in its one-turn yield and the follower waits at the gate.
    assert database._group._gate is not None
    assert database._group._waiting == 1
    opener.cancel()

    await asyncio.wait_for(follower, HANG_TIMEOUT_SECONDS)
    with pytest.raises(asyncio.CancelledError):
        await opener

    assert _committed_notes(path) == ["follower"]
    await _assert_database_usable(database, path)


async def test_cancel_unit_at_gate(grouped_database) -> None:
    database, path = grouped_database
    opener = asyncio.create_task(_write_note(database, "opener"))
    at_gate = asyncio.create_task(_write_note(database, "at gate"))
    await asyncio.sleep(0)
    assert database._group._waiting == 1
    at_gate.cancel()

    await asyncio.wait_for(opener, HANG_TIMEOUT_SECONDS)
    with pytest.raises(asyncio.CancelledError):
        await at_gate

    assert _committed_notes(path) == ["opener"]
    assert database._group._waiting == 0
    await _assert_database_usable(database, path)


async def test_cancel_unit_waiting_for_lock(grouped_database) -> None:
    database, path = grouped_database
    holder_inside = asyncio.Event()
    finish_holder = asyncio.Event()

    async def hold() -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body="holder")
            holder_inside.set()
            await finish_holder.wait()

    holder = asyncio.create_task(hold())
    await holder_inside.wait()
    waiting = asyncio.create_task(_write_note(database, "cancelled"))
    behind = asyncio.create_task(_write_note(database, "behind"))
    await asyncio.sleep(0)
    assert database._group._waiting == 2
    waiting.cancel()
    finish_holder.set()

    await asyncio.wait_for(asyncio.gather(holder, behind), HANG_TIMEOUT_SECONDS)
    with pytest.raises(asyncio.CancelledError):
        await waiting

    assert _committed_notes(path) == ["behind", "holder"]
    await _assert_database_usable(database, path)


async def test_cancel_before_failed_commit(grouped_database) -> None:
    """A unit cancelled while it waits for a COMMIT that then fails has no committed work, so
    its after-commit callbacks must never run."""
    database, path = grouped_database
    calls: list[str] = []
    tasks: dict[str, asyncio.Task[None]] = {}

    async def record() -> None:
        calls.append("sent")

    async def write_with_callback() -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body="cancelled")
            uow.after_commit(record)

    async def break_the_commit() -> None:
        async with database.unit_of_work() as uow:
            # The first unit has left its savepoint and waits for the COMMIT.
            tasks["first"].cancel()
            await uow.execute(INSERT_ORPHAN_CHILD)

    tasks["first"] = asyncio.create_task(write_with_callback())
    breaker = asyncio.create_task(break_the_commit())
    with pytest.raises(asyncio.CancelledError):
        await tasks["first"]
    with pytest.raises(sqlite3.IntegrityError):
        await asyncio.wait_for(breaker, HANG_TIMEOUT_SECONDS)
    await database._group.flush()

    assert calls == []
    assert _committed_notes(path) == []
    await _assert_database_usable(database, path)


# --- Errors from SQLite -----------------------------------------------------------------------


async def test_failed_commit_fails_every_member(grouped_database) -> None:
    """When the group's COMMIT fails, every unit of the group must raise, nothing of the group
    may be committed, and the next unit must start a new transaction."""
    database, path = grouped_database

    async def break_the_commit() -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_ORPHAN_CHILD)

    results = await asyncio.wait_for(
        asyncio.gather(
            _write_note(database, "first"),
            break_the_commit(),
            _write_note(database, "third"),
            return_exceptions=True,
        ),
        HANG_TIMEOUT_SECONDS,
    )

    assert isinstance(results[0], sqlite3.IntegrityError)
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert isinstance(results[2], sqlite3.IntegrityError)
    assert _committed_notes(path) == []
    assert _committed(path, "SELECT parent_id FROM children") == []
    await _assert_database_usable(database, path)


async def test_failed_lone_commit_rolls_back(grouped_database) -> None:
    database, path = grouped_database
    with pytest.raises(sqlite3.IntegrityError):
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body="lone")
            await uow.execute(INSERT_ORPHAN_CHILD)

    assert not database._connection.in_transaction
    assert _committed_notes(path) == []
    await _assert_database_usable(database, path)


async def test_swallowed_rollback_fails_group(grouped_database) -> None:
    """A unit that catches the error of a statement after which SQLite rolled back the whole
    transaction must not return, and the units before it in the group must fail."""
    database, path = grouped_database
    async with database.unit_of_work() as uow:
        await uow.execute(INSERT_CODE, code="taken")

    async def swallow() -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body="swallower")
            with suppress(UniqueViolation):
                await uow.execute(INSERT_CODE, code="taken")

    results = await asyncio.wait_for(
        asyncio.gather(
            _write_note(database, "before"),
            swallow(),
            _write_note(database, "after"),
            return_exceptions=True,
        ),
        HANG_TIMEOUT_SECONDS,
    )

    assert isinstance(results[0], sqlite3.OperationalError)
    assert isinstance(results[1], sqlite3.OperationalError)
    assert results[2] is None
    assert _committed_notes(path) == ["after"]
    await _assert_database_usable(database, path)


async def test_failed_release_not_committed_later(grouped_database) -> None:
    """A unit whose RELEASE SAVEPOINT fails raises, so its work must not be committed by the
    next group, and the transaction must not stay open and keep SQLite's write lock.
    A write statement that is still in progress makes SQLite reject the RELEASE."""
    database, path = grouped_database
    async with database.unit_of_work() as uow:
        await uow.execute(Sql("INSERT INTO counters (name, value) VALUES ('a', 0), ('b', 0)"))
    open_cursors: list[sqlite3.Cursor] = []

    with pytest.raises(sqlite3.OperationalError, match="cannot release savepoint"):
        async with database.unit_of_work() as uow:
            update = "UPDATE counters SET value = 1 RETURNING name"
            open_cursors.append(uow.connection.execute(update))
            open_cursors[0].fetchone()
    open_cursors.clear()  # The statement is reset once its cursor is gone.
    left_open = database._connection.in_transaction
    await _write_note(database, "next group")

    assert _committed(path, "SELECT value FROM counters") == [(0,), (0,)]
    assert not left_open


async def test_begin_busy_fails_all_waiters(tmp_path) -> None:
    """While another connection holds SQLite's write lock past the busy timeout, every unit must
    raise and none may hang. Once the lock is free, units commit again."""
    path = tmp_path / "x.db"
    database = SqliteDatabase(path, busy_timeout_ms=50)
    async with database.unit_of_work() as uow:
        await uow.execute(SCHEMA[0])
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        results = await asyncio.wait_for(
            asyncio.gather(
                *(_write_note(database, f"blocked {index}") for index in range(3)),
                return_exceptions=True,
            ),
            HANG_TIMEOUT_SECONDS,
        )
        other.execute("COMMIT")
    finally:
        other.close()

    for result in results:
        assert isinstance(result, sqlite3.OperationalError)
    assert database._group._gate is None
    assert not database._lock.locked()
    await _assert_database_usable(database, path)
    assert _committed_notes(path) == ["probe"]
    await database.close()


# --- Isolation between units ------------------------------------------------------------------


async def test_check_then_insert_books_once(grouped_database) -> None:
    """Units of one group that check a slot and then book it, yielding in between, must run
    one at a time, so only one booking is made and only its unit reports it."""
    database, path = grouped_database

    async def book(patient: str) -> bool:
        async with database.unit_of_work() as uow:
            visit_count = await uow.scalar(COUNT_VISITS, slot=7)
            await asyncio.sleep(0)
            if visit_count:
                return False
            await uow.execute(INSERT_VISIT, slot=7, patient=patient)
            return True

    patients = [f"patient {index}" for index in range(6)]
    results = await asyncio.wait_for(
        asyncio.gather(*(book(patient) for patient in patients)), HANG_TIMEOUT_SECONDS
    )

    assert results.count(True) == 1
    winner = patients[results.index(True)]
    assert _committed(path, "SELECT slot, patient FROM visits") == [(7, winner)]


async def test_nested_savepoint_in_group(grouped_database) -> None:
    """A unit that catches a UniqueViolation from a nested savepoint keeps its other work, and
    the rollback of that savepoint leaves the other units of the group alone."""
    database, path = grouped_database

    async def book_first() -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(BOOK_SLOT, slot=1)

    async def book_with_fallback() -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body="fallback unit")
            try:
                async with uow.savepoint():
                    await uow.execute(BOOK_SLOT, slot=1)
            except UniqueViolation:
                await uow.execute(BOOK_SLOT, slot=2)

    await asyncio.wait_for(
        asyncio.gather(book_first(), book_with_fallback(), _write_note(database, "third")),
        HANG_TIMEOUT_SECONDS,
    )

    assert _committed(path, "SELECT slot FROM slots") == [(1,), (2,)]
    assert _committed_notes(path) == ["fallback unit", "third"]


async def test_rejection_not_based_on_lost_booking(grouped_database) -> None:
    """A unit that rejects a booking because the slot is taken must only see a booking that is
    committed. Here the slot is taken by an earlier unit of the same group, and a later unit
    makes the group's COMMIT fail, so that booking is never committed."""
    database, path = grouped_database

    async def book(slot: int) -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(BOOK_SLOT, slot=slot)

    async def break_the_commit() -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_ORPHAN_CHILD)

    results = await asyncio.wait_for(
        asyncio.gather(book(1), break_the_commit(), book(1), return_exceptions=True),
        HANG_TIMEOUT_SECONDS,
    )

    assert isinstance(results[0], sqlite3.IntegrityError)
    assert isinstance(results[1], sqlite3.IntegrityError)
    booked = _committed(path, "SELECT slot FROM slots")
    if isinstance(results[2], UniqueViolation):
        assert booked == [(1,)], "the slot was reported taken, but no booking was committed"


# --- Waits that involve other tasks -----------------------------------------------------------


async def test_close_waits_for_open_group(grouped_database) -> None:
    """When units wait for their group's COMMIT, close() must commit them before it closes the
    connection, and each of them returns."""
    database, path = grouped_database
    second_inside = asyncio.Event()
    finish_second = asyncio.Event()

    async def second() -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body="second")
            second_inside.set()
            await finish_second.wait()

    first_task = asyncio.create_task(_write_note(database, "first"))
    second_task = asyncio.create_task(second())
    await second_inside.wait()
    closing_task = asyncio.create_task(database.close())
    await asyncio.sleep(0)
    finish_second.set()

    await asyncio.wait_for(
        asyncio.gather(first_task, second_task, closing_task), HANG_TIMEOUT_SECONDS
    )
    assert _committed_notes(path) == ["first", "second"]


async def test_close_finishes_running_unit_rejects_waiting(tmp_path) -> None:
    """Close the database while one unit runs and others wait for the lock. close() lets the
    running unit finish and commits it, and the waiting units raise instead of waiting forever
    for a lock that the closed connection never hands over."""
    path = tmp_path / "x.db"
    database = SqliteDatabase(path)
    async with database.unit_of_work() as uow:
        await uow.execute(SCHEMA[0])
    holder_inside = asyncio.Event()
    finish_holder = asyncio.Event()

    async def hold() -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body="in progress")
            holder_inside.set()
            await finish_holder.wait()

    holder = asyncio.create_task(hold())
    await holder_inside.wait()
    waiters = [asyncio.create_task(_write_note(database, f"waiter {index}")) for index in range(2)]
    await asyncio.sleep(0)
    closing_task = asyncio.create_task(database.close())
    await asyncio.sleep(0)
    finish_holder.set()

    results = await asyncio.wait_for(
        asyncio.gather(holder, *waiters, return_exceptions=True), HANG_TIMEOUT_SECONDS
    )
    await asyncio.wait_for(closing_task, HANG_TIMEOUT_SECONDS)

    assert results[0] is None
    for result in results[1:]:
        assert isinstance(result, sqlite3.ProgrammingError)
    assert _committed_notes(path) == ["in progress"]
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        await _write_note(database, "after close")
