"""Apply Alembic migrations programmatically (no alembic.ini needed)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine, revision: str = "head") -> None:
    from data_sources.store.db import unbounded
    with engine.begin() as conn, unbounded(conn):   # building an index may take longer than a request
        command.upgrade(alembic_config(conn), revision)


def current_heads(engine) -> set[str]:
    from alembic.runtime.migration import MigrationContext
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())
