"""Demo government-service feeds: 一网通办 / 好差评 figures and city KPI values.

Deterministic with a seed: every (department, day, service item) row is drawn from its own
generator seeded by ``f"{seed}:{department}:{day}:{item}"``, so a re-seed over an overlapping
range draws the same numbers, and inserts are idempotent (existing keys are left alone).

Which departments run government services, and which items, is pack data (``service_items.csv``:
per department code, or ``*-SUFFIX`` for every district department with that code suffix; the
district departments' volume scale in ``pack.toml`` ``[demo.service_district_scale]``): a pack
without the file simply gets none.

Per row: ``total`` cases, ``online`` handled online (网办率: most departments 86–97 %, a few
below the 85 % target), ``completed``, ``on_time`` (按时办结率 ~ 97–99.5 %), ratings ★1–★5 of
about 60 % of the completed cases (好评率 (★4+★5)/rated ~ 95–99 %) and ``bad_rectified``:
bad ratings (★1, ★2) rectified within 15 working days. Service halls close on non-working
days, so weekends and holidays see only online applications, at a fraction of the volume.

KPI feed: ``KPI_INDICATORS`` (rates are fractions with unit "%", shown ×100) and their
``KpiValue`` rows: daily for the day-period indicators (网办率 and 好评率 are computed from the
service-rate rows, so the two feeds agree), monthly for the last 12 months and quarterly for the
last 8 completed quarters, or for every month and quarter of the span when it is longer (13 months
of demo history: a 同比 for every month).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable, Iterable, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from incidents.kpis import IndicatorDefinition
from incidents.tables import KpiIndicator, KpiValue, ServiceRate

SOURCE = "demo"
RATED_SHARE = (0.5, 0.7)          # share of completed cases that get rated
RECTIFY_SHARE = 0.93              # bad ratings rectified within 15 working days
UNDER_TARGET = 3                  # departments whose 网办率 sits below the 85 % target


def items_for(pack, code: str, district_code: Optional[str] = None) -> list:
    """The pack's service items of department ``code`` (``service_items.csv``): its own, else, for a
    district department, those written for every district department with its code suffix."""
    own = [i for i in pack.service_items if i.department == code]
    if own or not district_code:
        return own
    return [i for i in pack.service_items if i.department == "*-" + code.rsplit("-", 1)[-1]]


def _default_is_workday(d: date) -> bool:
    try:
        import chinese_calendar
        return chinese_calendar.is_workday(d)
    except (ImportError, NotImplementedError):
        return d.weekday() < 5


def _days(start: date, end: date) -> Iterable[date]:
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """Exact for small n, normal approximation for large n (clamped to 0..n)."""
    p = min(max(p, 0.0), 1.0)
    if n <= 60:
        return sum(rng.random() < p for _ in range(n))
    mean, sd = n * p, (n * p * (1 - p)) ** 0.5
    return min(max(int(round(rng.gauss(mean, sd))), 0), n)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:
        return max(int(round(rng.gauss(lam, lam ** 0.5))), 0)
    import math
    limit, k, prod = math.exp(-lam), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


def department_online_rates(codes: list[str], seed: int) -> dict[str, float]:
    """Each department's usual 网办率: most 86–97 %, UNDER_TARGET of them 76–83 %."""
    rng = random.Random(f"{seed}:online-rates")
    ordered = sorted(codes)
    low = set(rng.sample(ordered, min(UNDER_TARGET, max(len(ordered) // 5, 1)))) if ordered else set()
    return {c: (rng.uniform(0.76, 0.83) if c in low else rng.uniform(0.86, 0.97)) for c in ordered}


def generate_service_rates(pack, start_date: date, end_date: date, seed: int, *,
                           is_workday: Optional[Callable[[date], bool]] = None) -> list[dict]:
    """Rows for ServiceRate (as dicts), one per department, day and service item of the pack."""
    is_workday = is_workday or _default_is_workday
    depts = [(d.code, getattr(d, "district_code", None)) for d in pack.departments]
    depts = [(c, dc, items_for(pack, c, dc)) for c, dc in depts]
    depts = [(c, dc, items) for c, dc, items in depts if items]
    base_online = department_online_rates([c for c, _, _ in depts], seed)
    district_scale = pack.demo.get("service_district_scale", {})
    workdays = {d: is_workday(d) for d in _days(start_date, end_date)}
    rows = []
    for code, district, items in depts:
        shared = items[0].department.startswith("*-")   # a district department's share of the city-wide mean
        scale = float(district_scale.get(district or "", 1.0)) if shared else 1.0
        for day, working in workdays.items():
            for item in items:
                rng = random.Random(f"{seed}:{code}:{day.isoformat()}:{item.code}")
                online_p = min(base_online[code] + item.online_bias + rng.uniform(-0.02, 0.02), 0.995)
                mean = item.daily * scale * (rng.uniform(0.8, 1.2) if working else 0.12)
                total = _poisson(rng, mean)
                if working:
                    online = _binomial(rng, total, online_p)
                else:
                    online = total  # the halls are closed: only online applications
                completed = _binomial(rng, total, rng.uniform(0.9, 1.0))
                on_time = _binomial(rng, completed, rng.uniform(0.97, 0.995))
                rated = _binomial(rng, completed, rng.uniform(*RATED_SHARE))
                good = rng.uniform(0.95, 0.99)
                r5 = _binomial(rng, rated, good * 0.9)
                r4 = _binomial(rng, rated - r5, (good - good * 0.9) / (1 - good * 0.9))
                rest = rated - r5 - r4
                r3 = _binomial(rng, rest, 0.5)
                r2 = _binomial(rng, rest - r3, 0.5)
                r1 = rest - r3 - r2
                rectified = _binomial(rng, r1 + r2, RECTIFY_SHARE)
                rows.append(dict(department_code=code, day=day, item_code=item.code, item_name=item.name,
                                 total=total, online=online, completed=completed, on_time=on_time,
                                 rating_1=r1, rating_2=r2, rating_3=r3, rating_4=r4, rating_5=r5,
                                 bad_rectified=rectified, source=SOURCE))
    return rows


def seed_service_rates(session: Session, pack, start_date: date, end_date: date, seed: int, *,
                       is_workday: Optional[Callable[[date], bool]] = None) -> int:
    """Bulk-inserts the rows of ``generate_service_rates`` that are not there yet (unique
    department, day, item); returns how many were inserted."""
    rows = generate_service_rates(pack, start_date, end_date, seed, is_workday=is_workday)
    if not rows:
        return 0
    existing = set(session.execute(
        select(ServiceRate.department_code, ServiceRate.day, ServiceRate.item_code)
        .where(ServiceRate.day >= start_date, ServiceRate.day <= end_date)).all())
    new = [r for r in rows if (r["department_code"], r["day"], r["item_code"]) not in existing]
    for i in range(0, len(new), 5000):
        session.execute(ServiceRate.__table__.insert(), new[i:i + 5000])
    session.flush()
    return len(new)


# =========================================================================== KPI feed


@dataclass(frozen=True)
class Indicator(IndicatorDefinition):
    base: float                   # typical value
    spread: float                 # noise around it


KPI_INDICATORS: list[Indicator] = [
    Indicator("hotline_connect_rate", "12345 接通率", "12345 hotline answer rate", "%", "up", 0.90, "day",
              "12345", 0.93, 0.03),
    Indicator("hotline_satisfaction", "12345 满意率", "12345 hotline satisfaction", "%", "up", 0.95, "day",
              "12345", 0.965, 0.015),
    Indicator("hotline_calls", "12345 来电量", "12345 hotline calls", "件", "down", None, "day",
              "12345", 16000, 2500),
    Indicator("online_rate", "一网通办 网办率", "Online processing rate", "%", "up", 0.85, "day",
              "一网通办", 0.9, 0.02),
    Indicator("good_rating_rate", "好差评 好评率", "Good rating rate", "%", "up", 0.95, "day",
              "一网通办", 0.97, 0.01),
    Indicator("cases_per_10k", "城市管理 万人案件数", "City management cases per 10k residents", "件/万人",
              "down", 30.0, "month", "城市管理", 28.5, 2.0),
    Indicator("air_good_days_rate", "空气质量优良天数比率", "Share of days with good air quality", "%", "up",
              0.85, "month", "生态环境", 0.88, 0.06),
    Indicator("pm25", "PM2.5 平均浓度", "PM2.5 mean concentration", "μg/m³", "down", 30.0, "month",
              "生态环境", 28.0, 5.0),
    Indicator("gdp_growth", "GDP 增速", "GDP growth (year on year)", "%", "up", 0.055, "quarter",
              "经济运行", 0.056, 0.004),
]


def _month_starts(end: date, months: int) -> list[date]:
    y, m = end.year, end.month
    out = []
    for _ in range(months):
        out.append(date(y, m, 1))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


def _completed_quarter_starts(end: date, quarters: int) -> list[date]:
    q_start = date(end.year, 3 * ((end.month - 1) // 3) + 1, 1)
    out = []
    y, m = q_start.year, q_start.month
    for _ in range(quarters):
        y, m = (y, m - 3) if m > 3 else (y - 1, m + 9)
        out.append(date(y, m, 1))
    return out[::-1]


def _service_day_rates(session: Session, start: date, end: date) -> dict[date, tuple[float, float]]:
    """(网办率, 好评率) per day from the service-rate rows."""
    rows = session.execute(
        select(ServiceRate.day, func.sum(ServiceRate.online), func.sum(ServiceRate.total),
               func.sum(ServiceRate.rating_4 + ServiceRate.rating_5),
               func.sum(ServiceRate.rating_1 + ServiceRate.rating_2 + ServiceRate.rating_3
                        + ServiceRate.rating_4 + ServiceRate.rating_5))
        .where(ServiceRate.day >= start, ServiceRate.day <= end).group_by(ServiceRate.day)).all()
    out = {}
    for day, online, total, good, rated in rows:
        if total and rated:
            out[day] = (round(online / total, 4), round(good / rated, 4))
    return out


def generate_kpi_values(start_date: date, end_date: date, seed: int,
                        service_days: Optional[dict[date, tuple[float, float]]] = None) -> list[dict]:
    service_days = service_days or {}
    months = (end_date.year - start_date.year) * 12 + end_date.month - start_date.month + 1   # the span's
    rows = []
    for ind in KPI_INDICATORS:
        if ind.period == "day":
            periods = list(_days(start_date, end_date))
        elif ind.period == "month":
            periods = _month_starts(end_date, max(12, months))
        else:
            periods = _completed_quarter_starts(end_date, max(8, months // 3 + 1))
        for p in periods:
            if ind.code == "online_rate" and p in service_days:
                value = service_days[p][0]
            elif ind.code == "good_rating_rate" and p in service_days:
                value = service_days[p][1]
            else:
                rng = random.Random(f"{seed}:kpi:{ind.code}:{p.isoformat()}")
                value = ind.base + rng.gauss(0, ind.spread / 2)
                if ind.unit == "%":
                    value = min(max(value, 0.0), 1.0)
                elif ind.code == "hotline_calls" and p.weekday() >= 5:
                    value *= 0.7
                value = round(value, 1) if ind.unit in ("件", "件/万人", "μg/m³") else round(value, 4)
                if ind.code == "hotline_calls":
                    value = float(int(value))
            rows.append(dict(indicator_code=ind.code, period_start=p, dimension="", value=value))
    return rows


def seed_kpis(session: Session, start_date: date, end_date: date, seed: int) -> int:
    """Upserts the indicators and inserts the KPI values not there yet; returns how many values."""
    for ind in KPI_INDICATORS:
        row = session.get(KpiIndicator, ind.code)
        fields = dict(name=ind.name, name_en=ind.name_en, unit=ind.unit, direction=ind.direction,
                      target=ind.target, period=ind.period, group=ind.group)
        if row is None:
            session.add(KpiIndicator(code=ind.code, **fields))
        else:
            for k, v in fields.items():
                setattr(row, k, v)
    session.flush()
    rows = generate_kpi_values(start_date, end_date, seed, _service_day_rates(session, start_date, end_date))
    existing = set(session.execute(select(KpiValue.indicator_code, KpiValue.period_start, KpiValue.dimension)
                                   .where(KpiValue.indicator_code.in_([i.code for i in KPI_INDICATORS]))).all())
    new = [r for r in rows if (r["indicator_code"], r["period_start"], r["dimension"]) not in existing]
    if new:
        session.execute(KpiValue.__table__.insert(), new)
    session.flush()
    return len(new)


def seed_demo(session: Session, pack, now: datetime, days: int, seed: int, *,
              is_workday: Optional[Callable[[date], bool]] = None) -> dict:
    """init-db's hook: ``days`` days of service rates up to yesterday (city time), and the KPI feed."""
    from zoneinfo import ZoneInfo
    end = now.astimezone(ZoneInfo(pack.timezone)).date() - timedelta(days=1)
    start = end - timedelta(days=days - 1)
    rates = seed_service_rates(session, pack, start, end, seed, is_workday=is_workday)
    kpis = seed_kpis(session, start, end, seed)
    return {"service_rates": rates, "kpi_values": kpis}
