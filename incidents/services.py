"""Use cases: every write to a case goes through here (Dash callbacks, REST API, Open311, feeds).

Each function takes a ``Session`` and never commits: the caller's ``session_scope`` does.
An action checks permission, checks the version the caller saw, applies the transition,
updates deadline and counters, appends the case event and bumps the data version.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Optional, Sequence

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from incidents import bounds, facts, lifecycle, permissions, repeats, sla  # noqa: F401 (facts: its flush hook)
from incidents.lifecycle import DomainError, NotFound, StaleVersion, ValidationFailed
from incidents.model import (ASSIST_ACTIONS, ASSIST_ENDING_ACTIONS, DEFAULT_CITIZEN_CHANNELS, DISPATCH_ACTIONS,
                            REVISING_ACTIONS, Action, Channel, Priority, RequestStatus, ResolveOutcome,
                            RevisitResult, Role, State, TimeUnit)
from incidents.repeats import RepeatRules
from incidents.routing import AreaIndex, Router, Suggestion
from incidents.media import STAGE_OF_ACTION, Attachment
from incidents.model import MediaStage
from incidents.tables import (CaseAssignment, CaseAttachment, CaseRequest, Category, Department, EventRequest,
                              Incident, IncidentEvent, Meta)

DATA_VERSION_KEY = "data_version"


@dataclass(frozen=True)
class Actor:
    username: str
    role: Role
    department_code: Optional[str] = None

    @classmethod
    def of(cls, user) -> "Actor":
        """The actor a signed-in user (anything with username, role, department_code) acts as."""
        return cls(user.username, Role(user.role), user.department_code)


@dataclass
class CaseRules:
    """What the services need from the city pack: calendar, routing, area lookup, factors."""

    calendar: sla.WorkCalendar
    router: Router
    areas: AreaIndex
    priority_factors: dict[str, float] = field(default_factory=dict)
    reopen_window_days: float = 7.0
    #: 签收时限 by priority, working hours (the pack's [workflow.sign_for_hours]); a priority it does
    #: not name takes ``normal``'s, else 2 hours
    sign_for_hours: dict[str, float] = field(default_factory=lambda: {"normal": 2.0})
    #: after this many returns (退单) the next dispatch is an arbitration (审定)
    max_returns: int = 2
    #: 退单 reason codes (code → label); a return must name one
    return_reasons: dict[str, str] = field(default_factory=dict)
    #: 协办回复时限: an assisting department's reply is due after this share of the case's 处置 limit
    #: (the category's clock and the priority's factor), from the dispatch (the pack's
    #: [workflow] assist_reply_share); its 签收时限 is the lead's (sign_for_hours)
    assist_reply_share: float = 0.5
    #: where the 处置 clock starts (the pack's [workflow] disposal_clock, ``sla.DISPOSAL_CLOCKS``):
    #: ``"dispatch"`` or ``"sign"`` (the department's 签收; no deadline before it)
    disposal_clock: str = "dispatch"
    #: the channels whose cases a citizen raised (the pack's [workflow] citizen_channels): they get a
    #: 回访 after closure, and 先行联系率 / 实际解决率 / 回访率 count them
    citizen_channels: tuple[str, ...] = DEFAULT_CITIZEN_CHANNELS
    #: 重复诉求: how far and how long each category looks for a parent, the score, auto-link, alarm
    #: (the pack's [repeats])
    repeats: RepeatRules = field(default_factory=RepeatRules)

    def is_citizen(self, channel: Optional[str]) -> bool:
        return channel is not None and str(channel) in self.citizen_channels

    def sign_for_limit(self, priority: str) -> float:
        return float(self.sign_for_hours.get(priority, self.sign_for_hours.get("normal", 2.0)))


# --------------------------------------------------------------------------- data version

def bump_data_version(session: Session) -> None:
    res = session.execute(update(Meta).where(Meta.key == DATA_VERSION_KEY)
                          .values(value=(Meta.value.cast(_int_type()) + 1).cast(_str_type())))
    if res.rowcount == 0:
        session.add(Meta(key=DATA_VERSION_KEY, value="1"))
        session.flush()


def data_version(session: Session) -> int:
    v = session.scalar(select(Meta.value).where(Meta.key == DATA_VERSION_KEY))
    return int(v) if v else 0


def _int_type():
    from sqlalchemy import Integer
    return Integer()


def _str_type():
    from sqlalchemy import String
    return String(200)


# --------------------------------------------------------------------------- deadlines

def limit_hours(category: Category, priority: str, factors: dict[str, float], calendar: sla.WorkCalendar) -> float:
    """The allowed time in the category's clock (working hours, or natural hours)."""
    factor = float(factors.get(priority, 1.0))
    if category.time_unit == TimeUnit.WORK_DAYS:
        return category.time_limit * calendar.hours_per_day * factor
    return category.time_limit * factor


def _advance(category: Category, calendar: sla.WorkCalendar, start: datetime, hours: float) -> datetime:
    if category.time_unit == TimeUnit.NATURAL_HOURS:
        return start + timedelta(hours=hours)
    return calendar.add_working_hours(start, hours)


def _span_hours(category: Category, calendar: sla.WorkCalendar, a: datetime, b: datetime) -> float:
    if category.time_unit == TimeUnit.NATURAL_HOURS:
        return max((b - a).total_seconds() / 3600.0, 0.0)
    return calendar.working_hours_between(a, b)


def sign_due(rules: CaseRules, priority: str, dispatched_at: datetime) -> datetime:
    """签收时限: the instant the department must have signed for a case dispatched at
    ``dispatched_at`` — the pack's working hours for the priority, on the working calendar."""
    return sla.sign_for_deadline(dispatched_at, rules.sign_for_limit(priority), rules.calendar)


def assist_deadlines(rules: CaseRules, category: Category, priority: str,
                     dispatched_at: datetime) -> tuple[datetime, datetime]:
    """An assisting department's (协办) 签收时限 and 回复时限 for a dispatch at ``dispatched_at``:
    sign-for as the lead's (the pack's working hours for the priority); reply after
    ``assist_reply_share`` of the case's 处置 limit, on the category's clock (working time, or natural
    hours for emergencies). Fixed when dispatched: the lead's extensions and suspensions do not move them."""
    reply_hours = rules.assist_reply_share * limit_hours(category, priority, rules.priority_factors, rules.calendar)
    return sign_due(rules, priority, dispatched_at), _advance(category, rules.calendar, dispatched_at, reply_hours)
def clock_start(case, rules: CaseRules) -> Optional[datetime]:
    """Where the case's 处置 clock counts from under the pack's rule (the dispatch, or the 签收 of it);
    None while it has not started."""
    return sla.disposal_clock_start(rules.disposal_clock, case.dispatched_at, case.signed_at)


