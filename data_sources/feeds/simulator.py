"""Demo feed: realistic cases for a city pack, moved through their lifecycle.

Deterministic with a seed: arrivals are drawn per 5-minute slot from a generator seeded by
(seed, slot), and each case's whole future (register, dispatch, sign, resolve, verify, with
the odd void, return, extension, suspension, rework and 督办) is planned when it arrives.
History (``seed_history``) applies the planned steps that lie in the past in bulk (through
``services.transition`` on plain drafts, written with driver ``executemany`` while the tables'
indexes wait: 400 days ≈ 450,000 cases in about a minute and a half on two cores) and keeps
the rest as ``demo_steps``; the live feed (``tick``) adds the new slots' cases and applies
due steps through ``incidents.services`` like any user would. A step that no longer fits
(someone acted on the case by hand) drops the rest of that case's plan.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import operator
import os
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional
from zoneinfo import ZoneInfo

import shapely
from sqlalchemy import Boolean, delete, func, select
from sqlalchemy.orm import Session

from data_sources.packs import Pack
from data_sources.store.db import bulk_load, unbounded
from incidents import facts, rollups, services
from incidents.lifecycle import DomainError, next_state
from incidents.model import Action, Channel, Priority, ResolveOutcome, RevisitResult, Role, State, TimeUnit
from incidents.services import Actor, CaseRules
from incidents.tables import Category, DemoStep, Incident, Meta, UTCDateTime

log = logging.getLogger(__name__)

SLOT = 300  # seconds
SOURCE = "demo"
SLOT_KEY = "demo_slot"

# hourly shape of arrivals (local time): quiet nights, morning and afternoon peaks
RHYTHM = [0.25, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 1.0, 1.5, 1.8, 1.8, 1.6,
          1.2, 1.4, 1.7, 1.7, 1.6, 1.4, 1.2, 1.1, 1.0, 0.8, 0.6, 0.4]
WEEKEND = 0.8
#: demo 签收: the share of dispatches signed for after the sign-for deadline — a few per cent, and more
#: for the departments of some major classes (those whose crc32 of the code is divisible by 3), so
#: 按时签收率 differs between departments as it does in a real city
LATE_SIGN_SHARE, SLOW_SIGNERS_LATE_SHARE = 0.03, 0.12
CHANNELS = [(Channel.HOTLINE, 0.36), (Channel.GRID, 0.30), (Channel.VIDEO, 0.14),
            (Channel.APP, 0.12), (Channel.IOT, 0.08)]
STREETS = ["延安路", "解放路", "庆春路", "凤起路", "体育场路", "文三路", "文一西路", "莫干山路", "中河路",
           "环城北路", "湖墅南路", "江南大道", "滨盛路", "市心路", "钱江路", "新业路", "学院路", "天目山路",
           "曙光路", "秋涛路", "德胜路", "艮山西路", "之江路", "九堡大道", "临平大道", "金沙大道"]
SURNAMES = "王李张刘陈杨黄赵周吴徐孙朱马胡郭林何高罗"
_CHANNEL_LIST = [c for c, _ in CHANNELS]
_CHANNEL_CUM = list(itertools.accumulate(w for _, w in CHANNELS))


@dataclass
class Step:
    at: datetime
    action: Action
    role: Role
    params: dict = field(default_factory=dict)


@dataclass
class PlannedCase:
    external_id: str
    reported_at: datetime
    category: Category
    channel: Channel
    priority: Priority
    lon: float
    lat: float
    title: str
    description: str
    address: str
    reporter_name: str
    reporter_phone: str
    steps: list[Step]


class Simulator:
    def __init__(self, pack: Pack, rules: CaseRules, categories: list[Category], *, seed: int,
                 daily_cases: Optional[float] = None):
        self.pack, self.rules, self.seed = pack, rules, seed
        self.tz = ZoneInfo(pack.timezone)
        demo = pack.demo or {}
        self.daily = float(daily_cases or demo.get("daily_cases", 600))
        self.hotspot_share = float(demo.get("hotspot_share", 0.6))
        self.hotspots = list(demo.get("hotspots", []))
        self.categories = sorted(categories, key=lambda c: c.code)
        self.cat_weights = [max(c.demo_weight, 0.0) for c in self.categories]
        # cumulative weights once: rng.choices(cum_weights=…) draws exactly what weights=… draws
        self._cat_cum = list(itertools.accumulate(self.cat_weights))
        self._hot_cum = list(itertools.accumulate(float(x.get("weight", 1)) for x in self.hotspots))
        weights = {str(k): float(v) for k, v in (demo.get("district_weights") or {}).items()}
        grids = list(pack.grids())
        self.grids = grids
        self.grid_weights = [weights.get(g.parent_code, 0.01) / max(1, sum(1 for h in grids if h.parent_code == g.parent_code))
                             for g in grids]
        self._grid_cum = list(itertools.accumulate(self.grid_weights))
        self.department_of_district = {}
        shapely.prepare([g.geometry for g in grids])

    # ------------------------------------------------------------------ arrivals
    def rate_per_slot(self, slot: int) -> float:
        local = datetime.fromtimestamp(slot * SLOT, tz=timezone.utc).astimezone(self.tz)
        shape = RHYTHM[local.hour] / (sum(RHYTHM) / 24)
        if local.weekday() >= 5:
            shape *= WEEKEND
        return self.daily / (86400 / SLOT) * shape

    def arrivals(self, slot: int) -> list[PlannedCase]:
        rng = random.Random(f"{self.seed}:{slot}")
        n = _poisson(rng, self.rate_per_slot(slot))
        return [self.plan(rng, slot, i) for i in range(n)]

    # ------------------------------------------------------------------ one case
    def plan(self, rng: random.Random, slot: int, i: int) -> PlannedCase:
        reported_at = datetime.fromtimestamp(slot * SLOT + rng.uniform(0, SLOT), tz=timezone.utc).replace(microsecond=0)
        cat = rng.choices(self.categories, cum_weights=self._cat_cum)[0]
        lon, lat = self._location(rng)
        channel = self._channel(rng, cat)
        priority = Priority.EMERGENCY if cat.urgent else (Priority.URGENT if rng.random() < 0.05 else Priority.NORMAL)
        street = rng.choice(STREETS)
        address = f"{street}{rng.randint(1, 899)}号附近"
        name = rng.choice(SURNAMES) + ("先生" if rng.random() < 0.5 else "女士")
        phone = f"1{rng.choice('3589')}{rng.randint(0, 9)}{rng.randint(10000000, 99999999)}"
        title = f"{street}{cat.name}"
        desc = f"{_CHANNEL_TEXT[channel]}：{address}发现{cat.name}，请尽快处置。"
        steps = self._steps(rng, cat, priority, reported_at, citizen=self.rules.is_citizen(channel.value))
        return PlannedCase(f"SIM-{slot}-{i}", reported_at, cat, channel, priority, lon, lat, title, desc,
                           address, name if channel in (Channel.HOTLINE, Channel.APP) else "",
                           phone if channel in (Channel.HOTLINE, Channel.APP) else "", steps)

    def _location(self, rng: random.Random) -> tuple[float, float]:
        if self.hotspots and rng.random() < self.hotspot_share:
            h = rng.choices(self.hotspots, cum_weights=self._hot_cum)[0]
            r = float(h.get("radius_km", 1.0)) / 111.0
            ang, dist = rng.uniform(0, 2 * math.pi), abs(rng.gauss(0, r / 1.6))
            return (round(float(h["lon"]) + dist * math.cos(ang) / math.cos(math.radians(float(h["lat"]))), 6),
                    round(float(h["lat"]) + dist * math.sin(ang), 6))
        g = rng.choices(self.grids, cum_weights=self._grid_cum)[0]
        minx, miny, maxx, maxy = g.geometry.bounds
        for _ in range(30):
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if shapely.contains_xy(g.geometry, x, y):
                return round(x, 6), round(y, 6)
        c = g.geometry.representative_point()
        return round(c.x, 6), round(c.y, 6)

    @staticmethod
    def _channel(rng: random.Random, cat: Category) -> Channel:
        if cat.kind == "component" and rng.random() < 0.25:
            return Channel.IOT
        if cat.major_code in ("E05",) and rng.random() < 0.3:
            return Channel.VIDEO
        return rng.choices(_CHANNEL_LIST, cum_weights=_CHANNEL_CUM)[0]

    def _steps(self, rng: random.Random, cat: Category, priority: Priority, t0: datetime, *,
               citizen: bool = False) -> list[Step]:
        steps: list[Step] = []
        minutes = lambda lo, hi: timedelta(minutes=rng.uniform(lo, hi))
        urgent = cat.urgent or priority != Priority.NORMAL
        t = t0 + (minutes(2, 15) if urgent else minutes(5, 45))
        if rng.random() < 0.04:  # not a case
            steps.append(Step(t, Action.VOID, Role.DISPATCHER,
                              {"reason": rng.choice(["invalid", "duplicate", "not_ours"]), "note": "核实后不予立案"}))
            return steps
        steps.append(Step(t, Action.REGISTER, Role.DISPATCHER))
        t += minutes(2, 10) if urgent else minutes(5, 60)
        steps.append(Step(t, Action.DISPATCH, Role.DISPATCHER))
        dispatched = t
        if rng.random() < 0.03:  # wrong department: sent back and dispatched again
            t += minutes(20, 180)
            steps.append(Step(t, Action.RETURN, Role.DEPARTMENT, {"reason": "not_ours"}))
            t += minutes(10, 60)
            steps.append(Step(t, Action.DISPATCH, Role.DISPATCHER))
            dispatched = t
        allowed = services.limit_hours(cat, priority, self.rules.priority_factors, self.rules.calendar)
        advance = lambda start, h: (start + timedelta(hours=h) if cat.time_unit == TimeUnit.NATURAL_HOURS
                                    else self.rules.calendar.add_working_hours(start, h))
        t = self._sign_at(rng, cat, priority, dispatched, t + (minutes(5, 40) if urgent else minutes(10, 150)))
        steps.append(Step(t, Action.SIGN, Role.DEPARTMENT))
        # 先行联系: most departments call a citizen back soon after signing for the case
        if citizen and rng.random() < 0.88:
            steps.append(Step(t + (minutes(3, 30) if urgent else minutes(10, 240)), Action.CONTACT, Role.DEPARTMENT,
                              {"note": "已电话联系市民，了解诉求"}))
        f = rng.random()
        frac = (rng.uniform(0.05, 0.75) if f < 0.72 else rng.uniform(0.8, 1.0) if f < 0.86
                else rng.uniform(1.02, 2.5) if f < 0.97 else rng.uniform(3, 6))
        extra = 0.0
        roll = rng.random()
        if roll < 0.04 and frac > 0.7:  # extension requested and approved before it runs late
            extra = allowed * 0.5
            ext_at = max(t + minutes(5, 30), advance(dispatched, allowed * 0.6))
            steps.append(Step(ext_at, Action.EXTEND, Role.DISPATCHER,
                              {"hours": round(extra, 2), "note": "需协调多部门，申请延期"}))
        resolve_at = max(advance(dispatched, frac * (allowed + extra)), t + minutes(5, 30))
        if roll > 0.985 and frac > 0.4:  # suspended (挂账) for a few days
            s_at = max(t + minutes(5, 30), advance(dispatched, allowed * 0.3))
            r_at = s_at + timedelta(days=rng.uniform(1, 5))
            steps.append(Step(s_at, Action.SUSPEND, Role.DISPATCHER, {"reason": "待上级审批资金"}))
            steps.append(Step(r_at, Action.RESUME, Role.DISPATCHER))
            resolve_at = max(resolve_at, r_at + minutes(30, 240))
        if frac > 1.2 and rng.random() < 0.4:  # red cases draw 督办
            sup_at = advance(dispatched, 1.1 * (allowed + extra))
            if sup_at < resolve_at:
                steps.append(Step(sup_at, Action.SUPERVISE, Role.LEADER,
                                  {"level": 1 if rng.random() < 0.7 else 2, "note": "超期督办"}))
        explained = citizen and rng.random() < 0.12     # 解释说明: not solvable on the ground, explained instead
        steps.append(Step(resolve_at, Action.RESOLVE, Role.DEPARTMENT,
                          {"note": "已向市民解释说明政策" if explained else "已处置完毕，附现场照片",
                           "outcome": ResolveOutcome.EXPLAINED.value if explained else ResolveOutcome.SOLVED.value}))
        t = resolve_at + (minutes(10, 90) if urgent else minutes(30, 360))
        if rng.random() < 0.06:  # on-site check fails: rework
            steps.append(Step(t, Action.VERIFY_FAIL, Role.INSPECTOR, {"note": "现场核查未处置到位"}))
            t = advance(t, rng.uniform(0.1, 0.7) * allowed)
            steps.append(Step(t, Action.RESOLVE, Role.DEPARTMENT, {"note": "返工完成"}))
            t += minutes(30, 240)
        steps.append(Step(t, Action.VERIFY_PASS, Role.INSPECTOR, {"note": "核查通过"}))
        if citizen:
            self._revisits(rng, steps, t, advance, allowed, minutes)
        steps.sort(key=lambda s: s.at)
        return _feasible(steps)

    def _sign_at(self, rng: random.Random, cat: Category, priority: Priority, dispatched: datetime,
                 drawn: datetime) -> datetime:
        """When the department signs for a dispatch: ``drawn`` kept within the sign-for deadline, or
        — for a few per cent of cases, more in slow-signing departments — 1.1 to 4 times the sign-for
        working hours after the dispatch."""
        hours = self.rules.sign_for_limit(priority)
        if rng.random() < (SLOW_SIGNERS_LATE_SHARE if _slow_signer(cat.major_code) else LATE_SIGN_SHARE):
            return self.rules.calendar.add_working_hours(dispatched, hours * rng.uniform(1.1, 4.0))
        due = self.rules.calendar.add_working_hours(dispatched, hours)
        return min(drawn, due - timedelta(minutes=1))
    @staticmethod
    def _revisits(rng: random.Random, steps: list[Step], closed: datetime, advance, allowed: float, minutes) -> None:
        """回访 of a citizen's case after its closure: most are reached and satisfied; 未联系上 is tried
        once more the next day; 不满意 sends it back (重办), resolved and revisited again."""
        if rng.random() < 0.06:      # not revisited (yet)
            return
        t = closed + minutes(60, 60 * 30)
        for _ in range(3):
            roll = rng.random()
            result = (RevisitResult.SATISFIED if roll < 0.72 else RevisitResult.BASICALLY_SATISFIED if roll < 0.86
                      else RevisitResult.UNREACHABLE if roll < 0.95 else RevisitResult.UNSATISFIED)
            steps.append(Step(t, Action.REVISIT, Role.DISPATCHER,
                              {"result": result.value,
                               **({"note": "市民反映问题仍未解决"} if result.redo else {})}))
            if result is RevisitResult.UNREACHABLE:
                t += minutes(60 * 18, 60 * 26)
                continue
            if not result.redo:
                return
            t = advance(t, rng.uniform(0.2, 0.6) * allowed)
            steps.append(Step(t, Action.RESOLVE, Role.DEPARTMENT, {"note": "重办完成", "outcome": "solved"}))
            t += minutes(30, 240)
            steps.append(Step(t, Action.VERIFY_PASS, Role.INSPECTOR, {"note": "核查通过"}))
            t += minutes(60, 60 * 24)

    # ------------------------------------------------------------------ actors
    @staticmethod
    def actor(role: Role, department: Optional[str]) -> Actor:
        return Actor(actor_name(role, department), role, department if role == Role.DEPARTMENT else None)


_ACTOR_NAMES = {Role.DISPATCHER: "sim-dispatcher", Role.INSPECTOR: "sim-inspector", Role.LEADER: "sim-leader"}


def actor_name(role: Role, department: Optional[str]) -> str:
    """Who the simulator acts as: a department's own user, else one user per role."""
    return f"sim-{department}" if role == Role.DEPARTMENT else _ACTOR_NAMES[role]


