"""``python -m bench.wall --http``: the wall over real HTTP (see bench.wall's docstring)."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

from bench._common import ROOT, load_rules, percentile

PG_DB = "cityops_bench_wall"
REDIS_URL = "redis://127.0.0.1:6379/12"
PASSWORD = "bench-password-1"
BROWSER_ENCODINGS = "gzip, deflate, br, zstd"   # what Chromium sends


def gunicorn_args(workers: int, threads: int, port: int) -> list[str]:
    """The README's production line (bench.wall_server is app:server plus the floor's route)."""
    return [str(Path(sys.executable).with_name("gunicorn")), "-c", "python:data_sources.web.gunicorn_conf",
            "-w", str(workers), "-k", "gthread", "--threads", str(threads), "-b", f"127.0.0.1:{port}",
            "bench.wall_server:server"]


# --------------------------------------------------------------------------- HTTP client


class Client:
    """One browser: a keep-alive connection and its session cookie."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=h)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt == 2:
                    raise
        for value in resp.headers.get_all("Set-Cookie") or []:
            for k, morsel in SimpleCookie(value).items():
                self.cookies[k] = morsel.value
        return resp, data

    def login(self, username: str) -> "Client":
        _, page = self.request("GET", "/login")
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
        form = urlencode({"username": username, "password": PASSWORD, "csrf_token": token}).encode()
        resp, _ = self.request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status == 302, resp.status
        return self


def decoded(resp, data: bytes) -> bytes:
    enc = resp.headers.get("Content-Encoding")
    if enc == "br":
        import brotli
        return brotli.decompress(data)
    if enc == "gzip":
        import gzip
        return gzip.decompress(data)
    return data


# --------------------------------------------------------------------------- server CPU


