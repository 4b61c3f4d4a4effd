"""Optimistic locking under real concurrency (DESIGN §3): many threads, one case, each with its
own session. For every version exactly one action wins, the others get StaleVersion naming the
winner; the event log has one event per version; a request id races into one application.
Runs on SQLite (WAL) and on PostgreSQL when CITYOPS_TEST_DATABASE_URL is set."""
from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import services
from incidents.lifecycle import DomainError, StaleVersion
from incidents.model import Role, State
from incidents.services import Actor
from incidents.tables import Incident, IncidentEvent
from tests.integration.helpers import NOW

THREADS = 8
ROUNDS = 10  # three or four of each: supervise (leader), extend (dispatcher), reassign (dispatcher)
DISPATCHER = Actor("disp", Role.DISPATCHER)
WEST_LAKE = (120.1480, 30.2560)
OTHER_DEPARTMENTS = ("HZ-CGJ", "HZ-JTJ")


def _dispatched_case(server, external_id: str) -> int:
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        case = services.create_case(s, rules, source="test", external_id=external_id, channel="12345",
                                    title="并发测试", reported_at=NOW, now=NOW, category_code="E0101",
                                    lon=WEST_LAKE[0], lat=WEST_LAKE[1])
        case = services.perform(s, rules, DISPATCHER, case.id, "register", version=1, now=NOW)
        case = services.perform(s, rules, DISPATCHER, case.id, "dispatch", version=2, now=NOW)
        assert case.state == State.DISPATCHED
        return case.id


def _race(n: int, attempt) -> list:
    """Run ``attempt(i)`` in ``n`` threads released together; return each result or exception."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = attempt(i)
        except BaseException as exc:  # collected and asserted on below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _round_action(r: int, i: int, department: str) -> tuple[Actor, str, dict]:
    kind = r % 3
    if kind == 0:
        return Actor(f"leader-{i}", Role.LEADER), "supervise", {"level": i + 1}
    if kind == 1:
        return Actor(f"disp-{i}", Role.DISPATCHER), "extend", {"hours": float(i + 1)}
    target = next(d for d in OTHER_DEPARTMENTS + ("HZ-ZJJ",) if d != department)
    return Actor(f"disp-{i}", Role.DISPATCHER), "reassign", {"department": target}


def test_concurrent_actions_on_one_case_apply_exactly_one_per_version(server):
    rules = get_runtime(server).rules
    db = get_db(server)
    cid = _dispatched_case(server, "RACE-1")
    with db.read_scope() as s:
        start_version = services.data_version(s)
    winners: list[tuple[str, str, dict]] = []
    for r in range(ROUNDS):
        with db.session_scope() as s:
            seen = s.get(Incident, cid)
            version, department = seen.version, seen.department_code
        at = NOW + timedelta(minutes=r + 1)

        def attempt(i: int):
            actor, action, params = _round_action(r, i, department)
            with db.session_scope() as s:
                services.perform(s, rules, actor, cid, action, version=version, now=at, **params)
            return actor.username, action, params

        results = _race(THREADS, attempt)
        won = [x for x in results if isinstance(x, tuple)]
        lost = [x for x in results if not isinstance(x, tuple)]
        assert len(won) == 1, f"round {r}: {results!r}"
        assert all(isinstance(x, StaleVersion) for x in lost), f"round {r}: {lost!r}"
        winner = won[0][0]
        assert {x.changed_by for x in lost} == {winner}, f"round {r}: losers name {[str(x) for x in lost]}"
        assert len(lost) == THREADS - 1
        winners.append(won[0])

    with db.session_scope() as s:
        case = s.get(Incident, cid)
        events = s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == cid)
                           .order_by(IncidentEvent.id)).all()
        # one event per version: report (v1), register (v2), dispatch (v3), then one per round
        assert case.version == len(events) == 3 + ROUNDS
        assert [e.action for e in events] == ["report", "register", "dispatch"] + [a for _, a, _ in winners]
        assert [e.actor for e in events[3:]] == [u for u, _, _ in winners]
        extends = [p["hours"] for _, a, p in winners if a == "extend"]
        assert case.extension_count == len(extends) == 3
        # reassign restarts the clock (extension hours back to 0): count those since the last one
        last_reassign = max(k for k, (_, a, _) in enumerate(winners) if a == "reassign")
        assert case.extension_hours == sum(p["hours"] for _, a, p in winners[last_reassign:] if a == "extend")
        assert [e.payload["hours"] for e in events if e.action == "extend"] == extends
        assert case.reassign_count == sum(1 for _, a, _ in winners if a == "reassign") == 3
        last_supervise = [p["level"] for _, a, p in winners if a == "supervise"][-1]
        assert case.supervise_level == last_supervise
        assert case.state == State.DISPATCHED and case.updated_by == winners[-1][0]
        # the data version moved once per applied action, never for a refused one
        assert services.data_version(s) == start_version + ROUNDS


def test_a_request_id_raced_by_concurrent_retries_is_applied_once(server):
    rules = get_runtime(server).rules
    db = get_db(server)
    cid = _dispatched_case(server, "RACE-2")
    with db.session_scope() as s:
        version = s.get(Incident, cid).version

    def attempt(i: int):
        with db.session_scope() as s:
            case = services.perform(s, rules, DISPATCHER, cid, "extend", version=version, now=NOW,
                                    hours=2.0, request_id="req-race-1")
            return case.version

    results = _race(THREADS, attempt)
    # every retry gets the idempotent answer (the case as the first application left it), whether it
    # arrived after the first commit or raced it; none is refused as stale, none applied twice
    assert results == [version + 1] * THREADS, results
    with db.session_scope() as s:
        case = s.get(Incident, cid)
        applied = s.scalars(select(IncidentEvent).where(IncidentEvent.request_id == "req-race-1")).all()
        assert len(applied) == 1 and applied[0].incident_id == cid
        assert case.version == version + 1 and case.extension_count == 1 and case.extension_hours == 2.0


def test_one_request_id_raced_on_two_cases_is_applied_to_one_and_refused_clearly_on_the_other(server):
    rules = get_runtime(server).rules
    db = get_db(server)
    cids = [_dispatched_case(server, f"RACE-3-{i}") for i in range(2)]

    def attempt(i: int):
        cid = cids[i % 2]
        with db.session_scope() as s:
            services.perform(s, rules, Actor(f"disp-{i}", Role.DISPATCHER), cid, "extend", version=3,
                             now=NOW, hours=1.0, request_id="req-race-2")
            return cid

    results = _race(4, attempt)
    ok = [x for x in results if isinstance(x, int)]
    refused = [x for x in results if not isinstance(x, int)]
    assert all(isinstance(x, DomainError) for x in refused), refused  # never a raw database error
    with db.session_scope() as s:
        applied = s.scalars(select(IncidentEvent).where(IncidentEvent.request_id == "req-race-2")).all()
        assert len(applied) == 1
        winner = applied[0].incident_id
        assert set(ok) == {winner}
        loser = next(c for c in cids if c != winner)
        assert s.get(Incident, winner).extension_count == 1 and s.get(Incident, winner).version == 4
        assert s.get(Incident, loser).extension_count == 0 and s.get(Incident, loser).version == 3
        assert any(str(winner) in str(x) for x in refused)
