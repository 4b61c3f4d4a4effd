"""重复诉求 suggestion: server time of one case's candidate parents (incidents.services.repeat_candidates:
the prefilter range scan on category × report time × lon/lat, the rows, the jieba + rapidfuzz score)
with N cases, p50 and p95 over S cases drawn at random, on SQLite and PostgreSQL; with the query
plan of the prefilter, so the index range scan is seen, not assumed.

    python -m bench.repeats --cases 100000 --samples 300 --db both

The data: bench.datagen (the demo simulator's week of Hangzhou cases, copied back by whole weeks),
in databases of this benchmark's own (/tmp/cityops-bench-repeats.db, PostgreSQL cityops_bench_repeats).
Ends with ``RESULT repeat_suggest_p95_ms=… cases=…`` per backend.
"""
from __future__ import annotations

import argparse
import random
import time
from bench._common import header, load_rules, percentile

SQLITE_PATH = "/tmp/cityops-bench-repeats.db"
PG_DB = "cityops_bench_repeats"


def _plan(s, case, rules) -> str:
    """The plan of the prefilter repeat_candidates sends (services.repeat_prefilter)."""
    from incidents.services import repeat_prefilter
    from incidents.tables import Category
    cat = s.get(Category, case.category_code)
    reach = rules.repeats.reach(case.category_code, cat.major_code)
    stmt = repeat_prefilter(case, reach, rules.repeats.related_to(case.category_code))
    dialect = s.get_bind().dialect
    sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    if dialect.name == "sqlite":
        return "\n".join(str(r[-1]) for r in s.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    return "\n".join(r[0] for r in s.connection().exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS OFF) " + sql))


def run(backend: str, url: str, cases: int, samples: int, seed: int) -> float:
    from bench.actions import prepare
    from incidents import services
    from incidents.repeats import tokens
    from incidents.tables import Incident
    from sqlalchemy import func, select
    pack, rules = load_rules()
    db = prepare(url, cases, pack, rules, rebuild=False, pool_per_action=1)
    tokens("预热分词词典")          # jieba builds its dictionary once per process (from the package's file)
    with db.session_scope() as s:
        n = s.scalar(select(func.count()).select_from(Incident))
        lo, hi = s.execute(select(func.min(Incident.id), func.max(Incident.id))).one()
    rnd = random.Random(seed)
    times, found, linked = [], [], 0
    with db.session_scope() as s:
        probe = s.get(Incident, rnd.randint(lo, hi))
        print(f"[{backend}] plan of the prefilter (category {probe.category_code}):")
        for line in _plan(s, probe, rules).splitlines():
            print(f"    {line}")
    for _ in range(samples):
        with db.session_scope() as s:
            case = s.get(Incident, rnd.randint(lo, hi))
            if case is None or case.lon is None or case.category_code is None:
                continue
            t0 = time.perf_counter()
            cands = services.repeat_candidates(s, rules, case)
            times.append(time.perf_counter() - t0)
            found.append(len(cands))
            linked += bool(cands) and cands[0].score >= rules.repeats.auto_link_score
            s.rollback()
    times.sort()
    p50, p95 = percentile(times, 50) * 1000, percentile(times, 95) * 1000
    print(f"[{backend}] {n:,} cases, {len(times)} suggestions: p50 {p50:.1f} ms  p95 {p95:.1f} ms  "
          f"max {times[-1] * 1000:.1f} ms; candidates per case mean {sum(found) / len(found):.2f}, "
          f"with any {sum(1 for f in found if f) / len(found):.0%}, above auto_link_score "
          f"{linked / len(found):.1%}; floor 200 ms: {'met' if p95 <= 200 else 'NOT met'}")
    db.dispose()
    return p95, n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.repeats", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=100_000)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = p.parse_args(argv)
    header("重复诉求 suggestion (repeat candidates of one case)", argv)
    from bench.actions import PG_ADMIN_URL, pg_url
    results = []
    if args.db in ("sqlite", "both"):
        results.append(("sqlite", *run("sqlite", f"sqlite:///{SQLITE_PATH}", args.cases, args.samples, args.seed)))
    if args.db in ("postgresql", "both"):
        results.append(("postgresql", *run("postgresql", pg_url(PG_ADMIN_URL, PG_DB), args.cases, args.samples,
                                           args.seed)))
    for backend, p95, n in results:
        print(f"RESULT repeat_suggest_p95_ms={p95:.1f} cases={n} backend={backend}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
