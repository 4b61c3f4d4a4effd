"""The demo history's bulk path writes what the services would: a sample of its cases replayed
through services.create_case and services.perform (the live demo feed's path) in another database
gives the same case rows, events and planned steps; every case has its fact row; progress is
reported with growing counts."""
from __future__ import annotations

import io
import time

from sqlalchemy import select

from data_sources.feeds import simulator
from data_sources.seed import ConsoleProgress
from data_sources.store.db import get_db
from incidents import facts, services
from incidents.tables import DemoStep, Incident, IncidentEvent
from tests.integration.helpers import NOW

DAYS = 2
EVENT_COLUMNS = ("at", "actor", "action", "from_state", "to_state", "department_code", "note", "payload")


def _seed(server, **kw):
    with server.app_context():
        sim = simulator.build(server)
    with get_db(server).session_scope() as s:
        return sim, simulator.seed_history(s, sim, NOW, DAYS, **kw)


def _replay(server, sim, planned):
    """The planned cases through the services, step by step as the live feed applies them."""
    with get_db(server).session_scope() as s:
        for pc in planned:
            case = services.create_case(s, sim.rules, source=simulator.SOURCE, external_id=pc.external_id,
                                        channel=pc.channel.value, title=pc.title, reported_at=pc.reported_at,
                                        now=pc.reported_at, category_code=pc.category.code,
                                        description=pc.description, address=pc.address, lon=pc.lon, lat=pc.lat,
                                        priority=pc.priority.value, reporter_name=pc.reporter_name,
                                        reporter_phone=pc.reporter_phone)
            for step in pc.steps:
                if step.at > NOW:
                    s.add_all([DemoStep(incident_id=case.id, due_at=st.at, action=st.action.value,
                                        payload={"role": st.role.value, **st.params})
                               for st in pc.steps[pc.steps.index(step):]])
                    break
                services.perform(s, sim.rules, simulator.Simulator.actor(step.role, case.department_code),
                                 case.id, step.action, version=case.version, now=step.at, **simulator._params(step))
            s.flush()


def _cases(server, external_ids):
    """Per external id: the case row (without its id), its events and its planned steps."""
    out = {}
    with get_db(server).session_scope() as s:
        for case in s.scalars(select(Incident).where(Incident.external_id.in_(external_ids))):
            row = {c.key: getattr(case, c.key) for c in Incident.__table__.columns if c.key != "id"}
            events = [tuple(getattr(e, c) for c in EVENT_COLUMNS) for e in s.scalars(
                select(IncidentEvent).where(IncidentEvent.incident_id == case.id).order_by(IncidentEvent.id))]
            steps = [(d.due_at, d.action, d.payload) for d in s.scalars(
                select(DemoStep).where(DemoStep.incident_id == case.id).order_by(DemoStep.id))]
            out[case.external_id] = (row, events, steps)
    return out


def test_the_history_is_what_the_services_would_write(server, tmp_path):
    sim, out = _seed(server)
    first, last = simulator.plan_history(sim, NOW, DAYS)
    planned = [pc for slot in range(first, last, 23) for pc in sim.arrivals(slot)]
    assert len(planned) > 50
    from tests.conftest import build_app
    reference = build_app(f"sqlite:///{tmp_path / 'reference.db'}").server
    _replay(reference, sim, planned)
    ids = [pc.external_id for pc in planned]
    got, want = _cases(server, ids), _cases(reference, ids)
    assert set(got) == set(want) == set(ids)
    for external_id in ids:
        assert got[external_id] == want[external_id], external_id
    # the sample has open cases with planned steps, reworked, returned and closed ones
    assert any(steps for _, _, steps in got.values())
    assert {"closed", "in_progress"} <= {row["state"] for row, _, _ in got.values()}
    with get_db(server).session_scope() as s:
        assert facts.differences(s) == (0, [])
        assert max(s.scalars(select(Incident.updated_at))) <= NOW


def test_progress_is_reported_with_growing_counts(server):
    seen, stages = [], []

    def progress(p):
        stages.append(p.stage)
        if p.stage == "cases":
            seen.append((p.slots, p.cases, p.events, p.fraction))

    _, out = _seed(server, batch=500, progress=progress)
    assert stages[-1] == "indexes" and set(stages[:-1]) == {"cases"}
    assert len(seen) > 3
    assert [s for s, *_ in seen] == sorted({s for s, *_ in seen})          # strictly increasing
    assert [c for _, c, _, _ in seen] == sorted(c for _, c, _, _ in seen) and seen[0][1] > 0
    assert seen[-1][1:3] == (out["cases"], out["events"]) and seen[-1][3] == 1.0


def test_the_console_progress_line_says_counts_rate_and_time_left():
    stream = io.StringIO()
    progress = ConsoleProgress(stream)
    started = time.monotonic() - 10
    for slots in (25, 50, 100):
        progress(simulator.HistoryProgress(slots, 100, slots * 40, slots * 220, 0, started))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("demo history  25%")
    assert "1,000 cases, 5,500 events" in lines[0] and "cases/s" in lines[0] and "ETA 30s" in lines[0]
    assert lines[-1].startswith("demo history 100%") and "ETA 0s" in lines[-1]
    progress(simulator.HistoryProgress(100, 100, 4000, 22000, 0, started, stage="indexes"))
    assert stream.getvalue().splitlines()[-1] == "demo history: building the indexes of 4,000 cases and 22,000 events …"


def test_the_bulk_load_gives_the_tables_their_indexes_back(server):
    from sqlalchemy import inspect
    tables = ("incidents", "incident_events", "case_facts", "demo_steps")

    def indexes():
        engine = get_db(server).engine
        return {t: sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspect(engine).get_indexes(t))
                for t in tables}

    before = indexes()
    assert len(before["incidents"]) >= 10
    _seed(server)
    assert indexes() == before


def test_forked_processes_draft_the_same_history_as_one_process(tmp_path):
    """A long history is drafted by forked processes, each from its own days, and written here in
    order: the same case rows (ids included), events, planned steps and rollups as one process."""
    from sqlalchemy import text
    from incidents import rollups
    from tests.conftest import build_app
    forked, alone = (build_app(f"sqlite:///{tmp_path / name}").server for name in ("forked.db", "alone.db"))
    with forked.app_context():
        sim = simulator.build(forked)
    dumps = []
    for app_server, processes in ((forked, 2), (alone, 0)):
        with get_db(app_server).session_scope() as s:
            out = simulator.seed_history(s, sim, NOW, DAYS, batch=300, processes=processes)
        with get_db(app_server).session_scope() as s:
            assert rollups.differences(s) == 0
            dumps.append((out, *[s.execute(text(q)).all() for q in (
                "SELECT * FROM incidents ORDER BY id", "SELECT * FROM incident_events ORDER BY id",
                "SELECT incident_id, due_at, action, payload FROM demo_steps ORDER BY id",
                "SELECT * FROM case_rollups ORDER BY week, kind, unit, milestone, day, day2")]))
    assert dumps[0][0]["cases"] > 600 and len(dumps[0][4]) > 0
    assert dumps[0] == dumps[1]
