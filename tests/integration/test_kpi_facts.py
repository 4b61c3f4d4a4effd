"""The fast KPI path (SQL over the per-case fact rows, incidents.queries.kpi_facts) equals the
reference (incidents.kpis over every case's events), case by case: on demo history, at the
present and at earlier instants (the cases changed since are replayed), for random legal action
sequences (hypothesis), and the fact rows themselves equal what the case rows say."""
from __future__ import annotations

import itertools
import math
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_sources.feeds import simulator
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import facts, kpis, lifecycle, rollups, services
from incidents.model import REVISING_ACTIONS, Action, Role, State
from incidents.queries import kpi_facts
from incidents.services import Actor
from tests.conftest import BACKENDS, shared_app

UTC = timezone.utc
CITY = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


def with_clock(rt, clock: str):
    """``rt`` (a PackRuntime) with its pack's 处置 clock rule ([workflow] disposal_clock) switched to
    ``clock``: what the services, the reference and the fast path below read of it."""
    from dataclasses import replace
    from types import SimpleNamespace
    return SimpleNamespace(pack=rt.pack, calendar=rt.calendar, rules=replace(rt.rules, disposal_clock=clock))


def _reference_frames(s, rt, as_of):
    """Every case and event up to ``as_of`` as the reference reads them, and the assisting events."""
    kw = dict(priority_factors=rt.pack.priority_factors, hours_per_day=rt.calendar.hours_per_day, tz=rt.pack.timezone,
              disposal_clock=rt.rules.disposal_clock)
    return (*kpi_facts.load_kpi_frames(s, ORIGIN, as_of, as_of, **kw), kpi_facts.load_assist_events(s, as_of))


def _reference_report(rt, frames, period, as_of, group_by=None):
    cases, events, rates, assist_events = frames
    return kpis.kpi_report(cases, events, rates, period, as_of, tz=rt.pack.timezone, cal=rt.calendar,
                           targets=rt.pack.kpi_targets, group_by=group_by, assist_events=assist_events)


def _reference(s, rt, period, as_of, group_by=None):
    frames = _reference_frames(s, rt, as_of)
    cases, events, rates, _ = frames
    f, before, reported_at = kpis._facts(cases, events, period, as_of, rt.calendar)
    return _reference_report(rt, frames, period, as_of, group_by), f, before, reported_at, rates


def _fast(s, rt, period, as_of, group_by=None, buckets=None):
    """The fast path; the total alone (``group_by`` None) as the brief's comparisons take it: without
    departments and districts."""
    ps = kpi_facts.period_sums(s, period, as_of, cal=rt.calendar, priority_factors=rt.pack.priority_factors,
                               hours_per_day=rt.calendar.hours_per_day, tz=rt.pack.timezone, buckets=buckets,
                               grouped=group_by is not None or buckets is not None,
                               disposal_clock=rt.rules.disposal_clock)
    return ps, kpi_facts.report(ps, tz=rt.pack.timezone, targets=rt.pack.kpi_targets, group_by=group_by)


def _same(got: dict, want: dict, where: str) -> None:
    for code in (*kpis.CASE_KPIS, *(c for c in kpis.ASSIST_KPIS if c in want)):
        g, w = got[code], want[code]
        assert g.denominator == w.denominator, (where, code)
        assert math.isclose(g.numerator, w.numerator, rel_tol=1e-9, abs_tol=1e-6), (where, code, g.numerator, w.numerator)


def _check(s, rt, period, as_of):
    frames = _reference_frames(s, rt, as_of)     # read once: the three reports below are over the same rows
    for group_by in (None, "department", "district"):
        want = _reference_report(rt, frames, period, as_of, group_by)
        got = _fast(s, rt, period, as_of, group_by)[1]
        _same(got.kpis, want.kpis, f"{period} at {as_of}")
        if group_by:
            # the reference over every case also lists the groups of cases nothing in the period
            # counts (all zero); the fast path lists the groups with something to count
            assert set(got.groups) <= set(want.groups)
            for code, results in want.groups.items():
                if code in got.groups:
                    _same(got.groups[code], results, f"{group_by} {code}")
                else:
                    assert all(not results[c].numerator and not results[c].denominator for c in kpis.CASE_KPIS), code
            assert [(r.code, r.score, r.rank) for r in got.ranking.ranked] == \
                [(r.code, r.score, r.rank) for r in want.ranking.ranked]


