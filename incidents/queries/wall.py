"""Read model of the wall (大屏): every figure the wall shows, as SQL aggregates, for the whole
city or one district, memoized with the data version and the refresh period in the key so that
fifty screens cost about what one does."""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Optional
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from data_sources.store.cache import cache
from data_sources.store.db import read_scope
from incidents import kpis
from incidents.kpis import MIN_RANKING_VOLUME
from incidents.model import Light, Priority
from incidents.queries import kpi_facts
from incidents.queries._common import OPEN_STATES, RUNNING_STATES, light_expr, runtime, time_bucket
from incidents.queries.feeds import feed_health_rows
from incidents.services import data_version
from incidents.tables import (AlarmAck, Area, Category, Department, Incident, IncidentEvent,
                              ServiceRate)

MAX_POINTS = 4000  # never ship more raw points than a browser map renders briskly
DEPARTMENT_WINDOW = timedelta(days=7)
ALARM_WINDOW = timedelta(hours=2)


@dataclass(frozen=True)
class Ratio:
    numerator: int
    denominator: int

    @property
    def value(self) -> Optional[float]:
        return self.numerator / self.denominator if self.denominator else None


@dataclass(frozen=True)
class Alarm:
    key: str            # stable: acknowledging it hides it everywhere
    kind: str           # urgent | red | supervise | feed | repeat
    at: datetime
    title: str
    count: int = 1      # repeated alarms of one kind and place are folded into one line
    case_id: Optional[int] = None
    acked_by: Optional[str] = None        # who acknowledged it, and when (it stays, marked, in the window)
    acked_at: Optional[datetime] = None
    escalated: bool = False               # urgent, unacknowledged past the pack's escalate_after_minutes
    cases: tuple[int, ...] = ()   # the cases behind it (a repeat alarm: the place's repeats and their parents)
    reason: str = ""              # the rule that raised it, where it says more than the kind


@dataclass(frozen=True)
class WallData:
    version: int
    as_of: datetime
    district: Optional[str]
    today: dict[str, int]
    closure: Ratio
    on_time: Ratio
    lights: dict[str, int]
    open_total: int
    online: Optional[tuple[Ratio, str]]           # (handled online ÷ all, day) of the latest day with data
    by_state: dict[str, int]
    by_area: dict[str, int]                       # open cases by district (city) or grid (district)
    grid_counts: dict[str, int]                   # open cases by grid cell (the heat layer)
    points: list[dict]
    hourly: list[tuple[datetime, int]]
    top_categories: list[tuple[str, int]]
    channels: dict[str, int]
    departments: list[tuple[str, Ratio]]          # on-time disposal rate, min volume, best first
    overdue: int = 0                              # 超期未处置数 at as_of, the brief's number (kpi_facts)
    # the same figures at the same time yesterday (today's counts, closure, on_time, overdue), by
    # the same path: what a tile compares itself with at any hour
    yesterday: dict = field(default_factory=dict)
    targets: dict = field(default_factory=dict)   # the pack's KPI targets (closure_rate, online_rate …)
    feeds: list[dict] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)


_STRIPES = [threading.Lock() for _ in range(64)]


class Unavailable(Exception):
    """The database cannot be reached: the wall says so and keeps what it shows."""


@dataclass(frozen=True)
class Clock:
    """What a wall answer is of: the data version and the refresh bucket (``as_of``)."""
    version: int
    as_of: datetime


def clock(now: datetime, every: float = 5) -> Clock:
    """The data version (read on the read pool, like the data) and the start of ``now``'s refresh bucket."""
    every = max(int(every), 1)
    try:
        with read_scope() as s:
            version = data_version(s)
    except SQLAlchemyError as exc:
        raise Unavailable(type(exc).__name__) from exc
    return Clock(version, datetime.fromtimestamp(time_bucket(now, every) * every, tz=timezone.utc))


def wall_data(now: datetime, tz: str, *, every: float = 5, district: Optional[str] = None,
              version: Optional[int] = None) -> WallData:
    """The wall's figures at ``now``'s refresh bucket; ``version`` = the data version already read
    for this answer (``clock``), else it is read here."""
    every = max(int(every), 1)
    if version is None:
        version = clock(now, every).version
    try:
        key = (version, time_bucket(now, every), every, tz, district or "")
        # single flight: when many screens miss the cache at once, one computes and the others wait
        # for it and read the cache, instead of all running the same aggregates together
        with _STRIPES[hash(key) % len(_STRIPES)]:
            return _wall_data(*key)
    except SQLAlchemyError as exc:
        raise Unavailable(type(exc).__name__) from exc


