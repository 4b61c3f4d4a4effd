"""签收 and 审定 (issue 14 items 1 and 2) through the services, on both databases: the sign-for
deadline of a dispatch over a holiday and a 调休 day, the return reason codes, the arbitration rule
at exactly N returns, and 按时签收率 / 退单数 against hand-built cases with known answers — the
reference (incidents.kpis over the events) and the fact path equal, at the end and at an earlier
instant (a case returned after it is replayed)."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import kpis, permissions, services
from incidents.lifecycle import ValidationFailed, blocked_actions
from incidents.model import Action, Role, State
from incidents.services import Actor, Incident, IncidentEvent
from tests.integration.test_kpi_facts import _check, _fast, _reference

SH = ZoneInfo("Asia/Shanghai")
A, B = "330106-CGJ", "330105-CGJ"


def L(m, d, hh, mm=0) -> datetime:
    return datetime(2026, m, d, hh, mm, tzinfo=SH)


def _new(s, rules, tag: str, at: datetime, priority: str = "normal") -> int:
    return services.create_case(s, rules, source="signfor", external_id=tag, channel="12345", title="占道经营",
                                reported_at=at, now=at, category_code="C0101", lon=120.1593, lat=30.2585,
                                priority=priority).id


def _act(s, rules, cid: int, action: Action, at: datetime, dept: str | None = None, **kw):
    role = {Action.SIGN: Role.DEPARTMENT, Action.RETURN: Role.DEPARTMENT, Action.RESOLVE: Role.DEPARTMENT}.get(
        action, Role.DISPATCHER)
    case = s.get(Incident, cid)
    actor = Actor("u", role, case.department_code if role is Role.DEPARTMENT else None)
    if action in (Action.DISPATCH, Action.ARBITRATE, Action.REASSIGN):
        kw["department"] = dept
    return services.act(s, rules, actor, cid, action, version=case.version, now=at, **kw).case


def _timeline(s, cid: int) -> list[str]:
    return [e.action for e in s.query(IncidentEvent).filter_by(incident_id=cid).order_by(IncidentEvent.id)]


def test_a_dispatch_before_a_holiday_is_due_for_sign_for_after_it(server):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        normal, urgent = _new(s, rules, "h-normal", L(9, 30, 16)), _new(s, rules, "h-urgent", L(9, 30, 16), "urgent")
        for cid in (normal, urgent):
            _act(s, rules, cid, Action.REGISTER, L(9, 30, 16, 30))
            _act(s, rules, cid, Action.DISPATCH, L(9, 30, 17), A)
        # 国庆: 17:00–17:30 counts, 10-01 … 10-07 do not; normal 2 h → Thu 10-08 10:00, urgent 1 h → 09:00
        assert s.get(Incident, normal).sign_due == L(10, 8, 10)
        assert s.get(Incident, urgent).sign_due == L(10, 8, 9)
        assert s.get(Incident, normal).first_sign_due == L(10, 8, 10)
        for cid in (normal, urgent):
            case = _act(s, rules, cid, Action.SIGN, L(10, 8, 9, 30))
            assert case.first_signed_at == L(10, 8, 9, 30)
        signs = {cid: s.query(IncidentEvent).filter_by(incident_id=cid, action="sign").one().payload
                 for cid in (normal, urgent)}
        assert signs[normal]["on_time"] is True and signs[urgent]["on_time"] is False
        # a dispatch on the eve of a 调休 Saturday: Fri 10-09 17:00 + 2 h → Sat 10-10 10:00
        late = _new(s, rules, "h-tiaoxiu", L(10, 9, 16))
        _act(s, rules, late, Action.REGISTER, L(10, 9, 16, 30))
        assert _act(s, rules, late, Action.DISPATCH, L(10, 9, 17), A).sign_due == L(10, 10, 10)


def test_a_return_needs_a_reason_code_from_the_pack(server):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        cid = _new(s, rules, "r-reason", L(11, 2, 9))
        _act(s, rules, cid, Action.REGISTER, L(11, 2, 9, 5))
        _act(s, rules, cid, Action.DISPATCH, L(11, 2, 9, 10), A)
        with pytest.raises(ValidationFailed, match="needs a reason code"):
            _act(s, rules, cid, Action.RETURN, L(11, 2, 9, 20), note="不归我们管")
        with pytest.raises(ValidationFailed, match="unknown return reason 'elsewhere'"):
            _act(s, rules, cid, Action.RETURN, L(11, 2, 9, 20), reason="elsewhere")
        case = _act(s, rules, cid, Action.RETURN, L(11, 2, 9, 20), reason="territory", note="属西湖区管辖")
        assert case.return_count == 1 and case.department_code is None and case.state == State.REGISTERED
        ret = s.query(IncidentEvent).filter_by(incident_id=cid, action="return").one()
        assert ret.payload == {"reason": "territory", "from_department": A, "returns": 1}
        assert ret.note == "属西湖区管辖"


@pytest.mark.parametrize("n", [1, 2, 3])
def test_after_exactly_n_returns_the_next_dispatch_is_an_arbitration_the_department_cannot_return(server, n):
    rules = replace(get_runtime(server).rules, max_returns=n)
    with get_db(server).session_scope() as s:
        cid = _new(s, rules, f"arb-{n}", L(11, 3, 9))
        _act(s, rules, cid, Action.REGISTER, L(11, 3, 9, 5))
        t = L(11, 3, 9, 10)
        for i in range(n):
            with pytest.raises(ValidationFailed, match="use 'dispatch'"):      # nothing to arbitrate yet
                _act(s, rules, cid, Action.ARBITRATE, t, A, note="审定")
            _act(s, rules, cid, Action.DISPATCH, t, (A, B)[i % 2])
            case = _act(s, rules, cid, Action.RETURN, L(11, 3, 10 + i), reason="ownership")
            assert case.return_count == i + 1
            t = L(11, 3, 10 + i, 30)
        # exactly n returns: a plain dispatch is refused, an arbitration needs its ruling
        with pytest.raises(ValidationFailed, match="arbitration"):
            _act(s, rules, cid, Action.DISPATCH, t, A)
        with pytest.raises(ValidationFailed, match="needs the ruling"):
            _act(s, rules, cid, Action.ARBITRATE, t, A)
        case = s.get(Incident, cid)
        assert blocked_actions(return_count=case.return_count, max_returns=n, arbitrated=case.arbitrated) == {
            Action.DISPATCH}
        assert permissions.available_actions(Role.DISPATCHER, State.REGISTERED,
                                             blocked=blocked_actions(return_count=n, max_returns=n,
                                                                     arbitrated=False))[0] is Action.ARBITRATE
        case = _act(s, rules, cid, Action.ARBITRATE, t, A, note="经审定由西湖区城管局办理")
        assert case.state == State.DISPATCHED and case.arbitrated and case.department_code == A
        assert case.dispatch_count == n + 1 and case.sign_due is not None
        with pytest.raises(ValidationFailed, match="can no longer return"):
            _act(s, rules, cid, Action.RETURN, L(11, 3, 16), reason="overlap")
        _act(s, rules, cid, Action.SIGN, L(11, 3, 16))
        assert _timeline(s, cid) == ["report", "register", *(["dispatch", "return"] * n), "arbitrate", "sign"]
        arb = s.query(IncidentEvent).filter_by(incident_id=cid, action="arbitrate").one()
        assert arb.payload["returns"] == n and arb.note == "经审定由西湖区城管局办理"


def _known_cases(s, rules) -> None:
    """Five cases first dispatched between 09-28 and 10-12 (Asia/Shanghai), sign-for 2 working hours."""
    c1, c2 = _new(s, rules, "k1", L(9, 30, 15)), _new(s, rules, "k2", L(9, 30, 15))
    for cid, signed in ((c1, L(10, 8, 9, 50)), (c2, L(10, 8, 10, 30))):   # due Thu 10-08 10:00 (国庆)
        _act(s, rules, cid, Action.REGISTER, L(9, 30, 16))
        _act(s, rules, cid, Action.DISPATCH, L(9, 30, 17), A)
        _act(s, rules, cid, Action.SIGN, signed)                              # c1 on time, c2 late
    c3 = _new(s, rules, "k3", L(10, 9, 15))
    _act(s, rules, c3, Action.REGISTER, L(10, 9, 16))
    _act(s, rules, c3, Action.DISPATCH, L(10, 9, 17), B)                      # due Sat 10-10 10:00 (调休)
    _act(s, rules, c3, Action.SIGN, L(10, 10, 9))                             # on time, on the 调休 day
    c4 = _new(s, rules, "k4", L(10, 8, 8, 30))
    _act(s, rules, c4, Action.REGISTER, L(10, 8, 8, 45))
    _act(s, rules, c4, Action.DISPATCH, L(10, 8, 9), A)                       # due 10-08 11:00
    _act(s, rules, c4, Action.RETURN, L(10, 8, 11), reason="territory")       # A returns it
    _act(s, rules, c4, Action.DISPATCH, L(10, 8, 14), B)
    _act(s, rules, c4, Action.SIGN, L(10, 8, 14, 30))                         # first sign-for after the first due
    c5 = _new(s, rules, "k5", L(10, 9, 8, 30))
    _act(s, rules, c5, Action.REGISTER, L(10, 9, 8, 45))
    _act(s, rules, c5, Action.DISPATCH, L(10, 9, 9), B)                       # never signed for


def test_on_time_sign_rate_and_returns_have_the_known_answers_on_both_paths(server, app):
    rt = get_runtime(server)
    period = kpis.Period(L(9, 28, 0), L(10, 12, 0))
    with get_db(server).session_scope() as s:
        _known_cases(s, rt.rules)
    with server.app_context(), get_db(server).session_scope() as s:
        for as_of, signed, signable, returns, by_dept in (
                # the end: c1 and c3 of all five; A returned c4 (now with B)
                (L(10, 12, 0), 2, 5, 1, {A: (1, 2, 1), B: (1, 3, 0)}),
                # 10-08 10:00: c1 signed, c2 and c4 not yet; c3, c5 not dispatched; c4 not yet returned
                (L(10, 8, 10), 1, 3, 0, {A: (1, 3, 0)})):
            for report in (_reference(s, rt, period, as_of, "department")[0],
                           _fast(s, rt, period, as_of, "department")[1]):
                k = report.kpis
                assert (k["on_time_sign_rate"].numerator, k["on_time_sign_rate"].denominator) == (signed, signable)
                assert k["returns_count"].numerator == returns
                for dept, (num, den, ret) in by_dept.items():
                    g = report.groups[dept]
                    assert (g["on_time_sign_rate"].numerator, g["on_time_sign_rate"].denominator,
                            g["returns_count"].numerator) == (num, den, ret), (as_of, dept)
            _check(s, rt, period, as_of)
        # at 10:00 on 10-08, c4's return (11:00) is still ahead: it is replayed from its events
        ps, _ = _fast(s, rt, period, L(10, 8, 10))
        assert list(ps.replayed.index) == [s.query(Incident.id).filter_by(external_id="k4").scalar()]


def _workbench(server, who: tuple, cid: int, action: str, **values) -> tuple[str, str]:
    """The case panel's confirm button (``_case.run_action``) as the logged-in user ``who``."""
    import uuid
    from flask_login import login_user
    from dashboards import _case
    from data_sources.web.gate import SessionUser
    with get_db(server).session_scope() as s:
        version = s.get(Incident, cid).version
    with server.test_request_context("/_dash-update-component", method="POST"):
        login_user(SessionUser(*who))
        _case.guard_actions()
        return _case.run_action({"action": action, "case": cid, "request_id": uuid.uuid4().hex},
                                {"id": cid, "version": version}, values)