def _seed_demo(app):
    server = app.server
    with server.app_context(), get_db(server).session_scope() as s:
        simulator.seed_history(s, simulator.build(server), NOW, 5)
    return app


@pytest.fixture
def demo(app):
    """Five days of simulated city history (the demo feed's generator) up to NOW, for a test that
    changes it (a migration, a repair, an action)."""
    return _seed_demo(app)


@pytest.fixture(scope="module", params=BACKENDS)
def demo_history(request, tmp_path_factory):
    """The same history built once per backend, for the tests that only read it."""
    with shared_app(request.param, tmp_path_factory, "kpi_demo") as app:
        yield _seed_demo(app)


def test_the_fact_rows_are_what_the_case_rows_say(demo_history):
    with demo_history.server.app_context(), get_db(demo_history.server).session_scope() as s:
        n, ids = facts.differences(s)
        assert (n, ids) == (0, [])
        count = s.scalar(kpi_facts.select(kpi_facts.func.count()).select_from(kpi_facts.F))
        assert count > 1000


@pytest.mark.parametrize("days_back,length_days,offset_hours", [
    (0, 1, 0),          # today, seen now
    (7, 7, 0),          # the last week, seen now
    (3, 2, -30),        # two days seen 30 hours ago: the cases changed since are replayed
    (5, 5, -60),        # the whole history seen 2.5 days ago
])
def test_the_fast_path_equals_the_reference_on_demo_history(demo_history, days_back, length_days, offset_hours):
    rt = get_runtime(demo_history.server)
    start = (NOW - timedelta(days=days_back)).replace(hour=0, minute=0)
    period = kpis.Period(start, start + timedelta(days=length_days))
    as_of = NOW + timedelta(hours=offset_hours)
    with demo_history.server.app_context(), get_db(demo_history.server).session_scope() as s:
        _check(s, rt, period, as_of)
        if offset_hours:   # the replay path really ran
            ps, _ = _fast(s, rt, period, as_of)
            assert ps.replayed is not None and len(ps.replayed) > 0


def test_only_the_cases_revised_after_as_of_are_replayed(demo_history):
    """A case that only went forward after ``as_of`` (registered, dispatched, signed, resolved,
    closed) is read from its fact row with the later milestones masked; only the cases with a
    revising action after ``as_of`` (a return, extension, rework …) are replayed."""
    rt = get_runtime(demo_history.server)
    as_of = NOW - timedelta(hours=40)
    period = kpis.Period(NOW - timedelta(days=5), NOW)
    revising = {a.value for a in (*REVISING_ACTIONS, Action.APPROVE)}
    with demo_history.server.app_context(), get_db(demo_history.server).session_scope() as s:
        E, I = services.IncidentEvent, services.Incident
        later = s.execute(kpi_facts.select(E.incident_id, E.action, E.to_state).join(I, I.id == E.incident_id)
                          .where(E.at > as_of, I.reported_at <= as_of)).all()
        # (a 回访 that sent the case back — 不满意, 重办 — revises it too)
        revised = {cid for cid, action, to in later
                   if action in revising or (action == Action.REVISIT and to != State.CLOSED)}
        forward_only = {cid for cid, _, _ in later} - revised
        replayed = kpi_facts.replayed_facts(s, period, as_of, cal=rt.calendar,
                                            priority_factors=rt.pack.priority_factors,
                                            hours_per_day=rt.calendar.hours_per_day, tz=rt.pack.timezone)
        _check(s, rt, period, as_of)
    assert revised and len(forward_only) > 5 * len(revised)     # the demo moves most cases forward only
    assert set(replayed.index) == revised


def test_series_and_case_flags_equal_the_reference(demo_history):
    rt = get_runtime(demo_history.server)
    period = kpis.Period(NOW - timedelta(days=6), NOW + timedelta(days=1))
    as_of = NOW - timedelta(hours=20)
    buckets = kpis.period_buckets(period, rt.pack.timezone)
    with demo_history.server.app_context(), get_db(demo_history.server).session_scope() as s:
        report, f, before, reported_at, rates = _reference(s, rt, period, as_of)
        want_series = kpis.kpi_series(f, before, reported_at, rates, buckets, as_of, tz=rt.pack.timezone)
        want_flags = kpis.case_flags(f, {c: report.kpis[c] for c in kpis.CASE_KPIS})
        ps, got = _fast(s, rt, period, as_of, buckets=buckets)
        got_series = kpis.series_from_sums(ps.buckets, ps.rates, buckets, as_of, tz=rt.pack.timezone)
        got_flags = kpi_facts.case_flags(s, period, as_of, {c: got.kpis[c] for c in kpis.CASE_KPIS},
                                         replayed=ps.replayed)
    for code, values in want_series.items():
        assert got_series[code] == pytest.approx(values, nan_ok=True), code
    labels = {0: "", 1: "D", 2: "N"}
    assert sorted(got_flags.index) == sorted(want_flags.index)
    assert (got_flags.loc[want_flags.index].apply(lambda c: c.map(labels)) == want_flags).all().all()