@cache.memoize(timeout=300)
def _wall_data(version: int, bucket: int, every: int, tz: str, district: str) -> WallData:
    now = datetime.fromtimestamp(bucket * every, tz=timezone.utc)
    with read_scope() as s:
        return build(s, now, tz, version=version, district=district or None)


def build(s: Session, now: datetime, tz: str, *, version: int = 0, district: Optional[str] = None) -> WallData:
    where = [Incident.district_code == district] if district else []
    start = now.astimezone(ZoneInfo(tz)).replace(hour=0, minute=0, second=0, microsecond=0)
    lights = lights_of_running_cases(s, now, where)
    feeds = feed_health_rows(s, now)
    # the open cases only (the wall shows no other): an index range bounded by the cases in flight,
    # not a GROUP BY over the whole history
    by_state = dict(s.execute(select(Incident.state, func.count()).where(Incident.state.in_(OPEN_STATES), *where)
                              .group_by(Incident.state)).all())
    def open_by(col):
        return {k: n for k, n in s.execute(select(col, func.count()).where(Incident.state.in_(OPEN_STATES), *where)
                                           .group_by(col)).all() if k}
    grid_counts = open_by(Incident.grid_code)
    by_area = grid_counts if district else open_by(Incident.district_code)
    today = _today_kpis(s, start, now, district)
    day = timedelta(days=1)
    before = _today_kpis(s, start - day, now - day, district)     # (local midnight: wall-clock arithmetic)
    return WallData(
        version=version, as_of=now, district=district,
        today={key: int(today[code].numerator) for key, code in TODAY_COUNTS.items()},
        closure=_ratio(today["closure_rate"]), on_time=_ratio(today["on_time_disposal_rate"]),
        overdue=int(today["overdue_open_count"].numerator), lights=lights,
        yesterday={**{key: int(before[code].numerator) for key, code in TODAY_COUNTS.items()},
                   "closure": _ratio(before["closure_rate"]), "on_time": _ratio(before["on_time_disposal_rate"]),
                   "overdue": int(before["overdue_open_count"].numerator)},
        targets=dict(runtime().pack.kpi_targets),
        open_total=sum(n for st, n in by_state.items() if st in OPEN_STATES),
        online=_online(s, now, tz), by_state=by_state, by_area=by_area, grid_counts=grid_counts,
        points=_points(s, now, where), hourly=_hourly(s, now, where),
        top_categories=_top_categories(s, now - timedelta(days=1), where),
        channels=dict(s.execute(select(Incident.channel, func.count())
                                .where(Incident.reported_at >= start, *where).group_by(Incident.channel)).all()),
        departments=_departments(s, now, where),
        feeds=[_feed_row(f) for f in feeds],
        alarms=_alarms(s, now, where, feeds, timedelta(minutes=runtime().pack.wall.escalate_after_minutes),
                       district=district))


def lights_of_running_cases(s, now, where=()) -> dict[str, int]:
    """Cases with a running clock (dispatched, in progress) by traffic light: the wall's and /metrics' figure."""
    lt = light_expr(now)
    rows = s.execute(select(lt, func.count()).where(Incident.state.in_(RUNNING_STATES), *where).group_by(lt)).all()
    out = {x.value: 0 for x in Light}
    out.update(dict(rows))
    return out


#: the wall's counts of today, as the brief names them
TODAY_COUNTS = {"reported": "reported_count", "registered": "registered_count", "dispatched": "dispatched_count",
                "closed": "closed_count"}


