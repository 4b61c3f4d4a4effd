"""The citizen's 进度查询 (public, no login): one case's progress for whoever gives its number and the
last four digits of the phone given at report (``permissions.may_query_progress``).

What a citizen sees — and only this, whoever is asking: the case number, the category, the district
(never the address, the grid, the point on a map), the state, the department in charge, and the
dates it was reported, dispatched, resolved and closed. Never the title or description (a caller's
words often name people and places), the reporter, photos, notes or the people who acted on it.
A wrong number and wrong digits give the same ``None``: the page must not tell which was wrong.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import select

from data_sources.store.db import read_scope
from incidents.model import State
from incidents.permissions import may_query_progress
from incidents.tables import Area, Category, Department, Incident

#: a case number is a positive integer of at most this many digits (bounded before the database)
MAX_CASE_DIGITS = 12

# the milestones a citizen is shown in each state: a reopened or returned case keeps its old
# timestamps, which must not show as if the case had been resolved or dispatched in its current round
_DISPATCHED = frozenset({State.DISPATCHED, State.IN_PROGRESS, State.RESOLVED, State.CLOSED, State.SUSPENDED})
_RESOLVED = frozenset({State.RESOLVED, State.CLOSED})


def case_progress(case_number: int, digits: str) -> Optional[dict]:
    """The public progress of case ``case_number`` when ``digits`` are the last four of its reporter's
    phone, else None (unknown case, wrong digits, no phone on record: the same None)."""
    if not 0 < case_number < 10 ** MAX_CASE_DIGITS:
        return None
    with read_scope() as s:
        c = s.execute(select(Incident.id, Incident.state, Incident.reporter_phone, Incident.department_code,
                             Incident.category_code, Incident.district_code, Incident.reported_at,
                             Incident.dispatched_at, Incident.resolved_at, Incident.closed_at)
                      .where(Incident.id == case_number)).one_or_none()
        if c is None or not may_query_progress(c.reporter_phone, digits):
            return None
        state = State(c.state)
        department = (s.scalar(select(Department.name).where(Department.code == c.department_code))
                      if c.department_code and state in _DISPATCHED else None)
        category = s.scalar(select(Category.name).where(Category.code == c.category_code)) if c.category_code else None
        district = s.scalar(select(Area.name).where(Area.code == c.district_code)) if c.district_code else None
    return {"case": c.id, "state": state.value, "category": category, "district": district,
            "department": department, "reported_at": c.reported_at,
            "dispatched_at": c.dispatched_at if state in _DISPATCHED else None,
            "resolved_at": c.resolved_at if state in _RESOLVED else None,
            "closed_at": c.closed_at if state == State.CLOSED else None}

