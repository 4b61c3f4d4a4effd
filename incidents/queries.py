"""Read models for the screens: SQL aggregates (GROUP BY in the database), memoized.

Public functions take ``now`` and open their own session; the memoized inner functions are
keyed by the data version (and a time bucket where the answer depends on the clock), so
many screens share one computation and a write is seen at the next refresh.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from data_sources.cache import cache
from data_sources.db import session_scope
from incidents import bounds
from incidents.permissions import PERSONAL_DATA_ROLES, reporter_view
from incidents.model import Light, RequestStatus, Role, State
from incidents.services import data_version
from incidents.tables import Area, CaseRequest, Category, Department, Incident, IncidentEvent

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


# --------------------------------------------------------------------------- workbench

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
#: A feed arriving at its usual rate λ brings nothing for t with probability exp(−λt): silent when
#: that is below 0.1 % (7 usual intervals), late below 5 % (3 intervals) or when the last hour
#: brought less than a third of the usual volume (when that volume is big enough to tell).
#: Shorter thresholds raise false alarms on quiet night hours.
SILENT_INTERVALS = 7.0
LATE_INTERVALS = 3.0
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
    # one index probe per feed on (source, reported_at), not a scan of the whole table
    sources = set(session.scalars(select(Incident.source).where(Incident.reported_at >= now - 30 * day).distinct()))
    sources |= set(session.scalars(select(FeedRun.source).distinct())) | set(session.scalars(select(FeedRun.feed).distinct()))
    last_reported = {}
    for src in sorted(x for x in sources if x):
        last = session.scalar(select(func.max(Incident.reported_at)).where(Incident.source == src))
        if last is not None:
            last_reported[src] = last
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


# --------------------------------------------------------------------------- workbench (issue 5)

#: roles that see reporters' names and phone numbers unmasked (the same rule as the REST API)
RUNNING_STATES = [State.DISPATCHED.value, State.IN_PROGRESS.value]

#: "my to-do" by role: what waits for this role's next action
TODO_STATES = {
    "dispatcher": [State.REPORTED.value, State.REGISTERED.value],
    "department": [State.DISPATCHED.value, State.IN_PROGRESS.value],
    "inspector": [State.RESOLVED.value],
}

#: the workbench's ready-made views (my_todo depends on the role, see :func:`view_conditions`)
QUEUE_VIEWS = ("my_todo", "pending_approval", "all_open", "pending_register", "pending_dispatch", "yellow", "red",
               "pending_verify", "supervised", "suspended")


def view_conditions(view: str, now: datetime, role: str | None = None) -> list:
    """SQL conditions of one ready-made view (unknown view: nothing, not everything)."""
    from sqlalchemy import false
    from sqlalchemy import or_
    lt = light_expr(now)
    waiting = Incident.id.in_(select(CaseRequest.incident_id).where(CaseRequest.status == RequestStatus.PENDING.value))
    if view == "my_todo":
        if role == "leader":
            return [Incident.state.in_(OPEN_STATES), Incident.supervise_level > 0]
        todo = Incident.state.in_(TODO_STATES.get(role or "", OPEN_STATES))
        # a dispatcher's to-do includes the departments' requests waiting for a decision
        return [or_(todo, waiting) if role == "dispatcher" else todo]
    return {
        "all_open": [Incident.state.in_(OPEN_STATES)],
        "pending_register": [Incident.state == State.REPORTED.value],
        "pending_dispatch": [Incident.state == State.REGISTERED.value],
        "yellow": [Incident.state.in_(RUNNING_STATES), lt == Light.YELLOW.value],
        "red": [Incident.state.in_(RUNNING_STATES), lt == Light.RED.value],
        "pending_verify": [Incident.state == State.RESOLVED.value],
        "supervised": [Incident.state.in_(OPEN_STATES), Incident.supervise_level > 0],
        "suspended": [Incident.state == State.SUSPENDED.value],
        # 待审批: cases with a department's request waiting for a dispatcher
        "pending_approval": [waiting],
    }.get(view, [false()])


def scope_conditions(role: str | None, department_code: str | None) -> list:
    """Department users see their own department's cases only (other roles: everything)."""
    from sqlalchemy import false
    if role == "department":
        return [Incident.department_code == department_code] if department_code else [false()]
    return []


