"""Feed CLI: ``flask --app app import incidents FILE --mapping NAME_OR_PATH [--services FILE]``,
``import open311 URL --from DAY [--format json|xml]``, ``import service-rates FILE``,
``import kpis FILE``, ``replay FILE --mapping NAME --speed N [--limit K]`` and
``flask --app app quarantine list|show ID|retry [ID…|--all]`` and ``simulate [--once]`` (the demo feed
in the foreground)."""
from __future__ import annotations

import json
import time
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
    if summary.flags:
        click.echo("  kept, flagged (counted in inserted/updated/unchanged):")
        for kind, n in summary.flags.most_common():
            click.echo(f"    {n:>7,}  {kind}")
    if summary.reasons:
        click.echo("  top quarantine reasons:")
        for reason, n in summary.reasons.most_common(5):
            click.echo(f"    {n:>7,}  {reason}")
        click.echo("  see: flask --app app quarantine list")


def _mapping(name_or_path: str):
    """The mapping, checked before any record is read: a broken file stops here with its line and key."""
    from data_sources.feeds.mappings import MappingError, get_mapping
    try:
        return get_mapping(name_or_path)
    except MappingError as exc:
        raise click.ClickException(f"mapping file error: {exc}") from None
    except KeyError as exc:
        raise click.BadParameter(exc.args[0], param_hint="--mapping") from None


_MAPPING_HELP = "A built-in mapping (nyc311, sf311, open311, native, iot_alarm) or the path of a mapping file (.toml)."