def _slow_signer(major_code: str) -> bool:
    import zlib
    return zlib.crc32(major_code.encode()) % 3 == 0


def _feasible(steps: list[Step]) -> list[Step]:
    """Drop side steps (extend, suspend/resume, 督办) that the timeline made impossible."""
    from incidents.lifecycle import is_allowed
    state, kept, skip_resume = State.REPORTED, [], False
    before_suspend = None
    for step in steps:
        if step.action == Action.RESUME and skip_resume:
            continue
        if not is_allowed(state, step.action):
            skip_resume = skip_resume or step.action == Action.SUSPEND
            continue
        if step.action == Action.SUSPEND:
            before_suspend = state
        state = next_state(state, step.action, resume_to=before_suspend,
                           redo=step.params.get("result") == RevisitResult.UNSATISFIED.value)
        kept.append(step)
    return kept


_CHANNEL_TEXT = {Channel.HOTLINE: "市民来电反映", Channel.GRID: "网格员巡查发现", Channel.IOT: "物联感知设备告警",
                 Channel.VIDEO: "视频智能识别", Channel.APP: "市民通过App上报"}


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


# ---------------------------------------------------------------------- history (bulk)

class _Draft:
    """A case being generated: the case columns as plain attributes, which
    :func:`incidents.services.transition` moves exactly as it moves an ``Incident`` (the ORM's
    instrumented attributes and objects cost more than the transition itself)."""

    __slots__ = tuple(c.key for c in Incident.__table__.columns)

    def __init__(self, case_id: int, pc: PlannedCase, district: Optional[str], grid: Optional[str]):
        self.id, self.source, self.external_id, self.channel = case_id, SOURCE, pc.external_id, pc.channel.value
        self.title, self.description, self.address = pc.title, pc.description, pc.address
        self.lon, self.lat, self.district_code, self.grid_code = pc.lon, pc.lat, district, grid
        self.category_code, self.priority, self.state = pc.category.code, pc.priority.value, State.REPORTED.value
        self.reporter_name, self.reporter_phone = pc.reporter_name, pc.reporter_phone
        self.reported_at = self.updated_at = pc.reported_at
        self.updated_by, self.version = "feed", 1
        self.state_before_suspend = self.department_code = None
        self.registered_at = self.dispatched_at = self.signed_at = self.resolved_at = None
        self.closed_at = self.voided_at = self.suspended_at = None
        self.allowed_hours = self.warn_at = self.deadline = self.source_deadline = self.on_time = None
        self.void_reason = self.duplicate_of = self.first_dispatched_at = self.handling_hours = None
        self.dispatch_count = self.close_count = self.first_closed_at = None
        self.last_dispatched_at = self.last_closed_at = self.revised_at = None
        self.sign_due = self.first_sign_due = self.first_signed_at = None
        self.first_contacted_at = self.resolve_outcome = None
        self.first_revisited_at = self.revisited_at = self.revisit_result = None
        self.repeat_of = self.repeat_linked_at = None
        self.arbitrated, self.alarm_count = False, None
        self.supervise_level = self.rework_count = self.return_count = self.reassign_count = 0
        self.extension_count = 0
        self.extension_hours = self.suspended_hours = 0.0


