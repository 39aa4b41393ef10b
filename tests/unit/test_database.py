from __future__ import annotations

import asyncio
import sqlite3
import threading
from contextlib import closing
from datetime import UTC, datetime

import pytest

from core.db.database import DatabaseUrl, Sql, SqliteDatabase, UniqueViolation

INSERT_CLINIC = Sql("INSERT INTO clinics (name, timezone) VALUES (:name, :tz) RETURNING id")
SELECT_CLINIC = Sql("SELECT id, name FROM clinics WHERE id = :id")
INSERT_PATIENT = Sql(
    "INSERT INTO patients (phone, created_at) VALUES (:phone, :at) RETURNING created_at"
)


async def test_unit_of_work_commits(database) -> None:
    async with database.unit_of_work() as uow:
        clinic_id = await uow.scalar(INSERT_CLINIC, name="Test Clinic", tz="Africa/Nairobi")
    async with database.unit_of_work() as uow:
        row = await uow.one(SELECT_CLINIC, id=clinic_id)
    assert row["name"] == "Test Clinic"


async def test_unit_of_work_rolls_back_on_error(database) -> None:
    with pytest.raises(RuntimeError):
        async with database.unit_of_work() as uow:
            clinic_id = await uow.scalar(INSERT_CLINIC, name="Gone", tz="Africa/Nairobi")
            raise RuntimeError("boom")
    async with database.unit_of_work() as uow:
        assert await uow.one(SELECT_CLINIC, id=clinic_id) is None


async def test_datetimes_round_trip_as_utc(database) -> None:
    at = datetime(2027, 1, 15, 6, 0, 0, 123456, tzinfo=UTC)
    async with database.unit_of_work() as uow:
        stored = await uow.scalar(INSERT_PATIENT, phone="+254700000001", at=at)
    assert stored == at
    assert stored.tzinfo is not None


async def test_unique_violation_is_mapped(database) -> None:
    async with database.unit_of_work() as uow:
        await uow.scalar(INSERT_CLINIC, name="Twice", tz="Africa/Nairobi")
        with pytest.raises(UniqueViolation):
            async with uow.savepoint():
                await uow.scalar(INSERT_CLINIC, name="Twice", tz="Africa/Nairobi")
        # The savepoint kept the transaction usable after the violation.
        await uow.scalar(INSERT_CLINIC, name="After", tz="Africa/Nairobi")


async def test_after_commit_runs_only_on_commit(database) -> None:
    calls: list[str] = []

    async def record() -> None:
        calls.append("sent")

    with pytest.raises(RuntimeError):
        async with database.unit_of_work() as uow:
            uow.after_commit(record)
            raise RuntimeError("rolled back")
    assert calls == []
    async with database.unit_of_work() as uow:
        uow.after_commit(record)
    assert calls == ["sent"]


@pytest.mark.parametrize(
    ("url", "dialect"),
    [
        ("sqlite:///var/myafya.db", "sqlite"),
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite"),
        ("postgresql://u@127.0.0.1/db", "postgresql"),
        ("postgresql+asyncpg://u@127.0.0.1/db", "postgresql"),
    ],
)
def test_database_url_parse(url: str, dialect: str) -> None:
    assert DatabaseUrl.parse(url).dialect == dialect


def test_database_url_rejects_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        DatabaseUrl.parse("mysql://u@h/db")


# Rows of about 4 KB each: 2,000 of them fill more WAL pages than SQLite's default
# auto-checkpoint threshold of 1,000.
WIDE_ROWS = 2000
CREATE_WIDE = Sql("CREATE TABLE wide (payload BLOB)")
INSERT_WIDE = Sql("INSERT INTO wide (payload) VALUES (:payload)")


async def test_checkpoints_leave_the_loop(tmp_path) -> None:
    path = tmp_path / "checkpoints.db"
    database = SqliteDatabase(path, checkpoint_interval_seconds=0.05)
    try:
        async with database.unit_of_work() as uow:
            await uow.execute(CREATE_WIDE)
            for _ in range(WIDE_ROWS):
                await uow.execute(INSERT_WIDE, payload=b"\0" * 4000)
        # The commit left every page in the WAL: the database file has not grown yet.
        size_after_commit = path.stat().st_size
        assert size_after_commit < WIDE_ROWS * 4000

        for _ in range(200):
            if path.stat().st_size >= WIDE_ROWS * 4000:
                break
            await asyncio.sleep(0.05)
        assert path.stat().st_size >= WIDE_ROWS * 4000, "the checkpoint thread never ran"
    finally:
        await database.close()

    assert "sqlite-checkpoint" not in {thread.name for thread in threading.enumerate()}


async def test_commit_checkpoints_without_interval(tmp_path) -> None:
    path = tmp_path / "autocheckpoint.db"
    database = SqliteDatabase(path)
    try:
        async with database.unit_of_work() as uow:
            await uow.execute(CREATE_WIDE)
            for _ in range(WIDE_ROWS):
                await uow.execute(INSERT_WIDE, payload=b"\0" * 4000)
        # SQLite's own auto-checkpoint ran in the commit.
        assert path.stat().st_size >= WIDE_ROWS * 4000
    finally:
        await database.close()


# --- Units of work that share one commit (SQLite) ---------------------------------------------