def set_deadline(case: Incident, category: Category, rules: CaseRules) -> None:
    """The deadline in force — the one home of it: every screen, fact row and KPI reads these
    columns (``incidents.kpis.deadline_in_force`` rebuilds the same from the events).
    deadline = clock start + limit + approved extensions + suspended time; warn_at at 80 %. A case with
    the source's own deadline (``source_deadline``, set by an import) has that one, moved by the
    approved extensions and suspended time. No clock
    start yet (``disposal_clock = "sign"``, not signed for): no deadline, only the 签收 clock."""
    allowed = limit_hours(category, case.priority, rules.priority_factors, rules.calendar) + case.extension_hours
    case.allowed_hours = allowed
    start = clock_start(case, rules)
    if start is None:
        case.deadline = case.warn_at = None
        return
    fixed = getattr(case, "source_deadline", None)
    if fixed is not None:
        # the source's own deadline is the one in force; extensions and suspensions move it
        allowed = case.allowed_hours = _span_hours(category, rules.calendar, start, fixed) + case.extension_hours
        moved = case.extension_hours + case.suspended_hours
        case.deadline = _advance(category, rules.calendar, fixed, moved) if moved else fixed
        case.warn_at = _advance(category, rules.calendar, start, 0.8 * allowed + case.suspended_hours)
        return
    case.deadline = _advance(category, rules.calendar, start, allowed + case.suspended_hours)
    case.warn_at = _advance(category, rules.calendar, start, 0.8 * allowed + case.suspended_hours)


# --------------------------------------------------------------------------- create

def create_case(session: Session, rules: CaseRules, *, source: str, external_id: str, channel: str,
                title: str, reported_at: datetime, now: datetime, category_code: Optional[str] = None,
                description: str = "", address: str = "", lon: Optional[float] = None,
                lat: Optional[float] = None, priority: str = Priority.NORMAL,
                reporter_name: str = "", reporter_phone: str = "", actor: str = "feed",
                attachments: Sequence[Attachment] = (), link_repeats: bool = False) -> Incident:
    """A new case arrives from a feed in state ``reported``. Area codes are computed here, once.
    ``attachments``: photos (already in the media store) and links that came with the report.
    ``link_repeats``: the intake doors (REST API, Open311, the live demo feed) ask that the case link
    itself to an earlier one it repeats when the best candidate scores at least the pack's
    ``auto_link_score`` (:func:`auto_link_repeat`)."""
    for name, value in (("source", source), ("external_id", external_id), ("title", title),
                        ("address", address), ("reporter_name", reporter_name),
                        ("reporter_phone", reporter_phone), ("category_code", category_code)):
        bounds.check_text(value, name)
    bounds.check_text(description, "description", bounds.MAX_DESCRIPTION)
    if channel not in set(Channel):
        raise ValidationFailed(f"unknown channel {channel!r}; expected one of {', '.join(Channel)}")
    if priority not in set(Priority):
        raise ValidationFailed(f"unknown priority {priority!r}; expected one of {', '.join(Priority)}")
    if category_code is not None and session.get(Category, category_code) is None:
        raise ValidationFailed(f"unknown category {category_code!r}")
    district, grid = rules.areas.locate(lon, lat)
    case = Incident(source=source, external_id=external_id, channel=channel, title=title[:200],
                    description=description, address=address, lon=lon, lat=lat,
                    district_code=district, grid_code=grid, category_code=category_code,
                    priority=priority, state=State.REPORTED, reporter_name=reporter_name,
                    reporter_phone=reporter_phone, reported_at=reported_at, updated_at=now,
                    updated_by=actor, version=1)
    session.add(case)
    session.flush()
    report = IncidentEvent(incident_id=case.id, at=reported_at, actor=actor, action="report",
                           from_state=None, to_state=State.REPORTED, note=title[:200],
                           payload={"channel": channel, "source": source})
    if attachments:
        _count_in_payload(report, attachments)
    session.add(report)
    if attachments:
        session.flush()
        attach(session, case, report, MediaStage.REPORT, attachments, actor=actor, now=now)
    bump_data_version(session)
    if link_repeats:
        auto_link_repeat(session, rules, case, now)
    return case


def suggest_department(session: Session, rules: CaseRules, case: Incident) -> Suggestion:
    return rules.router.route(case.category_code, case.district_code, case.grid_code)


# --------------------------------------------------------------------------- actions

@dataclass(frozen=True)
class Outcome:
    """What one action did: the case, and the request it created (a department's extend/suspend,
    ``status`` pending) or decided (approve/reject); ``request`` is None for every other action."""

    case: Incident
    request: Optional[CaseRequest] = None


def perform(session: Session, rules: CaseRules, actor: Actor, incident_id: int, action: str | Action, *,
            version: int, now: datetime, department: Optional[str] = None, note: str = "",
            reason: Optional[str] = None, hours: Optional[float] = None,
            duplicate_of: Optional[int] = None, level: Optional[int] = None,
            case_request_id: Optional[int] = None, request_id: Optional[str] = None,
            outcome: Optional[str] = None, result: Optional[str] = None) -> Incident:
    """Apply one action of DESIGN.md §3 to a case, in the caller's transaction (see :func:`act`)."""
    return act(session, rules, actor, incident_id, action, version=version, now=now, department=department,
               note=note, reason=reason, hours=hours, duplicate_of=duplicate_of, level=level,
               case_request_id=case_request_id, request_id=request_id, outcome=outcome, result=result).case


