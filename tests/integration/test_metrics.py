"""/metrics (DESIGN §8): Prometheus text that the client library's own parser reads, requests counted
by url rule, Dash callbacks by output id, cache hits and misses, and the database figures equal to
the database; only an allowed address or the token may read it. On SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from data_sources.ingest import ingest
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents.tables import FeedRun, Incident, Quarantine
from tests.conftest import build_app, database_url
from tests.integration.helpers import login

TOKEN = "scrape-me-0123456789"
WEST_LAKE = (120.148, 30.256)


@pytest.fixture
def app(db_url):
    app = build_app(db_url, METRICS_TOKEN=TOKEN)
    yield app
    get_db(app.server).dispose()


def scrape(client, **kw) -> dict[tuple[str, tuple], float]:
    resp = client.get("/metrics", **kw)
    assert resp.status_code == 200, resp.data[:300]
    assert resp.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _seed_lights(app) -> dict[str, int]:
    """Six dispatched cases: 1 past its deadline (red), 2 past their warning (yellow), 3 green; one
    record refused into quarantine. Returns the expected counts by light."""
    db, rt = get_db(app.server), get_runtime(app.server)
    now = datetime.now(timezone.utc)
    recs = [({"external_id": f"M{i}", "title": f"占道经营 {i}", "category_code": "C0101",
              "reported_at": (now - timedelta(hours=2)).isoformat(), "lon": WEST_LAKE[0], "lat": WEST_LAKE[1],
              "state": "dispatched", "department_code": "330106-CGJ"}, i) for i in range(6)]
    recs.append(({"external_id": "M-bad", "title": "缺类别", "reported_at": now.isoformat(),
                  "lon": WEST_LAKE[0], "lat": WEST_LAKE[1]}, 7))
    ingest(db, rt.rules, rt.pack, recs, "native", now=now)
    colour = {"M0": "red", "M1": "yellow", "M2": "yellow"}
    with db.session_scope() as s:
        for inc in s.scalars(select(Incident).where(Incident.external_id.like("M%"))):
            light = colour.get(inc.external_id, "green")
            deadline = now - timedelta(minutes=5) if light == "red" else now + timedelta(hours=5)
            warn_at = now - timedelta(minutes=10) if light != "green" else now + timedelta(hours=4)
            s.execute(update(Incident).where(Incident.id == inc.id).values(deadline=deadline, warn_at=warn_at))
    return {"red": 1, "yellow": 2, "green": 3}


def test_a_scrape_parses_and_counts_the_route_just_called_by_its_url_rule(app):
    client = app.server.test_client()
    before = scrape(client)
    client.get("/healthz")
    client.get("/healthz")
    user = login(app.server, "m-disp", "dispatcher")
    assert user.get("/api/v1/incidents/999999").status_code == 404
    after = scrape(client)
    assert value(after, "cityops_http_requests_total", method="GET", route="/healthz", status="200") \
        - value(before, "cityops_http_requests_total", method="GET", route="/healthz", status="200") == 2
    routes = {dict(k[1]).get("route") for k in after if k[0] == "cityops_http_requests_total"}
    assert not any("999999" in (r or "") for r in routes)          # the rule, never the raw path
    assert any(r and r.startswith("/api/v1/incidents/<") for r in routes), routes
    assert value(after, "cityops_http_request_duration_seconds_count", method="GET", route="/healthz") >= 2


def test_the_database_figures_equal_the_database(app):
    expected = _seed_lights(app)
    samples = scrape(app.server.test_client())
    assert value(samples, "cityops_database_up") == 1
    assert {light: value(samples, "cityops_open_cases", light=light) for light in expected} == expected
    with get_db(app.server).session_scope() as s:
        runs = s.execute(select(FeedRun.feed, FeedRun.status, func.count()).group_by(FeedRun.feed, FeedRun.status)).all()
        held = s.execute(select(Quarantine.feed, Quarantine.status, func.count())
                         .group_by(Quarantine.feed, Quarantine.status)).all()
    assert runs and held
    for feed, status, n in runs:
        assert value(samples, "cityops_feed_runs", feed=feed, status=status) == n
    for feed, status, n in held:
        assert value(samples, "cityops_quarantine_records", feed=feed, status=status) == n
    assert value(samples, "cityops_db_pool_connections", state="size") >= 1


def test_callbacks_are_timed_by_their_output_id_and_cache_lookups_counted(app, monkeypatch):
    from incidents.queries.reference import department_names
    client = login(app.server, "m-lead", "leader")
    output = "..brief-body.children...brief-period-text.children...brief-pdf.href...brief-xlsx.href.."
    store = {"from": "2026-11-01T00:00:00+08:00", "to": "2026-12-01T00:00:00+08:00",
             "as_of": "2026-11-18T10:00:00+08:00", "preset": "month"}
    body = {"output": output, "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]}
                                          for o in output.strip(".").split("...")],
            "inputs": [{"id": "brief-period", "property": "data", "value": store}], "state": [],
            "changedPropIds": ["brief-period.data"]}
    client.get("/_dash-layout")
    before = scrape(client)
    assert client.post("/_dash-update-component", json=body).status_code == 200
    # a crafted output this app does not have is one label, whatever it says (Dash answers it with an error)
    monkeypatch.setitem(app.server.config, "PROPAGATE_EXCEPTIONS", False)
    client.post("/_dash-update-component", json={**body, "output": "made-up-id.children"})
    with app.server.app_context():
        department_names("metrics-test")
        department_names("metrics-test")
    after = scrape(client)
    count = "cityops_dash_callback_duration_seconds_count"
    assert value(after, count, output=output) - value(before, count, output=output) == 1
    assert value(after, count, output="<unknown>") - value(before, count, output="<unknown>") == 1
    assert not any(dict(k[1]).get("output") == "made-up-id.children" for k in after)
    fn = "incidents.queries.reference.department_names"
    cache = "cityops_cache_requests_total"
    assert value(after, cache, function=fn, result="miss") - value(before, cache, function=fn, result="miss") == 1
    assert value(after, cache, function=fn, result="hit") - value(before, cache, function=fn, result="hit") == 1


def test_only_an_allowed_address_or_the_token_may_scrape(app):
    outsider = app.server.test_client()
    far = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    assert outsider.get("/metrics", **far).status_code == 403
    assert outsider.get("/metrics", headers={"Authorization": "Bearer wrong"}, **far).status_code == 403
    assert outsider.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, **far).status_code == 200
    # a logged-in user from elsewhere is no scraper either
    user = login(app.server, "m-admin", "admin")
    assert user.get("/metrics", **far).status_code == 403
    # loopback is allowed by default, without a login
    assert outsider.get("/metrics").status_code == 200


def test_the_allow_list_takes_networks_and_can_be_emptied(tmp_path):
    url = database_url("sqlite", tmp_path)
    app = build_app(url, METRICS_ALLOW="10.0.0.0/8")
    try:
        client = app.server.test_client()
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
        assert client.get("/metrics").status_code == 403             # loopback is not on this list
    finally:
        get_db(app.server).dispose()
