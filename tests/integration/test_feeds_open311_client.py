"""The Open311 GeoReport v2 client: a round trip through our own /open311/v2 server over real
HTTP, and a third-party server (the Bloomington files behind a plain http.server) that neither
pages nor filters by date."""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from data_sources.feeds.open311_client import Open311Client, pull_open311
from data_sources.feeds.pull import HttpClient
from data_sources.ingest import ingest
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents.tables import Incident
from tests.conftest import build_app
from tests.integration.test_feeds import DATA, _open311_pack

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
SPOTS = [(120.1593, 30.2585), (120.1653, 30.2793), (120.2075, 30.2484)]


def _serve(wsgi_or_handler, *, wsgi: bool):
    if wsgi:
        srv = make_server("127.0.0.1", 0, wsgi_or_handler, threaded=True)
        port = srv.server_port
    else:
        srv = ThreadingHTTPServer(("127.0.0.1", 0), wsgi_or_handler)
        srv.daemon_threads = True
        port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, port


def test_round_trip_through_our_own_open311_server(app, tmp_path):
    # the sending city: our app on its own SQLite database, with 7 cases (4 open, 3 closed)
    sender = build_app(f"sqlite:///{tmp_path / 'sender.db'}")
    sdb, srt = get_db(sender.server), get_runtime(sender.server)
    recs = [({"external_id": f"S{i}", "title": f"井盖缺失 {i}", "category_code": ("C0101", "C0102")[i % 2],
              "reported_at": f"2024-0{1 + i}-06 09:00", "lon": SPOTS[i % 3][0], "lat": SPOTS[i % 3][1],
              "state": "closed" if i % 2 else "registered",
              **({"closed_at": f"2024-0{1 + i}-08 10:00"} if i % 2 else {})}, i) for i in range(7)]
    assert ingest(sdb, srt.rules, srt.pack, recs, "native", now=NOW).run.inserted == 7
    srv, port = _serve(sender.server, wsgi=True)
    try:
        db, rt = get_db(app.server), get_runtime(app.server)
        client = Open311Client(f"http://127.0.0.1:{port}/open311/v2", page_size=2,
                               http=HttpClient(timeout=10, max_tries=2, sleep=lambda _s: None))
        start, end = datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 9, 1, tzinfo=timezone.utc)
        res = pull_open311(db, rt.rules, rt.pack, client, start, end, source_label="sender", now=NOW)
        run = res.summary.run
        assert res.services > 0 and not res.error and run.status == "ok"
        assert (run.received, run.inserted, run.quarantined) == (7, 7, 0)
        again = pull_open311(db, rt.rules, rt.pack, client, start, end, source_label="sender", now=NOW).summary.run
        assert (again.received, again.unchanged) == (7, 7)
    finally:
        srv.shutdown()
        get_db(sender.server).dispose()
    with sdb.session_scope() as s:
        # the sender publishes each case under its source's id (S0 … S6), and the receiver keeps it
        sent = {c.external_id: c for c in s.scalars(select(Incident))}
    with db.session_scope() as s:
        got = {c.external_id: c for c in s.scalars(select(Incident).where(Incident.source == "sender"))}
    assert set(got) == set(sent)
    for key, case in got.items():
        assert case.category_code == sent[key].category_code
        assert case.reported_at == sent[key].reported_at
        assert (case.state == "closed") == (sent[key].state == "closed")
        # public Open311 output is rounded to 3 decimals (about 100 m, for privacy): the place survives
        assert abs(case.lon - sent[key].lon) < 0.00051 and abs(case.lat - sent[key].lat) < 0.00051
        assert case.district_code == sent[key].district_code
        if sent[key].department_code:
            assert case.department_code == sent[key].department_code   # agency_responsible by name


def test_client_against_a_server_that_neither_pages_nor_filters(db_url, tmp_path):
    app = build_app(db_url, PACK=str(_open311_pack(tmp_path)))
    www = tmp_path / "www"
    www.mkdir()
    (www / "services.json").write_bytes((DATA / "open311_bloomington_services.json").read_bytes())
    (www / "requests.json").write_bytes((DATA / "open311_bloomington_requests.json").read_bytes())

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    srv, port = _serve(partial(Quiet, directory=str(www)), wsgi=False)
    try:
        db, rt = get_db(app.server), get_runtime(app.server)
        client = Open311Client(f"http://127.0.0.1:{port}/", http=HttpClient(timeout=10, sleep=lambda _s: None))
        res = pull_open311(db, rt.rules, rt.pack, client, datetime(2012, 1, 1, tzinfo=timezone.utc),
                           datetime(2013, 1, 1, tzinfo=timezone.utc), source_label="bloomington", now=NOW)
        run = res.summary.run
        # four 90-day windows each answered with the same 21 requests: ingested once
        assert res.services == 46
        assert (run.received, run.inserted, run.quarantined, run.status) == (21, 21, 0, "ok")
        missing = Open311Client(f"http://127.0.0.1:{port}/nothing-here", http=HttpClient(timeout=5, max_tries=1))
        failed = pull_open311(db, rt.rules, rt.pack, missing, datetime(2012, 1, 1, tzinfo=timezone.utc),
                              datetime(2012, 2, 1, tzinfo=timezone.utc), source_label="bloomington", now=NOW)
        assert failed.summary.run.status == "error" and "HTTP 404" in failed.summary.run.error
    finally:
        srv.shutdown()
        get_db(app.server).dispose()