def act(session: Session, rules: CaseRules, actor: Actor, incident_id: int, action: str | Action, *,
        version: int, now: datetime, department: Optional[str] = None, note: str = "",
        reason: Optional[str] = None, hours: Optional[float] = None,
        duplicate_of: Optional[int] = None, level: Optional[int] = None,
        case_request_id: Optional[int] = None, request_id: Optional[str] = None,
        attachments: Sequence[Attachment] = (), assisting: Optional[Sequence[str]] = None,
        override: bool = False, outcome: Optional[str] = None, result: Optional[str] = None,
        auto: bool = False) -> Outcome:
    """Apply one action of DESIGN.md §3 to a case, in the caller's transaction.

    ``link_repeat`` (重复诉求) names the parent in ``duplicate_of``; a parent that is itself a repeat
    stands for its own parent (links point at a root). ``auto``: linked by the intake rule, not a
    person (recorded in the event with the score and its parts).

    ``attachments``: photos (already in the media store) and links that come with a ``resolve``
    (stage resolve, the "after") or a ``verify_pass`` / ``verify_fail`` (stage verify); any other
    action takes none. A retried request records them no second time.

    An action the actor's role may only *request* (a department's ``extend`` / ``suspend``,
    :func:`permissions.is_request_only`) changes nothing but the case's timeline: it files a pending
    :class:`CaseRequest`. ``approve`` / ``reject`` with ``case_request_id`` decide one; only an
    approval moves the deadline or stops the clock.

    主办 / 协办: a ``dispatch`` / ``arbitrate`` names ``assisting`` departments (not the lead); each
    gets its part (:class:`CaseAssignment`). ``assist_sign`` / ``assist_reply`` act on the part of
    ``department`` (a department user's own). ``resolve`` is refused while a live part has not
    replied, unless ``override`` with a note (recorded). Return, reopen, void and merge end the parts;
    reassign carries them (a part of the new lead ends); a rework (verify_fail) carries them.

    ``outcome``: a ``resolve``'s 实际解决 (``solved``, the default) or 解释说明 (``explained``);
    ``result``: a ``revisit``'s answer (:class:`incidents.model.RevisitResult`; 不满意 needs a note and
    sends the case back to its department, 重办)."""
    action = parse_action(action)
    _check_bounds(action, incident_id, department=department, note=note, reason=reason, hours=hours,
                  duplicate_of=duplicate_of, level=level, request_id=request_id, outcome=outcome, result=result)
    if attachments and action not in STAGE_OF_ACTION:
        raise ValidationFailed(f"photos and links come with {', '.join(a.value for a in STAGE_OF_ACTION)}, "
                               f"not with {action.value}", field="photo")
    if assisting is not None and action not in DISPATCH_ACTIONS:
        raise ValidationFailed("assisting departments (协办) are named with a dispatch or an arbitrate",
                               field="assisting")
    if override and action != Action.RESOLVE:
        raise ValidationFailed("override is the lead's resolve without every assisting reply", field="override")
    seen = _applied_as(session, request_id, incident_id)
    if seen is not None:   # a retried request: applied once, answered with the case as it is now
        case = session.get(Incident, incident_id)
        _check_actor(session, actor, action, case, department)
        return Outcome(case, _request_of(session, seen))
    case = session.get(Incident, incident_id)
    if case is None:
        raise NotFound(f"case {incident_id} does not exist")
    _check_actor(session, actor, action, case, department)
    if version != case.version:
        seen = _applied_as(session, request_id, incident_id)
        if seen is not None:   # a retry of a request applied meanwhile (a racing first try): its answer
            return Outcome(case, _request_of(session, seen))
        raise StaleVersion(changed_by=case.updated_by, changed_at=case.updated_at)
    category = session.get(Category, case.category_code) if case.category_code else None
    req: Optional[CaseRequest] = None
    if action in permissions.DECISIONS:
        event, req = _decide(session, case, category, rules, actor, action, now,
                             case_request_id=case_request_id, note=note)
    elif permissions.is_request_only(actor.role, action):
        event, req = _ask(session, case, actor, action, now, hours=hours, reason=reason, note=note)
    elif action in ASSIST_ACTIONS:
        event = _assist(session, case, actor, action, now, department=department, note=note)
    else:
        if department is not None and session.get(Department, department) is None:
            raise ValidationFailed(f"unknown department {department!r}", field="department")
        if action == Action.MERGE and (not duplicate_of or duplicate_of == case.id
                                       or session.get(Incident, duplicate_of) is None):
            raise ValidationFailed("merge needs duplicate_of: the id of another existing case")
        link = _repeat_parent(session, rules, case, duplicate_of) if action == Action.LINK_REPEAT else None
        if link is not None:
            duplicate_of = link[0].id
        parts = live_parts(session, case.id) if case.id is not None else []
        if action in DISPATCH_ACTIONS:
            assisting = _check_assisting(session, assisting or (), department)
        elif action == Action.RESOLVE:
            missing = _check_replies(parts, override=override, note=note)
        event = apply_action(case, category, rules, actor.username, action, now, department=department,
                             note=note, reason=reason, hours=hours, duplicate_of=duplicate_of, level=level,
                             outcome=outcome, result=result)
        _move_parts(session, case, category, rules, actor, action, now, event, parts,
                    assisting=assisting or (), missing=missing if action == Action.RESOLVE else ())
        if link is not None:
            event.payload = {**(event.payload or {}), **link[1], "auto": auto}
            if not event.note:       # the child's timeline says which case it repeats
                score = f"，得分 {link[1]['score']:.2f}" if "score" in link[1] else ""
                event.note = f"重复诉求：父件 #{duplicate_of}{score}"
    event.request_id = request_id or None
    if attachments:
        _count_in_payload(event, attachments)
    try:
        if req is not None and req.id is None:
            # a new request: its row (and the case's guarded UPDATE) first, so the event can name its id
            session.add(req)
            session.flush()
            event.payload = {**(event.payload or {}), "case_request_id": req.id}
        session.add(event)
        session.flush()
        if event.request_id:
            session.add(EventRequest(request_id=event.request_id, incident_id=case.id, event_id=event.id))
            session.flush()
        if attachments:
            attach(session, case, event, STAGE_OF_ACTION[action], attachments, actor=actor.username, now=now)
    except (StaleDataError, IntegrityError) as exc:
        # someone else's write landed between our read and our write: tell who, from a fresh session
        with Session(session.get_bind()) as other:
            # the request id's key (event_requests) turns a race of one request on two cases into one
            # success and a ValidationFailed here; a retry that raced the first application on this case
            # gets its answer
            first = _applied_as(other, request_id, incident_id)
            if isinstance(exc, IntegrityError) and first is None:
                raise
            if first is not None:   # that one won: this answers what it answered; this transaction is dead
                fresh = other.get(Incident, incident_id)
                request = _request_of(other, first)
                other.expunge_all()
                session.rollback()
                return Outcome(fresh, request)
            fresh = other.get(Incident, incident_id)
            raise StaleVersion(changed_by=fresh.updated_by if fresh else "?",
                               changed_at=fresh.updated_at if fresh else None) from None
    bump_data_version(session)
    return Outcome(case, req)


# --------------------------------------------------------------------------- attachments

def attach(session: Session, case: Incident, event: IncidentEvent, stage: MediaStage,
           items: Sequence[Attachment], *, actor: str, now: datetime) -> list[CaseAttachment]:
    """Record photos (their files already in the media store) and links with ``event`` at
    ``stage``. Permission is the action's (or the report's); the event's payload counts them."""
    from incidents.media import check_count
    check_count(list(items))
    rows = []
    for a in items:
        if a.kind == "photo" and not a.storage_key:
            raise ValidationFailed("a photo must be stored before it is attached", field="photo")
        rows.append(CaseAttachment(incident_id=case.id, event_id=event.id, stage=MediaStage(stage).value,
                                   kind=a.kind, mime=a.mime or "", name=a.name or "", url=a.url,
                                   storage_key=a.storage_key, thumb_key=a.thumb_key, size=a.size or 0,
                                   width=a.width, height=a.height, sha256=a.sha256, created_by=actor,
                                   created_at=now))
    session.add_all(rows)
    session.flush()
    for a, row in zip(items, rows):
        a.attachment_id = row.id
    return rows


def _count_in_payload(event: IncidentEvent, items: Sequence[Attachment]) -> None:
    """The timeline says how many photos and links came with the event (set before it is written)."""
    photos = sum(1 for a in items if a.kind == "photo")
    links = len(items) - photos
    event.payload = {**(event.payload or {}), **({"photos": photos} if photos else {}),
                     **({"links": links} if links else {})}


# --------------------------------------------------------------------------- requests and approvals