CREATE_NOTES = Sql("CREATE TABLE notes (body TEXT NOT NULL)")
INSERT_NOTE = Sql("INSERT INTO notes (body) VALUES (:body)")
UNDO_EVERYTHING = Sql("ROLLBACK")


def _committed_notes(path) -> list[str]:
    """Return the notes that another connection reads, which are only the committed ones."""
    with closing(sqlite3.connect(path)) as reader:
        return sorted(body for (body,) in reader.execute("SELECT body FROM notes"))


@pytest.fixture
async def notes_database(tmp_path):
    database = SqliteDatabase(tmp_path / "notes.db")
    async with database.unit_of_work() as uow:
        await uow.execute(CREATE_NOTES)
    statements: list[str] = []
    database._connection.set_trace_callback(statements.append)
    yield database, tmp_path / "notes.db", statements
    await database.close()


async def test_concurrent_units_share_one_commit(notes_database) -> None:
    database, path, statements = notes_database
    seen_at_exit: dict[str, list[str]] = {}

    async def write(body: str) -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body=body)
        # By the time the block has ended, the note is committed for every other reader.
        seen_at_exit[body] = _committed_notes(path)

    bodies = [f"note {index:02}" for index in range(10)]
    await asyncio.gather(*(write(body) for body in bodies))

    assert statements.count("COMMIT") == 1
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert statements.count("SAVEPOINT unit_of_work") == 10
    for body in bodies:
        assert body in seen_at_exit[body]
    assert _committed_notes(path) == bodies


async def test_failed_unit_leaves_the_rest_of_its_group(notes_database) -> None:
    database, path, statements = notes_database

    async def write(body: str, *, fail: bool) -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body=body)
            if fail:
                raise RuntimeError("this unit fails")

    results = await asyncio.gather(
        write("first", fail=False),
        write("failed", fail=True),
        write("third", fail=False),
        return_exceptions=True,
    )

    assert [type(result) for result in results] == [type(None), RuntimeError, type(None)]
    assert _committed_notes(path) == ["first", "third"]
    assert statements.count("COMMIT") == 1
    assert "ROLLBACK TO SAVEPOINT unit_of_work" in statements


async def test_first_unit_of_a_group_rolls_back_alone(notes_database) -> None:
    database, path, _ = notes_database
    with pytest.raises(RuntimeError):
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body="gone")
            raise RuntimeError("rolled back")
    async with database.unit_of_work() as uow:
        await uow.execute(INSERT_NOTE, body="kept")
    assert _committed_notes(path) == ["kept"]


async def test_after_commit_callbacks_see_the_commit(notes_database) -> None:
    database, path, _ = notes_database
    seen: list[list[str]] = []

    async def look() -> None:
        seen.append(_committed_notes(path))

    async def write(body: str) -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body=body)
            uow.after_commit(look)

    await asyncio.gather(write("one"), write("two"))
    assert seen == [["one", "two"], ["one", "two"]]


async def test_lost_group_fails_waiting_units(notes_database) -> None:
    """SQLite rolls a whole transaction back on some errors, such as a full disk or an I/O
    error. The units already waiting for its commit must fail and not report success."""
    database, path, _ = notes_database

    async def write(body: str) -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body=body)

    lost = asyncio.Event()

    async def lose_the_transaction() -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(UNDO_EVERYTHING)
            lost.set()
            raise RuntimeError("disk I/O error")

    async def write_after() -> None:
        await lost.wait()
        await write("later")

    results = await asyncio.gather(
        write("waiting"), lose_the_transaction(), write_after(), return_exceptions=True
    )

    assert isinstance(results[0], sqlite3.OperationalError)
    assert isinstance(results[1], RuntimeError)
    assert results[2] is None
    assert _committed_notes(path) == ["later"]


async def test_cancelled_waiter_keeps_its_commit_and_callbacks(notes_database) -> None:
    database, path, _ = notes_database
    calls: list[str] = []
    second_unit_started = asyncio.Event()
    finish_second_unit = asyncio.Event()

    async def record() -> None:
        calls.append("sent")

    async def write_first() -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body="cancelled while waiting")
            uow.after_commit(record)

    async def write_second() -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body="second")
            second_unit_started.set()
            await finish_second_unit.wait()

    first = asyncio.create_task(write_first())
    second = asyncio.create_task(write_second())
    await second_unit_started.wait()
    # The first unit has finished its work and waits for the COMMIT that the second one makes.
    first.cancel()
    finish_second_unit.set()
    await second
    with pytest.raises(asyncio.CancelledError):
        await first
    await database._group.flush()

    assert _committed_notes(path) == ["cancelled while waiting", "second"]
    assert calls == ["sent"]


async def test_unit_after_commit_opens_next_group(notes_database) -> None:
    database, path, statements = notes_database

    async def write(body: str) -> None:
        async with database.unit_of_work() as uow:
            await uow.execute(INSERT_NOTE, body=body)

    await asyncio.gather(write("first"), write("second"))
    await write("third")

    assert statements.count("BEGIN IMMEDIATE") == 2
    assert statements.count("COMMIT") == 2
    assert _committed_notes(path) == ["first", "second", "third"]


async def test_lone_unit_commits_without_task(notes_database) -> None:
    database, path, statements = notes_database
    async with database.unit_of_work() as uow:
        await uow.execute(INSERT_NOTE, body="alone")

    assert statements[-1] == "COMMIT"
    assert not database._group._background
    assert _committed_notes(path) == ["alone"]
