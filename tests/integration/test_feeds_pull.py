"""HTTP pull against a real local HTTP server that times out, fails, answers garbage, then
recovers: the pull resumes from its cursor with nothing lost and nothing doubled."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import func, select

from data_sources.feeds.pull import HttpClient, PullSource, load_cursor, pull
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents.tables import FeedRun, Incident

WEST_LAKE = (120.1593, 30.2585)


def _rec(i, **kw):
    base = {"external_id": f"P{i}", "title": f"井盖缺失 {i}", "category_code": "C0101",
            "reported_at": f"2024-05-06 09:{i % 60:02d}", "updated_at": f"2024-05-06T10:{i:02d}:00+08:00",
            "lon": WEST_LAKE[0], "lat": WEST_LAKE[1], "state": "registered"}
    base.update(kw)
    return base


class ChangeLog:
    """The remote system: an append-only change log, paged by an opaque offset token or by
    ``since`` (updated_at); ``script`` is how the next requests misbehave."""

    def __init__(self):
        self.log: list[dict] = []
        self.script: list[str] = []
        self.requests: list[str] = []
        self.lock = threading.Lock()

    def handler(self):
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with state.lock:
                    state.requests.append(self.path)
                    how = state.script.pop(0) if state.script else "ok"
                if how == "timeout":
                    time.sleep(1.0)      # longer than the client's timeout
                    return self._send(200, b"[]")
                if how == "500":
                    return self._send(500, b'{"error": "database is down"}')
                if how == "garbage":
                    return self._send(200, b"<html>Bad Gateway</html>", "text/html")
                if how == "shape":
                    return self._send(200, json.dumps({"result": "ok", "count": 3}).encode())
                url = urlparse(self.path)
                q = parse_qs(url.query)
                limit = int(q.get("limit", ["10"])[0])
                if url.path == "/log":
                    offset = int((q.get("cursor") or ["o0"])[0][1:])
                    page = state.log[offset:offset + limit]
                    end = offset + len(page)
                    body = {"records": page, "next": f"o{end}", "has_more": end < len(state.log)}
                else:  # /changes?since=<updated_at>: a plain array
                    since = (q.get("since") or [""])[0]
                    body = sorted((r for r in state.log if r["updated_at"] > since),
                                  key=lambda r: r["updated_at"])[:limit]
                self._send(200, json.dumps(body, ensure_ascii=False).encode())

            def _send(self, status, body, ctype="application/json"):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass   # the client gave up (timeout)
        return Handler


@pytest.fixture
def remote():
    log = ChangeLog()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), log.handler())
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    log.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield log
    httpd.shutdown()
    httpd.server_close()


def _adds_up(run):
    assert run.received == run.inserted + run.updated + run.unchanged + run.quarantined


def test_pull_survives_timeouts_500s_and_garbage_and_resumes_from_its_cursor(app, remote):
    db, rt = get_db(app.server), get_runtime(app.server)
    remote.log = [_rec(i) for i in range(25)]
    sleeps: list[float] = []
    client = HttpClient(timeout=0.3, max_tries=3, backoff=0.1, sleep=sleeps.append)
    src = PullSource(url=remote.base + "/log", feed="partner", cursor_param="cursor", page_size=10)

    # page 1 arrives, then page 2 times out, answers 500, answers HTML: the run fails, page 1 is kept
    remote.script = ["ok", "timeout", "500", "garbage"]
    first = pull(db, rt.rules, rt.pack, src, client=client)
    assert not first.ok and first.summary.run.status == "error"
    assert "failed 3 times" in first.summary.run.error and "not JSON" in first.summary.run.error
    assert (first.summary.run.received, first.summary.run.inserted) == (10, 10)
    assert load_cursor(db, "partner") == "o10"
    assert sleeps == [0.1, 0.2]                         # exponential backoff, bounded tries

    # recovery: a wrong-shaped answer is retried, then pages 2 and 3 from the stored cursor
    remote.script = ["shape"]
    second = pull(db, rt.rules, rt.pack, src, client=client)
    assert second.ok and second.summary.run.status == "ok" and second.pages == 2
    assert (second.summary.run.received, second.summary.run.inserted) == (15, 15)
    assert load_cursor(db, "partner") == "o25"
    assert any("cursor=o10" in r for r in remote.requests[-2:])

    # nothing new: one empty page; then two new records and one change
    assert pull(db, rt.rules, rt.pack, src, client=client).summary.run.received == 0
    remote.log += [_rec(25), _rec(26), _rec(3, title="井盖缺失 3（已更新）", updated_at="2024-05-06T11:00:00+08:00")]
    fourth = pull(db, rt.rules, rt.pack, src, client=client).summary.run
    assert (fourth.received, fourth.inserted, fourth.updated, fourth.unchanged) == (3, 2, 1, 0)

    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Incident).where(Incident.source == "partner")) == 27
        runs = s.scalars(select(FeedRun).where(FeedRun.feed == "partner").order_by(FeedRun.id)).all()
        assert [r.status for r in runs] == ["error", "ok", "ok", "ok"]
        for r in runs:
            _adds_up(r)
        assert sum(r.inserted for r in runs) == 27 and sum(r.unchanged for r in runs) == 0
        assert s.scalar(select(Incident.title).where(Incident.external_id == "P3")) == "井盖缺失 3（已更新）"


def test_pull_by_since_timestamp_pages_until_nothing_is_newer(app, remote):
    db, rt = get_db(app.server), get_runtime(app.server)
    remote.log = [_rec(i) for i in range(12)] + [_rec(12, category_code="NOPE")]
    src = PullSource(url=remote.base + "/changes", feed="partner2", page_size=5)
    remote.script = ["500"]
    res = pull(db, rt.rules, rt.pack, src, client=HttpClient(timeout=2, max_tries=2, sleep=lambda _s: None))
    run = res.summary.run
    assert res.ok and (run.received, run.inserted, run.quarantined) == (13, 12, 1)
    assert load_cursor(db, "partner2") == "2024-05-06T10:12:00+08:00"
    again = pull(db, rt.rules, rt.pack, src, client=HttpClient(timeout=2, sleep=lambda _s: None)).summary.run
    assert again.received == 0 and again.status == "ok"
