"""The leaders' brief for a quarter over a database of N cases: server time of
``incidents.queries.brief.brief`` (every KPI, both rankings, the series, 环比 and 同比, the KPI
feed) cold (cache cleared) and warm (memoized), the page's render callback, a card's
drill-through, and the PDF and Excel exports — beside the SQL floor measured in the same run: the
same KPIs (every period the brief computes: the quarter with its buckets, 环比 and 同比) written as
plain SQL ``GROUP BY``s over the case and event tables, with nothing else around them.

    python -m bench.brief --cases 1000000 --db both

Ends with ``RESULT backend=… brief_cold_s=… brief_floor_s=… brief_cold_over_floor=… brief_warm_ms=…``.

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

_RUNNING = "('dispatched', 'in_progress')"
_IN = "{c} >= :lo AND {c} < :hi"


def _floor_statements(buckets) -> list[str]:
    """The brief's aggregates as plain SQL over ``incidents`` and ``incident_events``."""
    reg = _IN.format(c="registered_at") + " AND state <> 'voided'"
    disp = _IN.format(c="first_dispatched_at") + " AND state <> 'voided'"
    done = "state IN ('resolved', 'closed') AND resolved_at IS NOT NULL"
    sums = [_IN.format(c="reported_at"), _IN.format(c="registered_at"), reg, f"{reg} AND state = 'closed'",
            f"{reg} AND state = 'closed' AND on_time IS NOT false", f"{reg} AND rework_count > 0", disp,
            f"{disp} AND {done} AND on_time IS NOT false", f"{disp} AND return_count + reassign_count = 0",
            f"{disp} AND extension_count > 0", f"{disp} AND {done}",
            f"state IN {_RUNNING} AND deadline < :as_of"]
    cols = ", ".join(f"SUM(CASE WHEN {c} THEN 1 ELSE 0 END)" for c in sums)
    hours = f"SUM(CASE WHEN {disp} AND {done} THEN handling_hours END)"
    any_in = " OR ".join([_IN.format(c="reported_at"), _IN.format(c="registered_at"),
                          _IN.format(c="first_dispatched_at"), f"(state IN {_RUNNING} AND deadline < :as_of)"])
    out = [f"SELECT department_code, district_code, {cols}, {hours} FROM incidents WHERE {any_in} "
           f"GROUP BY department_code, district_code",
           "SELECT i.department_code, i.district_code, e.action, COUNT(DISTINCT e.incident_id) FROM incident_events e "
           "JOIN incidents i ON i.id = e.incident_id WHERE e.action IN ('dispatch', 'verify_pass') AND "
           + _IN.format(c="e.at") + " GROUP BY i.department_code, i.district_code, e.action"]
    if buckets:
        def bucket(c):
            return "CASE " + " ".join(f"WHEN {c} < :b{i} THEN {i}" for i in range(len(buckets))) + " END"
        for c in ("reported_at", "registered_at", "first_dispatched_at"):
            out.append(f"SELECT {bucket(c)}, {cols}, {hours} FROM incidents WHERE {_IN.format(c=c)} GROUP BY 1")
        out.append(f"SELECT {bucket('e.at')}, e.action, COUNT(DISTINCT e.incident_id) FROM incident_events e "
                   f"WHERE e.action IN ('dispatch', 'verify_pass') AND {_IN.format(c='e.at')} GROUP BY 1, 2")
    return out


def floor_seconds(engine, period, as_of, tz: str) -> float:
    """The SQL floor of one brief: its three periods' aggregates as plain SQL, timed."""
    from sqlalchemy import text
    from incidents import kpis

    def naive(t):
        return t.astimezone(timezone.utc).replace(tzinfo=None)
    jobs = [(period, as_of, kpis.period_buckets(period, tz))]
    jobs += [(c.period, c.as_of, None) for c in kpis.comparisons(period, as_of, tz)]
    t0 = time.perf_counter()
    with engine.connect() as conn:
        for p, at, buckets in jobs:
            params = {"lo": naive(p.start), "hi": naive(p.end), "as_of": naive(at),
                      **{f"b{i}": naive(b.end) for i, b in enumerate(buckets or [])}}
            for sql in _floor_statements(buckets):
                conn.execute(text(sql), params).fetchall()
    return time.perf_counter() - t0


