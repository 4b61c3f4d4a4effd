"""Ingest throughput: N records of a generated native-mapping file (NDJSON or CSV) through
``data_sources.ingest`` (read → validate → upsert → timeline events, batches of 1,000 per
transaction) into an empty database, against the floor: the very rows ingest wrote (cases and
their events) bulk-inserted into empty tables with the same indexes as plain Core
``executemany`` (SQLite) or ``COPY … FROM STDIN`` (PostgreSQL), in the same run.

    python -m bench.ingest --records 1000000 --db both
    python -m bench.ingest --records 20000 --db sqlite --format csv

The generated file (Hangzhou pack: random categories, points inside the districts, 60 % closed,
20 % dispatched, 20 % registered) is cached under /tmp by size and format. Databases: SQLite
at /tmp/cityops-bench-ingest.db (+ …-floor.db), PostgreSQL database ``cityops_bench_ingest``
(created and dropped by the bench through an autocommit connection to ``test``).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench._common import header, load_rules

SQLITE_PATH = "/tmp/cityops-bench-ingest.db"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_DB = "cityops_bench_ingest"
CHUNK = 10_000
COLUMNS = ["external_id", "title", "description", "address", "category_code", "state", "reported_at",
           "dispatched_at", "closed_at", "lon", "lat", "channel", "priority"]


# --------------------------------------------------------------------------- the file

def generate(path: Path, n: int, pack, fmt: str, *, seed: int = 7) -> None:
    import shapely
    rng = random.Random(seed)
    cats = [c.code for c in pack.categories]
    points = []
    for area in pack.districts():
        geom = area.geometry
        x0, y0, x1, y1 = geom.bounds
        inside, tries = 0, 0
        while inside < 300 and tries < 100_000:
            tries += 1
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if shapely.contains_xy(geom, x, y):
                points.append((round(x, 6), round(y, 6)))
                inside += 1
    anchor = datetime(2024, 5, 1, 8, 0)
    tmp = path.with_suffix(path.suffix + ".part")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS) if fmt == "csv" else None
        if writer:
            writer.writeheader()
        for i in range(n):
            reported = anchor + timedelta(seconds=rng.randrange(0, 30 * 86400))
            lon, lat = points[rng.randrange(len(points))]
            roll = rng.random()
            state = "closed" if roll < 0.6 else "dispatched" if roll < 0.8 else "registered"
            rec = {"external_id": f"B{i:08d}", "title": f"案件 {i}", "description": "bench",
                   "address": f"测试路{i % 997}号", "category_code": cats[rng.randrange(len(cats))], "state": state,
                   "reported_at": reported.strftime("%Y-%m-%d %H:%M:%S"),
                   "dispatched_at": (reported + timedelta(minutes=20)).strftime("%Y-%m-%d %H:%M:%S")
                   if state != "registered" else "",
                   "closed_at": (reported + timedelta(hours=rng.randrange(2, 72))).strftime("%Y-%m-%d %H:%M:%S")
                   if state == "closed" else "",
                   "lon": lon, "lat": lat, "channel": ("12345", "app", "grid")[i % 3], "priority": "normal"}
            if writer:
                writer.writerow(rec)
            else:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(path)


# --------------------------------------------------------------------------- databases

def _pg_admin(admin_url: str):
    import psycopg
    return psycopg.connect(admin_url, autocommit=True)


def create_pg(admin_url: str, name: str) -> str:
    with _pg_admin(admin_url) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_pg(admin_url: str, name: str) -> None:
    with _pg_admin(admin_url) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_sqlite(path: str) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)
    return f"sqlite:///{path}"


def _prepare(url: str, pack):
    from data_sources.seed import install_pack
    from data_sources.store import migrate
    from data_sources.store.db import Database
    db = Database(url)
    migrate.upgrade(db.engine)
    with db.session_scope() as s:
        install_pack(s, pack)
    return db


# --------------------------------------------------------------------------- the floor

def floor_sqlite(src_db, floor_path: str, pack) -> float:
    """Seconds to executemany the ingested cases and events into an empty database."""
    from incidents.tables import Incident, IncidentEvent
    floor = _prepare(_fresh_sqlite(floor_path), pack)
    spent = 0.0
    with src_db.engine.connect() as src:
        for table in (Incident.__table__, IncidentEvent.__table__):
            cols = [c.name for c in table.columns]
            result = src.exec_driver_sql(f"SELECT {', '.join(cols)} FROM {table.name} ORDER BY id")
            with floor.engine.begin() as dst:
                raw = dst.connection.driver_connection
                sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                while True:
                    rows = result.fetchmany(CHUNK)
                    if not rows:
                        break
                    rows = [tuple(r) for r in rows]
                    t0 = time.perf_counter()
                    raw.executemany(sql, rows)
                    spent += time.perf_counter() - t0
                t0 = time.perf_counter()
            spent += time.perf_counter() - t0   # the commit
    floor.dispose()
    return spent


def floor_postgresql(src_db) -> float:
    """Seconds to COPY the ingested cases and events into empty tables like theirs (same indexes),
    from files dumped beforehand (the dump is not timed)."""
    spent = 0.0
    raw = src_db.engine.raw_connection()
    try:
        con = raw.driver_connection
        for table in ("incidents", "incident_events"):
            with tempfile.TemporaryFile() as buf:
                with con.cursor() as cur, cur.copy(f"COPY {table} TO STDOUT") as cp:
                    for chunk in cp:
                        buf.write(chunk)
                con.commit()
                with con.cursor() as cur:
                    cur.execute(f"CREATE TABLE floor_{table} (LIKE {table} INCLUDING ALL)")
                con.commit()
                buf.seek(0)
                t0 = time.perf_counter()
                with con.cursor() as cur, cur.copy(f"COPY floor_{table} FROM STDIN") as cp:
                    while data := buf.read(1 << 20):
                        cp.write(data)
                con.commit()
                spent += time.perf_counter() - t0
    finally:
        raw.close()
    return spent


# --------------------------------------------------------------------------- run

def run_backend(backend: str, args, path: Path, pack, rules) -> dict:
    from sqlalchemy import func, select
    from data_sources.feeds.files import read_records
    from data_sources.ingest import ingest
    from incidents.tables import IncidentEvent
    if backend == "sqlite":
        url = _fresh_sqlite(args.sqlite_path)
    else:
        url = create_pg(args.pg_admin_url, args.pg_database)
    db = _prepare(url, pack)
    try:
        t0 = time.perf_counter()
        summary = ingest(db, rules, pack, read_records(path), "native", source_label="bench",
                         now=datetime(2030, 1, 1, tzinfo=timezone.utc))
        t_ingest = time.perf_counter() - t0
        run = summary.run
        assert run.received == args.records and run.inserted + run.quarantined == args.records, run
        with db.session_scope() as s:
            n_events = s.scalar(select(func.count()).select_from(IncidentEvent))
        if backend == "sqlite":
            t_floor = floor_sqlite(db, args.sqlite_path.replace(".db", "-floor.db"), pack)
        else:
            t_floor = floor_postgresql(db)
    finally:
        db.dispose()
        if backend == "postgresql" and not args.keep:
            drop_pg(args.pg_admin_url, args.pg_database)
        elif backend == "sqlite" and not args.keep:
            for p in (args.sqlite_path, args.sqlite_path.replace(".db", "-floor.db")):
                _fresh_sqlite(p)
    ingest_rate, floor_rate = args.records / t_ingest, args.records / t_floor
    floor_how = "Core executemany" if backend == "sqlite" else "COPY FROM STDIN"
    print(f"{backend:<10} ingest {t_ingest:8.1f} s  {ingest_rate:>9,.0f} records/s  "
          f"(inserted {run.inserted:,}, quarantined {run.quarantined:,}, {n_events:,} events)")
    print(f"{backend:<10} floor  {t_floor:8.1f} s  {floor_rate:>9,.0f} records/s  "
          f"({floor_how} of the same {run.inserted:,} cases + {n_events:,} events)")
    print(f"{backend:<10} ratio ingest / floor: {ingest_rate / floor_rate:.3f} "
          f"(ingest takes {t_ingest / t_floor:.1f}× the floor's time)")
    return {"ingest": ingest_rate, "floor": floor_rate}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=20000, help="records in the file (default 20000)")
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--format", choices=("ndjson", "csv"), default="ndjson")
    p.add_argument("--sqlite-path", default=SQLITE_PATH)
    p.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="connection used to CREATE/DROP DATABASE")
    p.add_argument("--pg-database", default=PG_DB)
    p.add_argument("--keep", action="store_true", help="keep the bench databases afterwards")
    args = p.parse_args(argv)
    header("ingest throughput (file → validate → upsert → events) against bulk insert",
           sys.argv[1:] if argv is None else argv)
    pack, rules = load_rules()
    path = Path(tempfile.gettempdir()) / f"cityops-bench-ingest-{args.records}.{args.format}"
    if not path.exists():
        t0 = time.perf_counter()
        generate(path, args.records, pack, args.format)
        print(f"data: generated {path} in {time.perf_counter() - t0:.1f} s")
    else:
        print(f"data: reusing {path}")
    print(f"size: {args.records:,} records, {path.stat().st_size / 1e6:,.1f} MB {args.format}, "
          f"batches of 1,000 per transaction")
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = {b: run_backend(b, args, path, pack, rules) for b in backends}
    if len(results) == 2:
        print(f"ratio postgresql / sqlite ingest rate: {results['postgresql']['ingest'] / results['sqlite']['ingest']:.2f}")
    print("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