# --------------------------------------------------------------------------- any legal action sequence

ROLE_OF = {Action.REGISTER: Role.DISPATCHER, Action.VOID: Role.DISPATCHER, Action.DISPATCH: Role.DISPATCHER,
           Action.REASSIGN: Role.DISPATCHER, Action.MERGE: Role.DISPATCHER, Action.REOPEN: Role.DISPATCHER,
           Action.EXTEND: Role.DISPATCHER, Action.SUSPEND: Role.DISPATCHER, Action.RESUME: Role.DISPATCHER,
           Action.SIGN: Role.DEPARTMENT, Action.RETURN: Role.DEPARTMENT, Action.RESOLVE: Role.DEPARTMENT,
           Action.VERIFY_PASS: Role.INSPECTOR, Action.VERIFY_FAIL: Role.INSPECTOR, Action.SUPERVISE: Role.LEADER,
           Action.ARBITRATE: Role.DISPATCHER, Action.CONTACT: Role.DEPARTMENT, Action.REVISIT: Role.DISPATCHER}
DEPTS = ("330106-CGJ", "330105-CGJ")
#: the actions that end a case or change nothing are drawn less often, so that sequences go far
RARE = {Action.SUPERVISE: 0.1, Action.VOID: 0.1, Action.MERGE: 0.1}
_RUNS = itertools.count()   # hypothesis replays an example: each run its own external ids


def _play(s, rt, rng: random.Random, n_cases: int, steps: int, t0: datetime, tag: str) -> datetime:
    """``n_cases`` new cases and ``steps`` random legal actions on them at increasing times."""
    t = t0
    ids = []
    for i in range(n_cases):
        # citizen cases (12345, app: 先行联系, 实际解决, 回访) and one that is not (grid)
        case = services.create_case(s, rt.rules, source="hyp", external_id=f"{tag}-{i}",
                                    channel=("12345", "app", "grid")[i % 3],
                                    title="占道经营", reported_at=t, now=t, category_code="C0101",
                                    lon=120.13 + rng.random() / 50, lat=30.27 + rng.random() / 50)
        ids.append(case.id)
    for _ in range(steps):
        t += timedelta(minutes=rng.choice((7, 45, 190, 600, 1500)))
        cid = rng.choice(ids)
        case = s.get(services.Incident, cid)
        allowed = [a for a in lifecycle.allowed_actions(State(case.state)) if a in ROLE_OF]
        if not allowed:
            continue
        action = rng.choices(allowed, weights=[RARE.get(a, 1.0) for a in allowed])[0]
        dept = case.department_code or rng.choice(DEPTS)
        params = {}
        if action in (Action.DISPATCH, Action.REASSIGN, Action.ARBITRATE):
            params["department"] = rng.choice([d for d in DEPTS if d != case.department_code])
            if action == Action.ARBITRATE:
                params["note"] = "审定：由该部门办理"
        elif action == Action.RETURN:
            params["reason"] = rng.choice(sorted(rt.rules.return_reasons))
        elif action in (Action.VOID, Action.SUSPEND):
            params["reason"] = "invalid"
        elif action == Action.EXTEND:
            params["hours"] = rng.choice((2.0, 8.0))
        elif action == Action.RESOLVE:
            params["outcome"] = rng.choice((None, "solved", "explained"))
        elif action == Action.REVISIT:
            params["result"] = rng.choice(("satisfied", "basic", "unsatisfied", "unreachable"))
            params["note"] = "市民反映仍未解决"
        elif action == Action.MERGE:
            others = [i for i in ids if i != cid]
            if not others:
                continue
            params["duplicate_of"] = others[0]
        actor = Actor("u", ROLE_OF[action], dept if ROLE_OF[action] == Role.DEPARTMENT else None)
        try:
            services.act(s, rt.rules, actor, cid, action, version=case.version, now=t, **params)
        except lifecycle.DomainError:
            continue
    return t