class _Rows:
    """Case, event and demo-step rows as the driver takes them (executemany of plain tuples):
    what SQLAlchemy's column types would bind — naive UTC timestamps (SQLite: its text form),
    JSON as text (``null`` for None, as the JSON type writes it), booleans as SQLite integers."""

    CASE_COLUMNS = tuple(c.key for c in Incident.__table__.columns)
    EVENT_COLUMNS = ("incident_id", "at", "actor", "action", "from_state", "to_state", "department_code",
                     "note", "payload")
    STEP_COLUMNS = ("incident_id", "due_at", "action", "payload")

    def __init__(self, dialect: str, paramstyle: str):
        self.sqlite = dialect == "sqlite"
        mark = "?" if paramstyle == "qmark" else "%s"
        self.sql = {name: f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
                    for name, cols in (("incidents", self.CASE_COLUMNS), ("incident_events", self.EVENT_COLUMNS),
                                       ("demo_steps", self.STEP_COLUMNS))}
        columns = Incident.__table__.columns
        self._case_times = [i for i, c in enumerate(columns) if isinstance(c.type, UTCDateTime)]
        self._case_bools = [i for i, c in enumerate(columns) if isinstance(c.type, Boolean)] if self.sqlite else []
        self._case_row = operator.attrgetter(*self.CASE_COLUMNS)
        self._json: dict = {}

    def time(self, value: Optional[datetime]):
        if value is None:
            return None
        if value.tzinfo is not timezone.utc:
            value = value.astimezone(timezone.utc)
        return value.isoformat(" ", "microseconds")[:26] if self.sqlite else value.replace(tzinfo=None)

    def json(self, value: Optional[dict]) -> str:
        """json.dumps as the JSON type does it, memoised: the demo's payloads repeat."""
        key = tuple(value.items()) if value else None
        text = self._json.get(key)
        if text is None:
            text = self._json[key] = json.dumps(value)
        return text

    def case(self, draft: _Draft) -> tuple:
        row = list(self._case_row(draft))
        for i in self._case_times:
            row[i] = self.time(row[i])
        for i in self._case_bools:
            if row[i] is not None:
                row[i] = int(row[i])
        return tuple(row)

    def event(self, ev: dict) -> tuple:
        return (ev["incident_id"], self.time(ev["at"]), ev["actor"], ev["action"], ev["from_state"], ev["to_state"],
                ev["department_code"], ev["note"], self.json(ev["payload"]))

    def step(self, incident_id: int, step: Step) -> tuple:
        return (incident_id, self.time(step.at), step.action.value,
                self.json({"role": step.role.value, **step.params}))


