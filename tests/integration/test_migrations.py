"""The one Alembic history runs from empty on SQLite and PostgreSQL, and again as a no-op."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.script import ScriptDirectory

from core.db.database import Sql, open_database
from core.db.migrate import alembic_config, upgrade_to_head
from core.db.schema import metadata


async def test_upgrade_from_empty_creates_every_table(database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, database_url)  # a second run is a no-op
    database = await open_database(database_url)
    try:
        async with database.unit_of_work() as uow:
            version = await uow.scalar(Sql("SELECT version_num FROM alembic_version"))
            for table in metadata.sorted_tables:
                await uow.all(Sql(f"SELECT * FROM {table.name} WHERE 1 = 0"))
    finally:
        await database.close()
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert version == head


def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    config = alembic_config(database_url)
    command.downgrade(config, "base")
    command.upgrade(config, "head")
