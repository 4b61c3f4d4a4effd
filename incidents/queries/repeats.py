"""Read model of 重复诉求 (repeat complaints): a case's candidate parents with their scores, its parent
and children (the case page, ``GET /api/v1/incidents/<id>/repeats``), and the alarm of a place that
complains again and again (the wall ticker, ``GET /api/v1/alerts``)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from incidents import permissions, services
from incidents.model import Action, State
from incidents.tables import Area, Category, Incident


def _row(c: Incident) -> dict:
    return {"id": c.id, "title": c.title, "state": c.state, "reported_at": c.reported_at,
            "category_code": c.category_code}


def repeats_view(s: Session, rules, case: Incident, *, role: str, department_code: Optional[str] = None) -> dict:
    """What the case page and the API show of a case's repeats: its candidate parents (each with the
    score and its parts, the weights that summed them and the category's reach), its parent, its
    children, whether the role may link (``link_repeat``) and whether it may close the children with
    the closed parent (``close_children``: the parent closed, open children left). A department user
    sees only its own department's cases among them (permissions.may_see_case), and no candidates:
    linking is the dispatcher's."""
    def visible(c: Incident) -> bool:
        return permissions.may_see_case(role, user_department=department_code, case_department=c.department_code)
    cat = s.get(Category, case.category_code) if case.category_code else None
    reach = rules.repeats.reach(case.category_code, cat.major_code if cat else None)
    parent = s.get(Incident, case.repeat_of) if case.repeat_of else None
    all_children = services.repeat_children(s, case.id)
    children = [c for c in all_children if visible(c)]
    scoped = permissions.case_scope(role, department_code) is not None
    # a parent is not suggested a parent of its own (it cannot become a repeat while it has repeats)
    candidates = [] if all_children or scoped else services.repeat_candidates(s, rules, case)
    link_event = None
    if parent is not None:
        from incidents.tables import IncidentEvent
        link_event = s.scalar(select(IncidentEvent).where(IncidentEvent.incident_id == case.id,
                                                          IncidentEvent.action == Action.LINK_REPEAT.value)
                              .order_by(IncidentEvent.id.desc()).limit(1))
    may_link = permissions.may(role, Action.LINK_REPEAT) and State(case.state) != State.VOIDED
    open_children = [c for c in all_children if State(c.state).is_open]
    return {
        "reach": {"radius_m": reach.radius_m, "window_h": reach.window_h},
        "weights": dict(rules.repeats.weights), "auto_link_score": rules.repeats.auto_link_score,
        "candidates": [{"id": c.id, "title": c.title, "state": c.state, "category_code": c.category_code,
                        "reported_at": c.reported_at, "score": c.score, "parts": c.parts,
                        "distance_m": c.distance_m, "hours": c.hours} for c in candidates],
        "parent": {**_row(parent), "auto": bool((link_event.payload or {}).get("auto")) if link_event else False,
                   "score": (link_event.payload or {}).get("score") if link_event else None,
                   "linked_by": link_event.actor if link_event else None,
                   "linked_at": link_event.at if link_event else None}
                  if parent is not None and visible(parent) else None,
        "children": [_row(c) for c in children],
        "may_link": may_link and not all_children,
        "may_close_children": (permissions.may(role, Action.MERGE) and State(case.state) == State.CLOSED
                               and bool(open_children)),
        "open_children": len(open_children),
    }


# --------------------------------------------------------------------------- the alarm

@dataclass(frozen=True)
class RepeatAlarm:
    """``count`` repeats (cases linked as repeats) at one grid × category within the pack's days: the
    place, the rule and the cases behind it (the children and their parents)."""

    grid_code: str
    grid: str
    category_code: str
    category: str
    count: int
    first_at: datetime
    last_at: datetime
    cases: tuple[int, ...]
    rule: str

    @property
    def key(self) -> str:
        # a new repeat makes a new alarm (the count is in the key): an acknowledged one comes back
        return f"repeat:{self.grid_code}:{self.category_code}:{self.count}"


def repeat_alarms(s: Session, now: datetime, rules, *, district: Optional[str] = None) -> list[RepeatAlarm]:
    """The places where ``alarm_count`` or more repeats were reported within ``alarm_days`` up to
    ``now`` (grid × category), most repeats first. Reads only the linked cases of those days (a
    partial index holds just them)."""
    r = rules.repeats
    since = now - timedelta(days=r.alarm_days)
    where = [Incident.district_code == district] if district else []
    rows = s.execute(select(Incident.id, Incident.grid_code, Incident.category_code, Incident.reported_at,
                            Incident.repeat_of)
                     .where(Incident.repeat_of.is_not(None), Incident.reported_at >= since,
                            Incident.reported_at <= now, Incident.grid_code.is_not(None), *where)).all()
    groups: dict[tuple[str, str], list] = {}
    for row in rows:
        groups.setdefault((row.grid_code, row.category_code), []).append(row)
    hot = {k: v for k, v in groups.items() if len(v) >= r.alarm_count}
    if not hot:
        return []
    grids = dict(s.execute(select(Area.code, Area.name).where(Area.code.in_({g for g, _ in hot}))).all())
    cats = dict(s.execute(select(Category.code, Category.name).where(Category.code.in_({c for _, c in hot}))).all())
    out = []
    for (grid, cat), items in hot.items():
        ids = sorted({i.repeat_of for i in items} | {i.id for i in items})
        out.append(RepeatAlarm(grid, grids.get(grid, grid), cat, cats.get(cat, cat), len(items),
                               min(i.reported_at for i in items), max(i.reported_at for i in items), tuple(ids),
                               f"同一网格同一类别 {r.alarm_days} 天内重复诉求 ≥ {r.alarm_count} 件"))
    out.sort(key=lambda a: (-a.count, -a.last_at.timestamp()))
    return out