def _today_kpis(s, start: datetime, now: datetime, district: Optional[str]) -> dict:
    """Today's case KPIs at ``now`` for the city or one district: the brief's fact-based path
    (kpi_facts), so a tile and a brief card of the same name show the same number."""
    rt = runtime()
    period = kpis.Period(start, start + timedelta(days=1))
    ps = kpi_facts.period_sums(s, period, now, cal=rt.calendar, priority_factors=rt.pack.priority_factors,
                               hours_per_day=rt.calendar.hours_per_day, tz=rt.pack.timezone, grouped=bool(district),
                               disposal_clock=rt.pack.workflow.disposal_clock,
                               citizen_channels=rt.rules.citizen_channels)
    sums = ps.by("district").get(district, dict.fromkeys(kpis.CASE_SUMS, 0)) if district else ps.total()
    return kpis.case_kpis_from_sums(sums, period, now, rt.pack.kpi_targets)


def _ratio(result) -> Ratio:
    return Ratio(int(result.numerator), int(result.denominator or 0))


def _online(s, now, tz) -> Optional[tuple[Ratio, str]]:
    """网办率 over the 7 days ending with the latest day of 一网通办 data (a single day swings with
    weekends, when the service halls are closed and only online applications arrive)."""
    day = s.scalar(select(func.max(ServiceRate.day)).where(ServiceRate.day <= now.astimezone(ZoneInfo(tz)).date()))
    if day is None:
        return None
    total, online = s.execute(select(func.sum(ServiceRate.total), func.sum(ServiceRate.online))
                              .where(ServiceRate.day > day - timedelta(days=7), ServiceRate.day <= day)).one()
    return Ratio(int(online or 0), int(total or 0)), day.isoformat()


def _points(s, now, where) -> list[dict]:
    """The most urgent open cases first, capped: the grid layer shows the rest as density."""
    lt = light_expr(now)
    running = Incident.state.in_(RUNNING_STATES)
    rank = case((and_(running, lt == Light.RED.value), 0), (Incident.priority != Priority.NORMAL.value, 1),
                (and_(running, lt == Light.YELLOW.value), 2), else_=3)
    rows = s.execute(select(Incident.id, Incident.lon, Incident.lat, Incident.state, Incident.title,
                            Incident.priority, lt)
                     .where(Incident.state.in_(OPEN_STATES), Incident.lon.is_not(None), *where)
                     .order_by(rank, Incident.reported_at.desc()).limit(MAX_POINTS)).all()
    return [{"id": i, "lon": round(lo, 5), "lat": round(la, 5), "title": t, "priority": p,
             "light": light if st in RUNNING_STATES else "none"} for i, lo, la, st, t, p, light in rows]


def _hourly(s, now, where) -> list[tuple[datetime, int]]:
    start = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    # bucket in SQL: whole hours since `start`, the same expression on SQLite and PostgreSQL
    hours = [func.sum(case((and_(Incident.reported_at >= start + timedelta(hours=i),
                                 Incident.reported_at < start + timedelta(hours=i + 1)), 1), else_=0))
             for i in range(24)]
    row = s.execute(select(*hours).where(Incident.reported_at >= start, Incident.reported_at <= now, *where)).one()
    return [(start + timedelta(hours=i), int(n or 0)) for i, n in enumerate(row)]


def _top_categories(s, since, where, limit: int = 6) -> list[tuple[str, int]]:
    rows = s.execute(select(Category.name, func.count(Incident.id))
                     .join(Category, Category.code == Incident.category_code)
                     .where(Incident.reported_at >= since, *where)
                     .group_by(Category.name).order_by(func.count(Incident.id).desc()).limit(limit)).all()
    return [(n, c) for n, c in rows]


def _departments(s, now, where, limit: int = 6) -> list[tuple[str, Ratio]]:
    """On-time disposal of the cases resolved in the last 7 days, departments above the minimum volume."""
    rows = s.execute(select(Department.name, func.count(Incident.id),
                            func.sum(case((Incident.on_time.is_(True), 1), else_=0)))
                     .join(Department, Department.code == Incident.department_code)
                     .where(Incident.resolved_at >= now - DEPARTMENT_WINDOW, Incident.resolved_at <= now, *where)
                     .group_by(Department.name)).all()
    ranked = [(name, Ratio(int(ok or 0), int(n))) for name, n, ok in rows if n >= MIN_RANKING_VOLUME]
    ranked.sort(key=lambda r: (-(r[1].value or 0), -r[1].denominator))
    if len(ranked) <= limit:
        return ranked
    half = limit // 2
    return ranked[:half] + ranked[-(limit - half):]   # the best and the worst