def _applied_as(session: Session, request_id: Optional[str], incident_id: int) -> Optional[IncidentEvent]:
    """The event an idempotency key was already applied as on this case (None: not yet); a key
    already used on another case is a ValidationFailed."""
    if not request_id:
        return None
    key = session.get(EventRequest, request_id)
    if key is None:
        return None
    if key.incident_id != incident_id:
        raise ValidationFailed(f"request id {request_id!r} was already used for case {key.incident_id}")
    return session.scalar(select(IncidentEvent).where(IncidentEvent.id == key.event_id,
                                                      IncidentEvent.incident_id == incident_id))


def _request_of(session: Session, event: IncidentEvent) -> Optional[CaseRequest]:
    rid = (event.payload or {}).get("case_request_id")
    return session.get(CaseRequest, int(rid)) if rid is not None else None


def pending_requests(session: Session, incident_id: int) -> list[CaseRequest]:
    return list(session.scalars(select(CaseRequest).where(CaseRequest.incident_id == incident_id,
                                                          CaseRequest.status == RequestStatus.PENDING)
                                .order_by(CaseRequest.id)))


def _ask(session: Session, case: Incident, actor: Actor, action: Action, now: datetime, *,
         hours: Optional[float], reason: Optional[str], note: str) -> tuple[IncidentEvent, CaseRequest]:
    """A department asks for ``action``: the case stays as it is (its version moves, so a racing
    second request of the same kind meets a stale version); a pending request is filed."""
    before = State(case.state)
    lifecycle.next_state(before, action)          # asking for what the state allows, nothing else
    require_params(case, action, hours=hours, reason=reason, note=note)
    if any(r.kind == action.value for r in pending_requests(session, case.id)):
        raise ValidationFailed(f"case {case.id} already has a pending '{action.value}' request; "
                               f"wait for a dispatcher's decision", field="action")
    req = CaseRequest(incident_id=case.id, kind=action.value, status=RequestStatus.PENDING.value,
                      hours=float(hours) if action == Action.EXTEND else None,
                      reason=reason or None, note=note or "", department_code=case.department_code,
                      requested_by=actor.username, requested_at=now, decision_note="")
    payload: dict[str, Any] = {"kind": action.value}
    if req.hours is not None:
        payload["hours"] = req.hours
    if reason:
        payload["reason"] = reason
    case.updated_at, case.updated_by = now, actor.username
    event = IncidentEvent(incident_id=case.id, at=now, actor=actor.username, action="request",
                          from_state=before.value, to_state=before.value, department_code=case.department_code,
                          note=note or "", payload=payload)
    return event, req


def _decide(session: Session, case: Incident, category: Optional[Category], rules: CaseRules, actor: Actor,
            action: Action, now: datetime, *, case_request_id: Optional[int],
            note: str) -> tuple[IncidentEvent, CaseRequest]:
    """A dispatcher approves (the requested action is applied now, by them) or rejects a request."""
    if case_request_id is None:
        raise ValidationFailed(f"{action.value} needs case_request_id: the id of a pending request of "
                               f"case {case.id}", field="case_request_id")
    req = session.get(CaseRequest, int(case_request_id))
    if req is None:
        raise NotFound(f"request {case_request_id} does not exist")
    if req.incident_id != case.id:
        raise ValidationFailed(f"request {req.id} belongs to case {req.incident_id}, not to case {case.id}",
                               field="case_request_id")
    if req.status != RequestStatus.PENDING:
        raise ValidationFailed(f"request {req.id} is no longer pending: {req.status} by {req.decided_by} "
                               f"at {req.decided_at.isoformat(sep=' ', timespec='seconds') if req.decided_at else '?'}",
                               field="case_request_id")
    kind = Action(req.kind)
    named = {"kind": req.kind, "requested_by": req.requested_by}
    if action == Action.APPROVE:
        if req.department_code != case.department_code:
            raise ValidationFailed(f"request {req.id} was made by department {req.department_code}; the case is "
                                   f"now with {case.department_code or 'no department'}: reject it",
                                   field="case_request_id")
        try:
            columns = transition(case, category, rules, actor.username, kind, now, hours=req.hours,
                                 reason=req.reason, note=note or req.note)
        except lifecycle.TransitionError as exc:
            raise ValidationFailed(f"request {req.id} can no longer be approved: {exc.message}",
                                   field="case_request_id") from None
        columns["action"] = Action.APPROVE.value
        columns["payload"] = {**(columns["payload"] or {}), **named}
        status = RequestStatus.APPROVED
    else:
        if not (note or "").strip():
            raise ValidationFailed("reject (驳回) needs a reason in note", field="note")
        payload = dict(named)
        if req.hours is not None:
            payload["hours"] = req.hours
        before = State(case.state).value
        case.updated_at, case.updated_by = now, actor.username
        columns = dict(incident_id=case.id, at=now, actor=actor.username, action=Action.REJECT.value,
                       from_state=before, to_state=before, department_code=case.department_code,
                       note=note, payload=payload)
        status = RequestStatus.REJECTED
    columns["payload"]["case_request_id"] = req.id
    req.status, req.decided_by, req.decided_at, req.decision_note = status.value, actor.username, now, note or ""
    return IncidentEvent(**columns), req


def require_params(case, action: Action, *, hours: Optional[float], reason: Optional[str], note: str) -> None:
    """What an extend or a suspend needs, asked for or applied (one rule for both)."""
    if action == Action.EXTEND:
        if not hours or hours <= 0:
            raise ValidationFailed("extend needs hours > 0", field="hours")
        if case.dispatched_at is None:
            raise ValidationFailed("only a dispatched case has a deadline to extend")
    elif action == Action.SUSPEND:
        if not (reason or note):
            raise ValidationFailed("suspend (挂账) needs a reason")


# --------------------------------------------------------------------------- 主办 / 协办

#: at most this many assisting departments on one dispatch (the API's schema says the same)
MAX_ASSISTING = bounds.MAX_ASSISTING


def live_parts(session: Session, incident_id: int) -> list[CaseAssignment]:
    """The assisting parts (协办) of a case's current dispatch, in the order they were named."""
    return list(session.scalars(select(CaseAssignment).where(CaseAssignment.incident_id == incident_id,
                                                             CaseAssignment.ended_at.is_(None))
                                .order_by(CaseAssignment.id)))


def _check_actor(session: Session, actor: Actor, action: Action, case: Incident, department: Optional[str]) -> None:
    """The permission of ``action`` on ``case``: the role × action matrix, or for an assisting
    action, whether the actor acts for a department that assists on the case now."""
    if action in ASSIST_ACTIONS:
        permissions.check_assist(actor.role, action, user_department=actor.department_code, department=department,
                                 assisting=[p.department_code for p in live_parts(session, case.id)])
        return
    permissions.check_permission(actor.role, action, user_department=actor.department_code,
                                 case_department=case.department_code)


