"""The one KPI path (DESIGN §2, "one number, one path"): every case KPI — the brief's cards, its
comparisons, series, rankings and drill-through, ``/api/v1/kpis``, both exports, the wall's
超期未处置 — is a SQL aggregate over the per-case fact rows (``case_facts``, kept at write time by
:mod:`incidents.facts`), summed into :data:`incidents.kpis.CASE_SUMS` and turned into results by
the same functions as the reference (:func:`incidents.kpis.case_kpis_from_sums`).

``as_of`` through the milestones: a fact row holds the case as it is now. Since its last revising
action (a return, reassignment, extension, suspension, rework … :data:`incidents.model.REVISING_ACTIONS`,
its ``revised_at``) a case only goes forward, each milestone once, so at any ``as_of`` after that
the row with its later milestones masked is the case at ``as_of`` (:func:`state_at`,
:func:`department_at`). The few cases revised after ``as_of`` — none for a brief of today, a few
hundred for a comparison period — are replayed from their events by the reference
(:func:`incidents.kpis.case_facts`) and added in. The reference frames loader
(:func:`load_kpi_frames`) lives here too: the tests hold this path equal to it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

from sqlalchemy import (Column, Integer, MetaData, String, Table, and_, case, false, func, insert, null, or_,
                        select, type_coerce, union)
from sqlalchemy.orm import Session

from incidents import kpis, rollups
from incidents.model import DEFAULT_CITIZEN_CHANNELS, DISPATCH_ACTIONS, Action, State, TimeUnit
from incidents.queries._common import OPEN_STATES, RUNNING_STATES
from incidents.tables import CaseFact as F
from incidents.tables import CaseRollup as R
from incidents.tables import CaseAssignment, Category, Incident, IncidentEvent, ServiceRate

E = IncidentEvent
#: events that change nothing the KPIs read (no state, clock or department change): a department's
#: request and a rejection leave the case as it was; an approval counts as what it approved
KPI_SKIPPED_ACTIONS = ("update", "supervise", "request", "reject", "link_repeat")
_EVENT_COUNTS = {"dispatch": "dispatched", "arbitrate": "dispatched", "verify_pass": "closed"}
#: the events that are a dispatch (an arbitration, 审定, is one the department may not return)
DISPATCH_EVENTS = tuple(a.value for a in DISPATCH_ACTIONS)
VOIDED, CLOSED, SUSPENDED = State.VOIDED.value, State.CLOSED.value, State.SUSPENDED.value
REPORTED, REGISTERED, DISPATCHED, RESOLVED = (State.REPORTED.value, State.REGISTERED.value, State.DISPATCHED.value,
                                              State.RESOLVED.value)
DONE = (State.RESOLVED.value, State.CLOSED.value)


# --------------------------------------------------------------------------- the conditions, once

def settled(as_of: datetime, dialect: str = ""):
    """Fact rows that tell their case at ``as_of``: reported by then and not revised since (a
    revising action after ``as_of`` — :data:`incidents.model.REVISING_ACTIONS` — sends the case to
    the replay; NULL: never revised). For a scan whose other terms pick the rows, on SQLite the two
    columns are written ``+col`` (SQLite's no-op that keeps a term off an index): else its planner
    walks an index of every row instead of the milestone indexes."""
    if dialect == "sqlite":
        revised = _unindexed(F.revised_at)
        return and_(_unindexed(F.reported_at) <= as_of, or_(revised.is_(None), revised <= as_of))
    return and_(F.reported_at <= as_of, or_(F.revised_at.is_(None), F.revised_at <= as_of))


def _unindexed(col):
    from sqlalchemy.sql import operators
    from sqlalchemy.sql.expression import UnaryExpression
    return UnaryExpression(col, operator=operators.custom_op("+"), type_=col.type)


def state_at(as_of: datetime):
    """The state of a settled case at ``as_of``. Since its last revision the case only went
    forward — registered, dispatched, (signed,) resolved, closed, each once — so the first of its
    milestones after ``as_of`` says where it stood (a signed case counts as dispatched: both
    run the clock); with none after ``as_of``, its state now."""
    return case((F.registered_at > as_of, REPORTED), (F.last_dispatched_at > as_of, REGISTERED),
                (F.resolved_at > as_of, DISPATCHED), (F.last_closed_at > as_of, RESOLVED), else_=F.state)


def department_at(as_of: datetime):
    """The department of a settled case at ``as_of``: none before its (last) dispatch — a case
    is registered without one, and a return or reopen, which takes it away, revises the case."""
    return case((F.last_dispatched_at > as_of, None), else_=F.department_code)


def as_of_conditions(as_of: datetime) -> dict:
    """What a settled fact row says at ``as_of``, whatever the period (``kpis._facts``' columns).
    The deadline, on-time flag, working hours and the reworked / misdispatched / extended flags
    need no mask: a forward step after a revision leaves the first three as they were at the
    dispatch or resolve before ``as_of`` (a resolve after it is masked by the state), and the
    flags are set only by revisions."""
    st = state_at(as_of)
    resolved_final = and_(st.in_(DONE), F.resolved_at.isnot(None))
    on_time_final = and_(resolved_final, F.on_time.is_not(False))
    running = st.in_(RUNNING_STATES)
    held = and_(st == SUSPENDED, F.state_before_suspend.in_(RUNNING_STATES))
    closed = st == CLOSED
    return {"closed": closed, "closed_on_time": and_(closed, on_time_final), "on_time_final": on_time_final,
            "resolved_final": resolved_final, "reworked": F.reworked.is_(True),
            "accurate": F.misdispatched.is_(False), "extended": F.extended.is_(True), "live": st != VOIDED,
            # 按时签收: both columns are fixed once set, so the first sign-for by as_of tells
            "signable": F.first_sign_due.isnot(None),
            "signed_on_time": and_(F.first_signed_at <= as_of, F.first_signed_at <= F.first_sign_due),
            # 先行联系 and the first 回访 are fixed once set; the outcome is the final resolve's (masked with it)
            "contacted": F.first_contacted_at <= as_of, "revisited": F.first_revisited_at <= as_of,
            "solved_final": and_(resolved_final, func.coalesce(F.resolve_outcome, kpis.SOLVED) == kpis.SOLVED),
            "overdue": or_(and_(running, F.deadline < as_of), and_(held, F.deadline < F.suspended_at))}


def citizen_conditions(as_of: datetime, channels) -> dict:
    """The citizen cases' flags (先行联系率, 实际解决率, 回访率): a citizen raised the case (its channel
    is one of the pack's ``citizen_channels``) and what :func:`as_of_conditions` says of it."""
    c = as_of_conditions(as_of)
    cit = F.channel.in_(tuple(channels))
    return {"cit": cit, "cit_contacted": and_(cit, c["contacted"]), "cit_resolved": and_(cit, c["resolved_final"]),
            "cit_solved": and_(cit, c["solved_final"]), "cit_revisited": and_(cit, c["revisited"])}


def overdue_candidates(as_of: datetime):
    """Index-able terms that find every settled row overdue at ``as_of`` (and a few more): running
    or suspended now with a deadline before it (``ix_case_facts_state_deadline``), or resolved since
    (``ix_case_facts_resolved_at``) — a case running at ``as_of`` that is anything else now was
    revised since (returned, reassigned, suspended, merged) and is replayed."""
    return (and_(F.state.in_((*RUNNING_STATES, SUSPENDED)), F.deadline < as_of),
            and_(F.resolved_at > as_of, F.deadline < as_of))


def _within(col, lo: datetime, hi: datetime, as_of: Optional[datetime] = None):
    """``col`` in ``[lo, hi)`` and, with ``as_of``, not after it (a milestone after ``as_of`` had
    not happened then)."""
    if as_of is not None and as_of < hi:
        return and_(col >= lo, col <= as_of)
    return and_(col >= lo, col < hi)


def period_conditions(lo: datetime, hi: datetime, as_of: datetime) -> dict:
    """The cohorts of ``[lo, hi)`` at ``as_of`` (``kpis._set_period``); the event counts come from
    the first dispatch and closure (and the timeline of the cases with several)."""
    live = state_at(as_of) != VOIDED
    return {"reported_in": _within(F.reported_at, lo, hi, as_of),
            "registered_in": _within(F.registered_at, lo, hi, as_of),
            "reg_cohort": and_(_within(F.registered_at, lo, hi, as_of), live),
            "disp_cohort": and_(_within(F.first_dispatched_at, lo, hi, as_of), live),
            "disp_signable": and_(_within(F.first_dispatched_at, lo, hi, as_of), live, F.first_sign_due.isnot(None))}


def _one(cond):
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _bucket(col, lo: datetime, hi: datetime, as_of: datetime, buckets: list[kpis.Period]):
    """The index of the bucket ``col`` falls in, NULL outside ``[lo, hi)`` or after ``as_of``."""
    return case((or_(col < lo, col >= hi, col > as_of, col.is_(None)), None),
                *[(col < b.end, i) for i, b in enumerate(buckets)], else_=None)


#: what a fact row adds to its group of the scan, by what it is at ``as_of`` (the period comes
#: from the group's bucket columns): rows, live rows (not voided) and the live rows' flags
_FLAGS = ("closed", "closed_on_time", "reworked", "on_time_final", "accurate", "extended", "resolved_final",
          "signable", "signed_on_time")
#: which CASE_SUMS a cohort's bucket column carries: cohort sum name → the flag it counts
_REG = {"reg_closed": "closed", "reg_closed_on_time": "closed_on_time", "reg_reworked": "reworked"}
_DISP = {"disp_on_time": "on_time_final", "disp_accurate": "accurate", "disp_extended": "extended",
         "handled": "resolved_final", "disp_signable": "signable", "disp_signed_on_time": "signed_on_time",
         "cit_disp": "cit", "cit_disp_contacted": "cit_contacted", "cit_handled": "cit_resolved",
         "cit_handled_solved": "cit_solved"}
#: the citizen cases' flags (:func:`citizen_conditions`), and the sums the first closure's bucket carries
_CIT_FLAGS = ("cit", "cit_contacted", "cit_resolved", "cit_solved", "cit_revisited")
_CLOSE = {"cit_closed": "cit", "cit_closed_revisited": "cit_revisited"}


#: the milestones of a case the scan buckets: report, register, first dispatch and closure, and the
#: last dispatch and closure (a case dispatched or closed twice is counted by its first and last)
_MILESTONES = (F.reported_at, F.registered_at, F.first_dispatched_at, F.first_closed_at, F.last_dispatched_at,
               F.last_closed_at)


def _scan(s: Session, as_of: datetime, lo: datetime, hi: datetime, buckets: list[kpis.Period], grouped: bool = True,
          citizen_channels=DEFAULT_CITIZEN_CHANNELS, frozen_before: Optional[datetime] = None):
    """One pass over the settled fact rows of ``[lo, hi)`` (and the overdue ones), grouped by
    department, district (unless not ``grouped``: NULL, NULL, a few dozen groups, no sort) and the
    bucket of each milestone a cohort hangs on; with ``frozen_before``, only the cases not frozen
    before it (the rest come from :func:`_rolled`)."""
    c = {**as_of_conditions(as_of), **citizen_conditions(as_of, citizen_channels)}
    live = c["live"]
    milestones = [_bucket(m, lo, hi, as_of, buckets) for m in _MILESTONES]
    units = [department_at(as_of), F.district_code] if grouped else [null(), null()]
    keys = units + milestones
    cols = [func.count(), _one(live), *[_one(and_(live, c[f])) for f in _FLAGS + _CIT_FLAGS],
            func.coalesce(func.sum(case((and_(live, c["resolved_final"]), F.handling_hours), else_=None)), 0.0),
            _one(c["overdue"]), _one(F.dispatches == 1), _one(F.dispatches == 2), _one(F.closures == 1),
            _one(F.closures == 2)]
    where = and_(settled(as_of, s.get_bind().dialect.name),
                 or_(*[_within(m, lo, hi, as_of) for m in _MILESTONES], *overdue_candidates(as_of)))
    if frozen_before is not None:
        where = and_(F.frozen_at >= frozen_before, where)
    return s.execute(select(*keys, *cols).where(where).group_by(*(keys if grouped else milestones))).all()


def _rolled(s: Session, week: int, days: list, grouped: bool):
    """The rollup rows of the cases frozen before ``week`` with a milestone in the period, as
    (kind, unit, milestone, bucket of the day, bucket of the last one's day, *sums): ``days`` are
    the city-time dates of the period's start and its buckets' ends. Not ``grouped``: the
    department rows alone (every case is in one), summed."""
    lo, hi, ends = days[0], days[1], days[2:]

    def bucket(col):
        return case((or_(col < lo, col >= hi), None), *[(col < end, i) for i, end in enumerate(ends)], else_=None)
    keys = [R.kind, R.unit, R.milestone, bucket(R.day), bucket(R.day2)]
    if not grouped:
        keys[1] = null()
    sums = [func.sum(getattr(R, k)) for k in rollups.SUMS]
    where = [R.week < week, R.n > 0, or_(and_(R.day >= lo, R.day < hi), and_(R.day2 >= lo, R.day2 < hi))]
    if not grouped:
        where.append(R.kind == "department")
    return s.execute(select(*keys, *sums).where(*where).group_by(*(k for i, k in enumerate(keys) if grouped or i != 1))
                     ).all()


#: a rollup row's milestone → where its two buckets go in a scan row (first, last)
_ROLLED_AT = {"reported": (0, None), "registered": (1, None), "dispatched": (2, 4), "closed": (3, 5)}


def _as_scan_row(milestone: str, b1, b2, sums) -> tuple:
    """A rollup row in the scan's layout (:func:`_fold`): its buckets where its milestone's are,
    nothing overdue (a frozen case is closed or voided), its counts as the dispatches' or closures'."""
    buckets: list = [None] * 6
    first, last = _ROLLED_AT[milestone]
    buckets[first] = b1
    if last is not None:
        buckets[last] = b2
    n, live, *rest = sums
    flags, (hours, one, two) = rest[:len(rollups.FLAGS)], rest[len(rollups.FLAGS):]
    counts = (one, two, 0, 0) if milestone == "dispatched" else (0, 0, one, two) if milestone == "closed" else (0,) * 4
    return (*buckets, n, live, *flags, hours, 0, *counts)


def event_rows(s: Session, period: kpis.Period, as_of: datetime, buckets: Optional[list[kpis.Period]] = None):
    """What :func:`period_sums` reads of the events — the cases dispatched or closed more than twice,
    the 退单 and the 回访 of ``period`` up to ``as_of`` —, apart: a caller may read them on a
    connection of its own beside the rest and hand them in (``events``)."""
    lo, hi, as_of = period.start, period.end, kpis._utc(as_of)
    b = buckets or [period]
    return (_repeated(s, as_of, lo, hi, b), _returns(s, as_of, lo, hi, b, per_case=False),
            _revisits(s, as_of, lo, hi, b, per_case=False))


def _returns(s: Session, as_of: datetime, lo: datetime, hi: datetime, buckets: list[kpis.Period],
             per_case: bool = True):
    """退单数: the returns in ``[lo, hi)`` up to ``as_of`` of the settled cases (the action's index
    finds them), as (the department that returned, district, bucket, case — NULL unless
    ``per_case`` —, how many) — the revised cases' come from the replay."""
    b = _bucket(E.at, lo, hi, as_of, buckets)
    by = E.payload["from_department"].as_string()
    keys = [by, F.district_code, b, E.incident_id if per_case else null()]
    return s.execute(select(*keys, func.count())
                     .select_from(F).join(E, E.incident_id == F.incident_id)
                     .where(E.action == "return", settled(as_of, s.get_bind().dialect.name), _within(E.at, lo, hi, as_of))
                     .group_by(*keys[:4 if per_case else 3])).all()


def _revisits(s: Session, as_of: datetime, lo: datetime, hi: datetime, buckets: list[kpis.Period],
              per_case: bool = True):
    """回访: the visits in ``[lo, hi)`` up to ``as_of`` of the settled cases (the action's index finds
    them), as (the department the visit asked about — its event's —, district, bucket, case — NULL
    unless ``per_case`` —, result, how many); the revised cases' come from the replay."""
    b = _bucket(E.at, lo, hi, as_of, buckets)
    result = E.payload["result"].as_string()
    keys = [E.department_code, F.district_code, b, E.incident_id if per_case else null(), result]
    return s.execute(select(*keys, func.count())
                     .select_from(F).join(E, E.incident_id == F.incident_id)
                     .where(E.action == Action.REVISIT.value, settled(as_of, s.get_bind().dialect.name),
                            _within(E.at, lo, hi, as_of))
                     .group_by(*[k for i, k in enumerate(keys) if per_case or i != 3])).all()


def _visit_sums(result, n: int) -> dict:
    """What ``n`` visits with ``result`` add to :data:`kpis.CASE_SUMS`."""
    return {"revisits": n, "revisits_reached": n if result in kpis.REVISIT_REACHED else 0,
            "revisits_satisfied": n if result in kpis.REVISIT_SATISFIED else 0,
            "revisits_redo": n if result == kpis.REVISIT_REDO else 0}


def _repeated(s: Session, as_of: datetime, lo: datetime, hi: datetime, buckets: list[kpis.Period]):
    """The cases dispatched or closed more than twice (a partial index finds the few): their
    dispatch and closure events in ``[lo, hi)`` up to ``as_of``, as (department, district, action,
    bucket, case). On SQLite the events' action and time are kept off their index: from the few cases
    their own events (else it walks every dispatch and closure of the period, 0.2 s a quarter)."""
    b = _bucket(E.at, lo, hi, as_of, buckets)
    sqlite = s.get_bind().dialect.name == "sqlite"
    action, at = (_unindexed(E.action), _unindexed(E.at)) if sqlite else (E.action, E.at)
    return s.execute(select(department_at(as_of), F.district_code, E.action, b, E.incident_id).distinct()
                     .select_from(F).join(E, E.incident_id == F.incident_id)
                     .where(or_(F.dispatches > 2, F.closures > 2), settled(as_of, s.get_bind().dialect.name),
                            _within(at, lo, hi, as_of),
                            or_(and_(action.in_(DISPATCH_EVENTS), F.dispatches > 2),
                                and_(action == "verify_pass", F.closures > 2)))).all()


# --------------------------------------------------------------------------- sums of one period

@dataclass
class PeriodSums:
    """The :data:`kpis.CASE_SUMS` of one period at one ``as_of``: per (department, district) —
    :data:`kpis.UNASSIGNED` for none —, per bucket when asked, and the replayed cases' facts."""

    period: kpis.Period
    as_of: datetime
    groups: dict[tuple[str, str], dict] = field(default_factory=dict)
    buckets: Optional[list[dict]] = None
    replayed: object = None          # kpis facts frame of the cases revised after as_of
    rates: object = None
    grouped: bool = True             # False: one group, the total (no department or district)
    #: :data:`kpis.ASSIST_SUMS` per assisting department (协办按时回复率, :func:`assist_sums`)
    assist: dict = field(default_factory=dict)
    #: the frozen cases' sums from their rollups (:mod:`incidents.rollups`), per department and,
    #: apart, per district — each case is in both (grouped; else they are in the total group)
    rolled: dict[str, dict[str, dict]] = field(default_factory=dict)

    def total(self) -> dict:
        return kpis.add_sums(*self.groups.values(), *self.rolled.get("department", {}).values())

    def by(self, group_by: str) -> dict[str, dict]:
        if not self.grouped:
            raise ValueError("these sums were taken without departments and districts (grouped=False)")
        i = 0 if group_by == "department" else 1
        out: dict[str, list] = {}
        for key, sums in self.groups.items():
            out.setdefault(key[i], []).append(sums)
        for code, sums in self.rolled.get(group_by, {}).items():
            out.setdefault(code, []).append(sums)
        return {k: kpis.add_sums(*v) for k, v in out.items()}


def _fold(row, g: dict, by_bucket: Optional[list[dict]]) -> None:
    """Add a scan row (the buckets of its six milestones, then its sums; :func:`_scan`) to the
    group ``g`` and, given ``by_bucket``, to its buckets."""
    b_rep, b_reg, b_disp, b_close, b_last_disp, b_last_close = row[:6]
    n, live, *flags = row[6:]
    flagged = dict(zip(_FLAGS + _CIT_FLAGS, flags[:len(_FLAGS) + len(_CIT_FLAGS)]))
    hours, overdue, one_dispatch, two_dispatches, one_closure, two_closures = flags[len(_FLAGS) + len(_CIT_FLAGS):]
    add = {"overdue": overdue}
    per_bucket = []
    if b_rep is not None:
        per_bucket.append((b_rep, {"reported": n}))
    if b_reg is not None:
        per_bucket.append((b_reg, {"registered": n, "reg": live, **{k: flagged[f] for k, f in _REG.items()}}))
    if b_disp is not None:
        per_bucket.append((b_disp, {"disp": live, **{k: flagged[f] for k, f in _DISP.items()},
                                    "handled_hours": hours}))
    if b_close is not None:
        per_bucket.append((b_close, {k: flagged[f] for k, f in _CLOSE.items()}))
    # 派遣数 / 结案数 count a case once a period and once a bucket: by its first and last event
    for name, first, last, one, two in (("dispatched", b_disp, b_last_disp, one_dispatch, two_dispatches),
                                        ("closed", b_close, b_last_close, one_closure, two_closures)):
        if first is not None or last is not None:
            add[name] = add.get(name, 0) + (one if first is not None else 0) + two
        if by_bucket is not None and first is not None:
            by_bucket[int(first)][name] += one + two
        if by_bucket is not None and last is not None and last != first:
            by_bucket[int(last)][name] += two
    for i, sums in [(None, add)] + per_bucket:
        for k, v in sums.items():
            g[k] += v
            if i is not None and by_bucket is not None:
                by_bucket[int(i)][k] += v


def _unit_key(dept, district) -> tuple[str, str]:
    return (dept if dept is not None else kpis.UNASSIGNED, district if district is not None else kpis.UNASSIGNED)


def _total_key(_dept, _district) -> tuple[str, str]:
    return ("*", "*")


def _zero() -> dict:
    return dict.fromkeys(kpis.CASE_SUMS, 0)


def period_sums(s: Session, period: kpis.Period, as_of: datetime, *, cal, priority_factors: dict,
                hours_per_day: float, tz: str, buckets: Optional[list[kpis.Period]] = None,
                grouped: bool = True, disposal_clock: str = "dispatch",
                citizen_channels=DEFAULT_CITIZEN_CHANNELS, events=None) -> PeriodSums:
    """The sums of ``period`` at ``as_of``, per department and district — or, not ``grouped``, the
    total alone (a comparison card needs no more), which is cheaper to aggregate. ``disposal_clock``:
    the pack's rule for where the 处置 clock starts (the fact rows carry its deadlines; the cases
    replayed from their events need it told). ``events``: a callable that gives :func:`event_rows`'
    answer for the same period (read on another connection meanwhile), else they are read here."""
    lo, hi, as_of = period.start, period.end, kpis._utc(as_of)
    out = PeriodSums(period, as_of, grouped=grouped, assist=assist_sums(s, period, as_of))
    _key = _unit_key if grouped else _total_key
    scan_buckets = buckets or [period]
    by_bucket = [_zero() for _ in scan_buckets]
    # the cases frozen before the week of as_of from their rollups, when the period is whole
    # city-time days and the rollups were built on this pack's basis; the scan reads the rest
    days = rollups.local_days([lo, hi, *[b.end for b in scan_buckets]], tz)
    week = rollups.week_of(as_of) if days and rollups.usable(s, tz, citizen_channels) else None
    for row in _scan(s, as_of, lo, hi, scan_buckets, grouped, citizen_channels,
                     frozen_before=rollups.week_start(week) if week is not None else None):
        _fold(row[2:], out.groups.setdefault(_key(*row[:2]), _zero()), by_bucket)
    if week is not None and not grouped:
        for _kind, _unit, milestone, b1, b2, *sums in _rolled(s, week, days, grouped=False):
            _fold(_as_scan_row(milestone, b1, b2, sums), out.groups.setdefault(_total_key(None, None), _zero()),
                  by_bucket)
    elif week is not None:
        # per unit over the whole period (a few hundred rows), and per bucket over the departments'
        # rows (each case is in both kinds) without the units (a few dozen): not units × buckets
        for kind, unit, milestone, b1, b2, *sums in _rolled(s, week, [days[0], days[1], days[1]], grouped=True):
            _fold(_as_scan_row(milestone, b1, b2, sums),
                  out.rolled.setdefault(kind, {}).setdefault(_unit_key(unit or None, None)[0], _zero()), None)
        if buckets is not None:
            for _kind, _unit, milestone, b1, b2, *sums in _rolled(s, week, days, grouped=False):
                _fold(_as_scan_row(milestone, b1, b2, sums), _zero(), by_bucket)
    repeated, returns, revisits = events() if events is not None else event_rows(s, period, as_of, buckets)
    # the cases dispatched or closed more than once count once per period, once per bucket
    seen: set = set()
    for dept, district, action, b, cid in repeated:
        name = _EVENT_COUNTS[action]
        if (name, cid) not in seen:
            seen.add((name, cid))
            out.groups.setdefault(_key(dept, district), _zero())[name] += 1
        if b is not None:
            by_bucket[int(b)][name] += 1
    for dept, district, b, _cid, n in returns:
        out.groups.setdefault(_key(dept, district), _zero())["returns"] += n
        if b is not None:
            by_bucket[int(b)]["returns"] += n
    for dept, district, b, _cid, result, n in revisits:
        g = out.groups.setdefault(_key(dept, district), _zero())
        for k, v in _visit_sums(result, n).items():
            g[k] += v
            if b is not None:
                by_bucket[int(b)][k] += v
    if buckets is not None:
        out.buckets = by_bucket
    replayed = _replay(s, period, as_of, cal=cal, priority_factors=priority_factors, hours_per_day=hours_per_day,
                       tz=tz, disposal_clock=disposal_clock, citizen_channels=citizen_channels)
    out.rates = replayed.pop("rates")
    if replayed["facts"] is not None and len(replayed["facts"]):
        f = replayed["facts"]
        out.replayed = f
        if grouped:
            for key, sums in kpis.group_sums(f, ["department_code", "district_code"]).items():
                out.groups[key] = kpis.add_sums(out.groups.get(key, {}), sums)
        else:
            key = _total_key(None, None)
            out.groups[key] = kpis.add_sums(out.groups.get(key, {}), kpis.case_sums(f))
        if buckets is not None:
            extra = _replayed_bucket_sums(f, replayed["before"], replayed["reported_at"], buckets)
            out.buckets = [kpis.add_sums(a, b) for a, b in zip(out.buckets, extra)]
    for g in [*out.groups.values(), *(out.buckets or []), *(v for d in out.rolled.values() for v in d.values())]:
        for k in kpis.CASE_SUMS:
            g[k] = float(g[k]) if k == "handled_hours" else int(g[k])
    return out


def _replayed_bucket_sums(f, before, reported_at, buckets: list[kpis.Period]) -> list[dict]:
    """:func:`kpis.bucket_sums` of the replayed cases, each bucket none of their times fall in
    (events, report, first dispatch and closure: what sets a bucket's cohorts) summed once for all:
    its cohorts are all empty, so its sums are the same (a handful of cases touch a few of the
    buckets; each bucket costs the reference a pass of pandas)."""
    import pandas as pd
    times = pd.concat([before["at"], reported_at, f["first_dispatch_at"], f["first_closed_at"]]).dropna()
    touched = [bool(((times >= pd.Timestamp(b.start)) & (times < pd.Timestamp(b.end))).any()) for b in buckets]
    sums = iter(kpis.bucket_sums(f, before, reported_at, [b for b, t in zip(buckets, touched) if t]))
    idle = next((b for b, t in zip(buckets, touched) if not t), None)
    idle_sums = kpis.bucket_sums(f, before, reported_at, [idle])[0] if idle is not None else None
    return [next(sums) if t else dict(idle_sums) for t in touched]


_IDS_PER_QUERY = 20000    # an IN list per statement (PostgreSQL takes at most 65,535 parameters)


def _replay(s: Session, period: kpis.Period, as_of: datetime, *, cal, priority_factors: dict, hours_per_day: float,
            tz: str, disposal_clock: str = "dispatch", citizen_channels=DEFAULT_CITIZEN_CHANNELS) -> dict:
    """The reference facts of the cases revised after ``as_of`` (and the period's service rates)."""
    # the ids first (on the revised_at index; no temporary table: a read replica takes no writes), then
    # the cases and events of exactly those: a planner that knows it is asked for a few hundred ids
    # walks the indexes (given the sub-select, PostgreSQL guessed tens of thousands and hashed every
    # event partition)
    changed = [int(i) for i in s.scalars(select(F.incident_id).where(F.reported_at <= as_of, F.revised_at > as_of))]
    import pandas as pd
    parts = [_kpi_frames(s, changed[i:i + _IDS_PER_QUERY], period.start, period.end,
                         priority_factors=priority_factors, hours_per_day=hours_per_day, tz=tz,
                         disposal_clock=disposal_clock, citizen_channels=citizen_channels)
             for i in range(0, len(changed), _IDS_PER_QUERY)] if changed else []
    if len(parts) == 1:
        cases, events, rates = parts[0]
    elif parts:
        cases, events = (pd.concat([p[j] for p in parts], ignore_index=True) for j in (0, 1))
        rates = parts[0][2]
    else:
        cases, events, rates = _kpi_frames(s, [], period.start, period.end, priority_factors=priority_factors,
                                           hours_per_day=hours_per_day, tz=tz, disposal_clock=disposal_clock,
                                           citizen_channels=citizen_channels)
    if not len(cases):
        return {"facts": None, "rates": rates}
    f, before, reported_at = kpis._facts(cases, events, period, as_of, cal)
    return {"facts": f, "before": before, "reported_at": reported_at, "rates": rates}


def report(ps: PeriodSums, *, tz: str, targets: dict, weights: Optional[dict] = None,
           group_by: Optional[str] = None, names: Optional[dict] = None) -> kpis.KpiReport:
    return kpis.report_from_sums(ps.total(), ps.by(group_by) if group_by else None, ps.rates, ps.period, ps.as_of,
                                 tz=tz, targets=targets, weights=weights, group_by=group_by, names=names,
                                 min_volume=kpis.MIN_RANKING_VOLUME, assist=ps.assist)


# --------------------------------------------------------------------------- 主办 / 协办

def assist_sums(s: Session, period: kpis.Period, as_of: datetime) -> dict[str, dict[str, int]]:
    """:data:`kpis.ASSIST_SUMS` per assisting department, by SQL over ``case_assignments`` (one row
    per part; the fact table stays one row per case): :func:`incidents.kpis.assist_sums` of the
    parts as they were at ``as_of`` — a part's reply and end are fixed once set, so the row with
    them masked after ``as_of`` is the part then, and nothing needs a replay."""
    A = CaseAssignment
    lo, hi, as_of = period.start, period.end, kpis._utc(as_of)
    replied = and_(A.replied_at.is_not(None), A.replied_at <= as_of)
    ended_early = and_(A.ended_at.is_not(None), A.ended_at <= as_of, ~replied, A.ended_at < A.reply_due)
    on_time = and_(A.replied_at.is_not(None), A.replied_at <= A.reply_due)
    rows = s.execute(select(A.department_code, func.count(), func.sum(case((on_time, 1), else_=0)))
                     .where(A.reply_due >= lo, A.reply_due < hi, A.reply_due <= as_of, A.dispatched_at <= as_of,
                            ~ended_early)
                     .group_by(A.department_code)).all()
    return {str(d): {"assist_due": int(n), "assist_on_time": int(k or 0)} for d, n, k in rows}


def load_assist_events(s: Session, as_of: datetime):
    """The events of :data:`kpis.ASSIST_EVENTS` up to ``as_of`` with their payloads, of the cases
    that ever had an assisting part: the reference's input (:func:`incidents.kpis.assist_parts`)."""
    import pandas as pd
    assisted = select(CaseAssignment.incident_id).distinct()
    rows = s.execute(select(E.incident_id, E.id, E.at, E.action, E.payload)
                     .where(E.incident_id.in_(assisted), E.action.in_(kpis.ASSIST_EVENTS),
                            E.at <= kpis._utc(as_of))).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["incident_id", "id", "at", "action", "payload"])


# --------------------------------------------------------------------------- the cases behind each number

_COHORT_SQL = {"reported": "reported_in", "registered_event": "registered_in", "registered": "reg_cohort",
               "dispatched": "disp_cohort", "signable": "disp_signable"}
_NUMERATOR_SQL = {"closed": "closed", "closed_on_time": "closed_on_time", "resolved_on_time": "on_time_final",
                  "reworked": "reworked", "never_returned_or_reassigned": "accurate", "extended": "extended",
                  "resolved": "resolved_final", "signed_on_time": "signed_on_time", "contacted": "contacted",
                  "solved": "solved_final", "revisited": "revisited"}
#: the 回访 cohorts and numerators of the drill: the cases with such a visit in the period (their events say)
_VISIT_FLAGS = {"revisited_event": None, "reached_event": kpis.REVISIT_REACHED,
                "satisfied_event": kpis.REVISIT_SATISFIED, "redo_event": (kpis.REVISIT_REDO,)}


def case_flags(s: Session, period: kpis.Period, as_of: datetime, results: dict[str, kpis.KpiResult], *,
               replayed=None, citizen_channels=DEFAULT_CITIZEN_CHANNELS):
    """One row per case behind any of ``results`` (case KPIs), an int8 column per KPI: 2 counted in
    the numerator (for counts: counted), 1 in the denominator only, 0 not behind it — the
    settled rows by SQL (one scan of the period's fact rows, and the events of the few cases dispatched or
    closed more than once),
    the cases changed after ``as_of`` by the reference (:func:`incidents.kpis.case_flags` over
    ``replayed``, the facts frame of :func:`PeriodSums`)."""
    import numpy as np
    import pandas as pd
    lo, hi, as_of = period.start, period.end, kpis._utc(as_of)
    c, p = as_of_conditions(as_of), period_conditions(lo, hi, as_of)
    names = {**{k: p[v] for k, v in _COHORT_SQL.items()}, "open_overdue": c["overdue"],
             **{v: c[v] for v in set(_NUMERATOR_SQL.values())},
             "dispatched_event": _first_or_last(F.dispatches, F.first_dispatched_at, F.last_dispatched_at, lo, hi, as_of),
             "closed_event": _first_or_last(F.closures, F.first_closed_at, F.last_closed_at, lo, hi, as_of),
             "returned_event": false(), **dict.fromkeys(_VISIT_FLAGS, false())}
    cit = F.channel.in_(tuple(citizen_channels))
    names.update({"citizen_dispatched": and_(p["disp_cohort"], cit),
                  "citizen_resolved": and_(p["disp_cohort"], cit, c["resolved_final"]),
                  "citizen_closed": and_(_within(F.first_closed_at, lo, hi, as_of), c["live"], cit)})
    cols = list(names)
    rows = s.execute(select(F.incident_id, *[case((v, 1), else_=0) for v in names.values()])
                     .where(settled(as_of, s.get_bind().dialect.name),
                            or_(*[_within(m, lo, hi, as_of) for m in _MILESTONES], *overdue_candidates(as_of)))).all()
    frame = pd.DataFrame(np.array([r[1:] for r in rows], dtype=bool).reshape(len(rows), len(cols)), columns=cols,
                         index=pd.Index([r[0] for r in rows], dtype="int64", name="id"))
    # the cases dispatched or closed more than twice: their events in the period say
    repeated = _repeated(s, as_of, lo, hi, [period])
    frame = frame.reindex(frame.index.union(pd.Index(sorted({r[4] for r in repeated}), dtype="int64")),
                          fill_value=False)
    for actions, cohort in ((DISPATCH_EVENTS, "dispatched_event"), (("verify_pass",), "closed_event")):
        frame.loc[sorted({r[4] for r in repeated if r[2] in actions}), cohort] = True
    # the cases returned in the period (退单数): their return events say
    returned = sorted({int(r[3]) for r in _returns(s, as_of, lo, hi, [period])})
    frame = frame.reindex(frame.index.union(pd.Index(returned, dtype="int64")), fill_value=False)
    frame.loc[returned, "returned_event"] = True
    # the cases revisited in the period (市民满意率, 发回重办率): their 回访 events say
    visits = _revisits(s, as_of, lo, hi, [period])
    frame = frame.reindex(frame.index.union(pd.Index(sorted({int(r[3]) for r in visits}), dtype="int64")),
                          fill_value=False)
    for name, results_of in _VISIT_FLAGS.items():
        frame.loc[sorted({int(r[3]) for r in visits if results_of is None or r[4] in results_of}), name] = True
    out = {}
    for code, res in results.items():
        cohort = frame[res.drill["cohort"]].to_numpy()
        num = res.drill.get("numerator")
        inner = cohort & frame[_NUMERATOR_SQL.get(num, num)].to_numpy() if num else cohort
        out[code] = np.where(inner, 2, np.where(cohort, 1, 0)).astype("int8")
    flags = pd.DataFrame(out, index=frame.index, columns=list(results))
    if replayed is not None and len(replayed):
        ref = kpis.case_flags(replayed, results).replace({"": 0, "D": 1, "N": 2}).astype("int8")
        flags = pd.concat([flags, ref[list(results)]])
    return flags[(flags != 0).any(axis=1)].sort_index() if len(flags) else flags


def _first_or_last(count, first, last, lo: datetime, hi: datetime, as_of: datetime):
    """A case dispatched (closed) once or twice has such an event in ``[lo, hi)`` by ``as_of`` iff
    its first or its last one is there."""
    return or_(and_(count == 1, _within(first, lo, hi, as_of)),
               and_(count == 2, or_(_within(first, lo, hi, as_of), _within(last, lo, hi, as_of))))


def replayed_facts(s: Session, period: kpis.Period, as_of: datetime, *, cal, priority_factors: dict,
                   hours_per_day: float, tz: str, disposal_clock: str = "dispatch",
                   citizen_channels=DEFAULT_CITIZEN_CHANNELS):
    """The reference facts frame of the cases changed after ``as_of`` (None when there are none)."""
    return _replay(s, period, kpis._utc(as_of), cal=cal, priority_factors=priority_factors,
                   hours_per_day=hours_per_day, tz=tz, disposal_clock=disposal_clock,
                   citizen_channels=citizen_channels)["facts"]


# --------------------------------------------------------------------------- the reference frames

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
    return type_coerce(col, String).label(col.key)


_IDS_METADATA = None


def _relevant_ids_table(s: Session, relevant):
    """A per-connection temporary table ``kpi_relevant_ids`` filled from ``relevant``."""
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


def _kpi_relevant(start: datetime, end: datetime, as_of: datetime):
    """Ids of the cases a period can need, reported by ``as_of``: the cohorts need only cases
    with an event in ``[start, end)`` up to ``as_of`` (reported, registered, dispatched or closed
    in it); 超期未处置数 needs every case open at ``as_of``: those open now and those changed
    after ``as_of`` (``updated_at`` is the time of a case's last write, never before its last
    event). Nothing else: not a case settled before the start, nor one reported after the end
    and settled before ``as_of``.

    A UNION of three id sets, each on an index, not one WHERE with ``OR id IN (…)``: PostgreSQL
    cannot hash a subplan that large inside an OR and re-runs it per row (minutes at 1M cases)."""
    open_now = select(Incident.id.label("id")).where(Incident.reported_at <= as_of, Incident.state.in_(OPEN_STATES))
    touched = (select(IncidentEvent.incident_id.label("id"))
               .where(IncidentEvent.at >= start, IncidentEvent.at < end, IncidentEvent.at <= as_of))
    changed_later = select(Incident.id.label("id")).where(Incident.reported_at <= as_of, Incident.updated_at > as_of)
    ids = union(open_now, touched, changed_later).subquery("kpi_relevant")
    return select(ids.c.id)


def load_kpi_frames(s: Session, start: datetime, end: datetime, as_of: datetime, *,
                    priority_factors: dict[str, float], hours_per_day: float, tz: str,
                    disposal_clock: str = "dispatch", citizen_channels=DEFAULT_CITIZEN_CHANNELS):
    """(cases, events, service_rates) frames for :func:`incidents.kpis.kpi_report`, fetched with SQL
    filters and only the columns the formulas read."""
    # the ids once into a temporary table: the cases, the events and the extensions join it
    ids = _relevant_ids_table(s, _kpi_relevant(start, end, as_of))
    frames = _kpi_frames(s, select(ids.c.id), start, end, priority_factors=priority_factors,
                         hours_per_day=hours_per_day, tz=tz, disposal_clock=disposal_clock,
                         citizen_channels=citizen_channels)
    ids.drop(s.connection())      # (on an error the rollback takes it away)
    return frames


def _kpi_frames(s: Session, relevant, start: datetime, end: datetime, *, priority_factors: dict[str, float],
                hours_per_day: float, tz: str, disposal_clock: str = "dispatch",
                citizen_channels=DEFAULT_CITIZEN_CHANNELS):
    import pandas as pd

    cases = _frame(s, select(Incident.id, _raw(Incident.reported_at), Incident.district_code, Incident.department_code,
                             Incident.state, _raw(Incident.deadline), Incident.on_time, Incident.priority,
                             Category.time_limit, Category.time_unit, _raw(Incident.first_sign_due), Incident.channel,
                             _raw(Incident.source_deadline))
                   .outerjoin(Category, Category.code == Incident.category_code)
                   .where(Incident.id.in_(relevant)),
                   ["id", "reported_at", "district_code", "department_code", "state", "deadline", "on_time",
                    "priority", "time_limit", "time_unit", "first_sign_due", "channel", "source_deadline"],
                   ("reported_at", "deadline", "first_sign_due", "source_deadline"))
    cases["citizen"] = cases["channel"].isin(tuple(citizen_channels)).astype(bool)
    if len(cases):
        cases["id"] = cases["id"].astype("int64")
        per_day = cases["time_unit"].eq(TimeUnit.WORK_DAYS.value).map({True: hours_per_day, False: 1.0})
        factor = cases["priority"].map(lambda p: float(priority_factors.get(p, 1.0)))
        cases["base_hours"] = cases["time_limit"].astype(float) * per_day.astype(float) * factor.astype(float)
        cases["natural"] = cases["time_unit"].eq(TimeUnit.NATURAL_HOURS.value)
    else:
        cases["base_hours"], cases["natural"] = pd.Series(dtype=float), pd.Series(dtype=bool)
    cases["from_sign"] = disposal_clock == "sign"       # (the pack's rule: the 处置 clock starts at the 签收)
    events = _frame(s, select(IncidentEvent.incident_id, IncidentEvent.id, _raw(IncidentEvent.at), IncidentEvent.action,
                              IncidentEvent.from_state, IncidentEvent.to_state, IncidentEvent.department_code)
                    .where(IncidentEvent.incident_id.in_(relevant),
                           IncidentEvent.action.not_in(KPI_SKIPPED_ACTIONS)),
                    ["incident_id", "id", "at", "action", "from_state", "to_state", "department_code"], ("at",))
    if len(events):
        events["incident_id"] = events["incident_id"].astype("int64")
        events["id"] = events["id"].astype("int64")
    # extend hours, what an approval approved (kpis: an approve event counts as its ``kind``), a
    # resolve's outcome and a 回访's result
    # (``action || ''``: the cases' own events from the (incident_id, id) index — given the action,
    # SQLite walked every event of those actions, 1.3 s at a million cases, for a handful of cases)
    payloads = dict(s.execute(select(IncidentEvent.id, IncidentEvent.payload)
                              .where(IncidentEvent.action.concat("").in_(("extend", kpis.APPROVE, "resolve",
                                                                           kpis.REVISIT)),
                                     IncidentEvent.incident_id.in_(relevant))).all())
    hours = {i: float((p or {}).get("hours") or 0.0) for i, p in payloads.items()}
    for name in ("kind", "outcome", "result"):
        values = {i: (p or {}).get(name) for i, p in payloads.items()}
        events[name] = events["id"].map(values) if len(events) else pd.Series(dtype=object)
    events["hours"] = events["id"].map(hours).astype(float) if len(events) else pd.Series(dtype=float)

    first, last = kpis.service_days(kpis.Period(start, end), tz)
    rate_cols = [getattr(ServiceRate, c) for c in kpis.SERVICE_RATE_COLUMNS]
    # column-wise, like the cases (a frame of ~10,000 Row objects for a quarter cost 0.1–0.2 s)
    rates = _frame(s, select(*rate_cols).where(ServiceRate.day >= first, ServiceRate.day < last),
                   list(kpis.SERVICE_RATE_COLUMNS))
    rates["day"] = pd.to_datetime(rates["day"]).dt.date
    for col in kpis.SERVICE_RATE_COLUMNS[2:]:
        rates[col] = pd.to_numeric(rates[col])
    return cases, events, rates


# --------------------------------------------------------------------------- 重复诉求率

def repeat_rate(s: Session, period: kpis.Period, as_of: datetime, *, targets: Optional[dict] = None) -> kpis.KpiResult:
    """重复诉求率 (:data:`incidents.kpis.DEFINITIONS`), one SQL aggregate over the cases: reported in
    the period by ``as_of`` (the ``reported_at`` index), linked as a repeat by ``as_of`` (the first
    link's time, ``repeat_linked_at``, fixed once set). :func:`incidents.kpis.repeat_rate` is the
    reference over the timeline; the tests hold them equal."""
    hi = min(period.end, kpis._utc(as_of))
    linked = and_(Incident.repeat_linked_at.is_not(None), Incident.repeat_linked_at <= as_of)
    row = s.execute(select(func.count(), func.coalesce(func.sum(case((linked, 1), else_=0)), 0))
                    .where(Incident.reported_at >= period.start, Incident.reported_at < period.end,
                           Incident.reported_at <= hi)).one()
    return kpis._result("repeat_rate", int(row[1]), int(row[0]), targets=targets or {},
                        drill=kpis._drill(period, as_of, "reported", numerator="repeat"))

