"""Action latency: every step of a hotline case on existing cases, each through ``services.act``
in its own transaction (``session_scope``: act + commit), with N cases in the database. Prints
p50 / p95 / max per action and overall, and PostgreSQL / SQLite ratios.

The steps, in turn: register, dispatch, sign, resolve (the four of the first benchmarks, the
figures to hold against earlier runs), and the hotline's: a dispatch naming two assisting
departments (主办 + 协办), an assisting department's assist_sign and assist_reply, 先行联系
(contact), a 退单 with its reason code (return), 核查通过 (verify_pass) and 回访 (revisit, 满意).

    python -m bench.actions --cases 1000000 --db both
    python -m bench.actions --cases 20000 --db sqlite --actions 200
    python -m bench.actions --cases 1000000 --db both --only register,dispatch,sign,resolve

Bench databases live outside the repository: SQLite at /tmp/cityops-bench.db, PostgreSQL in the
database ``cityops_bench`` (created through an autocommit connection to ``test`` if missing).
A database that already holds N cases is reused as is (said in the output); one with fewer gets
the missing cases appended; ``--rebuild`` starts from an empty database. Ends with one line
``RESULT backend=… action=… p50_ms=… p95_ms=…`` per action and backend.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench._common import header, load_rules, percentile

SQLITE_PATH = "/tmp/cityops-bench.db"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_DB = "cityops_bench"
#: the steps timed, in the order of a cycle; an assist step acts on the case the dispatch_assist of the
#: same cycle dispatched
ACTIONS = ("register", "dispatch", "sign", "resolve", "dispatch_assist", "assist_sign", "contact", "assist_reply",
           "return", "verify_pass", "revisit")
CLASSIC = ACTIONS[:4]
_TEMPLATES: dict = {}  # planned once per process, shared by both backends
FROM_STATE = {"register": "reported", "dispatch": "registered", "sign": "dispatched", "resolve": "in_progress",
              "dispatch_assist": "registered", "contact": "in_progress", "return": "dispatched",
              "verify_pass": "resolved", "revisit": "closed"}
_CHAINED = ("assist_sign", "assist_reply")      # on the cases of this run's dispatch_assist


def pg_url(admin_url: str = PG_ADMIN_URL, name: str = PG_DB) -> str:
    """The bench database's URL; creates the database once (CREATE DATABASE needs autocommit)."""
    import psycopg
    with psycopg.connect(admin_url, autocommit=True) as con:
        if not con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            con.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def prepare(url: str, n_cases: int, pack, rules, *, rebuild: bool, pool_per_action: int, echo=print,
            per_week: int = 7000):
    """Schema, pack, and at least ``n_cases`` cases with open pools; returns the Database."""
    from bench import datagen
    from data_sources.seed import install_pack
    from data_sources.store import migrate
    from data_sources.store.db import Database

    if rebuild:
        _drop(url)
    db = Database(url)
    migrate.upgrade(db.engine)
    with db.session_scope() as s:
        install_pack(s, pack)
    with db.session_scope() as s:
        have, max_c, max_e = datagen.counts(s)
        short = {a: pool_per_action - _pool_size(s, a, pool_per_action) for a in FROM_STATE}
    missing = max(n_cases - have, 0)
    if not missing:
        echo(f"data: reusing the existing database with {have:,} cases (>= {n_cases:,}); no generation")
    # a rerun consumes open cases: top the pools up with open cases when they ran low
    top_up = 20 * max(max(short.values()), 0) if max(short.values()) > 0 else 0
    if missing or top_up:
        t0 = time.perf_counter()
        n_templates = datagen.templates_for(missing or top_up, per_week)
        templates = _TEMPLATES.get(n_templates) or _TEMPLATES.setdefault(n_templates, datagen.make_templates(
            pack, rules, count=n_templates, anchor=datetime.now(timezone.utc) - timedelta(days=7)))
        t1 = time.perf_counter()
        echo(f"data: planned {len(templates):,} simulator templates in {t1 - t0:.1f} s")
        if missing:
            open_fraction = min(0.5, max(0.01, 8 * pool_per_action / missing))
            c, e = datagen.write(db.engine, templates, max_c + 1, max_e + 1, missing, open_fraction=open_fraction,
                                 progress=echo)
            max_c, max_e = max_c + c, max_e + e
            t2 = time.perf_counter()
            echo(f"data: generated {c:,} cases + {e:,} events ({open_fraction:.1%} left open) in "
                 f"{t2 - t1:.1f} s write ({c / (t2 - t1):,.0f} cases/s), {t2 - t0:.1f} s in all")
        if top_up and not missing:
            c, e = datagen.write(db.engine, templates, max_c + 1, max_e + 1, top_up, open_fraction=1.0,
                                 progress=None)
            echo(f"data: open pools ran low ({short}); appended {c:,} open cases")
    if db.engine.dialect.name == "postgresql":
        # explicit ids went in with COPY (and an interrupted run may not have moved the sequences)
        with db.engine.begin() as conn:
            for table in ("incidents", "incident_events"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT COALESCE(MAX(id), 1) FROM {table}))")
    from incidents import facts
    from incidents.tables import CaseFact
    from sqlalchemy import func, select
    with db.session_scope() as s:     # the generator writes cases and events; their fact rows come from them
        if (s.scalar(select(func.count()).select_from(CaseFact)) or 0) != datagen.counts(s)[0]:
            t0 = time.perf_counter()
            echo(f"data: fact rows for {facts.rebuild(s):,} cases in {time.perf_counter() - t0:.1f} s")
    from incidents import rollups
    with db.session_scope() as s:     # the frozen cases' sums, on the pack's basis
        t0 = time.perf_counter()
        made = rollups.ensure(s, pack.timezone, rules.citizen_channels)
        if made is not None:
            echo(f"data: {made:,} rollup rows of the frozen cases in {time.perf_counter() - t0:.1f} s")
    with db.session_scope() as s:
        have, _, n_events = datagen.counts(s)
    echo(f"data: {have:,} cases, ~{n_events:,} events in {db.engine.dialect.name} ({_where(url)})")
    return db


