"""Feed health (incidents.queries.feeds.feed_health, GET /api/v1/feeds) from hand-built cases and feed runs."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from data_sources.store.db import get_db
from incidents import auth
from incidents.queries.feeds import feed_health_rows
from incidents.tables import FeedRun, Incident, User
from tests.conftest import BACKENDS, build_app, database_url
from tests.integration.helpers import NOW

H, D = timedelta(hours=1), timedelta(days=1)


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    """One app per backend: every test writes its own feeds (sources), so they never mix."""
    app = build_app(database_url(request.param, tmp_path_factory.mktemp(request.param)))
    yield app.server
    get_db(app.server).dispose()


def add_cases(server, source: str, times: list[datetime]) -> None:
    with get_db(server).session_scope() as s:
        s.add_all([Incident(source=source, external_id=f"{source}-{i}", channel="iot", title="t",
                            state="reported", reported_at=t, updated_at=t) for i, t in enumerate(times)])


def usual_history(now: datetime, per_hour: int) -> list[datetime]:
    """``per_hour`` cases in the same hour on each of the last 7 days."""
    return [now - d * D - H + (i + 0.5) * H / per_hour for d in range(1, 8) for i in range(per_hour)]


def health(server, now: datetime = NOW) -> dict:
    with get_db(server).session_scope() as s:
        return {f.feed: f for f in feed_health_rows(s, now)}


def test_a_steady_feed_is_ok_with_its_usual_rate_and_lag(server):
    add_cases(server, "steady", usual_history(NOW, 6) + [NOW - m * timedelta(minutes=10) - timedelta(minutes=2)
                                                         for m in range(5)])
    f = health(server)["steady"]
    assert (f.status, f.last_hour, f.usual_hourly, f.usual_interval_seconds) == ("ok", 5, 6.0, 600.0)
    assert f.last_record_at == NOW - timedelta(minutes=2) and f.lag_seconds == 120.0
    assert f.runs_24h == 0 and f.reject_rate is None and f.last_error is None


def test_a_feed_is_late_after_three_usual_intervals_and_silent_after_seven(server):
    # usual 6 an hour = one every 10 minutes
    add_cases(server, "late", usual_history(NOW, 6) + [NOW - timedelta(minutes=35)])
    add_cases(server, "silent", usual_history(NOW, 6) + [NOW - timedelta(minutes=71)])
    add_cases(server, "thin", usual_history(NOW, 6) + [NOW - timedelta(minutes=1)])   # 1 of the usual 6
    add_cases(server, "nightly", [NOW - 3 * D - 5 * H])   # nothing usually arrives at this hour
    rows = health(server)
    assert rows["late"].status == "late" and rows["silent"].status == "silent"
    assert rows["thin"].status == "late" and rows["thin"].lag_seconds == 60.0
    assert rows["nightly"].status == "ok" and rows["nightly"].usual_hourly == 0
    assert rows["nightly"].lag_seconds == (3 * D + 5 * H).total_seconds()


def test_feed_runs_give_the_reject_rate_of_the_last_day_and_the_last_error(server):
    def run(feed, source, started, received, quarantined, status="ok", error=""):
        return FeedRun(feed=feed, source=source, started_at=started, finished_at=started + timedelta(minutes=1),
                       received=received, inserted=received - quarantined, quarantined=quarantined,
                       status=status, error=error)
    with get_db(server).session_scope() as s:
        s.add_all([run("nyc311", "nyc", NOW - 30 * H, 1000, 1000),                  # older than a day
                   run("nyc311", "nyc", NOW - 20 * H, 100, 5, "failed", "ValueError: bad header"),
                   run("nyc311", "nyc", NOW - 2 * H, 50, 10),
                   run("legacy", "", NOW - 50 * H, 10, 0, "failed", "OSError: gone")])
    rows = health(server)
    nyc = rows["nyc"]
    assert (nyc.runs_24h, nyc.received_24h, nyc.quarantined_24h) == (2, 150, 15)
    assert nyc.reject_rate == pytest.approx(0.1)
    assert nyc.last_error == "ValueError: bad header" and nyc.last_error_at == NOW - 20 * H + timedelta(minutes=1)
    assert nyc.last_run_status == "ok"
    assert nyc.last_record_at == NOW - 2 * H + timedelta(minutes=1)   # no cases: the last run's end
    legacy = rows["legacy"]                                          # a run without a source label
    assert legacy.runs_24h == 0 and legacy.reject_rate is None and legacy.last_run_status == "failed"
    assert legacy.last_error == "OSError: gone"
    # cases newer than the last run win
    add_cases(server, "nyc", [NOW - 30 * timedelta(minutes=1)])
    assert health(server)["nyc"].last_record_at == NOW - 30 * timedelta(minutes=1)


def test_every_role_reads_feed_health_through_the_api(server):
    now = datetime.now(timezone.utc)
    add_cases(server, "api-feed", [now - timedelta(minutes=3)])
    with get_db(server).session_scope() as s:
        s.add(User(username="feeds-viewer", display_name="v", password_hash="!", role="viewer",
                   active=True, created_at=now))
        s.flush()
        token = auth.create_token(s, "feeds-viewer", now=now)
    client = server.test_client()
    assert client.get("/api/v1/feeds").status_code == 401
    r = client.get("/api/v1/feeds", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.data
    item = {i["feed"]: i for i in r.get_json()["items"]}["api-feed"]
    assert item["status"] == "ok" and item["last_hour"] == 1 and item["last_record_at"].endswith("Z")
    assert 150 <= item["lag_seconds"] <= 240
    assert "/api/v1/feeds" in client.get("/api/v1/openapi.json",
                                         headers={"Authorization": f"Bearer {token}"}).get_json()["paths"]
