"""The frozen cases' rollups (``case_rollups``, DESIGN §2 and §6), kept in the transaction of every write.

A closed or voided case whose last milestone is behind ``as_of`` counts the same at every later
``as_of``: its state, flags and milestones no longer move (``case_facts.frozen_at``). The KPI scan
(:mod:`incidents.queries.kpi_facts`) therefore reads the cases frozen before the week of ``as_of``
from these sums — per week they froze in, department or district, milestone and the milestone's
city-time day — and scans only the rest: the open cases and those frozen since. A quarter's brief
reads a few thousand rollup rows instead of a hundred thousand fact rows.

The rows are a projection of the fact rows: :func:`apply` takes a case's old sums away and adds its
new ones around each fact write (:func:`incidents.facts.refresh`); :func:`rebuild` writes them all
from the fact rows and :func:`differences` says which stored rows disagree. The city-time days
depend on the pack's time zone and 市民 flags on its citizen channels: the rows say which
(:func:`basis`, in ``meta``); a reader with another basis scans instead (:func:`usable`), and
``init-db`` rebuilds them when the pack changes (:func:`ensure`).
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Iterable, Optional
from zoneinfo import ZoneInfo

from sqlalchemy import (BigInteger, Date, Integer, and_, bindparam, case, cast, delete, func, literal, select,
                        true, union_all)
from sqlalchemy.orm import Session

from incidents.tables import CaseFact as F
from incidents.tables import CaseRollup as R
from incidents.tables import Meta

#: ``frozen_at`` of a case that can still change (open, or closed with a later step possible)
FROZEN_NEVER = datetime(9999, 12, 31, tzinfo=timezone.utc)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
WEEK = 7 * 24 * 3600
#: the ``meta`` key of the basis the rows were built on
BASIS_KEY = "rollup_basis"
#: the sums of a rollup row, as the scan names them (:func:`incidents.queries.kpi_facts._scan`)
FLAGS = ("closed", "closed_on_time", "reworked", "on_time_final", "accurate", "extended", "resolved_final",
         "signable", "signed_on_time", "cit", "cit_contacted", "cit_resolved", "cit_solved", "cit_revisited")
SUMS = ("n", "live", *FLAGS, "hours", "one", "two")
KINDS = {"department": F.department_code, "district": F.district_code}
#: milestone → (the first one's column, the last one's, the count of them): the dispatches and
#: closures count once a period, by their first and last (the scan's rule)
MILESTONES = {"reported": (F.reported_at, None, None), "registered": (F.registered_at, None, None),
              "dispatched": (F.first_dispatched_at, F.last_dispatched_at, F.dispatches),
              "closed": (F.first_closed_at, F.last_closed_at, F.closures)}
_IDS_PER_STATEMENT = 5000


def week_of(t: datetime) -> int:
    """Whole weeks since 1970-01-01 UTC (what the rows' ``week`` says of ``frozen_at``)."""
    return int((t - _EPOCH).total_seconds()) // WEEK


def week_start(week: int) -> datetime:
    return _EPOCH + timedelta(seconds=week * WEEK)


# --------------------------------------------------------------------------- the basis

def basis(tz: str, citizen_channels: Iterable[str]) -> str:
    return json.dumps({"tz": tz, "citizen_channels": sorted(citizen_channels)}, sort_keys=True)


def stored_basis(session: Session) -> Optional[str]:
    return session.scalar(select(Meta.value).where(Meta.key == BASIS_KEY))


def usable(session: Session, tz: str, citizen_channels: Iterable[str]) -> bool:
    """Whether the stored rows sum the cases as a reader with this pack would."""
    return stored_basis(session) == basis(tz, citizen_channels)


def ensure(session: Session, tz: str, citizen_channels: Iterable[str]) -> Optional[int]:
    """Rebuild the rows if they were built on another basis (or never); the rows written, else None."""
    if usable(session, tz, citizen_channels):
        return None
    return rebuild(session, tz, citizen_channels)


# --------------------------------------------------------------------------- the SQL

#: the years whose clock changes the rollups' days follow (a case before them takes the zone's
#: offset of 2000-01-01): a short statement — the write path runs it — for a zone without changes
YEARS = (2000, 2060)


@lru_cache(maxsize=16)
def _offsets(tz: str) -> tuple[tuple[datetime, int], ...]:
    """The zone's UTC offsets, as (from this UTC instant on, seconds), over :data:`YEARS`, oldest first."""
    z = ZoneInfo(tz)

    def off(t: datetime) -> int:
        return int(t.astimezone(z).utcoffset().total_seconds())
    start = datetime(YEARS[0], 1, 1, tzinfo=timezone.utc)
    out = [(start, off(start))]
    t, end = start, datetime(YEARS[1], 1, 1, tzinfo=timezone.utc)
    while t < end:
        u = t + timedelta(days=1)
        if off(u) != out[-1][1]:
            lo, hi = t, u            # the change lies in (lo, hi]: halve to the second
            while (hi - lo) > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if off(mid) == out[-1][1] else (lo, mid)
            out.append((hi.replace(microsecond=0), off(hi)))
        t = u
    return tuple(out)


def local_day(col, tz: str, dialect: str):
    """SQL for the city-time date of the UTC timestamp ``col``."""
    offsets = _offsets(tz)
    if dialect == "sqlite":
        mods = [(col >= t, f"{s:+d} seconds") for t, s in reversed(offsets[1:])]
        mod = case(*mods, else_=f"{offsets[0][1]:+d} seconds") if mods else literal(f"{offsets[0][1]:+d} seconds")
        return func.date(col, mod)
    secs = [(col >= t, s) for t, s in reversed(offsets[1:])]
    seconds = case(*secs, else_=offsets[0][1]) if secs else literal(offsets[0][1])
    return cast(col + func.make_interval(0, 0, 0, 0, 0, 0, seconds), Date)


def _week(col, dialect: str):
    if dialect == "sqlite":      # whole seconds: no floating point at a week's edge
        return cast(func.strftime("%s", col), Integer) // WEEK
    return cast(func.floor(func.extract("epoch", col)), BigInteger) // WEEK


def _rows(dialect: str, tz: str, citizen_channels, where, sign: int = 1):
    """The rollup rows of the frozen fact rows ``where`` picks (``sign`` -1: to take them away).

    Each case's flags and days are worked out once (a materialised CTE: the conditions are the
    scan's own, :func:`incidents.queries.kpi_facts.as_of_conditions`) and then summed eight ways
    (department and district × the four milestones) — not the conditions eight times."""
    from incidents.queries.kpi_facts import as_of_conditions, citizen_conditions
    c = {**as_of_conditions(FROZEN_NEVER), **citizen_conditions(FROZEN_NEVER, citizen_channels)}
    live = c["live"]

    def one(cond):
        return case((cond, 1), else_=0)
    cols = [_week(F.frozen_at, dialect).label("week"), *[u.label(k) for k, u in KINDS.items()],
            one(live).label("live"), *[one(and_(live, c[f])).label(f) for f in FLAGS],
            case((and_(live, c["resolved_final"]), F.handling_hours), else_=None).label("hours")]
    for name, (first, last, count) in MILESTONES.items():
        cols.append(local_day(first, tz, dialect).label(f"{name}_day"))
        if last is not None:
            cols += [local_day(last, tz, dialect).label(f"{name}_day2"), count.label(f"{name}_count")]
    frozen = select(*cols).where(where, F.frozen_at < FROZEN_NEVER).cte("frozen").prefix_with("MATERIALIZED")
    k = frozen.c
    parts = []
    for kind in KINDS:
        for name, (_first, last, _count) in MILESTONES.items():
            day = k[f"{name}_day"]
            day2 = k[f"{name}_day2"] if last is not None else day
            keys = [k.week, literal(kind).label("kind"), func.coalesce(k[kind], "").label("unit"),
                    literal(name).label("milestone"), day.label("day"), day2.label("day2")]
            count = k[f"{name}_count"] if last is not None else None
            sums = [func.count(), *[func.sum(k[f]) for f in ("live", *FLAGS)],
                    func.coalesce(func.sum(k.hours), 0.0),
                    func.sum(one(count == 1)) if count is not None else literal(0),
                    func.sum(one(count == 2)) if count is not None else literal(0)]
            parts.append(select(*keys, *[(v * sign).label(s) for s, v in zip(SUMS, sums)])
                         .where(day.isnot(None)).group_by(*keys))
    return union_all(*parts)


_KEYS = ("week", "kind", "unit", "milestone", "day", "day2")


@lru_cache(maxsize=16)
def _delta(dialect: str, stored: str):
    """The statement that adds the rollup rows of the cases ``:ids`` times ``:sign`` to the stored
    sums (a new key inserted): built once per basis — a write to a frozen case runs it twice."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    b = json.loads(stored)
    rows = _rows(dialect, b["tz"], tuple(b["citizen_channels"]), F.incident_id.in_(bindparam("ids", expanding=True)),
                 bindparam("sign", type_=Integer))
    sub = rows.subquery("delta")
    # (SQLite: an INSERT … SELECT needs a WHERE before ON CONFLICT; the order locks the rows alike
    # in concurrent writers)
    stmt = insert(R).from_select([*_KEYS, *SUMS], select(sub).where(sub.c.n != 0)
                                 .order_by(*[sub.c[k] for k in _KEYS]))
    return stmt.on_conflict_do_update(index_elements=list(_KEYS),
                                      set_={k: getattr(R, k) + stmt.excluded[k] for k in SUMS})


def apply(session: Session, ids: list[int], sign: int, stored: Optional[str]) -> None:
    """Add (``sign`` 1) or take away (-1) these cases' frozen fact rows as they are stored now —
    around the fact write (:func:`incidents.facts.refresh`); nothing without a basis (``stored``,
    :func:`stored_basis`, read once by the caller for the whole write)."""
    if not stored or not ids:
        return
    conn = session.connection()
    for i in range(0, len(ids), _IDS_PER_STATEMENT):
        part = ids[i:i + _IDS_PER_STATEMENT]
        # only the frozen ones (most writes touch open cases: no rows, one index probe)
        if session.scalar(select(F.incident_id).where(F.incident_id.in_(part), F.frozen_at < FROZEN_NEVER)
                          .limit(1)) is None:
            continue
        conn.execute(_delta(conn.dialect.name, stored), {"ids": part, "sign": sign})


def rebuild(session: Session, tz: str, citizen_channels: Iterable[str]) -> int:
    """Every rollup row again from the fact rows, on this basis; returns how many rows."""
    conn = session.connection()
    conn.execute(delete(R))
    conn.execute(R.__table__.insert().from_select([*_KEYS, *SUMS],
                                                  _rows(conn.dialect.name, tz, tuple(citizen_channels), true())))
    value = basis(tz, citizen_channels)
    row = session.get(Meta, BASIS_KEY)
    if row is None:
        session.add(Meta(key=BASIS_KEY, value=value))
    else:
        row.value = value
    session.flush()
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE case_rollups")
    return int(session.scalar(select(func.count()).select_from(R)) or 0)


def rebuild_stored(session: Session) -> Optional[int]:
    """Every rollup row again on the basis they were built on (none: nothing to do, None)."""
    stored = stored_basis(session)
    if not stored:
        return None
    b = json.loads(stored)
    return rebuild(session, b["tz"], b["citizen_channels"])


def differences(session: Session) -> int:
    """How many rollup keys' stored sums differ from the fact rows' (0 without a basis)."""
    stored = stored_basis(session)
    if not stored:
        return 0
    b = json.loads(stored)

    def sums(rows) -> dict:
        out: dict = {}
        for r in rows:
            # (sums of hours to the 1/1000 h: a case's hours taken out of a row leave ~1e-14 behind)
            key, vals = tuple(str(v) for v in r[:6]), tuple(round(float(v), 3) for v in r[6:])
            if any(vals):
                out[key] = vals
        return out
    want = sums(session.execute(select(_rows(session.get_bind().dialect.name, b["tz"], b["citizen_channels"],
                                             true()).subquery())).all())
    have = sums(session.execute(select(*[getattr(R, k) for k in (*_KEYS, *SUMS)])).all())
    return len(set(want) ^ set(have)) + sum(1 for k in set(want) & set(have) if want[k] != have[k])


def local_days(boundaries: list[datetime], tz: str) -> Optional[list[date]]:
    """The city-time dates of these instants if each is a city-time midnight (else None: a
    rollup row says only its day)."""
    z = ZoneInfo(tz)
    out = []
    for t in boundaries:
        local = t.astimezone(z)
        if (local.hour, local.minute, local.second, local.microsecond) != (0, 0, 0, 0):
            return None
        out.append(local.date())
    return out