def _check_assisting(session: Session, assisting: Sequence[str], lead: Optional[str]) -> list[str]:
    """The assisting departments of a dispatch: known, each once, at most :data:`MAX_ASSISTING`;
    the lead is checked once the dispatch has chosen it (a routed dispatch names no lead)."""
    if isinstance(assisting, str):
        raise ValidationFailed("assisting must be a list of department codes", field="assisting")
    out: list[str] = []
    for code in assisting:
        bounds.check_text(code, "assisting")
        if not isinstance(code, str) or not code:
            raise ValidationFailed("assisting must be a list of department codes", field="assisting")
        if code in out:
            raise ValidationFailed(f"assisting department {code!r} is named twice", field="assisting")
        if session.get(Department, code) is None:
            raise ValidationFailed(f"unknown assisting department {code!r}", field="assisting")
        out.append(code)
    if len(out) > MAX_ASSISTING:
        raise ValidationFailed(f"at most {MAX_ASSISTING} assisting departments", field="assisting")
    if lead and lead in out:
        raise ValidationFailed(f"{lead} leads (主办) this dispatch; it cannot also assist (协办)", field="assisting")
    return out


def _check_replies(parts: Sequence[CaseAssignment], *, override: bool, note: str) -> list[str]:
    """The lead's resolve waits for every assisting reply; ``override`` with a note resolves without
    the missing ones (returned, to be recorded)."""
    missing = [p.department_code for p in parts if p.replied_at is None]
    if missing and not override:
        raise ValidationFailed(f"assisting department(s) {', '.join(missing)} (协办) have not replied yet: wait for "
                               f"their replies, or resolve with override and a note", field="override")
    if missing and not (note or "").strip():
        raise ValidationFailed("resolve with override needs a note saying why the assisting replies are not awaited",
                               field="note")
    return missing


def _move_parts(session: Session, case: Incident, category: Optional[Category], rules: CaseRules, actor: Actor,
                action: Action, now: datetime, event: IncidentEvent, parts: Sequence[CaseAssignment], *,
                assisting: Sequence[str], missing: Sequence[str]) -> None:
    """What a case action does to the assisting parts, recorded in the event's payload (the reference
    KPI reads them from there): a dispatch opens one per assisting department; return / reopen /
    void / merge end the live ones; a reassign ends the part of the new lead; an override names
    the replies it did not wait for."""
    payload = dict(event.payload or {})
    if action in DISPATCH_ACTIONS and assisting:
        if case.department_code in assisting:
            raise ValidationFailed(f"{case.department_code} leads (主办) this dispatch; it cannot also assist (协办)",
                                   field="assisting")
        named = []
        for code in assisting:
            due_sign, due_reply = assist_deadlines(rules, category, case.priority, now)
            session.add(CaseAssignment(incident_id=case.id, department_code=code, dispatched_at=now,
                                       dispatched_by=actor.username, sign_due=due_sign, reply_due=due_reply,
                                       reply_note=""))
            named.append({"department": code, "sign_due": due_sign.isoformat(), "reply_due": due_reply.isoformat()})
        payload["assisting"] = named
    ending = [p for p in parts if action in ASSIST_ENDING_ACTIONS or action in DISPATCH_ACTIONS
              or (action == Action.REASSIGN and p.department_code == case.department_code)]
    for p in ending:
        p.ended_at = now
    if ending:
        payload["assist_ended"] = [p.department_code for p in ending]
    if missing:
        payload["override"] = list(missing)
    event.payload = payload or None


def _assist(session: Session, case: Incident, actor: Actor, action: Action, now: datetime, *,
            department: Optional[str], note: str) -> IncidentEvent:
    """An assisting department signs for (``assist_sign``) or replies to (``assist_reply``, a note
    needed) its part; the case's state stays, its version moves (the part is written under the
    case's lock). The event names the department and whether it was on time."""
    code = actor.department_code if actor.role is Role.DEPARTMENT else department
    part = next(p for p in live_parts(session, case.id) if p.department_code == code)
    lifecycle.check_assist(case.state, action, signed=part.signed_at is not None, replied=part.replied_at is not None)
    payload: dict[str, Any] = {"department": code}
    if action == Action.ASSIST_SIGN or part.signed_at is None:
        part.signed_at, part.signed_by = now, actor.username
        payload["sign_on_time"] = now <= part.sign_due
    if action == Action.ASSIST_REPLY:
        if not (note or "").strip():
            raise ValidationFailed("assist_reply (协办回复) needs the reply in note", field="note")
        part.replied_at, part.replied_by, part.reply_note = now, actor.username, note
        payload["on_time"] = now <= part.reply_due
    before = State(case.state).value
    case.updated_at, case.updated_by = now, actor.username
    return IncidentEvent(incident_id=case.id, at=now, actor=actor.username, action=action.value, from_state=before,
                         to_state=before, department_code=case.department_code, note=note or "", payload=payload)


def _check_bounds(action: Action, incident_id, *, department, note, reason, hours, duplicate_of, level,
                  request_id, outcome=None, result=None) -> None:
    """The same bounds as the API's schema (incidents.bounds), for every door: ValidationFailed, not a 500."""
    bounds.check_case_id(incident_id)
    for name, value in (("department", department), ("reason", reason), ("request_id", request_id),
                        ("outcome", outcome), ("result", result)):
        bounds.check_text(value, name)
    bounds.check_text(note, "note", bounds.MAX_NOTE)
    if action == Action.EXTEND:
        bounds.check_extend_hours(hours)
    if action == Action.SUPERVISE and level is not None:
        bounds.check_supervise_level(level)
    if duplicate_of is not None:
        bounds.check_id(duplicate_of, "duplicate_of")


def parse_action(action: str | Action) -> Action:
    try:
        return Action(action)
    except ValueError:
        raise ValidationFailed(f"unknown action {action!r}; expected one of {', '.join(Action)}") from None


def apply_action(case: Incident, category: Optional[Category], rules: CaseRules, actor_name: str,
                 action: Action, now: datetime, **params) -> IncidentEvent:
    """The transition itself, on a case object, without the database: state, timestamps,
    deadline and counters change, and the event to append is returned. Permission and
    version are the caller's to check (``perform`` does)."""
    return IncidentEvent(**transition(case, category, rules, actor_name, action, now, **params))


