"""Feed CLI: ``flask --app app import incidents FILE --mapping NAME`` and
``flask --app app quarantine list|show ID|retry [ID…|--all]``."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import click
from flask import Flask
from sqlalchemy import func, select


def _summary(summary, file_label: str = "") -> None:
    run = summary.run
    rows = [("received", run.received), ("inserted", run.inserted), ("updated", run.updated),
            ("unchanged", run.unchanged), ("quarantined", run.quarantined)]
    click.echo(f"feed run {run.id}: {run.feed} -> source {run.source} {file_label}".rstrip())
    click.echo(f"  {'count':<12} {'records':>9}")
    for name, n in rows:
        click.echo(f"  {name:<12} {n:>9,}")
    if summary.reasons:
        click.echo("  top quarantine reasons:")
        for reason, n in summary.reasons.most_common(5):
            click.echo(f"    {n:>7,}  {reason}")
        click.echo("  see: flask --app app quarantine list")


def register(server: Flask) -> None:
    from data_sources.feeds.files import FORMATS
    from data_sources.feeds.mappings import MAPPINGS

    @server.cli.group("import")
    def import_group():
        """Import records from files."""

    @import_group.command("incidents")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--mapping", "mapping_name", required=True, type=click.Choice(sorted(MAPPINGS)))
    @click.option("--source", "source_label", default=None,
                  help="Source label of the cases (namespace of their ids); default: the mapping name.")
    @click.option("--format", "fmt", default=None, type=click.Choice(FORMATS), help="Default: from the suffix.")
    @click.option("--encoding", default=None, help="Text encoding (default: detect UTF-8, then GB18030).")
    @click.option("--crs", default=None, help="CRS of the file's coordinates: WGS84, GCJ02 or BD09 "
                                              "(default: the pack's).")
    @click.option("--batch-size", default=1000, show_default=True)
    def import_incidents(file, mapping_name, source_label, fmt, encoding, crs, batch_size):
        """Import incident records from FILE (CSV, XLSX, JSON, NDJSON) through a named mapping."""
        from data_sources.db import get_db
        from data_sources.feeds.files import count_records, read_records
        from data_sources.ingest import ingest
        from data_sources.runtime import get_runtime
        rt = get_runtime(server)
        try:
            records = read_records(file, fmt=fmt, encoding=encoding)
            total = count_records(file, fmt=fmt)
        except ValueError as exc:
            raise click.ClickException(str(exc))
        with click.progressbar(length=total or 0, label=f"importing {file}", show_pos=True) as bar:
            summary = ingest(get_db(server), rt.rules, rt.pack, records, MAPPINGS[mapping_name],
                             feed_name=mapping_name, source_label=source_label, crs=crs, batch_size=batch_size,
                             progress=bar.update)
        _summary(summary, f"({file})")

    @server.cli.group("quarantine")
    def quarantine_group():
        """Records that could not be imported: list, show, retry."""

    @quarantine_group.command("list")
    @click.option("--feed", default=None)
    @click.option("--status", default="new", show_default=True, help="new | retried | all")
    @click.option("--limit", default=50, show_default=True)
    def quarantine_list(feed, status, limit):
        from data_sources.db import session_scope
        from incidents.tables import Quarantine
        with session_scope(server) as s:
            q = select(Quarantine).order_by(Quarantine.id)
            cq = select(Quarantine.reason, func.count()).group_by(Quarantine.reason)
            if feed:
                q, cq = q.where(Quarantine.feed == feed), cq.where(Quarantine.feed == feed)
            if status != "all":
                q, cq = q.where(Quarantine.status == status), cq.where(Quarantine.status == status)
            rows = s.scalars(q.limit(limit)).all()
            total = s.scalar(select(func.count()).select_from(q.order_by(None).subquery()))
            click.echo(f"{'id':>6}  {'feed':<10} {'status':<8} reason")
            for r in rows:
                click.echo(f"{r.id:>6}  {r.feed:<10} {r.status:<8} {r.reason[:110]}")
            click.echo(f"{len(rows)} of {total} shown")

    @quarantine_group.command("show")
    @click.argument("qid", type=int)
    def quarantine_show(qid):
        from data_sources.db import session_scope
        from incidents.tables import Quarantine
        with session_scope(server) as s:
            r = s.get(Quarantine, qid)
            if r is None:
                raise click.ClickException(f"no quarantine row {qid}")
            click.echo(f"id {r.id}  feed {r.feed}  run {r.feed_run_id}  status {r.status}  at {r.created_at:%Y-%m-%d %H:%M}Z")
            click.echo(f"reason: {r.reason}")
            try:
                click.echo(json.dumps(json.loads(r.raw), ensure_ascii=False, indent=2))
            except ValueError:
                click.echo(r.raw)

    @quarantine_group.command("retry")
    @click.argument("ids", nargs=-1, type=int)
    @click.option("--all", "all_", is_flag=True, help="Retry every new quarantine row.")
    def quarantine_retry(ids, all_):
        """Run the mapping again on quarantined records (after fixing the pack's mapping.csv, say)."""
        from data_sources.db import get_db
        from data_sources.ingest import retry_quarantined
        from data_sources.runtime import get_runtime
        if not ids and not all_:
            raise click.UsageError("give quarantine ids or --all")
        rt = get_runtime(server)
        out = retry_quarantined(get_db(server), rt.rules, rt.pack, list(ids) or None,
                                now=datetime.now(timezone.utc))
        if not out:
            click.echo("nothing to retry")
        for summary in out:
            _summary(summary)
