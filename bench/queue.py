"""Workbench queue: server time for one page of the queue (view filter + sort + one page of rows
and the total, what the grid's infinite row model asks for) with N cases, p50 and p95, on SQLite
and PostgreSQL, for each ready-made view with its default sort, a column sort, a department scope
and a text search.

    python -m bench.queue --cases 1000000 --db both

The data comes from bench.actions (same databases: /tmp/cityops-bench.db, PostgreSQL cityops_bench).
"""
from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone

from bench._common import header, load_rules, percentile

CASES = [
    ("all_open, default sort", dict(view="all_open")),
    ("pending_dispatch", dict(view="pending_dispatch")),
    ("yellow", dict(view="yellow")),
    ("red", dict(view="red")),
    ("pending_verify", dict(view="pending_verify")),
    ("all_open, sort reported_at desc", dict(view="all_open", sort_model=[{"colId": "reported_at", "sort": "desc"}])),
    ("department 330106-CGJ, my_todo", dict(view="my_todo", role="department", department_code="330106-CGJ")),
    ("all_open, search '垃圾'", dict(view="all_open", q="垃圾")),
    ("all_open, page 20 (rows 2000-2100)", dict(view="all_open", start=2000, end=2100)),
]


def run(backend: str, url: str, cases: int, repeats: int) -> None:
    from app import create_app
    from bench.actions import prepare
    from data_sources.store.db import get_db
    from incidents.queries import cases as case_queries
    pack, rules = load_rules()
    prepare(url, cases, pack, rules, rebuild=False, pool_per_action=10)
    app = create_app({"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": "bench", "DEMO_FEED": False})
    with app.server.app_context():
        for name, kw in CASES:
            times, rows, total = [], 0, 0
            for _ in range(repeats):
                now = datetime.now(timezone.utc)
                t0 = time.perf_counter()
                page = case_queries.queue_page(now, **{"start": 0, "end": 100, **kw})
                times.append(time.perf_counter() - t0)
                rows, total = len(page.rows), page.total
            times.sort()
            print(f"[{backend}] {name:<38} p50 {percentile(times, 50) * 1000:8.1f} ms  p95 "
                  f"{percentile(times, 95) * 1000:8.1f} ms  ({rows} rows of {total:,})")
    get_db(app.server).dispose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.queue", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=20000)
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    header("workbench queue page", argv)
    from bench.actions import SQLITE_PATH, pg_url
    if args.db in ("sqlite", "both"):
        run("sqlite", f"sqlite:///{SQLITE_PATH}", args.cases, args.repeats)
    if args.db in ("postgresql", "both"):
        run("postgresql", pg_url(), args.cases, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