def transition(case, category: Optional[Category], rules: CaseRules, actor_name: str, action: Action,
               now: datetime, *, department: Optional[str] = None, note: str = "", reason: Optional[str] = None,
               hours: Optional[float] = None, duplicate_of: Optional[int] = None, level: Optional[int] = None,
               route=None, outcome: Optional[str] = None, result: Optional[str] = None) -> dict:
    """:func:`apply_action` on any object with the case columns as attributes (an ``Incident``,
    or the ingest's draft of a new case that has no row yet); returns the event's columns.
    ``route`` replaces ``rules.router.route`` (a bulk import passes a memo of it)."""
    before = State(case.state)
    resume_to = State(case.state_before_suspend) if case.state_before_suspend else None
    visit = _revisit_result(case, rules, action, result, note)
    after = lifecycle.next_state(before, action, resume_to=resume_to, redo=visit is not None and visit.redo)
    payload: dict[str, Any] = {}

    if action in (Action.DISPATCH, Action.ARBITRATE, Action.RETURN):
        lifecycle.check_blocked(action, return_count=getattr(case, "return_count", 0) or 0,
                                max_returns=rules.max_returns, arbitrated=bool(getattr(case, "arbitrated", False)))
    if action in (Action.DISPATCH, Action.REASSIGN, Action.ARBITRATE):
        if action == Action.ARBITRATE and not (note or "").strip():
            raise ValidationFailed("arbitrate (审定) needs the ruling in note", field="note")
        if not department:
            suggestion = (route or rules.router.route)(case.category_code, case.district_code, case.grid_code)
            department = suggestion.department_code
            payload["routing"] = suggestion.reason
        if action == Action.REASSIGN and department == case.department_code:
            raise ValidationFailed(f"case {getattr(case, 'id', None)} is already with {department}; reassign needs another department")
        if category is None:
            raise ValidationFailed(f"case {getattr(case, 'id', None)} has no category; set one before dispatch")
        if action == Action.REASSIGN:
            case.reassign_count += 1
            payload["from_department"] = case.department_code
        case.department_code = department
        if action in (Action.DISPATCH, Action.ARBITRATE):
            case.dispatch_count = (getattr(case, "dispatch_count", None) or 0) + 1
            case.last_dispatched_at = now
            if case.first_dispatched_at is None:
                case.first_dispatched_at = now
        if action == Action.ARBITRATE:
            case.arbitrated = True
            payload["returns"] = case.return_count
        _start_clock(case, category, rules, now)
        if action in (Action.DISPATCH, Action.ARBITRATE) and case.dispatch_count == 1:
            case.first_sign_due = case.sign_due     # 按时签收率 reads the first dispatch's 签收时限
        payload["sign_due"] = case.sign_due.isoformat()
    elif action == Action.REGISTER:
        case.registered_at = now
    elif action == Action.VOID:
        if not reason:
            raise ValidationFailed("void needs a reason code (duplicate, invalid, not_ours …)")
        case.voided_at, case.void_reason = now, reason
    elif action == Action.MERGE:
        case.voided_at, case.void_reason, case.duplicate_of = now, "duplicate", duplicate_of
    elif action == Action.SIGN:
        case.signed_at = now
        if case.first_signed_at is None:
            case.first_signed_at = now
        payload["on_time"] = case.sign_due is None or now <= case.sign_due
        if rules.disposal_clock == "sign" and category is not None:
            set_deadline(case, category, rules)      # the 处置 clock starts at the 签收
    elif action == Action.RETURN:
        if not reason:
            raise ValidationFailed("return (退单) needs a reason code", field="reason")
        if rules.return_reasons and reason not in rules.return_reasons:
            raise ValidationFailed(f"unknown return reason {reason!r}; expected one of "
                                   f"{', '.join(rules.return_reasons)}", field="reason")
        case.return_count += 1
        payload["from_department"] = case.department_code
        payload["returns"] = case.return_count
        case.department_code = None
        case.deadline = case.warn_at = case.allowed_hours = None
    elif action == Action.EXTEND:
        require_params(case, action, hours=hours, reason=reason, note=note)
        case.extension_count += 1
        case.extension_hours += float(hours)
        payload["hours"] = float(hours)
        set_deadline(case, category, rules)
    elif action == Action.SUSPEND:
        require_params(case, action, hours=hours, reason=reason, note=note)
        case.state_before_suspend = before
        case.suspended_at = now
    elif action == Action.RESUME:
        # (a span before the 处置 clock started — suspended before the 签收 — moves no deadline)
        if (case.suspended_at is not None and resume_to is not None and resume_to.is_with_department and category
                and clock_start(case, rules) is not None):
            case.suspended_hours += _span_hours(category, rules.calendar, case.suspended_at, now)
            set_deadline(case, category, rules)
        case.state_before_suspend = None
        case.suspended_at = None
    elif action == Action.CONTACT:
        # 先行联系 counts the first contact before any resolve: a contact in a later round (after a
        # 返工 or 重办 — each follows a resolve, so rework_count > 0) is on the timeline only
        if case.first_contacted_at is None and not (getattr(case, "rework_count", 0) or 0) and case.resolved_at is None:
            case.first_contacted_at = now
            payload["first"] = True
    elif action == Action.RESOLVE:
        chosen = as_outcome(outcome)
        case.resolve_outcome = chosen.value
        payload["outcome"] = chosen.value
        case.resolved_at = now
        case.on_time = case.deadline is None or now <= case.deadline
        # 平均处置时长 counts office time from the first dispatch, whatever the category's clock
        case.handling_hours = (rules.calendar.working_hours_between(case.first_dispatched_at, now)
                               if case.first_dispatched_at is not None else None)
    elif action == Action.VERIFY_PASS:
        case.revisited_at = case.revisit_result = None     # a new closure: its own 回访
        case.closed_at = now
        case.close_count = (getattr(case, "close_count", None) or 0) + 1
        case.last_closed_at = now
        if getattr(case, "first_closed_at", None) is None:
            case.first_closed_at = now
    elif action == Action.VERIFY_FAIL:
        case.rework_count += 1
        case.resolved_at = case.resolve_outcome = None
        case.on_time = case.handling_hours = None
        _start_clock(case, category, rules, now)
    elif action == Action.REVISIT:
        case.revisited_at, case.revisit_result = now, visit.value
        if getattr(case, "first_revisited_at", None) is None:
            case.first_revisited_at = now
        payload["result"] = visit.value
        if visit.redo:
            # 重办: back to the department that handled it, as a rework (the clock starts again)
            if not case.department_code or category is None:
                raise ValidationFailed("重办 needs the case's department and category")
            case.rework_count += 1
            case.closed_at = case.resolved_at = case.resolve_outcome = None
            case.on_time = case.handling_hours = None
            _start_clock(case, category, rules, now)
            payload["redo"] = True
            case.revised_at = now
    elif action == Action.REOPEN:
        if case.closed_at and now - case.closed_at > timedelta(days=rules.reopen_window_days):
            raise ValidationFailed(f"reopen is allowed within {rules.reopen_window_days:g} days of closing")
        case.rework_count += 1
        case.closed_at = case.resolved_at = case.resolve_outcome = None
        case.on_time = case.handling_hours = None
        case.department_code = None
        case.deadline = case.warn_at = case.allowed_hours = None
    elif action == Action.SUPERVISE:
        case.supervise_level = max(int(level or 1), 1)
        payload["level"] = case.supervise_level
    elif action == Action.LINK_REPEAT:
        if not duplicate_of:
            raise ValidationFailed("link_repeat needs duplicate_of: the id of the case this one repeats",
                                   field="duplicate_of")
        case.repeat_of = duplicate_of
        if getattr(case, "repeat_linked_at", None) is None:
            case.repeat_linked_at = now     # 重复诉求率 counts the first link (fixed once set)
        payload["parent"] = duplicate_of

    if reason:
        payload["reason"] = reason
    if action in REVISING_ACTIONS:
        case.revised_at = now
    case.state = after
    case.updated_at = now
    case.updated_by = actor_name
    return dict(incident_id=getattr(case, "id", None), at=now, actor=actor_name, action=action.value,
                from_state=before.value, to_state=after.value, department_code=case.department_code,
                note=note or "", payload=payload or None)


