"""The database: ``init-db`` (migrations, the city pack, demo history and users), the per-case
fact rows, the events' monthly partitions."""
from __future__ import annotations

from datetime import datetime, timezone

import click
from flask import Flask

from data_sources.store import partitions


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
        from data_sources.store.db import get_db, unbounded
        from incidents import facts, rollups
        # a batch over every case: no request's statement timeout
        with get_db(server).session_scope() as s:
            with unbounded(s.connection()):
                n, ids = facts.differences(s)
                click.echo(f"fact rows that differ from their cases: {n}"
                           + (f" (first: {', '.join(map(str, ids))})" if ids else ""))
                rolled = rollups.differences(s)
                click.echo(f"rollup rows of the frozen cases that differ from their fact rows: {rolled}")
                n += rolled
                if not check:
                    milestones = facts.backfill_milestones(s, get_runtime(server).calendar, every=True,
                                                              sign_for_limit=get_runtime(server).rules.sign_for_limit)
                    click.echo(f"cases whose first dispatch or handling hours were recomputed from the events: "
                               f"{milestones}")
                    total = facts.rebuild(s)      # (and the rollups, on the basis they were built on)
                    left, _ = facts.differences(s)
                    click.echo(f"fact rows rebuilt: {total}; differing now: {left}")
                    click.echo(f"rollup rows differing now: {rollups.differences(s)}")
            if check:
                s.rollback()
                raise SystemExit(1 if n else 0)

    @server.cli.group("events")
    def events_group():
        """The case events' monthly partitions (PostgreSQL; SQLite keeps one table)."""

    @events_group.command("ensure")
    @click.option("--months", default=12, show_default=True, help="Months ahead to make.")
    def events_ensure(months):
        """Make the monthly partitions up to MONTHS ahead, and move rows out of DEFAULT into their month."""
        made = _in_partitions(lambda conn: partitions.ensure_ahead(conn, datetime.now(timezone.utc), months))
        click.echo(f"partitions made: {len(made)}" + (f" ({', '.join(made)})" if made else ""))

    @events_group.command("prune")
    @click.option("--before", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
                  help="Drop the months that end on or before this date (YYYY-MM-DD).")
    @click.option("--dry-run", is_flag=True, help="Only count; drop nothing.")
    def events_prune(before, dry_run):
        """Drop whole months of events (and their request keys) before a date; a month with an event
        of a case still open is kept whole."""
        from incidents.model import State
        open_states = [s.value for s in State.open_states()]
        done = _in_partitions(lambda conn: partitions.prune(conn, before.date(), open_states=open_states,
                                                            dry_run=dry_run))
        for p in done:
            verdict = ("dropped" if p.dropped else f"kept: events of {p.open_cases} open case(s)" if p.open_cases
                       else "would drop")
            click.echo(f"{p.month.name} {p.month.start:%Y-%m}: {p.events} events, {verdict}")
        dropped = [p for p in done if p.dropped]
        click.echo(f"months dropped: {len(dropped)}, events dropped: {sum(p.events for p in dropped)}, "
                   f"months kept for open cases: {sum(1 for p in done if p.open_cases)}")

    def _in_partitions(work):
        from data_sources.store.db import get_db, unbounded
        # moving rows out of DEFAULT or counting a month may take longer than a request may wait
        with get_db(server).engine.begin() as conn, unbounded(conn):
            if not partitions.is_partitioned(conn):
                raise click.ClickException("the events are partitioned on PostgreSQL only; nothing to do here")
            return work(conn)
