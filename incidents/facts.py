"""The per-case KPI facts (``case_facts``, DESIGN §2 and §6), kept in the transaction of every write.

A fact row is a projection of the case row: the milestones and flags the KPIs read (report,
register, first dispatch and final resolve times, the deadline in force, state, department, area,
category, on-time, reworked / misdispatched / extended, working hours to resolve). The transition
(:func:`incidents.services.transition`) keeps those columns on the case; this module copies them
into the narrow fact table with one ``INSERT … SELECT … ON CONFLICT`` per write:

* every ORM flush of a case (the services, the ingest's updates) refreshes its row through a
  session hook, so no door can forget it;
* bulk Core inserts (the ingest's fast path, the demo history) call :func:`refresh` with the ids
  they wrote.

:func:`rebuild` writes every row again (the migration's backfill, ``flask … facts rebuild``) and
:func:`differences` says which stored rows disagree with the case rows.
"""
from __future__ import annotations

import json
from typing import Iterable

from sqlalchemy import and_, bindparam, case, delete, event, func, literal, or_, select, true, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import ReturnTypeFromArgs

from incidents import rollups
from incidents.model import DISPATCH_ACTIONS, REVISING_ACTIONS, Action, State
from incidents.tables import CaseFact, Incident, IncidentEvent, UTCDateTime


class greatest(ReturnTypeFromArgs):          # noqa: N801 (an SQL function's name)
    """The largest of its (non-NULL) arguments: GREATEST, or SQLite's many-argument MAX."""
    inherit_cache = True


@compiles(greatest, "sqlite")
def _greatest_sqlite(element, compiler, **kw):
    return "max(%s)" % compiler.process(element.clauses, **kw)

#: the fact columns in table order, and how each is computed from the case row
_I = Incident
_SOURCES = {
    "incident_id": _I.id, "reported_at": _I.reported_at, "registered_at": _I.registered_at,
    "first_dispatched_at": _I.first_dispatched_at, "resolved_at": _I.resolved_at, "deadline": _I.deadline,
    "suspended_at": _I.suspended_at, "revised_at": _I.revised_at, "state": _I.state,
    "state_before_suspend": _I.state_before_suspend, "department_code": _I.department_code,
    "district_code": _I.district_code, "grid_code": _I.grid_code, "category_code": _I.category_code,
    "channel": _I.channel, "priority": _I.priority, "on_time": _I.on_time,
    "reworked": _I.rework_count > 0, "misdispatched": (_I.return_count + _I.reassign_count) > 0,
    "extended": _I.extension_count > 0, "handling_hours": _I.handling_hours,
    "first_closed_at": _I.first_closed_at, "dispatches": _I.dispatch_count, "closures": _I.close_count,
    "last_dispatched_at": _I.last_dispatched_at, "last_closed_at": _I.last_closed_at,
    "first_sign_due": _I.first_sign_due, "first_signed_at": _I.first_signed_at,
    "first_contacted_at": _I.first_contacted_at, "resolve_outcome": _I.resolve_outcome,
    "first_revisited_at": _I.first_revisited_at,
    # a closed or voided case is frozen from its last milestone on (incidents.rollups)
    "frozen_at": case((_I.state.in_((State.CLOSED.value, State.VOIDED.value)),
                       greatest(*[func.coalesce(c, _I.reported_at) for c in (
                           _I.reported_at, _I.registered_at, _I.first_dispatched_at, _I.last_dispatched_at,
                           _I.resolved_at, _I.first_closed_at, _I.last_closed_at, _I.suspended_at, _I.revised_at,
                           _I.first_signed_at, _I.first_contacted_at, _I.first_revisited_at)])),
                      else_=literal(rollups.FROZEN_NEVER, UTCDateTime())),
}
COLUMNS = tuple(_SOURCES)
DISPATCH_EVENTS = tuple(a.value for a in DISPATCH_ACTIONS)
_SLICE = 5000      # ids per statement (PostgreSQL takes at most 65,535 parameters)


def _upsert(session: Session, where) -> None:
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(CaseFact).from_select(list(COLUMNS), select(*_SOURCES.values()).where(where))
    stmt = stmt.on_conflict_do_update(index_elements=[CaseFact.incident_id],
                                      set_={c: stmt.excluded[c] for c in COLUMNS if c != "incident_id"})
    conn.execute(stmt)


def refresh(session: Session, ids: Iterable[int], *, with_rollups: bool = True) -> None:
    """Write the fact rows of these cases from their case rows, and their rollups (in the caller's
    transaction): the frozen ones' old sums out, the new in. A bulk load passes ``with_rollups``
    False and rebuilds them once at its end (:func:`incidents.rollups.rebuild_stored`)."""
    ids = sorted({int(i) for i in ids})
    stored = rollups.stored_basis(session) if ids and with_rollups else None
    for i in range(0, len(ids), _SLICE):
        part = ids[i:i + _SLICE]
        rollups.apply(session, part, -1, stored)
        _upsert(session, Incident.id.in_(part))
        rollups.apply(session, part, 1, stored)


