"""主办 / 协办 (issue 14 item 3) through the services, on both databases: a lead and two assisting
departments through every state with one assisting department late (its part's light, its
协办按时回复率 in the reference and the fact path), the lead's resolve refused while a reply is
missing and the override with a note, what return / reassign / rework do to the parts, and who may
sign for and reply to a part."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import services, sla
from incidents.lifecycle import PermissionDenied, TransitionError, ValidationFailed
from incidents.model import Action, Light, Role, State
from incidents.services import Actor, Incident, IncidentEvent
from incidents.tables import CaseAssignment

SH = ZoneInfo("Asia/Shanghai")
LEAD, B, C, D = "330106-CGJ", "HZ-ZJJ", "HZ-SWJT", "HZ-JTJ"     # lead, two assisting, a third department


def L(m, d, hh, mm=0) -> datetime:
    return datetime(2026, m, d, hh, mm, tzinfo=SH)


def _new(s, rules, tag: str, at: datetime) -> int:
    # C0101 上水井盖: 1 working day (7.5 office hours); 协办 replies within half of it: 3.75 working hours
    return services.create_case(s, rules, source="colead", external_id=tag, channel="12345", title="井盖破损",
                                reported_at=at, now=at, category_code="C0101", lon=120.1593, lat=30.2585).id


def _do(s, rules, who: Actor, cid: int, action: Action, at: datetime, **kw) -> Incident:
    return services.act(s, rules, who, cid, action, version=s.get(Incident, cid).version, now=at, **kw).case


DISP = Actor("disp", Role.DISPATCHER)
dept = {code: Actor(f"u-{code}", Role.DEPARTMENT, code) for code in (LEAD, B, C, D)}


def _dispatched(s, rules, tag: str, at: datetime, assisting=(B, C)) -> int:
    cid = _new(s, rules, tag, at)
    _do(s, rules, DISP, cid, Action.REGISTER, at.replace(minute=at.minute + 5))
    _do(s, rules, DISP, cid, Action.DISPATCH, at.replace(minute=at.minute + 10), department=LEAD,
        assisting=list(assisting))
    return cid


def _parts(s, cid: int) -> dict[str, CaseAssignment]:
    return {p.department_code: p for p in services.live_parts(s, cid)}


def test_a_lead_and_two_assisting_departments_through_every_state_with_one_late(server):
    rules = get_runtime(server).rules
    cal = rules.calendar
    with get_db(server).session_scope() as s:
        cid = _dispatched(s, rules, "every-state", L(11, 2, 9, 0))            # Mon 11-02, dispatched 09:10
        parts = _parts(s, cid)
        assert list(parts) == [B, C]
        for p in parts.values():
            # 签收 2 working hours → 11:10; reply 3.75 working hours: 09:10–12:00 (2 h 50) + 13:30–14:25
            assert (p.sign_due, p.reply_due) == (L(11, 2, 11, 10), L(11, 2, 14, 25))
        dispatch = s.query(IncidentEvent).filter_by(incident_id=cid, action="dispatch").one()
        assert [a["department"] for a in dispatch.payload["assisting"]] == [B, C]
        case = s.get(Incident, cid)
        assert case.department_code == LEAD and case.state == State.DISPATCHED

        _do(s, rules, dept[LEAD], cid, Action.SIGN, L(11, 2, 9, 30))
        _do(s, rules, dept[B], cid, Action.ASSIST_SIGN, L(11, 2, 9, 40))
        _do(s, rules, dept[B], cid, Action.ASSIST_REPLY, L(11, 2, 11, 0), note="已核实管线权属，配合处置")
        # C has not signed at 11:00 (83 % of its 签收 time: yellow), nor at 11:30 (red)
        p = _parts(s, cid)[C]
        assert sla.assist_light(p.dispatched_at, p.sign_due, p.signed_at, p.reply_due, p.replied_at,
                                L(11, 2, 11, 0), cal) is Light.YELLOW
        assert sla.assist_light(p.dispatched_at, p.sign_due, p.signed_at, p.reply_due, p.replied_at,
                                L(11, 2, 11, 30), cal) is Light.RED
        _do(s, rules, dept[C], cid, Action.ASSIST_SIGN, L(11, 2, 11, 30))
        with pytest.raises(ValidationFailed, match="already signed"):
            _do(s, rules, dept[C], cid, Action.ASSIST_SIGN, L(11, 2, 11, 31))
        # signed: the reply light alone (2 h 50 of 3 h 45 at 12:00 = 76 %: green), red after 14:25
        p = _parts(s, cid)[C]
        assert sla.assist_light(p.dispatched_at, p.sign_due, p.signed_at, p.reply_due, p.replied_at,
                                L(11, 2, 12, 0), cal) is Light.GREEN
        assert sla.assist_light(p.dispatched_at, p.sign_due, p.signed_at, p.reply_due, p.replied_at,
                                L(11, 2, 14, 30), cal) is Light.RED
        # the lead may not resolve while C's reply is missing
        with pytest.raises(ValidationFailed, match=f"{C}.*not replied"):
            _do(s, rules, dept[LEAD], cid, Action.RESOLVE, L(11, 2, 14, 0), note="已更换井盖")
        _do(s, rules, dept[C], cid, Action.ASSIST_REPLY, L(11, 2, 15, 0), note="供水管已修复")   # late
        with pytest.raises(ValidationFailed, match="already replied"):
            _do(s, rules, dept[C], cid, Action.ASSIST_REPLY, L(11, 2, 15, 1), note="again")
        case = _do(s, rules, dept[LEAD], cid, Action.RESOLVE, L(11, 2, 15, 10), note="已更换井盖")
        assert case.state == State.RESOLVED and case.on_time
        case = _do(s, rules, DISP.__class__("insp", Role.INSPECTOR), cid, Action.VERIFY_PASS, L(11, 2, 16))
        assert case.state == State.CLOSED
        parts = _parts(s, cid)
        assert (parts[B].replied_at, parts[C].replied_at) == (L(11, 2, 11), L(11, 2, 15))
        assert parts[C].reply_note == "供水管已修复" and parts[C].signed_by == f"u-{C}"
        events = [(e.action, (e.payload or {}).get("department"), (e.payload or {}).get("on_time"))
                  for e in s.query(IncidentEvent).filter_by(incident_id=cid).order_by(IncidentEvent.id)]
        assert events == [("report", None, None), ("register", None, None), ("dispatch", None, None),
                          ("sign", None, True), ("assist_sign", B, None), ("assist_reply", B, True),
                          ("assist_sign", C, None), ("assist_reply", C, False), ("resolve", None, None),
                          ("verify_pass", None, None)]


def test_the_lead_overrides_a_missing_reply_only_with_a_note(server):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        cid = _dispatched(s, rules, "override", L(11, 3, 9, 0), assisting=(B,))
        _do(s, rules, dept[LEAD], cid, Action.SIGN, L(11, 3, 9, 20))
        with pytest.raises(ValidationFailed, match="override"):
            _do(s, rules, dept[LEAD], cid, Action.RESOLVE, L(11, 3, 10), note="已处置")
        with pytest.raises(ValidationFailed, match="needs a note"):
            _do(s, rules, dept[LEAD], cid, Action.RESOLVE, L(11, 3, 10), override=True)
        case = _do(s, rules, dept[LEAD], cid, Action.RESOLVE, L(11, 3, 10), override=True,
                   note="住建局电话确认无需协办")
        assert case.state == State.RESOLVED
        resolve = s.query(IncidentEvent).filter_by(incident_id=cid, action="resolve").one()
        assert resolve.payload["override"] == [B] and resolve.note == "住建局电话确认无需协办"
        # the assisting department may still reply (on the record, and in its rate)
        _do(s, rules, dept[B], cid, Action.ASSIST_REPLY, L(11, 3, 11), note="确认")
        assert _parts(s, cid)[B].signed_at == L(11, 3, 11)       # a reply signs for the part too


def test_only_the_assisting_department_or_the_center_acts_on_a_part(server):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        cid = _dispatched(s, rules, "perm", L(11, 4, 9, 0))
        for who in (dept[D], dept[LEAD]):              # a third department, and the lead itself
            with pytest.raises(PermissionDenied, match="does not assist"):
                _do(s, rules, who, cid, Action.ASSIST_REPLY, L(11, 4, 10), note="x")
        # a department user naming another department acts for its own, never for that one
        with pytest.raises(PermissionDenied, match=f"may not 'assist_sign' for department '{B}'"):
            _do(s, rules, dept[C], cid, Action.ASSIST_SIGN, L(11, 4, 10), department=B)
        with pytest.raises(PermissionDenied):
            _do(s, rules, Actor("insp", Role.INSPECTOR), cid, Action.ASSIST_SIGN, L(11, 4, 10), department=B)
        with pytest.raises(ValidationFailed, match="needs that department"):
            _do(s, rules, DISP, cid, Action.ASSIST_SIGN, L(11, 4, 10))
        _do(s, rules, DISP, cid, Action.ASSIST_SIGN, L(11, 4, 10), department=B)     # the center, for B
        assert _parts(s, cid)[B].signed_by == "disp"
        with pytest.raises(ValidationFailed, match="needs the reply"):
            _do(s, rules, dept[C], cid, Action.ASSIST_REPLY, L(11, 4, 10))
        # a stale version is refused as for every action
        with pytest.raises(services.StaleVersion):
            services.act(s, rules, dept[C], cid, Action.ASSIST_SIGN, version=1, now=L(11, 4, 10))


def test_a_dispatch_names_known_assisting_departments_other_than_the_lead(server):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        cid = _new(s, rules, "bad-assist", L(11, 5, 9))
        _do(s, rules, DISP, cid, Action.REGISTER, L(11, 5, 9, 5))
        for assisting, match in (([LEAD], "leads"), ([B, B], "twice"), (["NOPE"], "unknown assisting"),
                                 ("HZ-ZJJ", "list")):
            with pytest.raises(ValidationFailed, match=match):
                _do(s, rules, DISP, cid, Action.DISPATCH, L(11, 5, 9, 10), department=LEAD, assisting=assisting)
        with pytest.raises(ValidationFailed, match="with a dispatch"):
            _do(s, rules, DISP, cid, Action.REGISTER, L(11, 5, 9, 10), assisting=[B])
        assert s.get(Incident, cid).state == State.REGISTERED and not services.live_parts(s, cid)


def test_return_ends_the_parts_reassign_carries_them_and_the_new_lead_leaves_its_part(server):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        cid = _dispatched(s, rules, "moves", L(11, 6, 9, 0))
        _do(s, rules, dept[B], cid, Action.ASSIST_REPLY, L(11, 6, 9, 30), note="ok")
        # reassign to C: C's part ends (it leads now), B's reply is carried
        _do(s, rules, DISP, cid, Action.REASSIGN, L(11, 6, 10), department=C)
        assert list(_parts(s, cid)) == [B]
        reassign = s.query(IncidentEvent).filter_by(incident_id=cid, action="reassign").one()
        assert reassign.payload["assist_ended"] == [C]
        # a rework (verify_fail) carries the parts too: the lead (C) resolves with B's reply in
        _do(s, rules, dept[C], cid, Action.RESOLVE, L(11, 6, 11), note="done")
        _do(s, rules, Actor("insp", Role.INSPECTOR), cid, Action.VERIFY_FAIL, L(11, 6, 12), note="未修好")
        assert list(_parts(s, cid)) == [B]
        # a return ends every part; the next dispatch names its own
        _do(s, rules, dept[C], cid, Action.RETURN, L(11, 6, 13, 40), reason="ownership")
        assert _parts(s, cid) == {}
        with pytest.raises(PermissionDenied):
            _do(s, rules, dept[B], cid, Action.ASSIST_SIGN, L(11, 6, 14))
        _do(s, rules, DISP, cid, Action.DISPATCH, L(11, 6, 14), department=LEAD, assisting=[D])
        assert list(_parts(s, cid)) == [D]
        assert s.query(CaseAssignment).filter_by(incident_id=cid).count() == 3   # B, C, then D


def _known_parts(s, rules) -> None:
    """Five cases led by LEAD with assisting parts due 14:25 on their dispatch day (known answers):
    B: on time (c1), late (c2), ended by a return before its reply and deadline (c4, not counted);
    C: late (c1), on time (c3), never replied (c5)."""
    c1 = _dispatched(s, rules, "k1", L(11, 2, 9, 0))
    _do(s, rules, dept[B], c1, Action.ASSIST_REPLY, L(11, 2, 11), note="ok")
    _do(s, rules, dept[C], c1, Action.ASSIST_REPLY, L(11, 2, 15), note="late")
    c2 = _dispatched(s, rules, "k2", L(11, 3, 9, 0), assisting=(B,))
    _do(s, rules, dept[B], c2, Action.ASSIST_REPLY, L(11, 4, 11), note="late")
    c3 = _dispatched(s, rules, "k3", L(11, 4, 9, 0), assisting=(C,))
    _do(s, rules, dept[C], c3, Action.ASSIST_REPLY, L(11, 4, 10), note="ok")
    c4 = _dispatched(s, rules, "k4", L(11, 5, 9, 0), assisting=(B,))
    _do(s, rules, dept[LEAD], c4, Action.RETURN, L(11, 5, 10), reason="territory")
    _dispatched(s, rules, "k5", L(11, 5, 9, 0), assisting=(C,))


def test_assisting_on_time_reply_rate_has_the_known_answers_on_both_paths(server, app):
    from incidents import kpis
    from tests.integration.test_kpi_facts import _check, _fast, _reference
    rt = get_runtime(server)
    period = kpis.Period(L(11, 1, 0), L(11, 8, 0))
    with get_db(server).session_scope() as s:
        _known_parts(s, rt.rules)
    with server.app_context(), get_db(server).session_scope() as s:
        for as_of, total, by_dept, lead_dispatched in (
                (L(11, 7, 0), (2, 5), {B: (1, 2), C: (1, 3)}, 4),
                (L(11, 3, 12), (1, 2), {B: (1, 1), C: (0, 1)}, 2),     # c2's part not yet due
                (L(11, 5, 12), (2, 4), {B: (1, 2), C: (1, 2)}, 4)):    # c4 returned, c5 not yet due
            for report in (_reference(s, rt, period, as_of, "department")[0],
                           _fast(s, rt, period, as_of, "department")[1],
                           _fast(s, rt, period, as_of)[1]):
                k = report.kpis["assist_reply_rate"]
                assert (k.numerator, k.denominator) == total, as_of
                assert k.value == pytest.approx(total[0] / total[1])
                for code, want in by_dept.items():
                    if report.group_by:
                        g = report.groups[code]["assist_reply_rate"]
                        assert (g.numerator, g.denominator) == want, (as_of, code)
                if report.group_by:
                    # the lead's KPIs are the lead's alone: its dispatches count in its 按期处置率 (c4, returned,
                    # is no longer its case), the assisting departments' parts in no case KPI of theirs
                    assert report.groups[LEAD]["assist_reply_rate"].denominator == 0
                    assert report.groups[LEAD]["on_time_disposal_rate"].denominator == lead_dispatched
                    assert report.groups[B]["on_time_disposal_rate"].denominator == 0
                    ranked = {r.code: r.assist_reply_rate for r in report.ranking.unranked}
                    assert ranked[B] == pytest.approx(by_dept[B][0] / by_dept[B][1])
            _check(s, rt, period, as_of)
    # /api/v1/kpis: the same numbers (as of now: every part is due), total and per department
    from tests.integration.test_api import client_for
    got = client_for(server, "kpi-disp", "dispatcher").get(
        "/api/v1/kpis?from=2026-11-01&to=2026-11-07&group_by=department").get_json()
    total = {k["code"]: k for k in got["kpis"]}["assist_reply_rate"]
    assert (total["numerator"], total["denominator"]) == (2, 5) and "协办" in total["formula"]
    groups = {g["code"]: {k["code"]: k for k in g["kpis"]} for g in got["groups"]}
    assert (groups[C]["assist_reply_rate"]["numerator"], groups[C]["assist_reply_rate"]["denominator"]) == (1, 3)
    rows = {r["code"]: r for r in got["ranking"]["unranked"] + got["ranking"]["ranked"]}
    assert rows[B]["assist_reply_rate"] == pytest.approx(0.5)



def test_the_excel_department_ranking_carries_the_assisting_reply_rate(server, tmp_path):
    """The brief's Excel file has the 协办按时回复率 column of the page's department ranking (the known
    answers of :func:`_known_parts`), "—" for a department that assisted in nothing."""
    import openpyxl
    import pandas as pd
    from dashboards import _exports
    from incidents import kpis
    from incidents.queries import brief as qb
    rt = get_runtime(server)
    with get_db(server).session_scope() as s:
        _known_parts(s, rt.rules)
    with server.test_request_context():
        b = qb.brief(L(11, 1, 0), L(11, 8, 0), L(11, 7, 0))
        _exports.brief_xlsx(b, [], pd.DataFrame(columns=list(kpis.CASE_KPIS)), tmp_path / "brief.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "brief.xlsx")["部门排名"]
    head = [c.value for c in ws[1]]
    col = head.index("协办按时回复率")
    rows = {r[1]: r[col] for r in ws.iter_rows(min_row=2, values_only=True) if r[1]}
    assert rows[B] == pytest.approx(0.5) and rows[C] == pytest.approx(1 / 3)
    assert rows[LEAD] == "—"


# --------------------------------------------------------------------------- the REST API and Open311

def test_the_api_dispatches_with_assisting_departments_and_each_replies_through_it(server):
    import xml.etree.ElementTree as ET
    from tests.integration.test_api import client_for, make_case
    cid = make_case(server, "registered", ext="api-assist", dept=LEAD)
    disp = client_for(server, "api-disp", "dispatcher")
    lead, b, c, d = (client_for(server, f"api-{x}", "department", x) for x in (LEAD, B, C, D))

    def act(client, action, **body):
        version = disp.get(f"/api/v1/incidents/{cid}").get_json()["version"]
        return client.post(f"/api/v1/incidents/{cid}/actions", json={"action": action, "version": version, **body})

    for bad, status in (({"assisting": [LEAD]}, 422), ({"assisting": ["NOPE"]}, 422), ({"assisting": "HZ-ZJJ"}, 400),
                        ({"assisting": [B] * 11}, 400)):
        r = act(disp, "dispatch", department=LEAD, **bad)
        assert r.status_code == status, (bad, r.get_json())
    assert act(disp, "dispatch", department=LEAD, assisting=[B, C]).status_code == 200
    detail = disp.get(f"/api/v1/incidents/{cid}").get_json()
    assert detail["lead_department"]["code"] == LEAD
    assert [(p["department"]["code"], p["state"], p["light"]) for p in detail["assisting"]] == [
        (B, "dispatched", "green"), (C, "dispatched", "green")]
    assert detail["assisting"][0]["department"]["name"] == "杭州市住房和城乡建设局"
    # the assisting department sees the case and its own actions; a third department does not see it
    seen = b.get(f"/api/v1/incidents/{cid}")
    assert seen.status_code == 200 and seen.get_json()["actions"] == ["assist_sign", "assist_reply"]
    assert cid in {x["id"] for x in b.get("/api/v1/incidents?per_page=500").get_json()["items"]}
    assert d.get(f"/api/v1/incidents/{cid}").status_code == 404
    # crafted POSTs: a third department, the lead, a department naming another's part
    assert act(d, "assist_reply", note="x").status_code == 403
    assert act(lead, "assist_sign").status_code == 403
    assert act(c, "assist_sign", department=B).status_code == 403
    assert act(b, "assist_sign").get_json()["state"] == "dispatched"
    assert act(b, "assist_reply").status_code == 422                     # the reply goes in note
    assert act(b, "assist_reply", note="已配合").status_code == 200
    assert act(lead, "sign").status_code == 200
    r = act(lead, "resolve", note="已处置")
    assert r.status_code == 422 and C in r.get_json()["error"]["message"]
    assert act(lead, "resolve", note="已处置", override=True).status_code == 200      # C never replied
    detail = disp.get(f"/api/v1/incidents/{cid}").get_json()
    assert detail["state"] == "resolved"
    assert [(p["department"]["code"], p["state"], p["reply_note"]) for p in detail["assisting"]] == [
        (B, "replied", "已配合"), (C, "dispatched", "")]
    resolve = [e for e in detail["timeline"] if e["action"] == "resolve"][0]
    assert resolve["payload"]["override"] == [C]
    # the center replies for C (naming it)
    assert act(disp, "assist_reply", department=C, note="代录：水务已回复").status_code == 200
    # the OpenAPI document names the new fields
    spec = disp.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    assert {"assisting", "override"} <= set(spec["ActionRequest"]["properties"])
    assert {"lead_department", "assisting"} <= set(spec["IncidentDetail"]["properties"])
    assert "reply_due" in spec["AssistPartOut"]["properties"]
    # Open311: the lead is agency_responsible, the assisting departments our extension (no reply text)
    client = server.test_client()
    got = client.get(f"/open311/v2/requests/{cid}.json").get_json()[0]
    assert got["agency_responsible"] == "西湖区城市管理局"
    assert [(x["agency"], x["status"]) for x in got["assisting_departments"]] == [
        ("杭州市住房和城乡建设局", "replied"), ("杭州市水务集团有限公司", "replied")]
    assert "代录" not in str(got)
    root = ET.fromstring(client.get(f"/open311/v2/requests/{cid}.xml").data)
    assert [e.findtext("status") for e in root.findall("request/assisting_departments/assisting_department")] == [
        "replied", "replied"]


# --------------------------------------------------------------------------- the workbench

def test_the_workbench_dispatches_with_assisting_departments_and_the_part_waits_in_their_to_do(server):
    from datetime import timedelta, timezone
    from dashboards import _case
    from flask_login import login_user
    from data_sources.web.gate import SessionUser
    from incidents.queries import cases
    from tests.integration.test_sign_for import _workbench
    rules = get_runtime(server).rules
    start = datetime.now(timezone.utc) - timedelta(minutes=30)
    with get_db(server).session_scope() as s:
        cid = _new(s, rules, "wb-assist", start)
        _do(s, rules, DISP, cid, Action.REGISTER, start + timedelta(minutes=1))
    disp = (301, "wb-disp2", Role.DISPATCHER, None, "wb-disp2")
    b_user = (302, "wb-b", Role.DEPARTMENT, B, "wb-b")
    lead_user = (303, "wb-lead", Role.DEPARTMENT, LEAD, "wb-lead")
    status, msg = _workbench(server, disp, cid, "dispatch", dept=LEAD, assisting=[LEAD])
    assert status == "refused" and "cannot also assist" in msg
    assert _workbench(server, disp, cid, "dispatch", dept=LEAD, assisting=[B, C])[0] == "ok"
    # B's 我的待办 holds the case as its part (协办), with its part's light and reply deadline
    now = datetime.now(timezone.utc)
    with server.app_context():
        page = cases.queue_page(now, view="my_todo", role="department", department_code=B, q=f"#{cid}",
                                calendar=rules.calendar)
        other = cases.queue_page(now, view="my_todo", role="department", department_code=D, q=f"#{cid}")
    assert other.total == 0
    (row,) = page.rows
    assert row["assist"]["state"] == "dispatched" and row["new"] is True
    assert row["deadline"] == row["assist"]["reply_due"] and row["light"] == row["assist"]["light"]
    with server.test_request_context("/"):
        login_user(SessionUser(*b_user))
        d = _case.load(cid)
    assert d["actions"] == ["assist_sign", "assist_reply"] and d["awaiting"] == [B, C]
    assert [p["department"] for p in d["parts"]] == ["杭州市住房和城乡建设局", "杭州市水务集团有限公司"]
    assert _workbench(server, b_user, cid, "assist_reply")[0] == "incomplete"          # the reply text
    assert _workbench(server, b_user, cid, "assist_reply", note="已排查燃气管线")[0] == "ok"
    with server.app_context():
        page = cases.queue_page(now, view="my_todo", role="department", department_code=B, q=f"#{cid}")
    assert page.total == 0                                   # replied: no longer in its to-do
    # the lead: resolve refused while C is missing, then the override box with a note
    assert _workbench(server, lead_user, cid, "sign")[0] == "ok"
    status, msg = _workbench(server, lead_user, cid, "resolve", note="已处置")
    assert status == "refused" and C in msg
    assert _workbench(server, lead_user, cid, "resolve", note="电话确认", override=["override"])[0] == "ok"
    with get_db(server).session_scope() as s:
        assert s.get(Incident, cid).state == State.RESOLVED
