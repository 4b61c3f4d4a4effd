"""Where the 处置 clock starts (the pack's ``[workflow] disposal_clock``, issue 14 item 1), on both
databases: the same cases dispatched, signed for and resolved over the 国庆 holiday and the 调休
Saturday after it, with hand-computed deadlines under "dispatch" (the national workflow) and "sign"
(the department's 签收 starts it); re-dispatch, return, extension and suspension under both; what
the screens and the API show before the 签收; and 按期处置率 / 超期未处置数 on both KPI paths."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import kpis, services, sla
from incidents.model import Action, Light, Role
from incidents.queries import cases as case_queries
from incidents.queries import wall as wall_queries
from incidents.services import Actor, Incident
from tests.integration.helpers import login
from tests.integration.test_kpi_facts import _check, _fast, _reference, with_clock
from tests.integration.test_sign_for import _act

SH = ZoneInfo("Asia/Shanghai")
A, B = "330106-CGJ", "330105-CGJ"
CATEGORY = "E0102"          # 积存垃圾渣土: 4 working hours (normal priority); 签收 within 2 working hours


def L(m, d, hh, mm=0) -> datetime:
    return datetime(2026, m, d, hh, mm, tzinfo=SH)


def _new(s, rules, tag: str, at: datetime) -> int:
    return services.create_case(s, rules, source="clock", external_id=tag, channel="12345", title="渣土堆积",
                                reported_at=at, now=at, category_code=CATEGORY, lon=120.1293, lat=30.2741).id


def _holiday_case(s, rules) -> int:
    """Dispatched Wed 09-30 16:00, the eve of 国庆 (10-01 … 10-07 off); signed Thu 10-08 09:30
    (late: due 09:00); resolved 10-08 14:00."""
    cid = _new(s, rules, "holiday", L(9, 30, 15))
    _act(s, rules, cid, Action.REGISTER, L(9, 30, 15, 30))
    _act(s, rules, cid, Action.DISPATCH, L(9, 30, 16), A)
    return cid


def _tiaoxiu_case(s, rules) -> int:
    """Dispatched Fri 10-09 16:30; signed on the 调休 working Saturday 10-10 09:00; resolved 13:45."""
    cid = _new(s, rules, "tiaoxiu", L(10, 9, 16))
    _act(s, rules, cid, Action.REGISTER, L(10, 9, 16, 10))
    _act(s, rules, cid, Action.DISPATCH, L(10, 9, 16, 30), B)
    return cid


# the hand-computed clock: office hours 08:30–12:00 and 13:30–17:30
EXPECTED = {
    #             sign_due          deadline before 签收  deadline after 签收   on time
    "dispatch": {"holiday": (L(10, 8, 9), L(10, 8, 11), L(10, 8, 11), False),
                 # 16:00–17:30 (1.5 h), then 10-08 08:30 + 2.5 h
                 "tiaoxiu": (L(10, 10, 9, 30), L(10, 10, 11, 30), L(10, 10, 11, 30), False)},
                 # Fri 16:30–17:30 (1 h), then the 调休 Saturday 08:30 + 3 h
    "sign": {"holiday": (L(10, 8, 9), None, L(10, 8, 15), True),
             # signed 10-08 09:30: 09:30–12:00 (2.5 h), 13:30 + 1.5 h
             "tiaoxiu": (L(10, 10, 9, 30), None, L(10, 10, 14, 30), True)},
             # signed Sat 10-10 09:00 (the 调休 day counts): 09:00–12:00 (3 h), 13:30 + 1 h
}


@pytest.mark.parametrize("clock", ["dispatch", "sign"])
def test_dispatch_sign_resolve_over_a_holiday_and_a_tiaoxiu_day_have_the_known_deadlines(server, clock):
    rt = with_clock(get_runtime(server), clock)
    rules = rt.rules
    want = EXPECTED[clock]
    with get_db(server).session_scope() as s:
        ids = {"holiday": _holiday_case(s, rules), "tiaoxiu": _tiaoxiu_case(s, rules)}
        for name, cid in ids.items():
            due, before, _, _ = want[name]
            case = s.get(Incident, cid)
            assert (case.sign_due, case.deadline) == (due, before), name
        for name, at in (("holiday", L(10, 8, 9, 30)), ("tiaoxiu", L(10, 10, 9))):
            case = _act(s, rules, ids[name], Action.SIGN, at)
            assert case.deadline == want[name][2], name
            # warn_at: 80 % of the 4 hours (3.2 h) from the same clock start
            start = at if clock == "sign" else case.dispatched_at
            assert case.warn_at == rt.calendar.add_working_hours(start, 3.2)
        for name, at in (("holiday", L(10, 8, 14)), ("tiaoxiu", L(10, 10, 13, 45))):
            case = _act(s, rules, ids[name], Action.RESOLVE, at)
            assert case.on_time is want[name][3], name
    # 按期处置率 (both dispatched in the period) and 超期未处置数 at two instants, on both paths
    period = kpis.Period(L(9, 28, 0), L(10, 12, 0))
    with server.app_context(), get_db(server).session_scope() as s:
        for as_of, overdue in ((L(10, 8, 11, 30), {"dispatch": 1, "sign": 0}[clock]),   # past 11:00, before 15:00
                               (L(10, 8, 9, 15), 0),                                      # nothing late yet
                               (L(10, 12, 0), 0)):
            for report in (_reference(s, rt, period, as_of)[0], _fast(s, rt, period, as_of)[1]):
                assert report.kpis["overdue_open_count"].numerator == overdue, as_of
            _check(s, rt, period, as_of)
        for report in (_reference(s, rt, period, L(10, 12, 0))[0], _fast(s, rt, period, L(10, 12, 0))[1]):
            k = report.kpis["on_time_disposal_rate"]
            assert (k.numerator, k.denominator) == ({"dispatch": 0, "sign": 2}[clock], 2)


def test_before_the_sign_for_a_case_shows_its_sign_for_clock_only(server):
    """Under "sign": no 处置 deadline, no 处置 light, no case clock before the 签收 — the queue, the
    case page, the wall and the API show the 签收 light (red past sign_due); after it, the 处置 clock."""
    rt = with_clock(get_runtime(server), "sign")
    with get_db(server).session_scope() as s:
        cid = _holiday_case(s, rt.rules)
    now = L(10, 8, 9, 15)                   # 15 minutes past the 签收 deadline
    with server.test_request_context():
        row = next(r for r in case_queries.queue_page(now, calendar=rt.calendar).rows if r["id"] == cid)
        assert (row["deadline"], row["light"], row["remaining_hours"], row["sign_light"]) == (
            None, None, None, Light.RED.value)
        detail = case_queries.case_detail(now, cid, rules=rt.rules, role="dispatcher", department_code=None)
        assert (detail["deadline"], detail["light"], detail["sign_light"]) == (None, None, Light.RED.value)
        assert case_queries.case_clock(now, cid, calendar=rt.calendar, role="dispatcher", department_code=None) is None
        with get_db(server).read_scope() as s:
            assert wall_queries.lights_of_running_cases(s, now)["red"] == 1
            assert wall_queries.lights_of_running_cases(s, L(10, 8, 8, 45))["green"] == 1
    client = login(server, "clock-disp", "dispatcher")     # (the API's now is today: past both deadlines)
    got = client.get(f"/api/v1/incidents/{cid}").get_json()
    assert (got["deadline"], got["light"], got["sign_light"]) == (None, "red", "red")
    listed = client.get("/api/v1/incidents?light=red").get_json()["items"]
    assert [i["id"] for i in listed] == [cid]
    with get_db(server).session_scope() as s:
        _act(s, rt.rules, cid, Action.SIGN, L(10, 8, 9, 30))
    with server.test_request_context():
        clock = case_queries.case_clock(L(10, 8, 10), cid, calendar=rt.calendar, role="dispatcher",
                                        department_code=None)
    assert clock["deadline"] == L(10, 8, 15) and clock["light"] == Light.GREEN.value
    assert clock["remaining_hours"] == pytest.approx(3.5)     # 10:00–12:00, 13:30–15:00
    got = client.get(f"/api/v1/incidents/{cid}").get_json()
    assert datetime.fromisoformat(got["deadline"]) == L(10, 8, 15) and got["sign_light"] is None


@pytest.mark.parametrize("clock", ["dispatch", "sign"])
def test_return_redispatch_extend_suspend_and_rework_keep_the_rule(server, clock):
    """Each deadline against an independent computation (``sla.deadline_for``) from the clock start
    the rule names; under "sign", time suspended or extended before the 签收 moves nothing early."""
    rt = with_clock(get_runtime(server), clock)
    rules, cal = rt.rules, rt.calendar

    def expect(dispatched: datetime, signed: datetime | None, *, ext: float = 0.0, spans=()):
        start = signed if clock == "sign" else dispatched
        if start is None:
            return None
        return sla.deadline_for(start, 4, "work_hours", cal, extension_hours=ext,
                                suspended_spans=[sp for sp in spans if sp[0] >= start])

    with get_db(server).session_scope() as s:
        cid = _holiday_case(s, rules)                                   # A, 09-30 16:00
        case = _act(s, rules, cid, Action.RETURN, L(10, 8, 9), reason="territory")
        assert case.deadline is None and case.warn_at is None
        d2 = L(10, 8, 10)
        assert _act(s, rules, cid, Action.DISPATCH, d2, B).deadline == expect(d2, None)
        # an approved extension before the 签收: 2 more hours, from whichever start
        assert _act(s, rules, cid, Action.EXTEND, L(10, 8, 10, 30), hours=2.0).deadline == expect(d2, None, ext=2)
        # suspended before the 签收 for a day (counts under "dispatch" only)
        _act(s, rules, cid, Action.SUSPEND, L(10, 8, 11), reason="weather")
        early = (L(10, 8, 11), L(10, 9, 11))
        case = _act(s, rules, cid, Action.RESUME, early[1])
        assert case.deadline == expect(d2, None, ext=2, spans=[early])
        signed = L(10, 9, 13, 30)
        case = _act(s, rules, cid, Action.SIGN, signed)
        assert case.deadline == expect(d2, signed, ext=2, spans=[early])
        # suspended after the 签收 (counts under both)
        late = (L(10, 9, 14), L(10, 10, 9))
        _act(s, rules, cid, Action.SUSPEND, late[0], reason="weather")
        case = _act(s, rules, cid, Action.RESUME, late[1])
        assert case.deadline == expect(d2, signed, ext=2, spans=[early, late])
        # reassigned: both clocks start again from the reassignment
        r = L(10, 10, 10)
        case = _act(s, rules, cid, Action.REASSIGN, r, A)
        assert case.deadline == expect(r, None) and case.sign_due == cal.add_working_hours(r, 2)
        signed = L(10, 10, 11)
        assert _act(s, rules, cid, Action.SIGN, signed).deadline == expect(r, signed)
        # due 15:30 from the reassignment, 16:30 from the 签收
        assert _act(s, rules, cid, Action.RESOLVE, L(10, 10, 16)).on_time is (clock == "sign")
        # 核查 fails: back to the department, which signs for it again
        v = L(10, 12, 9)
        case = services.act(s, rules, Actor("insp", Role.INSPECTOR), cid, Action.VERIFY_FAIL,
                            version=s.get(Incident, cid).version, now=v, note="未处置到位").case
        assert case.deadline == expect(v, None) and case.on_time is None
        signed = L(10, 12, 10)
        assert _act(s, rules, cid, Action.SIGN, signed).deadline == expect(v, signed)
        assert _act(s, rules, cid, Action.RESOLVE, L(10, 12, 14, 45)).on_time is (clock == "sign")   # due 14:30 | 15:30
    period = kpis.Period(L(9, 28, 0), L(10, 14, 0))
    with server.app_context(), get_db(server).session_scope() as s:
        # (the instants between the two rules' deadlines: the reference rebuilds them from the events)
        for as_of in (L(10, 8, 10, 45), L(10, 9, 12), L(10, 10, 10, 30), L(10, 10, 15, 45), L(10, 10, 16, 15),
                      L(10, 12, 9, 30), L(10, 14, 0)):
            _check(s, rt, period, as_of)
        # 15:45 on 10-10: past the reassignment's 15:30, before the 签收's 16:30; 16:15: resolved at 16:00
        k = _reference(s, rt, period, L(10, 10, 15, 45))[0].kpis
        assert k["overdue_open_count"].numerator == (clock == "dispatch")
        k = _reference(s, rt, period, L(10, 10, 16, 15))[0].kpis
        assert k["on_time_disposal_rate"].numerator == (clock == "sign")