@dataclass(frozen=True)
class QueuePage:
    rows: list[dict]
    total: int


def _queue_columns():
    from sqlalchemy.orm import aliased
    district = aliased(Area)
    priority_rank = case({p: i for i, p in enumerate(("normal", "urgent", "emergency"))},
                         value=Incident.priority, else_=-1)
    state_rank = case({s.value: i for i, s in enumerate(State)}, value=Incident.state, else_=99)
    return district, {
        "id": Incident.id, "reported_at": Incident.reported_at, "title": Incident.title,
        "category": Category.name, "state": state_rank, "priority": priority_rank,
        "department": Department.name, "district": district.name, "remaining": Incident.deadline,
        "light": Incident.deadline, "deadline": Incident.deadline, "supervise_level": Incident.supervise_level,
    }


#: text filters of the grid's columns (AG Grid filterModel) → the column they search
_TEXT_FILTERS = {"title": Incident.title, "address": Incident.address}


def _filter_conditions(filter_model: dict | None, columns: dict) -> list:
    """AG Grid's filterModel (text and number filters) as SQL; unknown columns are ignored."""
    from sqlalchemy import or_
    conds = []
    for col, f in (filter_model or {}).items():
        if not isinstance(f, dict):
            continue
        kind, value = f.get("type"), f.get("filter")
        if value is None or value == "":
            continue
        if col == "id":
            try:
                n = int(value)
            except (TypeError, ValueError, OverflowError):
                continue
            n = max(-bounds.MAX_ID - 1, min(n, bounds.MAX_ID + 1))   # beyond any id, inside 64 bits
            conds.append({"equals": Incident.id == n, "greaterThan": Incident.id > n,
                          "lessThan": Incident.id < n}.get(kind, Incident.id == n))
            continue
        target = _TEXT_FILTERS.get(col) or (columns.get(col) if col in ("category", "department", "district") else None)
        if target is None:
            continue
        text = str(value)[:100]
        if kind == "equals":
            conds.append(target == text)
        elif kind == "startsWith":
            conds.append(target.istartswith(text, autoescape=True))
        elif kind == "notContains":
            conds.append(or_(target.is_(None), ~target.icontains(text, autoescape=True)))
        else:
            conds.append(target.icontains(text, autoescape=True))
    return conds


def search_conditions(q: str | None) -> list:
    """The quick search box: a case number, or words in title, address or description."""
    from sqlalchemy import or_
    q = bounds.searchable(q)[:100]
    if not q:
        return []
    text = q.lstrip("#")
    alternatives = [Incident.title.icontains(q, autoescape=True), Incident.address.icontains(q, autoescape=True),
                    Incident.description.icontains(q, autoescape=True)]
    if text.isdecimal() and not bounds.id_fault(int(text)):
        alternatives.append(Incident.id == int(text))
    return [or_(*alternatives)]


