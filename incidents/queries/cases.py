"""Read model of the workbench (工作台): the queue (ready-made views, department scope, quick
search, the grid's column filters and sort, one page at a time, all in the database) and the
case panel (timeline, requests, suggestion, near duplicates, the actions the role may take)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, false, func, or_, select
from sqlalchemy.orm import Session, aliased

from data_sources.store.db import session_scope
from incidents import bounds, permissions
from incidents.lifecycle import DomainError
from incidents.model import DEFAULT_CITIZEN_CHANNELS, Action, Light, Priority, RequestStatus, RevisitResult, Role, State
from incidents.permissions import PERSONAL_DATA_ROLES, reporter_view
from incidents.queries._common import OPEN_STATES, RUNNING_STATES, current_version, light_expr
from incidents.tables import Area, CaseAssignment, CaseRequest, Category, Department, Incident, IncidentEvent, User


#: the timeline events of an assisting department's part (协办)
ASSIST_EVENT_NAMES = (Action.ASSIST_SIGN.value, Action.ASSIST_REPLY.value)

#: "my to-do" by role: what waits for this role's next action
TODO_STATES = {
    "dispatcher": [State.REPORTED.value, State.REGISTERED.value],
    "department": [State.DISPATCHED.value, State.IN_PROGRESS.value],
    "inspector": [State.RESOLVED.value],
}

#: the workbench's ready-made views (my_todo depends on the role, see :func:`view_conditions`)
QUEUE_VIEWS = ("my_todo", "pending_approval", "all_open", "pending_register", "pending_dispatch", "yellow", "red",
               "pending_verify", "pending_revisit", "supervised", "suspended")


#: the actions a ready-made view is for: a role sees a view when it may take one of them (my_todo and
#: all_open are every workbench role's); a department has no use for 待立案 or 待派遣
_RUNNING_WORK = frozenset({Action.SIGN, Action.RESOLVE, Action.REASSIGN, Action.EXTEND, Action.SUPERVISE})
VIEW_ACTIONS: dict[str, frozenset[Action]] = {
    "pending_approval": frozenset({Action.APPROVE}),
    "pending_register": frozenset({Action.REGISTER, Action.VOID}),
    "pending_dispatch": frozenset({Action.DISPATCH}),
    "yellow": _RUNNING_WORK, "red": _RUNNING_WORK,
    "pending_verify": frozenset({Action.VERIFY_PASS, Action.VERIFY_FAIL}),
    "pending_revisit": frozenset({Action.REVISIT}),
    "supervised": _RUNNING_WORK,
    "suspended": frozenset({Action.RESUME}),
}
#: the priorities that stand out in the queue (row colour, first in 我的待办)
ATTENTION_PRIORITIES = (Priority.URGENT.value, Priority.EMERGENCY.value)


def views_for(role: str | None) -> tuple[str, ...]:
    """The ready-made views ``role`` can act on, in the workbench's order."""
    try:
        mine = permissions.actions_for(role) if role else frozenset()
    except (DomainError, ValueError):   # an unknown role: only its to-do
        mine = frozenset()
    return tuple(v for v in QUEUE_VIEWS if v not in VIEW_ACTIONS or VIEW_ACTIONS[v] & mine)


def queue_version() -> int:
    """The data version: it moves with every write, and the queue reloads when it does."""
    return current_version()


