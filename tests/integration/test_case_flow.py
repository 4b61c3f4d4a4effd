"""A case through its lifecycle via the services, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import services
from incidents.lifecycle import PermissionDenied, StaleVersion, TransitionError
from incidents.model import Role, State
from incidents.services import Actor
from incidents.tables import Incident, IncidentEvent
from tests.integration.helpers import NOW

DISPATCHER = Actor("disp", Role.DISPATCHER)
INSPECTOR = Actor("insp", Role.INSPECTOR)
WEST_LAKE = (120.1480, 30.2560)  # WGS84, inside 西湖区


def _new_case(s, rules, external_id="T-1", category="E0101", at=NOW):
    return services.create_case(s, rules, source="test", external_id=external_id, channel="12345",
                                title="测试案件", reported_at=at, now=at, category_code=category,
                                lon=WEST_LAKE[0], lat=WEST_LAKE[1])


def test_a_case_goes_from_report_to_closure_with_a_full_timeline(server):
    rules = get_runtime(server).rules
    db = get_db(server)
    with db.session_scope() as s:
        case = _new_case(s, rules)
        cid = case.id
        assert (case.district_code, case.state) == ("330106", State.REPORTED)
        assert case.grid_code and case.grid_code.startswith("330106")
    t = NOW
    with db.session_scope() as s:
        case = services.perform(s, rules, DISPATCHER, cid, "register", version=1, now=t)
        case = services.perform(s, rules, DISPATCHER, cid, "dispatch", version=case.version,
                                now=t + timedelta(minutes=5))
        dept = case.department_code
        assert case.state == State.DISPATCHED and dept
        assert case.deadline > case.warn_at > case.dispatched_at
        dept_actor = Actor("dept", Role.DEPARTMENT, dept)
        case = services.perform(s, rules, dept_actor, cid, "sign", version=case.version,
                                now=t + timedelta(minutes=30))
        case = services.perform(s, rules, dept_actor, cid, "resolve", version=case.version,
                                now=t + timedelta(hours=1), note="已清理")
        assert case.on_time is True
        case = services.perform(s, rules, INSPECTOR, cid, "verify_pass", version=case.version,
                                now=t + timedelta(hours=2))
        assert case.state == State.CLOSED and case.closed_at is not None
    with db.session_scope() as s:
        events = s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == cid)
                           .order_by(IncidentEvent.id)).all()
        assert [e.action for e in events] == ["report", "register", "dispatch", "sign", "resolve", "verify_pass"]
        assert [e.to_state for e in events][-1] == "closed"
        assert "规则" in events[2].payload["routing"]  # the routing reason is kept with the dispatch
        assert s.get(Incident, cid).version == 6


def test_a_stale_version_is_refused_with_who_and_when(server):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        cid = _new_case(s, rules).id
        services.perform(s, rules, DISPATCHER, cid, "register", version=1, now=NOW)
    with get_db(server).session_scope() as s:
        with pytest.raises(StaleVersion) as err:
            services.perform(s, rules, Actor("other", Role.DISPATCHER), cid, "void", version=1, now=NOW,
                             reason="invalid")
        assert "disp" in str(err.value)


def test_a_retried_request_is_applied_once(server):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        cid = _new_case(s, rules).id
    for _ in range(2):
        with get_db(server).session_scope() as s:
            services.perform(s, rules, DISPATCHER, cid, "register", version=1, now=NOW, request_id="req-42")
    with get_db(server).session_scope() as s:
        n = s.scalar(select(func.count()).select_from(IncidentEvent).where(IncidentEvent.incident_id == cid))
        assert n == 2 and s.get(Incident, cid).version == 2


def test_a_department_user_cannot_act_on_another_departments_case(server):
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        case = _new_case(s, rules)
        case = services.perform(s, rules, DISPATCHER, case.id, "register", version=1, now=NOW)
        case = services.perform(s, rules, DISPATCHER, case.id, "dispatch", version=2, now=NOW)
        cid, version, dept = case.id, case.version, case.department_code
    with get_db(server).session_scope() as s:
        with pytest.raises(PermissionDenied):
            services.perform(s, rules, Actor("x", Role.DEPARTMENT, "HZ-JTJ" if dept != "HZ-JTJ" else "HZ-CGJ"),
                             cid, "sign", version=version, now=NOW)
        with pytest.raises(TransitionError):
            services.perform(s, rules, INSPECTOR, cid, "verify_pass", version=version, now=NOW)


def test_an_unknown_category_is_routed_to_triage_with_a_reason(server):
    rules = get_runtime(server).rules
    s = rules.router.route("NOPE", "330106", None)
    assert s.department_code == get_runtime(server).pack.triage_department
    assert "NOPE" in s.reason


def test_near_duplicates_are_open_cases_of_the_same_category_within_radius_and_window(server):
    rules = get_runtime(server).rules
    lon, lat = WEST_LAKE
    with get_db(server).session_scope() as s:
        def add(ext, dlat_m, category="E0101", hours=0.0):
            return services.create_case(s, rules, source="test", external_id=ext, channel="12345", title=ext,
                                        reported_at=NOW + timedelta(hours=hours), now=NOW, category_code=category,
                                        lon=lon, lat=lat + dlat_m / 111_195)
        from incidents.tables import Category
        cat = s.get(Category, "E0101")
        base = add("base", 0)
        near = add("near", cat.dup_radius_m * 0.5)
        add("far", cat.dup_radius_m * 3)
        add("other-category", 1, category="E0102")
        add("too-late", 1, hours=cat.dup_window_h + 1)
        closed = add("closed", 1)
        closed.state = State.CLOSED
        s.flush()
        found = services.near_duplicates(s, base)
    assert [c.external_id for c, _ in found] == ["near"]
    assert found[0][1] == pytest.approx(cat.dup_radius_m * 0.5, rel=0.01)