def rebuild(session: Session) -> int:
    """Every fact row again from the case rows; returns the number of cases."""
    _upsert(session, true())       # (SQLite: an INSERT … SELECT needs a WHERE before ON CONFLICT)
    conn = session.connection()
    # NOT EXISTS, an anti-join: PostgreSQL runs a NOT IN over a million ids as a subplan per row
    conn.execute(delete(CaseFact).where(~select(Incident.id).where(Incident.id == CaseFact.incident_id).exists()))
    conn.exec_driver_sql("ANALYZE case_facts")     # fresh statistics: the KPI scans pick their indexes by them
    rollups.rebuild_stored(session)
    return int(session.scalar(select(func.count()).select_from(CaseFact)) or 0)


def backfill_milestones(session: Session, calendar, *, every: bool = False, batch: int = 20000,
                        sign_for_limit=None) -> int:
    """The case milestones the facts read that come from the timeline: with ``every``, the first
    dispatch and closure and how many there were (SQL over the events); and, for resolved and
    closed cases, the working hours from the first dispatch to the final resolve (needs the pack's
    calendar, so ``init-db`` runs this after the migrations for the cases from before them) — only
    where they lack them, or for ``every`` case. Returns how many cases' milestones changed."""
    t = Incident.__table__
    conn = session.connection()
    changed = 0
    if every:    # (migration 0004 filled these from the events; a rebuild checks them all again)
        e = IncidentEvent.__table__
        # only where the timeline is whole: a case whose oldest months were pruned (flask events
        # prune) has lost its report event and keeps the milestones it had
        whole = select(e.c.id).where(e.c.incident_id == t.c.id, _unindexed(e.c.action) == "report").exists()
        for column, value in _from_timeline(t).items():
            changed += int(conn.execute(update(t).where(whole, t.c[column].is_distinct_from(value))
                                        .values({column: value})).rowcount or 0)
    if sign_for_limit is not None:
        changed += _backfill_sign_for(conn, t, calendar, sign_for_limit, batch)
    done = t.c.resolved_at.isnot(None) & t.c.first_dispatched_at.isnot(None) & t.c.state.in_(("resolved", "closed"))
    after = 0
    while True:
        rows = conn.execute(select(t.c.id, t.c.first_dispatched_at, t.c.resolved_at, t.c.handling_hours)
                            .where(done if every else done & t.c.handling_hours.is_(None), t.c.id > after)
                            .order_by(t.c.id).limit(batch)).all()
        if not rows:
            return changed
        import pandas as pd
        hours = calendar.working_hours_between_many(pd.Series([_aware(r[1]) for r in rows]),
                                                    pd.Series([_aware(r[2]) for r in rows]))
        new = [{"b_id": r[0], "b_h": float(h)} for r, h in zip(rows, hours)
               if r[3] is None or abs(float(r[3]) - float(h)) > 1e-6]
        if new:
            conn.execute(update(t).where(t.c.id == bindparam("b_id")).values(handling_hours=bindparam("b_h")), new)
        changed += len(new)
        after = rows[-1][0]


def _backfill_sign_for(conn, t, calendar, sign_for_limit, batch: int) -> int:
    """按时签收率's milestones of the cases from before migration 0009: the first sign-for from the
    events, and the first dispatch's 签收时限 (its priority's working hours, ``sign_for_limit``, on
    the calendar) — only where missing: a stored deadline was the one in force."""
    e = IncidentEvent.__table__
    # one grouped pass over the sign events (UPDATE … FROM): a correlated subquery per case walks the
    # action index once per case
    signs = select(e.c.incident_id, func.min(e.c.at).label("at")).where(e.c.action == "sign") \
        .group_by(e.c.incident_id).subquery("signs")
    changed = int(conn.execute(update(t).where(t.c.id == signs.c.incident_id, t.c.first_signed_at.is_(None))
                               .values(first_signed_at=signs.c.at)).rowcount or 0)
    after = 0
    while True:
        rows = conn.execute(select(t.c.id, t.c.first_dispatched_at, t.c.priority)
                            .where(t.c.first_dispatched_at.isnot(None), t.c.first_sign_due.is_(None), t.c.id > after)
                            .order_by(t.c.id).limit(batch)).all()
        if not rows:
            return changed
        new = [{"b_id": r[0], "b_due": calendar.add_working_hours(_aware(r[1]), sign_for_limit(r[2]))} for r in rows]
        conn.execute(update(t).where(t.c.id == bindparam("b_id"))
                     .values(first_sign_due=bindparam("b_due", type_=t.c.first_sign_due.type)), new)
        changed += len(new)
        after = rows[-1][0]