@pytest.mark.parametrize("clock", ["dispatch", "sign"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), steps=st.integers(10, 120), cut=st.floats(0.0, 1.2),
       begin=st.floats(0.0, 1.0), span=st.sampled_from((6, 24, 72, 240, 2400)))
def test_any_legal_action_sequence_gives_the_reference_numbers_at_any_as_of(app, clock, seed, steps, cut, begin,
                                                                           span):
    """… under either rule of the pack for where the 处置 clock starts (the dispatch, or the 签收)."""
    rt = with_clock(get_runtime(app.server), clock)
    rng = random.Random(seed)
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC) + timedelta(days=seed % 40)
    # each example alone on the empty database, rolled back after: examples stay independent (a
    # failure shrinks and replays on its own cases), and the reference reads 6 cases, not the
    # cases of every earlier example as well
    with app.server.app_context(), get_db(app.server).sessions() as s:
        try:
            end = _play(s, rt, rng, 6, steps, t0, f"h{next(_RUNS)}")
            assert facts.differences(s) == (0, [])
            assert rollups.differences(s) == 0
            as_of = t0 + (end - t0) * cut + timedelta(seconds=1)
            start = t0 + (end - t0) * begin * begin - timedelta(hours=1)    # early periods more often
            if span >= 24:    # whole city-time days: the cases frozen before as_of's week come from their rollups
                start = start.astimezone(CITY).replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
            _check(s, rt, kpis.Period(start, start + timedelta(hours=span)), as_of)
        finally:
            s.rollback()


# --------------------------------------------------------------------------- backfill and rebuild

def test_the_migration_and_init_db_backfill_the_facts_of_an_older_database(demo):
    """A database from before the fact table (0003) gets every fact row and milestone back, from
    the events, by ``init-db``: the numbers are those of before."""
    from data_sources.seed import init_db
    from data_sources.store import migrate
    rt = get_runtime(demo.server)
    period, as_of = kpis.Period(NOW - timedelta(days=4), NOW), NOW
    with demo.server.app_context(), get_db(demo.server).session_scope() as s:
        before = _fast(s, rt, period, as_of, "department")[1]
        revised = dict(s.execute(kpi_facts.select(services.Incident.id, services.Incident.revised_at)).all())
    assert sum(v is not None for v in revised.values()) > 10       # the transitions kept it
    engine = get_db(demo.server).engine
    from alembic import command
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0003")
    init_db(demo.server, echo=lambda *_: None, seed_demo=False)
    with demo.server.app_context(), get_db(demo.server).session_scope() as s:
        assert facts.differences(s) == (0, [])
        # migration 0007 finds the last revising action of each case in its events
        assert dict(s.execute(kpi_facts.select(services.Incident.id, services.Incident.revised_at)).all()) == revised
        after = _fast(s, rt, period, as_of, "department")[1]
        _check(s, rt, period, as_of)
    _same(after.kpis, before.kpis, "after the backfill")
    assert {c: after.groups[c]["mean_handling_hours"].numerator for c in after.groups} == \
        pytest.approx({c: before.groups[c]["mean_handling_hours"].numerator for c in before.groups})


def test_facts_rebuild_reports_and_repairs_what_differs(demo):
    from sqlalchemy import text
    engine = get_db(demo.server).engine
    with engine.begin() as conn:
        victims = [r[0] for r in conn.execute(text("SELECT incident_id FROM case_facts WHERE state = 'closed' "
                                                   "ORDER BY incident_id LIMIT 2"))]
        conn.execute(text("UPDATE case_facts SET state = 'dispatched' WHERE incident_id = :i"), {"i": victims[0]})
        conn.execute(text("DELETE FROM case_facts WHERE incident_id = :i"), {"i": victims[1]})
        conn.execute(text("UPDATE incidents SET handling_hours = 999 WHERE id = :i"), {"i": victims[0]})
        # a rollup row of the frozen cases tampered with, beside the two cases' (now without their facts)
        conn.execute(text("UPDATE case_rollups SET closed = closed + 3 WHERE milestone = 'registered' AND week = "
                          "(SELECT MIN(week) FROM case_rollups)"))
    runner = demo.server.test_cli_runner()
    checked = runner.invoke(args=["facts", "rebuild", "--check"])
    assert checked.exit_code == 1
    assert "fact rows that differ from their cases: 2" in checked.output
    tampered = int(checked.output.split("rollup rows of the frozen cases that differ from their fact rows: ")[1].split()[0])
    assert tampered >= 3
    assert f"{victims[0]}, {victims[1]}" in checked.output
    done = runner.invoke(args=["facts", "rebuild"])
    assert done.exit_code == 0, done.output
    assert "recomputed from the events: 1" in done.output
    assert "differing now: 0" in done.output
    assert "rollup rows differing now: 0" in done.output
    with demo.server.app_context(), get_db(demo.server).session_scope() as s:
        assert facts.differences(s) == (0, [])
        assert s.get(services.Incident, victims[0]).handling_hours != 999
    assert runner.invoke(args=["facts", "rebuild", "--check"]).exit_code == 0


