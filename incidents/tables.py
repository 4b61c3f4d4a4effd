"""SQLAlchemy 2 typed ORM: the persistence edge of the domain.

Every timestamp is stored as naive UTC and read back as an aware UTC datetime
(``UTCDateTime``), so SQLite and PostgreSQL behave the same. Coordinates are
WGS84. A case's district and grid codes are computed once when it is written.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import Any, Optional

from sqlalchemy import (JSON, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, String,
                        Text, TypeDecorator, UniqueConstraint, false, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator):
    """Aware UTC in Python, naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Optional[datetime], dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: Optional[datetime], dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Department(Base):
    __tablename__ = "departments"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(160), default="")
    level: Mapped[str] = mapped_column(String(16))  # city | district | street | triage
    district_code: Mapped[Optional[str]] = mapped_column(String(20))
    parent_code: Mapped[Optional[str]] = mapped_column(String(40))


class Area(Base):
    """District and grid (网格) polygons; geometry as GeoJSON text in WGS84."""

    __tablename__ = "areas"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    level: Mapped[str] = mapped_column(String(16), index=True)  # district | grid
    parent_code: Mapped[Optional[str]] = mapped_column(String(20), index=True)
    geometry: Mapped[str] = mapped_column(Text)
    centroid_lon: Mapped[float] = mapped_column(Float)
    centroid_lat: Mapped[float] = mapped_column(Float)

    @property
    def geojson(self) -> dict:
        return json.loads(self.geometry)


class Category(Base):
    __tablename__ = "categories"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # component (部件) | event (事件)
    major_code: Mapped[str] = mapped_column(String(20), index=True)
    major_name: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str] = mapped_column(String(120), default="")
    time_limit: Mapped[float] = mapped_column(Float)
    time_unit: Mapped[str] = mapped_column(String(16))  # work_hours | work_days | natural_hours
    dup_radius_m: Mapped[float] = mapped_column(Float, default=50.0)
    dup_window_h: Mapped[float] = mapped_column(Float, default=48.0)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    demo_weight: Mapped[float] = mapped_column(Float, default=1.0)


