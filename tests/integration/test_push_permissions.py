"""Push ingestion asks incidents.permissions for every change a record makes to a case: a
department only on its own cases, an inspector only verification, a token bound to its feeds. A
refused record is quarantined with a reason naming the missing permission and the case is left
untouched; every event names the pushing user as actor and the feed (and token) as its channel."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from data_sources.store.db import get_db
from incidents import auth
from incidents.tables import Department, Incident, IncidentEvent, Quarantine
from tests.integration.helpers import push_record

FEED = "/api/v1/feeds/demo/records?mapping=native"


def _rec(ext, **kw):
    return push_record(ext, reported_at="2026-11-16 09:00", **kw)


@pytest.fixture
def world(server):
    """Two departments, and a token per pushing user."""
    now = datetime.now(timezone.utc)
    with get_db(server).session_scope() as s:
        a, b = s.scalars(select(Department.code).where(Department.level == "district").order_by(Department.code)
                         .limit(2)).all()
        users = {"dispatcher": ("dispatcher", None), "dept-a": ("department", a), "dept-b": ("department", b),
                 "inspector": ("inspector", None), "admin": ("admin", None)}
        headers = {}
        for name, (role, dept) in users.items():
            auth.create_user(s, f"push-{name}", role, password="Lo0ng-enough-pw", now=now, department_code=dept)
            headers[name] = {"Authorization": "Bearer " + auth.create_token(s, f"push-{name}", now=now,
                                                                             name=f"{name}-system")}
        headers["bound"] = {"Authorization": "Bearer " + auth.create_token(s, "push-dispatcher", now=now,
                                                                            name="partner", feeds=["partner-a"])}
    return {"a": a, "b": b, "h": headers, "client": server.test_client()}


def _push(world, who, records, url=FEED):
    res = world["client"].post(url, json=records, headers=world["h"][who])
    out = res.get_json()
    if res.status_code == 200:
        assert out["received"] == out["inserted"] + out["updated"] + out["unchanged"] + out["quarantined"]
    return res.status_code, out


def _case(server, ext):
    with get_db(server).session_scope() as s:
        case = s.scalar(select(Incident).where(Incident.source == "demo", Incident.external_id == ext))
        events = s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == case.id)
                           .order_by(IncidentEvent.id)).all()
        s.expunge_all()
        return case, events


def test_another_departments_case_cannot_be_closed_reassigned_or_retitled_by_push(server, world):
    status, out = _push(world, "dispatcher", [_rec("D1", state="dispatched", department_code=world["a"])])
    assert status == 200 and out["inserted"] == 1
    before, _ = _case(server, "D1")
    assert (before.state, before.department_code) == ("dispatched", world["a"])

    attempts = [_rec("D1", state="closed", closed_at="2026-11-17 10:00"),
                _rec("D1", state="dispatched", department_code=world["b"]),
                _rec("D1", title="已处理完毕（伪造）")]
    for record in attempts:
        status, out = _push(world, "dept-b", [record])
        assert status == 200 and (out["quarantined"], out["updated"]) == (1, 0), out
        reason = out["quarantined_records"][0]["reason"]
        assert reason.startswith("not permitted") and "may not" in reason and "left unchanged" in reason

    after, events = _case(server, "D1")
    assert (after.state, after.department_code, after.title, after.version) == \
        (before.state, before.department_code, before.title, before.version)
    assert [e.action for e in events] == ["report", "register", "dispatch"]
    with get_db(server).session_scope() as s:
        reasons = s.scalars(select(Quarantine.reason).where(Quarantine.feed == "demo")).all()
    assert len(reasons) == 3 and all("not permitted" in r for r in reasons)


def test_inspector_may_only_verify_and_department_only_its_own_steps(server, world):
    _push(world, "dispatcher", [_rec("D2", state="dispatched", department_code=world["a"])])

    status, out = _push(world, "inspector", [_rec("D2", state="resolved")])
    assert out["quarantined"] == 1 and "may not 'resolve'" in out["quarantined_records"][0]["reason"]
    # a department may resolve its own case, but not verify it: the whole record is refused
    status, out = _push(world, "dept-a", [_rec("D2", state="closed", closed_at="2026-11-17 10:00")])
    assert out["quarantined"] == 1 and "verify_pass" in out["quarantined_records"][0]["reason"]
    assert _case(server, "D2")[0].state == "dispatched"

    assert _push(world, "dept-a", [_rec("D2", state="in_progress")])[1]["updated"] == 1
    assert _push(world, "dept-a", [_rec("D2", state="resolved")])[1]["updated"] == 1
    assert _push(world, "inspector", [_rec("D2", state="closed", closed_at="2026-11-17 10:00")])[1]["updated"] == 1

    case, events = _case(server, "D2")
    assert case.state == "closed"
    by_action = {e.action: e for e in events}
    assert by_action["sign"].actor == "push-dept-a" and by_action["resolve"].actor == "push-dept-a"
    assert by_action["verify_pass"].actor == "push-inspector"
    assert by_action["verify_pass"].payload["via"] == "push:demo token:inspector-system"
    assert all(e.actor.startswith("push-") for e in events)   # never "import:native"


def test_inspector_cannot_dispatch_and_a_new_record_without_state_stays_reported(server, world):
    status, out = _push(world, "inspector", [_rec("I1", state="dispatched", department_code=world["a"])])
    assert out["quarantined"] == 1 and "may not 'register'" in out["quarantined_records"][0]["reason"]
    status, out = _push(world, "inspector", [_rec("I2")])
    assert out["inserted"] == 1
    case, events = _case(server, "I2")
    assert case.state == "reported" and [e.action for e in events] == ["report"]
    assert events[0].actor == "push-inspector"
    # the submitter may still correct it until the command center accepts it; another department may not
    assert _push(world, "inspector", [_rec("I2", title="井盖缺失")])[1]["updated"] == 1
    assert _push(world, "dept-b", [_rec("I2", title="别的标题")])[1]["quarantined"] == 1
    assert _case(server, "I2")[0].title == "井盖缺失"


def test_a_token_bound_to_feeds_writes_only_those(server, world):
    status, out = _push(world, "bound", [_rec("B1")])
    assert status == 403 and out["error"]["code"] == "forbidden" and "partner-a" in out["error"]["message"]
    status, out = _push(world, "bound", [_rec("B1")], url="/api/v1/feeds/partner-a/records?mapping=native")
    assert status == 200 and out["inserted"] == 1


def test_admin_and_viewer_roles_follow_the_matrix(server, world):
    # admin may push (an integration account) but holds no case action: a registered case is refused
    status, out = _push(world, "admin", [_rec("A1", state="registered")])
    assert status == 200 and out["quarantined"] == 1 and "may not 'register'" in out["quarantined_records"][0]["reason"]


# --------------------------------------------------------------------------- the matrix, door = push

from tests.integration.test_api import DEPT, MAY, OTHER_DEPT, WEST_LAKE as CASE_AT, client_for, make_case  # noqa: E402

# push record (what it says of the case) → the action it means, the state the case is built in, the state after
PUSHED = {
    "register": ("reported", {"state": "registered"}, "registered"),
    "void": ("reported", {"state": "void"}, "voided"),
    "dispatch": ("registered", {"state": "dispatched", "department_code": DEPT}, "dispatched"),
    "sign": ("dispatched", {"state": "in_progress"}, "in_progress"),
    "reassign": ("dispatched", {"state": "dispatched", "department_code": OTHER_DEPT}, "dispatched"),
    "resolve": ("in_progress", {"state": "resolved"}, "resolved"),
    "verify_pass": ("resolved", {"state": "closed"}, "closed"),
}


@pytest.mark.parametrize("role", sorted(MAY))
def test_push_applies_exactly_what_the_role_may_do(server, role):
    at = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(second=0, microsecond=0)
    cl = client_for(server, f"p-{role}", role, DEPT if role == "department" else None)
    wrong = []
    for action, (state, says, after) in PUSHED.items():
        ext = f"{role}-{action}"
        cid = make_case(server, state, ext=ext, at=at)
        record = {"external_id": ext, "title": "测试案件", "category_code": "E0101", "channel": "12345",
                  "reported_at": at.isoformat(), "lon": CASE_AT[0], "lat": CASE_AT[1], **says}
        if action == "verify_pass":
            record["closed_at"] = datetime.now(timezone.utc).isoformat()
        res = cl.post("/api/v1/feeds/test/records?mapping=native", json=[record])
        if role in ("viewer", "leader"):
            ok = res.status_code == 403
        else:
            out = res.get_json()
            with get_db(server).session_scope() as s:
                case = s.get(Incident, cid)
                last = s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == cid)
                                 .order_by(IncidentEvent.id.desc())).first()
                now_state, actor = case.state, last.actor
            if action in MAY[role]:
                ok = out["updated"] == 1 and now_state == after and actor == f"p-{role}"
            else:
                ok = out["quarantined"] == 1 and now_state == state and actor != f"p-{role}"
        if not ok:
            wrong.append((action, res.status_code, {k: v for k, v in res.get_json().items() if k in ("updated", "unchanged", "quarantined", "quarantined_records", "error")}))
    assert not wrong, wrong
