"""The case events partitioned by month on PostgreSQL (migration 0005, data_sources.store.partitions),
and the idempotency keys of actions in their own table (event_requests) on both backends."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from alembic import command
from sqlalchemy import func, inspect, select, text

from data_sources.runtime import get_runtime
from data_sources.store import migrate, partitions
from data_sources.store.db import get_db, unbounded
from incidents import facts, services
from incidents.model import Role
from incidents.services import Actor
from incidents.tables import EventRequest, Incident, IncidentEvent
from tests.integration.test_api import INSPECTOR, client_for, make_case


def _partition_of(server, event_id: int) -> str:
    with get_db(server).engine.connect() as conn:
        return conn.scalar(text("SELECT tableoid::regclass::text FROM incident_events WHERE id = :i"), {"i": event_id})


def _last_event(server, cid: int) -> IncidentEvent:
    with get_db(server).session_scope() as s:
        event = s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == cid)
                          .order_by(IncidentEvent.id.desc())).first()
        s.expunge(event)
        return event


def _act(server, cid: int, actor: Actor, action: str, at: datetime, **kw) -> IncidentEvent:
    with get_db(server).session_scope() as s:
        services.perform(s, get_runtime(server).rules, actor, cid, action, version=s.get(Incident, cid).version,
                         now=at, **kw)
    return _last_event(server, cid)


def _supervise(server, cid: int, at: datetime, request_id: str) -> IncidentEvent:
    """A 督办 (no state change) at ``at`` with an idempotency key."""
    return _act(server, cid, Actor("boss", Role.LEADER), "supervise", at, level=1, request_id=request_id)


def _events_and_keys(server) -> tuple[list, list]:
    with get_db(server).engine.connect() as conn:
        events = conn.execute(text("SELECT id, incident_id, at, actor, action, from_state, to_state, "
                                   "department_code, note, request_id FROM incident_events ORDER BY id")).all()
        keys = conn.execute(text("SELECT request_id, incident_id, event_id FROM event_requests "
                                 "ORDER BY request_id")).all()
    return events, keys


def test_on_postgresql_the_events_table_is_partitioned_by_month_with_a_default(server, backend):
    with get_db(server).engine.connect() as conn:
        if backend == "sqlite":
            assert not partitions.is_partitioned(conn)
            return
        strategy = conn.scalar(text("SELECT partstrat FROM pg_partitioned_table "
                                    "WHERE partrelid = 'incident_events'::regclass"))
        children = conn.scalars(text("SELECT inhrelid::regclass::text FROM pg_inherits "
                                     "WHERE inhparent = 'incident_events'::regclass")).all()
        sequence = conn.scalar(text("SELECT pg_get_serial_sequence('incident_events', 'id')"))
    assert strategy == "r"
    this = partitions.month_of(datetime.now(timezone.utc))
    for ahead in range(partitions.MONTHS_AHEAD + 1):
        assert partitions.partition_name(partitions.add_months(this, ahead)) in children
    assert partitions.DEFAULT in children
    assert sequence == "public.incident_events_id_seq"


def test_an_event_lands_in_its_month_and_a_far_future_one_in_default_until_its_month_is_made(server, backend):
    if backend == "sqlite":
        pytest.skip("PostgreSQL partitions the events; SQLite keeps one table")
    cid = make_case(server, "registered", ext="P-1")
    now_event = _last_event(server, cid)
    assert _partition_of(server, now_event.id) == partitions.partition_name(partitions.month_of(now_event.at))
    far = datetime.now(timezone.utc) + timedelta(days=3 * 366)
    far_event = _supervise(server, cid, far, "far-1")
    assert _partition_of(server, far_event.id) == partitions.DEFAULT
    with get_db(server).engine.begin() as conn:
        made = partitions.ensure_ahead(conn, datetime.now(timezone.utc))
    month = partitions.partition_name(partitions.month_of(far))
    assert month in made
    assert _partition_of(server, far_event.id) == month           # moved out of DEFAULT
    with get_db(server).session_scope() as s:                       # read by id, as before
        assert s.get(IncidentEvent, far_event.id).request_id == "far-1"
        assert s.get(EventRequest, "far-1").event_id == far_event.id


def test_a_request_id_is_kept_in_event_requests_and_a_retry_is_applied_once(server):
    cid = make_case(server, "reported", ext="K-1")
    other = make_case(server, "reported", ext="K-2")
    cl = client_for(server, "disp", "dispatcher")
    body = {"action": "register", "version": 1, "request_id": "key-1"}
    answers = [cl.post(f"/api/v1/incidents/{cid}/actions", json=body) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200] and answers[1].get_json()["version"] == 2
    reused = cl.post(f"/api/v1/incidents/{other}/actions", json=body)
    assert reused.status_code == 422 and f"case {cid}" in reused.get_json()["error"]["message"]
    with get_db(server).session_scope() as s:
        events = s.scalars(select(IncidentEvent).where(IncidentEvent.request_id == "key-1")).all()
        key = s.get(EventRequest, "key-1")
        assert [e.action for e in events] == ["register"]
        assert (key.incident_id, key.event_id) == (cid, events[0].id)
        assert s.get(Incident, other).version == 1


def test_upgrading_from_0004_keeps_every_event_key_and_fact(server, backend):
    old_month = datetime.now(timezone.utc) - timedelta(days=120)
    cids = [make_case(server, "in_progress", ext="M-1", at=old_month), make_case(server, "in_progress", ext="M-2")]
    _supervise(server, cids[0], old_month + timedelta(hours=1), "mig-0")
    _supervise(server, cids[1], datetime.now(timezone.utc), "mig-1")
    before = _events_and_keys(server)
    assert len(before[1]) == 2
    engine = get_db(server).engine
    with engine.begin() as conn, unbounded(conn):
        command.downgrade(migrate.alembic_config(conn), "0004")
    with engine.connect() as conn:
        assert not partitions.is_partitioned(conn)
        assert conn.scalar(text("SELECT count(*) FROM incident_events")) == len(before[0])
        assert ["request_id"] in [u["column_names"] for u in inspect(conn).get_unique_constraints("incident_events")]
        assert "event_requests" not in inspect(conn).get_table_names()
    migrate.upgrade(engine)
    assert _events_and_keys(server) == before
    with engine.connect() as conn:
        assert partitions.is_partitioned(conn) is (backend == "postgresql")
        if backend == "postgresql":   # the months from the oldest event's on
            assert partitions.partition_name(partitions.month_of(old_month)) in [m.name for m in partitions.months(conn)]
    with get_db(server).session_scope() as s:
        assert facts.differences(s)[0] == 0
    before_ids = [e.id for e in before[0]]
    assert _supervise(server, cids[1], datetime.now(timezone.utc), "mig-1").id == max(before_ids)  # a retry
    assert _supervise(server, cids[1], datetime.now(timezone.utc), "mig-2").id == max(before_ids) + 1


def test_prune_drops_a_month_with_only_closed_cases_and_keeps_one_with_an_open_case(server, backend):
    runner = server.test_cli_runner()
    if backend == "sqlite":
        result = runner.invoke(args=["events", "prune", "--before", "2025-01-01"])
        assert result.exit_code != 0 and "PostgreSQL only" in result.output
        return
    closed = make_case(server, "resolved", ext="OLD-1", at=datetime(2025, 1, 10, 2, tzinfo=timezone.utc))
    _supervise(server, closed, datetime(2025, 1, 20, 2, tzinfo=timezone.utc), "old-key")
    _act(server, closed, INSPECTOR, "verify_pass", datetime(2025, 1, 21, 2, tzinfo=timezone.utc))
    still_open = make_case(server, "in_progress", ext="OLD-2", at=datetime(2025, 2, 10, 2, tzinfo=timezone.utc))
    assert runner.invoke(args=["events", "ensure"]).exit_code == 0   # the old months out of DEFAULT
    jan, feb = (partitions.partition_name(date(2025, m, 1)) for m in (1, 2))

    dry = runner.invoke(args=["events", "prune", "--before", "2025-03-01", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"{jan} 2025-01: 7 events, would drop" in dry.output
    assert f"{feb} 2025-02: 4 events, kept: events of 1 open case(s)" in dry.output
    assert "months dropped: 0, events dropped: 0, months kept for open cases: 1" in dry.output

    done = runner.invoke(args=["events", "prune", "--before", "2025-03-01"])
    assert done.exit_code == 0, done.output
    assert f"{jan} 2025-01: 7 events, dropped" in done.output
    assert "months dropped: 1, events dropped: 7, months kept for open cases: 1" in done.output
    with get_db(server).session_scope() as s:
        left = dict(s.execute(select(IncidentEvent.incident_id, func.count()).group_by(IncidentEvent.incident_id)).all())
        assert closed not in left and left[still_open] == 4
        assert s.get(EventRequest, "old-key") is None
    with get_db(server).engine.connect() as conn:
        assert jan not in [m.name for m in partitions.months(conn)]