def _feed_row(f) -> dict:
    return {"feed": f.feed, "status": f.status, "lag_seconds": f.lag_seconds, "last_hour": f.last_hour,
            "usual_hourly": f.usual_hourly, "reject_rate": f.reject_rate}


def _alarms(s, now, where, feeds, escalate_after: timedelta, limit: int = 30,
            district: Optional[str] = None) -> list[Alarm]:
    """The last two hours' alarms (and the places that complain again and again): escalated ones
    first, then the unacknowledged, newest first, then the acknowledged (with who and when)."""
    from incidents.queries.repeats import repeat_alarms
    since = now - ALARM_WINDOW
    out: list[Alarm] = []
    # 重复诉求: a place that complains again and again (grid × category, the pack's count and days)
    out += [Alarm(a.key, "repeat", a.last_at, f"{a.grid} · {a.category}", count=a.count, case_id=a.cases[0],
                  cases=a.cases, reason=a.rule) for a in repeat_alarms(s, now, runtime().rules, district=district)]
    urgent = s.execute(select(Incident.id, Incident.reported_at, Incident.title, Incident.priority)
                       .where(Incident.reported_at >= since, Incident.reported_at <= now,
                              Incident.priority != Priority.NORMAL.value, Incident.state.in_(OPEN_STATES), *where)
                       .order_by(Incident.reported_at.desc()).limit(50)).all()
    out += [Alarm(f"urgent:{i}", "urgent", at, t, case_id=i) for i, at, t, _p in urgent]
    red = s.execute(select(Incident.id, Incident.deadline, Incident.title)
                    .where(Incident.state.in_(RUNNING_STATES), Incident.deadline >= since, Incident.deadline <= now, *where)
                    .order_by(Incident.deadline.desc()).limit(200)).all()
    out += _fold([Alarm(f"red:{i}", "red", at, t, case_id=i) for i, at, t in red], "red", now)
    sup = s.execute(select(IncidentEvent.incident_id, IncidentEvent.at, Incident.title)
                    .join(Incident, Incident.id == IncidentEvent.incident_id)
                    .where(IncidentEvent.action == "supervise", IncidentEvent.at >= since, IncidentEvent.at <= now,
                           *where).order_by(IncidentEvent.at.desc()).limit(50)).all()
    out += [Alarm(f"supervise:{i}:{at:%Y%m%d%H%M}", "supervise", at, t, case_id=i) for i, at, t in sup]
    for f in feeds:
        if f.status == "silent":
            hour = now.strftime("%Y%m%d%H")
            out.append(Alarm(f"feed:{f.feed}:{hour}", "feed", now, f.feed))
    acks = {k: (by, at) for k, by, at in s.execute(select(AlarmAck.key, AlarmAck.acked_by, AlarmAck.acked_at)
                                                      .where(AlarmAck.key.in_([a.key for a in out])))} if out else {}
    out = [dataclasses.replace(a, acked_by=acks[a.key][0], acked_at=acks[a.key][1]) if a.key in acks
           else dataclasses.replace(a, escalated=a.kind == "urgent" and now - a.at >= escalate_after)
           for a in out]
    out.sort(key=lambda a: a.at, reverse=True)
    out.sort(key=lambda a: 0 if a.escalated else 2 if a.acked_by else 1)     # (stable: newest first within)
    return out[:limit]


def _fold(alarms: list[Alarm], kind: str, now: datetime, threshold: int = 5) -> list[Alarm]:
    """More than ``threshold`` alarms of one kind in the window become one line with a count."""
    if len(alarms) <= threshold:
        return alarms
    newest = alarms[0]
    return [Alarm(f"{kind}:folded:{now:%Y%m%d%H}", kind, newest.at, newest.title, count=len(alarms))]


def grid_shapes(district: str) -> dict:
    return _grid_shapes(district)


@cache.memoize(timeout=3600)
def _grid_shapes(district: str) -> dict:
    import json
    with read_scope() as s:
        q = select(Area.code, Area.name, Area.geometry).where(Area.level == "grid")
        if district:
            q = q.where(Area.parent_code == district)
        rows = s.execute(q.order_by(Area.code)).all()
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "id": c, "properties": {"code": c, "name": n},
                          "geometry": json.loads(g)} for c, n, g in rows]}
