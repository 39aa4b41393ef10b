"""Apply the Alembic migrations in `migrations/` to a database URL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from core.db.database import DatabaseUrl

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", DatabaseUrl.parse(database_url).sqlalchemy_async_url)
    return config


def upgrade_to_head(database_url: str) -> None:
    """Bring the schema up to the newest revision; a no-op when it already is.

    Runs its own event loop, so call it before the service's loop starts or from a thread.
    """
    parsed = DatabaseUrl.parse(database_url)
    if parsed.sqlite_path is not None:
        parsed.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), "head")
