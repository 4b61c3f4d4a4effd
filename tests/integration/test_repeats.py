"""重复诉求 (issue 16 item 1): candidate parents, linking child → parent (by hand and by itself),
closing a parent's repeats with it, the alarm of a place that complains again and again, and
重复诉求率 — on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy import select

from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import kpis, services
from incidents.lifecycle import PermissionDenied, ValidationFailed
from incidents.model import Role, State
from incidents.queries import kpi_facts
from incidents.queries.repeats import repeat_alarms
from incidents.services import Actor
from incidents.tables import Incident, IncidentEvent
from tests.integration.helpers import NOW
from tests.integration.test_api import client_for

DISPATCHER = Actor("disp", Role.DISPATCHER)
INSPECTOR = Actor("insp", Role.INSPECTOR)
LAKE = (120.1480, 30.2560)          # WGS84, inside 西湖区
M_LAT = 1 / 111_195                 # degrees of latitude per metre
GARBAGE = "E0101"                   # 暴露垃圾: the pack reaches 150 m and 72 h for 市容环境 (E01)


def add(s, rules, ext, *, north_m=0.0, hours=0.0, title="小区门口垃圾堆放没人清理", category=GARBAGE,
        description="", link=False, base=NOW):
    return services.create_case(s, rules, source="test", external_id=ext, channel="12345", title=title,
                                description=description, reported_at=base + timedelta(hours=hours),
                                now=base + timedelta(hours=hours), category_code=category,
                                lon=LAKE[0], lat=LAKE[1] + north_m * M_LAT, link_repeats=link)


def events_of(s, cid) -> list[IncidentEvent]:
    return list(s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == cid).order_by(IncidentEvent.id)))


def test_candidates_of_a_real_pair_are_found_and_ranked_with_their_score_parts(server):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        parent = add(s, rules, "parent", title="小区门口垃圾堆放没人清理", description="天天有人扔垃圾")
        other = add(s, rules, "other", north_m=120, hours=2, title="路边有一袋垃圾")
        child = add(s, rules, "child", north_m=20, hours=5, title="门口的垃圾一直没有人清理，臭味很大")
        found = services.repeat_candidates(s, rules, child)
        assert [c.id for c in found] == [parent.id, other.id]
        best = found[0]
        assert set(best.parts) == {"distance", "time", "text", "category"}
        assert best.distance_m == pytest.approx(20, abs=1) and best.hours == pytest.approx(5)
        assert best.parts["text"] > found[1].parts["text"]
        w = rules.repeats.weights
        assert best.score == pytest.approx(sum(w[k] * v for k, v in best.parts.items()) / sum(w.values()), abs=1e-3)


def test_no_candidate_across_the_radius_the_window_or_an_unrelated_category(server):
    rules = get_runtime(server).rules
    reach = rules.repeats.reach(GARBAGE, "E01")
    with get_db(server).session_scope() as s:
        add(s, rules, "far", north_m=reach.radius_m * 1.3)
        add(s, rules, "too-old", hours=-(reach.window_h + 1))
        add(s, rules, "later", hours=1)                             # reported after the new case: not its parent
        add(s, rules, "unrelated", category="C0201", title="小区门口路面破损")
        voided = add(s, rules, "voided", north_m=5)
        services.perform(s, rules, DISPATCHER, voided.id, "void", version=voided.version, now=NOW, reason="invalid")
        related = add(s, rules, "related", north_m=10, category="E0102")   # 积存垃圾渣土: same group in the pack
        new = add(s, rules, "new")
        found = services.repeat_candidates(s, rules, new)
    assert [c.id for c in found] == [related.id]
    assert found[0].parts["category"] == rules.repeats.related_factor


def test_a_dispatcher_links_in_one_action_and_a_department_or_a_crafted_post_is_refused(server):
    rules = get_runtime(server).rules
    db = get_db(server)
    with db.session_scope() as s:
        parent = add(s, rules, "parent")
        child = add(s, rules, "child", north_m=10, hours=1)
        grandchild = add(s, rules, "grandchild", north_m=12, hours=2)
        pid, cid, gid = parent.id, child.id, grandchild.id
    with db.session_scope() as s:
        with pytest.raises(PermissionDenied):
            services.perform(s, rules, Actor("dept", Role.DEPARTMENT, "x"), cid, "link_repeat", version=1,
                             now=NOW, duplicate_of=pid)
    with db.session_scope() as s:
        case = services.perform(s, rules, DISPATCHER, cid, "link_repeat", version=1, now=NOW + timedelta(hours=2),
                                duplicate_of=pid)
        assert (case.repeat_of, case.state, case.version) == (pid, State.REPORTED, 2)
        ev = events_of(s, cid)[-1]
        assert ev.action == "link_repeat" and ev.actor == "disp"
        assert ev.payload["parent"] == pid and ev.payload["auto"] is False and ev.payload["score"] > 0.5
        assert set(ev.payload["parts"]) == {"distance", "time", "text", "category"}
    with db.session_scope() as s:
        # a link to a repeat goes to its parent (links point at a root); a parent cannot become a repeat
        assert services.perform(s, rules, DISPATCHER, gid, "link_repeat", version=1, now=NOW,
                                duplicate_of=cid).repeat_of == pid
    with db.session_scope() as s, pytest.raises(ValidationFailed):
        services.perform(s, rules, DISPATCHER, pid, "link_repeat", version=1, now=NOW, duplicate_of=cid)
    # the API door asks the same rule: a department user's crafted POST is a 403, a dispatcher's works
    with db.session_scope() as s:
        other = add(s, rules, "other", north_m=8, hours=3)
        other = services.perform(s, rules, DISPATCHER, other.id, "register", version=1, now=NOW)
        other = services.perform(s, rules, DISPATCHER, other.id, "dispatch", version=2, now=NOW)
        oid, dept_code, version = other.id, other.department_code, other.version
    dept = client_for(server, "dept-user", "department", dept_code)         # the case is its own department's
    r = dept.post(f"/api/v1/incidents/{oid}/actions",
                  json={"action": "link_repeat", "version": version, "duplicate_of": pid})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
    seen = dept.get(f"/api/v1/incidents/{oid}/repeats").get_json()   # no other department's case shows there
    assert (seen["candidates"], seen["may_link"]) == ([], False)
    disp = client_for(server, "disp-user", "dispatcher")
    r = disp.post(f"/api/v1/incidents/{oid}/actions",
                  json={"action": "link_repeat", "version": version, "duplicate_of": pid})
    assert r.status_code == 200, r.get_json()
    view = disp.get(f"/api/v1/incidents/{pid}/repeats").get_json()
    assert {c["id"] for c in view["children"]} == {cid, gid, oid} and view["parent"] is None
    view = disp.get(f"/api/v1/incidents/{oid}/repeats").get_json()
    assert view["parent"]["id"] == pid and view["parent"]["auto"] is False


def test_a_new_case_above_the_packs_score_links_itself_as_automatic(server):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        parent = add(s, rules, "parent")
        same = add(s, rules, "same", north_m=5, hours=1, link=True)
        unlike = add(s, rules, "unlike", north_m=100, hours=40, title="有人在河边钓鱼", link=True)
        assert same.repeat_of == parent.id and same.version == 1      # nobody's open form goes stale
        ev = events_of(s, same.id)[-1]
        assert (ev.action, ev.actor, ev.payload["auto"]) == ("link_repeat", "system:repeats", True)
        assert ev.payload["score"] >= rules.repeats.auto_link_score
        assert unlike.repeat_of is None and [e.action for e in events_of(s, unlike.id)] == ["report"]
        # the same spot and minute, another complaint sharing a prefix: a candidate, never linked by itself
        other = add(s, rules, "other-complaint", north_m=1, title="小区门口垃圾堆放，井盖也坏了", link=True)
        assert other.repeat_of is None
    # through the API door (an intake door): the same rule
    disp = client_for(server, "disp-user", "dispatcher")
    r = disp.post("/api/v1/incidents", json={"source": "test", "external_id": "api-1", "channel": "12345",
                                             "title": "小区门口垃圾堆放没人清理", "category_code": GARBAGE,
                                             "lon": LAKE[0], "lat": LAKE[1] + 3 * M_LAT,
                                             "reported_at": (NOW + timedelta(hours=2)).isoformat()})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["timeline"][-1]["action"] == "link_repeat"


def _close(s, rules, cid):
    c = s.get(Incident, cid)
    t = NOW + timedelta(hours=1)
    for actor, action in ((DISPATCHER, "register"), (DISPATCHER, "dispatch"), (None, "sign"), (None, "resolve"),
                          (INSPECTOR, "verify_pass")):
        actor = actor or Actor("dept", Role.DEPARTMENT, c.department_code)
        t += timedelta(minutes=10)
        c = services.perform(s, rules, actor, cid, action, version=c.version, now=t)
    return c


def test_closing_a_parent_closes_its_open_repeats_each_on_its_own_timeline(server):
    rules = get_runtime(server).rules
    db = get_db(server)
    with db.session_scope() as s:
        parent = add(s, rules, "parent")
        kids = [add(s, rules, f"kid-{i}", north_m=5 + i, hours=1 + i) for i in range(3)]
        for k in kids:
            services.perform(s, rules, DISPATCHER, k.id, "link_repeat", version=k.version, now=NOW, duplicate_of=parent.id)
        services.perform(s, rules, DISPATCHER, kids[1].id, "register", version=kids[1].version, now=NOW)
        pid, ids = parent.id, [k.id for k in kids]
    with db.session_scope() as s, pytest.raises(ValidationFailed):     # not before the parent is closed
        services.close_children(s, rules, DISPATCHER, pid, reason="已随主件办结", now=NOW)
    with db.session_scope() as s:
        _close(s, rules, pid)
        _close(s, rules, ids[2])          # a child already closed on its own stays as it is
        before = [e.action for e in events_of(s, pid)]
    with db.session_scope() as s, pytest.raises(PermissionDenied):
        services.close_children(s, rules, INSPECTOR, pid, reason="x", now=NOW)
    disp = client_for(server, "disp-user", "dispatcher")
    r = disp.post(f"/api/v1/incidents/{pid}/repeats/close", json={"note": "已随主件办结"})
    assert r.status_code == 200, r.get_json()
    assert sorted(r.get_json()["closed"]) == ids[:2] and r.get_json()["skipped"] == {}
    with db.session_scope() as s:
        for cid in ids[:2]:
            c, last = s.get(Incident, cid), events_of(s, cid)[-1]
            assert c.state == State.VOIDED and c.duplicate_of == pid
            assert (last.action, last.note, last.payload["with_parent"]) == ("merge", "已随主件办结", pid)
        assert s.get(Incident, ids[2]).state == State.CLOSED
        assert [e.action for e in events_of(s, pid)] == before         # the parent's own timeline is its own


def test_three_repeats_at_one_grid_and_category_raise_one_alarm_on_the_wall_and_in_the_api(server):
    from incidents.queries.wall import build
    rules = get_runtime(server).rules
    db = get_db(server)
    base = datetime.now(timezone.utc) - timedelta(hours=6)     # GET /api/v1/alerts asks at the real clock
    with db.session_scope() as s:
        parent = add(s, rules, "parent", base=base)
        pid, grid, kids = parent.id, parent.grid_code, []
        for i in range(3):
            k = add(s, rules, f"kid-{i}", north_m=4 + i, hours=1 + i, base=base)
            services.perform(s, rules, DISPATCHER, k.id, "link_repeat", version=k.version, now=base,
                             duplicate_of=pid)
            kids.append(k.id)
            alarms = repeat_alarms(s, base + timedelta(hours=5), rules)
            assert len(alarms) == (1 if i == 2 else 0)
        a = alarms[0]
        assert (a.count, a.category_code, a.grid_code) == (3, GARBAGE, grid)
        assert set(a.cases) == {pid, *kids} and "30" in a.rule
        assert repeat_alarms(s, base + timedelta(days=31), rules) == []      # older than the pack's days
    with server.app_context(), db.session_scope() as s:                      # the wall ticker
        wall = build(s, base + timedelta(hours=5), "Asia/Shanghai")
    rep = [x for x in wall.alarms if x.kind == "repeat"]
    assert len(rep) == 1 and rep[0].count == 3 and set(rep[0].cases) == {pid, *kids}
    items = client_for(server, "disp-user", "dispatcher").get("/api/v1/alerts").get_json()["items"]
    assert [(x["kind"], x["count"], set(x["cases"]), x["place"]["grid_code"]) for x in items] == [
        ("repeat", 3, {pid, *kids}, grid)]


def test_repeat_rate_is_the_same_on_the_reference_and_the_fast_path(server):
    rules = get_runtime(server).rules
    db = get_db(server)
    with db.session_scope() as s:
        parent = add(s, rules, "parent", hours=-30)
        for i in range(6):
            k = add(s, rules, f"kid-{i}", north_m=3 * i, hours=-20 + 8 * i)
            if i % 2 == 0:    # every other one linked, at different instants
                services.perform(s, rules, DISPATCHER, k.id, "link_repeat", version=k.version,
                                 now=NOW + timedelta(hours=-19 + 8 * i), duplicate_of=parent.id)
        add(s, rules, "auto", north_m=2, hours=25, link=True)
    with db.session_scope() as s:
        cases = pd.DataFrame(s.execute(select(Incident.id, Incident.reported_at)).all(), columns=["id", "reported_at"])
        events = pd.DataFrame(s.execute(select(IncidentEvent.incident_id, IncidentEvent.action, IncidentEvent.at)).all(),
                              columns=["incident_id", "action", "at"])
        seen = set()
        for start_h, end_h, as_of_h in ((-48, 48, 48), (-48, 48, 0), (-10, 10, 30), (0, 24, 12), (20, 40, 26)):
            period = kpis.Period(NOW + timedelta(hours=start_h), NOW + timedelta(hours=end_h))
            as_of = NOW + timedelta(hours=as_of_h)
            ref = kpis.repeat_rate(cases, events, period, as_of)
            fast = kpi_facts.repeat_rate(s, period, as_of)
            assert (fast.numerator, fast.denominator, fast.value) == (ref.numerator, ref.denominator, ref.value)
            seen.add((ref.numerator, ref.denominator))
        assert len(seen) >= 4                    # the cases above tell the periods and instants apart
        assert "重复诉求率" in fast.formula and fast.name == "重复诉求率"
