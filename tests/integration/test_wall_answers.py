"""The wall's refresh answer is rendered once and shared by every screen that asks the same thing
(data_sources.web.answers); permission is checked on every request; answers go out compressed."""
from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone

import brotli
import pytest

from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import services
from incidents.model import Role
from tests.conftest import REDIS_URL, build_app
from tests.integration.helpers import count_statements, login

LAYERS = ["districts", "points"]
#: an hour-long refresh bucket: the requests of one test fall in the same bucket (a 5 s one would
#: be crossed now and then, and the second screen would rightly get a new answer)
EVERY = 3600.0


@pytest.fixture
def app(db_url):
    app = build_app(db_url, WALL_REFRESH_SECONDS=EVERY)
    yield app
    get_db(app.server).dispose()


def _body(app, *, layers=LAYERS, seen=None, district=None, scale=1.0) -> dict:
    key = next(k for k in app.callback_map if "wall-tiles.children" in k)
    outputs = [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in key.strip(".").split("...")]
    return {"output": key, "outputs": outputs,
            "inputs": [{"id": "wall-tick", "property": "n_intervals", "value": 3},
                       {"id": "wall-layers", "property": "value", "value": layers},
                       {"id": "wall-district", "property": "data", "value": district}],
            "state": [{"id": "wall-scale", "property": "data", "value": scale},
                      {"id": "wall-seen", "property": "data", "value": seen},
                      {"id": "wall-last-ok", "property": "data", "value": None}],
            "changedPropIds": ["wall-tick.n_intervals"]}


def _ask(client, app, encoding="", **body):
    return client.post("/_dash-update-component", json=_body(app, **body), headers={"Accept-Encoding": encoding})


def _answer(resp) -> dict:
    raw = resp.data
    enc = resp.headers.get("Content-Encoding")
    raw = gzip.decompress(raw) if enc == "gzip" else brotli.decompress(raw) if enc == "br" else raw
    return json.loads(raw)["response"]


def _text(part) -> str:
    return json.dumps(part, ensure_ascii=False)


@pytest.fixture
def renders(app, monkeypatch):
    return _count_renders(monkeypatch)


def _count_renders(monkeypatch) -> list:
    """Counts the wall's renderings (the refresh callback's view function); after an app is built."""
    import dashboards.wall as page
    calls = []
    real = page.render

    def counted(*args, **kw):
        calls.append(args[2])
        return real(*args, **kw)
    monkeypatch.setattr(page, "render", counted)
    return calls


def _new_case(server, ext: str, **kw):
    now = datetime.now(timezone.utc) - timedelta(minutes=61)   # before the refresh bucket's start
    with get_db(server).session_scope() as s:
        services.create_case(s, get_runtime(server).rules, source="t", external_id=ext, channel="12345",
                             title=f"新案件{ext}", reported_at=now, now=now, category_code="E0101",
                             lon=120.15, lat=30.25, **kw)


def test_two_screens_asking_the_same_refresh_cost_one_rendering(app, renders):
    server = app.server
    _new_case(server, "1")
    one, two = login(server, "hall-1", "viewer"), login(server, "hall-2", "viewer")
    first = _ask(one, app)
    statements = count_statements(server)
    second = _ask(two, app)
    assert first.status_code == second.status_code == 200
    assert len(renders) == 1                       # the second screen got the first one's answer
    assert statements["q"] <= 3                    # its user and the data version, no wall SQL
    assert second.data == first.data
    tiles = _text(_answer(second)["wall-tiles"])
    assert "在办案件" in tiles


def test_screens_that_saw_different_answers_each_get_what_they_need(app, renders):
    server = app.server
    one, two = login(server, "hall-1", "viewer"), login(server, "hall-2", "viewer")
    seen = _answer(_ask(one, app))["wall-seen"]["data"]
    idle = _answer(_ask(two, app, seen=seen))           # nothing changed since: only the time line
    assert set(idle) == {"wall-updated", "wall-banner", "wall-last-ok"}
    _new_case(server, "2")
    stale = _answer(_ask(one, app, seen=seen))          # both saw an older version: the same patch
    also = _answer(_ask(two, app, seen=seen))
    assert stale == also and "wall-map" in stale and stale["wall-seen"]["data"]["version"] > seen["version"]
    assert len(renders) == 3                             # full, idle, patch: one rendering each


def test_while_one_screen_computes_a_new_answer_the_others_get_the_latest_at_once(app, renders, monkeypatch):
    import threading
    import dashboards.wall as page
    server = app.server
    one, two = login(server, "hall-1", "viewer"), login(server, "hall-2", "viewer")
    before = _ask(one, app)
    _new_case(server, "4")
    computing, release = threading.Event(), threading.Event()
    counted = page.render

    def slow(*args, **kw):
        computing.set()
        release.wait(10)
        return counted(*args, **kw)
    monkeypatch.setattr(page, "render", slow)
    got = {}
    worker = threading.Thread(target=lambda: got.setdefault("new", _ask(one, app)))
    worker.start()
    assert computing.wait(10)
    meanwhile = _ask(two, app)                       # the same question while it is being computed
    release.set()
    worker.join(10)
    assert meanwhile.data == before.data             # the latest answer, at once
    assert _answer(got["new"])["wall-seen"]["data"]["version"] > _answer(before)["wall-seen"]["data"]["version"]
    assert _ask(two, app).data == got["new"].data     # and the new one from the next poll on
    assert len(renders) == 2


def test_a_data_change_yields_a_new_answer(app, renders):
    server = app.server
    screen = login(server, "hall-1", "viewer")
    before = _answer(_ask(screen, app))
    _new_case(server, "3")
    after = _answer(_ask(screen, app))
    assert len(renders) == 2
    assert after["wall-seen"]["data"]["version"] > before["wall-seen"]["data"]["version"]
    assert after["wall-tiles"] != before["wall-tiles"]