def queue_page(now: datetime, *, view: str = "all_open", role: str | None = None,
               department_code: str | None = None, q: str = "", sort_model: list | None = None,
               filter_model: dict | None = None, start: int = 0, end: int = 100,
               calendar=None) -> QueuePage:
    """One block of the workbench queue: view + scope + search + column filters + sort + one page,
    all in the database (the grid's infinite row model asks for rows ``start``..``end``).
    ``calendar`` (a WorkCalendar) adds each running case's remaining working hours as of ``now``."""
    district, columns = _queue_columns()
    conds = (view_conditions(view, now, role) + scope_conditions(role, department_code)
             + search_conditions(q) + _filter_conditions(filter_model, columns))
    order = []
    for item in (sort_model or [])[:3]:
        col = columns.get(item.get("colId"))
        if col is None:
            continue
        desc = item.get("sort") == "desc"
        if col is Incident.deadline:
            order.append(Incident.deadline.is_(None))  # no deadline: last either way
        order.append(col.desc() if desc else col.asc())
    if not order:
        order = [Incident.deadline.is_(None), Incident.deadline.asc(), Incident.reported_at.desc()]
    order.append(Incident.id.desc())
    start = max(int(start or 0), 0)
    size = min(max(int(end or 0) - start, 1), 500)
    lt = light_expr(now)
    stmt = (select(Incident.id, Incident.version, Incident.title, Incident.state, Incident.priority,
                   Incident.reported_at, Incident.deadline, Incident.supervise_level, Incident.address,
                   Incident.department_code, Incident.district_code, Incident.category_code,
                   Category.name.label("category"), Category.time_unit, Department.name.label("department"),
                   district.name.label("district"), lt.label("light"))
            .outerjoin(Category, Category.code == Incident.category_code)
            .outerjoin(Department, Department.code == Incident.department_code)
            .outerjoin(district, district.code == Incident.district_code)
            .where(*conds).order_by(*order).offset(start).limit(size))
    count = (select(func.count()).select_from(Incident)
             .outerjoin(Category, Category.code == Incident.category_code)
             .outerjoin(Department, Department.code == Incident.department_code)
             .outerjoin(district, district.code == Incident.district_code).where(*conds))
    with session_scope() as s:
        rows = [dict(r._mapping) for r in s.execute(stmt).all()]
        total = s.scalar(count) or 0
        waiting = pending_requests_of(s, [r["id"] for r in rows])
    for r in rows:
        r["requests"] = waiting.get(r["id"], [])
        running = r["state"] in RUNNING_STATES and r["deadline"] is not None
        r["light"] = r["light"] if running else None
        r["remaining_hours"] = None
        if running and calendar is not None:
            from incidents.sla import remaining_working_hours
            r["remaining_hours"] = round(remaining_working_hours(r["deadline"], now, calendar,
                                                                 time_unit=r["time_unit"]), 2)
    return QueuePage(rows=rows, total=int(total))


def request_row(r: CaseRequest) -> dict:
    """One request as the screens and the API show it."""
    return {"id": r.id, "kind": r.kind, "status": r.status, "hours": r.hours, "reason": r.reason,
            "note": r.note or "", "department_code": r.department_code, "requested_by": r.requested_by,
            "requested_at": r.requested_at, "decided_by": r.decided_by, "decided_at": r.decided_at,
            "decision_note": r.decision_note or ""}


def case_requests(s: Session, incident_id: int) -> list[dict]:
    """Every request of a case, pending first, then the newest."""
    rows = s.scalars(select(CaseRequest).where(CaseRequest.incident_id == incident_id)
                     .order_by((CaseRequest.status == RequestStatus.PENDING.value).desc(),
                               CaseRequest.id.desc())).all()
    return [request_row(r) for r in rows]


def pending_requests_of(s: Session, incident_ids: list[int]) -> dict[int, list[dict]]:
    """The pending requests of the given cases (one query for a block of the queue)."""
    if not incident_ids:
        return {}
    out: dict[int, list[dict]] = {}
    for r in s.scalars(select(CaseRequest).where(CaseRequest.incident_id.in_(incident_ids),
                                                 CaseRequest.status == RequestStatus.PENDING.value)
                       .order_by(CaseRequest.id)):
        out.setdefault(r.incident_id, []).append(request_row(r))
    return out


