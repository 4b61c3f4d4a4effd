"""Alembic environment. Run through `flask --app app init-db` (or `db upgrade`), which passes
the connection in ``config.attributes['connection']``; standalone use reads CITYOPS_DATABASE_URL."""
from __future__ import annotations

import os

from alembic import context

from incidents.tables import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        return
    from data_sources.store.db import make_engine
    engine = make_engine(os.environ.get("CITYOPS_DATABASE_URL", "sqlite:///instance/cityops.db"))
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=conn.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