def as_outcome(value: Optional[str]) -> ResolveOutcome:
    """A resolve's outcome: 实际解决 unless the department chose 解释说明 (one default, for every door:
    the workbench preselects it, the API documents it); an unknown code is a ValidationFailed."""
    if value is None or value == "":
        return ResolveOutcome.SOLVED
    return lifecycle.as_member(ResolveOutcome, value, "outcome")


def _revisit_result(case, rules: CaseRules, action: Action, result: Optional[str], note: str) -> Optional[RevisitResult]:
    """A ``revisit``'s result, checked (None for any other action): a closed citizen case whose
    closure no 回访 reached yet (lifecycle.revisit_refusal), a known result, a note with 不满意."""
    if action != Action.REVISIT:
        return None
    if State(case.state) != State.CLOSED:
        return None          # next_state says why (only a closed case is revisited)
    why = lifecycle.revisit_refusal(citizen=rules.is_citizen(case.channel),
                                    revisit_result=getattr(case, "revisit_result", None))
    if why:
        raise ValidationFailed(why, field="action")
    if not result:
        raise ValidationFailed("revisit (回访) needs a result: " + ", ".join(r.value for r in RevisitResult),
                               field="result")
    visit = lifecycle.as_member(RevisitResult, result, "result")
    if visit.redo and not (note or "").strip():
        raise ValidationFailed("不满意 (unsatisfied) needs the citizen's complaint in note", field="note")
    return visit


def _start_clock(case: Incident, category: Category, rules: CaseRules, now: datetime) -> None:
    """A dispatch, reassignment, arbitration or rework: the 签收 clock starts again from ``now`` (the
    department signs for it again), and so does the 处置 clock — or, with ``disposal_clock = "sign"``,
    it waits for that 签收."""
    case.dispatched_at = now
    case.signed_at = None
    case.sign_due = sign_due(rules, case.priority, now)
    case.suspended_hours = 0.0
    case.extension_hours = 0.0
    set_deadline(case, category, rules)


def near_duplicates(session: Session, case: Incident, *, limit: int = 10) -> list[tuple[Incident, float]]:
    """Open cases of the same category within the category's radius and time window, nearest first.
    The database narrows by category, state, time and a bounding box; the exact distance is computed here."""
    from incidents.routing import bbox_around, distance_m
    if case.category_code is None or case.lon is None or case.lat is None:
        return []
    category = session.get(Category, case.category_code)
    radius, window = category.dup_radius_m, timedelta(hours=category.dup_window_h)
    min_lon, min_lat, max_lon, max_lat = bbox_around(case.lon, case.lat, radius)
    candidates = session.scalars(
        select(Incident).where(Incident.category_code == case.category_code, Incident.id != case.id,
                               Incident.state.in_([s.value for s in State.open_states()]),
                               Incident.reported_at >= case.reported_at - window,
                               Incident.reported_at <= case.reported_at + window,
                               Incident.lon.between(min_lon, max_lon), Incident.lat.between(min_lat, max_lat))
        .limit(200)).all()
    near = [(c, distance_m(case.lon, case.lat, c.lon, c.lat)) for c in candidates]
    return sorted([(c, d) for c, d in near if d <= radius], key=lambda cd: cd[1])[:limit]




# --------------------------------------------------------------------------- 重复诉求 (repeat complaints)

@dataclass(frozen=True)
class Candidate:
    """A candidate parent of a case, with its score and the score's parts (incidents.repeats.Score)."""

    id: int
    title: str
    state: str
    category_code: Optional[str]
    reported_at: datetime
    score: float
    parts: dict
    distance_m: float
    hours: float


def _text(c) -> str:
    """What a complaint says (the place is scored by distance, so the address is not counted twice)."""
    return f"{c.title or ''} {c.description or ''}"


def repeat_candidates(session: Session, rules: CaseRules, case: Incident, *, limit: int = 5) -> list[Candidate]:
    """Candidate parents of ``case``: cases of the same or a related category reported within the
    category's window before it and within its radius, open or closed within the window (not
    voided), best score first, at least ``min_score``. A candidate that is itself a repeat stands for
    its parent (links point at a root), the best score of a family kept. The database does the
    prefilter as one index range scan (category × report time, lon/lat checked in the index:
    ``ix_incidents_category_reported_lonlat``, :func:`repeat_prefilter`); the score (incidents.repeats.score) here."""
    from incidents.repeats import score as score_pair
    from incidents.routing import distance_m
    if case.category_code is None or case.lon is None or case.lat is None:
        return []
    cat = session.get(Category, case.category_code)
    reach = rules.repeats.reach(case.category_code, cat.major_code if cat else None)
    since = case.reported_at - timedelta(hours=reach.window_h)
    rows = session.execute(repeat_prefilter(case, reach, rules.repeats.related_to(case.category_code))).all()
    best: dict[int, Candidate] = {}
    for c in rows:
        if c.state == State.VOIDED or (c.state == State.CLOSED and c.closed_at is not None and c.closed_at < since):
            continue
        root = c.repeat_of or c.id
        if root == case.id:
            continue
        d = distance_m(case.lon, case.lat, c.lon, c.lat)
        if d > reach.radius_m:
            continue
        hours = (case.reported_at - c.reported_at).total_seconds() / 3600.0
        sc = score_pair(rules.repeats, reach, distance_m=d, hours=hours, text_a=_text(case), text_b=_text(c),
                        same_category=c.category_code == case.category_code)
        if sc.total < rules.repeats.min_score or (root in best and best[root].score >= sc.total):
            continue
        shown = c
        if root != c.id:          # a repeat stands for its parent
            shown = session.get(Incident, root)
            if shown is None or shown.state == State.VOIDED:
                continue
        best[root] = Candidate(shown.id, shown.title, shown.state, shown.category_code, shown.reported_at,
                               sc.total, sc.parts, sc.distance_m, sc.hours)
    return sorted(best.values(), key=lambda x: (-x.score, x.distance_m, x.id))[:limit]


def repeat_prefilter(case: Incident, reach, codes: Sequence[str]):
    """The candidates' SQL: the categories ``codes`` reported within ``reach``'s window before the case,
    inside the bounding box of its radius — one range scan of ``ix_incidents_category_reported_lonlat``
    (category × report time, lon/lat checked in the index) — with the columns the score needs."""
    from incidents.routing import bbox_around
    min_lon, min_lat, max_lon, max_lat = bbox_around(case.lon, case.lat, reach.radius_m)
    columns = (Incident.id, Incident.title, Incident.description, Incident.state, Incident.closed_at,
               Incident.repeat_of, Incident.category_code, Incident.reported_at, Incident.lon, Incident.lat)
    return (select(*columns)
            .where(Incident.category_code.in_(codes),
                   Incident.reported_at >= case.reported_at - timedelta(hours=reach.window_h),
                   Incident.reported_at <= case.reported_at, Incident.lon.between(min_lon, max_lon),
                   Incident.lat.between(min_lat, max_lat), Incident.id != case.id)
            .limit(500))