def case_detail(now: datetime, incident_id: int, *, rules, role: str, department_code: str | None) -> dict | None:
    """Everything the case panel shows, or None when the case does not exist *or* the user may not
    see it (another department's case answers as if it did not exist). Reporter data masked
    unless the role may see it; the actions offered are those the state and the role allow."""
    from incidents import permissions
    from incidents.model import Action
    from incidents.services import near_duplicates, suggest_department
    with session_scope() as s:
        row = s.execute(select(Incident).where(Incident.id == int(incident_id),
                                               *scope_conditions(role, department_code))).first()
        if row is None:
            return None
        c = row[0]
        events = s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == c.id)
                           .order_by(IncidentEvent.id)).all()
        names = dict(s.execute(select(Department.code, Department.name)).all())
        area = dict(s.execute(select(Area.code, Area.name).where(Area.code.in_(
            [x for x in (c.district_code, c.grid_code) if x]))).all())
        cat = s.get(Category, c.category_code) if c.category_code else None
        suggestion = suggest_department(s, rules, c)
        dups = near_duplicates(s, c) if State(c.state).is_open else []
        reporter_name, reporter_phone = reporter_view(c.reporter_name, c.reporter_phone, role)
        private = Role(str(role)) in PERSONAL_DATA_ROLES
        running = c.state in RUNNING_STATES and c.deadline is not None
        remaining = None
        if running:
            from incidents.sla import remaining_working_hours
            remaining = round(remaining_working_hours(c.deadline, now, rules.calendar,
                                                      time_unit=cat.time_unit if cat else None), 2)
        requests = case_requests(s, c.id)
        pending = [r["kind"] for r in requests if r["status"] == RequestStatus.PENDING.value]
        actions = [a.value for a in permissions.available_actions(
            role, c.state, user_department=department_code, case_department=c.department_code, pending=pending)]
        return {
            "id": c.id, "version": c.version, "state": c.state, "title": c.title,
            "description": c.description or "", "address": c.address or "", "lon": c.lon, "lat": c.lat,
            "channel": c.channel, "source": c.source, "priority": c.priority,
            "category": cat.name if cat else None, "category_code": c.category_code,
            "district_code": c.district_code, "district": area.get(c.district_code),
            "grid_code": c.grid_code, "grid": area.get(c.grid_code),
            "department_code": c.department_code, "department": names.get(c.department_code),
            "reporter_name": reporter_name, "reporter_phone": reporter_phone,
            "reporter_masked": not private,
            "reported_at": c.reported_at, "dispatched_at": c.dispatched_at, "deadline": c.deadline,
            "light": light_of(c, now) if running else None, "remaining_hours": remaining,
            "supervise_level": c.supervise_level or 0, "rework_count": c.rework_count,
            "duplicate_of": c.duplicate_of, "void_reason": c.void_reason,
            "updated_at": c.updated_at, "updated_by": c.updated_by or "",
            "suggestion": {"department_code": suggestion.department_code,
                           "department": names.get(suggestion.department_code, suggestion.department_code),
                           "reason": suggestion.reason},
            "duplicates": [{"id": d.id, "title": d.title, "state": d.state, "distance_m": round(dist),
                            "reported_at": d.reported_at} for d, dist in dups],
            "actions": actions,
            # the actions this role only asks for (a department's extend / suspend): "申请…" buttons
            "request_only": [a for a in actions if permissions.is_request_only(role, a)],
            "may_decide": permissions.may(role, Action.APPROVE),
            "requests": requests,
            "timeline": [{"at": e.at, "actor": e.actor, "action": e.action, "from_state": e.from_state,
                          "to_state": e.to_state, "department": names.get(e.department_code),
                          "note": e.note or "", "payload": e.payload or {}} for e in events],
        }


def light_of(case: Incident, now: datetime) -> str:
    if case.deadline is not None and case.deadline < now:
        return Light.RED.value
    if case.warn_at is not None and case.warn_at < now:
        return Light.YELLOW.value
    return Light.GREEN.value


def department_options() -> list[tuple[str, str]]:
    """(code, name) of every department, by code (the dispatch dropdown)."""
    with session_scope() as s:
        return [(c, n) for c, n in s.execute(select(Department.code, Department.name).order_by(Department.code))]


# --------------------------------------------------------------------------- KPIs (DESIGN §6)

#: events that change nothing the KPIs read (no state, clock or department change): a department's
#: request and a rejection leave the case as it was; an approval counts as what it approved
KPI_SKIPPED_ACTIONS = ("update", "supervise", "request", "reject")
#: a group below this many cases in its 立案 cohort is listed apart, never ranked
KPI_MIN_VOLUME = 20


def _kpi_relevant(start: datetime, end: datetime, as_of: datetime):
    """Ids of the cases a period can need, reported by ``as_of``: the cohorts need only cases
    with an event in ``[start, end)`` up to ``as_of`` (reported, registered, dispatched or closed
    in it); 超期未处置数 needs every case open at ``as_of``: those open now and those changed
    after ``as_of`` (``updated_at`` is the time of a case's last write, never before its last
    event). Nothing else: not a case settled before the start, nor one reported after the end
    and settled before ``as_of``.

    A UNION of three id sets, each on an index, not one WHERE with ``OR id IN (…)``: PostgreSQL
    cannot hash a subplan that large inside an OR and re-runs it per row (minutes at 1M cases)."""
    from sqlalchemy import union
    open_now = select(Incident.id.label("id")).where(Incident.reported_at <= as_of, Incident.state.in_(OPEN_STATES))
    touched = (select(IncidentEvent.incident_id.label("id"))
               .where(IncidentEvent.at >= start, IncidentEvent.at < end, IncidentEvent.at <= as_of))
    changed_later = select(Incident.id.label("id")).where(Incident.reported_at <= as_of, Incident.updated_at > as_of)
    ids = union(open_now, touched, changed_later).subquery("kpi_relevant")
    return select(ids.c.id)


