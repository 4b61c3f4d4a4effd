"""Fail fast when the database hangs (issue 11, item 5), on PostgreSQL behind a TCP proxy
(tests/tcp_proxy.py) that can stop answering: requests fail within the configured timeouts with
503 + Retry-After, /readyz answers 503 within 2 s, and everything recovers by itself when the
database answers again, without restarting the app. Runs whenever CITYOPS_TEST_DATABASE_URL is set."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from data_sources.store.db import Database, get_db, is_unavailable, normalise_url
from tests.conftest import PG_URL, build_app, pg_test_url, reset_postgres
from tests.integration.helpers import login
from tests.integration.test_api import client_for, make_case
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(not PG_URL, reason="PostgreSQL: set CITYOPS_TEST_DATABASE_URL to run (CI does)")

TIMEOUTS = {"DB_CONNECT_TIMEOUT": 2.0, "DB_STATEMENT_TIMEOUT": 2.0, "DB_POOL_TIMEOUT": 2.0}
#: the client's patience: every request must come back (with an answer) before this
CLIENT_TIMEOUT = 10.0
READY_WITHIN = 2.0


@pytest.fixture
def proxied():
    """(app, proxy): the app reaches its PostgreSQL database through the proxy."""
    url = pg_test_url()
    reset_postgres(url)
    u = make_url(normalise_url(url))
    proxy = TcpProxy(u.host or "127.0.0.1", u.port or 5432).start()
    app = build_app(u.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), **TIMEOUTS)
    yield app, proxy
    proxy.stop()
    get_db(app.server).dispose()


def _answer(pool: ThreadPoolExecutor, fn, *args, within: float = CLIENT_TIMEOUT, **kw):
    """fn(*args, **kw) in another thread; it must return within ``within`` seconds."""
    return pool.submit(fn, *args, **kw).result(timeout=within)


def _unavailable(resp) -> None:
    assert resp.status_code == 503, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert int(resp.headers["Retry-After"]) > 0


def _requests(server, name: str) -> list:
    """What clients do (each a callable answering a response), on a dispatched case and with users
    of their own (``name``: what the test calls them)."""
    cid = make_case(server, "dispatched", ext=f"{name}-1")
    bearer = client_for(server, f"{name}-disp", "dispatcher")
    cookie = login(server, f"{name}-cookie", "dispatcher")
    anon = server.test_client()
    return [
        lambda: bearer.get("/api/v1/incidents"),
        lambda: bearer.get(f"/api/v1/incidents/{cid}"),
        lambda: cookie.get("/api/v1/incidents?q=井盖"),
        lambda: cookie.post(f"/api/v1/incidents/{cid}/actions", json={"action": "sign", "version": 99}),
        lambda: bearer.post("/api/v1/feeds/hang-test/records?mapping=native",
                            json=[{"external_id": "H1", "title": "井盖", "category_code": "C0101",
                                   "reported_at": "2024-05-06 09:00", "lon": 120.1593, "lat": 30.2585}]),
        lambda: anon.get("/open311/v2/requests.json"),
    ]


def _all_recover(server, pool, calls) -> None:
    """After the database is back every request answers without a 5xx, soon and by itself."""
    deadline = time.monotonic() + 30
    pending = list(calls)
    while pending and time.monotonic() < deadline:
        pending = [c for c in pending if _answer(pool, c).status_code >= 500]
        if pending:
            time.sleep(0.5)
    assert not pending, [_answer(pool, c).get_data(as_text=True)[:200] for c in pending]
    ready = _answer(pool, server.test_client().get, "/readyz", within=READY_WITHIN)
    assert ready.status_code == 200, ready.get_json()


def test_a_database_that_stops_answering_gives_503_fast_and_recovers_by_itself(proxied):
    app, proxy = proxied
    server = app.server
    calls = _requests(server, "hang")
    with ThreadPoolExecutor(max_workers=8) as pool:
        _all_recover(server, pool, calls)        # warm: pooled connections exist

        proxy.hang()
        ready = _answer(pool, server.test_client().get, "/readyz", within=READY_WITHIN)
        assert ready.status_code == 503 and ready.get_json()["status"] == "unavailable"
        # every request at once (they do not share a connection: the pool has room for all of them), each
        # answered within the client's patience counted from when it was sent — what one request alone
        # must do, and none waits for another's timeout; twice, the second time on the connections the
        # first left behind
        for _ in range(2):
            sent = time.monotonic()
            for fut in [pool.submit(c) for c in calls]:
                _unavailable(fut.result(timeout=max(0.0, sent + CLIENT_TIMEOUT - time.monotonic())))
        ready = _answer(pool, server.test_client().get, "/readyz", within=READY_WITHIN)
        assert ready.status_code == 503

        proxy.resume()
        _all_recover(server, pool, calls)


def test_a_database_that_refuses_connections_gives_503_and_recovers_by_itself(proxied):
    app, proxy = proxied
    server = app.server
    calls = _requests(server, "down")
    with ThreadPoolExecutor(max_workers=4) as pool:
        _all_recover(server, pool, calls)
        proxy.stop()
        for call in calls:
            _unavailable(_answer(pool, call))
        assert _answer(pool, server.test_client().get, "/readyz", within=READY_WITHIN).status_code == 503
        proxy.start()
        _all_recover(server, pool, calls)


def test_a_statement_on_an_open_connection_that_gets_no_answer_fails_within_the_bound(proxied):
    app, proxy = proxied
    engine = get_db(app.server).engine
    with ThreadPoolExecutor(max_workers=1) as pool, engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
        proxy.hang()

        def run():
            try:
                conn.execute(text("SELECT 1"))
            except OperationalError as exc:
                return exc
            return None
        exc = _answer(pool, run)   # statement timeout + 1 s, then the connection is closed
        assert exc is not None and is_unavailable(exc)
    proxy.resume()


def test_the_server_cancels_a_statement_past_the_statement_timeout(proxied):
    app, _proxy = proxied
    with pytest.raises(OperationalError) as err, get_db(app.server).engine.connect() as conn:
        conn.execute(text("SELECT pg_sleep(5)"))
    assert "statement timeout" in str(err.value) and is_unavailable(err.value)
    # the connection was cancelled cleanly, not cut: the next statement on a pooled connection works
    with get_db(app.server).engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_the_timeouts_reach_the_connection(proxied):
    app, _proxy = proxied
    with get_db(app.server).engine.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "2s"
        raw = conn.connection.dbapi_connection
        params = raw.info.get_parameters()
        assert params["connect_timeout"] == "2" and params["tcp_user_timeout"] == "2000"
        assert params["keepalives"] == "1"


def test_an_app_without_timeouts_configured_is_unbounded_only_when_asked():
    """Tools and benchmarks build ``Database(url)`` without timeouts; the app always passes its config."""
    db = Database(pg_test_url())
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
    finally:
        db.dispose()
