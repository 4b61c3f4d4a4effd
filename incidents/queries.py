"""Read models for the screens: SQL aggregates (GROUP BY in the database), memoized.

Public functions take ``now`` and open their own session; the memoized inner functions are
keyed by the data version (and a time bucket where the answer depends on the clock), so
many screens share one computation and a write is seen at the next refresh.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from data_sources.cache import cache
from data_sources.db import session_scope
from incidents.model import Light, State
from incidents.services import data_version
from incidents.tables import Area, Category, Department, Incident, IncidentEvent

OPEN_STATES = [s.value for s in State.open_states()]
MAX_POINTS = 4000  # never ship more raw points than a browser map renders briskly


def current_version() -> int:
    with session_scope() as s:
        return data_version(s)


def _bucket(now: datetime, seconds: int = 60) -> int:
    return int(now.timestamp()) // seconds


def light_expr(now: datetime):
    """SQL CASE giving the traffic light of a case with a running clock."""
    return case((Incident.deadline < now, Light.RED.value),
                (Incident.warn_at < now, Light.YELLOW.value),
                else_=Light.GREEN.value)


def _day_start(now: datetime, tz: str) -> datetime:
    local = now.astimezone(ZoneInfo(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


# --------------------------------------------------------------------------- wall

@dataclass(frozen=True)
class WallSnapshot:
    version: int
    as_of: datetime
    by_state: dict[str, int]
    today: dict[str, int]
    lights: dict[str, int]
    open_by_district: dict[str, int]
    points: list[dict]
    points_total: int
    hourly: list[tuple[datetime, int]]
    top_categories: list[tuple[str, int]]
    channels: dict[str, int]
    recent: list[dict]


def wall_snapshot(now: datetime, tz: str, *, every: int = 5) -> WallSnapshot:
    """The wall's figures as of ``now`` rounded down to ``every`` seconds (the refresh period):
    all screens polling within one period and one data version share one computation."""
    every = max(int(every), 1)
    return _wall_snapshot(current_version(), _bucket(now, every), every, tz)


@cache.memoize(timeout=300)
def _wall_snapshot(version: int, bucket: int, every: int, tz: str) -> WallSnapshot:
    from datetime import timezone
    now = datetime.fromtimestamp(bucket * every, tz=timezone.utc)
    with session_scope() as s:
        return WallSnapshot(
            version=version, as_of=now,
            by_state=counts_by_state(s),
            today=today_counts(s, now, tz),
            lights=light_counts(s, now),
            open_by_district=open_by_area(s, "district_code"),
            points=open_points(s, now),
            points_total=sum(counts_by_state(s).get(st, 0) for st in OPEN_STATES),
            hourly=hourly_reported(s, now, hours=24),
            top_categories=top_categories(s, now - timedelta(days=1), limit=8),
            channels=channel_mix(s, _day_start(now, tz)),
            recent=recent_events(s, limit=12),
        )


def counts_by_state(s: Session) -> dict[str, int]:
    rows = s.execute(select(Incident.state, func.count()).group_by(Incident.state)).all()
    return {st: n for st, n in rows}


def today_counts(s: Session, now: datetime, tz: str) -> dict[str, int]:
    start = _day_start(now, tz)
    out = {}
    for key, col in (("reported", Incident.reported_at), ("registered", Incident.registered_at),
                     ("dispatched", Incident.dispatched_at), ("closed", Incident.closed_at)):
        out[key] = s.scalar(select(func.count()).where(col >= start, col <= now)) or 0
    return out


def light_counts(s: Session, now: datetime) -> dict[str, int]:
    light = light_expr(now)
    rows = s.execute(select(light, func.count())
                     .where(Incident.state.in_([State.DISPATCHED.value, State.IN_PROGRESS.value]))
                     .group_by(light)).all()
    out = {lt.value: 0 for lt in Light}
    out.update({k: n for k, n in rows})
    return out


def open_by_area(s: Session, column: str) -> dict[str, int]:
    col = getattr(Incident, column)
    rows = s.execute(select(col, func.count()).where(Incident.state.in_(OPEN_STATES))
                     .group_by(col)).all()
    return {k: n for k, n in rows if k}


def open_points(s: Session, now: datetime, limit: int = MAX_POINTS) -> list[dict]:
    """The most urgent open cases first (red, yellow, then newest), capped for the browser."""
    light = light_expr(now)
    rank = case((light == Light.RED.value, 0), (light == Light.YELLOW.value, 1), else_=2)
    rows = s.execute(
        select(Incident.id, Incident.lon, Incident.lat, Incident.state, Incident.title,
               Incident.priority, Incident.dispatched_at.is_not(None).label("running"), light)
        .where(Incident.state.in_(OPEN_STATES), Incident.lon.is_not(None))
        .order_by(rank, Incident.reported_at.desc()).limit(limit)).all()
    return [{"id": r[0], "lon": round(r[1], 5), "lat": round(r[2], 5), "state": r[3], "title": r[4],
             "priority": r[5],
             "light": r[7] if r[3] in (State.DISPATCHED.value, State.IN_PROGRESS.value) else "none"}
            for r in rows]


def hourly_reported(s: Session, now: datetime, hours: int = 24) -> list[tuple[datetime, int]]:
    start = (now - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    times = s.scalars(select(Incident.reported_at).where(Incident.reported_at >= start,
                                                         Incident.reported_at <= now)).all()
    counts = {start + timedelta(hours=i): 0 for i in range(hours)}
    for t in times:
        key = t.replace(minute=0, second=0, microsecond=0)
        if key in counts:
            counts[key] += 1
    return sorted(counts.items())


def top_categories(s: Session, since: datetime, limit: int = 8) -> list[tuple[str, int]]:
    rows = s.execute(select(Category.name, func.count(Incident.id))
                     .join(Category, Category.code == Incident.category_code)
                     .where(Incident.reported_at >= since)
                     .group_by(Category.name).order_by(func.count(Incident.id).desc()).limit(limit)).all()
    return [(n, c) for n, c in rows]


def channel_mix(s: Session, since: datetime) -> dict[str, int]:
    rows = s.execute(select(Incident.channel, func.count()).where(Incident.reported_at >= since)
                     .group_by(Incident.channel)).all()
    return {k: n for k, n in rows}


def recent_events(s: Session, limit: int = 12) -> list[dict]:
    rows = s.execute(select(IncidentEvent.at, IncidentEvent.action, IncidentEvent.to_state,
                            IncidentEvent.incident_id, Incident.title, IncidentEvent.actor)
                     .join(Incident, Incident.id == IncidentEvent.incident_id)
                     .order_by(IncidentEvent.at.desc(), IncidentEvent.id.desc()).limit(limit)).all()
    return [{"at": r[0], "action": r[1], "state": r[2], "id": r[3], "title": r[4], "actor": r[5]}
            for r in rows]


# --------------------------------------------------------------------------- reference data

@cache.memoize(timeout=3600)
def district_shapes(version_of_pack: str) -> dict:
    """GeoJSON FeatureCollection of the districts (for choropleth and outlines)."""
    import json
    with session_scope() as s:
        rows = s.execute(select(Area.code, Area.name, Area.geometry, Area.centroid_lon, Area.centroid_lat)
                         .where(Area.level == "district").order_by(Area.code)).all()
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "id": c, "properties": {"code": c, "name": n, "lon": lo, "lat": la},
                          "geometry": json.loads(g)} for c, n, g, lo, la in rows]}


@cache.memoize(timeout=3600)
def department_names(version_of_pack: str) -> dict[str, str]:
    with session_scope() as s:
        return dict(s.execute(select(Department.code, Department.name)).all())


# --------------------------------------------------------------------------- brief & workbench

def department_table(now: datetime, since: datetime) -> list[dict]:
    return _department_table(current_version(), _bucket(now, 60), since.isoformat())


@cache.memoize(timeout=300)
def _department_table(version: int, bucket: int, since_iso: str) -> list[dict]:
    from datetime import timezone
    now = datetime.fromtimestamp(bucket * 60, tz=timezone.utc)
    since = datetime.fromisoformat(since_iso)
    running = Incident.state.in_([State.DISPATCHED.value, State.IN_PROGRESS.value])
    with session_scope() as s:
        rows = s.execute(
            select(Department.code, Department.name,
                   func.count(Incident.id),
                   func.sum(case((Incident.state == State.CLOSED.value, 1), else_=0)),
                   func.sum(case((Incident.on_time.is_(True), 1), else_=0)),
                   func.sum(case((Incident.resolved_at.is_not(None), 1), else_=0)),
                   func.sum(case((running & (Incident.deadline < now), 1), else_=0)),
                   func.sum(case((Incident.rework_count > 0, 1), else_=0)))
            .join(Incident, Incident.department_code == Department.code)
            .where(Incident.dispatched_at >= since, Incident.dispatched_at <= now)
            .group_by(Department.code, Department.name)).all()
    out = []
    for code, name, n, closed, on_time, resolved, overdue, rework in rows:
        out.append({"code": code, "name": name, "dispatched": n, "closed": int(closed or 0),
                    "on_time": int(on_time or 0), "resolved": int(resolved or 0),
                    "overdue_open": int(overdue or 0), "rework": int(rework or 0),
                    "closure_rate": (closed or 0) / n if n else None,
                    "on_time_rate": (on_time or 0) / n if n else None})
    out.sort(key=lambda r: (-(r["dispatched"])))
    return out


def queue(now: datetime, *, states: list[str] | None = None, department_code: str | None = None,
          light: str | None = None, limit: int = 200) -> list[dict]:
    """First version of the workbench queue: filtered and sorted in the database."""
    lt = light_expr(now)
    q = (select(Incident.id, Incident.reported_at, Incident.title, Incident.state, Incident.priority,
                Incident.district_code, Incident.department_code, Incident.deadline, Incident.channel,
                Category.name, lt.label("light"), Incident.version)
         .outerjoin(Category, Category.code == Incident.category_code))
    q = q.where(Incident.state.in_(states or OPEN_STATES))
    if department_code:
        q = q.where(Incident.department_code == department_code)
    if light:
        q = q.where(Incident.state.in_([State.DISPATCHED.value, State.IN_PROGRESS.value]), lt == light)
    q = q.order_by(Incident.deadline.is_(None), Incident.deadline, Incident.reported_at.desc()).limit(limit)
    with session_scope() as s:
        rows = s.execute(q).all()
    return [dict(r._mapping) for r in rows]


@dataclass(frozen=True)
class CityInfo:
    name: str
    title: str
    title_en: str
    timezone: str
    center: tuple[float, float]
    zoom: float


def city_info() -> CityInfo:
    """The loaded pack's name, timezone and map view (for page headers and maps)."""
    from flask import current_app
    from data_sources.runtime import get_runtime
    p = get_runtime(current_app).pack
    return CityInfo(p.name, p.title, p.title_en, p.timezone, tuple(p.center), float(p.zoom))