def plan_history(sim: Simulator, now: datetime, days: int) -> tuple[int, int]:
    """The slots ``seed_history`` fills: [first, last)."""
    return int((now - timedelta(days=days)).timestamp()) // SLOT, int(now.timestamp()) // SLOT


def seed_history(session: Session, sim: Simulator, now: datetime, days: int, *, batch: int = 5000,
                 progress: Optional[Callable[[HistoryProgress], None]] = None,
                 processes: Optional[int] = None) -> dict:
    """Generate ``days`` of cases up to ``now`` with their past steps applied; keep future steps.

    The bulk path: each case's steps go through :func:`incidents.services.transition` on a plain
    draft (so its row and events are what the services would write), and every ``batch`` cases
    are written with one driver ``executemany`` per table and their fact rows refreshed (the
    rollups once, at the end). ``progress`` is called after each batch with the counts so far,
    and once more (stage ``indexes``) when only the indexes are left to build.

    Generating is pure Python and costs four times the writing: with ``processes`` (default: the
    machine's cores, for a history of more than :data:`PARALLEL_FROM_DAYS` days) that many forked
    processes generate the batches, each from its own days (the draws are seeded per slot, so the
    cases are the same whoever draws them), while this one writes them in order."""
    first, last = plan_history(sim, now, days)
    services.bump_data_version(session)     # (this write opens the transaction the bulk load runs in)
    session.flush()
    conn = session.connection()
    writer = _Rows(conn.dialect.name, conn.dialect.paramstyle)
    next_id = int(session.scalar(select(func.coalesce(func.max(Incident.id), 0))) or 0) + 1
    if processes is None:
        processes = (os.cpu_count() or 1) if days > PARALLEL_FROM_DAYS else 0
    with bulk_load(conn, ["incidents", "incident_events", "case_facts", "demo_steps"]):
        done = _generate(session, conn, sim, writer, now, first, last, next_id, batch, progress, processes)
        if progress is not None:
            done.stage = "indexes"
            progress(done)
    if conn.dialect.name == "postgresql" and done.cases:   # explicit ids: move the id sequence past them
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('incidents', 'id'), "
                             "(SELECT max(id) FROM incidents))")
    if done.cases:     # the frozen cases' sums, once over the whole history (not batch by batch):
        with unbounded(conn):       # a statement over every case, like the load (no statement timeout)
            rollups.rebuild_stored(session)
    _set_slot(session, last)
    return {"cases": done.cases, "events": done.events, "planned_steps": done.planned_steps}


