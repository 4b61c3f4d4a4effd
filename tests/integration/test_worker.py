"""The worker on real Redis (RQ): two workers never run the same scheduled job twice, nor hold the same
subscription at once; a declared
http feed runs as a job, a failing run is retried, and every run leaves its feed_runs row with
counts that add up; ``flask worker --check`` reports a broken feeds file with its line and key."""
from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from data_sources import worker
from data_sources.store.db import get_db
from incidents.tables import FeedRun, Incident
from tests.conftest import REDIS_URL, build_app


@pytest.fixture
def redis():
    if not REDIS_URL:
        pytest.skip("Redis: set CITYOPS_TEST_REDIS_URL (CI does)")
    from redis import Redis
    r = Redis.from_url(REDIS_URL)
    yield r
    r.close()


def _forget(redis, prefix: str) -> None:
    """The claim keys a test made (RQ's own job keys expire with their result TTL)."""
    for key in redis.scan_iter(f"{prefix}:*"):
        redis.delete(key)


def _queue(redis, prefix: str):
    from rq import Queue
    return Queue(f"{prefix}-jobs", connection=redis)


def test_two_workers_never_run_the_same_scheduled_job_twice(redis):
    from redis import Redis
    from rq import SimpleWorker, get_current_job
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    ran: list[str] = []
    jobs = [worker.Job(f"count-{i}", 10.0, lambda: ran.append(get_current_job().id)) for i in range(3)]
    for job in jobs:
        worker._JOBS[job.name] = job
    # two workers: each its own Redis connection, claim owner, scheduler and queue client
    schedulers = []
    for n in range(2):
        conn = Redis.from_url(REDIS_URL)
        schedulers.append(worker.Scheduler(jobs, worker.RedisClaims(conn, prefix, owner=f"worker-{n}"),
                                           worker.rq_submitter(_queue(conn, prefix))))
    start = threading.Barrier(2)

    def tick_through(sched):
        start.wait()
        for t in range(1_000_000, 1_000_100, 2):     # 100 s of ticks: 10 slots of each job
            sched.tick(float(t))

    threads = [threading.Thread(target=tick_through, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(2):
        SimpleWorker([_queue(redis, prefix)], connection=redis).work(burst=True)
    expected = sorted(f"count-{i}-{slot}" for i in range(3) for slot in range(100_000, 100_010))
    assert sorted(ran) == expected          # every slot of every job ran, none twice
    for job in jobs:
        worker._JOBS.pop(job.name, None)
    _forget(redis, prefix)


def test_one_worker_at_a_time_holds_a_subscription_and_another_takes_it_over(redis):
    class FakeSubscriber:
        running = 0

        def start(self):
            FakeSubscriber.running += 1

        def stop(self):
            FakeSubscriber.running -= 1

    key = f"test-{uuid.uuid4().hex[:10]}:subscription:sensors"
    a, b = (worker.SubscriptionLease(redis, key, FakeSubscriber, owner=name, ttl=30) for name in ("a", "b"))
    assert [a.step(), b.step(), a.step(), b.step()] == [True, False, True, False]
    assert FakeSubscriber.running == 1
    a.release()                      # a worker stopping: the other takes the feed at its next step
    assert [b.step(), a.step()] == [True, False] and FakeSubscriber.running == 1
    redis.delete(key)                # b's lease lost (expired while Redis was away): b stops its subscriber
    redis.set(key, "a")
    assert b.step() is False and FakeSubscriber.running == 0
    redis.delete(key)


class _Endpoint:
    """A partner's JSON endpoint that fails its first ``failures`` requests with 500."""

    def __init__(self, records, failures: int):
        self.records, self.failures, self.requests = records, failures, 0
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                state.requests += 1
                if state.requests <= state.failures:
                    body, code = b'{"error": "down"}', 500
                else:
                    body, code = json.dumps({"records": state.records, "has_more": False}).encode(), 200
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/records"

    def close(self):
        self.http.shutdown()
        self.http.server_close()


def test_a_declared_http_feed_runs_as_a_job_retried_after_a_failed_run(redis, db_url, tmp_path, monkeypatch):
    from rq import SimpleWorker
    records = [{"external_id": f"W{i}", "title": f"井盖缺失 {i}", "category_code": "C0101",
                "reported_at": "2024-05-06 09:00", "updated_at": f"2024-05-06T10:0{i}:00+08:00",
                "lon": 120.1593, "lat": 30.2585, "state": "registered"} for i in range(3)]
    records.append({"external_id": "W9", "title": "无类别"})        # quarantined
    endpoint = _Endpoint(records, failures=2)    # the first run's two tries fail, the retry succeeds
    monkeypatch.setenv("PARTNER_TOKEN", "t0ken")
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[feeds.partner]\nkind = "http"\nurl = "{endpoint.url}"\ninterval = "1h"\n'
                     f'token_env = "PARTNER_TOKEN"\nretries = 2\nretry_backoff = 0\n', encoding="utf-8")
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    app = build_app(db_url, FEEDS_FILE=str(feeds), WORKER_REDIS_URL=REDIS_URL, WORKER_PREFIX=prefix)
    server = app.server
    try:
        with server.app_context():
            [job] = worker.scheduled_jobs(server)
            worker._JOBS[job.name] = job
            sched = worker.Scheduler([job], worker.RedisClaims(redis, prefix), worker.rq_submitter(_queue(redis, prefix)))
            assert sched.tick() == [("feed:partner", sched.last["feed:partner"])]
            SimpleWorker([_queue(redis, prefix)], connection=redis).work(burst=True)
        with get_db(server).session_scope() as s:
            runs = s.scalars(select(FeedRun).where(FeedRun.feed == "partner").order_by(FeedRun.id)).all()
            assert [r.status for r in runs] == ["error", "ok"]
            ok = runs[1]
            assert (ok.received, ok.inserted, ok.quarantined) == (4, 3, 1)
            assert all(r.received == r.inserted + r.updated + r.unchanged + r.quarantined for r in runs)
            assert s.scalar(select(Incident.source).where(Incident.external_id == "W0")) == "partner"
    finally:
        worker._JOBS.pop("feed:partner", None)
        _forget(redis, prefix)
        endpoint.close()
        get_db(server).dispose()


def test_worker_check_lists_the_feeds_and_reports_a_broken_file_with_line_and_key(tmp_path):
    feeds = tmp_path / "feeds.toml"
    feeds.write_text('[feeds.partner]\nkind = "http"\nurl = "https://partner.example/r"\ninterval = "5m"\n',
                     encoding="utf-8")
    app = build_app(f"sqlite:///{tmp_path / 'w.db'}", FEEDS_FILE=str(feeds))
    try:
        out = app.server.test_cli_runner().invoke(args=["worker", "--check"])
        assert out.exit_code == 0, out.output
        assert "feed partner: http https://partner.example/r (every 300 s) mapping native" in out.output
        feeds.write_text('[feeds.partner]\nkind = "http"\nurl = "https://partner.example/r"\nevery = 5\n')
        out = app.server.test_cli_runner().invoke(args=["worker", "--check"])
        assert out.exit_code != 0
        assert f"{feeds} line 4, key feeds.partner.every: unknown key" in out.output
    finally:
        get_db(app.server).dispose()


def test_a_declared_open311_feed_reads_the_last_hours_of_another_server(db_url, tmp_path):
    """An open311 feed job against our own /open311/v2 of a sending city, over real HTTP."""
    from datetime import datetime, timedelta, timezone

    from data_sources.ingest import ingest
    from data_sources.runtime import get_runtime
    from tests.integration.test_feeds_open311_client import SPOTS, _serve
    sender = build_app(f"sqlite:///{tmp_path / 'sender.db'}")
    sdb, srt = get_db(sender.server), get_runtime(sender.server)
    recent = datetime.now(timezone.utc) - timedelta(hours=2)
    recs = [({"external_id": f"S{i}", "title": f"井盖缺失 {i}", "category_code": "C0101",
              "reported_at": (recent + timedelta(minutes=i)).isoformat(), "lon": SPOTS[i][0], "lat": SPOTS[i][1]}, i)
            for i in range(3)]
    assert ingest(sdb, srt.rules, srt.pack, recs, "native").run.inserted == 3
    srv, port = _serve(sender.server, wsgi=True)
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[feeds.neighbour]\nkind = "open311"\nurl = "http://127.0.0.1:{port}/open311/v2"\n'
                     f'interval = "15m"\nlookback_hours = 24\n', encoding="utf-8")
    app = build_app(db_url, FEEDS_FILE=str(feeds))
    try:
        with app.server.app_context():
            [job] = worker.scheduled_jobs(app.server)
            assert (job.name, job.interval) == ("feed:neighbour", 900.0)
            job.run()
        with get_db(app.server).session_scope() as s:
            [run] = s.scalars(select(FeedRun).where(FeedRun.feed == "neighbour")).all()
            assert (run.status, run.received, run.inserted, run.quarantined) == ("ok", 3, 3, 0)
    finally:
        srv.shutdown()
        get_db(sender.server).dispose()
        get_db(app.server).dispose()