def register(server: Flask) -> None:
    from data_sources.feeds.files import FORMATS

    @server.cli.group("import")
    def import_group():
        """Import records from files."""

    @import_group.command("incidents")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--mapping", "mapping_name", required=True, help=_MAPPING_HELP)
    @click.option("--source", "source_label", default=None,
                  help="Source label of the cases (namespace of their ids); default: the mapping name.")
    @click.option("--services", "services_file", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="Open311 services.json / services.xml: fills service_name of requests that give "
                       "only a service_code.")
    @click.option("--format", "fmt", default=None, type=click.Choice(FORMATS), help="Default: from the suffix.")
    @click.option("--encoding", default=None, help="Text encoding (default: detect UTF-8, then GB18030).")
    @click.option("--crs", default=None, help="CRS of the file's coordinates: WGS84, GCJ02 or BD09 "
                                              "(default: the pack's).")
    @click.option("--batch-size", default=1000, show_default=True)
    def import_incidents(file, mapping_name, services_file, source_label, fmt, encoding, crs, batch_size):
        """Import incident records from FILE (CSV, XLSX, JSON, NDJSON, Open311 XML) through a mapping."""
        from data_sources.feeds.files import count_records, read_records, service_names, with_service_names
        from data_sources.ingest import earliest_from, ingest
        from data_sources.runtime import get_runtime
        from data_sources.store.db import get_db
        mapping = _mapping(mapping_name)
        rt = get_runtime(server)
        try:
            records = read_records(file, fmt=fmt, encoding=encoding)
            total = count_records(file, fmt=fmt)
            if services_file:
                records = with_service_names(records, service_names(services_file))
        except ValueError as exc:
            raise click.ClickException(str(exc))
        with click.progressbar(length=total or 0, label=f"importing {file}", show_pos=True) as bar:
            summary = ingest(get_db(server), rt.rules, rt.pack, records, mapping,
                             feed_name=mapping.name, source_label=source_label, crs=crs, batch_size=batch_size,
                             progress=bar.update, earliest=earliest_from(server.config["INGEST_MIN_DATE"]))
        _summary(summary, f"({file})")

    @import_group.command("open311")
    @click.argument("url")
    @click.option("--from", "start", required=True, type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
                  help="Requests reported from this day (UTC).")
    @click.option("--to", "end", default=None, type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
                  help="… up to this instant (UTC; default now).")
    @click.option("--format", "fmt", default="json", show_default=True, type=click.Choice(["json", "xml"]),
                  help="Which of the spec's formats to ask the server for.")
    @click.option("--jurisdiction", default=None, help="jurisdiction_id, for a server that needs one.")
    @click.option("--api-key-env", default="CITYOPS_OPEN311_API_KEY", show_default=True,
                  help="Environment variable holding the server's api_key, if it needs one (never on the "
                       "command line).")
    @click.option("--source", "source_label", default=None,
                  help="Source label of the cases (namespace of their service_request_ids); default: the "
                       "server's host name.")
    @click.option("--page-size", default=1000, show_default=True, type=click.IntRange(1, 1000))
    def import_open311(url, start, end, fmt, jurisdiction, api_key_env, source_label, page_size):
        """Import the service requests (and the services' names) of the Open311 GeoReport v2 server
        at URL (e.g. https://city.example/open311/v2), in 90-day windows, through the open311 mapping."""
        import os
        from urllib.parse import urlparse
        from data_sources.feeds.open311_client import Open311Client, pull_open311
        from data_sources.feeds.pull import HttpClient
        from data_sources.runtime import get_runtime
        from data_sources.store.db import get_db
        if urlparse(url).scheme not in ("http", "https"):
            raise click.BadParameter("must be an http(s) URL", param_hint="URL")
        utc = timezone.utc
        start = start.replace(tzinfo=utc)
        end = end.replace(tzinfo=utc) if end else datetime.now(utc)
        if end <= start:
            raise click.BadParameter("must be after --from", param_hint="--to")
        label = (source_label or urlparse(url).hostname or "open311")[:40]
        client = Open311Client(url, jurisdiction_id=jurisdiction, api_key=os.environ.get(api_key_env) or None,
                               page_size=page_size, fmt=fmt,
                               http=HttpClient(log=lambda m: click.echo(f"  {m}", err=True)))
        rt = get_runtime(server)
        click.echo(f"reading {url} ({fmt}) from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC as source {label}")
        result = pull_open311(get_db(server), rt.rules, rt.pack, client, start, end, source_label=label,
                              log=lambda m: click.echo(f"  {m}", err=True))
        click.echo(f"  services read: {result.services}")
        _summary(result.summary, f"({url})")
        if result.error:
            raise click.ClickException(f"the server failed: {result.error} (what was read before is kept)")

    def _figure_records(file):
        from data_sources.feeds.files import count_records, detect_format, read_records
        try:
            fmt = detect_format(file)
            if fmt not in ("csv", "xlsx"):
                raise ValueError(f"{file}: expected a CSV or XLSX file")
            return read_records(file, fmt=fmt), count_records(file, fmt=fmt)
        except ValueError as exc:
            raise click.ClickException(str(exc))

    @import_group.command("service-rates")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--source", "source_label", default=None, help="Source label of the rows (default: file name).")
    def import_service_rates_cmd(file, source_label):
        """Import 一网通办 service-rate rows (department_code, day, item_code, item_name, total, online,
        completed, on_time, rating_1..rating_5, bad_rectified) from a CSV or XLSX FILE."""
        from pathlib import Path
        from data_sources.feeds.figures import import_service_rates
        from data_sources.runtime import get_runtime
        from data_sources.store.db import get_db
        records, total = _figure_records(file)
        departments = {d.code for d in get_runtime(server).pack.departments}
        with click.progressbar(length=total or 0, label=f"importing {file}", show_pos=True) as bar:
            summary = import_service_rates(get_db(server), records, departments=departments,
                                           source=source_label or Path(file).name, progress=bar.update)
        _summary(summary, f"({file})")

    @import_group.command("kpis")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--source", "source_label", default=None, help="Source label of the run (default: file name).")
    def import_kpis_cmd(file, source_label):
        """Import KPI values (indicator_code, name, unit, direction, target, period, period_start,
        dimension, value) from a CSV or XLSX FILE; indicators are created or updated."""
        from pathlib import Path
        from data_sources.feeds.figures import import_kpis
        from data_sources.store.db import get_db
        records, total = _figure_records(file)
        with click.progressbar(length=total or 0, label=f"importing {file}", show_pos=True) as bar:
            summary, indicators = import_kpis(get_db(server), records, source=source_label or Path(file).name,
                                              progress=bar.update)
        _summary(summary, f"({file})")
        click.echo(f"  indicators created {indicators['created']}, updated {indicators['updated']}")

    @server.cli.command("replay")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--mapping", "mapping_name", required=True, help=_MAPPING_HELP)
    @click.option("--speed", type=float, default=60.0, show_default=True,
                  help="×N: one hour of the source plays in 1/N hour.")
    @click.option("--limit", type=int, default=None, help="Only the first K records of the file.")
    @click.option("--source", "source_label", default=None,
                  help="Source label of the cases; default: the mapping name.")
    @click.option("--format", "fmt", default=None, type=click.Choice(FORMATS), help="Default: from the suffix.")
    @click.option("--crs", default=None, help="CRS of the file's coordinates (default: the pack's).")
    def replay_cmd(file, mapping_name, speed, limit, source_label, fmt, crs):
        """Play FILE as a live feed at ×N speed, keeping the time offsets between its records."""
        import time as _time
        from data_sources.feeds.files import read_records
        from data_sources.feeds.replay import replay
        from data_sources.runtime import get_runtime
        from data_sources.store.db import get_db
        if speed <= 0:
            raise click.BadParameter("must be positive", param_hint="--speed")
        mapping = _mapping(mapping_name)
        rt = get_runtime(server)
        try:
            records = read_records(file, fmt=fmt)
        except ValueError as exc:
            raise click.ClickException(str(exc))
        last = [0.0]

        def show(rel, total):
            wall = _time.monotonic()
            if rel.released == total or wall - last[0] >= 1.0:   # at most one line a second
                last[0] = wall
                when = f"{rel.source_time:%Y-%m-%d %H:%M:%S}Z" if rel.source_time else "?"
                click.echo(f"+{rel.at:8.1f}s  released {rel.records:>5,}  ({rel.released:,}/{total:,})  "
                           f"source time {when}")
        click.echo(f"replaying {file} through {mapping.name} at ×{speed:g}")
        result = replay(get_db(server), rt.rules, rt.pack, records, mapping, speed=speed, limit=limit,
                        source_label=source_label, crs=crs, on_release=show)
        _summary(result.summary, f"({file}, ×{speed:g})")

    @server.cli.group("quarantine")
    def quarantine_group():
        """Records that could not be imported: list, show, retry."""

    @quarantine_group.command("list")
    @click.option("--feed", default=None)
    @click.option("--status", default="new", show_default=True, help="new | retried | all")
    @click.option("--limit", default=50, show_default=True)
    def quarantine_list(feed, status, limit):
        from data_sources.store.db import session_scope
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
        from data_sources.store.db import session_scope
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
        from data_sources.ingest import retry_quarantined
        from data_sources.runtime import get_runtime
        from data_sources.store.db import get_db
        if not ids and not all_:
            raise click.UsageError("give quarantine ids or --all")
        rt = get_runtime(server)
        out = retry_quarantined(get_db(server), rt.rules, rt.pack, list(ids) or None,
                                now=datetime.now(timezone.utc))
        if not out:
            click.echo("nothing to retry")
        for summary in out:
            _summary(summary)

    @server.cli.command("simulate")
    @click.option("--once", is_flag=True, help="One tick, then exit.")
    def simulate_cmd(once):
        """Run the demo feed in the foreground."""
        from data_sources.feeds import simulator
        from data_sources.store.db import session_scope

        def _now() -> datetime:
            return datetime.now(timezone.utc)
        sim = simulator.build(server)
        while True:
            with session_scope(server) as s:
                out = simulator.tick(s, sim, _now())
            click.echo(f"{_now():%H:%M:%S} {out}")
            if once:
                return
            time.sleep(float(server.config["DEMO_TICK_SECONDS"]))