#: a longer history is generated by several processes (a shorter one is not worth their start)
PARALLEL_FROM_DAYS = 30


def _chunks(sim: Simulator, first: int, last: int, batch: int) -> list[tuple[int, int]]:
    """The slot ranges [a, b) of about ``batch`` cases each, in order (by the expected arrivals)."""
    out, start, expected = [], first, 0.0
    for slot in range(first, last):
        expected += sim.rate_per_slot(slot)
        if expected >= batch:
            out.append((start, slot + 1))
            start, expected = slot + 1, 0.0
    if start < last or not out:
        out.append((start, last))
    return out


def _generate(session: Session, conn, sim: Simulator, writer: _Rows, now: datetime, first: int, last: int,
              next_id: int, batch: int, progress, processes: int) -> HistoryProgress:
    done = HistoryProgress(0, last - first, 0, 0, 0, time.monotonic())
    chunks = _chunks(sim, first, last, batch)
    with _drafting(sim, writer, now, processes) as draft:
        for (_, upto), (cases, events, steps) in zip(chunks, draft(chunks)):
            c, e, s = _write_batch(session, conn, writer, cases, events, steps, next_id)
            next_id += c
            done.slots, done.cases, done.events, done.planned_steps = (
                upto - first, done.cases + c, done.events + e, done.planned_steps + s)
            if progress is not None:
                progress(done)
    return done