def view_conditions(view: str, now: datetime, role: str | None = None,
                    citizen_channels=DEFAULT_CITIZEN_CHANNELS) -> list:
    """SQL conditions of one ready-made view (unknown view: nothing, not everything)."""
    lt = light_expr(now)
    waiting = Incident.id.in_(select(CaseRequest.incident_id).where(CaseRequest.status == RequestStatus.PENDING.value))
    if view == "my_todo":
        if role == "leader":
            return [Incident.state.in_(OPEN_STATES), Incident.supervise_level > 0]
        todo = Incident.state.in_(TODO_STATES.get(role or "", OPEN_STATES))
        # a dispatcher's to-do includes the departments' requests waiting for a decision
        return [or_(todo, waiting) if role == "dispatcher" else todo]
    return {
        "all_open": [Incident.state.in_(OPEN_STATES)],
        "pending_register": [Incident.state == State.REPORTED.value],
        "pending_dispatch": [Incident.state == State.REGISTERED.value],
        "yellow": [Incident.state.in_(RUNNING_STATES), lt == Light.YELLOW.value],
        "red": [Incident.state.in_(RUNNING_STATES), lt == Light.RED.value],
        "pending_verify": [Incident.state == State.RESOLVED.value],
        # 待回访: closed citizen cases whose closure no 回访 reached yet (lifecycle.revisit_refusal)
        "pending_revisit": [Incident.state == State.CLOSED.value, Incident.channel.in_(tuple(citizen_channels)),
                            or_(Incident.revisit_result.is_(None),
                                Incident.revisit_result == RevisitResult.UNREACHABLE.value)],
        "supervised": [Incident.state.in_(OPEN_STATES), Incident.supervise_level > 0],
        "suspended": [Incident.state == State.SUSPENDED.value],
        # 待审批: cases with a department's request waiting for a dispatcher
        "pending_approval": [waiting],
    }.get(view, [false()])


def scope_conditions(role: str | None, department_code: str | None) -> list:
    """The cases a user sees (``permissions.case_scope``, the rule's one home) as SQL conditions; a
    department also sees the cases it assists on now (协办, a live part: permissions.may_see_assisted)."""
    if not role:
        return []
    scope = permissions.case_scope(role, department_code)
    if scope is None:
        return []
    if scope == permissions.NO_CASES:
        return [false()]
    return [or_(Incident.department_code == scope, Incident.id.in_(assisted_by(scope)))]


def assisted_by(department_code: str, *, open_only: bool = False):
    """The ids of the cases ``department_code`` assists on now (a live part; ``open_only``: not yet
    replied — its 协办 to-do)."""
    conds = [CaseAssignment.department_code == department_code, CaseAssignment.ended_at.is_(None)]
    if open_only:
        conds.append(CaseAssignment.replied_at.is_(None))
    return select(CaseAssignment.incident_id).where(*conds)


def part_row(p: CaseAssignment, now: datetime, calendar=None, names: dict | None = None) -> dict:
    """One assisting part (协办) as the screens and the API show it, with its own light
    (sla.assist_light: sign-for, then reply deadline; None once replied)."""
    light = None
    if calendar is not None:
        from incidents.sla import assist_light
        lit = assist_light(p.dispatched_at, p.sign_due, p.signed_at, p.reply_due, p.replied_at, now, calendar)
        light = lit.value if lit else None
    elif p.replied_at is None:
        light = Light.RED.value if p.reply_due < now else Light.GREEN.value
    state = "replied" if p.replied_at else "signed" if p.signed_at else "dispatched"
    return {"department_code": p.department_code, "department": (names or {}).get(p.department_code),
            "state": state, "dispatched_at": p.dispatched_at, "sign_due": p.sign_due, "signed_at": p.signed_at,
            "signed_by": p.signed_by, "reply_due": p.reply_due, "replied_at": p.replied_at,
            "replied_by": p.replied_by, "reply_note": p.reply_note or "",
            "sign_on_time": None if p.signed_at is None else p.signed_at <= p.sign_due,
            "reply_on_time": None if p.replied_at is None else p.replied_at <= p.reply_due, "light": light}


def parts_of(s: Session, incident_ids: list[int], *, department_code: str | None = None) -> dict[int, list]:
    """The live assisting parts of these cases (one query), of one department when given."""
    if not incident_ids:
        return {}
    conds = [CaseAssignment.incident_id.in_(incident_ids), CaseAssignment.ended_at.is_(None)]
    if department_code:
        conds.append(CaseAssignment.department_code == department_code)
    out: dict[int, list] = {}
    for p in s.scalars(select(CaseAssignment).where(*conds).order_by(CaseAssignment.id)):
        out.setdefault(p.incident_id, []).append(p)
    return out


