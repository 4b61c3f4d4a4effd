"""Wall refresh: server time cold (cache miss) and warm (cache hit), the ratio of the cold time to
the floor (the same SQL statements replayed as plain SQL on the DB-API connection in the same run),
the bytes a refresh sends, and N simulated screens polling at once (database queries per minute,
p95 latency), with a writer changing the data as a live feed does.

    python -m bench.wall --cases 1000000 --db both
    python -m bench.wall --cases 20000 --db sqlite --screens 50 --seconds 60

The data comes from bench.actions (same databases: /tmp/cityops-bench.db, PostgreSQL cityops_bench).

``--http``: over real HTTP against gunicorn (the README's production line) + Redis + PostgreSQL
(database ``cityops_bench_wall``, Redis db 12): N screens (``--screens-list 10,50,100``) polling
the refresh callback every 5 s as browsers do (each sends the ``wall-seen`` it was last given,
accepts br/gzip), a writer acting through the API (12 writes/min), and per phase the screens' p95,
the writer's p95 against the writer alone, bytes per refresh, and the gunicorn processes' CPU per
refresh against the floor: the same screens polling a static answer of the same bytes behind the
same login (a route the bench adds, ``bench.wall_server``).

    python -m bench.wall --http --cases 100000 --seconds 40
"""
from __future__ import annotations

import argparse
import threading
import time
from datetime import datetime, timezone

from bench._common import header, load_rules, percentile

TZ = "Asia/Shanghai"


def _capture(engine):
    statements: list = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))
    from sqlalchemy import event
    event.listen(engine, "before_cursor_execute", grab)
    return statements, lambda: event.remove(engine, "before_cursor_execute", grab)


def cold_warm_floor(server, runs: int = 5) -> dict:
    from data_sources.store.db import get_db
    from incidents.queries import wall as queries_wall
    db = get_db(server)
    cold, floor, warm = [], [], []
    with server.app_context():
        for i in range(runs):
            now = datetime.now(timezone.utc)
            statements, stop = _capture(db.engine)
            t0 = time.perf_counter()
            with db.session_scope() as s:
                queries_wall.build(s, now, TZ)
            cold.append(time.perf_counter() - t0)
            stop()
            with db.engine.connect() as conn:
                t0 = time.perf_counter()
                for sql, params in statements:
                    conn.exec_driver_sql(sql, params).fetchall()
                floor.append(time.perf_counter() - t0)
            n_statements = len(statements)
        queries_wall.wall_data(datetime.now(timezone.utc), TZ, every=5)   # fill the cache
        for _ in range(50):
            t0 = time.perf_counter()
            queries_wall.wall_data(datetime.now(timezone.utc), TZ, every=3600)
            warm.append(time.perf_counter() - t0)
    cold.sort(), floor.sort(), warm.sort()
    return {"cold_p50": percentile(cold, 50), "floor_p50": percentile(floor, 50), "warm_p50": percentile(warm, 50),
            "warm_p95": percentile(warm, 95), "statements": n_statements}


def _refresh_body(app, seen) -> dict:
    key = next(k for k in app.callback_map if "wall-tiles.children" in k)
    outputs = [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in key.strip(".").split("...")]
    return refresh_body(key, outputs, seen)


def refresh_body(output: str, outputs: list, seen, layers=("districts", "points")) -> dict:
    """The refresh callback's request as a browser on the wall sends it (``seen``: its wall-seen)."""
    return {"output": output, "outputs": outputs,
            "inputs": [{"id": "wall-tick", "property": "n_intervals", "value": 1},
                       {"id": "wall-layers", "property": "value", "value": list(layers)},
                       {"id": "wall-district", "property": "data", "value": None}],
            "state": [{"id": "wall-scale", "property": "data", "value": 1.0},
                      {"id": "wall-seen", "property": "data", "value": seen},
                      {"id": "wall-last-ok", "property": "data", "value": None}],
            "changedPropIds": ["wall-tick.n_intervals"]}


def _client(server, username):
    c = server.test_client()
    import re
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
    r = c.post("/login", data={"username": username, "password": "bench-password-1", "csrf_token": token})
    assert r.status_code == 302, r.data
    return c


def refresh_bytes(app, client) -> dict:
    first = client.post("/_dash-update-component", json=_refresh_body(app, None))
    seen = first.get_json()["response"]["wall-seen"]["data"]
    stale = dict(seen, version=-1)                      # the data changed: numbers and points only
    patch = client.post("/_dash-update-component", json=_refresh_body(app, stale))
    idle = client.post("/_dash-update-component", json=_refresh_body(app, seen))  # nothing changed
    return {"layers": len(first.data), "patch": len(patch.data), "idle": len(idle.data), "seen": seen}