#: what a forked drafting process works with (set before the fork, inherited; never pickled)
_DRAFTING: dict = {}


@contextlib.contextmanager
def _drafting(sim: Simulator, writer: _Rows, now: datetime, processes: int):
    """``draft(chunks)``: the rows of each slot range, in order — drafted here, or by a pool of
    forked processes (``processes`` > 1) that inherit the simulator rather than receive it."""
    memo: dict = {}
    if processes <= 1:
        yield lambda chunks: (_draft_rows(sim, writer, now, a, b, memo) for a, b in chunks)
        return
    import multiprocessing
    _DRAFTING.update(sim=sim, writer=writer, now=now, memo=memo)
    try:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            yield lambda chunks: pool.imap(_draft_chunk, chunks)
    finally:
        _DRAFTING.clear()


def _draft_chunk(chunk: tuple[int, int]):
    d = _DRAFTING
    return _draft_rows(d["sim"], d["writer"], d["now"], chunk[0], chunk[1], d["memo"])


def _draft_rows(sim: Simulator, writer: _Rows, now: datetime, a: int, b: int, route_memo: dict):
    """The case, event and demo-step rows of the cases arriving in slots [a, b), numbered from 0
    (the writer adds the first id): what the services would write for their steps up to ``now``."""
    planned = [pc for slot in range(a, b) for pc in sim.arrivals(slot)]
    rules = sim.rules
    transition = services.transition

    def route(category_code, district_code, grid_code):
        key = (category_code, district_code, grid_code)
        got = route_memo.get(key)
        if got is None:
            got = route_memo[key] = rules.router.route(category_code, district_code, grid_code)
        return got

    districts, grids = rules.areas.locate_many([pc.lon for pc in planned], [pc.lat for pc in planned])
    cases, events, steps = [], [], []
    for case_id, pc, district, grid in zip(itertools.count(0), planned, districts, grids):
        case = _Draft(case_id, pc, district, grid)
        events.append(writer.event(dict(incident_id=case_id, at=pc.reported_at, actor="feed", action="report",
                                        from_state=None, to_state=State.REPORTED.value, department_code=None,
                                        note=pc.title, payload={"channel": pc.channel.value, "source": SOURCE})))
        n = 1
        for i, step in enumerate(pc.steps):
            if step.at > now:
                steps.extend(writer.step(case_id, st) for st in pc.steps[i:])
                break
            actor = actor_name(step.role, case.department_code)
            events.append(writer.event(transition(case, pc.category, rules, actor, step.action, step.at,
                                                  route=route, **_params(step))))
            n += 1
        case.version = n
        cases.append(writer.case(case))
    return cases, events, steps


