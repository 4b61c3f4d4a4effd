"""The database: ``init-db`` (migrations, the city pack, demo history and users)."""
from __future__ import annotations

import click
from flask import Flask


def register(server: Flask) -> None:
    @server.cli.command("init-db")
    @click.option("--demo/--no-demo", default=None,
                  help="Seed demo history and demo users (default: only on the embedded SQLite default).")
    def init_db_cmd(demo):
        """Apply migrations and load the configured city pack."""
        from data_sources.seed import init_db
        init_db(server, echo=click.echo, seed_demo=demo)