@dataclass(frozen=True)
class QueuePage:
    rows: list[dict]
    total: int


def _queue_columns():
    district = aliased(Area)
    priority_rank = case({p: i for i, p in enumerate(("normal", "urgent", "emergency"))},
                         value=Incident.priority, else_=-1)
    state_rank = case({s.value: i for i, s in enumerate(State)}, value=Incident.state, else_=99)
    return district, {
        "id": Incident.id, "reported_at": Incident.reported_at, "title": Incident.title,
        "category": Category.name, "state": state_rank, "priority": priority_rank,
        "department": Department.name, "district": district.name, "remaining": Incident.deadline,
        "light": Incident.deadline, "deadline": Incident.deadline, "supervise_level": Incident.supervise_level,
    }


#: text filters of the grid's columns (AG Grid filterModel) → the column they search
_TEXT_FILTERS = {"title": Incident.title, "address": Incident.address}


def _filter_conditions(filter_model: dict | None, columns: dict) -> list:
    """AG Grid's filterModel (text and number filters) as SQL; unknown columns are ignored."""
    conds = []
    for col, f in (filter_model or {}).items():
        if not isinstance(f, dict):
            continue
        kind, value = f.get("type"), f.get("filter")
        if value is None or value == "":
            continue
        if col == "id":
            try:
                n = int(value)
            except (TypeError, ValueError, OverflowError):
                continue
            n = max(-bounds.MAX_ID - 1, min(n, bounds.MAX_ID + 1))   # beyond any id, inside 64 bits
            conds.append({"equals": Incident.id == n, "greaterThan": Incident.id > n,
                          "lessThan": Incident.id < n}.get(kind, Incident.id == n))
            continue
        target = _TEXT_FILTERS.get(col) or (columns.get(col) if col in ("category", "department", "district") else None)
        if target is None:
            continue
        text = str(value)[:100]
        if kind == "equals":
            conds.append(target == text)
        elif kind == "startsWith":
            conds.append(target.istartswith(text, autoescape=True))
        elif kind == "notContains":
            conds.append(or_(target.is_(None), ~target.icontains(text, autoescape=True)))
        else:
            conds.append(target.icontains(text, autoescape=True))
    return conds


def search_conditions(q: str | None) -> list:
    """The quick search box: a case number, or words in title, address or description."""
    q = bounds.searchable(q)[:100]
    if not q:
        return []
    text = q.lstrip("#")
    alternatives = [Incident.title.icontains(q, autoescape=True), Incident.address.icontains(q, autoescape=True),
                    Incident.description.icontains(q, autoescape=True)]
    if text.isdecimal() and not bounds.id_fault(int(text)):
        alternatives.append(Incident.id == int(text))
    return [or_(*alternatives)]