@dataclass
class HistoryProgress:
    """How far ``seed_history`` is: slots of 5 minutes done of ``total_slots``, and what they made."""

    slots: int
    total_slots: int
    cases: int
    events: int
    planned_steps: int
    started: float         # time.monotonic() at the start
    stage: str = "cases"   # then "indexes": every case is written, the indexes are being built

    @property
    def fraction(self) -> float:
        return self.slots / self.total_slots if self.total_slots else 1.0


def _write_batch(session: Session, conn, writer: _Rows, cases: list, events: list, steps: list,
                 first_id: int) -> tuple[int, int, int]:
    """Write drafted rows (numbered from 0) as the cases ``first_id`` … on."""
    if first_id:          # every row starts with its case's id
        cases = [(r[0] + first_id, *r[1:]) for r in cases]
        events = [(r[0] + first_id, *r[1:]) for r in events]
        steps = [(r[0] + first_id, *r[1:]) for r in steps]
    if cases:
        conn.exec_driver_sql(writer.sql["incidents"], cases)
        conn.exec_driver_sql(writer.sql["incident_events"], events)
    if steps:
        conn.exec_driver_sql(writer.sql["demo_steps"], steps)
    facts.refresh(session, range(first_id, first_id + len(cases)), with_rollups=False)   # (once at the end)
    return len(cases), len(events), len(steps)