def _frame(s: Session, stmt, names: list[str], datetimes: tuple[str, ...] = ()):
    """A frame from a Core select, built column-wise; the datetime columns come as the database
    has them (strings on SQLite, naive datetimes on PostgreSQL: both naive UTC) and are parsed
    vectorised — per-row type processing cost more than the query on 100k+ rows."""
    import pandas as pd
    result = s.connection().execute(stmt)
    try:
        rows = result.cursor.fetchall()      # plain tuples: no Row objects for 100k+ rows
    finally:
        result.close()
    cols = list(zip(*rows)) if rows else [()] * len(names)
    df = pd.DataFrame({n: pd.Series(c, dtype=object) for n, c in zip(names, cols)})
    for n in datetimes:
        df[n] = pd.to_datetime(df[n], utc=True, format="ISO8601")
    return df


def _raw(col):
    """A datetime column without per-row conversion (see :func:`_frame`)."""
    from sqlalchemy import String, type_coerce
    return type_coerce(col, String).label(col.key)


def load_kpi_frames(s: Session, start: datetime, end: datetime, as_of: datetime, *,
                    priority_factors: dict[str, float], hours_per_day: float, tz: str):
    """(cases, events, service_rates) frames for :func:`incidents.kpis.kpi_report`, fetched with SQL
    filters and only the columns the formulas read."""
    # the ids once into a temporary table: the cases, the events and the extensions join it
    ids = _relevant_ids_table(s, _kpi_relevant(start, end, as_of))
    frames = _kpi_frames(s, select(ids.c.id), start, end, priority_factors=priority_factors,
                         hours_per_day=hours_per_day, tz=tz)
    ids.drop(s.connection())      # (on an error the rollback takes it away)
    return frames


_IDS_METADATA = None


def _relevant_ids_table(s: Session, relevant):
    """A per-connection temporary table ``kpi_relevant_ids`` filled from ``relevant``."""
    from sqlalchemy import Column, Integer, MetaData, Table, insert
    global _IDS_METADATA
    if _IDS_METADATA is None:
        _IDS_METADATA = Table("kpi_relevant_ids", MetaData(), Column("id", Integer, primary_key=True, autoincrement=False),
                              prefixes=["TEMPORARY"])
    table = _IDS_METADATA
    conn = s.connection()
    table.drop(conn, checkfirst=True)
    table.create(conn)
    conn.execute(insert(table).from_select(["id"], relevant))
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE kpi_relevant_ids")   # temp tables have no statistics otherwise
    return table