def test_another_language_layer_set_or_role_gets_its_own_answer(app, renders):
    server = app.server
    _new_case(server, "u", priority="urgent")           # an alarm in the ticker
    viewer = login(server, "hall-1", "viewer")
    zh = _answer(_ask(viewer, app))
    english = login(server, "hall-2", "viewer")
    english.get("/wall?lang=en")
    en = _answer(_ask(english, app))
    assert "Open cases" in _text(en["wall-tiles"]) and "在办案件" in _text(zh["wall-tiles"])
    fewer = _answer(_ask(viewer, app, layers=["districts"]))
    assert fewer["wall-map"] != zh["wall-map"]
    dispatcher = login(server, "disp", "dispatcher")    # may acknowledge alarms: the ticker has buttons
    ack = _answer(_ask(dispatcher, app))
    assert '"ack"' in _text(ack["wall-recent"]) and '"ack"' not in _text(zh["wall-recent"])
    assert len(renders) == 4


def test_a_caller_without_permission_is_refused_even_when_the_answer_is_cached(app, renders, monkeypatch):
    from dashboards import _components
    server = app.server
    viewer, inspector = login(server, "hall-1", "viewer"), login(server, "insp", "inspector")
    assert _ask(viewer, app).status_code == 200          # cached now
    assert _ask(server.test_client(), app).status_code == 401   # nobody logged in
    monkeypatch.setitem(_components.PAGE_ROLES, "wall", frozenset({Role.INSPECTOR}))   # viewers lose the wall
    refused = _ask(viewer, app)
    assert refused.status_code == 204 and refused.data == b""   # no answer, cached or not
    assert _ask(inspector, app).status_code == 200       # the same answer, still cached, for who may see it
    assert len(renders) == 1


def test_a_crafted_request_cannot_replace_the_answer_every_screen_gets(app):
    server = app.server
    crafted, screen = login(server, "hall-1", "viewer"), login(server, "hall-2", "viewer")
    body = _body(app)
    body["outputs"] = [dict(o, id="x-" + o["id"]) for o in body["outputs"]]   # answers for other ids
    crafted.post("/_dash-update-component", json=body)   # (Dash refuses it; and its key is its own)
    assert "wall-tiles" in _answer(_ask(screen, app))


def test_a_stale_banner_is_for_its_own_screen_alone(app, monkeypatch):
    from incidents.queries import wall as queries_wall
    screen = login(app.server, "hall-1", "viewer")
    real = queries_wall.wall_data

    def away(*_a, **_k):
        raise queries_wall.Unavailable("OperationalError")
    monkeypatch.setattr(queries_wall, "wall_data", away)   # the version was read, then the database went
    stale = _answer(_ask(screen, app))
    assert stale["wall-banner"]["className"] == "wall-banner stale" and "wall-tiles" not in stale
    monkeypatch.setattr(queries_wall, "wall_data", real)
    assert "wall-tiles" in _answer(_ask(screen, app))        # not the banner kept for everyone


def test_answers_are_compressed_when_the_client_accepts_it(app):
    server = app.server
    screen = login(server, "hall-1", "viewer")
    plain = _ask(screen, app)
    zipped = _ask(screen, app, "gzip, deflate")
    smaller = _ask(screen, app, "gzip, deflate, br")
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped.data) == plain.data
    assert smaller.headers["Content-Encoding"] == "br" and brotli.decompress(smaller.data) == plain.data
    assert len(zipped.data) < len(plain.data) / 3 and "Accept-Encoding" in zipped.headers["Vary"]
    api = screen.get("/api/v1/categories", headers={"Accept-Encoding": "gzip"})
    assert api.headers["Content-Encoding"] == "gzip" and json.loads(gzip.decompress(api.data))
    layout = screen.get("/_dash-layout", headers={"Accept-Encoding": "gzip"})
    assert layout.headers["Content-Encoding"] == "gzip"


def test_with_redis_the_answer_is_kept_where_every_worker_reads_it(tmp_path, monkeypatch):
    if not REDIS_URL:
        pytest.skip("Redis: set CITYOPS_TEST_REDIS_URL (CI does)")
    import redis
    store = redis.Redis.from_url(REDIS_URL)
    store.flushdb()
    app = build_app(f"sqlite:///{tmp_path / 'w.db'}", CACHE_URL=REDIS_URL, WALL_REFRESH_SECONDS=EVERY)
    renders = _count_renders(monkeypatch)
    a = _ask(login(app.server, "hall-1", "viewer"), app, "gzip")
    assert len([k for k in store.scan_iter("*answer:*")]) == 3    # identity, gzip and brotli bodies
    b = _ask(login(app.server, "hall-2", "viewer"), app, "gzip")
    assert a.status_code == b.status_code == 200 and a.data == b.data
    assert len(renders) == 1


def test_the_wall_reads_through_a_pool_of_its_own_and_leaves_the_write_pool_to_writes(app):
    from sqlalchemy import event
    from incidents.queries import wall as queries_wall
    db = get_db(app.server)
    assert db.read_engine is not db.engine and db.read_engine.pool.size() == 4   # DB_READ_POOL_SIZE
    sent = {"write": 0, "read": 0}
    event.listen(db.engine, "before_cursor_execute", lambda *a, **k: sent.__setitem__("write", sent["write"] + 1))
    event.listen(db.read_engine, "before_cursor_execute", lambda *a, **k: sent.__setitem__("read", sent["read"] + 1))
    with app.server.app_context():
        queries_wall.wall_data(datetime.now(timezone.utc), "Asia/Shanghai", every=EVERY)
    assert sent["write"] == 0 and sent["read"] > 10