def screens(app, server, n: int, seconds: float, every: float, writes_per_minute: float) -> dict:
    from data_sources.store.db import get_db
    from sqlalchemy import event
    db = get_db(server)
    engines = list({id(e): e for e in (db.engine, db.read_engine)}.values())   # writes and the read models' pool
    count = {"q": 0}
    lock = threading.Lock()

    def on_query(*_a, **_k):
        with lock:
            count["q"] += 1
    clients = [_client(server, "bench-wall") for _ in range(n)]
    seen = refresh_bytes(app, clients[0])["seen"]
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds
    for engine in engines:
        event.listen(engine, "before_cursor_execute", on_query)

    def screen(c, offset):
        time.sleep(offset)
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            r = c.post("/_dash-update-component", json=_refresh_body(app, seen))
            with lock:
                latencies.append(time.perf_counter() - t0)
            assert r.status_code in (200, 204)
            time.sleep(max(0.0, every - (time.perf_counter() - t0)))

    def writer():
        from data_sources.runtime import get_runtime
        from incidents import services
        from incidents.services import Actor
        from incidents.model import Role
        from incidents.tables import Incident
        from sqlalchemy import select
        rules = get_runtime(server).rules
        actor = Actor("bench-writer", Role.LEADER)
        period = 60.0 / writes_per_minute
        while time.monotonic() < stop_at:
            with get_db(server).session_scope() as s:
                case = s.scalar(select(Incident).where(Incident.state == "in_progress").limit(1))
                if case is not None:
                    services.perform(s, rules, actor, case.id, "supervise", version=case.version,
                                     now=datetime.now(timezone.utc), level=1)
            time.sleep(period)
    threads = [threading.Thread(target=screen, args=(c, i * every / n)) for i, c in enumerate(clients)]
    if writes_per_minute > 0:
        threads.append(threading.Thread(target=writer))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    for engine in engines:
        event.remove(engine, "before_cursor_execute", on_query)
    latencies.sort()
    return {"requests": len(latencies), "queries_per_min": count["q"] * 60 / elapsed,
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95)}


def run(backend: str, url: str, args) -> None:
    from app import create_app
    from bench.actions import prepare
    from data_sources.store.db import get_db
    from incidents import auth
    pack, rules = load_rules()
    prepare(url, args.cases, pack, rules, rebuild=False, pool_per_action=10)
    app = create_app({"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": "bench", "DEMO_FEED": False,
                      "WALL_REFRESH_SECONDS": args.every})
    server = app.server
    with get_db(server).session_scope() as s:
        auth.create_user(s, "bench-wall", "dispatcher", password="bench-password-1",
                         now=datetime.now(timezone.utc), replace=True)
    f = cold_warm_floor(server)
    print(f"[{backend}] refresh server time: cold {f['cold_p50'] * 1000:.1f} ms (p50 of 5, {f['statements']} SQL "
          f"statements), floor {f['floor_p50'] * 1000:.1f} ms (same SQL replayed plain), "
          f"cold/floor {f['cold_p50'] / f['floor_p50']:.2f}; warm (cache hit) p50 {f['warm_p50'] * 1e3:.2f} ms, "
          f"p95 {f['warm_p95'] * 1e3:.2f} ms; cold/warm {f['cold_p50'] / f['warm_p50']:.0f}x")
    b = refresh_bytes(app, _client(server, "bench-wall"))
    print(f"[{backend}] bytes per refresh: layers changed {b['layers']:,} B; data changed (patch) {b['patch']:,} B; "
          f"nothing changed {b['idle']:,} B")
    sc = screens(app, server, args.screens, args.seconds, args.every, args.writes_per_minute)
    print(f"[{backend}] {args.screens} screens polling every {args.every:g} s for {args.seconds:g} s with "
          f"{args.writes_per_minute:g} writes/min: {sc['requests']} refreshes, {sc['queries_per_min']:,.0f} DB "
          f"queries/min ({sc['queries_per_min'] / args.screens:,.1f} per screen), latency p50 "
          f"{sc['p50'] * 1000:.1f} ms, p95 {sc['p95'] * 1000:.1f} ms")
    get_db(server).dispose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.wall", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=20000)
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="sqlite")
    p.add_argument("--screens", type=int, default=50)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--every", type=float, default=5)
    p.add_argument("--writes-per-minute", type=float, default=12)
    p.add_argument("--http", action="store_true", help="real HTTP: gunicorn + Redis + PostgreSQL")
    p.add_argument("--screens-list", default="10,50,100", help="--http: screen counts, one phase each")
    p.add_argument("--workers", type=int, default=2, help="--http: gunicorn workers (gthread)")
    p.add_argument("--threads", type=int, default=8, help="--http: threads per gunicorn worker")
    args = p.parse_args(argv)
    header("wall refresh" + (" over HTTP (gunicorn + Redis + PostgreSQL)" if args.http else ""), argv)
    if args.http:
        from bench import wall_http
        return wall_http.run(args)
    from bench.actions import SQLITE_PATH, pg_url
    if args.db in ("sqlite", "both"):
        run("sqlite", f"sqlite:///{SQLITE_PATH}", args)
    if args.db in ("postgresql", "both"):
        run("postgresql", pg_url(), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
