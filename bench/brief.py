"""The leaders' brief for a quarter over a database of N cases: server time of
``incidents.queries.brief.brief`` (every KPI, both rankings, the series, 环比 and 同比, the KPI
feed) cold (cache cleared) and warm (memoized), the page's render callback, a card's
drill-through, and the PDF and Excel exports.

    python -m bench.brief --cases 1000000 --db both

Data: the action benchmark's databases (SQLite /tmp/cityops-bench.db, PostgreSQL
``cityops_bench``), generated on first use (≈ 7,000 cases a week back from now, so a quarter
holds about 90,000 cases registered in it plus the open ones), with the demo 一网通办 rows
and KPI feed seeded for the last year. Quarters: the current one (to date) and the last
complete one, both seen at now.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone

from zoneinfo import ZoneInfo

from bench._common import header, load_rules


def _timed(fn, runs: int = 1) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run(backend: str, url: str, args) -> None:
    from app import create_app
    from bench.actions import prepare
    from data_sources.feeds.demo_service_rates import seed_kpis, seed_service_rates
    from data_sources.store.cache import cache
    from data_sources.store.db import get_db
    from incidents import auth
    from incidents.queries import brief as qb

    pack, rules = load_rules()
    prepare(url, args.cases, pack, rules, rebuild=False, pool_per_action=10)
    app = create_app({"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": "bench", "DEMO_FEED": False})
    server = app.server
    today = datetime.now(timezone.utc).date()
    with get_db(server).session_scope() as s:
        seed_service_rates(s, pack, today - timedelta(days=400), today, seed=11)
        seed_kpis(s, today - timedelta(days=400), today, seed=11)
        auth.create_user(s, "bench-leader", "leader", password="bench-password-1", now=datetime.now(timezone.utc),
                         replace=True)
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    tz = pack.timezone
    current = qb.preset_period("quarter", now, tz)
    last = qb.preset_period("quarter", current.start - timedelta(days=1), tz)
    for label, period in (("current quarter (to date)", current), ("last complete quarter", last)):
        with server.test_request_context():
            cold = []
            for _ in range(args.runs):
                cache.clear()
                t, b = _timed(lambda: qb.brief(period.start, period.end, now))
                cold.append(t)
            warm, _ = _timed(lambda: qb.brief(period.start, period.end, now), runs=20)
            k = b.report.kpis
            print(f"[{backend}] {label} {period.start.astimezone(ZoneInfo(tz)).date()}..{(period.end.astimezone(ZoneInfo(tz)) - timedelta(days=1)).date()}: "
                  f"{int(k['reported_count'].value):,} reported, {int(k['registered_count'].value):,} registered, "
                  f"{len(b.report.groups)} departments, {len(b.districts.groups)} districts, {len(b.buckets)} buckets")
            print(f"[{backend}]   brief server time: cold median {statistics.median(cold):.2f} s "
                  f"(runs {', '.join(f'{c:.2f}' for c in cold)}), warm median {warm * 1000:.2f} ms, "
                  f"cold/warm {statistics.median(cold) / warm:,.0f}x")
            cache.clear()
            t_drill, d = _timed(lambda: qb.drill(period.start, period.end, now, "closure_rate"))
            t_drill_warm, _ = _timed(lambda: qb.drill(period.start, period.end, now, "closure_rate"), runs=5)
            print(f"[{backend}]   drill-through 结案率 ({d.denominator:,} cases): cold {t_drill:.2f} s "
                  f"(brief included), warm {t_drill_warm * 1000:.1f} ms")
        client = server.test_client()
        import re
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
        client.post("/login", data={"username": "bench-leader", "password": "bench-password-1", "csrf_token": token})
        from urllib.parse import urlencode
        q = urlencode({"from": period.start.isoformat(), "to": period.end.isoformat(), "as_of": now.isoformat()})
        for ext in ("pdf", "xlsx"):
            t, resp = _timed(lambda: client.get(f"/brief/export.{ext}?{q}"))
            print(f"[{backend}]   export {ext}: {t:.2f} s (brief warm), {len(resp.data):,} bytes, HTTP {resp.status_code}")
    get_db(server).dispose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.brief", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=20000)
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="sqlite")
    p.add_argument("--runs", type=int, default=3, help="cold runs per quarter (default 3)")
    args = p.parse_args(argv)
    header("leader brief for a quarter", argv)
    from bench.actions import SQLITE_PATH, pg_url
    if args.db in ("sqlite", "both"):
        run("sqlite", f"sqlite:///{SQLITE_PATH}", args)
    if args.db in ("postgresql", "both"):
        run("postgresql", pg_url(), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
