"""REST API v1 (DESIGN §8) through HTTP, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from data_sources.web import api
from incidents import auth, services
from incidents.model import Role, State
from incidents.services import Actor
from incidents.tables import Incident, IncidentEvent, User
from tests.integration.helpers import login

WEST_LAKE = (120.148, 30.256)      # 西湖区 330106, grid 3301060090
SHANGCHENG = (120.20, 30.26)       # 上城区 330102
DISPATCHER = Actor("seed-disp", Role.DISPATCHER)
INSPECTOR = Actor("seed-insp", Role.INSPECTOR)
DEPT, OTHER_DEPT = "HZ-CGJ", "HZ-JTJ"

# DESIGN §3 roles table, written out independently of incidents.lifecycle
MAY = {
    "viewer": set(),
    "leader": {"supervise"},
    "dispatcher": {"register", "void", "dispatch", "reassign", "extend", "suspend", "resume", "merge", "reopen"},
    "department": {"sign", "return", "resolve", "extend", "suspend"},
    "inspector": {"verify_pass", "verify_fail"},
    "admin": set(),
}
# … of which a role may only *request* these: the case stays as it is, a pending request is filed
REQUESTS = {"department": {"extend", "suspend"}}
# action → (state to build the case in, extra body, state after)
SETUP = {
    "register": ("reported", {}, "registered"),
    "void": ("reported", {"reason": "invalid"}, "voided"),
    "dispatch": ("registered", {"department": DEPT}, "dispatched"),
    "sign": ("dispatched", {}, "in_progress"),
    "return": ("dispatched", {"reason": "not_ours"}, "registered"),
    "reassign": ("dispatched", {"department": OTHER_DEPT}, "dispatched"),
    "extend": ("dispatched", {"hours": 4}, "dispatched"),
    "suspend": ("dispatched", {"reason": "waiting_approval"}, "suspended"),
    "resume": ("suspended", {}, "registered"),
    "resolve": ("in_progress", {"note": "已处置"}, "resolved"),
    "verify_pass": ("resolved", {}, "closed"),
    "verify_fail": ("resolved", {}, "dispatched"),
    "merge": ("reported", {"duplicate_of": None}, "voided"),   # duplicate_of filled in per test
    "supervise": ("dispatched", {"level": 2}, "dispatched"),
    "reopen": ("closed", {}, "registered"),
}


# --------------------------------------------------------------------------- helpers

def client_for(server, username: str, role: str, department: str | None = None):
    """A test client authenticated with a bearer token (no Argon2 hashing: fast)."""
    now = datetime.now(timezone.utc)
    with get_db(server).session_scope() as s:
        if s.scalar(select(User).where(User.username == username)) is None:
            s.add(User(username=username, display_name=username, password_hash="!", role=role,
                       department_code=department, active=True, created_at=now))
            s.flush()
        token = auth.create_token(s, username, now=now)
    client = server.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def make_case(server, state: str = "reported", *, ext: str, dept: str = DEPT, category: str = "E0101",
              title: str = "测试案件", at: datetime | None = None, where=WEST_LAKE, priority: str = "normal",
              address: str = "", description: str = "", reporter_name: str = "", reporter_phone: str = "") -> int:
    """A case built through the services into ``state`` (times relative to the real clock)."""
    rules = get_runtime(server).rules
    now = datetime.now(timezone.utc)
    at = at or now - timedelta(hours=1)
    t = at
    dept_actor = Actor("seed-dept", Role.DEPARTMENT, dept)
    with get_db(server).session_scope() as s:
        case = services.create_case(s, rules, source="test", external_id=ext, channel="12345", title=title,
                                    reported_at=at, now=at, category_code=category, lon=where[0], lat=where[1],
                                    priority=priority, address=address, description=description,
                                    reporter_name=reporter_name, reporter_phone=reporter_phone)
        cid = case.id

        def step(actor, action, **kw):
            nonlocal case, t
            t = t + timedelta(minutes=1)
            case = services.perform(s, rules, actor, cid, action, version=case.version, now=t, **kw)

        if state == "voided":
            step(DISPATCHER, "void", reason="invalid")
        elif state != "reported":
            step(DISPATCHER, "register")
            if state == "suspended":
                step(DISPATCHER, "suspend", reason="pending")
            elif state != "registered":
                step(DISPATCHER, "dispatch", department=dept)
                if state in ("in_progress", "resolved", "closed"):
                    step(dept_actor, "sign")
                if state in ("resolved", "closed"):
                    step(dept_actor, "resolve", note="ok")
                if state == "closed":
                    step(INSPECTOR, "verify_pass")
        assert case.state == state
    return cid


def snapshot(server, cid: int) -> tuple:
    with get_db(server).session_scope() as s:
        case = s.get(Incident, cid)
        n = s.scalar(select(func.count()).select_from(IncidentEvent).where(IncidentEvent.incident_id == cid))
        return case.state, case.version, case.department_code, n


def version_of(server, cid: int) -> int:
    return snapshot(server, cid)[1]


def ids(resp) -> set[int]:
    assert resp.status_code == 200, resp.get_json()
    return {item["id"] for item in resp.get_json()["items"]}


# --------------------------------------------------------------------------- list

def test_each_list_filter_narrows_the_result(server):
    now = datetime.now(timezone.utc)
    a = make_case(server, "reported", ext="A", title="井盖 100%_缺失", address="文三路 1 号",
                  at=now - timedelta(days=3))
    b = make_case(server, "registered", ext="B", category="C0101", priority="urgent", where=SHANGCHENG,
                  description="雨后积水", at=now - timedelta(days=2))
    c = make_case(server, "dispatched", ext="C", dept=DEPT)
    d = make_case(server, "dispatched", ext="D", dept=OTHER_DEPT)
    e = make_case(server, "in_progress", ext="E", dept=DEPT)
    f = make_case(server, "closed", ext="F", dept=DEPT)
    with get_db(server).session_scope() as s:   # set the clocks: c red, d yellow, e green
        for cid, warn, dead in ((c, -2, -1), (d, -1, 1), (e, 1, 2)):
            s.execute(update(Incident).where(Incident.id == cid)
                      .values(warn_at=now + timedelta(hours=warn), deadline=now + timedelta(hours=dead)))
        a_at = s.get(Incident, a).reported_at
        a_grid = s.get(Incident, a).grid_code
        west_lake_grid = {i for (i,) in s.execute(select(Incident.id).where(Incident.grid_code == a_grid))}
    everyone = {a, b, c, d, e, f}
    cl = client_for(server, "disp", "dispatcher")
    get = lambda qs: ids(cl.get("/api/v1/incidents?" + qs))  # noqa: E731

    assert get("") == everyone
    assert get("state=reported") == {a}
    assert get("state=dispatched,in_progress") == {c, d, e}
    assert get("state=reported&state=closed") == {a, f}
    assert get("open=true") == everyone - {f}
    assert get("open=false") == {f}
    assert get(f"department={DEPT}") == {c, e, f}
    assert get(f"department={DEPT},{OTHER_DEPT}&state=dispatched") == {c, d}
    assert get("district=330102") == {b}
    assert get("district=330106") == everyone - {b}
    assert get(f"grid={a_grid}") == west_lake_grid and a in west_lake_grid and b not in west_lake_grid
    assert get("category=C0101") == {b}
    assert get("category=C01") == {b}                  # a major class stands for its small classes
    assert get("category=E0101") == everyone - {b}
    assert get("priority=urgent") == {b}
    assert get("light=red") == {c}
    assert get("light=yellow") == {d}
    assert get("light=green") == {e}
    assert get("light=red,yellow") == {c, d}
    assert get("q=100%25_") == {a}                     # LIKE wildcards are literal
    assert get("q=%25") == {a}
    assert get("q=_") == {a}
    assert get("q=文三路") == {a}                       # address
    assert get("q=积水") == {b}                         # description
    # naive times are city time: A's own local time as a bound
    local = a_at.astimezone(ZoneInfo(get_runtime(server).timezone)).replace(tzinfo=None).isoformat()
    assert get(f"reported_from={local}") == everyone
    assert get(f"reported_to={local}") == set()        # exclusive upper bound
    utc = a_at.isoformat().replace("+00:00", "Z")
    assert get(f"reported_to={utc}") == set()
    after_a = (a_at + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    assert get(f"reported_to={after_a}") == {a}
    two_days = quote((now - timedelta(days=2, hours=1)).isoformat())   # "+00:00" must be %-encoded
    assert get(f"reported_from={two_days}") == everyone - {a}
    # detail and list agree on the light
    assert cl.get(f"/api/v1/incidents/{c}").get_json()["light"] == "red"
    assert cl.get(f"/api/v1/incidents/{a}").get_json()["light"] is None

    for bad, field in (("state=nope", "state"), ("light=blue", "light"), ("per_page=501", "per_page"),
                       ("page=0", "page"), ("sort=title", "sort"), ("reported_from=yesterday", "reported_from"),
                       ("stat=closed", "stat")):
        resp = cl.get("/api/v1/incidents?" + bad)
        assert resp.status_code == 400, bad
        assert resp.get_json()["error"]["code"] == "bad_request" and field in resp.get_json()["error"]["message"]


def test_paging_sorting_and_total(server):
    now = datetime.now(timezone.utc)
    made = [make_case(server, "reported", ext=f"P{i}", at=now - timedelta(hours=10 - i),
                      priority=("normal", "urgent", "emergency")[i % 3]) for i in range(7)]
    cl = client_for(server, "disp", "dispatcher")

    def page(qs):
        body = cl.get("/api/v1/incidents?" + qs).get_json()
        return [it["id"] for it in body["items"]], body

    newest_first, body = page("")
    assert newest_first == made[::-1] and body["total"] == 7 and body["per_page"] == 50 and body["page"] == 1
    seen = []
    for n in (1, 2, 3):
        got, body = page(f"per_page=3&page={n}&sort=reported_at")
        assert body["total"] == 7 and body["page"] == n and body["per_page"] == 3
        seen += got
    assert seen == made and len(page("per_page=3&page=3")[0]) == 1
    assert page("per_page=3&page=4")[0] == [] and page("per_page=3&page=4")[1]["total"] == 7
    assert page("sort=id")[0] == sorted(made) and page("sort=-id")[0] == sorted(made, reverse=True)
    by_priority = page("sort=-priority")[1]["items"]
    assert [it["priority"] for it in by_priority] == ["emergency"] * 2 + ["urgent"] * 2 + ["normal"] * 3
    # deadline: cases without one last in both directions; state: lifecycle order
    x = make_case(server, "dispatched", ext="X")
    y = make_case(server, "in_progress", ext="Y")
    with get_db(server).session_scope() as s:
        s.execute(update(Incident).where(Incident.id == x).values(deadline=now + timedelta(hours=5)))
        s.execute(update(Incident).where(Incident.id == y).values(deadline=now + timedelta(hours=1)))
    assert page("sort=deadline")[0][:2] == [y, x]
    assert page("sort=-deadline")[0][:2] == [x, y]
    states = [it["state"] for it in page("sort=state")[1]["items"]]
    assert states == ["reported"] * 7 + ["dispatched", "in_progress"]
    assert page("sort=-state")[0][:2] == [y, x]


# --------------------------------------------------------------------------- detail, create

def test_detail_has_the_timeline_and_iso_utc_times(server):
    cl = login(server, "disp", "dispatcher")      # session auth for the browser
    resp = cl.post("/api/v1/incidents", json={"external_id": "T-1", "channel": "grid", "title": "暴露垃圾",
                                              "category_code": "E0101", "lon": WEST_LAKE[0], "lat": WEST_LAKE[1],
                                              "reporter_name": "王小明", "reporter_phone": "13812341234"})
    assert resp.status_code == 201, resp.get_json()
    cid = resp.get_json()["id"]
    r = cl.post(f"/api/v1/incidents/{cid}/actions", json={"action": "register", "version": 1, "note": "立案"})
    assert r.get_json() == {"id": cid, "state": "registered", "version": 2, "department": None, "deadline": None,
                            "sign_due": None, "case_request": None}
    r = cl.post(f"/api/v1/incidents/{cid}/actions", json={"action": "dispatch", "version": 2})
    assert r.status_code == 200 and r.get_json()["state"] == "dispatched" and r.get_json()["deadline"]
    dept = r.get_json()["department"]
    d = cl.get(f"/api/v1/incidents/{cid}").get_json()
    assert d["version"] == 3 and d["state"] == "dispatched" and d["light"] == "green"
    assert d["district"] == {"code": "330106", "name": "西湖区"} and d["grid"]["code"].startswith("330106")
    assert d["category"]["code"] == "E0101" and d["category"]["name"]
    assert d["department"]["code"] == dept and d["department"]["name"]
    assert d["reporter_name"] == "王小明" and d["reporter_phone"] == "13812341234"
    assert d["counters"] == {"rework": 0, "returns": 0, "reassignments": 0, "extensions": 0,
                             "extension_hours": 0.0, "suspended_hours": 0.0, "alarms": None}
    for key in ("reported_at", "registered_at", "dispatched_at", "deadline", "warn_at", "updated_at"):
        assert d[key].endswith("Z"), key
        datetime.fromisoformat(d[key])
    assert d["registered_at"] <= d["dispatched_at"] < d["warn_at"] < d["deadline"]
    # the 签收 clock: the pack's 2 working hours for a normal case, its light while not signed for
    assert d["sign_due"].endswith("Z") and d["dispatched_at"] < d["sign_due"] == r.get_json()["sign_due"]
    assert d["sign_light"] == "green" and d["arbitrated"] is False
    assert set(d["actions"]) == {"reassign", "extend", "suspend", "merge", "link_repeat"}   # a dispatcher's, in this state
    tl = d["timeline"]
    assert [e["action"] for e in tl] == ["report", "register", "dispatch"]
    assert [(e["from_state"], e["to_state"]) for e in tl] == [(None, "reported"), ("reported", "registered"),
                                                             ("registered", "dispatched")]
    assert [e["actor"] for e in tl] == ["disp"] * 3
    assert tl[1]["note"] == "立案" and tl[2]["department"]["code"] == dept
    assert "routing" in tl[2]["payload"]        # no department given: the routing suggestion and its reason
    assert all(e["at"].endswith("Z") for e in tl)

    # personal data: masked for everyone but dispatcher, leader, admin
    for role, masked in (("viewer", True), ("inspector", True), ("leader", False), ("admin", False)):
        body = client_for(server, f"u-{role}", role).get(f"/api/v1/incidents/{cid}").get_json()
        if masked:
            assert (body["reporter_name"], body["reporter_phone"]) == ("王**", "138****1234"), role
        else:
            assert (body["reporter_name"], body["reporter_phone"]) == ("王小明", "13812341234"), role
    assert cl.get("/api/v1/incidents/999999").status_code == 404
    assert cl.get("/api/v1/incidents/999999").get_json()["error"]["code"] == "not_found"


def test_create_answers_201_409_400_422_and_checks_the_role(server):
    body = {"external_id": "EXT-9", "channel": "12345", "title": "路灯不亮", "category_code": "E0101",
            "lon": SHANGCHENG[0], "lat": SHANGCHENG[1], "priority": "urgent", "address": "解放路",
            "reported_at": "2026-01-05T09:30:00"}
    cl = client_for(server, "disp", "dispatcher")
    resp = cl.post("/api/v1/incidents", json=body)
    assert resp.status_code == 201
    d = resp.get_json()
    assert d["state"] == "reported" and d["source"] == "api" and d["version"] == 1 and d["priority"] == "urgent"
    assert d["district"]["code"] == "330102"
    assert d["reported_at"] == "2026-01-05T01:30:00Z"         # naive = city time (UTC+8)
    assert ids(cl.get("/api/v1/incidents?state=reported")) == {d["id"]}

    dup = cl.post("/api/v1/incidents", json=body)
    assert dup.status_code == 409 and dup.get_json()["error"]["code"] == "duplicate"
    assert dup.get_json()["error"]["id"] == d["id"]
    assert cl.post("/api/v1/incidents", json={**body, "source": "other-feed"}).status_code == 201

    for bad, field in (({k: v for k, v in body.items() if k != "external_id"}, "external_id"),
                       ({**body, "external_id": "N1", "channel": "fax"}, "channel"),
                       ({**body, "external_id": "N2", "lat": None}, "lon and lat"),
                       ({**body, "external_id": "N3", "lat": 95}, "lat"),
                       ({**body, "external_id": "N4", "colour": "red"}, "colour"),
                       ({**body, "external_id": "N5", "title": ""}, "title")):
        r = cl.post("/api/v1/incidents", json=bad)
        assert r.status_code == 400, bad
        assert r.get_json()["error"]["code"] == "bad_request" and field in r.get_json()["error"]["message"]
    r = cl.post("/api/v1/incidents", data="{not json", content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_request"
    r = cl.post("/api/v1/incidents", json=[body])
    assert r.status_code == 400
    r = cl.post("/api/v1/incidents", json={**body, "external_id": "N6", "category_code": "NOPE"})
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "invalid"
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    r = cl.post("/api/v1/incidents", json={**body, "external_id": "N7", "reported_at": future})
    assert r.status_code == 422 and r.get_json()["error"]["field"] == "reported_at"

    for role, status in (("viewer", 403), ("leader", 403), ("inspector", 201), ("admin", 201)):
        r = client_for(server, f"u-{role}", role).post("/api/v1/incidents", json={**body, "external_id": role})
        assert r.status_code == status, role
    r = client_for(server, "u-dept", "department", DEPT).post("/api/v1/incidents",
                                                              json={**body, "external_id": "dept"})
    assert r.status_code == 201 and r.get_json()["reporter_name"] == ""
    with get_db(server).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Incident)) == 5   # disp ×2, inspector, admin, dept


# --------------------------------------------------------------------------- actions

@pytest.mark.parametrize("role", sorted(MAY))
def test_role_action_matrix(server, role):
    cl = client_for(server, f"u-{role}", role, DEPT if role == "department" else None)
    other = make_case(server, "reported", ext="original")
    wrong = []
    for action, (state, extra, after) in SETUP.items():
        cid = make_case(server, state, ext=f"{role}-{action}")
        before = snapshot(server, cid)
        body = {"action": action, "version": before[1], **extra}
        if action == "merge":
            body["duplicate_of"] = other
        resp = cl.post(f"/api/v1/incidents/{cid}/actions", json=body)
        if action in REQUESTS.get(role, ()):
            ok = resp.status_code == 200 and resp.get_json()["state"] == state \
                and resp.get_json()["case_request"]["status"] == "pending" \
                and resp.get_json()["version"] == before[1] + 1 and snapshot(server, cid)[0] == state
        elif action in MAY[role]:
            ok = resp.status_code == 200 and resp.get_json()["state"] == after \
                and resp.get_json()["version"] == before[1] + 1 and snapshot(server, cid)[0] == after
        else:
            ok = resp.status_code == 403 and resp.get_json()["error"]["code"] == "forbidden" \
                and snapshot(server, cid) == before
        if not ok:
            wrong.append((action, resp.status_code, resp.get_json()))
    assert not wrong, wrong


def test_a_department_sees_and_acts_on_its_own_cases_only(server):
    mine = make_case(server, "dispatched", ext="mine", dept=DEPT)
    theirs = make_case(server, "dispatched", ext="theirs", dept=OTHER_DEPT)
    unassigned = make_case(server, "reported", ext="new")
    cl = client_for(server, "u-dept", "department", DEPT)
    assert ids(cl.get("/api/v1/incidents")) == {mine}
    assert ids(cl.get(f"/api/v1/incidents?department={OTHER_DEPT}")) == set()
    assert cl.get(f"/api/v1/incidents/{mine}").status_code == 200
    for cid in (theirs, unassigned):
        r = cl.get(f"/api/v1/incidents/{cid}")
        assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    before = snapshot(server, theirs)
    r = cl.post(f"/api/v1/incidents/{theirs}/actions", json={"action": "sign", "version": before[1]})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
    assert snapshot(server, theirs) == before
    r = cl.post(f"/api/v1/incidents/{mine}/actions", json={"action": "sign", "version": version_of(server, mine)})
    assert r.status_code == 200 and r.get_json()["state"] == "in_progress"
    # a department user without a department sees nothing
    assert ids(client_for(server, "u-nodept", "department").get("/api/v1/incidents")) == set()


def test_a_stale_version_answers_409_with_who_and_when(server):
    cid = make_case(server, "reported", ext="S")
    first, second = client_for(server, "disp-a", "dispatcher"), client_for(server, "disp-b", "dispatcher")
    assert first.post(f"/api/v1/incidents/{cid}/actions", json={"action": "register", "version": 1}).status_code == 200
    before = snapshot(server, cid)
    r = second.post(f"/api/v1/incidents/{cid}/actions", json={"action": "void", "version": 1, "reason": "invalid"})
    assert r.status_code == 409
    err = r.get_json()["error"]
    assert err["code"] == "stale_version" and err["changed_by"] == "disp-a" and "disp-a" in err["message"]
    changed_at = datetime.fromisoformat(err["changed_at"])
    assert abs(changed_at - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert snapshot(server, cid) == before


def test_an_impossible_action_answers_422_with_the_allowed_actions(server):
    cid = make_case(server, "reported", ext="I")
    r = client_for(server, "insp", "inspector").post(f"/api/v1/incidents/{cid}/actions",
                                                      json={"action": "verify_pass", "version": 1})
    assert r.status_code == 422
    err = r.get_json()["error"]
    assert err["code"] == "invalid_transition" and "reported" in err["message"]
    assert err["allowed"] == ["register", "void", "merge", "supervise", "link_repeat"]
    assert all(a in err["message"] for a in err["allowed"])
    disp = client_for(server, "disp", "dispatcher")
    r = disp.post(f"/api/v1/incidents/{cid}/actions", json={"action": "void", "version": 1})   # needs a reason
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "invalid"
    reg = make_case(server, "registered", ext="R")
    r = disp.post(f"/api/v1/incidents/{reg}/actions",
                  json={"action": "dispatch", "version": 2, "department": "NO-SUCH-DEPT"})
    assert r.status_code == 422 and r.get_json()["error"]["field"] == "department"
    assert snapshot(server, reg)[:3] == ("registered", 2, None)          # rolled back
    for body, field in (({"action": "fly", "version": 1}, "action"), ({"action": "register"}, "version"),
                        ({"action": "register", "version": 1, "departmnet": "X"}, "departmnet")):
        r = disp.post(f"/api/v1/incidents/{cid}/actions", json=body)
        assert r.status_code == 400 and field in r.get_json()["error"]["message"], body
    r = disp.post("/api/v1/incidents/999999/actions", json={"action": "register", "version": 1})
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"


def test_a_retried_request_id_is_applied_once(server):
    cid = make_case(server, "reported", ext="RID")
    cl = client_for(server, "disp", "dispatcher")
    body = {"action": "register", "version": 1, "request_id": "req-7f3a"}
    answers = [cl.post(f"/api/v1/incidents/{cid}/actions", json=body) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].get_json() == answers[1].get_json()
    assert answers[1].get_json()["version"] == 2
    timeline = cl.get(f"/api/v1/incidents/{cid}").get_json()["timeline"]
    assert [e["action"] for e in timeline] == ["report", "register"]


# --------------------------------------------------------------------------- auth, reference data

def test_bearer_tokens_work_until_revoked(server):
    now = datetime.now(timezone.utc)
    with get_db(server).session_scope() as s:
        auth.create_user(s, "dept-system", "department", password="long-enough-pw", now=now, department_code=DEPT)
        token = auth.create_token(s, "dept-system", now=now, name="work orders")
    cl = server.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert cl.get("/api/v1/incidents", headers=headers).status_code == 200
    assert cl.get("/api/v1/departments", headers=headers).status_code == 200
    r = cl.get("/api/v1/incidents", headers={"Authorization": "Bearer cot_not-a-token"})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    with get_db(server).session_scope() as s:
        assert auth.revoke_tokens(s, "dept-system", now=now) == 1
    r = cl.get("/api/v1/incidents", headers=headers)
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    r = cl.get("/api/v1/no-such-thing", headers={"Authorization": "Bearer x"})
    assert r.status_code == 401


def test_reference_data_and_unknown_paths(server):
    cl = client_for(server, "viewer", "viewer")
    deps = cl.get("/api/v1/departments").get_json()["items"]
    assert {DEPT, OTHER_DEPT} <= {d["code"] for d in deps} and all(d["name"] for d in deps)
    cats = {c["code"]: c for c in cl.get("/api/v1/categories").get_json()["items"]}
    assert cats["C0101"]["major_code"] == "C01" and cats["C0101"]["time_unit"] in ("work_hours", "work_days",
                                                                                   "natural_hours")
    districts = cl.get("/api/v1/areas?level=district").get_json()["items"]
    assert {"330106", "330102"} <= {a["code"] for a in districts}
    assert all(a["level"] == "district" and a["geometry"] is None for a in districts)
    grids = cl.get("/api/v1/areas?level=grid&parent=330106").get_json()["items"]
    assert grids and all(g["parent_code"] == "330106" and g["level"] == "grid" for g in grids)
    shaped = cl.get("/api/v1/areas?level=district&geometry=true").get_json()["items"]
    assert all(a["geometry"]["type"] in ("Polygon", "MultiPolygon") for a in shaped)
    assert cl.get("/api/v1/areas?level=street").status_code == 400
    r = cl.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    r = cl.delete("/api/v1/incidents")
    assert r.status_code == 405 and r.get_json()["error"]["code"] == "method_not_allowed"


def test_the_openapi_document_is_generated_from_the_request_models(server):
    doc = client_for(server, "viewer", "viewer").get("/api/v1/openapi.json").get_json()
    from openapi_spec_validator import validate
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    for r in api.ROUTES:
        assert r.method.lower() in doc["paths"]["/api/v1" + r.path], r
    for path in ("/incidents", "/incidents/{incident_id}", "/incidents/{incident_id}/actions",
                 "/departments", "/categories", "/areas", "/openapi.json"):
        assert "/api/v1" + path in doc["paths"]
    schemas = doc["components"]["schemas"]
    create = doc["paths"]["/api/v1/incidents"]["post"]
    action = doc["paths"]["/api/v1/incidents/{incident_id}/actions"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{api.IncidentCreate.__name__}"}
    assert action["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{api.ActionRequest.__name__}"}
    for model in (api.IncidentCreate, api.ActionRequest):
        own = model.model_json_schema(ref_template="#/components/schemas/{model}")
        assert schemas[model.__name__]["properties"] == own["properties"]
        assert schemas[model.__name__].get("required") == own.get("required")
    assert set(schemas["ActionRequest"]["required"]) == {"action", "version"}
    assert {"409", "403", "422", "404"} <= set(action["responses"])
    assert action["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    listing = doc["paths"]["/api/v1/incidents"]["get"]
    assert {p["name"] for p in listing["parameters"]} == set(api.IncidentListQuery.model_fields)
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/IncidentPage")


def test_returns_take_the_packs_reason_codes_and_the_third_dispatch_is_an_arbitration(server):
    disp = login(server, "disp3", "dispatcher")
    resp = disp.post("/api/v1/incidents", json={"external_id": "ARB-1", "channel": "grid", "title": "暴露垃圾",
                                                "category_code": "E0101", "lon": WEST_LAKE[0], "lat": WEST_LAKE[1]})
    cid = resp.get_json()["id"]

    def act(client, **body):
        version = disp.get(f"/api/v1/incidents/{cid}").get_json()["version"]
        return client.post(f"/api/v1/incidents/{cid}/actions", json={"version": version, **body})
    assert act(disp, action="register").status_code == 200
    dept = None
    for n in (1, 2):
        r = act(disp, action="dispatch")
        assert r.status_code == 200, r.get_json()
        dept = r.get_json()["department"]
        own = login(server, f"dept-{n}", "department", dept)
        r = act(own, action="return", reason="somewhere")
        assert r.status_code == 422 and r.get_json()["error"]["code"] == "invalid"
        assert act(own, action="return", reason="territory", note="属邻区").status_code == 200
    r = act(disp, action="dispatch")
    assert r.status_code == 422 and "arbitrat" in r.get_json()["error"]["message"]
    d = disp.get(f"/api/v1/incidents/{cid}").get_json()
    assert d["counters"]["returns"] == 2 and "arbitrate" in d["actions"] and "dispatch" not in d["actions"]
    r = act(disp, action="arbitrate", department=dept, note="经审定由该部门办理")
    assert r.status_code == 200 and r.get_json()["state"] == "dispatched" and r.get_json()["sign_due"]
    own = login(server, "dept-3", "department", dept)
    d = own.get(f"/api/v1/incidents/{cid}").get_json()
    assert d["arbitrated"] is True and "return" not in d["actions"] and "sign" in d["actions"]
    r = act(own, action="return", reason="overlap")
    assert r.status_code == 422 and "no longer return" in r.get_json()["error"]["message"]
    assert [e["action"] for e in d["timeline"]] == ["report", "register", "dispatch", "return", "dispatch", "return",
                                                   "arbitrate"]
