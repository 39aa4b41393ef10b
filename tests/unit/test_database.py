from __future__ import annotations

import asyncio
import threading
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