def run(backend: str, url: str, args) -> None:
    from app import create_app
    from bench.actions import prepare
    from data_sources.feeds.demo_service_rates import seed_kpis, seed_service_rates
    from data_sources.store.cache import cache
    from data_sources.store.db import get_db
    from incidents import auth
    from incidents.queries import brief as qb

    pack, rules = load_rules()
    prepare(url, args.cases, pack, rules, rebuild=False, pool_per_action=10, per_week=args.per_week)
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
    results: dict[str, tuple[float, float, float]] = {}
    exports: dict[str, float] = {}
    for label, period in (("current quarter (to date)", current), ("last complete quarter", last)):
        with server.test_request_context():
            cold = []
            for _ in range(args.runs):
                cache.clear()
                t, b = _timed(lambda: qb.brief(period.start, period.end, now))
                cold.append(t)
            warm, _ = _timed(lambda: qb.brief(period.start, period.end, now), runs=20)
            floors = [floor_seconds(get_db(server).engine, period, now, tz) for _ in range(args.runs)]
            results[label] = (statistics.median(cold), statistics.median(floors), warm)
            k = b.report.kpis
            print(f"[{backend}] {label} {period.start.astimezone(ZoneInfo(tz)).date()}..{(period.end.astimezone(ZoneInfo(tz)) - timedelta(days=1)).date()}: "
                  f"{int(k['reported_count'].value):,} reported, {int(k['registered_count'].value):,} registered, "
                  f"{len(b.report.groups)} departments, {len(b.districts.groups)} districts, {len(b.buckets)} buckets")
            print(f"[{backend}]   brief server time: cold median {statistics.median(cold):.2f} s "
                  f"(runs {', '.join(f'{c:.2f}' for c in cold)}), warm median {warm * 1000:.2f} ms, "
                  f"cold/warm {statistics.median(cold) / warm:,.0f}x; SQL floor median {statistics.median(floors):.2f} s "
                  f"(runs {', '.join(f'{c:.2f}' for c in floors)}), cold/floor {statistics.median(cold) / statistics.median(floors):.2f}x")
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
            exports[f"{label}:{ext}"] = t
    get_db(server).dispose()
    xlsx_rss, xlsx_rows, xlsx_s = _xlsx_in_a_fresh_process(url, last, now)
    print(f"[{backend}]   Excel of the last complete quarter in a fresh process: {xlsx_rows:,} case rows in "
          f"{xlsx_s:.2f} s, peak RSS {xlsx_rss:.0f} MB (the brief, the flags and the file)")
    cold, floor, warm = results["last complete quarter"]
    print(f"RESULT backend={backend} cases={args.cases} brief_cold_s={cold:.3f} brief_floor_s={floor:.3f} "
          f"brief_cold_over_floor={cold / floor:.2f} brief_warm_ms={warm * 1000:.2f} "
          f"xlsx_s={exports['last complete quarter:xlsx']:.2f} pdf_s={exports['last complete quarter:pdf']:.2f} "
          f"xlsx_fresh_s={xlsx_s:.2f} xlsx_peak_rss_mb={xlsx_rss:.0f}")


_XLSX_JOB = """
import json, sys, tempfile, time
from datetime import datetime
from app import create_app
from dashboards._exports import brief_xlsx
from incidents.queries import brief as qb
start, end, as_of = (datetime.fromisoformat(v) for v in sys.argv[2:5])
server = create_app({"DATABASE_URL": sys.argv[1], "TESTING": True, "SECRET_KEY": "bench", "DEMO_FEED": False}).server
t0 = time.perf_counter()
with server.test_request_context(), tempfile.TemporaryDirectory() as tmp:
    rows, flags = qb.case_table(start, end, as_of)
    n = brief_xlsx(qb.brief(start, end, as_of), rows, flags, tmp + "/q.xlsx")
# VmHWM, this process image's own peak (ru_maxrss would keep the forking bench's size across exec)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rss_mb": hwm / 1024, "rows": n, "seconds": time.perf_counter() - t0}))
"""


def _xlsx_in_a_fresh_process(url: str, period, as_of) -> tuple[float, int, float]:
    """The Excel export of ``period`` as the export job makes it, alone in a new process: its peak
    resident memory is the export's (brief, case flags, the rows streamed into the file)."""
    import json
    import subprocess
    out = subprocess.run([sys.executable, "-c", _XLSX_JOB, url, period.start.isoformat(), period.end.isoformat(),
                          as_of.isoformat()], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return got["rss_mb"], got["rows"], got["seconds"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.brief", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=20000)
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="sqlite")
    p.add_argument("--runs", type=int, default=3, help="cold runs per quarter (default 3)")
    from bench.actions import PG_ADMIN_URL, PG_DB, SQLITE_PATH, pg_url
    p.add_argument("--sqlite-path", default=SQLITE_PATH)
    p.add_argument("--per-week", type=int, default=7000,
                   help="cases a week in the generated data (7,000: the Hangzhou demo; 175,000: a megacity's "
                        "25,000 a day, a quarter of about 2.3 million)")
    p.add_argument("--pg-database", default=PG_DB)
    args = p.parse_args(argv)
    header("leader brief for a quarter", argv)
    if args.db in ("sqlite", "both"):
        run("sqlite", f"sqlite:///{args.sqlite_path}", args)
    if args.db in ("postgresql", "both"):
        run("postgresql", pg_url(PG_ADMIN_URL, args.pg_database), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