def queue_page(now: datetime, *, view: str = "all_open", role: str | None = None,
               department_code: str | None = None, q: str = "", sort_model: list | None = None,
               filter_model: dict | None = None, start: int = 0, end: int = 100,
               calendar=None, citizen_channels=DEFAULT_CITIZEN_CHANNELS) -> QueuePage:
    """One block of the workbench queue: view + scope + search + column filters + sort + one page,
    all in the database (the grid's infinite row model asks for rows ``start``..``end``).
    ``calendar`` (a WorkCalendar) adds each running case's remaining working hours as of ``now``."""
    district, columns = _queue_columns()
    viewed = view_conditions(view, now, role, citizen_channels)
    if view == "my_todo" and role == Role.DEPARTMENT.value and department_code:
        # a department's to-do: the cases it leads in its to-do states, and its assisting parts not yet replied
        viewed = [or_(and_(*viewed, Incident.department_code == department_code),
                      Incident.id.in_(assisted_by(department_code, open_only=True)))]
    conds = (viewed + scope_conditions(role, department_code)
             + search_conditions(q) + _filter_conditions(filter_model, columns))
    order = []
    for item in (sort_model or [])[:3]:
        col = columns.get(item.get("colId"))
        if col is None:
            continue
        desc = item.get("sort") == "desc"
        if col is Incident.deadline:
            order.append(Incident.deadline.is_(None))  # no deadline: last either way
        order.append(col.desc() if desc else col.asc())
    attention = or_(Incident.priority.in_(ATTENTION_PRIORITIES), Incident.supervise_level > 0)
    # 待签收 for a department: dispatched to it and not yet signed for (a rework comes back this way too)
    new = Incident.state == State.DISPATCHED.value
    if not order:
        order = [Incident.deadline.is_(None), Incident.deadline.asc(), Incident.reported_at.desc()]
        if view == "pending_revisit":      # the longest-closed first: a 回访 follows the closure soon
            order = [Incident.closed_at.asc()]
        if view == "my_todo":
            # 紧急 / 督办 first, then (a department's) newly dispatched cases, newest first, then by deadline
            first = [case((attention, 0), else_=1)]
            if role == Role.DEPARTMENT.value:
                first += [case((new, 0), else_=1), case((new, Incident.dispatched_at), else_=None).desc()]
            order = first + order
    order.append(Incident.id.desc())
    start = max(int(start or 0), 0)
    size = min(max(int(end or 0) - start, 1), 500)
    lt = light_expr(now)
    stmt = (select(Incident.id, Incident.version, Incident.title, Incident.state, Incident.priority,
                   Incident.reported_at, Incident.deadline, Incident.supervise_level, Incident.address,
                   Incident.department_code, Incident.district_code, Incident.category_code,
                   Incident.dispatched_at, attention.label("attention"), new.label("new"),
                   Category.name.label("category"), Category.time_unit, Department.name.label("department"),
                   district.name.label("district"), lt.label("light"), Incident.signed_at, Incident.sign_due,
                   Incident.closed_at)
            .outerjoin(Category, Category.code == Incident.category_code)
            .outerjoin(Department, Department.code == Incident.department_code)
            .outerjoin(district, district.code == Incident.district_code)
            .where(*conds).order_by(*order).offset(start).limit(size))
    count = (select(func.count()).select_from(Incident)
             .outerjoin(Category, Category.code == Incident.category_code)
             .outerjoin(Department, Department.code == Incident.department_code)
             .outerjoin(district, district.code == Incident.district_code).where(*conds))
    with session_scope() as s:
        rows = [dict(r._mapping) for r in s.execute(stmt).all()]
        total = s.scalar(count) or 0
        waiting = pending_requests_of(s, [r["id"] for r in rows])
        mine = (parts_of(s, [r["id"] for r in rows if r["department_code"] != department_code],
                         department_code=department_code)
                if role == Role.DEPARTMENT.value and department_code else {})
    for r in rows:
        r["requests"] = waiting.get(r["id"], [])
        r["attention"] = bool(r["attention"])
        r["new"] = bool(r["new"]) and role == Role.DEPARTMENT.value
        running = r["state"] in RUNNING_STATES and r["deadline"] is not None
        r["light"] = r["light"] if running else None
        r["sign_light"] = sign_light_of(r["state"], r["dispatched_at"], r["signed_at"], r["sign_due"], now, calendar)
        r["remaining_hours"] = None
        if running and calendar is not None:
            from incidents.sla import remaining_working_hours
            r["remaining_hours"] = round(remaining_working_hours(r["deadline"], now, calendar,
                                                                 time_unit=r["time_unit"]), 2)
        r["assist"] = None
        if mine.get(r["id"]):
            # the department assists (协办) on this case: its own part's light and deadline, not the lead's
            part = part_row(mine[r["id"]][0], now, calendar)
            r["assist"] = part
            r["light"], r["new"] = part["light"], part["state"] == "dispatched"
            r["sign_light"] = part["light"] if part["state"] == "dispatched" else None
            r["sign_due"], r["deadline"] = part["sign_due"], part["reply_due"]
            r["remaining_hours"] = None
            if calendar is not None and part["replied_at"] is None:
                from incidents.sla import remaining_working_hours
                r["remaining_hours"] = round(remaining_working_hours(part["reply_due"], now, calendar), 2)
    return QueuePage(rows=rows, total=int(total))


