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
        from data_sources.seed import ConsoleProgress, init_db
        init_db(server, echo=click.echo, seed_demo=demo, progress=ConsoleProgress())

    @server.cli.group("facts")
    def facts_group():
        """The per-case KPI fact rows (case_facts) the KPI read model aggregates."""

    @facts_group.command("rebuild")
    @click.option("--check", is_flag=True, help="Only report the differences; change nothing.")
    def facts_rebuild(check):
        """Recompute every case's milestones from its events and its fact row from the case, and
        report how many differed from what was stored."""
        from data_sources.runtime import get_runtime
        from data_sources.store.db import get_db
        from incidents import facts
        with get_db(server).session_scope() as s:
            n, ids = facts.differences(s)
            click.echo(f"fact rows that differ from their cases: {n}" + (f" (first: {', '.join(map(str, ids))})" if ids else ""))
            if check:
                s.rollback()
                raise SystemExit(1 if n else 0)
            milestones = facts.backfill_milestones(s, get_runtime(server).calendar, every=True)
            click.echo(f"cases whose first dispatch or handling hours were recomputed from the events: {milestones}")
            total = facts.rebuild(s)
            left, _ = facts.differences(s)
            click.echo(f"fact rows rebuilt: {total}; differing now: {left}")