# --------------------------------------------------------------------------- feed health

#: how many past days at the same hour make a feed's usual hourly rate
USUAL_DAYS = 7
#: silent: nothing for this many usual intervals; late: for LATE_INTERVALS, or the last hour
#: brought less than a third of the usual volume (when that volume is big enough to tell)
SILENT_INTERVALS = 3.0
LATE_INTERVALS = 2.0
LATE_MIN_USUAL = 3.0
FEED_ERROR_STATUSES = ("failed", "error")


@dataclass(frozen=True)
class FeedHealth:
    feed: str                          # the cases' source (feed runs: their source, else their feed name)
    last_record_at: datetime | None    # latest of max(reported_at) and the last feed run's finished_at
    lag_seconds: float | None          # now − last_record_at (never negative)
    last_hour: int                     # cases reported in the last hour
    usual_hourly: float                # mean of the same hour over the last USUAL_DAYS days
    usual_interval_seconds: float | None
    runs_24h: int
    received_24h: int
    quarantined_24h: int
    reject_rate: float | None          # quarantined ÷ received over the feed runs of the last 24 h
    last_run_status: str | None
    last_error: str | None
    last_error_at: datetime | None
    status: str                        # ok | late | silent


def feed_health(now: datetime) -> list[FeedHealth]:
    """Health of every feed (ops view, the wall's feed panel, GET /api/v1/feeds)."""
    return _feed_health(current_version(), _bucket(now, 15))


