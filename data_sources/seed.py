"""init-db: apply migrations, install the configured city pack, and on the embedded default
seed the demo history and one demo user per role."""
from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone

from shapely.geometry import mapping
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from data_sources.packs import Pack
from data_sources.store import migrate, partitions
from incidents import auth, facts, rollups
from incidents.model import Role
from incidents.services import bump_data_version
from incidents.tables import Area, Category, Department, Incident, Meta, RoutingRule, User

PACK_KEY = "pack"


class ConsoleProgress:
    """The demo history's progress on a console: one line with a bar, the counts, the rate and the
    time left, redrawn in place (``\\r``) on a terminal; a line per tenth elsewhere (logs, CI)."""

    WIDTH = 24

    def __init__(self, stream=None):
        import sys
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._tenth = -1
        self._longest = 0

    def __call__(self, p) -> None:
        import time
        if p.stage != "cases":
            self.stream.write(f"demo history: building the indexes of {p.cases:,} cases and {p.events:,} events …\n")
            self.stream.flush()
            return
        elapsed = max(time.monotonic() - p.started, 1e-9)
        left = elapsed * (1 - p.fraction) / p.fraction if p.fraction > 0 else float("nan")
        done = int(self.WIDTH * p.fraction)
        line = (f"demo history {p.fraction:4.0%} [{'#' * done}{'.' * (self.WIDTH - done)}] "
                f"{p.cases:,} cases, {p.events:,} events, {p.cases / elapsed:,.0f} cases/s, "
                f"{_duration(elapsed)} elapsed, ETA {_duration(left)}")
        if self.tty:    # padded to the longest line so far: a shorter one leaves nothing behind
            self._longest = max(self._longest, len(line))
            self.stream.write("\r" + line.ljust(self._longest) + ("\n" if p.fraction >= 1 else ""))
        elif int(p.fraction * 10) > self._tenth:
            self._tenth = int(p.fraction * 10)
            self.stream.write(line + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    if seconds != seconds:   # NaN: not known yet
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def _upsert(session: Session, model, rows: list[dict], key: str = "code") -> None:
    """Insert new rows in bulk and update only the rows that changed (a re-run is cheap)."""
    existing = {getattr(o, key): o for o in session.scalars(select(model))}
    new = [r for r in rows if r[key] not in existing]
    if new:
        session.execute(model.__table__.insert(), new)
    for r in rows:
        obj = existing.get(r[key])
        if obj is not None and any(getattr(obj, k) != v for k, v in r.items()):
            for k, v in r.items():
                setattr(obj, k, v)


def install_pack(session: Session, pack: Pack) -> dict:
    """Upsert the pack's reference data (departments, areas, categories, rules)."""
    _upsert(session, Department, [dict(code=d.code, name=d.name, name_en=d.name_en or "", level=d.level,
                                       district_code=d.district_code, parent_code=d.parent_code)
                                  for d in pack.departments])
    areas = []
    for a in pack.areas:
        c = a.geometry.representative_point() if a.level == "grid" else a.geometry.centroid
        if not a.geometry.contains(c):
            c = a.geometry.representative_point()
        areas.append(dict(code=a.code, name=a.name, level=a.level, parent_code=a.parent_code,
                          geometry=json.dumps(mapping(a.geometry), separators=(",", ":")),
                          centroid_lon=round(c.x, 6), centroid_lat=round(c.y, 6)))
    _upsert(session, Area, areas)
    _upsert(session, Category, [dict(code=c.code, kind=c.kind, major_code=c.major_code, major_name=c.major_name,
                                     name=c.name, name_en=c.name_en or "", time_limit=float(c.time_limit),
                                     time_unit=c.time_unit, dup_radius_m=float(c.dup_radius_m),
                                     dup_window_h=float(c.dup_window_h), urgent=bool(c.urgent),
                                     demo_weight=float(c.demo_weight)) for c in pack.categories])
    session.flush()
    session.execute(delete(RoutingRule))
    session.execute(RoutingRule.__table__.insert(),
                    [dict(id=int(r.id), category_code=r.category_code, area_code=r.area_code,
                          department_code=r.department_code, note=r.note or "") for r in pack.routing_rules])
    row = session.get(Meta, PACK_KEY)
    if row is None:
        session.add(Meta(key=PACK_KEY, value=pack.name))
    else:
        row.value = pack.name
    bump_data_version(session)
    session.flush()
    return {"departments": len(pack.departments), "areas": len(pack.areas),
            "categories": len(pack.categories), "rules": len(pack.routing_rules)}


def demo_users(pack: Pack) -> list[tuple[str, Role, str | None, str]]:
    """One demo user per role; the department user works for the busiest district's 城管局
    (the department the pack's routing sends the most rules to)."""
    from collections import Counter
    counts = Counter(r.department_code for r in pack.routing_rules if r.department_code != pack.triage_department)
    dept = counts.most_common(1)[0][0] if counts else pack.triage_department
    return [("viewer", Role.VIEWER, None, "大屏观察员"), ("leader", Role.LEADER, None, "市领导"),
            ("dispatcher", Role.DISPATCHER, None, "指挥中心派遣员"),
            ("department", Role.DEPARTMENT, dept, "专业部门处置员"),
            ("inspector", Role.INSPECTOR, None, "监督员"), ("admin", Role.ADMIN, None, "系统管理员")]


def create_demo_users(session: Session, pack: Pack, now: datetime) -> list[tuple[str, str, str]]:
    """Creates the demo users that do not exist yet; returns (username, role, password) once."""
    out = []
    for username, role, dept, display in demo_users(pack):
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            continue
        password = secrets.token_urlsafe(9)
        auth.create_user(session, username, role, password=password, now=now, department_code=dept,
                         display_name=display)
        out.append((username, role.value, password))
    return out


def init_db(server, *, echo=print, seed_demo: bool | None = None, now: datetime | None = None,
            progress=None) -> dict:
    """``progress``: called with the demo history's :class:`simulator.HistoryProgress` after
    each batch (the CLI passes a :class:`ConsoleProgress`)."""
    from data_sources.feeds import simulator
    from data_sources.runtime import get_runtime
    from data_sources.store.db import get_db, unbounded

    now = now or datetime.now(timezone.utc)
    db = get_db(server)
    migrate.upgrade(db.engine)
    rt = get_runtime(server)
    result: dict = {}
    with db.engine.begin() as conn, unbounded(conn):   # PostgreSQL: the events' months up to a year ahead
        result["event_partitions"] = partitions.ensure_ahead(conn, now)
    with db.session_scope() as s:
        result["pack"] = install_pack(s, rt.pack)
        if facts.backfill_milestones(s, rt.calendar, sign_for_limit=rt.rules.sign_for_limit):    # cases from before the fact table (0004)
            facts.rebuild(s)
        # the frozen cases' sums, on this pack's time zone and citizen channels (again if they changed)
        result["rollups"] = rollups.ensure(s, rt.pack.timezone, rt.rules.citizen_channels)
    echo(f"pack {rt.pack.name}: {result['pack']}")
    if result["rollups"]:
        echo(f"rollups of the frozen cases built on {rt.pack.timezone}: {result['rollups']:,} rows")
    if seed_demo is None:
        # the embedded default (DEMO_FEED resolves to it unless set): any other database, SQLite
        # included, gets no demo data unless asked (--demo)
        seed_demo = bool(server.config.get("DEMO_FEED"))
    if not seed_demo:
        return result
    with db.session_scope() as s:
        has_cases = s.scalar(select(func.count()).select_from(Incident).where(Incident.source == simulator.SOURCE))
        if not has_cases:
            sim = simulator.build(server)
            days = int(server.config["DEMO_HISTORY_DAYS"])
            echo(f"generating {days} days of demo history (about {sim.daily:.0f} cases a day) …")
            result["history"] = simulator.seed_history(s, sim, now, days, progress=progress)
            echo(f"demo history: {result['history']}")
    with db.session_scope() as s:
        # 一网通办 / 好差评 figures and the KPI feed (idempotent: only missing rows are inserted)
        from data_sources.feeds import demo_service_rates as service_rates
        result["service_rates"] = service_rates.seed_demo(
            s, rt.pack, now, int(server.config["DEMO_HISTORY_DAYS"]), int(server.config["DEMO_SEED"]),
            is_workday=rt.calendar.is_workday)
        echo(f"demo service rates and KPIs: {result['service_rates']}")
    with db.session_scope() as s:
        created = create_demo_users(s, rt.pack, now)
    if created:
        echo("")
        echo("Demo accounts (passwords are shown this once; keep them):")
        for username, role, password in created:
            echo(f"  {username:<11} {role:<11} {password}")
        echo("")
    result["demo_users"] = [u for u, _, _ in created]
    with db.engine.begin() as conn:  # fresh statistics, so the planner picks the screens' indexes
        conn.exec_driver_sql("ANALYZE")
    return result
