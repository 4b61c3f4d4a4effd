"""The brief's pure pieces (incidents.kpis): sparkline buckets, KPI series equal to the sub-period
KPIs, like-for-like comparisons, the change shown beside a KPI, and KPI-feed indicators."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from incidents import kpis
from incidents.kpis import Period
from tests.unit.test_kpis import CAL, Cases, closed_case, t

UTC = timezone.utc
SH = ZoneInfo("Asia/Shanghai")


def local(*a) -> datetime:
    return datetime(*a, tzinfo=SH)


# --------------------------------------------------------------------------- buckets

def test_a_day_has_hourly_buckets_a_month_daily_a_quarter_weekly():
    day = Period(local(2026, 11, 22), local(2026, 11, 23))
    assert len(kpis.period_buckets(day, "Asia/Shanghai")) == 24
    month = Period(local(2026, 11, 1), local(2026, 12, 1))
    b = kpis.period_buckets(month, "Asia/Shanghai")
    assert len(b) == 30 and b[0].start == month.start and b[-1].end == month.end
    quarter = Period(local(2026, 10, 1), local(2027, 1, 1))
    b = kpis.period_buckets(quarter, "Asia/Shanghai")
    # 2026-10-01 is a Thursday: a short first week, then Mondays, the last clipped at 01-01
    assert b[0].end == local(2026, 10, 5) and all(x.start.astimezone(SH).weekday() == 0 for x in b[1:])
    assert b[-1].end == quarter.end and len(b) == 14
    assert all(x.end == y.start for x, y in zip(b, b[1:]))


def test_a_long_custom_period_has_monthly_buckets():
    p = Period(local(2025, 1, 15), local(2026, 6, 1))
    b = kpis.period_buckets(p, "Asia/Shanghai")
    assert b[0] == Period(local(2025, 1, 15), local(2025, 2, 1)) and len(b) == 17


# --------------------------------------------------------------------------- series

def test_each_series_point_equals_the_kpi_of_its_sub_period():
    b = Cases()
    closed_case(b, 1, day=6)
    closed_case(b, 2, day=7, resolve="16:00")
    closed_case(b, 3, day=7, on_time=False)
    b.add(4, t(7, "10:00"), [("register", t(7, "10:05"), "registered"),
                             ("dispatch", t(7, "10:30"), "dispatched", "B"),
                             ("return", t(7, "11:00"), "registered")])
    b.add(5, t(6, "10:00"), [("register", t(6, "10:05"), "registered"), ("void", t(6, "11:00"), "voided")])
    cases, events = b.frames()
    whole = Period(t(6, "00:00"), t(8, "00:00"))
    as_of = t(8, "12:00")
    facts, before, reported_at = kpis._facts(cases, events, whole, as_of, CAL)
    buckets = [Period(t(6, "00:00"), t(7, "00:00")), Period(t(7, "00:00"), t(8, "00:00"))]
    rates = pd.DataFrame(columns=list(kpis.SERVICE_RATE_COLUMNS))
    series = kpis.kpi_series(facts, before, reported_at, rates, buckets, as_of, tz="UTC")
    for i, bucket in enumerate(buckets):
        alone = kpis.kpi_report(cases, events, None, bucket, as_of, tz="UTC", cal=CAL)
        for code, values in series.items():
            assert values[i] == alone.kpis[code].value, (code, i)
    assert series["registered_count"] == [2, 3]   # the voided case counts as registered
    assert series["accurate_dispatch_rate"] == [1.0, pytest.approx(2 / 3)]
    assert "overdue_open_count" not in series


def test_brief_figures_equal_the_grouped_reports():
    b = Cases()
    for i in range(1, 6):
        closed_case(b, i, dept="A" if i < 4 else "B", district="D1" if i % 2 else "D2", on_time=i != 2)
    cases, events = b.frames()
    period = Period(t(6, "00:00"), t(8, "00:00"))
    as_of = t(8, "12:00")
    rates = pd.DataFrame(columns=list(kpis.SERVICE_RATE_COLUMNS))
    dept, dist, buckets, series, flags = kpis.brief_figures(cases, events, rates, period, as_of, tz="UTC", cal=CAL,
                                                     min_volume=1)
    for by, got in (("department", dept), ("district", dist)):
        want = kpis.kpi_report(cases, events, rates, period, as_of, tz="UTC", cal=CAL, group_by=by, min_volume=1)
        assert got == want
    assert len(buckets) == 2 and series["closed_count"] == [5, 0]
    assert int((flags["closed_count"] == "N").sum()) == 5


# --------------------------------------------------------------------------- comparisons

def test_a_month_in_progress_is_compared_with_the_same_progress_of_the_months_before():
    month = Period(local(2026, 11, 1), local(2026, 12, 1))
    as_of = local(2026, 11, 22, 14, 5)
    prev, ly = kpis.comparisons(month, as_of, "Asia/Shanghai")
    assert prev.period == Period(local(2026, 10, 1), local(2026, 10, 22, 14, 5)) and prev.as_of == prev.period.end
    assert ly.period == Period(local(2025, 11, 1), local(2025, 11, 22, 14, 5)) and ly.as_of == ly.period.end


def test_a_finished_period_is_compared_whole_at_the_same_lag():
    week = Period(local(2026, 11, 9), local(2026, 11, 16))
    as_of = local(2026, 11, 22, 9, 0)
    prev, _ = kpis.comparisons(week, as_of, "Asia/Shanghai")
    assert prev.period == Period(local(2026, 11, 2), local(2026, 11, 9))
    assert prev.as_of == local(2026, 11, 15, 9, 0)


def test_change_is_points_for_rates_and_relative_for_counts():
    assert kpis.change(0.95, 0.93, "%") == pytest.approx(0.02)
    assert kpis.change(110, 100, "件") == pytest.approx(0.1)
    assert kpis.change(5, 0, "件") is None and kpis.change(None, 0.9, "%") is None


# --------------------------------------------------------------------------- KPI feed

def _indicators():
    ind = pd.DataFrame([
        dict(code="calls", name="12345 来电量", name_en="Calls", unit="件", direction="down", target=None,
             period="day", group="12345"),
        dict(code="connect", name="12345 接通率", name_en="Answer rate", unit="%", direction="up", target=0.9,
             period="day", group="12345"),
        dict(code="pm25", name="PM2.5", name_en="PM2.5", unit="μg/m³", direction="down", target=30.0,
             period="month", group="生态环境"),
    ])
    vals = [dict(indicator_code="calls", period_start=date(2026, 11, d), dimension="", value=100.0 * d)
            for d in (1, 2, 3)]
    vals += [dict(indicator_code="connect", period_start=date(2026, 11, d), dimension="", value=v)
             for d, v in ((1, 0.8), (2, 0.9), (3, 1.0))]
    vals += [dict(indicator_code="connect", period_start=date(2026, 11, 2), dimension="西湖区", value=0.1)]
    vals += [dict(indicator_code="pm25", period_start=date(2026, m, 1), dimension="", value=20.0 + m)
             for m in (9, 10, 11)]
    return ind, pd.DataFrame(vals)


def test_daily_indicators_sum_counts_and_average_rates_over_the_period():
    ind, vals = _indicators()
    period = Period(local(2026, 11, 2), local(2026, 11, 4))
    got = {r.code: r for r in kpis.indicator_results(ind, vals, period, "Asia/Shanghai")}
    assert got["calls"].value == 500.0 and got["calls"].n == 2 and got["calls"].met is None
    assert got["connect"].value == pytest.approx(0.95) and got["connect"].met is True   # the 西湖区 row is not city-wide
    assert got["connect"].series == [0.9, 1.0]


def test_monthly_indicators_give_the_latest_month_begun_before_the_end():
    ind, vals = _indicators()
    period = Period(local(2026, 10, 5), local(2026, 10, 20))
    got = {r.code: r for r in kpis.indicator_results(ind, vals, period, "Asia/Shanghai")}
    assert got["pm25"].value == 30.0 and got["pm25"].covers == "2026年10月" and got["pm25"].met is True
    assert got["pm25"].series == [29.0, 30.0]
    assert got["calls"].value is None and got["calls"].n == 0


def test_case_flags_add_up_to_each_kpis_numerator_and_denominator():
    b = Cases()
    closed_case(b, 1)
    closed_case(b, 2, on_time=False, resolve="16:00")
    b.add(3, t(6, "10:00"), [("register", t(6, "10:05"), "registered")])
    b.add(4, t(6, "10:00"), [("register", t(6, "10:05"), "registered"), ("void", t(6, "11:00"), "voided")])
    rep = b.report()
    flags = kpis.case_flags(b.facts(), {c: rep.kpis[c] for c in kpis.CASE_KPIS})
    for code in kpis.CASE_KPIS:
        k = rep.kpis[code]
        n = int((flags[code] == "N").sum())
        if code == "mean_handling_hours":
            assert n == k.denominator      # its cases: the resolved ones whose hours are averaged
            continue
        assert n == k.numerator, code
        if k.denominator is not None:
            assert n + int((flags[code] == "D").sum()) == k.denominator, code
    assert sorted(flags.index) == [1, 2, 3, 4]