def _params(step: Step) -> dict:
    p = step.params
    return {k: p[k] for k in ("note", "reason", "hours", "level", "department", "outcome", "result") if k in p}


def _set_slot(session: Session, slot: int) -> None:
    row = session.get(Meta, SLOT_KEY)
    if row is None:
        session.add(Meta(key=SLOT_KEY, value=str(slot)))
    else:
        row.value = str(slot)


def last_slot(session: Session) -> Optional[int]:
    row = session.get(Meta, SLOT_KEY)
    return int(row.value) if row else None


# ---------------------------------------------------------------------- live

def tick(session: Session, sim: Simulator, now: datetime, *, max_steps: int = 500) -> dict:
    """Add the cases of the slots since the last tick and apply the steps that are due."""
    start = last_slot(session)
    current = int(now.timestamp()) // SLOT
    created = applied = dropped = 0
    if start is None:
        start = current
    start = max(start, current - 288)  # after a long stop, catch up one day at most
    for slot in range(start, current + 1):
        for pc in sim.arrivals(slot):
            if pc.reported_at > now:
                continue
            if session.scalar(select(Incident.id).where(Incident.source == SOURCE,
                                                        Incident.external_id == pc.external_id)):
                continue
            case = services.create_case(session, sim.rules, source=SOURCE, external_id=pc.external_id,
                                        channel=pc.channel.value, title=pc.title, reported_at=pc.reported_at,
                                        now=now, category_code=pc.category.code, description=pc.description,
                                        address=pc.address, lon=pc.lon, lat=pc.lat, priority=pc.priority.value,
                                        reporter_name=pc.reporter_name, reporter_phone=pc.reporter_phone,
                                        link_repeats=True)
            session.add_all([DemoStep(incident_id=case.id, due_at=s.at, action=s.action.value,
                                      payload={"role": s.role.value, **s.params}) for s in pc.steps])
            created += 1
    # the slot in progress is redone next tick (its later arrivals are not due yet)
    _set_slot(session, current)
    session.flush()
    due = session.scalars(select(DemoStep).where(DemoStep.due_at <= now)
                          .order_by(DemoStep.due_at, DemoStep.id).limit(max_steps)).all()
    for step in due:
        if session.get(DemoStep, step.id) is None:  # dropped with its case's plan below
            continue
        case = session.get(Incident, step.incident_id)
        payload = dict(step.payload or {})
        role = Role(payload.pop("role"))
        actor = Simulator.actor(role, case.department_code if case else None)
        try:
            with session.begin_nested():
                services.perform(session, sim.rules, actor, step.incident_id, step.action,
                                 version=case.version, now=max(step.due_at, case.updated_at), **payload)
            applied += 1
            session.delete(step)
        except DomainError as exc:
            log.info("demo plan of case %s dropped at %s: %s", step.incident_id, step.action, exc)
            session.execute(delete(DemoStep).where(DemoStep.incident_id == step.incident_id))
            dropped += 1
        session.flush()
    return {"created": created, "applied": applied, "dropped": dropped}


# ---------------------------------------------------------------------- live, in the background
# (data_sources.worker runs ``tick`` as the ``demo-tick`` job: in the app process on the embedded
# default, else in ``flask --app app worker``)


def build(server) -> Simulator:
    from data_sources.runtime import get_runtime
    from data_sources.store.db import session_scope
    rt = get_runtime(server)
    with session_scope(server) as s:
        cats = s.scalars(select(Category)).all()
        s.expunge_all()
    return Simulator(rt.pack, rt.rules, list(cats), seed=int(server.config["DEMO_SEED"]),
                     daily_cases=server.config.get("DEMO_DAILY_CASES"))
