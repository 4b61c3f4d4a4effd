"""Bulk bench data: many realistic cases, fast.

The demo simulator plans a week of Hangzhou cases (its arrival rhythm, categories, hotspots,
working-time deadlines, returns, extensions, rework …) and applies their steps with the real
``services.apply_action``; that costs about 1.3 ms a case, so it makes a pool of *templates*
(up to 7,000) and every further case is a template copy shifted back by whole weeks (weekday
and office hours stay aligned). Rows go in with explicit ids: raw ``executemany`` on SQLite,
``COPY … FROM STDIN`` (psycopg 3 ``cursor.copy``) on PostgreSQL.

Most cases are finished history; an ``open_fraction`` of them stop after a random number of
steps (0–4) so there are pools of reported / registered / dispatched / in-progress cases for the
action benchmark. Every case keeps its full event list (report + one event per applied step),
so ``version == number of events`` holds in bench data as in real data.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from data_sources.store import partitions
from incidents import services
from incidents.tables import Category, Incident, IncidentEvent, UTCDateTime

SOURCE = "bench"
WEEK = timedelta(days=7)
CASE_COLS = [c.name for c in Incident.__table__.columns]
EVENT_COLS = [c.name for c in IncidentEvent.__table__.columns]
_CASE_DT = [i for i, c in enumerate(Incident.__table__.columns) if isinstance(c.type, UTCDateTime)]
_EVENT_DT = [i for i, c in enumerate(IncidentEvent.__table__.columns) if isinstance(c.type, UTCDateTime)]
_EXT = CASE_COLS.index("external_id")
_SRC = CASE_COLS.index("source")
_EV_INC = EVENT_COLS.index("incident_id")
_PAYLOAD = EVENT_COLS.index("payload")
_EV_AT = EVENT_COLS.index("at")


@dataclass
class Template:
    prefixes: list[tuple]  # the case row (id column None) after 0, 1, … steps
    events: list[tuple]    # the event rows (id, incident_id None): report, then one per step


def _naive(value):
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _categories(pack) -> list[Category]:
    return [Category(code=c.code, kind=c.kind, major_code=c.major_code, major_name=c.major_name, name=c.name,
                     name_en=c.name_en or "", time_limit=float(c.time_limit), time_unit=c.time_unit,
                     dup_radius_m=float(c.dup_radius_m), dup_window_h=float(c.dup_window_h),
                     urgent=bool(c.urgent), demo_weight=float(c.demo_weight)) for c in pack.categories]


def make_templates(pack, rules, *, count: int, anchor: datetime, seed: int = 2026) -> list[Template]:
    """About ``count`` simulated cases reported in the week before ``anchor``, all steps applied."""
    from data_sources.feeds.simulator import SLOT, Simulator, _Draft, _params
    sim = Simulator(pack, rules, _categories(pack), seed=seed, daily_cases=max(count / 7.0, 1.0))
    last = int(anchor.timestamp()) // SLOT
    out: list[Template] = []
    for slot in range(last - int(WEEK.total_seconds()) // SLOT, last):
        for pc in sim.arrivals(slot):
            case = _Draft(0, pc, *rules.areas.locate(pc.lon, pc.lat))     # the demo history's draft case
            case.version = 1
            prefixes = [_case_row(case)]
            events = [(None, None, _naive(pc.reported_at), "feed", "report", None, "reported", None, pc.title,
                       json.dumps({"channel": pc.channel.value, "source": SOURCE}, ensure_ascii=False), None)]
            for step in pc.steps:
                actor = sim.actor(step.role, case.department_code).username
                ev = services.apply_action(case, pc.category, rules, actor, step.action, step.at, **_params(step))
                case.version += 1
                prefixes.append(_case_row(case))
                events.append(tuple(_naive(getattr(ev, c, None)) if c != "payload" else
                                    (json.dumps(ev.payload, ensure_ascii=False) if ev.payload else None)
                                    for c in EVENT_COLS))
            out.append(Template(prefixes, events))
    return out


def _case_row(case: Incident) -> tuple:
    return tuple(None if c == "id" else _naive(getattr(case, c)) for c in CASE_COLS)


def rows(templates: list[Template], first_id: int, first_event_id: int, count: int, *,
         open_fraction: float, seed: int = 7):
    """Yield (case_row, [event_rows]) for cases ``first_id`` … ``first_id + count - 1``."""
    rng = random.Random(f"{seed}:{first_id}")
    n_t = len(templates)
    eid = first_event_id
    for cid in range(first_id, first_id + count):
        t = templates[(cid - 1) % n_t]
        shift = WEEK * ((cid - 1) // n_t)
        steps = len(t.prefixes) - 1
        k = rng.randint(0, min(4, steps)) if rng.random() < open_fraction else steps
        case = list(t.prefixes[k])
        case[0] = cid
        case[_SRC] = SOURCE
        case[_EXT] = f"BENCH-{cid}"
        for i in _CASE_DT:
            if case[i] is not None:
                case[i] -= shift
        evs = []
        for ev in t.events[:k + 1]:
            ev = list(ev)
            ev[0], ev[_EV_INC] = eid, cid
            for i in _EVENT_DT:
                ev[i] -= shift
            evs.append(ev)
            eid += 1
        yield case, evs


# ---------------------------------------------------------------------------------- writers

def _iso(v):
    return v.isoformat(sep=" ", timespec="microseconds") if isinstance(v, datetime) else v


def write(engine, templates, first_id: int, first_event_id: int, count: int, *, open_fraction: float,
          batch: int = 20000, progress=print) -> tuple[int, int]:
    """Insert ``count`` cases with their events; returns (cases, events) written."""
    writer = _write_sqlite if engine.dialect.name == "sqlite" else _write_postgresql
    return writer(engine, rows(templates, first_id, first_event_id, count, open_fraction=open_fraction),
                  count, batch, progress)


def _write_sqlite(engine, source, count, batch, progress):
    raw = engine.raw_connection()
    try:
        con = raw.driver_connection
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-400000")
        ins_c = f"INSERT INTO incidents ({', '.join(CASE_COLS)}) VALUES ({', '.join('?' * len(CASE_COLS))})"
        ins_e = (f"INSERT INTO incident_events ({', '.join(EVENT_COLS)}) "
                 f"VALUES ({', '.join('?' * len(EVENT_COLS))})")

        def flush(cases, events):
            con.executemany(ins_c, cases)
            con.executemany(ins_e, events)
            con.commit()

        n_c, n_e = _in_batches(source, batch, flush, count, progress, row=lambda r: [_iso(v) for v in r])
        con.execute("PRAGMA synchronous=NORMAL")
        return n_c, n_e
    finally:
        raw.close()


def _write_postgresql(engine, source, count, batch, progress):
    raw = engine.raw_connection()
    try:
        con = raw.driver_connection

        def flush(cases, events):
            with engine.begin() as conn:   # each event into its month's partition, not into DEFAULT
                partitions.ensure_months(conn, {partitions.month_of(r[_EV_AT]) for r in events})
            with con.cursor() as cur:
                with cur.copy(f"COPY incidents ({', '.join(CASE_COLS)}) FROM STDIN") as cp:
                    for r in cases:
                        cp.write_row(r)
                with cur.copy(f"COPY incident_events ({', '.join(EVENT_COLS)}) FROM STDIN") as cp:
                    for r in events:
                        cp.write_row(r)
            con.commit()

        n_c, n_e = _in_batches(source, batch, flush, count, progress)
        with con.cursor() as cur:
            for table in ("incidents", "incident_events"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT COALESCE(MAX(id), 1) FROM {table}))")
            cur.execute("ANALYZE incidents")
            cur.execute("ANALYZE incident_events")
        con.commit()
        return n_c, n_e
    finally:
        raw.close()


def _in_batches(source, batch, flush, count, progress, row=lambda r: r) -> tuple[int, int]:
    """``flush(cases, events)`` for every ``batch`` cases of ``source`` with their events, each row as
    ``row`` makes it for the writer; returns (cases, events) written."""
    n_c = n_e = 0
    t0 = time.perf_counter()
    cases, events = [], []
    for case, evs in source:
        cases.append(row(case))
        events.extend(row(ev) for ev in evs)
        if len(cases) >= batch:
            flush(cases, events)
            n_c, n_e = n_c + len(cases), n_e + len(events)
            cases, events = [], []
            _progress(progress, n_c, count, t0)
    if cases:
        flush(cases, events)
        n_c, n_e = n_c + len(cases), n_e + len(events)
    return n_c, n_e


def _progress(progress, done, total, t0):
    if progress and (done % 200000 < 20000 or done == total):
        el = time.perf_counter() - t0
        progress(f"  … {done:,}/{total:,} cases written, {done / el:,.0f} cases/s")


def counts(session) -> tuple[int, int, int]:
    """(cases, max case id, max event id) in the database."""
    n = session.scalar(select(func.count()).select_from(Incident)) or 0
    max_c = session.scalar(select(func.max(Incident.id))) or 0
    max_e = session.scalar(select(func.max(IncidentEvent.id))) or 0
    return n, max_c, max_e


def templates_for(count: int, per_week: int = 7000) -> int:
    """Templates to plan for ``count`` cases: up to ``per_week`` (the cases of one week: 7,000 is a week
    at 1,000 cases a day, Hangzhou's demo; a megacity's hotline and grid take 150,000–200,000)."""
    return max(200, min(per_week, int(math.ceil(count))))


__all__ = ["make_templates", "rows", "write", "counts", "templates_for"]