def cpu_seconds(pid: int) -> float:
    """utime + stime of the gunicorn master and its workers, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in [pid] + _children(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def worker_rss_mb(pid: int) -> float:
    """The largest resident set of the gunicorn workers (children of the master), in MB."""
    sizes = [0.0]
    for p in _children(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        sizes += [int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")]
    return max(sizes)


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


# --------------------------------------------------------------------------- the load


class Phase:
    def __init__(self, name: str):
        self.name = name
        self.latencies: list[float] = []
        self.bytes: list[int] = []
        self.errors = 0
        self.writes: list[float] = []
        self.cpu = 0.0
        self.lock = threading.Lock()


def refresh_body(output: str, outputs: list, seen) -> bytes:
    from bench.wall import refresh_body as body
    return json.dumps(body(output, outputs, seen)).encode()


def screen(client: Client, phase: Phase, stop_at: float, offset: float, every: float, spec, static: bool) -> None:
    time.sleep(offset)
    seen = None
    headers = {"Content-Type": "application/json", "Accept-Encoding": BROWSER_ENCODINGS}
    while time.monotonic() < stop_at:
        t0 = time.perf_counter()
        if static:
            resp, data = client.request("GET", "/_bench/static", headers={"Accept-Encoding": BROWSER_ENCODINGS})
        else:
            resp, data = client.request("POST", "/_dash-update-component", refresh_body(*spec, seen), headers)
        elapsed = time.perf_counter() - t0
        with phase.lock:
            phase.latencies.append(elapsed)
            phase.bytes.append(len(data))
            phase.errors += resp.status not in (200, 204)
        if not static and resp.status == 200:   # the browser keeps what the answer told it
            answer = json.loads(decoded(resp, data))["response"]
            seen = answer.get("wall-seen", {}).get("data", seen)
        time.sleep(max(0.0, every - (time.perf_counter() - t0)))


def writer(port: int, token: str, case_ids: list[int], phase: Phase, stop_at: float, per_minute: float) -> None:
    client = Client(port)
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    period = 60.0 / per_minute
    while time.monotonic() < stop_at and case_ids:
        t0 = time.perf_counter()
        cid = case_ids.pop()
        resp, data = client.request("GET", f"/api/v1/incidents/{cid}", headers=auth)
        if resp.status == 200:
            version = json.loads(data)["version"]
            body = json.dumps({"action": "supervise", "version": version, "level": 1}).encode()
            resp, _ = client.request("POST", f"/api/v1/incidents/{cid}/actions", body, auth)
        with phase.lock:
            phase.writes.append(time.perf_counter() - t0)
            phase.errors += resp.status != 200
        time.sleep(max(0.0, period - (time.perf_counter() - t0)))


def run_phase(name: str, port: int, pid: int, clients: list[Client], args, spec, token, case_ids, *,
              static: bool = False, write: bool = True) -> Phase:
    phase = Phase(name)
    stop_at = time.monotonic() + args.seconds
    threads = [threading.Thread(target=screen, args=(c, phase, stop_at, i * args.every / max(len(clients), 1),
                                                     args.every, spec, static), daemon=True)
               for i, c in enumerate(clients)]
    if write:
        threads.append(threading.Thread(target=writer, daemon=True,
                                        args=(port, token, case_ids, phase, stop_at, args.writes_per_minute)))
    cpu0 = cpu_seconds(pid)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.cpu = cpu_seconds(pid) - cpu0
    phase.latencies.sort()
    phase.writes.sort()
    return phase


# --------------------------------------------------------------------------- setup


def prepare_data(args) -> tuple[str, str, list[int]]:
    from bench.actions import pg_url, prepare
    from incidents import auth
    from incidents.tables import Incident
    from sqlalchemy import select
    url = pg_url(name=PG_DB)
    pack, rules = load_rules()
    db = prepare(url, args.cases, pack, rules, rebuild=False, pool_per_action=10)
    now = datetime.now(timezone.utc)
    with db.session_scope() as s:
        for name, role in (("bench-wall", "viewer"), ("bench-writer", "leader")):
            auth.create_user(s, name, role, password=PASSWORD, now=now, replace=True)
        token = auth.create_token(s, "bench-writer", now=now, name="bench-writer")
        ids = list(s.scalars(select(Incident.id).where(Incident.state.in_(["in_progress", "dispatched"]))
                            .order_by(Incident.id.desc()).limit(2000)))
    db.dispose()
    return url, token, ids


def start_gunicorn(args, url: str, static_path: str, static_encoding: str) -> tuple[subprocess.Popen, int]:
    import redis
    redis.Redis.from_url(REDIS_URL).flushdb()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, CITYOPS_DATABASE_URL=url, CITYOPS_CACHE_URL=REDIS_URL, CITYOPS_SECRET_KEY="bench-wall",
               CITYOPS_DEMO_FEED="false", CITYOPS_WALL_REFRESH_SECONDS=str(args.every),
               CITYOPS_BENCH_STATIC=static_path, CITYOPS_BENCH_STATIC_ENCODING=static_encoding,
               PYTHONPATH=str(ROOT))
    cmd = gunicorn_args(args.workers, args.threads, port)
    print("server: " + " ".join(cmd[1:]))
    log = open(Path(tempfile.gettempdir()) / "cityops-bench-wall-gunicorn.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited ({proc.returncode}); see {log.name}")
        time.sleep(0.5)
    else:
        raise SystemExit("gunicorn did not become ready in 90 s")
    return proc, port


def _callback_spec(port: int) -> tuple[str, list]:
    c = Client(port).login("bench-wall")
    _, data = c.request("GET", "/_dash-dependencies", headers={"Accept-Encoding": "identity"})
    dep = next(d for d in json.loads(data) if "wall-tiles.children" in d["output"])
    outputs = [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in dep["output"].strip(".").split("...")]
    return dep["output"], outputs


def run(args) -> int:
    url, token, ids = prepare_data(args)
    counts = [int(x) for x in args.screens_list.split(",") if x.strip()]
    static_file = tempfile.NamedTemporaryFile(prefix="cityops-bench-static-", delete=False)
    static_file.close()
    proc, port = start_gunicorn(args, url, static_file.name, "br")
    try:
        spec = _callback_spec(port)
        probe = Client(port).login("bench-wall")
        resp, plain = probe.request("POST", "/_dash-update-component", refresh_body(*spec, None),
                                    {"Content-Type": "application/json", "Accept-Encoding": "identity"})
        first = json.loads(plain)["response"]
        seen = first["wall-seen"]["data"]
        resp, patch = probe.request("POST", "/_dash-update-component", refresh_body(*spec, dict(seen, version=-1)),
                                    {"Content-Type": "application/json", "Accept-Encoding": BROWSER_ENCODINGS})
        print(f"bytes: a first answer (whole map) {len(plain):,} B plain; a patch {len(decoded(resp, patch)):,} B "
              f"plain, {len(patch):,} B as sent ({resp.headers.get('Content-Encoding') or 'identity'})")
        Path(static_file.name).write_bytes(patch)   # the floor serves a patch's bytes as they were sent
        clients = [Client(port).login("bench-wall") for _ in range(max(counts))]
        alone = run_phase("writer alone", port, proc.pid, [], args, spec, token, ids)
        phases = {n: run_phase(f"{n} screens", port, proc.pid, clients[:n], args, spec, token, ids) for n in counts}
        top = max(counts)
        floor = run_phase(f"{top} screens, static", port, proc.pid, clients[:top], args, spec, token, ids, static=True)
        rss = worker_rss_mb(proc.pid)     # after every phase: what a worker holds once the wall load has run
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        os.unlink(static_file.name)
    writer_alone = percentile(alone.writes, 95)
    print(f"writer alone: {len(alone.writes)} writes (GET the case + POST supervise), p95 {writer_alone * 1e3:.1f} ms, "
          f"server CPU {alone.cpu:.2f} s in {args.seconds:g} s")
    for n, ph in list(phases.items()) + [(f"{top} static", floor)]:
        refreshes = len(ph.latencies)
        per = (ph.cpu - alone.cpu) / refreshes if refreshes else float("nan")
        print(f"{ph.name}: {refreshes} refreshes ({ph.errors} errors), p50 {percentile(ph.latencies, 50) * 1e3:.1f} ms, "
              f"p95 {percentile(ph.latencies, 95) * 1e3:.1f} ms, {sum(ph.bytes) / max(refreshes, 1):,.0f} B/refresh; "
              f"server CPU {ph.cpu:.2f} s ({per * 1e3:.2f} ms per refresh beyond the writer alone); "
              f"writer p95 {percentile(ph.writes, 95) * 1e3:.1f} ms ({len(ph.writes)} writes)")
    wall_top = phases[top]
    cpu_wall = (wall_top.cpu - alone.cpu) / len(wall_top.latencies)
    cpu_static = (floor.cpu - alone.cpu) / len(floor.latencies)
    writer_top = percentile(wall_top.writes, 95)
    raw = (wall_top.cpu / len(wall_top.latencies)) / (floor.cpu / len(floor.latencies))
    print(f"ratios at {top} screens: server CPU per refresh / static {cpu_wall / cpu_static:.2f} "
          f"({cpu_wall * 1e3:.2f} ms vs {cpu_static * 1e3:.2f} ms, each beyond the writer alone; {raw:.2f} with the "
          f"writer's share left in; short phases make these noisy); writer p95 / writer alone {writer_top / writer_alone:.2f}")
    p95 = {n: percentile(ph.latencies, 95) * 1e3 for n, ph in phases.items()}
    print("RESULT " + " ".join(f"wall_p95_ms_{n}={v:.1f}" for n, v in p95.items())
          + f" wall_cpu_over_static={cpu_wall / cpu_static:.2f} writer_p95_over_alone={writer_top / writer_alone:.2f}"
          f" wall_bytes_per_refresh={sum(wall_top.bytes) / len(wall_top.bytes):.0f} worker_rss_mb={rss:.0f}")
    return 0