class RoutingRule(Base):
    __tablename__ = "routing_rules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    category_code: Mapped[str] = mapped_column(String(20))  # small code, major code or '*'
    area_code: Mapped[Optional[str]] = mapped_column(String(20))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"))
    note: Mapped[str] = mapped_column(String(200), default="")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str] = mapped_column(String(80), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    department_code: Mapped[Optional[str]] = mapped_column(ForeignKey("departments.code"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    # bumped by "log out everywhere": a session that carries an older epoch is no longer valid
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class EndedSession(Base):
    """A browser session ended by its own logout: its signed cookie, should an answer that was in
    flight at the logout set it again (or anyone replay it), is refused until it would have
    expired anyway. Rows older than the session lifetime are removed at the next logout."""

    __tablename__ = "ended_sessions"
    sid: Mapped[str] = mapped_column(String(40), primary_key=True)
    ended_at: Mapped[datetime] = mapped_column(index=True)


class ApiToken(Base):
    """Bearer tokens for departments' own systems; only a hash is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime]
    revoked_at: Mapped[Optional[datetime]]
    # the feeds (push sources) this token may write, comma-separated; None = not bound to feeds
    feeds: Mapped[Optional[str]] = mapped_column(String(400))
    expires_at: Mapped[Optional[datetime]]


class Incident(Base):
    """A case (案件). ``version`` guards every write (optimistic locking)."""

    __tablename__ = "incidents"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_incidents_source_external_id"),
        Index("ix_incidents_state_deadline", "state", "deadline"),
        Index("ix_incidents_state_warn_at", "state", "warn_at"),
        Index("ix_incidents_district_state", "district_code", "state"),
        Index("ix_incidents_department_state", "department_code", "state"),
        Index("ix_incidents_grid_state", "grid_code", "state"),
        Index("ix_incidents_category_reported", "category_code", "reported_at"),
        Index("ix_incidents_channel_reported", "channel", "reported_at"),
        Index("ix_incidents_reported_at", "reported_at"),
        Index("ix_incidents_registered_at", "registered_at"),
        Index("ix_incidents_dispatched_at", "dispatched_at"),
        Index("ix_incidents_closed_at", "closed_at"),
        Index("ix_incidents_resolved_at", "resolved_at"),
        Index("ix_incidents_source_reported", "source", "reported_at"),
        Index("ix_incidents_external_id", "external_id"),   # Open311 requests/<id>: a source's id, any source
        # 重复诉求: the candidates' prefilter is one range scan of category × report time that reads
        # lon/lat from the index itself (incidents.services.repeat_candidates)
        Index("ix_incidents_category_reported_lonlat", "category_code", "reported_at", "lon", "lat"),
        Index("ix_incidents_repeat_of", "repeat_of"),
        # the repeats of the last days (the wall's alarm): only the few linked cases are indexed
        Index("ix_incidents_repeats_reported", "reported_at", sqlite_where=text("repeat_of IS NOT NULL"),
              postgresql_where=text("repeat_of IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Optimistic locking: every UPDATE of a case says "WHERE version = <the one loaded>".
    __mapper_args__ = {"version_id_col": version}
    source: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    lon: Mapped[Optional[float]] = mapped_column(Float)
    lat: Mapped[Optional[float]] = mapped_column(Float)
    district_code: Mapped[Optional[str]] = mapped_column(String(20))
    grid_code: Mapped[Optional[str]] = mapped_column(String(20))
    category_code: Mapped[Optional[str]] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    state: Mapped[str] = mapped_column(String(16))
    state_before_suspend: Mapped[Optional[str]] = mapped_column(String(16))
    department_code: Mapped[Optional[str]] = mapped_column(String(40))
    reporter_name: Mapped[str] = mapped_column(String(80), default="")
    reporter_phone: Mapped[str] = mapped_column(String(40), default="")
    # lifecycle timestamps
    reported_at: Mapped[datetime]
    registered_at: Mapped[Optional[datetime]]
    dispatched_at: Mapped[Optional[datetime]]
    signed_at: Mapped[Optional[datetime]]
    # 签收: the current dispatch's sign-for deadline, and the first dispatch's deadline and the first
    # sign-for (按时签收率; both fixed once set, so the KPI facts need no mask for them)
    sign_due: Mapped[Optional[datetime]]
    first_sign_due: Mapped[Optional[datetime]]
    first_signed_at: Mapped[Optional[datetime]]
    # 先行联系: the department's first contact with the citizen before any resolve (fixed once set)
    first_contacted_at: Mapped[Optional[datetime]]
    resolved_at: Mapped[Optional[datetime]]
    # the final resolve's outcome (model.ResolveOutcome: 实际解决 / 解释说明; None while not resolved)
    resolve_outcome: Mapped[Optional[str]] = mapped_column(String(16))
    closed_at: Mapped[Optional[datetime]]
    # 回访: the first one ever (fixed once set), and the last one of the current closure with its result
    # (model.RevisitResult; None: not revisited since the last closure)
    first_revisited_at: Mapped[Optional[datetime]]
    revisited_at: Mapped[Optional[datetime]]
    revisit_result: Mapped[Optional[str]] = mapped_column(String(16))
    voided_at: Mapped[Optional[datetime]]
    suspended_at: Mapped[Optional[datetime]]
    # deadline: warn_at is when 80 % of the allowed time is used (yellow), deadline 100 % (red)
    allowed_hours: Mapped[Optional[float]] = mapped_column(Float)
    warn_at: Mapped[Optional[datetime]]
    deadline: Mapped[Optional[datetime]]
    # the source's own deadline (an import mapping's [timestamps] deadline): the deadline in force
    # instead of the category's limit while the 处置 clock runs (moved by extensions and suspensions)
    source_deadline: Mapped[Optional[datetime]]
    on_time: Mapped[Optional[bool]] = mapped_column(Boolean)
    void_reason: Mapped[Optional[str]] = mapped_column(String(40))
    duplicate_of: Mapped[Optional[int]] = mapped_column(Integer)
    # 重复诉求: the parent this case repeats (a root: never itself a repeat) and when it was first linked
    repeat_of: Mapped[Optional[int]] = mapped_column(Integer)
    repeat_linked_at: Mapped[Optional[datetime]]
    supervise_level: Mapped[int] = mapped_column(Integer, default=0)
    # counters
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    return_count: Mapped[int] = mapped_column(Integer, default=0)
    # dispatched by arbitration (审定) after max_returns returns: the department can no longer return it
    arbitrated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    reassign_count: Mapped[int] = mapped_column(Integer, default=0)
    # an IoT alarm case: how many alarms of its device it stands for (repeats are folded into the open
    # case: data_sources.feeds.mqtt); None for every other case
    alarm_count: Mapped[Optional[int]] = mapped_column(Integer)
    extension_count: Mapped[int] = mapped_column(Integer, default=0)
    extension_hours: Mapped[float] = mapped_column(Float, default=0.0)
    suspended_hours: Mapped[float] = mapped_column(Float, default=0.0)
    # KPI milestones the transition keeps (DESIGN §6): the first dispatch (the 按期处置 cohort), and
    # the working hours from it to the final resolve (平均处置时长; None while not resolved)
    first_dispatched_at: Mapped[Optional[datetime]]
    handling_hours: Mapped[Optional[float]] = mapped_column(Float)
    # how often it was dispatched and closed (None = never) and its first closure: a case counted once
    # in 派遣数 / 结案数 is told by these alone; only the few dispatched or closed twice ask the timeline
    dispatch_count: Mapped[Optional[int]] = mapped_column(Integer)
    close_count: Mapped[Optional[int]] = mapped_column(Integer)
    first_closed_at: Mapped[Optional[datetime]]
    last_dispatched_at: Mapped[Optional[datetime]]     # (two dispatches or closures: first and last tell)
    last_closed_at: Mapped[Optional[datetime]]
    # the time of its last revising action (model.REVISING_ACTIONS; None: none yet): after it, the
    # milestones above tell what the case was at any instant
    revised_at: Mapped[Optional[datetime]]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(60), default="")

    events: Mapped[list["IncidentEvent"]] = relationship(
        back_populates="incident", order_by="IncidentEvent.id", lazy="raise_on_sql")


class CaseFact(Base):
    """One narrow row per case with what the KPIs read (DESIGN §2, §6), kept in the transaction of
    every write by :mod:`incidents.facts`: the KPI read model aggregates these with SQL instead of
    replaying the timeline. It holds the case as it is now; a KPI at an earlier ``as_of`` reads a
    row if ``revised_at <= as_of`` (nothing but forward milestones since, which it masks) and
    replays the rest's events."""

    __tablename__ = "case_facts"
    __table_args__ = (Index("ix_case_facts_reported_at", "reported_at"),
                      Index("ix_case_facts_registered_at", "registered_at"),
                      Index("ix_case_facts_first_dispatched_at", "first_dispatched_at"),
                      Index("ix_case_facts_first_closed_at", "first_closed_at"),
                      Index("ix_case_facts_last_dispatched_at", "last_dispatched_at"),
                      Index("ix_case_facts_last_closed_at", "last_closed_at"),
                      Index("ix_case_facts_state_deadline", "state", "deadline"),
                      Index("ix_case_facts_revised_at", "revised_at"),
                      Index("ix_case_facts_resolved_at", "resolved_at"),
                      Index("ix_case_facts_frozen_at", "frozen_at", "reported_at"),
                      Index("ix_case_facts_repeated", "incident_id",
                            sqlite_where=text("dispatches > 2 OR closures > 2"),
                            postgresql_where=text("dispatches > 2 OR closures > 2")))

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True, autoincrement=False)
    # what the case is now, where and whose
    state: Mapped[str] = mapped_column(String(16))
    state_before_suspend: Mapped[Optional[str]] = mapped_column(String(16))
    department_code: Mapped[Optional[str]] = mapped_column(String(40))
    district_code: Mapped[Optional[str]] = mapped_column(String(20))
    grid_code: Mapped[Optional[str]] = mapped_column(String(20))
    category_code: Mapped[Optional[str]] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    # the milestones the cohorts hang on, the clock in force, and the last change
    reported_at: Mapped[datetime]
    registered_at: Mapped[Optional[datetime]]
    first_dispatched_at: Mapped[Optional[datetime]]
    resolved_at: Mapped[Optional[datetime]]                          # the final resolve, with
    on_time: Mapped[Optional[bool]] = mapped_column(Boolean)          # its on-time and
    handling_hours: Mapped[Optional[float]] = mapped_column(Float)    # its working hours from the first dispatch
    deadline: Mapped[Optional[datetime]]
    suspended_at: Mapped[Optional[datetime]]
    # the last revising action (model.REVISING_ACTIONS; None: never revised, the index holds only the few)
    revised_at: Mapped[Optional[datetime]]
    # what happened on the way
    reworked: Mapped[bool] = mapped_column(Boolean)
    misdispatched: Mapped[bool] = mapped_column(Boolean)
    extended: Mapped[bool] = mapped_column(Boolean)
    first_closed_at: Mapped[Optional[datetime]]
    dispatches: Mapped[Optional[int]] = mapped_column(Integer)
    closures: Mapped[Optional[int]] = mapped_column(Integer)
    last_dispatched_at: Mapped[Optional[datetime]]
    last_closed_at: Mapped[Optional[datetime]]
    # 按时签收率: the first dispatch's 签收时限 and the first sign-for (fixed once set)
    first_sign_due: Mapped[Optional[datetime]]
    first_signed_at: Mapped[Optional[datetime]]
    # 先行联系率, 实际解决率, 回访率: the first contact before any resolve and the first 回访 (both fixed
    # once set), the final resolve's outcome (masked with the resolve at an earlier as_of)
    first_contacted_at: Mapped[Optional[datetime]]
    resolve_outcome: Mapped[Optional[str]] = mapped_column(String(16))
    first_revisited_at: Mapped[Optional[datetime]]
    # when the case stopped changing what any KPI reads (closed or voided, its last milestone):
    # from then on it counts the same at every as_of, so :mod:`incidents.rollups` sums it into
    # ``case_rollups``; :data:`incidents.rollups.FROZEN_NEVER` while it can still change
    frozen_at: Mapped[datetime] = mapped_column(server_default="9999-12-31 00:00:00.000000")


class CaseRollup(Base):
    """The frozen cases (``case_facts.frozen_at``) summed per week they froze in × department or
    district × milestone × the milestone's city-time day (and, for the dispatches and closures, the
    last one's day): what the KPI scan would add for them at any later ``as_of``, kept in the
    transaction of every write by :mod:`incidents.rollups`. The sums are the scan's columns
    (:data:`incidents.rollups.SUMS`)."""

    __tablename__ = "case_rollups"
    __table_args__ = (Index("ix_case_rollups_day", "day"), Index("ix_case_rollups_day2", "day2"))

    week: Mapped[int] = mapped_column(Integer, primary_key=True)          # whole weeks since 1970-01-01 UTC
    kind: Mapped[str] = mapped_column(String(12), primary_key=True)       # department | district
    unit: Mapped[str] = mapped_column(String(40), primary_key=True)       # its code, '' for none
    milestone: Mapped[str] = mapped_column(String(12), primary_key=True)  # reported | registered | dispatched | closed
    day: Mapped[date] = mapped_column(Date, primary_key=True)             # the (first) milestone's day
    day2: Mapped[date] = mapped_column(Date, primary_key=True)            # the last dispatch / closure's (else day)
    n: Mapped[int] = mapped_column(Integer)
    live: Mapped[int] = mapped_column(Integer)
    closed: Mapped[int] = mapped_column(Integer)
    closed_on_time: Mapped[int] = mapped_column(Integer)
    reworked: Mapped[int] = mapped_column(Integer)
    on_time_final: Mapped[int] = mapped_column(Integer)
    accurate: Mapped[int] = mapped_column(Integer)
    extended: Mapped[int] = mapped_column(Integer)
    resolved_final: Mapped[int] = mapped_column(Integer)
    signable: Mapped[int] = mapped_column(Integer)
    signed_on_time: Mapped[int] = mapped_column(Integer)
    cit: Mapped[int] = mapped_column(Integer)
    cit_contacted: Mapped[int] = mapped_column(Integer)
    cit_resolved: Mapped[int] = mapped_column(Integer)
    cit_solved: Mapped[int] = mapped_column(Integer)
    cit_revisited: Mapped[int] = mapped_column(Integer)
    hours: Mapped[float] = mapped_column(Float)
    one: Mapped[int] = mapped_column(Integer)      # cases dispatched (closed) once
    two: Mapped[int] = mapped_column(Integer)      # … twice


class IncidentEvent(Base):
    """Append-only case timeline: one row per action."""

    __tablename__ = "incident_events"
    __table_args__ = (Index("ix_incident_events_incident", "incident_id", "id"),
                      Index("ix_incident_events_action_at", "action", "at"),
                      Index("ix_incident_events_at", "at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(20))
    from_state: Mapped[Optional[str]] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    department_code: Mapped[Optional[str]] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[Optional[dict[str, Any]]]
    # shown on the timeline; the key that makes it applied once is its EventRequest row (a month-
    # partitioned table on PostgreSQL can hold no unique key without the month in it)
    request_id: Mapped[Optional[str]] = mapped_column(String(80), index=True)

    incident: Mapped[Incident] = relationship(back_populates="events")


class EventRequest(Base):
    """An action's idempotency key and the event it was applied as: a retried request is applied once."""

    __tablename__ = "event_requests"
    request_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    # no foreign key: the events' primary key is (id, at) on PostgreSQL
    event_id: Mapped[int] = mapped_column(Integer)


class ServiceRate(Base):
    """一网通办 figures per department, day and service item (好差评 ratings included)."""

    __tablename__ = "service_rates"
    __table_args__ = (UniqueConstraint("department_code", "day", "item_code",
                                       name="uq_service_rates_dept_day_item"),
                      Index("ix_service_rates_day", "day"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    department_code: Mapped[str] = mapped_column(String(40))
    day: Mapped[date] = mapped_column(Date)
    item_code: Mapped[str] = mapped_column(String(40))
    item_name: Mapped[str] = mapped_column(String(120), default="")
    total: Mapped[int] = mapped_column(Integer, default=0)
    online: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    on_time: Mapped[int] = mapped_column(Integer, default=0)
    rating_1: Mapped[int] = mapped_column(Integer, default=0)
    rating_2: Mapped[int] = mapped_column(Integer, default=0)
    rating_3: Mapped[int] = mapped_column(Integer, default=0)
    rating_4: Mapped[int] = mapped_column(Integer, default=0)
    rating_5: Mapped[int] = mapped_column(Integer, default=0)
    bad_rectified: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(40), default="")


class KpiIndicator(Base):
    __tablename__ = "kpi_indicators"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str] = mapped_column(String(120), default="")
    unit: Mapped[str] = mapped_column(String(20), default="")
    direction: Mapped[str] = mapped_column(String(8), default="up")  # up | down
    target: Mapped[Optional[float]] = mapped_column(Float)
    period: Mapped[str] = mapped_column(String(10), default="day")  # day | month | quarter | year
    group: Mapped[str] = mapped_column(String(40), default="")


class KpiValue(Base):
    __tablename__ = "kpi_values"
    __table_args__ = (UniqueConstraint("indicator_code", "period_start", "dimension",
                                       name="uq_kpi_values_indicator_period_dim"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    indicator_code: Mapped[str] = mapped_column(ForeignKey("kpi_indicators.code"))
    period_start: Mapped[date] = mapped_column(Date)
    dimension: Mapped[str] = mapped_column(String(60), default="")
    value: Mapped[float] = mapped_column(Float)


class FeedRun(Base):
    """One run of a feed; received = inserted + updated + unchanged + quarantined."""

    __tablename__ = "feed_runs"
    __table_args__ = (Index("ix_feed_runs_feed_started", "feed", "started_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed: Mapped[str] = mapped_column(String(60))
    source: Mapped[str] = mapped_column(String(300), default="")
    started_at: Mapped[datetime]
    finished_at: Mapped[Optional[datetime]]
    last_record_at: Mapped[Optional[datetime]]
    received: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str] = mapped_column(Text, default="")
    # which process runs it ("host:pid") and when it last made progress: a run whose process died
    # (killed import, crashed worker) is closed as failed by the next run that starts
    owner: Mapped[Optional[str]] = mapped_column(String(120))
    heartbeat_at: Mapped[Optional[datetime]]


class Quarantine(Base):
    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_feed_status", "feed", "status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_run_id: Mapped[Optional[int]] = mapped_column(ForeignKey("feed_runs.id"))
    feed: Mapped[str] = mapped_column(String(60))
    raw: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="new")  # new | retried | resolved
    created_at: Mapped[datetime]


class DemoStep(Base):
    """Planned future steps of simulated cases; the demo feed applies them when due."""

    __tablename__ = "demo_steps"
    __table_args__ = (Index("ix_demo_steps_due", "due_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    due_at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(20))
    payload: Mapped[Optional[dict[str, Any]]]


class Meta(Base):
    """Small key/value settings: the data version, which pack is loaded, seed state."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class AlarmAck(Base):
    """An operator acknowledged a wall alarm (who and when). Alarms themselves are derived from
    cases, events and feed health; their key names what they are about."""

    __tablename__ = "alarm_acks"
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    acked_by: Mapped[str] = mapped_column(String(60))
    acked_at: Mapped[datetime]


class CaseRequest(Base):
    """A department's request (延期 ``extend`` with hours, 挂账 ``suspend`` with a reason) that a
    dispatcher approves or rejects; only an approved request moves the deadline or stops the clock."""

    __tablename__ = "case_requests"
    __table_args__ = (Index("ix_case_requests_incident", "incident_id", "id"),
                      Index("ix_case_requests_status", "status", "requested_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    kind: Mapped[str] = mapped_column(String(20))            # extend | suspend
    status: Mapped[str] = mapped_column(String(16))          # pending | approved | rejected
    hours: Mapped[Optional[float]] = mapped_column(Float)
    reason: Mapped[Optional[str]] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(Text, default="")
    department_code: Mapped[Optional[str]] = mapped_column(String(40))
    requested_by: Mapped[str] = mapped_column(String(60))
    requested_at: Mapped[datetime]
    decided_by: Mapped[Optional[str]] = mapped_column(String(60))
    decided_at: Mapped[Optional[datetime]]
    decision_note: Mapped[str] = mapped_column(Text, default="")


class CaseAttachment(Base):
    """A photo or a link attached to a case (incidents.media) at one stage: with the report, with
    the department's resolve (after) or at verification. A photo's files live in the media store
    under ``storage_key`` / ``thumb_key`` (random names, never the client's file name); a link keeps
    only its ``url`` (never fetched). ``event_id`` is the timeline event it came with."""

    __tablename__ = "case_attachments"
    __table_args__ = (Index("ix_case_attachments_incident", "incident_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    event_id: Mapped[Optional[int]] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(16))            # report | resolve | verify
    kind: Mapped[str] = mapped_column(String(8))              # photo | link
    mime: Mapped[str] = mapped_column(String(40), default="")
    name: Mapped[str] = mapped_column(String(120), default="")  # the client's file name, display text only
    url: Mapped[Optional[str]] = mapped_column(String(500))
    storage_key: Mapped[Optional[str]] = mapped_column(String(80))
    thumb_key: Mapped[Optional[str]] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(Integer, default=0)
    width: Mapped[Optional[int]] = mapped_column(Integer)
    height: Mapped[Optional[int]] = mapped_column(Integer)
    sha256: Mapped[Optional[str]] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime]


class CaseAssignment(Base):
    """One assisting department's part (协办) of a dispatch: the lead (主办) stays the case's own
    ``Incident.department_code``, so every KPI of the lead reads the case row as before; each
    assisting department gets a row here with its own 签收 and reply deadlines (working time,
    incidents.services.assist_deadlines). ``ended_at``: the case left its departments (return,
    reopen, void, merge) or this department became the lead (reassign): the part is no longer live;
    a part ended before it replied and before its reply deadline no longer counts in 协办按时回复率."""

    __tablename__ = "case_assignments"
    __table_args__ = (Index("ix_case_assignments_incident", "incident_id", "id"),
                      Index("ix_case_assignments_department_live", "department_code", "ended_at", "replied_at"),
                      Index("ix_case_assignments_reply_due", "reply_due"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    department_code: Mapped[str] = mapped_column(String(40))
    dispatched_at: Mapped[datetime]
    dispatched_by: Mapped[str] = mapped_column(String(60), default="")
    sign_due: Mapped[datetime]
    signed_at: Mapped[Optional[datetime]]
    signed_by: Mapped[Optional[str]] = mapped_column(String(60))
    reply_due: Mapped[datetime]
    replied_at: Mapped[Optional[datetime]]
    replied_by: Mapped[Optional[str]] = mapped_column(String(60))
    reply_note: Mapped[str] = mapped_column(Text, default="")
    ended_at: Mapped[Optional[datetime]]