def _kpi_frames(s: Session, relevant, start: datetime, end: datetime, *, priority_factors: dict[str, float],
                hours_per_day: float, tz: str):
    import pandas as pd
    from incidents import kpis
    from incidents.model import TimeUnit
    from incidents.tables import ServiceRate

    cases = _frame(s, select(Incident.id, _raw(Incident.reported_at), Incident.district_code, Incident.department_code,
                             Incident.state, _raw(Incident.deadline), Incident.on_time, Incident.priority,
                             Category.time_limit, Category.time_unit)
                   .outerjoin(Category, Category.code == Incident.category_code)
                   .where(Incident.id.in_(relevant)),
                   ["id", "reported_at", "district_code", "department_code", "state", "deadline", "on_time",
                    "priority", "time_limit", "time_unit"], ("reported_at", "deadline"))
    if len(cases):
        cases["id"] = cases["id"].astype("int64")
        per_day = cases["time_unit"].eq(TimeUnit.WORK_DAYS.value).map({True: hours_per_day, False: 1.0})
        factor = cases["priority"].map(lambda p: float(priority_factors.get(p, 1.0)))
        cases["base_hours"] = cases["time_limit"].astype(float) * per_day.astype(float) * factor.astype(float)
        cases["natural"] = cases["time_unit"].eq(TimeUnit.NATURAL_HOURS.value)
    else:
        cases["base_hours"], cases["natural"] = pd.Series(dtype=float), pd.Series(dtype=bool)
    events = _frame(s, select(IncidentEvent.incident_id, IncidentEvent.id, _raw(IncidentEvent.at), IncidentEvent.action,
                              IncidentEvent.from_state, IncidentEvent.to_state, IncidentEvent.department_code)
                    .where(IncidentEvent.incident_id.in_(relevant),
                           IncidentEvent.action.not_in(KPI_SKIPPED_ACTIONS)),
                    ["incident_id", "id", "at", "action", "from_state", "to_state", "department_code"], ("at",))
    if len(events):
        events["incident_id"] = events["incident_id"].astype("int64")
        events["id"] = events["id"].astype("int64")
    # extend hours, and what an approval approved (kpis: an approve event counts as its ``kind``)
    payloads = dict(s.execute(select(IncidentEvent.id, IncidentEvent.payload)
                              .where(IncidentEvent.action.in_(("extend", kpis.APPROVE)),
                                     IncidentEvent.incident_id.in_(relevant))).all())
    hours = {i: float((p or {}).get("hours") or 0.0) for i, p in payloads.items()}
    kinds = {i: (p or {}).get("kind") for i, p in payloads.items()}
    events["hours"] = events["id"].map(hours).astype(float) if len(events) else pd.Series(dtype=float)
    events["kind"] = events["id"].map(kinds) if len(events) else pd.Series(dtype=object)

    first, last = kpis.service_days(kpis.Period(start, end), tz)
    rate_cols = [getattr(ServiceRate, c) for c in kpis.SERVICE_RATE_COLUMNS]
    rates = pd.DataFrame(s.execute(select(*rate_cols).where(ServiceRate.day >= first, ServiceRate.day < last)).all(),
                         columns=list(kpis.SERVICE_RATE_COLUMNS))
    return cases, events, rates


def kpi_report(from_: datetime, to: datetime, as_of: datetime, group_by: str | None = None):
    """Every KPI of DESIGN §6 for ``[from_, to)`` at ``as_of`` (aware datetimes), optionally per
    department or district with the 综合指标值 ranking: the one function the brief page, the API
    and the exports call. Memoized per data version."""
    from incidents import kpis
    period = kpis.Period(from_, to)  # validates from_ < to and awareness
    if group_by not in (None, "department", "district"):
        raise ValueError("group_by must be None, 'department' or 'district'")
    return _kpi_report(current_version(), period.start.isoformat(), period.end.isoformat(),
                       kpis._utc(as_of).isoformat(), group_by)


@cache.memoize(timeout=600)
def _kpi_report(version: int, start_iso: str, end_iso: str, as_of_iso: str, group_by: str | None):
    from flask import current_app
    from data_sources.runtime import get_runtime
    from incidents import kpis
    rt = get_runtime(current_app)
    pack = rt.pack
    start, end, as_of = (datetime.fromisoformat(v) for v in (start_iso, end_iso, as_of_iso))
    with session_scope() as s:
        cases, events, rates = load_kpi_frames(s, start, end, as_of, priority_factors=pack.priority_factors,
                                               hours_per_day=rt.calendar.hours_per_day, tz=pack.timezone)
        names = None
        if group_by == "department":
            names = dict(s.execute(select(Department.code, Department.name)).all())
        elif group_by == "district":
            names = dict(s.execute(select(Area.code, Area.name).where(Area.level == "district")).all())
    return kpis.kpi_report(cases, events, rates, kpis.Period(start, end), as_of, tz=pack.timezone, cal=rt.calendar,
                           targets=pack.kpi_targets, weights=pack.kpi_weights or None, group_by=group_by,
                           names=names, min_volume=KPI_MIN_VOLUME)


def case_rules():
    """The loaded pack's case rules (calendar, routing, areas) for the screens."""
    from flask import current_app
    from data_sources.runtime import get_runtime
    return get_runtime(current_app).rules


