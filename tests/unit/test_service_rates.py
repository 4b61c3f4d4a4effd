"""The 一网通办 / 好差评 demo generator: deterministic, consistent, realistic (no database)."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

import pytest

from data_sources.feeds import demo_service_rates as sr
from data_sources.packs import load_pack

START, END = date(2026, 9, 1), date(2026, 10, 31)   # includes the 国庆 holidays


@pytest.fixture(scope="module")
def pack():
    return load_pack("hangzhou")


@pytest.fixture(scope="module")
def rows(pack):
    return sr.generate_service_rates(pack, START, END, seed=7)


def test_the_same_seed_draws_the_same_rows_and_another_seed_does_not(pack, rows):
    assert sr.generate_service_rates(pack, START, END, seed=7) == rows
    assert sr.generate_service_rates(pack, START, END, seed=8) != rows


def test_a_row_does_not_depend_on_the_range_it_was_drawn_in(pack, rows):
    one_day = sr.generate_service_rates(pack, date(2026, 10, 8), date(2026, 10, 8), seed=7)
    assert one_day == [r for r in rows if r["day"] == date(2026, 10, 8)]


def test_every_row_is_consistent(rows):
    for r in rows:
        ratings = sum(r[f"rating_{i}"] for i in range(1, 6))
        assert 0 <= r["online"] <= r["total"]
        assert 0 <= r["completed"] <= r["total"]
        assert 0 <= r["on_time"] <= r["completed"]
        assert ratings <= r["completed"]
        assert 0 <= r["bad_rectified"] <= r["rating_1"] + r["rating_2"]
    keys = [(r["department_code"], r["day"], r["item_code"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_only_service_departments_of_the_pack_get_3_to_6_items(pack, rows):
    codes = {d.code for d in pack.departments}
    per_dept = defaultdict(set)
    for r in rows:
        per_dept[r["department_code"]].add(r["item_code"])
    assert set(per_dept) <= codes
    assert {"HZ-SCJGJ", "HZ-ZJJ", "HZ-GHZYJ", "HZ-JTJ", "HZ-STHJJ", "HZ-CGJ", "330106-SCJG"} <= set(per_dept)
    assert "HZ-CGZX" not in per_dept and "330106-JD-XIXI" not in per_dept
    assert all(3 <= len(items) <= 6 for items in per_dept.values())


def test_the_figures_look_like_a_real_city(rows):
    totals = defaultdict(lambda: [0, 0])
    good = rated = 0
    for r in rows:
        totals[r["department_code"]][0] += r["total"]
        totals[r["department_code"]][1] += r["online"]
        good += r["rating_4"] + r["rating_5"]
        rated += sum(r[f"rating_{i}"] for i in range(1, 6))
    online = {code: o / t for code, (t, o) in totals.items()}
    assert all(0.74 <= v <= 0.99 for v in online.values())
    under = [c for c, v in online.items() if v < 0.85]
    assert 1 <= len(under) <= len(online) // 4          # a few departments miss the 85 % target
    assert 0.95 <= good / rated <= 0.99                  # 好评率
    # the halls close on holidays: 国庆 sees a fraction of a working day's volume
    by_day = defaultdict(int)
    for r in rows:
        by_day[r["day"]] += r["total"]
    assert by_day[date(2026, 10, 2)] < 0.3 * by_day[date(2026, 10, 9)]


def test_kpi_values_cover_each_indicator_period():
    values = sr.generate_kpi_values(START, END, seed=7)
    by_code = defaultdict(list)
    for v in values:
        by_code[v["indicator_code"]].append(v["period_start"])
    assert len(by_code["hotline_connect_rate"]) == (END - START).days + 1
    assert by_code["cases_per_10k"][-1] == date(2026, 10, 1) and len(by_code["cases_per_10k"]) == 12
    assert by_code["gdp_growth"][-1] == date(2026, 7, 1) and len(by_code["gdp_growth"]) == 8
    assert all(0 <= v["value"] <= 1 for v in values
               if next(i for i in sr.KPI_INDICATORS if i.code == v["indicator_code"]).unit == "%")
    assert sr.generate_kpi_values(START, END, seed=7) == values


def test_kpi_values_cover_every_month_of_a_history_longer_than_a_year():
    end = date(2026, 11, 17)
    values = sr.generate_kpi_values(end - timedelta(days=399), end, seed=7)
    months = sorted(v["period_start"] for v in values if v["indicator_code"] == "cases_per_10k")
    assert months[0] == date(2025, 10, 1) and months[-1] == date(2026, 11, 1) and len(months) == 14
    quarters = sorted(v["period_start"] for v in values if v["indicator_code"] == "gdp_growth")
    assert quarters[0] <= date(2025, 10, 1) and quarters[-1] == date(2026, 7, 1)
