"""Requests and approvals (DESIGN §3, issue 11): a department's extend / suspend is a request that a
dispatcher approves or rejects; only an approved request moves the deadline or stops the clock.
Through the services, the REST API and the workbench's callback, on SQLite and PostgreSQL."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import services
from incidents.queries import brief as brief_queries, cases as case_queries
from incidents.lifecycle import NotFound, PermissionDenied, StaleVersion, ValidationFailed
from incidents.model import Role, State
from incidents.services import Actor
from incidents.tables import CaseRequest, Incident, IncidentEvent
from tests.integration.helpers import NOW

DEPT = "330106-CGJ"                       # 西湖区城市管理局
DISPATCHER = Actor("disp", Role.DISPATCHER)
DEPT_USER = Actor("dept-user", Role.DEPARTMENT, DEPT)
WEST_LAKE = (120.1480, 30.2560)


def dispatched_case(server, ext: str = "A-1", *, at: datetime = NOW, signed: bool = True) -> int:
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        case = services.create_case(s, rules, source="test", external_id=ext, channel="12345", title="占道经营",
                                    reported_at=at, now=at, category_code="E0101",
                                    lon=WEST_LAKE[0], lat=WEST_LAKE[1])
        case = services.perform(s, rules, DISPATCHER, case.id, "register", version=case.version, now=at)
        case = services.perform(s, rules, DISPATCHER, case.id, "dispatch", version=case.version, now=at,
                                department=DEPT)
        if signed:
            case = services.perform(s, rules, DEPT_USER, case.id, "sign", version=case.version, now=at)
        return case.id


def act(server, actor, cid, action, *, at=NOW, **kw) -> services.Outcome:
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        version = s.get(Incident, cid).version
        out = services.act(s, rules, actor, cid, action, version=kw.pop("version", version), now=at, **kw)
        s.expunge_all()
        return out


def look(server, cid) -> dict:
    with get_db(server).session_scope() as s:
        c = s.get(Incident, cid)
        events = s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == cid).order_by(IncidentEvent.id)).all()
        reqs = s.scalars(select(CaseRequest).where(CaseRequest.incident_id == cid).order_by(CaseRequest.id)).all()
        return {"state": c.state, "version": c.version, "deadline": c.deadline, "warn_at": c.warn_at,
                "extension_count": c.extension_count, "extension_hours": c.extension_hours,
                "suspended_at": c.suspended_at, "state_before_suspend": c.state_before_suspend,
                "events": [(e.action, e.actor, e.from_state, e.to_state, dict(e.payload or {})) for e in events],
                "requests": [(r.id, r.kind, r.status, r.hours, r.requested_by, r.decided_by) for r in reqs]}


CASE_COLUMNS = ("state", "deadline", "warn_at", "extension_count", "extension_hours", "suspended_at")


def facts(d: dict) -> tuple:
    return tuple(d[k] for k in CASE_COLUMNS)


# --------------------------------------------------------------------------- services

def test_a_department_extend_is_a_request_until_a_dispatcher_approves_it(server):
    cid = dispatched_case(server)
    before = look(server, cid)
    later = NOW + timedelta(hours=1)
    out = act(server, DEPT_USER, cid, "extend", at=later, hours=8, note="需协调燃气公司")
    after_request = look(server, cid)
    assert facts(after_request) == facts(before)                  # deadline and counters unchanged
    assert after_request["version"] == before["version"] + 1     # the case changed: its timeline did
    rid = out.request.id
    assert after_request["requests"] == [(rid, "extend", "pending", 8.0, "dept-user", None)]
    action, actor, frm, to, payload = after_request["events"][-1]
    assert (action, actor, frm, to) == ("request", "dept-user", "in_progress", "in_progress")
    assert payload == {"kind": "extend", "hours": 8.0, "case_request_id": rid}

    out = act(server, DISPATCHER, cid, "approve", at=later + timedelta(minutes=5), case_request_id=rid, note="同意")
    after = look(server, cid)
    assert out.request.status == "approved" and out.case.state == State.IN_PROGRESS
    assert after["extension_count"] == 1 and after["extension_hours"] == 8.0
    assert after["deadline"] > before["deadline"] and after["warn_at"] > before["warn_at"]
    assert after["requests"] == [(rid, "extend", "approved", 8.0, "dept-user", "disp")]
    action, actor, frm, to, payload = after["events"][-1]
    assert (action, actor, frm, to) == ("approve", "disp", "in_progress", "in_progress")
    assert payload == {"kind": "extend", "hours": 8.0, "requested_by": "dept-user", "case_request_id": rid}


def test_an_approved_extension_moves_the_deadline_as_a_dispatchers_own_extend_does(server):
    asked, direct = dispatched_case(server, "A-1"), dispatched_case(server, "A-2")
    rid = act(server, DEPT_USER, asked, "extend", hours=6).request.id
    act(server, DISPATCHER, asked, "approve", case_request_id=rid)
    out = act(server, DISPATCHER, direct, "extend", hours=6)            # applies at once, no request
    assert out.request is None
    a, b = look(server, asked), look(server, direct)
    assert (a["deadline"], a["extension_count"]) == (b["deadline"], b["extension_count"]) == (b["deadline"], 1)
    assert b["requests"] == []


def test_a_rejected_request_changes_nothing_but_its_status(server):
    cid = dispatched_case(server)
    before = look(server, cid)
    rid = act(server, DEPT_USER, cid, "suspend", reason="funding", note="待上级审批资金").request.id
    with pytest.raises(ValidationFailed, match="reason"):
        act(server, DISPATCHER, cid, "reject", case_request_id=rid)          # a rejection says why
    out = act(server, DISPATCHER, cid, "reject", case_request_id=rid, note="请先处置再申请")
    after = look(server, cid)
    assert out.request.status == "rejected"
    assert facts(after) == facts(before) and after["state"] == "in_progress"
    assert after["requests"] == [(rid, "suspend", "rejected", None, "dept-user", "disp")]
    assert [e[:2] for e in after["events"][-2:]] == [("request", "dept-user"), ("reject", "disp")]
    assert after["events"][-1][4]["requested_by"] == "dept-user"


def test_an_approved_suspension_stops_the_clock(server):
    cid = dispatched_case(server)
    rid = act(server, DEPT_USER, cid, "suspend", note="等待管线迁改").request.id
    assert look(server, cid)["state"] == "in_progress"
    later = NOW + timedelta(minutes=30)
    act(server, DISPATCHER, cid, "approve", at=later, case_request_id=rid)
    after = look(server, cid)
    assert after["state"] == "suspended" and after["suspended_at"] == later
    assert after["state_before_suspend"] == "in_progress"
    assert after["events"][-1][:4] == ("approve", "disp", "in_progress", "suspended")


def test_who_may_decide_and_what_can_be_decided(server):
    cid, other = dispatched_case(server, "A-1"), dispatched_case(server, "A-2")
    rid = act(server, DEPT_USER, cid, "extend", hours=4).request.id
    with pytest.raises(ValidationFailed, match="already has a pending 'extend'"):
        act(server, DEPT_USER, cid, "extend", hours=2)              # at most one pending of a kind
    act(server, DEPT_USER, cid, "suspend", note="等待").request      # another kind may wait beside it
    for role in (Role.DEPARTMENT, Role.LEADER, Role.INSPECTOR, Role.VIEWER, Role.ADMIN):
        with pytest.raises(PermissionDenied):
            act(server, Actor("x", role, DEPT), cid, "approve", case_request_id=rid)
    with pytest.raises(ValidationFailed, match="case_request_id"):
        act(server, DISPATCHER, cid, "approve")
    with pytest.raises(NotFound):
        act(server, DISPATCHER, cid, "approve", case_request_id=999999)
    with pytest.raises(ValidationFailed, match=f"belongs to case {cid}"):
        act(server, DISPATCHER, other, "approve", case_request_id=rid)
    with pytest.raises(StaleVersion):
        act(server, DISPATCHER, cid, "approve", case_request_id=rid, version=1)
    act(server, DISPATCHER, cid, "approve", case_request_id=rid)
    snapshot = look(server, cid)
    with pytest.raises(ValidationFailed, match="no longer pending: approved by disp"):
        act(server, DISPATCHER, cid, "approve", case_request_id=rid)
    with pytest.raises(ValidationFailed, match="no longer pending"):
        act(server, DISPATCHER, cid, "reject", case_request_id=rid, note="x")
    assert look(server, cid) == snapshot and snapshot["extension_count"] == 1


def test_a_request_the_case_has_outgrown_cannot_be_approved(server):
    cid = dispatched_case(server)
    rid = act(server, DEPT_USER, cid, "extend", hours=4).request.id
    act(server, DEPT_USER, cid, "resolve", note="已处置")
    before = look(server, cid)
    with pytest.raises(ValidationFailed, match="can no longer be approved"):
        act(server, DISPATCHER, cid, "approve", case_request_id=rid)
    assert look(server, cid) == before
    act(server, DISPATCHER, cid, "reject", case_request_id=rid, note="已反馈，无需延期")
    assert look(server, cid)["requests"][0][2] == "rejected"
    # and a department cannot ask for what the state does not allow
    closed_for_asking = dispatched_case(server, "A-3")
    act(server, DEPT_USER, closed_for_asking, "resolve", note="ok")
    from incidents.lifecycle import TransitionError
    with pytest.raises(TransitionError):
        act(server, DEPT_USER, closed_for_asking, "extend", hours=2)


def test_the_workbench_detail_offers_requests_and_decisions_by_role(server):
    cid = dispatched_case(server)
    rid = act(server, DEPT_USER, cid, "extend", hours=4).request.id
    with server.app_context():
        rules = get_runtime(server).rules
        dept = case_queries.case_detail(NOW, cid, rules=rules, role="department", department_code=DEPT)
        disp = case_queries.case_detail(NOW, cid, rules=rules, role="dispatcher", department_code=None)
        pend = case_queries.queue_page(NOW, view="pending_approval", role="dispatcher", end=100)
        todo = case_queries.queue_page(NOW, view="my_todo", role="dispatcher", end=100)
    assert set(dept["actions"]) == {"resolve", "return", "suspend", "contact"}        # extend: already asked
    assert dept["request_only"] == ["suspend"] and not dept["may_decide"]
    assert [(r["id"], r["status"]) for r in dept["requests"]] == [(rid, "pending")]
    assert {"approve", "reject", "extend"} <= set(disp["actions"]) and disp["may_decide"]
    assert [r["id"] for r in pend.rows] == [cid] and pend.rows[0]["requests"][0]["hours"] == 4.0
    assert cid in {r["id"] for r in todo.rows}


# --------------------------------------------------------------------------- REST API

def _client(server, username, role, dept=None):
    from tests.integration.test_api import client_for
    return client_for(server, username, role, dept)


def test_the_approval_flow_through_the_api(server):
    now = datetime.now(timezone.utc)
    cid = dispatched_case(server, at=now - timedelta(hours=1))
    dept, disp = _client(server, "api-dept", "department", DEPT), _client(server, "api-disp", "dispatcher")
    before = disp.get(f"/api/v1/incidents/{cid}").get_json()
    r = dept.post(f"/api/v1/incidents/{cid}/actions",
                  json={"action": "extend", "version": before["version"], "hours": 8, "note": "协调中"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["state"] == "in_progress" and body["deadline"] == before["deadline"]
    req = body["case_request"]
    assert (req["kind"], req["status"], req["hours"], req["requested_by"]) == ("extend", "pending", 8.0, "api-dept")
    d = dept.get(f"/api/v1/incidents/{cid}").get_json()
    assert d["counters"]["extensions"] == 0 and d["deadline"] == before["deadline"]
    assert [x["id"] for x in d["requests"]] == [req["id"]] and d["requests"][0]["status"] == "pending"
    assert "extend" not in d["actions"] and "approve" not in d["actions"]
    assert d["timeline"][-1]["action"] == "request" and d["timeline"][-1]["actor"] == "api-dept"

    # the department may not approve its own request
    r = dept.post(f"/api/v1/incidents/{cid}/actions",
                  json={"action": "approve", "version": d["version"], "case_request_id": req["id"]})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"

    d = disp.get(f"/api/v1/incidents/{cid}").get_json()
    assert {"approve", "reject"} <= set(d["actions"])
    r = disp.post(f"/api/v1/incidents/{cid}/actions",
                  json={"action": "approve", "version": d["version"], "case_request_id": req["id"], "note": "同意"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["case_request"]["status"] == "approved" and r.get_json()["deadline"] > before["deadline"]
    d = disp.get(f"/api/v1/incidents/{cid}").get_json()
    assert d["counters"]["extensions"] == 1 and d["counters"]["extension_hours"] == 8.0
    assert d["requests"][0]["status"] == "approved" and d["requests"][0]["decided_by"] == "api-disp"
    ev = d["timeline"][-1]
    assert (ev["action"], ev["actor"]) == ("approve", "api-disp")
    assert ev["payload"]["requested_by"] == "api-dept" and ev["payload"]["case_request_id"] == req["id"]

    # approving twice: a clear 422 naming the field, nothing changes
    r = disp.post(f"/api/v1/incidents/{cid}/actions",
                  json={"action": "approve", "version": d["version"], "case_request_id": req["id"]})
    assert r.status_code == 422
    err = r.get_json()["error"]
    assert err["code"] == "invalid" and err["field"] == "case_request_id" and "no longer pending" in err["message"]
    assert disp.get(f"/api/v1/incidents/{cid}").get_json()["version"] == d["version"]
    # a stale version answers 409 as for every action; an unknown request 404
    r = disp.post(f"/api/v1/incidents/{cid}/actions",
                  json={"action": "reject", "version": 1, "case_request_id": req["id"], "note": "x"})
    assert r.status_code == 409
    r = disp.post(f"/api/v1/incidents/{cid}/actions",
                  json={"action": "approve", "version": d["version"], "case_request_id": 987654})
    assert r.status_code == 404


def test_a_rejection_through_the_api_leaves_the_clock_running(server):
    now = datetime.now(timezone.utc)
    cid = dispatched_case(server, at=now - timedelta(hours=1))
    dept, disp = _client(server, "api-dept", "department", DEPT), _client(server, "api-disp", "dispatcher")
    v = disp.get(f"/api/v1/incidents/{cid}").get_json()["version"]
    r = dept.post(f"/api/v1/incidents/{cid}/actions", json={"action": "suspend", "version": v, "reason": "funding"})
    assert r.status_code == 200 and r.get_json()["state"] == "in_progress"
    rid = r.get_json()["case_request"]["id"]
    r = disp.post(f"/api/v1/incidents/{cid}/actions",
                  json={"action": "reject", "version": r.get_json()["version"], "case_request_id": rid, "note": "不予挂账"})
    assert r.status_code == 200 and r.get_json()["state"] == "in_progress"
    d = disp.get(f"/api/v1/incidents/{cid}").get_json()
    assert d["state"] == "in_progress" and d["suspended_at"] is None and d["light"] is not None
    assert d["requests"][0]["status"] == "rejected" and d["requests"][0]["decision_note"] == "不予挂账"


def test_the_openapi_document_names_the_request_field(server):
    doc = _client(server, "viewer", "viewer").get("/api/v1/openapi.json").get_json()
    props = doc["components"]["schemas"]["ActionRequest"]["properties"]
    assert "case_request_id" in props and "approve" in props["case_request_id"]["description"]
    assert "approve" in json.dumps(props["action"]) or "approve" in json.dumps(doc["components"]["schemas"]["Action"])
    assert "requests" in doc["components"]["schemas"]["IncidentDetail"]["properties"]


# --------------------------------------------------------------------------- KPIs

def test_the_extension_rate_counts_approved_extensions_only(server):
    at = NOW - timedelta(hours=2)
    approved, rejected, pending, direct, plain = (dispatched_case(server, f"K-{i}", at=at) for i in range(5))
    rid = act(server, DEPT_USER, approved, "extend", at=at, hours=4).request.id
    act(server, DISPATCHER, approved, "approve", at=at + timedelta(minutes=1), case_request_id=rid)
    rid = act(server, DEPT_USER, rejected, "extend", at=at, hours=4).request.id
    act(server, DISPATCHER, rejected, "reject", at=at + timedelta(minutes=1), case_request_id=rid, note="no")
    act(server, DEPT_USER, pending, "extend", at=at, hours=4)
    act(server, DISPATCHER, direct, "extend", at=at, hours=4)
    start, end = NOW - timedelta(days=1), NOW + timedelta(days=1)
    with server.app_context():
        k = brief_queries.kpi_report(start, end, NOW).kpis["extension_rate"]
        by_dept = brief_queries.kpi_report(start, end, NOW, group_by="department").groups[DEPT]["extension_rate"]
    assert (k.numerator, k.denominator) == (2, 5)         # the approved request + the dispatcher's own
    assert k.value == pytest.approx(0.4)
    assert (by_dept.numerator, by_dept.denominator) == (2, 5)
    # the deadline the KPI engine rebuilds from the events agrees with the case's (an approve counts
    # as the extend it approved, the request and the rejection count for nothing)
    from incidents import kpis
    rt = get_runtime(server)
    with server.app_context(), get_db(server).session_scope() as s:
        cases, events, _ = brief_queries.load_kpi_frames(s, start, end, NOW, priority_factors=rt.pack.priority_factors,
                                                   hours_per_day=rt.calendar.hours_per_day, tz=rt.pack.timezone)
        before = kpis._facts(cases, events, kpis.Period(start, end), NOW, rt.calendar)[1]
        stored = {cid: s.get(Incident, cid).deadline for cid in (approved, rejected, pending, direct)}
    base = cases.set_index("id")
    for cid, deadline in stored.items():
        g = before[before["incident_id"] == cid]
        rebuilt = kpis.deadline_in_force(zip(g["action"], (t.to_pydatetime() for t in g["at"]), g["from_state"],
                                             g["hours"]), base.loc[cid, "base_hours"], bool(base.loc[cid, "natural"]),
                                         rt.calendar)
        assert rebuilt == deadline, cid


# --------------------------------------------------------------------------- the workbench

def _workbench(server, who: tuple, pending: dict, seen: dict, note: str = "", hours=None) -> tuple[str, str]:
    """What the case panel's confirm button does (``_case.confirm_action``): the role guard, then
    ``run_action`` → ``commands.act`` → ``services.act``, as the logged-in user ``who``."""
    from flask_login import login_user
    from dashboards import _case
    from data_sources.web.gate import SessionUser
    with server.test_request_context("/_dash-update-component", method="POST"):
        login_user(SessionUser(*who))
        _case.guard_actions()
        return _case.run_action(pending, seen, dict(reason=None, note=note, hours=hours, dept=None, dup=None,
                                                    level=None))


def test_the_approval_flow_through_the_workbench(server):
    cid = dispatched_case(server, at=datetime.now(timezone.utc) - timedelta(hours=1))
    before = look(server, cid)
    dept = (101, "wb-dept", Role.DEPARTMENT, DEPT, "wb-dept")
    disp = (102, "wb-disp", Role.DISPATCHER, None, "wb-disp")
    status, msg = _workbench(server, dept, {"action": "extend", "case": cid, "request_id": "wb-1"},
                             {"id": cid, "version": before["version"]}, note="需要协调", hours=8)
    assert status == "ok" and "申请" in msg and "等待派遣员审批" in msg, msg
    mid = look(server, cid)
    assert facts(mid) == facts(before) and mid["requests"][0][2] == "pending"
    rid = mid["requests"][0][0]

    # the department's crafted approve is refused; nothing moves
    status, msg = _workbench(server, dept, {"action": "approve", "case": cid, "request_id": "wb-2", "case_request": rid},
                             {"id": cid, "version": mid["version"]})
    assert status == "refused" and look(server, cid) == mid
    # a rejection needs a reason: the form says so before anything is sent
    status, _ = _workbench(server, disp, {"action": "reject", "case": cid, "request_id": "wb-3", "case_request": rid},
                           {"id": cid, "version": mid["version"]})
    assert status == "incomplete" and look(server, cid) == mid
    status, msg = _workbench(server, disp, {"action": "approve", "case": cid, "request_id": "wb-4", "case_request": rid},
                             {"id": cid, "version": mid["version"]}, note="同意")
    assert status == "ok" and "已批准延期申请" in msg, msg
    after = look(server, cid)
    assert after["extension_count"] == 1 and after["deadline"] > before["deadline"]
    assert after["events"][-1][:2] == ("approve", "wb-disp") and after["events"][-1][4]["requested_by"] == "wb-dept"
    # approving again: refused with the reason, nothing moves
    status, msg = _workbench(server, disp, {"action": "approve", "case": cid, "request_id": "wb-5", "case_request": rid},
                             {"id": cid, "version": after["version"]})
    assert status == "refused" and "no longer pending" in msg
    assert look(server, cid) == after


def test_a_rejection_through_the_workbench_moves_nothing(server):
    cid = dispatched_case(server, at=datetime.now(timezone.utc) - timedelta(hours=1))
    before = look(server, cid)
    dept = (101, "wb-dept", Role.DEPARTMENT, DEPT, "wb-dept")
    disp = (102, "wb-disp", Role.DISPATCHER, None, "wb-disp")
    _workbench(server, dept, {"action": "suspend", "case": cid, "request_id": "wb-1"},
               {"id": cid, "version": before["version"]}, note="待上级审批资金")
    mid = look(server, cid)
    status, msg = _workbench(server, disp, {"action": "reject", "case": cid, "request_id": "wb-2",
                                            "case_request": mid["requests"][0][0]},
                             {"id": cid, "version": mid["version"]}, note="请先处置")
    assert status == "ok" and "已驳回挂账申请" in msg, msg
    after = look(server, cid)
    assert facts(after) == facts(before) and after["state"] == "in_progress"
    assert after["requests"][0][2] == "rejected"