def request_row(r: CaseRequest) -> dict:
    """One request as the screens and the API show it."""
    return {"id": r.id, "kind": r.kind, "status": r.status, "hours": r.hours, "reason": r.reason,
            "note": r.note or "", "department_code": r.department_code, "requested_by": r.requested_by,
            "requested_at": r.requested_at, "decided_by": r.decided_by, "decided_at": r.decided_at,
            "decision_note": r.decision_note or ""}


def requests_of(s: Session, incident_id: int) -> list[CaseRequest]:
    """Every request of a case, pending first, then the newest (the case panel and the API)."""
    return list(s.scalars(select(CaseRequest).where(CaseRequest.incident_id == incident_id)
                          .order_by((CaseRequest.status == RequestStatus.PENDING.value).desc(),
                                    CaseRequest.id.desc())).all())


def case_requests(s: Session, incident_id: int) -> list[dict]:
    """Every request of a case, pending first, then the newest."""
    return [request_row(r) for r in requests_of(s, incident_id)]


def pending_requests_of(s: Session, incident_ids: list[int]) -> dict[int, list[dict]]:
    """The pending requests of the given cases (one query for a block of the queue)."""
    if not incident_ids:
        return {}
    out: dict[int, list[dict]] = {}
    for r in s.scalars(select(CaseRequest).where(CaseRequest.incident_id.in_(incident_ids),
                                                 CaseRequest.status == RequestStatus.PENDING.value)
                       .order_by(CaseRequest.id)):
        out.setdefault(r.incident_id, []).append(request_row(r))
    return out


