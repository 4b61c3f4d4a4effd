"""回访, 先行联系 and 处置结果 (issue 14 item 5) through the services, on both databases: who may
contact and revisit, 不满意 sends the case back to its department once (重办), and 先行联系率,
实际解决率, 回访率, 市民满意率, 发回重办率 against hand-built cases with known answers — the reference
(incidents.kpis over the events) and the fact path equal, at the end and at an earlier instant (a
case sent back after it is replayed) — and against an independent pandas computation on demo data."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import select

from data_sources.feeds import simulator
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import kpis, services
from incidents.lifecycle import PermissionDenied, TransitionError, ValidationFailed
from incidents.model import Action, Role, State
from incidents.services import Actor, Incident, IncidentEvent
from incidents.tables import CaseFact
from tests.integration.test_api import client_for
from tests.integration.test_kpi_facts import _check, _fast, _reference

SH = ZoneInfo("Asia/Shanghai")
A, B = "330106-CGJ", "330105-CGJ"
RATES = ("first_contact_rate", "actual_solve_rate", "revisit_rate", "satisfaction_rate", "redo_rate")


def L(m, d, hh, mm=0) -> datetime:
    return datetime(2026, m, d, hh, mm, tzinfo=SH)


def _new(s, rules, tag: str, at: datetime, channel: str = "12345") -> int:
    return services.create_case(s, rules, source="revisit", external_id=tag, channel=channel, title="占道经营",
                                reported_at=at, now=at, category_code="C0101", lon=120.1593, lat=30.2585).id


ROLE = {Action.SIGN: Role.DEPARTMENT, Action.CONTACT: Role.DEPARTMENT, Action.RESOLVE: Role.DEPARTMENT,
        Action.VERIFY_PASS: Role.INSPECTOR, Action.VERIFY_FAIL: Role.INSPECTOR}


def _act(s, rules, cid: int, action: Action, at: datetime, dept: str | None = None, role: Role | None = None, **kw):
    role = role or ROLE.get(action, Role.DISPATCHER)
    case = s.get(Incident, cid)
    actor = Actor("u", role, (dept or case.department_code) if role is Role.DEPARTMENT else None)
    if action == Action.DISPATCH:
        kw["department"] = dept
    return services.act(s, rules, actor, cid, action, version=case.version, now=at, **kw).case


def _handled(s, rules, cid: int, dept: str, day: int, *, contact=True, outcome=None, close=True) -> None:
    """Registered and dispatched on 11-02, signed, contacted (or not), resolved on ``day`` and closed."""
    _act(s, rules, cid, Action.REGISTER, L(11, 2, 9))
    _act(s, rules, cid, Action.DISPATCH, L(11, 2, 9, 10), dept)
    _act(s, rules, cid, Action.SIGN, L(11, 2, 9, 30))
    if contact:
        case = _act(s, rules, cid, Action.CONTACT, L(11, 2, 10), note="已电话联系市民")
        assert case.first_contacted_at == L(11, 2, 10) and case.state == State.IN_PROGRESS
    if day:
        _act(s, rules, cid, Action.RESOLVE, L(11, day, 10), outcome=outcome)
        if close:
            _act(s, rules, cid, Action.VERIFY_PASS, L(11, day, 14))


def _known_cases(s, rules) -> dict[str, int]:
    """Six cases first dispatched on Mon 11-02 (Asia/Shanghai); c4 came from a grid inspector."""
    c = {k: _new(s, rules, k, L(11, 2, 8), "app" if k == "c2" else "grid" if k == "c4" else "12345")
         for k in ("c1", "c2", "c3", "c4", "c5", "c6")}
    _handled(s, rules, c["c1"], A, 3)                                               # solved (the default)
    _act(s, rules, c["c1"], Action.REVISIT, L(11, 4, 10), result="satisfied")
    _handled(s, rules, c["c2"], A, 3, contact=False, outcome="explained")
    _act(s, rules, c["c2"], Action.REVISIT, L(11, 4, 9), result="unreachable")   # tried again the next day
    _act(s, rules, c["c2"], Action.REVISIT, L(11, 5, 10), result="basic")
    _handled(s, rules, c["c3"], B, 3, outcome="solved")
    case = _act(s, rules, c["c3"], Action.REVISIT, L(11, 4, 11), result="unsatisfied", note="路面仍有占道")
    assert (case.state, case.department_code, case.closed_at, case.resolve_outcome) == (State.DISPATCHED, B, None, None)
    assert case.rework_count == 1 and case.revised_at == L(11, 4, 11) and case.deadline is not None
    _act(s, rules, c["c3"], Action.RESOLVE, L(11, 5, 10), outcome="explained")
    _act(s, rules, c["c3"], Action.VERIFY_PASS, L(11, 5, 14))
    _act(s, rules, c["c3"], Action.REVISIT, L(11, 6, 10), result="satisfied")
    _handled(s, rules, c["c4"], A, 3)                                               # no citizen to call back
    _handled(s, rules, c["c5"], B, 2, contact=False, close=False)
    _act(s, rules, c["c5"], Action.VERIFY_FAIL, L(11, 3, 9))
    _act(s, rules, c["c5"], Action.CONTACT, L(11, 3, 10))                        # after a resolve: no 先行联系
    _act(s, rules, c["c5"], Action.RESOLVE, L(11, 4, 14))
    _act(s, rules, c["c5"], Action.VERIFY_PASS, L(11, 4, 16))                     # never revisited
    _handled(s, rules, c["c6"], A, 0)                                               # contacted, still in hand
    return c


def _numbers(report, group=None) -> dict:
    k = report.groups[group] if group else report.kpis
    return {code: (k[code].numerator, k[code].denominator) for code in RATES}


def test_the_five_rates_have_the_known_answers_on_both_paths_at_the_end_and_before_the_redo(server, app):
    rt = get_runtime(server)
    period = kpis.Period(L(11, 2, 0), L(11, 9, 0))
    with get_db(server).session_scope() as s:
        ids = _known_cases(s, rt.rules)
    with server.app_context(), get_db(server).session_scope() as s:
        for as_of, total, by_dept in (
                # the end: contacted c1, c3, c6 of the five citizen cases; solved c1, c5 of c1, c2, c3, c5 (c3's
                # final resolve explained); c1, c2, c3 of the four closed revisited; visits c1 满意, c2 未联系上 +
                # 基本满意, c3 不满意 + 满意: 3 satisfied of 4 reached, 1 sent back of 5
                (L(11, 9, 0), {"first_contact_rate": (3, 5), "actual_solve_rate": (2, 4), "revisit_rate": (3, 4),
                               "satisfaction_rate": (3, 4), "redo_rate": (1, 5)},
                 {A: {"first_contact_rate": (2, 3), "actual_solve_rate": (1, 2), "revisit_rate": (2, 2),
                      "satisfaction_rate": (2, 2), "redo_rate": (0, 3)},
                  B: {"first_contact_rate": (1, 2), "actual_solve_rate": (1, 2), "revisit_rate": (1, 2),
                      "satisfaction_rate": (1, 2), "redo_rate": (1, 2)}}),
                # 11-04 10:30: c3 still closed and solved, not yet revisited; c5 in rework; c2 not reached yet
                (L(11, 4, 10, 30), {"first_contact_rate": (3, 5), "actual_solve_rate": (2, 3),
                                    "revisit_rate": (2, 3), "satisfaction_rate": (1, 1), "redo_rate": (0, 2)},
                 {A: {"first_contact_rate": (2, 3), "actual_solve_rate": (1, 2), "revisit_rate": (2, 2),
                      "satisfaction_rate": (1, 1), "redo_rate": (0, 2)}})):
            for report in (_reference(s, rt, period, as_of, "department")[0],
                           _fast(s, rt, period, as_of, "department")[1]):
                assert _numbers(report) == total, as_of
                for dept, want in by_dept.items():
                    assert _numbers(report, dept) == want, (as_of, dept)
            _check(s, rt, period, as_of)
        # before the 重办 (11-04 11:00), c3 is replayed from its events
        ps, _ = _fast(s, rt, period, L(11, 4, 10, 30))
        assert list(ps.replayed.index) == [ids["c3"]]
        report = _fast(s, rt, period, L(11, 9, 0))[1]
    assert report.kpis["satisfaction_rate"].value == pytest.approx(0.75)
    assert "不满意" in report.kpis["redo_rate"].formula and "citizen_channels" in report.kpis["first_contact_rate"].formula


def test_unsatisfied_sends_the_case_back_once_and_a_closure_is_revisited_once(server, app):
    rt = get_runtime(server)
    rules = rt.rules
    with get_db(server).session_scope() as s:
        cid = _new(s, rules, "once", L(11, 2, 8))
        _handled(s, rules, cid, A, 3)
        with pytest.raises(ValidationFailed, match="needs the citizen's complaint"):
            _act(s, rules, cid, Action.REVISIT, L(11, 4, 9), result="unsatisfied")
        with pytest.raises(ValidationFailed, match="needs a result"):
            _act(s, rules, cid, Action.REVISIT, L(11, 4, 9))
        case = s.get(Incident, cid)
        first = services.act(s, rules, Actor("hotline", Role.DISPATCHER), cid, Action.REVISIT, version=case.version,
                             now=L(11, 4, 10), result="unsatisfied", note="仍未解决", request_id="rv-1").case
        # a retried request is applied once; a second 回访 of the sent-back case is refused
        again = services.act(s, rules, Actor("hotline", Role.DISPATCHER), cid, Action.REVISIT, version=case.version,
                             now=L(11, 4, 10, 1), result="unsatisfied", note="仍未解决", request_id="rv-1").case
        assert again.version == first.version and again.state == State.DISPATCHED and again.department_code == A
        with pytest.raises(TransitionError):
            _act(s, rules, cid, Action.REVISIT, L(11, 4, 11), result="unsatisfied", note="重复回访")
        _act(s, rules, cid, Action.RESOLVE, L(11, 5, 10))
        _act(s, rules, cid, Action.VERIFY_PASS, L(11, 5, 14))
        assert s.get(Incident, cid).revisit_result is None          # a new closure: its own 回访
        _act(s, rules, cid, Action.REVISIT, L(11, 6, 9), result="unreachable")
        _act(s, rules, cid, Action.REVISIT, L(11, 6, 15), result="satisfied")
        with pytest.raises(ValidationFailed, match="revisited once"):
            _act(s, rules, cid, Action.REVISIT, L(11, 7, 9), result="unsatisfied", note="又不满意了")
        visits = [(e.payload["result"], e.to_state) for e in
                  s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == cid,
                                                        IncidentEvent.action == "revisit").order_by(IncidentEvent.id))]
        assert visits == [("unsatisfied", "dispatched"), ("unreachable", "closed"), ("satisfied", "closed")]
        case = s.get(Incident, cid)
        assert case.rework_count == 1 and case.first_revisited_at == L(11, 4, 10)
    period = kpis.Period(L(11, 2, 0), L(11, 9, 0))
    with server.app_context(), get_db(server).session_scope() as s:
        for report in (_reference(s, rt, period, L(11, 9, 0))[0], _fast(s, rt, period, L(11, 9, 0))[1]):
            k = report.kpis
            assert (k["redo_rate"].numerator, k["redo_rate"].denominator) == (1, 3)
            assert (k["rework_rate"].numerator, k["revisit_rate"].numerator, k["revisit_rate"].denominator) == (1, 1, 1)


def test_only_a_citizen_case_is_revisited_and_only_the_hotline_revisits(server):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        grid, mine = _new(s, rules, "grid", L(11, 2, 8), "grid"), _new(s, rules, "mine", L(11, 2, 8))
        _handled(s, rules, grid, A, 3)
        _handled(s, rules, mine, A, 3)
        with pytest.raises(ValidationFailed, match="a citizen raised"):
            _act(s, rules, grid, Action.REVISIT, L(11, 4, 9), result="satisfied")
        with pytest.raises(PermissionDenied):    # the department that handled it may not judge itself
            _act(s, rules, mine, Action.REVISIT, L(11, 4, 9), dept=A, role=Role.DEPARTMENT, result="satisfied")
        other = _new(s, rules, "other", L(11, 2, 8))
        _act(s, rules, other, Action.REGISTER, L(11, 2, 9))
        _act(s, rules, other, Action.DISPATCH, L(11, 2, 9, 10), A)
        with pytest.raises(PermissionDenied):    # 先行联系 is the department's in charge, no one else's
            _act(s, rules, other, Action.CONTACT, L(11, 2, 10), role=Role.DISPATCHER)
        with pytest.raises(PermissionDenied):
            _act(s, rules, other, Action.CONTACT, L(11, 2, 10), dept=B, role=Role.DEPARTMENT)
        with pytest.raises(ValidationFailed, match="unknown outcome"):
            _act(s, rules, other, Action.RESOLVE, L(11, 2, 11), outcome="gave_up")


def test_a_crafted_revisit_post_from_a_department_is_refused_and_the_api_carries_the_fields(server):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        cid = _new(s, rules, "api", datetime.now(timezone.utc) - timedelta(days=2))
        t = datetime.now(timezone.utc) - timedelta(days=1)
        for i, (action, kw) in enumerate(((Action.REGISTER, {}), (Action.DISPATCH, {"dept": A}), (Action.SIGN, {}),
                                          (Action.CONTACT, {}), (Action.RESOLVE, {"outcome": "explained"}),
                                          (Action.VERIFY_PASS, {}))):
            _act(s, rules, cid, action, t + timedelta(minutes=i), **kw)
        version = s.get(Incident, cid).version
    dept = client_for(server, "api-dept", "department", A)
    r = dept.post(f"/api/v1/incidents/{cid}/actions", json={"action": "revisit", "version": version,
                                                             "result": "unsatisfied", "note": "x"})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
    hotline = client_for(server, "api-hotline", "dispatcher")
    r = hotline.post(f"/api/v1/incidents/{cid}/actions", json={"action": "revisit", "version": version,
                                                                "result": "so-so"})
    assert r.status_code in (400, 422)
    assert "revisit" in hotline.get(f"/api/v1/incidents/{cid}").get_json()["actions"]
    r = hotline.post(f"/api/v1/incidents/{cid}/actions", json={"action": "revisit", "version": version,
                                                                "result": "unsatisfied", "note": "仍有占道"})
    assert r.status_code == 200 and r.get_json()["state"] == "dispatched" and r.get_json()["department"] == A
    d = hotline.get(f"/api/v1/incidents/{cid}").get_json()
    assert d["citizen"] is True and d["revisit_result"] == "unsatisfied" and d["first_contacted_at"]
    assert d["resolve_outcome"] is None                       # sent back: no resolve stands
    assert [e["payload"] for e in d["timeline"] if e["action"] == "revisit"] == [{"result": "unsatisfied", "redo": True}]
    doc = hotline.get("/api/v1/openapi.json").get_json()
    action = doc["components"]["schemas"]["ActionRequest"]["properties"]
    assert "outcome" in action and "result" in action
    o311 = server.test_client().get(f"/open311/v2/requests/{cid}.json").get_json()[0]
    assert o311["revisit_result"] == "unsatisfied" and o311["first_contact_datetime"] and o311["resolution"] is None


# --------------------------------------------------------------------------- independent, on demo data

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)


def _independent(s, period: kpis.Period, as_of: datetime, citizen: tuple[str, ...]) -> dict:
    """Each rate from the raw case and event rows with plain pandas, by its 口径 (not incidents.kpis)."""
    lo, hi, at = (pd.Timestamp(x) for x in (period.start, period.end, as_of))
    cases = pd.read_sql(select(Incident.id, Incident.channel), s.connection()).set_index("id")
    rows = s.execute(select(IncidentEvent.incident_id, IncidentEvent.id, IncidentEvent.at, IncidentEvent.action,
                            IncidentEvent.to_state, IncidentEvent.payload)
                     .where(IncidentEvent.at <= as_of).order_by(IncidentEvent.incident_id, IncidentEvent.at,
                                                                IncidentEvent.id)).all()
    ev = pd.DataFrame([(r[0], r[1], r[2], r[3], r[4], (r[5] or {}).get("outcome"), (r[5] or {}).get("result"))
                       for r in rows], columns=["case", "id", "at", "action", "to_state", "outcome", "result"])
    ev["at"] = pd.to_datetime(ev["at"], utc=True)
    cit = set(cases.index[cases["channel"].isin(citizen)])
    out = dict.fromkeys(RATES)
    num = dict.fromkeys(RATES, 0)
    den = dict.fromkeys(RATES, 0)
    for cid, g in ev.groupby("case"):
        state = g["to_state"].iloc[-1]
        if cid not in cit or state == "voided":
            visits = g[(g["action"] == "revisit") & (g["at"] >= lo) & (g["at"] < hi)]
        else:
            first_dispatch = g.loc[g["action"].isin(("dispatch", "arbitrate")), "at"].min()
            if pd.notna(first_dispatch) and lo <= first_dispatch < hi:
                den["first_contact_rate"] += 1
                actions = list(g["action"])
                first_contact = actions.index("contact") if "contact" in actions else None
                first_resolve = actions.index("resolve") if "resolve" in actions else None
                num["first_contact_rate"] += first_contact is not None and (first_resolve is None
                                                                            or first_contact < first_resolve)
                if state in ("resolved", "closed"):
                    den["actual_solve_rate"] += 1
                    num["actual_solve_rate"] += (g.loc[g["action"] == "resolve", "outcome"].iloc[-1] or "solved") \
                        == "solved"
            first_close = g.loc[g["action"] == "verify_pass", "at"].min()
            if pd.notna(first_close) and lo <= first_close < hi:
                den["revisit_rate"] += 1
                num["revisit_rate"] += bool((g["action"] == "revisit").any())
            visits = g[(g["action"] == "revisit") & (g["at"] >= lo) & (g["at"] < hi)]
        reached = visits[visits["result"] != "unreachable"]
        den["satisfaction_rate"] += len(reached)
        num["satisfaction_rate"] += int(reached["result"].isin(("satisfied", "basic")).sum())
        den["redo_rate"] += len(visits)
        num["redo_rate"] += int((visits["result"] == "unsatisfied").sum())
    for code in RATES:
        out[code] = (int(num[code]), int(den[code]))
    return out


@pytest.mark.parametrize("days_back,length_days,offset_hours", [(5, 5, 0), (4, 2, -30)])
def test_the_rates_on_demo_history_equal_an_independent_pandas_computation(app, days_back, length_days, offset_hours):
    server = app.server
    rt = get_runtime(server)
    with server.app_context(), get_db(server).session_scope() as s:
        simulator.seed_history(s, simulator.build(server), NOW, 6)
    start = (NOW - timedelta(days=days_back)).replace(hour=0, minute=0)
    period = kpis.Period(start, start + timedelta(days=length_days))
    as_of = NOW + timedelta(hours=offset_hours)
    with server.app_context(), get_db(server).session_scope() as s:
        want = _independent(s, period, as_of, rt.rules.citizen_channels)
        got = _numbers(_fast(s, rt, period, as_of)[1])
        n = s.query(CaseFact).filter(CaseFact.first_revisited_at.isnot(None)).count()
    assert got == want
    # the demo makes real numbers: contacts, explanations, visits of every result and some sent back
    assert n > 100 and all(den > 20 for _, den in want.values()) and want["redo_rate"][0] > 0
    assert 0.5 < want["satisfaction_rate"][0] / want["satisfaction_rate"][1] < 1.0
    assert 0 < want["actual_solve_rate"][0] < want["actual_solve_rate"][1]


def test_the_workbench_offers_contact_the_outcome_and_one_button_per_revisit_result(server):
    """The case panel (``_case.run_action``, what its buttons call): the department's 先行联系 and
    解释说明, the hotline's 待回访 queue and result buttons; 不满意 asks for the complaint."""
    from flask_login import login_user
    from dashboards import _case
    from data_sources.web.gate import SessionUser
    from incidents.queries import cases as case_queries
    from tests.integration.test_sign_for import _workbench
    rules = get_runtime(server).rules
    start = datetime.now(timezone.utc) - timedelta(hours=5)
    with get_db(server).session_scope() as s:
        cid = _new(s, rules, "wb-rv", start)
        _act(s, rules, cid, Action.REGISTER, start + timedelta(minutes=1))
        _act(s, rules, cid, Action.DISPATCH, start + timedelta(minutes=2), A)
    dept = (301, "wb-rv-a", Role.DEPARTMENT, A, "wb-rv-a")
    disp = (302, "wb-rv-disp", Role.DISPATCHER, None, "wb-rv-disp")

    def panel(who):
        with server.test_request_context("/"):
            login_user(SessionUser(*who))
            return _case.load(cid)
    assert "contact" in panel(dept)["actions"] and "contact" not in panel(disp)["actions"]
    assert _workbench(server, dept, cid, "contact")[0] == "ok"
    assert _workbench(server, dept, cid, "resolve", outcome="explained", note="已向市民解释")[0] == "ok"
    with get_db(server).session_scope() as s:
        case = s.get(Incident, cid)
        assert case.first_contacted_at is not None and case.resolve_outcome == "explained"
        _act(s, rules, cid, Action.VERIFY_PASS, datetime.now(timezone.utc))
    d = panel(disp)
    assert "revisit" in d["actions"] and d["citizen"]          # (with 关联重复件, link_repeat, beside it)
    assert _case.panel_actions(d["actions"])[-4:] == list(_case.REVISIT_BUTTONS)
    def queued() -> list[int]:
        with server.app_context():
            return [r["id"] for r in case_queries.queue_page(datetime.now(timezone.utc), view="pending_revisit",
                                                             role="dispatcher").rows]
    assert cid in queued()
    with server.test_request_context("/"):       # the queue row says when it was closed, not a clock
        from dashboards.dispatch import row_of
        row = next(r for r in case_queries.queue_page(datetime.now(timezone.utc), view="pending_revisit",
                                                      role="dispatcher").rows if r["id"] == cid)
        assert row_of(row)["remaining"].startswith("结案 ")
    assert "pending_revisit" in case_queries.views_for("dispatcher")
    assert "pending_revisit" not in case_queries.views_for("department")
    # a department's crafted 回访 through the panel is refused by the services
    status, msg = _workbench(server, dept, cid, "revisit_satisfied")
    assert status == "refused" and "may not 'revisit'" in msg
    assert _workbench(server, disp, cid, "revisit_unsatisfied") == ("incomplete", "请填写市民不满意的原因")
    assert _workbench(server, disp, cid, "revisit_unreachable")[0] == "ok"
    assert cid in queued()                  # not reached: still due
    status, msg = _workbench(server, disp, cid, "revisit_unsatisfied", note="市民说仍有占道")
    assert status == "ok" and "已派遣" in msg
    with get_db(server).session_scope() as s:
        case = s.get(Incident, cid)
        assert (case.state, case.department_code, case.revisit_result) == ("dispatched", A, "unsatisfied")
    assert cid not in queued()
    with server.test_request_context("/"):
        html_text = str(_case.timeline(panel(disp)["timeline"]))
    assert "未联系上" in html_text and "发回重办" in html_text and "解释说明" in html_text and "首次联系" in html_text
