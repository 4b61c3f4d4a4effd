"""KPIs of DESIGN §6 over hand-built frames with known answers (pure: no database).

Calendar: 09:00–17:00 Mon–Fri in UTC, so working hours are easy to count by hand.
Period: Monday 2024-05-06 (UTC day); as_of: Wednesday 2024-05-08 12:00 unless a test says otherwise.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest

from incidents import kpis
from incidents.kpis import Period
from incidents.sla import WorkCalendar

UTC = timezone.utc
CAL = WorkCalendar(["09:00-17:00"], "UTC", holiday_source="none")
PERIOD = Period(datetime(2024, 5, 6, tzinfo=UTC), datetime(2024, 5, 7, tzinfo=UTC))
AS_OF = datetime(2024, 5, 8, 12, 0, tzinfo=UTC)


def t(day: int, hhmm: str) -> datetime:
    h, m = hhmm.split(":")
    return datetime(2024, 5, day, int(h), int(m), tzinfo=UTC)


class Cases:
    """Builds the cases and events frames. ``steps``: (action, time, to_state[, department][, hours])."""

    def __init__(self):
        self.cases, self.events = [], []

    def add(self, cid, reported, steps, *, deadline=None, on_time=None, district="D1", base_hours=8.0,
            department=None):
        state, dept = "reported", None
        self.events.append(dict(incident_id=cid, id=len(self.events) + 1, at=reported, action="report",
                                from_state=None, to_state="reported", department_code=None, hours=None))
        for step in steps:
            action, at, to = step[:3]
            if action in ("dispatch", "reassign"):
                dept = step[3] if len(step) > 3 else "A"
            elif action in ("return", "reopen"):
                dept = None
            self.events.append(dict(incident_id=cid, id=len(self.events) + 1, at=at, action=action, from_state=state,
                                    to_state=to, department_code=dept,
                                    hours=step[3] if action == "extend" else None))
            state = to
        self.cases.append(dict(id=cid, reported_at=reported, district_code=district,
                               department_code=department if department is not None else dept, state=state,
                               deadline=deadline, on_time=on_time, base_hours=base_hours, natural=False))
        return self

    def frames(self):
        return pd.DataFrame(self.cases), pd.DataFrame(self.events)

    def report(self, as_of=AS_OF, period=PERIOD, **kw):
        c, e = self.frames()
        return kpis.kpi_report(c, e, None, period, as_of, tz="UTC", cal=CAL, **kw)

    def facts(self, as_of=AS_OF, period=PERIOD):
        c, e = self.frames()
        return kpis.case_facts(c, e, period, as_of, CAL)


def closed_case(b: Cases, cid, *, day=6, resolve="13:00", dept="A", district="D1", on_time=True):
    """registered and dispatched at 09:00 on ``day``, resolved at ``resolve``, closed an hour later."""
    return b.add(cid, t(day, "08:00"), [("register", t(day, "08:30"), "registered"),
                                        ("dispatch", t(day, "09:00"), "dispatched", dept),
                                        ("resolve", t(day, resolve), "resolved"),
                                        ("verify_pass", t(day, "16:30"), "closed")],
                 deadline=t(day, "17:00"), on_time=on_time, district=district)


# --------------------------------------------------------------------------- counts

def test_counts_are_cases_with_the_event_in_the_period_and_before_as_of():
    b = Cases()
    closed_case(b, 1)
    b.add(2, t(6, "10:00"), [("register", t(6, "10:05"), "registered")])
    b.add(3, t(6, "11:00"), [("void", t(6, "11:10"), "voided")])                       # reported, never registered
    b.add(4, t(5, "11:00"), [("register", t(5, "11:30"), "registered"),                 # before the period
                             ("dispatch", t(6, "09:30"), "dispatched")], deadline=t(6, "17:30"))
    b.add(5, t(7, "09:00"), [("register", t(7, "09:10"), "registered")])                # after the period
    k = b.report().kpis
    assert k["reported_count"].value == 3          # 1, 2, 3 (voided cases are reported too), not 4 or 5
    assert k["registered_count"].value == 2        # 1, 2
    assert k["dispatched_count"].value == 2        # 1, 4
    assert k["closed_count"].value == 1
    assert k["reported_count"].denominator is None and k["reported_count"].unit == "件"


def test_events_after_as_of_do_not_count():
    b = Cases()
    closed_case(b, 1)
    as_of = t(6, "14:00")  # resolved at 13:00, closed at 16:30 (after as_of)
    k = b.report(as_of=as_of).kpis
    assert k["closed_count"].value == 0
    assert k["closure_rate"].value == 0.0 and k["closure_rate"].denominator == 1
    assert k["on_time_disposal_rate"].value == 1.0  # the resolve at 13:00 did happen by as_of


# --------------------------------------------------------------------------- closure, voided, still open

def test_closure_rate_excludes_voided_and_counts_still_open_cases_as_not_closed():
    b = Cases()
    closed_case(b, 1)
    closed_case(b, 2, resolve="16:00")
    b.add(3, t(6, "10:00"), [("register", t(6, "10:05"), "registered")])               # still open
    b.add(4, t(6, "10:00"), [("register", t(6, "10:05"), "registered"),
                             ("void", t(6, "12:00"), "voided")])                        # voided: out of the cohort
    k = b.report().kpis
    assert (k["closure_rate"].numerator, k["closure_rate"].denominator) == (2, 3)
    assert k["closure_rate"].value == pytest.approx(2 / 3)
    assert k["registered_count"].value == 4        # the event happened: the count includes case 4
    assert "不含作废" in k["closure_rate"].formula


def test_a_case_closed_after_as_of_is_open_at_as_of():
    b = Cases()
    b.add(1, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "09:00"), "dispatched"),
                             ("resolve", t(8, "10:00"), "resolved"),
                             ("verify_pass", t(9, "10:00"), "closed")],                 # after AS_OF
          deadline=t(6, "17:00"), on_time=False)
    k = b.report().kpis
    assert k["closure_rate"].value == 0.0
    assert k["overdue_open_count"].value == 0      # resolved: no longer with the department
    k2 = b.report(as_of=t(7, "12:00")).kpis        # before the resolve: dispatched and past its deadline
    assert k2["overdue_open_count"].value == 1


def test_zero_denominator_gives_none_not_zero():
    k = Cases().report().kpis
    for code in ("closure_rate", "on_time_closure_rate", "on_time_disposal_rate", "rework_rate",
                 "accurate_dispatch_rate", "extension_rate", "mean_handling_hours", "online_rate",
                 "good_rating_rate", "bad_rating_rectification_rate", "on_time_completion_rate"):
        assert k[code].value is None, code
        assert k[code].denominator == 0
    assert k["reported_count"].value == 0


# --------------------------------------------------------------------------- on time, extension, suspension

def test_on_time_rates_use_the_final_resolve():
    b = Cases()
    closed_case(b, 1, resolve="13:00", on_time=True)
    closed_case(b, 2, resolve="13:00", on_time=False)   # stored answer of the services: trusted
    b.add(3, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "09:00"), "dispatched")], deadline=t(6, "17:00"))  # not resolved
    k = b.report().kpis
    assert (k["on_time_disposal_rate"].numerator, k["on_time_disposal_rate"].denominator) == (1, 3)
    assert (k["on_time_closure_rate"].numerator, k["on_time_closure_rate"].denominator) == (1, 3)


def test_deadline_in_force_adds_extensions_and_suspended_working_time():
    start = t(6, "09:00")
    assert kpis.deadline_in_force([("dispatch", start, "registered", None)], 8.0, False, CAL) == t(6, "17:00")
    ext = [("dispatch", start, "registered", None), ("extend", t(6, "12:00"), "dispatched", 8.0)]
    assert kpis.deadline_in_force(ext, 8.0, False, CAL) == t(7, "17:00")
    # suspended Mon 10:00 → Tue 10:00 = 7 + 1 working hours: the deadline moves 8 h
    held = [("dispatch", start, "registered", None), ("suspend", t(6, "10:00"), "dispatched", None),
            ("resume", t(7, "10:00"), "suspended", None)]
    assert kpis.deadline_in_force(held, 8.0, False, CAL) == t(7, "17:00")
    # a suspension while registered (before dispatch) does not move a clock that is not running
    early = [("suspend", t(6, "07:00"), "registered", None), ("resume", t(6, "10:00"), "suspended", None),
             ("dispatch", t(6, "10:00"), "registered", None)]
    assert kpis.deadline_in_force(early, 8.0, False, CAL) == t(7, "10:00")
    # rework restarts the clock; a return stops it
    rework = ext + [("resolve", t(7, "09:00"), "dispatched", None), ("verify_fail", t(7, "10:00"), "resolved", None)]
    assert kpis.deadline_in_force(rework, 8.0, False, CAL) == t(8, "10:00")
    assert kpis.deadline_in_force(ext + [("return", t(6, "13:00"), "dispatched", None)], 8.0, False, CAL) is None
    assert kpis.deadline_in_force([("dispatch", start, None, None)], 8.0, True, CAL) == t(6, "17:00")  # natural


def test_extended_case_is_on_time_against_the_deadline_in_force():
    # resolved Tue 12:00: late against the original Mon 17:00, on time against the extended Tue 17:00.
    # A verify_fail after as_of reset the stored on_time, so the answer is rebuilt from the events.
    b = Cases()
    b.add(1, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "09:00"), "dispatched"),
                             ("extend", t(6, "12:00"), "dispatched", 8.0),
                             ("resolve", t(7, "12:00"), "resolved"),
                             ("verify_fail", t(9, "10:00"), "dispatched")],             # after AS_OF
          deadline=t(10, "10:00"), on_time=None)
    k = b.report().kpis
    assert k["on_time_disposal_rate"].value == 1.0
    assert k["extension_rate"].value == 1.0
    assert k["rework_rate"].value == 0.0           # the verify_fail came after as_of
    b2 = Cases()
    b2.add(1, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                              ("dispatch", t(6, "09:00"), "dispatched"),
                              ("resolve", t(7, "12:00"), "resolved"),
                              ("verify_fail", t(9, "10:00"), "dispatched")], deadline=t(10, "10:00"))
    assert b2.report().kpis["on_time_disposal_rate"].value == 0.0   # no extension: late


def test_an_approved_request_counts_as_the_action_it_approved_and_a_request_alone_not():
    """A department's extend is a request (event ``request``) until a dispatcher's ``approve``
    (``kind`` extend / suspend) applies it: 延期率 and the deadline in force follow the approval."""
    def case(steps):
        b = Cases()
        b.add(1, t(6, "08:00"), [("register", t(6, "08:30"), "registered"), ("dispatch", t(6, "09:00"), "dispatched")]
              + [s[:3] for s in steps] + [("resolve", t(7, "12:00"), "resolved")], deadline=t(6, "17:00"))
        c, e = b.frames()
        e["kind"] = None
        for (action, at, _to, kind, hours) in steps:
            row = e.index[(e["action"] == action) & (e["at"] == at)][0]
            e.loc[row, ["kind", "hours"]] = [kind, hours]
        return kpis.kpi_report(c, e, None, PERIOD, AS_OF, tz="UTC", cal=CAL).kpis

    asked = [("request", t(6, "11:00"), "dispatched", "extend", 8.0)]
    k = case(asked)
    assert k["extension_rate"].value == 0.0 and k["on_time_disposal_rate"].value == 0.0   # late: not extended
    k = case(asked + [("approve", t(6, "12:00"), "dispatched", "extend", 8.0)])
    assert k["extension_rate"].value == 1.0 and k["on_time_disposal_rate"].value == 1.0   # Tue 12:00 ≤ Tue 17:00
    k = case(asked + [("reject", t(6, "12:00"), "dispatched", "extend", 8.0)])
    assert k["extension_rate"].value == 0.0


def test_suspended_case_clock_stops():
    b = Cases()
    # suspended before its deadline and still suspended at as_of: not overdue
    b.add(1, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "09:00"), "dispatched"),
                             ("suspend", t(6, "10:00"), "suspended")], deadline=t(6, "17:00"))
    # suspended after its deadline had passed: overdue
    b.add(2, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "09:00"), "dispatched"),
                             ("suspend", t(7, "10:00"), "suspended")], deadline=t(6, "17:00"))
    # suspended, resumed: resolved Tue 16:00 is on time against the moved deadline Tue 17:00
    b.add(3, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "09:00"), "dispatched"),
                             ("suspend", t(6, "10:00"), "suspended"),
                             ("resume", t(7, "10:00"), "dispatched"),
                             ("resolve", t(7, "16:00"), "resolved"),
                             ("verify_fail", t(9, "09:00"), "dispatched")],             # after AS_OF
          deadline=t(10, "09:00"))
    f = b.facts()
    assert f.loc[1, "overdue"] == False and f.loc[2, "overdue"] == True  # noqa: E712
    k = b.report().kpis
    assert k["overdue_open_count"].value == 1
    assert f.loc[3, "on_time_final"] == True  # noqa: E712
    assert kpis.drill_ids(f, k["overdue_open_count"]) == ([2], [])


def test_deadline_extended_after_as_of_is_not_the_one_in_force_at_as_of():
    b = Cases()
    b.add(1, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "09:00"), "dispatched"),
                             ("extend", t(9, "09:00"), "dispatched", 40.0)],           # after AS_OF
          deadline=t(13, "17:00"))
    assert b.report().kpis["overdue_open_count"].value == 1
    assert b.report(as_of=t(13, "12:00")).kpis["overdue_open_count"].value == 0


# --------------------------------------------------------------------------- rework, dispatch accuracy, time

def test_rework_counts_and_the_final_resolve_decides_on_time():
    b = Cases()
    b.add(1, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "09:00"), "dispatched"),
                             ("resolve", t(6, "10:00"), "resolved"),
                             ("verify_fail", t(6, "11:00"), "dispatched"),
                             ("resolve", t(6, "15:00"), "resolved"),
                             ("verify_pass", t(6, "16:00"), "closed")], deadline=t(7, "11:00"), on_time=True)
    b.add(2, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "09:00"), "dispatched"),
                             ("resolve", t(6, "10:00"), "resolved"),
                             ("verify_pass", t(6, "11:00"), "closed"),
                             ("reopen", t(7, "09:00"), "registered")])                  # open again at as_of
    closed_case(b, 3)
    k = b.report().kpis
    assert (k["rework_rate"].numerator, k["rework_rate"].denominator) == (2, 3)
    assert (k["closure_rate"].numerator, k["on_time_closure_rate"].numerator) == (2, 2)
    assert k["on_time_disposal_rate"].numerator == 2   # case 2's resolve was undone by the reopen
    assert k["closed_count"].value == 3                 # case 2 was closed in the period, then reopened


def test_accurate_dispatch_rate_counts_returns_and_reassignments():
    b = Cases()
    closed_case(b, 1)
    b.add(2, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "09:00"), "dispatched", "A"),
                             ("return", t(6, "10:00"), "registered"),
                             ("dispatch", t(6, "11:00"), "dispatched", "B")], deadline=t(7, "11:00"))
    b.add(3, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "09:00"), "dispatched", "A"),
                             ("reassign", t(6, "10:00"), "dispatched", "B")], deadline=t(7, "10:00"))
    b.add(4, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "09:00"), "dispatched", "A"),
                             ("reassign", t(9, "10:00"), "dispatched", "B")], deadline=t(10, "10:00"))  # after
    k = b.report().kpis
    assert (k["accurate_dispatch_rate"].numerator, k["accurate_dispatch_rate"].denominator) == (2, 4)
    assert k["dispatched_count"].value == 4


def test_mean_handling_time_is_working_hours_from_first_dispatch_to_final_resolve():
    b = Cases()
    closed_case(b, 1, resolve="13:00")                                                 # 4 h
    b.add(2, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "16:00"), "dispatched"),
                             ("resolve", t(7, "10:00"), "resolved")], deadline=t(7, "16:00"), on_time=True)  # 1 + 1 h
    b.add(3, t(6, "08:00"), [("register", t(6, "08:30"), "registered"),
                             ("dispatch", t(6, "09:00"), "dispatched")], deadline=t(6, "17:00"))  # not resolved
    k = b.report().kpis["mean_handling_hours"]
    assert (k.value, k.numerator, k.denominator) == (3.0, 6.0, 2)
    assert k.unit == "工作小时"


def test_drill_ids_give_numerator_and_denominator_cases():
    b = Cases()
    closed_case(b, 1)
    b.add(2, t(6, "10:00"), [("register", t(6, "10:05"), "registered")])
    b.add(3, t(6, "10:00"), [("register", t(6, "10:05"), "registered"), ("void", t(6, "11:00"), "voided")])
    rep = b.report()
    f = b.facts()
    assert kpis.drill_ids(f, rep.kpis["closure_rate"]) == ([1], [1, 2])
    assert kpis.drill_ids(f, rep.kpis["registered_count"]) == ([1, 2, 3], [])
    d = rep.kpis["closure_rate"].drill
    assert d["cohort"] == "registered" and d["exclude_voided"] is True and d["numerator"] == "closed"
    assert d["from"].startswith("2024-05-06") and d["as_of"].startswith("2024-05-08T12:00")


# --------------------------------------------------------------------------- service rates

def test_service_rate_kpis_sum_the_days_of_the_period():
    rates = pd.DataFrame([
        dict(department_code="A", day="2024-05-06", total=100, online=90, completed=80, on_time=78, rating_1=1,
             rating_2=1, rating_3=2, rating_4=10, rating_5=36, bad_rectified=1),
        dict(department_code="A", day="2024-05-07", total=999, online=0, completed=999, on_time=0, rating_1=99,
             rating_2=0, rating_3=0, rating_4=0, rating_5=0, bad_rectified=0),           # outside the period
    ])
    k = kpis.service_kpis(rates, PERIOD, "UTC", {"online_rate": 0.85})
    assert k["online_rate"].value == 0.9 and k["online_rate"].target == 0.85 and k["online_rate"].met
    assert (k["good_rating_rate"].numerator, k["good_rating_rate"].denominator) == (46, 50)
    assert (k["bad_rating_rectification_rate"].numerator, k["bad_rating_rectification_rate"].denominator) == (1, 2)
    assert k["on_time_completion_rate"].value == pytest.approx(78 / 80)


# --------------------------------------------------------------------------- composite, grades, rankings

@pytest.mark.parametrize("score,grade", [(100, "A"), (90, "A"), (89.9999, "B"), (75, "B"), (74.99, "C"),
                                         (60, "C"), (59.99, "D"), (40, "D"), (39.99, "E"), (0, "E")])
def test_grade_boundaries(score, grade):
    assert kpis.grade_for(score) == grade


def test_composite_score_weights():
    assert kpis.composite_score(1, 1, 0, 1) == 100.0
    assert kpis.composite_score(0.5, 1, 0.2, 0.5) == pytest.approx(100 * (0.15 + 0.3 + 0.24 + 0.05))
    assert kpis.grade_for(kpis.composite_score(0.9, 0.9, 0.1, 0.9)) == "A"   # exactly 90, float-safe


def test_ranking_needs_a_minimum_volume_and_lists_the_small_ones_apart():
    b = Cases()
    cid = 0
    for dept, n, late in (("BIG", 10, 3), ("MID", 6, 0), ("TINY", 2, 0)):
        for i in range(n):
            cid += 1
            closed_case(b, cid, dept=dept, on_time=i >= late)
    rep = b.report(group_by="department", min_volume=5, names={"BIG": "大局"})
    r = rep.ranking
    assert [row.code for row in r.ranked] == ["MID", "BIG"]
    assert [row.code for row in r.unranked] == ["TINY"] and "2 < 最低 5" in r.unranked[0].reason
    mid, big = r.ranked
    assert mid.volume_score == 0.6 and big.volume_score == 1.0
    assert mid.score == pytest.approx(100 * (0.3 + 0.3 + 0.3 + 0.06)) and mid.grade == "A"
    assert big.score == pytest.approx(100 * (0.3 + 0.3 * 0.7 + 0.3 + 0.1)) and big.grade == "A"
    assert big.name == "大局" and mid.rank == 1 and big.rank == 2
    assert r.red[0].code == "MID" and r.black[0].code == "BIG"
    assert rep.groups["TINY"]["closure_rate"].value == 1.0          # its KPIs are still shown
    assert "composite_score" not in rep.groups["TINY"]
    assert rep.groups["MID"]["composite_score"].value == mid.score
    assert rep.groups["BIG"]["closure_rate"].drill["department"] == "BIG"


def test_grouping_by_district_and_unassigned_cases():
    b = Cases()
    closed_case(b, 1, district="D1")
    closed_case(b, 2, district="D2")
    b.add(3, t(6, "10:00"), [("register", t(6, "10:05"), "registered")], district="D2")
    rep = b.report(group_by="district", min_volume=1)
    assert rep.groups["D2"]["closure_rate"].value == 0.5
    f = b.facts()
    assert kpis.drill_ids(f, rep.groups["D2"]["closure_rate"]) == ([2], [2, 3])
    dep = b.report(group_by="department", min_volume=1)
    assert kpis.UNASSIGNED in dep.groups
    assert [r.code for r in dep.ranking.unranked] == [kpis.UNASSIGNED]


# --------------------------------------------------------------------------- periods

def test_previous_period_and_same_period_last_year():
    sh = "Asia/Shanghai"
    from zoneinfo import ZoneInfo
    z = ZoneInfo(sh)

    def local(y, m, d, h=0):
        return datetime(y, m, d, h, tzinfo=z)
    day = Period(local(2024, 3, 1), local(2024, 3, 2))
    assert kpis.previous_period(day, sh) == Period(local(2024, 2, 29), local(2024, 3, 1))
    month = Period(local(2024, 3, 1), local(2024, 4, 1))
    assert kpis.previous_period(month, sh) == Period(local(2024, 2, 1), local(2024, 3, 1))
    quarter = Period(local(2024, 1, 1), local(2024, 4, 1))
    assert kpis.previous_period(quarter, sh) == Period(local(2023, 10, 1), local(2024, 1, 1))
    hours = Period(local(2024, 3, 1, 8), local(2024, 3, 1, 12))
    assert kpis.previous_period(hours, sh) == Period(local(2024, 3, 1, 4), local(2024, 3, 1, 8))
    assert kpis.same_period_last_year(Period(local(2024, 2, 29), local(2024, 3, 1)), sh) == \
        Period(local(2023, 2, 28), local(2023, 3, 1))
    assert kpis.same_period_last_year(month, sh) == Period(local(2023, 3, 1), local(2023, 4, 1))
    # DST: a New York day before the spring change is 24 h, the day of it 23 h
    ny = "America/New_York"
    zn = ZoneInfo(ny)
    dst_day = Period(datetime(2024, 3, 10, tzinfo=zn), datetime(2024, 3, 11, tzinfo=zn))
    assert kpis.previous_period(dst_day, ny).start == datetime(2024, 3, 9, tzinfo=zn)
    with pytest.raises(ValueError):
        Period(local(2024, 3, 2), local(2024, 3, 1))
    assert kpis.service_days(Period(local(2024, 3, 1, 8), local(2024, 3, 3)), sh) == \
        (datetime(2024, 3, 2).date(), datetime(2024, 3, 3).date())