def _where(url: str) -> str:
    return url.split("///", 1)[1] if url.startswith("sqlite") else url.rsplit("@", 1)[-1]


def _pool(action: str):
    """The cases a step can take: its from-state, a citizen's case not yet contacted or revisited for
    先行联系 and 回访, never returned for a 退单 (the third would be an arbitration)."""
    from sqlalchemy import select
    from incidents.tables import Incident
    states = ("dispatched", "in_progress") if action == "contact" else (FROM_STATE[action],)   # while it holds the case
    q = select(Incident.id, Incident.version, Incident.department_code).where(Incident.state.in_(states))
    if action in ("contact", "revisit"):
        q = q.where(Incident.channel.in_(("12345", "app")))
        q = q.where(Incident.first_contacted_at.is_(None) if action == "contact" else Incident.revisit_result.is_(None))
    if action == "return":
        q = q.where(Incident.return_count == 0)
    return q


def _pool_size(session, action: str, cap: int) -> int:
    from sqlalchemy import func, select
    sub = _pool(action).limit(cap).subquery()
    return session.scalar(select(func.count()).select_from(sub)) or 0


def _drop(url: str) -> None:
    if url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.split("///", 1)[1] + suffix).unlink(missing_ok=True)
    else:
        from tests.conftest import reset_postgres
        reset_postgres(url)


def _targets(s, action: str, n: int, seed: int, taken: set) -> list:
    """``n`` random cases a step can take (none twice in a run): (id, version, department)."""
    rows = [r for r in s.execute(_pool(action).limit(n * 20 + len(taken))).all() if r[0] not in taken]
    random.Random(f"{seed}:{action}").shuffle(rows)
    if len(rows) < n:
        raise SystemExit(f"only {len(rows)} cases for {action} (state {FROM_STATE[action]}); rerun with --rebuild")
    taken.update(r[0] for r in rows[:n])
    return rows[:n]


