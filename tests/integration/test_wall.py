"""The wall's read model, alarms and their acknowledgement, kiosk access."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import auth, services
from incidents.queries import wall as queries_wall
from incidents.lifecycle import PermissionDenied
from incidents.model import Role
from incidents.services import Actor
from incidents.tables import AlarmAck
from tests.integration.helpers import NOW, count_statements

DISPATCHER = Actor("disp", Role.DISPATCHER)
TZ = "Asia/Shanghai"


def _case(s, rules, ext, *, priority="normal", lon=120.148, lat=30.256, at=NOW):
    return services.create_case(s, rules, source="test", external_id=ext, channel="12345", title=f"案件{ext}",
                                reported_at=at, now=at, category_code="E0101", lon=lon, lat=lat, priority=priority)


def _dispatched(s, rules, ext, at):
    c = _case(s, rules, ext, at=at)
    c = services.perform(s, rules, DISPATCHER, c.id, "register", version=c.version, now=at)
    return services.perform(s, rules, DISPATCHER, c.id, "dispatch", version=c.version, now=at)


@pytest.fixture
def city(server):
    """The wall's read model asks the city (pack, calendar) the app hands in, as a request would."""
    with server.app_context():
        yield


def test_the_wall_counts_today_lights_and_drills_into_a_district(server, city):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        _case(s, rules, "a")
        _case(s, rules, "b", lon=120.27, lat=30.18)                 # 萧山区
        late = _dispatched(s, rules, "late", NOW - timedelta(days=10))  # long overdue
        ok = _dispatched(s, rules, "ok", NOW - timedelta(minutes=10))
        dept = ok.department_code
        services.perform(s, rules, Actor("d", Role.DEPARTMENT, dept), ok.id, "sign", version=ok.version, now=NOW)
        s.flush()
        data = queries_wall.build(s, NOW, TZ)
        west = queries_wall.build(s, NOW, TZ, district="330106")
    assert data.today["reported"] == 3 and data.open_total == 4
    assert data.lights["red"] == 1 and data.lights["green"] == 1
    assert data.by_area == {"330106": 3, "330109": 1}
    assert sum(data.grid_counts.values()) == 4
    assert len(data.points) == 4 and {p["light"] for p in data.points} == {"red", "green", "none"}
    assert data.on_time.denominator == 1  # dispatched today ("ok"), not resolved yet
    assert west.open_total == 3 and set(west.by_area) <= set(data.grid_counts)
    assert all(code.startswith("330106") for code in west.by_area)
    assert any(a.kind == "red" and a.case_id == late.id for a in data.alarms) is False  # red 10 days ago: not new


def test_alarms_fold_and_an_acknowledged_alarm_shows_who_and_when(server, city):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        urgent = _case(s, rules, "u", priority="urgent", at=NOW - timedelta(minutes=5))
        for i in range(7):  # seven cases turning red in the last two hours: one folded line
            c = _dispatched(s, rules, f"r{i}", NOW - timedelta(days=3))
            c.deadline = NOW - timedelta(minutes=10 + i)
        s.flush()
        alarms = queries_wall.build(s, NOW, TZ).alarms
    kinds = [a.kind for a in alarms]
    assert kinds.count("red") == 1 and next(a for a in alarms if a.kind == "red").count == 7
    key = next(a.key for a in alarms if a.kind == "urgent" and a.case_id == urgent.id)
    with get_db(server).session_scope() as s:
        with pytest.raises(PermissionDenied):
            services.acknowledge_alarm(s, Actor("v", Role.VIEWER), key, NOW)
        assert services.acknowledge_alarm(s, DISPATCHER, key, NOW) is True
        assert services.acknowledge_alarm(s, Actor("x", Role.LEADER), key, NOW) is False  # recorded once
    with get_db(server).session_scope() as s:
        ack = s.get(AlarmAck, key)
        assert (ack.acked_by, ack.acked_at) == ("disp", NOW)
        shown = queries_wall.build(s, NOW, TZ).alarms
        acked = next(a for a in shown if a.key == key)
        assert (acked.acked_by, acked.acked_at) == ("disp", NOW) and shown[-1].key == key   # last, marked


def test_an_urgent_alarm_nobody_acknowledges_escalates_after_the_packs_minutes(server, city):
    rules = get_runtime(server).rules
    minutes = get_runtime(server).pack.wall.escalate_after_minutes
    assert minutes == 10
    with get_db(server).session_scope() as s:
        ignored = _case(s, rules, "ignored", priority="urgent")
        seen = _case(s, rules, "seen", priority="urgent")
        s.flush()

        def alarm(case, at):
            return next(a for a in queries_wall.build(s, at, TZ).alarms if a.case_id == case.id)
        before = NOW + timedelta(minutes=minutes) - timedelta(seconds=1)
        assert not alarm(ignored, before).escalated and not alarm(seen, before).escalated
        services.acknowledge_alarm(s, DISPATCHER, alarm(seen, NOW).key, NOW + timedelta(minutes=3))
        after = NOW + timedelta(minutes=minutes)
        assert alarm(ignored, after).escalated                         # unacknowledged for 10 minutes
        assert not alarm(seen, after).escalated and alarm(seen, after).acked_by == "disp"
        assert queries_wall.build(s, after, TZ).alarms[0].case_id == ignored.id     # the escalated first