def _unindexed(action):
    """``action || ''``: the same text, kept off the (action, at) index in a per-case subquery, which
    SQLite would otherwise walk — every event of that action — once per case; the case's own events
    come from the (incident_id, id) index (migration 0004 does the same)."""
    return action.concat("")


def _from_timeline(t) -> dict:
    """The case columns that are a fact of the timeline, as correlated SQL over the events: the
    first and last dispatch and closure, how many, and the last revising action."""
    def of(agg, action):
        e = IncidentEvent.__table__
        actions = DISPATCH_EVENTS if action == "dispatch" else (action,)   # an arbitration is a dispatch
        return select(agg(e.c.at) if agg is not func.count else func.count()).where(
            e.c.incident_id == t.c.id, _unindexed(e.c.action).in_(actions)).scalar_subquery()
    e = IncidentEvent.__table__
    revising = sorted(a.value for a in (*REVISING_ACTIONS, Action.APPROVE))   # an approval applies an extension or suspension
    # (the action inside the MAX: with an IN list in the WHERE, SQLite walks the action index per case)
    # a 回访 that sent the case back (不满意 → 重办: it left ``closed``) revises it too
    redo = and_(e.c.action == Action.REVISIT.value, e.c.to_state != "closed")
    revised = select(func.max(case((or_(e.c.action.in_(revising), redo), e.c.at)))) \
        .where(e.c.incident_id == t.c.id).scalar_subquery()
    # 先行联系: the first contact no resolve came before (services.transition keeps it so)
    c, r = e.alias("c"), e.alias("r")
    resolved_before = select(r.c.id).where(r.c.incident_id == c.c.incident_id,
                                           _unindexed(r.c.action) == Action.RESOLVE.value,
                                           or_(r.c.at < c.c.at, and_(r.c.at == c.c.at, r.c.id < c.c.id))).exists()
    contacted = select(func.min(c.c.at)).where(c.c.incident_id == t.c.id,
                                               _unindexed(c.c.action) == Action.CONTACT.value,
                                               ~resolved_before).scalar_subquery()
    return {"revised_at": revised, "first_contacted_at": contacted,
            "first_revisited_at": of(func.min, Action.REVISIT.value),
            "first_dispatched_at": of(func.min, "dispatch"), "first_closed_at": of(func.min, "verify_pass"),
            "last_dispatched_at": of(func.max, "dispatch"), "last_closed_at": of(func.max, "verify_pass"),
            "dispatch_count": func.nullif(of(func.count, "dispatch"), 0),
            "close_count": func.nullif(of(func.count, "verify_pass"), 0)}


def _aware(value):
    """A Core read of a naive-UTC column (the ORM's UTCDateTime is not applied to ``Table`` reads)."""
    from datetime import timezone
    if isinstance(value, str):
        from datetime import datetime
        value = datetime.fromisoformat(value)
    return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)


def differences(session: Session, *, limit: int = 20) -> tuple[int, list[int]]:
    """(how many cases' fact rows differ from what their case rows say — a missing row counts —,
    the first ``limit`` of their ids)."""
    f = CaseFact
    expected = select(*[v.label(k) for k, v in _SOURCES.items()]).subquery("expected")
    differs = or_(f.incident_id.is_(None), *[
        ~and_(getattr(f, c).is_(None), getattr(expected.c, c).is_(None)) & (
            getattr(f, c).is_(None) | getattr(expected.c, c).is_(None) | (getattr(f, c) != getattr(expected.c, c)))
        for c in COLUMNS if c != "incident_id"])
    stmt = select(expected.c.incident_id).outerjoin(f, f.incident_id == expected.c.incident_id).where(differs)
    n = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    ids = [int(i) for i in session.scalars(stmt.order_by(expected.c.incident_id).limit(limit))]
    return n, ids


# --------------------------------------------------------------------------- every ORM write

@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context, _instances) -> None:
    """A case deleted through the ORM loses its fact row first."""
    gone = [o.id for o in session.deleted if isinstance(o, Incident) and o.id is not None]
    if gone:
        rollups.apply(session, gone, -1, rollups.stored_basis(session))
        session.connection().execute(delete(CaseFact).where(CaseFact.incident_id.in_(gone)))


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context) -> None:
    """The cases this flush wrote (new or changed ORM rows) get their fact rows in the same
    transaction."""
    written: list[int] = [o.id for o in (*session.new, *session.dirty)
                          if isinstance(o, Incident) and o.id is not None and o not in session.deleted]
    if written:
        refresh(session, written)