def test_the_workbench_return_form_takes_a_reason_code_and_offers_arbitration_after_n_returns(server):
    from datetime import timedelta, timezone
    rules = get_runtime(server).rules
    start = datetime.now(timezone.utc) - timedelta(hours=3)
    with get_db(server).session_scope() as s:
        cid = _new(s, rules, "wb-arb", start)
        _act(s, rules, cid, Action.REGISTER, start + timedelta(minutes=1))
        _act(s, rules, cid, Action.DISPATCH, start + timedelta(minutes=2), A)
    dept = (201, "wb-a", Role.DEPARTMENT, A, "wb-a")
    disp = (202, "wb-disp", Role.DISPATCHER, None, "wb-disp")
    assert _workbench(server, dept, cid, "return", note="不是我们的") == ("incomplete", "请选择退单原因")
    status, msg = _workbench(server, dept, cid, "return", return_reason="overlap", note="与住建职能交叉")
    assert status == "ok", msg
    assert _workbench(server, disp, cid, "dispatch", dept=A)[0] == "ok"
    assert _workbench(server, dept, cid, "return", return_reason="territory")[0] == "ok"
    # two returns: the panel offers 审定派遣 instead of 派遣, and it needs the ruling
    from dashboards import _case
    with server.test_request_context("/"):
        from flask_login import login_user
        from data_sources.web.gate import SessionUser
        login_user(SessionUser(*disp))
        d = _case.load(cid)
    assert "arbitrate" in d["actions"] and "dispatch" not in d["actions"] and d["return_count"] == 2
    assert d["return_reasons"]["overlap"] == "职能交叉"
    status, msg = _workbench(server, disp, cid, "dispatch", dept=A)
    assert status == "refused" and "arbitrat" in msg
    assert _workbench(server, disp, cid, "arbitrate", dept=A)[0] == "incomplete"
    assert _workbench(server, disp, cid, "arbitrate", dept=A, note="经审定由西湖区城管局办理")[0] == "ok"
    status, msg = _workbench(server, dept, cid, "return", return_reason="territory")
    assert status == "refused" and "no longer return" in msg
    with get_db(server).session_scope() as s:
        reasons = [e.payload["reason"] for e in s.query(IncidentEvent).filter_by(incident_id=cid, action="return")]
    assert reasons == ["overlap", "territory"]