def case_detail(now: datetime, incident_id: int, *, rules, role: str, department_code: str | None) -> dict | None:
    """Everything the case panel shows, or None when the case does not exist *or* the user may not
    see it (another department's case answers as if it did not exist). Reporter data masked
    unless the role may see it; the actions offered are those the state and the role allow."""
    from incidents.services import near_duplicates, suggest_department
    with session_scope() as s:
        row = s.execute(select(Incident).where(Incident.id == int(incident_id),
                                               *scope_conditions(role, department_code))).first()
        if row is None:
            return None
        c = row[0]
        events = s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == c.id)
                           .order_by(IncidentEvent.id)).all()
        names = dict(s.execute(select(Department.code, Department.name)).all())
        people = actors_of(s, {e.actor for e in events}, names)
        area = dict(s.execute(select(Area.code, Area.name).where(Area.code.in_(
            [x for x in (c.district_code, c.grid_code) if x]))).all())
        cat = s.get(Category, c.category_code) if c.category_code else None
        suggestion = suggest_department(s, rules, c)
        dups = near_duplicates(s, c) if State(c.state).is_open else []
        from incidents.queries.repeats import repeats_view
        repeats = repeats_view(s, rules, c, role=str(role), department_code=department_code)
        reporter_name, reporter_phone = reporter_view(c.reporter_name, c.reporter_phone, role)
        private = Role(str(role)) in PERSONAL_DATA_ROLES
        running = c.state in RUNNING_STATES and c.deadline is not None
        remaining = None
        if running:
            from incidents.sla import remaining_working_hours
            remaining = round(remaining_working_hours(c.deadline, now, rules.calendar,
                                                      time_unit=cat.time_unit if cat else None), 2)
        requests = case_requests(s, c.id)
        from incidents.queries.media import attachments_of
        attachments = attachments_of(s, c.id)
        pending = [r["kind"] for r in requests if r["status"] == RequestStatus.PENDING.value]
        actions = [a.value for a in permissions.available_actions(
            role, c.state, user_department=department_code, case_department=c.department_code, pending=pending,
            blocked=blocked_of(c, rules))]
        parts = [part_row(p, now, rules.calendar, names) for p in parts_of(s, [c.id]).get(c.id, [])]
        actions += assist_actions_of(c.state, parts, role=role, department_code=department_code)
        return {
            "id": c.id, "version": c.version, "state": c.state, "title": c.title,
            "description": c.description or "", "address": c.address or "", "lon": c.lon, "lat": c.lat,
            "channel": c.channel, "source": c.source, "priority": c.priority,
            "category": cat.name if cat else None, "category_code": c.category_code,
            "district_code": c.district_code, "district": area.get(c.district_code),
            "grid_code": c.grid_code, "grid": area.get(c.grid_code),
            "department_code": c.department_code, "department": names.get(c.department_code),
            "reporter_name": reporter_name, "reporter_phone": reporter_phone,
            "reporter_masked": not private,
            "reported_at": c.reported_at, "dispatched_at": c.dispatched_at, "deadline": c.deadline,
            "light": light_of(c, now) if running else None, "remaining_hours": remaining,
            "sign_due": c.sign_due, "sign_light": sign_light_of(c.state, c.dispatched_at, c.signed_at, c.sign_due, now,
                                                                rules.calendar),
            "return_count": c.return_count or 0, "arbitrated": bool(c.arbitrated),
            "return_reasons": dict(rules.return_reasons),
            # 先行联系, the final resolve's outcome and the 回访 of the current closure (citizen cases)
            "citizen": rules.is_citizen(c.channel), "first_contacted_at": c.first_contacted_at,
            "resolve_outcome": c.resolve_outcome, "revisit_result": c.revisit_result, "revisited_at": c.revisited_at,
            "closed_at": c.closed_at,
            "time_unit": cat.time_unit if cat else None,
            "supervise_level": c.supervise_level or 0, "rework_count": c.rework_count,
            "alarm_count": c.alarm_count,   # an IoT alarm case: the device's alarms it stands for
            "duplicate_of": c.duplicate_of, "void_reason": c.void_reason,
            "updated_at": c.updated_at, "updated_by": c.updated_by or "",
            "suggestion": {"department_code": suggestion.department_code,
                           "department": names.get(suggestion.department_code, suggestion.department_code),
                           "reason": suggestion.reason},
            "duplicates": [{"id": d.id, "title": d.title, "state": d.state, "distance_m": round(dist),
                            "reported_at": d.reported_at} for d, dist in dups],
            "actions": actions,
            # 重复诉求: candidate parents with their scores, the parent, the children
            "repeats": repeats,
            # 主办 / 协办: the assisting parts of the current dispatch; the replies the lead's resolve still waits for
            "parts": parts, "awaiting": [p["department_code"] for p in parts if p["replied_at"] is None],
            "department_names": names,
            # the actions this role only asks for (a department's extend / suspend): "申请…" buttons
            "request_only": [a for a in actions if permissions.is_request_only(role, a)],
            "may_decide": permissions.may(role, Action.APPROVE),
            "requests": requests,
            # photos and links by stage; the photos themselves only for roles that may open them
            "attachments": attachments,
            "may_see_media": permissions.may_see_media(role, user_department=department_code,
                                                       case_department=c.department_code),
            "timeline": [{"at": e.at, "actor": e.actor, "actor_name": people.get(e.actor, {}).get("name") or e.actor,
                          "actor_unit": people.get(e.actor, {}).get("unit"), "actor_role": people.get(e.actor, {}).get("role"),
                          "action": e.action, "from_state": e.from_state,
                          # an assisting department's sign-for or reply names that department, not the lead
                          "to_state": e.to_state, "department": names.get(
                              (e.payload or {}).get("department") if e.action in ASSIST_EVENT_NAMES
                              else e.department_code),
                          "note": e.note or "", "payload": e.payload or {}} for e in events],
        }