@cache.memoize(timeout=120)
def _feed_health(version: int, bucket: int) -> list[FeedHealth]:
    from datetime import timezone
    now = datetime.fromtimestamp(bucket * 15, tz=timezone.utc)
    with session_scope() as s:
        return feed_health_rows(s, now)


def feed_status(lag_seconds: float | None, last_hour: int, usual_hourly: float) -> str:
    if usual_hourly <= 0 or lag_seconds is None:
        return "ok"  # nothing usually arrives at this hour: silence says nothing
    interval = 3600.0 / usual_hourly
    if lag_seconds > SILENT_INTERVALS * interval:
        return "silent"
    if lag_seconds > LATE_INTERVALS * interval or (usual_hourly >= LATE_MIN_USUAL and last_hour < usual_hourly / 3):
        return "late"
    return "ok"


def feed_health_rows(session: Session, now: datetime) -> list[FeedHealth]:
    from sqlalchemy import and_, literal
    from incidents.tables import FeedRun

    hour, day = timedelta(hours=1), timedelta(days=1)
    last_reported = dict(session.execute(select(Incident.source, func.max(Incident.reported_at))
                                         .group_by(Incident.source)).all())
    # bucket 0 = the last hour, bucket d = the same hour d days ago
    # (the last hour has no upper bound: a feed's clock may run a little ahead of ours)
    buckets = [func.sum(case((Incident.reported_at >= now - hour, 1), else_=0))]
    buckets += [func.sum(case((and_(Incident.reported_at >= now - d * day - hour,
                                    Incident.reported_at < now - d * day), 1), else_=0))
                for d in range(1, USUAL_DAYS + 1)]
    counts = {row[0]: [int(v or 0) for v in row[1:]] for row in session.execute(
        select(Incident.source, *buckets)
        .where(Incident.reported_at >= now - USUAL_DAYS * day - hour).group_by(Incident.source))}

    key = func.coalesce(func.nullif(FeedRun.source, literal("")), FeedRun.feed)
    runs: dict[str, dict] = {}
    for k, finished in session.execute(select(key, func.max(FeedRun.finished_at)).group_by(key)):
        runs[k] = {"finished": finished}
    for k, n, received, quarantined in session.execute(
            select(key, func.count(), func.sum(FeedRun.received), func.sum(FeedRun.quarantined))
            .where(FeedRun.started_at >= now - day, FeedRun.started_at <= now).group_by(key)):
        runs[k].update(n=int(n), received=int(received or 0), quarantined=int(quarantined or 0))
    latest = select(func.max(FeedRun.id)).group_by(key)
    for k, status in session.execute(select(key, FeedRun.status).where(FeedRun.id.in_(latest))):
        runs[k]["status"] = status
    failed = select(func.max(FeedRun.id)).where(FeedRun.status.in_(FEED_ERROR_STATUSES)).group_by(key)
    for k, error, at, started in session.execute(
            select(key, FeedRun.error, FeedRun.finished_at, FeedRun.started_at).where(FeedRun.id.in_(failed))):
        runs[k].update(error=error or "failed", error_at=at or started)

    out = []
    for feed in sorted(set(last_reported) | set(runs)):
        run = runs.get(feed, {})
        times = [t for t in (last_reported.get(feed), run.get("finished")) if t is not None]
        last = max(times) if times else None
        lag = max((now - last).total_seconds(), 0.0) if last else None
        c = counts.get(feed, [0] * (USUAL_DAYS + 1))
        usual = sum(c[1:]) / USUAL_DAYS
        received = run.get("received", 0)
        out.append(FeedHealth(
            feed=feed, last_record_at=last, lag_seconds=lag, last_hour=c[0], usual_hourly=round(usual, 3),
            usual_interval_seconds=round(3600.0 / usual, 1) if usual > 0 else None,
            runs_24h=run.get("n", 0), received_24h=received, quarantined_24h=run.get("quarantined", 0),
            reject_rate=run.get("quarantined", 0) / received if received else None,
            last_run_status=run.get("status"), last_error=run.get("error"), last_error_at=run.get("error_at"),
            status=feed_status(lag, c[0], usual)))
    return out
