"""Read model of the leaders' brief (/brief, its PDF and Excel exports) and of ``/api/v1/kpis``:
every number is a SQL aggregate over the per-case fact rows (:mod:`incidents.queries.kpi_facts`),
turned into results by :mod:`incidents.kpis` — the same path for the page, the API and the
exports, so they agree by construction.

A brief is a picture of one instant, ``as_of``: the KPI functions ignore every event after it,
so the memo key is the period and ``as_of`` — not the data version, which the live feeds move
every few seconds and which would make every leader's page a cold computation. The page floors
``as_of`` to :data:`AS_OF_STEP` so that everyone opening it in the same five minutes shares one
computation, and its export links carry the same ``as_of``. (A record imported later with a time
before ``as_of`` shows from the next step on.)
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Optional
from zoneinfo import ZoneInfo

from sqlalchemy import select

from data_sources.store.cache import cache
from data_sources.store.db import get_db, read_scope
from incidents import kpis
from incidents.queries import kpi_facts
from incidents.queries._common import current_version, runtime
from incidents.queries.kpi_facts import load_kpi_frames  # noqa: F401 (the reference, for tests)
from incidents.tables import Area, Category, Department, Incident, KpiIndicator, KpiValue

PRESETS = ("today", "week", "month", "quarter", "custom")
AS_OF_STEP = timedelta(minutes=5)
DRILL_ROWS = 200          # case rows the page lists under a card (the Excel file has them all)


def preset_period(preset: str, now: datetime, tz: str, *, start: Optional[date] = None,
                  end: Optional[date] = None) -> kpis.Period:
    """The period a picker choice means in city time: today, this week (Monday), this month,
    this quarter, or ``custom`` from ``start`` to ``end`` inclusive (whole days)."""
    z = ZoneInfo(tz)
    d = now.astimezone(z).date()

    def at(day: date) -> datetime:
        return datetime.combine(day, time(0), z)
    if preset == "today":
        return kpis.Period(at(d), at(d + timedelta(days=1)))
    if preset == "week":
        monday = d - timedelta(days=d.weekday())
        return kpis.Period(at(monday), at(monday + timedelta(days=7)))
    if preset == "month":
        first = d.replace(day=1)
        return kpis.Period(at(first), at(kpis._shift_months(first, 1)))
    if preset == "quarter":
        first = date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)
        return kpis.Period(at(first), at(kpis._shift_months(first, 3)))
    if preset == "custom":
        if start is None or end is None:
            raise ValueError("a custom period needs a start and an end date")
        if end < start:
            raise ValueError(f"the end date {end} is before the start date {start}")
        return kpis.Period(at(start), at(end + timedelta(days=1)))
    raise ValueError(f"unknown period {preset!r}: one of {', '.join(PRESETS)}")


# --------------------------------------------------------------------------- KPI frames and report (DESIGN §6)

def kpi_report(from_: datetime, to: datetime, as_of: datetime, group_by: str | None = None):
    """Every KPI of DESIGN §6 for ``[from_, to)`` at ``as_of`` (aware datetimes), optionally per
    department or district with the 综合指标值 ranking: the one function the brief page, the API
    and the exports call. Memoized per data version."""
    period = kpis.Period(from_, to)  # validates from_ < to and awareness
    if group_by not in (None, "department", "district"):
        raise ValueError("group_by must be None, 'department' or 'district'")
    return _kpi_report(current_version(), period.start.isoformat(), period.end.isoformat(),
                       kpis._utc(as_of).isoformat(), group_by)


@cache.memoize(timeout=600)
def _kpi_report(version: int, start_iso: str, end_iso: str, as_of_iso: str, group_by: str | None):
    rt = runtime()
    pack = rt.pack
    start, end, as_of = (datetime.fromisoformat(v) for v in (start_iso, end_iso, as_of_iso))
    with read_scope() as s:
        ps = _sums(s, kpis.Period(start, end), as_of)
        names = None
        if group_by == "department":
            names = dict(s.execute(select(Department.code, Department.name)).all())
        elif group_by == "district":
            names = dict(s.execute(select(Area.code, Area.name).where(Area.level == "district")).all())
        repeats = kpi_facts.repeat_rate(s, kpis.Period(start, end), as_of, targets=pack.kpi_targets)
    report = kpi_facts.report(ps, tz=pack.timezone, targets=pack.kpi_targets, weights=pack.kpi_weights or None,
                              group_by=group_by, names=names)
    report.kpis["repeat_rate"] = repeats        # 重复诉求率: city-wide (a case's parent may be anyone's)
    return report


# --------------------------------------------------------------------------- the brief

def _sums(s, period: kpis.Period, as_of: datetime, buckets=None, grouped: bool = True,
          events=None) -> kpi_facts.PeriodSums:
    rt = runtime()
    return kpi_facts.period_sums(s, period, as_of, cal=rt.calendar, priority_factors=rt.pack.priority_factors,
                                 hours_per_day=rt.calendar.hours_per_day, tz=rt.pack.timezone, buckets=buckets,
                                 grouped=grouped, disposal_clock=rt.pack.workflow.disposal_clock,
                                 citizen_channels=rt.rules.citizen_channels, events=events)


def _indicator_frames(s, end: datetime, tz: str):
    import pandas as pd
    last = end.astimezone(ZoneInfo(tz)).date()
    ind = pd.DataFrame(s.execute(select(KpiIndicator.code, KpiIndicator.name, KpiIndicator.name_en,
                                        KpiIndicator.unit, KpiIndicator.direction, KpiIndicator.target,
                                        KpiIndicator.period, KpiIndicator.group)).all(),
                       columns=list(kpis.INDICATOR_COLUMNS))
    vals = pd.DataFrame(s.execute(select(KpiValue.indicator_code, KpiValue.period_start, KpiValue.dimension,
                                         KpiValue.value)
                                  .where(KpiValue.period_start <= last,
                                         KpiValue.period_start >= last - timedelta(days=3 * 366))).all(),
                        columns=list(kpis.INDICATOR_VALUE_COLUMNS))
    return ind, vals


def floor_as_of(now: datetime) -> datetime:
    """``now`` floored to :data:`AS_OF_STEP` (the page's ``as_of``)."""
    step = int(AS_OF_STEP.total_seconds())
    return datetime.fromtimestamp(int(now.timestamp()) // step * step, tz=now.tzinfo)


def brief(from_: datetime, to: datetime, as_of: datetime) -> kpis.Brief:
    """The brief of ``[from_, to)`` seen at ``as_of`` (aware datetimes)."""
    period = kpis.Period(from_, to)
    return _brief(period.start.isoformat(), period.end.isoformat(), kpis._utc(as_of).isoformat())


@cache.memoize(timeout=900)
def _brief(start_iso: str, end_iso: str, as_of_iso: str) -> kpis.Brief:
    return _compute(start_iso, end_iso, as_of_iso)


def _compute(start_iso: str, end_iso: str, as_of_iso: str):
    """The brief: SQL sums over the fact rows (incidents.queries.kpi_facts)."""
    rt = runtime()
    pack, tz = rt.pack, rt.pack.timezone
    start, end, as_of = (datetime.fromisoformat(v) for v in (start_iso, end_iso, as_of_iso))
    period = kpis.Period(start, end)
    kw = dict(tz=tz, targets=pack.kpi_targets, weights=pack.kpi_weights or None)
    buckets = kpis.period_buckets(period, tz)
    db = get_db()

    def totals(cmp: kpis.Comparison) -> kpi_facts.PeriodSums:
        with db.read_scope() as s:
            return kpi_facts.period_sums(s, cmp.period, cmp.as_of, cal=rt.calendar,
                                         priority_factors=pack.priority_factors,
                                         hours_per_day=rt.calendar.hours_per_day, tz=tz, grouped=False,
                                         disposal_clock=pack.workflow.disposal_clock,
                                         citizen_channels=rt.rules.citizen_channels)
    def event_rows() -> tuple:
        with db.read_scope() as s:
            return kpi_facts.event_rows(s, period, as_of, buckets)
    # 环比 and 同比, and the period's events (退单, 回访, the cases dispatched many times), on
    # connections of their own while this thread sums the period: the database reads them side by
    # side (each its own backend, or SQLite stepping without the GIL)
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="cityops-brief") as pool:
        events = pool.submit(event_rows)
        compared = [pool.submit(totals, cmp) for cmp in kpis.comparisons(period, as_of, tz)]
        with read_scope() as s:
            ps = _sums(s, period, as_of, buckets, events=events.result)
            dept_names = dict(s.execute(select(Department.code, Department.name)).all())
            district_names = dict(s.execute(select(Area.code, Area.name).where(Area.level == "district")).all())
            by_dept = kpi_facts.report(ps, group_by="department", names=dept_names, **kw)
            by_district = kpi_facts.report(ps, group_by="district", names=district_names, **kw)
            series = kpis.series_from_sums(ps.buckets, ps.rates, buckets, as_of, tz=tz)
            ind, vals = _indicator_frames(s, end, tz)
        reports = [kpi_facts.report(f.result(), **kw) for f in compared]
    indicators = kpis.indicator_results(ind, vals, period, tz)
    prev = kpis.Period(reports[0].start, reports[0].end)
    prev_ind = {r.code: r.value for r in kpis.indicator_results(ind, vals, prev, tz)}
    return kpis.Brief(report=by_dept, districts=by_district, previous=reports[0], last_year=reports[1],
                      buckets=buckets, series=series, indicators=indicators,
                      indicators_previous=prev_ind)


# --------------------------------------------------------------------------- drill-through

@dataclass(frozen=True)
class Drill:
    code: str
    name: str
    numerator: int
    denominator: Optional[int]     # None for counts
    rows: list[dict]               # the first DRILL_ROWS cases, those that hold the number back first
    formula: str


def drill(from_: datetime, to: datetime, as_of: datetime, code: str, *, limit: int = DRILL_ROWS,
          offset: int = 0) -> Drill:
    """The cases behind one case KPI of the brief: rows ``offset`` … ``offset + limit`` of them,
    those holding the number back first (a scrolling list asks block by block)."""
    if code not in kpis.CASE_KPIS:
        raise ValueError(f"{code!r} is not computed from cases")
    period = kpis.Period(from_, to)
    num, den = _drill_ids(period.start.isoformat(), period.end.isoformat(), kpis._utc(as_of).isoformat(), code)
    res = brief(from_, to, as_of).report.kpis[code]
    in_num = set(num)
    rest = [i for i in den if i not in in_num]
    # the cases that hold a number back first: for "higher is better" the ones not (yet) in the
    # numerator (not closed, late …), for "lower is better" and counts the ones counted
    ordered = rest + num if res.direction == "up" and res.denominator is not None else num + rest
    offset = max(int(offset), 0)
    rows = case_rows(ordered[offset:offset + max(int(limit), 0)])
    for r in rows:
        r["in_numerator"] = r["id"] in in_num
    return Drill(code=code, name=res.name, numerator=len(num), denominator=len(den) if res.denominator is not None
                 else None, rows=rows, formula=res.formula)


FLAGS_TIMEOUT = 900
_CODES = {"": 0, "D": 1, "N": 2}


def _flags_key(start_iso: str, end_iso: str, as_of_iso: str) -> str:
    return f"brief-flags:{start_iso}:{end_iso}:{as_of_iso}"


def case_flags(start_iso: str, end_iso: str, as_of_iso: str):
    """Who is behind each case KPI of a brief (:func:`kpi_facts.case_flags`, int8 per KPI),
    computed when a drill or the Excel file first asks and kept beside the brief."""
    key = _flags_key(start_iso, end_iso, as_of_iso)
    got = cache.get(key)
    if got is None:
        results = {c: _brief(start_iso, end_iso, as_of_iso).report.kpis[c] for c in kpis.CASE_KPIS}
        rt = runtime()
        period, as_of = kpis.Period(datetime.fromisoformat(start_iso), datetime.fromisoformat(end_iso)), \
            datetime.fromisoformat(as_of_iso)
        with read_scope() as s:
            replayed = kpi_facts.replayed_facts(s, period, as_of, cal=rt.calendar,
                                                priority_factors=rt.pack.priority_factors,
                                                hours_per_day=rt.calendar.hours_per_day, tz=rt.pack.timezone,
                                                disposal_clock=rt.pack.workflow.disposal_clock,
                                                citizen_channels=rt.rules.citizen_channels)
            got = kpi_facts.case_flags(s, period, as_of, results, replayed=replayed,
                                       citizen_channels=rt.rules.citizen_channels)
        cache.set(key, got, timeout=FLAGS_TIMEOUT)
    return got


def _drill_ids(start_iso: str, end_iso: str, as_of_iso: str, code: str) -> tuple[list[int], list[int]]:
    """(numerator ids, denominator ids) from the brief's case flags; counts have no denominator."""
    col = case_flags(start_iso, end_iso, as_of_iso)[code]
    num = sorted(int(i) for i in col.index[col == 2])
    den = [] if _brief(start_iso, end_iso, as_of_iso).report.kpis[code].denominator is None \
        else sorted(int(i) for i in col.index[col >= 1])
    return num, den


def case_rows(ids: list[int]) -> list[dict]:
    """id, title, category, district, department, state, report time and deadline of the given
    cases, in the given order."""
    if not ids:
        return []
    by_id = {}
    stmt = (select(Incident.id, Incident.title, Category.name, Area.name, Department.name, Incident.state,
                   Incident.reported_at, Incident.deadline, Incident.closed_at)
            .outerjoin(Category, Category.code == Incident.category_code)
            .outerjoin(Area, Area.code == Incident.district_code)
            .outerjoin(Department, Department.code == Incident.department_code))
    with read_scope() as s:
        # in slices: one IN list per 5,000 ids (PostgreSQL takes at most 65,535 parameters)
        for i in range(0, len(ids), 5000):
            for r in s.execute(stmt.where(Incident.id.in_(ids[i:i + 5000]))):
                by_id[r[0]] = dict(id=r[0], title=r[1], category=r[2] or "", district=r[3] or "",
                                   department=r[4] or "", state=r[5], reported_at=r[6], deadline=r[7],
                                   closed_at=r[8])
    return [by_id[i] for i in ids if i in by_id]


def case_table(from_: datetime, to: datetime, as_of: datetime):
    """For the Excel export: the cases behind the case KPIs of the brief (case rows in id order)
    and their flags, a column per KPI: "N" (counted in the numerator), "D" (in the denominator
    only) or ""."""
    period = kpis.Period(from_, to)
    brief(from_, to, as_of)
    flags = case_flags(period.start.isoformat(), period.end.isoformat(), kpis._utc(as_of).isoformat())
    labels = {v: k for k, v in _CODES.items()}
    return CaseRows([int(i) for i in flags.index]), flags.apply(lambda col: col.map(labels))


class CaseRows:
    """The case rows of some ids, read from the database a slice at a time as they are iterated:
    an export of any size holds one slice of rows in memory, not the whole list."""

    SLICE = 5000

    def __init__(self, ids: list[int]):
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self):
        for i in range(0, len(self.ids), self.SLICE):
            yield from case_rows(self.ids[i:i + self.SLICE])
