"""The demo feed: deterministic history with yellow and red cases, and a live tick through the services."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from data_sources.feeds import simulator
from data_sources.store.db import get_db
from incidents.queries import wall as queries_wall
from incidents.model import Channel
from incidents.tables import DemoStep, Incident, IncidentEvent
from tests.integration.helpers import NOW


def _seed(server, days=2, seed=7):
    with server.app_context():
        sim = simulator.build(server)
    sim.seed = seed
    with get_db(server).session_scope() as s:
        return sim, simulator.seed_history(s, sim, NOW, days)


def test_history_is_deterministic_and_realistic(server, tmp_path):
    sim, out = _seed(server)
    assert out["cases"] > 1000 and out["events"] > 3 * out["cases"]
    with get_db(server).session_scope() as s:
        states = dict(s.execute(select(Incident.state, func.count()).group_by(Incident.state)).all())
        channels = dict(s.execute(select(Incident.channel, func.count()).group_by(Incident.channel)).all())
        unlocated = s.scalar(select(func.count()).select_from(Incident).where(Incident.district_code.is_(None)))
        first_ids = s.scalars(select(Incident.external_id).order_by(Incident.id).limit(20)).all()
    assert states["closed"] > states.get("in_progress", 0) > 0 and states.get("voided", 0) > 0
    assert set(channels) == {c.value for c in Channel}
    assert unlocated < out["cases"] * 0.02  # every demo point falls inside the city
    with server.app_context(), get_db(server).read_scope() as s:
        lights = queries_wall.lights_of_running_cases(s, NOW)
    assert lights["red"] > 0 and lights["yellow"] > 0 and lights["green"] > lights["red"]
    # the same seed gives the same cases
    from tests.conftest import build_app
    other = build_app(f"sqlite:///{tmp_path / 'again.db'}")
    _, again = _seed(other.server)
    assert again == out
    with get_db(other.server).session_scope() as s:
        assert s.scalars(select(Incident.external_id).order_by(Incident.id).limit(20)).all() == first_ids


def test_a_live_tick_adds_cases_and_moves_planned_ones_through_the_services(server):
    sim, out = _seed(server, days=1)
    later = NOW + timedelta(minutes=30)
    with get_db(server).session_scope() as s:
        due = s.scalar(select(func.count()).select_from(DemoStep).where(DemoStep.due_at <= later))
        events_before = s.scalar(select(func.count()).select_from(IncidentEvent))
        result = simulator.tick(s, sim, later)
    assert result["created"] > 0 and result["applied"] + result["dropped"] >= min(due, 500) > 0
    with get_db(server).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(DemoStep).where(DemoStep.due_at <= later)) == 0
        assert s.scalar(select(func.count()).select_from(IncidentEvent)) >= events_before + result["applied"]
        # a second tick at the same moment creates nothing twice
        again = simulator.tick(s, sim, later)
    assert again["created"] == 0 and again["applied"] == 0


def test_the_wall_figures_match_the_table(server):
    _seed(server, days=1)
    with server.app_context(), server.test_request_context():
        snap = queries_wall.wall_data(NOW, "Asia/Shanghai")
    with get_db(server).session_scope() as s:
        total = s.scalar(select(func.count()).select_from(Incident))
        open_n = s.scalar(select(func.count()).select_from(Incident)
                          .where(Incident.state.not_in(["closed", "voided"])))
    assert total > open_n                                # closed cases exist, and the wall counts none
    assert sum(snap.by_state.values()) == open_n and set(snap.by_state) <= set(queries_wall.OPEN_STATES)
    assert sum(snap.by_area.values()) <= open_n and snap.open_total == open_n
    assert len(snap.points) == min(open_n, queries_wall.MAX_POINTS)
    assert len(snap.hourly) == 24 and sum(n for _, n in snap.hourly) > 0


def test_the_history_signs_for_a_few_per_cent_late_and_more_in_some_departments(server):
    """按时签收率 of the demo is not 100 %: a few per cent of first dispatches are signed for after
    their sign-for deadline, several times more for the slow-signing departments' classes — an
    independent count over the case rows."""
    import pandas as pd
    from incidents.tables import Category
    _seed(server)
    with get_db(server).session_scope() as s:
        rows = s.execute(select(Category.major_code, Incident.first_signed_at, Incident.first_sign_due)
                         .join(Category, Category.code == Incident.category_code)
                         .where(Incident.first_signed_at.is_not(None), Incident.first_sign_due.is_not(None))).all()
    f = pd.DataFrame(rows, columns=["major", "signed", "due"])
    f["late"] = f["signed"] > f["due"]
    f["slow"] = f["major"].map(simulator._slow_signer)
    assert len(f) > 1000
    assert 0.02 < f["late"].mean() < 0.12, f["late"].mean()
    share = f.groupby("slow")["late"].mean()
    assert share[True] > 1.8 * share[False] and 0.01 < share[False] < 0.06, share   # (returns sign late too)