# --------------------------------------------------------------------------- one number, one path

def test_the_wall_and_the_brief_show_the_same_numbers_for_the_same_labels(demo):
    """超期未处置 and today's counts and rates: the wall's tiles are the brief's KPIs of today at the
    wall's instant — a suspended case that was overdue when suspended counts on both."""
    from incidents.queries import brief as qb
    from incidents.queries import wall as queries_wall
    rt = get_runtime(demo.server)
    tz = rt.pack.timezone
    with demo.server.app_context(), get_db(demo.server).session_scope() as s:
        late = s.scalars(kpi_facts.select(services.Incident).where(services.Incident.state == "dispatched",
                                                                   services.Incident.deadline < NOW)
                         .limit(1)).one()
        services.act(s, rt.rules, Actor("x", Role.DISPATCHER), late.id, "suspend", version=late.version,
                     now=NOW - timedelta(minutes=1), reason="weather")
    with demo.server.test_request_context():
        wall = queries_wall.wall_data(NOW, tz, every=5)
        today = qb.preset_period("today", NOW, tz)
        k = qb.kpi_report(today.start, today.end, wall.as_of).kpis
        district = next(iter(wall.by_area))
        west = queries_wall.wall_data(NOW, tz, every=5, district=district)
        kd = qb.kpi_report(today.start, today.end, wall.as_of, group_by="district").groups[district]
    assert wall.overdue == k["overdue_open_count"].numerator > wall.lights["red"]   # the held one counts
    assert wall.today == {key: k[code].numerator for key, code in queries_wall.TODAY_COUNTS.items()}
    assert (wall.closure.numerator, wall.closure.denominator) == \
        (k["closure_rate"].numerator, k["closure_rate"].denominator)
    assert (wall.on_time.numerator, wall.on_time.denominator) == \
        (k["on_time_disposal_rate"].numerator, k["on_time_disposal_rate"].denominator)
    assert west.overdue == kd["overdue_open_count"].numerator
    assert west.today["reported"] == kd["reported_count"].numerator


def test_the_read_models_read_through_the_read_database(tmp_path):
    """With CITYOPS_READ_DATABASE_URL set, the brief and the KPIs are read there (a replica): a
    case written to the primary after the copy is not in them until the replica has it."""
    import shutil
    from tests.conftest import build_app
    from incidents.queries import brief as qb
    primary, replica = tmp_path / "primary.db", tmp_path / "replica.db"
    app = build_app(f"sqlite:///{primary}")
    rt = get_runtime(app.server)
    with app.server.app_context(), get_db(app.server).session_scope() as s:
        _play(s, rt, random.Random(1), 5, 30, NOW - timedelta(days=2), "r1")
    get_db(app.server).dispose()
    shutil.copy(primary, replica)
    app = build_app(f"sqlite:///{primary}", READ_DATABASE_URL=f"sqlite:///{replica}")
    rt = get_runtime(app.server)
    with app.server.app_context(), get_db(app.server).session_scope() as s:
        _play(s, rt, random.Random(2), 3, 0, NOW - timedelta(hours=5), "r2")     # three more, primary only
    period = kpis.Period(NOW - timedelta(days=3), NOW)
    with app.server.test_request_context():
        seen = qb.kpi_report(period.start, period.end, NOW).kpis["reported_count"].numerator
        with get_db(app.server).session_scope() as s:
            on_primary = _fast(s, rt, period, NOW)[1].kpis["reported_count"].numerator
    assert (seen, on_primary) == (5, 8)
    get_db(app.server).dispose()