def _repeat_parent(session: Session, rules: CaseRules, case: Incident,
                   parent_id: Optional[int]) -> tuple[Incident, dict]:
    """The parent a ``link_repeat`` links to (the root of the named case's family) and what the event
    records of the pair (the score and its parts, when the pair is within reach)."""
    if not parent_id or parent_id == case.id:
        raise ValidationFailed("link_repeat needs duplicate_of: the id of another case, the one this one repeats",
                               field="duplicate_of")
    parent = session.get(Incident, parent_id)
    if parent is None:
        raise ValidationFailed(f"case {parent_id} does not exist", field="duplicate_of")
    if parent.repeat_of:
        parent = session.get(Incident, parent.repeat_of) or parent
    if parent.id == case.id:
        raise ValidationFailed(f"case {parent_id} repeats case {case.id}: a case cannot repeat its own repeat",
                               field="duplicate_of")
    if parent.state == State.VOIDED:
        raise ValidationFailed(f"case {parent.id} is voided; link to a live case", field="duplicate_of")
    if session.scalar(select(Incident.id).where(Incident.repeat_of == case.id).limit(1)) is not None:
        raise ValidationFailed(f"case {case.id} has repeats of its own (it is a parent); it cannot become a repeat",
                               field="duplicate_of")
    found = next((c for c in repeat_candidates(session, rules, case, limit=50) if c.id == parent.id), None)
    record = {"score": found.score, "parts": found.parts, "distance_m": found.distance_m} if found else {}
    return parent, record


def auto_link_repeat(session: Session, rules: CaseRules, case: Incident, now: datetime) -> Optional[Candidate]:
    """At intake: the new case's best candidate, linked by the system when it scores at least the
    pack's ``auto_link_score``; None otherwise. The link is the case's own ``link_repeat`` event (actor
    :data:`SYSTEM_ACTOR`, ``auto`` with the score and its parts) and its link columns, written without
    moving the case's version: the version guards what people saw, and nobody's open form should go
    stale because the system linked the case it shows."""
    best = next(iter(repeat_candidates(session, rules, case, limit=1)), None)
    if best is None or not repeats.links_itself(rules.repeats, best.score, best.parts):
        return None
    permissions.check_permission(SYSTEM_ACTOR.role, Action.LINK_REPEAT)
    parent, record = _repeat_parent(session, rules, case, best.id)
    table = Incident.__table__
    session.flush()
    session.execute(table.update().where(table.c.id == case.id)
                    .values(repeat_of=parent.id, repeat_linked_at=now))
    from sqlalchemy.orm.attributes import set_committed_value
    set_committed_value(case, "repeat_of", parent.id)
    set_committed_value(case, "repeat_linked_at", now)
    session.add(IncidentEvent(incident_id=case.id, at=now, actor=SYSTEM_ACTOR.username,
                              action=Action.LINK_REPEAT.value, from_state=case.state, to_state=case.state,
                              department_code=case.department_code,
                              note=(f"自动关联重复诉求：父件 #{parent.id}，得分 {best.score:.2f} ≥ "
                                    f"{rules.repeats.auto_link_score:g}"),
                              payload={"parent": parent.id, **record, "auto": True}))
    session.flush()
    bump_data_version(session)
    return best


#: who the intake rules act as (an automatic link is a dispatcher's action, done by the system)
SYSTEM_ACTOR = Actor("system:repeats", Role.DISPATCHER)


def repeat_children(session: Session, parent_id: int) -> list[Incident]:
    return list(session.scalars(select(Incident).where(Incident.repeat_of == parent_id).order_by(Incident.id)))


def close_children(session: Session, rules: CaseRules, actor: Actor, parent_id: int, *, reason: str,
                   now: datetime) -> tuple[list[int], dict[int, str]]:
    """A closed parent closes its open repeats with one reason (并案办结): each child is merged into
    the parent (``merge`` → voided as a duplicate of it) by its own event on its own timeline, with
    the reason as the note and ``with_parent`` in the payload; the role must be allowed to merge.
    Answers (the children closed, {child: why not} for those the lifecycle does not let go now)."""
    permissions.check_permission(actor.role, Action.MERGE, user_department=actor.department_code)
    parent = load_case(session, parent_id)
    if State(parent.state) != State.CLOSED:
        raise ValidationFailed(f"case {parent_id} is not closed; its repeats are closed with it once it is",
                               field="action")
    if not (reason or "").strip():
        raise ValidationFailed("closing the repeats needs one reason (note)", field="note")
    bounds.check_text(reason, "note", bounds.MAX_NOTE)
    done, skipped = [], {}
    for child in repeat_children(session, parent_id):
        if not State(child.state).is_open:
            continue
        if not lifecycle.is_allowed(child.state, Action.MERGE):
            skipped[child.id] = f"state {child.state}: not closed with its parent (finish it on its own timeline)"
            continue
        out = act(session, rules, actor, child.id, Action.MERGE, version=child.version, now=now,
                  duplicate_of=parent_id, note=reason)
        ev = session.scalar(select(IncidentEvent).where(IncidentEvent.incident_id == child.id)
                            .order_by(IncidentEvent.id.desc()).limit(1))
        ev.payload = {**(ev.payload or {}), "with_parent": parent_id}
        done.append(out.case.id)
    session.flush()
    return done, skipped


def acknowledge_alarm(session: Session, actor: Actor, key: str, now: datetime) -> bool:
    """An operator acknowledges a wall alarm; recorded once with who and when. True if new."""
    from incidents.tables import AlarmAck
    permissions.require(actor.role, permissions.ACK_ROLES, "acknowledge alarms")
    if not key or len(key) > 120:
        raise ValidationFailed("alarm key must be 1–120 characters")
    if session.get(AlarmAck, key) is not None:
        return False
    session.add(AlarmAck(key=key, acked_by=actor.username, acked_at=now))
    bump_data_version(session)
    return True


def load_case(session: Session, incident_id: int) -> Incident:
    case = session.get(Incident, incident_id)
    if case is None:
        raise NotFound(f"case {incident_id} does not exist")
    return case


__all__ = ["Actor", "CaseRules", "DomainError", "Outcome", "act", "apply_action", "attach", "bump_data_version", "clock_start", "create_case",
           "data_version", "load_case", "near_duplicates", "repeat_candidates", "repeat_prefilter", "auto_link_repeat",
           "close_children", "repeat_children", "pending_requests", "perform", "require_params",
           "set_deadline", "sign_due", "suggest_department"]