def test_a_kiosk_url_opens_the_wall_read_only_and_revoking_ends_it(server):
    runner = server.test_cli_runner()
    out = runner.invoke(args=["create-kiosk", "hall-1"])
    assert out.exit_code == 0, out.output
    url = out.output.strip().splitlines()[-1]
    token = url.split("kiosk=")[1]
    client = server.test_client()
    first = client.get(f"/wall?kiosk={token}")                            # exchanged for a cookie and
    assert first.status_code == 302 and first.headers["Location"] == "/wall"  # dropped from the URL
    assert client.get("/wall").status_code == 200                          # the wall, no login page
    layout = client.get("/_dash-layout")
    assert layout.status_code == 200                                       # the session works for Dash
    assert "kiosk-hall-1" in layout.text or "hall-1" in layout.text
    assert not any(x in layout.text for x in ("logout-button", "lang-switch", "/logout"))   # nothing to press
    with get_db(server).session_scope() as s:
        user = auth.user_for_token(s, token)
        assert user.username == "kiosk-hall-1" and user.role == "viewer"
    assert runner.invoke(args=["revoke-token", "kiosk-hall-1"]).exit_code == 0
    assert client.get("/_dash-layout").status_code == 401                  # its session ended with the token
    client.get(f"/wall?kiosk={token}")
    assert client.get("/wall").headers["Location"].startswith("/login")    # and the URL no longer opens


def test_the_wall_answers_the_same_to_many_screens_from_one_computation(server):
    n = count_statements(server)
    with server.app_context():
        first = queries_wall.wall_data(NOW, TZ, every=5)
        cold = n["q"]
        for _ in range(50):
            assert queries_wall.wall_data(NOW, TZ, every=5) == first
    assert cold > 10 and n["q"] - cold == 50  # one data-version read per screen
    with get_db(server).session_scope() as s:
        assert s.scalar(select(AlarmAck).limit(1)) is None


def test_each_tile_has_its_comparison_and_a_rate_of_few_cases_says_so(server, city):
    """The tiles at any hour: today's counts beside the same time yesterday (by the same path: the
    wall's own figures a day earlier), rates beside the pack's target, and a rate over fewer cases
    than kpis.MIN_RATE_SAMPLE shown as 样本不足 rather than 0.0 %."""
    import json as _json
    from dashboards import wall as wall_page
    from incidents import kpis
    rules = get_runtime(server).rules
    day = timedelta(days=1)
    with get_db(server).session_scope() as s:
        for i in range(3):                                  # yesterday, before the same time
            _dispatched(s, rules, f"y{i}", NOW - day - timedelta(hours=1))
        _case(s, rules, "y-later", at=NOW - day + timedelta(hours=1))   # yesterday, after it: not counted
        _dispatched(s, rules, "t0", NOW - timedelta(minutes=30))
        s.flush()
        data = queries_wall.build(s, NOW, TZ)
        a_day_ago = queries_wall.build(s, NOW - day, TZ)
    y = data.yesterday
    assert (y["reported"], y["registered"], y["dispatched"]) == (3, 3, 3)
    assert {k: y[k] for k in ("reported", "registered", "dispatched", "closed")} == a_day_ago.today
    assert (y["closure"], y["on_time"], y["overdue"]) == (a_day_ago.closure, a_day_ago.on_time, a_day_ago.overdue)
    assert data.today["reported"] == 1 and data.targets["closure_rate"] == get_runtime(server).pack.kpi_targets["closure_rate"]
    with server.test_request_context():
        tiles = {_json.dumps(tile.children[0].to_plotly_json(), ensure_ascii=False): _json.dumps(
                 tile.to_plotly_json(), default=lambda o: o.to_plotly_json(), ensure_ascii=False)
                 for tile in wall_page._tiles(data)}

    def shown(label):
        return next(text for key, text in tiles.items() if label in key)
    assert "昨日同时 3" in shown("今日上报") and "▼2" in shown("今日上报")   # 1 today, 3 by this time yesterday
    assert data.closure.denominator < kpis.MIN_RATE_SAMPLE
    assert "样本不足" in shown("今日结案率") and "%" not in shown("今日结案率").split("title")[0]
    assert "目标" not in shown("今日结案率")                       # too few: no verdict against the target
    import dataclasses
    with server.test_request_context():
        enough = dataclasses.replace(data, closure=queries_wall.Ratio(12, 20))
        closure_tile = _json.dumps(wall_page._tiles(enough)[3].to_plotly_json(), default=lambda o: o.to_plotly_json(),
                                   ensure_ascii=False)
    assert "60.0%" in closure_tile and f"目标 ≥ {data.targets['closure_rate']:.0%}" in closure_tile
    assert '"tile warn"' in closure_tile                            # below its target


def test_the_feed_panel_folds_into_one_line_when_every_feed_is_well(server, city):
    import dataclasses
    from dashboards import wall as wall_page
    with get_db(server).session_scope() as s:
        data = queries_wall.build(s, NOW, TZ)
    well = {"feed": "demo", "status": "ok", "lag_seconds": 60.0, "last_hour": 12, "usual_hourly": 11.0,
            "reject_rate": None}
    with server.test_request_context():
        folded = wall_page._feeds(dataclasses.replace(data, feeds=[well, {**well, "feed": "12345"}]))
        rows = wall_page._feeds(dataclasses.replace(data, feeds=[well, {**well, "feed": "12345", "status": "late"}]))
    assert folded.className == "feeds-all-ok" and "2 个数据源全部正常：演示数据、12345" in str(folded.children)
    assert [r.className for r in rows] == ["feed-row ok", "feed-row late"]     # one late: every feed, row by row