def run_actions(db, rules, n_actions: int, *, seed: int = 1, only: tuple = ACTIONS) -> dict[str, list[float]]:
    """Time ``n_actions`` actions, cycling through ``only`` (in the order of :data:`ACTIONS`) on random cases."""
    from sqlalchemy import select
    from incidents import services
    from incidents.model import Role
    from incidents.services import Actor
    from incidents.tables import Department

    steps = [a for a in ACTIONS if a in only]
    if any(a in _CHAINED for a in steps) and "dispatch_assist" not in steps:
        raise SystemExit("assist_sign and assist_reply act on the cases of dispatch_assist: time it too")
    per = -(-n_actions // len(steps))
    targets: dict[str, list] = {}
    taken: set = set()
    with db.session_scope() as s:
        for action in steps:
            if action not in _CHAINED:
                targets[action] = _targets(s, action, per, seed, taken)
        departments = sorted(s.scalars(select(Department.code)))
    rng = random.Random(seed)
    dispatcher = Actor("bench-dispatcher", Role.DISPATCHER)
    inspector = Actor("bench-inspector", Role.INSPECTOR)
    timings: dict[str, list[float]] = {a: [] for a in steps}
    now = datetime.now(timezone.utc)
    assisted: dict[int, tuple] = {}      # cycle → (case, version, assisting department)
    for i in range(n_actions):
        action, cycle = steps[i % len(steps)], i // len(steps)
        kw: dict = {}
        if action in _CHAINED:
            if cycle not in assisted:
                continue
            cid, version, dept = assisted[cycle]
            actor, kw = Actor(f"bench-{dept}", Role.DEPARTMENT, dept), {"department": dept}
            if action == "assist_reply":
                kw["note"] = "已配合处置"
        else:
            cid, version, dept = targets[action][cycle]
            actor = (dispatcher if action in ("register", "dispatch", "dispatch_assist", "revisit")
                     else inspector if action == "verify_pass" else Actor(f"bench-{dept}", Role.DEPARTMENT, dept))
        service_action = "dispatch" if action == "dispatch_assist" else action
        if action == "dispatch_assist":
            lead, *helpers = rng.sample(departments, 3)
            kw = {"department": lead, "assisting": helpers}
        elif action == "resolve":
            kw = {"note": "bench", "outcome": "solved"}
        elif action == "return":
            kw = {"reason": "territory", "note": "bench"}
        elif action == "revisit":
            kw = {"result": "satisfied"}
        t0 = time.perf_counter()
        with db.session_scope() as s:
            out = services.act(s, rules, actor, cid, service_action, version=version, now=now, **kw)
            new_version = out.case.version
        timings[action].append(time.perf_counter() - t0)
        if action == "dispatch_assist":
            assisted[cycle] = (cid, new_version, kw["assisting"][0])
        elif action in _CHAINED:
            assisted[cycle] = (cid, new_version, dept)
    return timings


def report(backend: str, timings: dict[str, list[float]]) -> dict[str, float]:
    everything = sorted(t for ts in timings.values() for t in ts)
    print(f"{backend:<10} {'action':<15} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    out = {}
    for action, ts in list(timings.items()) + [("all", everything)]:
        ts = sorted(ts)
        p50, p95 = percentile(ts, 50) * 1e3, percentile(ts, 95) * 1e3
        out[action] = p50
        out[action + ".p95"] = p95
        print(f"{backend:<10} {action:<15} {len(ts):>5} {p50:>8.2f} {p95:>8.2f} {ts[-1] * 1e3:>8.2f}")
    n = len(everything)
    print(f"{backend:<10} throughput {n / sum(everything):,.0f} actions/s (one at a time, {n} actions)")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.actions", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=20000, help="cases in the database (default 20000)")
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--actions", type=int, default=500, help="actions to time (default 500)")
    p.add_argument("--sqlite-path", default=SQLITE_PATH)
    p.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="connection used to CREATE DATABASE")
    p.add_argument("--pg-database", default=PG_DB)
    p.add_argument("--rebuild", action="store_true", help="drop the bench database and generate again")
    p.add_argument("--only", default=",".join(ACTIONS),
                   help=f"the steps to time, comma-separated (default all: {','.join(ACTIONS)}; the first "
                        f"benchmarks timed {','.join(CLASSIC)})")
    args = p.parse_args(argv)
    header("action latency (services.act, one transaction each)", sys.argv[1:] if argv is None else argv)
    only = tuple(a.strip() for a in args.only.split(",") if a.strip())
    if unknown := [a for a in only if a not in ACTIONS]:
        p.error(f"unknown step(s) {', '.join(unknown)}: one of {', '.join(ACTIONS)}")
    print(f"size: {args.cases:,} cases, {args.actions} actions ({', '.join(a for a in ACTIONS if a in only)} in turn)")
    pack, rules = load_rules()
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = {}
    for backend in backends:
        url = (f"sqlite:///{args.sqlite_path}" if backend == "sqlite"
               else pg_url(args.pg_admin_url, args.pg_database))
        print(f"-- {backend}")
        db = prepare(url, args.cases, pack, rules, rebuild=args.rebuild,
                     pool_per_action=-(-args.actions // len(only)))
        run_actions(db, rules, min(2 * len(only), args.actions), seed=99, only=only)  # warm-up: pool, caches, compile
        results[backend] = report(backend, run_actions(db, rules, args.actions, only=only))
        db.dispose()
    if len(results) == 2:
        a, b = results["postgresql"], results["sqlite"]
        print("ratio postgresql / sqlite: " + ", ".join(f"{k} {a[k] / b[k]:.2f}" for k in list(only) + ["all"])
              + f" (p50); all p95 {a['all.p95'] / b['all.p95']:.2f}")
    for backend, r in results.items():
        for action in [a for a in ACTIONS if a in only] + ["all"]:
            print(f"RESULT backend={backend} action={action} p50_ms={r[action]:.2f} p95_ms={r[action + '.p95']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