def assist_actions_of(state: str, parts: list[dict], *, role: str, department_code: str | None) -> list[str]:
    """The assisting actions the workbench offers: a department on its own live part (the center acts
    for a department through the API, naming it)."""
    from incidents.lifecycle import ASSIST_STATES
    if role != Role.DEPARTMENT.value or State(state) not in ASSIST_STATES:
        return []
    mine = next((p for p in parts if p["department_code"] == department_code), None)
    if mine is None or mine["replied_at"] is not None:
        return []
    return ([Action.ASSIST_SIGN.value] if mine["signed_at"] is None else []) + [Action.ASSIST_REPLY.value]


def sign_light_of(state: str, dispatched_at, signed_at, sign_due, now: datetime, calendar=None) -> str | None:
    """The 签收 light of a case dispatched and not yet signed for (None otherwise): red past its
    sign-for deadline; with a calendar, yellow past 80 % of the office time (sla.sign_for_light)."""
    if state != State.DISPATCHED.value or signed_at is not None or sign_due is None or dispatched_at is None:
        return None
    if calendar is None:
        return Light.RED.value if sign_due < now else Light.GREEN.value
    from incidents.sla import sign_for_light
    return sign_for_light(dispatched_at, sign_due, now, calendar).value


def blocked_of(case: Incident, rules) -> frozenset:
    """What the 退单 / 审定 rule refuses this case now (lifecycle.blocked_actions, the pack's limit)."""
    from incidents.lifecycle import blocked_actions
    return blocked_actions(return_count=case.return_count or 0, max_returns=rules.max_returns,
                           arbitrated=bool(case.arbitrated), citizen=rules.is_citizen(case.channel),
                           revisit_result=case.revisit_result)


def case_clock(now: datetime, incident_id: int, *, calendar, role: str, department_code: str | None) -> dict | None:
    """The case's one deadline clock as of ``now``: light and time left (working hours, or natural
    hours for a natural-time category), None when it does not run or the user may not see the case."""
    from incidents.sla import remaining_working_hours
    with session_scope() as s:
        row = s.execute(select(Incident.state, Incident.deadline, Incident.warn_at, Category.time_unit)
                        .outerjoin(Category, Category.code == Incident.category_code)
                        .where(Incident.id == int(incident_id), *scope_conditions(role, department_code))).first()
    if row is None or row.state not in RUNNING_STATES or row.deadline is None:
        return None
    light = (Light.RED if row.deadline < now else Light.YELLOW if row.warn_at is not None and row.warn_at < now
             else Light.GREEN).value
    return {"light": light, "deadline": row.deadline, "time_unit": row.time_unit,
            "remaining_hours": round(remaining_working_hours(row.deadline, now, calendar, time_unit=row.time_unit), 2)}


def actors_of(s: Session, usernames: set[str], departments: dict[str, str]) -> dict[str, dict]:
    """The people behind the timeline's login names: display name, their department's name (or
    None) and role. Channels such as ``push:feed token:name`` are no users and stay as they are."""
    names = [u for u in usernames if u]
    if not names:
        return {}
    out = {}
    for username, display, role, dept in s.execute(select(User.username, User.display_name, User.role,
                                                          User.department_code).where(User.username.in_(names))):
        out[username] = {"name": display or username, "unit": departments.get(dept) if dept else None, "role": role}
    return out


def light_of(case: Incident, now: datetime) -> str:
    if case.deadline is not None and case.deadline < now:
        return Light.RED.value
    if case.warn_at is not None and case.warn_at < now:
        return Light.YELLOW.value
    return Light.GREEN.value
