"""Who may do what: the one permission rule every door and every service asks (DESIGN §2, §3, §10).

Pure: stdlib only. Case actions are a matrix of role × action, narrowed for department users to
their own department's cases; the other capabilities (push feed records, create cases, read the
KPI brief and its exports, acknowledge wall alarms, see personal data) are role sets named here
once. Dash callbacks, the REST API, push ingestion, Open311, CLI imports and exports call these
functions: a hidden button is not a check.
"""
from __future__ import annotations

import hmac
import re
from typing import Any, Final, Iterable, Optional

from incidents.lifecycle import PermissionDenied, ValidationFailed, as_action, as_member
from incidents.model import ROLE_LABELS_ZH, Action, Role

# --------------------------------------------------------------------------- case actions

ROLE_ACTIONS: Final[dict[Role, frozenset[Action]]] = {
    Role.VIEWER: frozenset(),
    Role.LEADER: frozenset({Action.SUPERVISE}),
    Role.DISPATCHER: frozenset({
        Action.REGISTER, Action.VOID, Action.DISPATCH, Action.REASSIGN, Action.EXTEND,
        Action.SUSPEND, Action.RESUME, Action.MERGE, Action.REOPEN, Action.APPROVE, Action.REJECT,
        Action.ARBITRATE,
        Action.REVISIT,        # 回访: the hotline / command centre calls the citizen back, never the department
        Action.LINK_REPEAT,    # 重复诉求: the dispatcher links a child to its parent
    }),
    Role.DEPARTMENT: frozenset({
        Action.SIGN, Action.RETURN, Action.RESOLVE, Action.EXTEND, Action.SUSPEND, Action.CONTACT,
    }),
    Role.INSPECTOR: frozenset({Action.VERIFY_PASS, Action.VERIFY_FAIL}),
    Role.ADMIN: frozenset(),
}

#: Actions a department user may only *request*; a dispatcher approves them.
REQUEST_ONLY: Final[dict[Role, frozenset[Action]]] = {
    Role.DEPARTMENT: frozenset({Action.EXTEND, Action.SUSPEND}),
}
#: the actions that decide a pending request (``approve`` applies it, ``reject`` leaves the case)
DECISIONS: Final = frozenset({Action.APPROVE, Action.REJECT})
#: what a request may ask for (the ``kind`` of a ``case_requests`` row)
REQUESTABLE: Final = frozenset().union(*REQUEST_ONLY.values())


def _as_role(value: Role | str) -> Role:
    return as_member(Role, value, "role")


def roles_for(action: Action | str) -> tuple[Role, ...]:
    act = as_action(action)
    return tuple(r for r in Role if act in ROLE_ACTIONS[r])


def actions_for(role: Role | str) -> frozenset[Action]:
    return ROLE_ACTIONS[_as_role(role)]


def is_request_only(role: Role | str, action: Action | str) -> bool:
    """True when ``role`` may only ask for ``action`` (a department's extend/suspend)."""
    return as_action(action) in REQUEST_ONLY.get(_as_role(role), frozenset())


def _same_department(a: Any, b: Any) -> bool:
    if a is None or b is None or a == "" or b == "":
        return False
    return str(a) == str(b)


def check_permission(role: Role | str, action: Action | str, *,
                     user_department: Any = None, case_department: Any = None) -> None:
    """Raise :class:`PermissionDenied` unless ``role`` may perform ``action``.

    Department users act only on cases of their own department; a department user
    without a department may do nothing.
    """
    r, act = _as_role(role), as_action(action)
    label = ROLE_LABELS_ZH.get(r, "")
    if act not in ROLE_ACTIONS[r]:
        who = ", ".join(x.value for x in roles_for(act)) or "nobody"
        raise PermissionDenied(
            f"role '{r.value}' ({label}) may not '{act.value}' (allowed for: {who})",
            role=r, action=act,
        )
    if r is Role.DEPARTMENT:
        if user_department is None or user_department == "":
            raise PermissionDenied(
                f"department user without a department may not '{act.value}'",
                role=r, action=act,
            )
        if not _same_department(user_department, case_department):
            raise PermissionDenied(
                f"department '{user_department}' may not '{act.value}' a case of "
                f"department '{case_department if case_department is not None else '(none)'}'",
                role=r, action=act,
            )


#: who acts for an assisting department (协办) on its part of a case: the department itself, or the
#: command center (a dispatcher) on its behalf, naming the department
ASSIST_ROLES: Final = frozenset({Role.DEPARTMENT, Role.DISPATCHER})


def check_assist(role: Role | str, action: Action | str, *, user_department: Any = None,
                 department: Any = None, assisting: Iterable[str] = ()) -> None:
    """Raise :class:`PermissionDenied` unless ``role`` may take ``action`` (``assist_sign`` /
    ``assist_reply``) for the assisting part of ``department`` on a case whose live assisting
    departments are ``assisting``. A department user acts only for its own department, and only
    where it assists; the lead department and any third department are refused (403)."""
    r, act = _as_role(role), as_action(action)
    require(r, ASSIST_ROLES, f"'{act.value}' (协办) for a department")
    assisting = {str(a) for a in assisting}
    if r is Role.DEPARTMENT:
        if not user_department:
            raise PermissionDenied(f"department user without a department may not '{act.value}'", role=r, action=act)
        if department not in (None, "") and not _same_department(user_department, department):
            raise PermissionDenied(f"department '{user_department}' may not '{act.value}' for department "
                                   f"'{department}'", role=r, action=act)
        department = user_department
    elif not department:
        raise ValidationFailed(f"'{act.value}' on behalf of an assisting department needs that department",
                               field="department")
    if str(department or "") not in assisting:
        raise PermissionDenied(f"department '{department or '(none)'}' does not assist (协办) on this case; "
                               f"assisting: {', '.join(sorted(assisting)) or '(none)'}", role=r, action=act)


def assist_actions(role: Role | str, *, user_department: Any = None, assisting: Iterable[str] = ()) -> list[Action]:
    """The assisting actions ``role`` may be offered on a case (a department: where it assists)."""
    r = _as_role(role)
    if r is Role.DEPARTMENT:
        return [Action.ASSIST_SIGN, Action.ASSIST_REPLY] if str(user_department or "") in set(assisting) else []
    return [Action.ASSIST_SIGN, Action.ASSIST_REPLY] if r in ASSIST_ROLES and assisting else []


def may_see_assisted(role: Role | str, *, user_department: Any = None, assisting: Iterable[str] = ()) -> bool:
    """A department also sees the cases it assists on (its part in its queue, the case page)."""
    return _as_role(role) is not Role.DEPARTMENT or str(user_department or "") in {str(a) for a in assisting}


def may(role: Role | str, action: Action | str, *,
        user_department: Any = None, case_department: Any = None) -> bool:
    try:
        check_permission(role, action, user_department=user_department,
                         case_department=case_department)
    except PermissionDenied:
        return False
    return True


def check_edit(role: Role | str, *, user_department: Any = None, case_department: Any = None,
               submitted_by_them: bool = False, case_accepted: bool = True) -> None:
    """Raise :class:`PermissionDenied` unless ``role`` may change a case's content (title, text,
    place, category, channel, priority) — what a pushed or imported record does to a known case.

    A dispatcher edits any case; a department only its own department's cases; whoever submitted a
    case may still correct it until the command center accepts (registers) it."""
    r = _as_role(role)
    if r is Role.DISPATCHER:
        return
    if r is Role.DEPARTMENT and user_department and _same_department(user_department, case_department):
        return
    if submitted_by_them and not case_accepted:
        return
    if r is Role.DEPARTMENT:
        raise PermissionDenied(f"department '{user_department or '(none)'}' may not change a case of department "
                               f"'{case_department if case_department is not None else '(none)'}'", role=r)
    raise PermissionDenied(f"role '{r.value}' ({ROLE_LABELS_ZH.get(r, '')}) may not change a case it did not "
                           f"submit (allowed for: dispatcher; department on its own cases)", role=r)


def available_actions(role: Role | str, state, *, user_department: Any = None, case_department: Any = None,
                      pending: Iterable[str] = (), blocked: Iterable[Action] = ()) -> list[Action]:
    """What ``role`` may do to a case now (the buttons a screen offers, ``actions`` in the API):
    the lifecycle's actions from ``state`` that the matrix allows, without a request-only action
    whose request is already pending (``pending``: the kinds of the case's pending requests), and
    with ``approve`` / ``reject`` while a request waits and the role may decide it; without what the
    case's 退单 / 审定 rule refuses now (``blocked``: :func:`incidents.lifecycle.blocked_actions`)."""
    from incidents.lifecycle import allowed_actions
    pending = frozenset(str(k) for k in pending)
    blocked = frozenset(blocked)

    def ok(a: Action) -> bool:
        return may(role, a, user_department=user_department, case_department=case_department)
    out = [a for a in allowed_actions(state) if a not in blocked and ok(a)
           and not (is_request_only(role, a) and a.value in pending)]
    if pending:
        out += [a for a in (Action.APPROVE, Action.REJECT) if ok(a)]
    return out


# --------------------------------------------------------------------------- other capabilities

#: may push records into a feed (each resulting action is still checked against the matrix)
PUSH_ROLES: Final = frozenset({Role.DISPATCHER, Role.DEPARTMENT, Role.INSPECTOR, Role.ADMIN})
#: may create a case (REST API, Open311 POST)
CREATE_ROLES: Final = frozenset({Role.DISPATCHER, Role.INSPECTOR, Role.DEPARTMENT, Role.ADMIN})
#: may read the KPI brief, /api/v1/kpis and the brief's exports
KPI_ROLES: Final = frozenset({Role.LEADER, Role.ADMIN, Role.DISPATCHER})
#: may acknowledge a wall alarm
ACK_ROLES: Final = frozenset({Role.DISPATCHER, Role.LEADER, Role.ADMIN})
#: may open the workbench (queue and case pages)
WORKBENCH_ROLES: Final = frozenset({Role.DISPATCHER, Role.DEPARTMENT, Role.INSPECTOR, Role.LEADER, Role.ADMIN})


def require(role: Role | str, allowed: Iterable[Role], what: str) -> None:
    """Raise :class:`PermissionDenied` unless ``role`` is one of ``allowed`` (``what``: what it tried)."""
    r = _as_role(role)
    allowed = frozenset(allowed)
    if r not in allowed:
        who = ", ".join(sorted(x.value for x in allowed)) or "nobody"
        raise PermissionDenied(f"role '{r.value}' ({ROLE_LABELS_ZH.get(r, '')}) may not {what} "
                               f"(allowed for: {who})", role=r)


def require_feed(token_feeds: str | None, feed: str) -> None:
    """A token bound to feeds (``api_tokens.feeds``, comma-separated) writes only those feeds."""
    if token_feeds is None:
        return
    bound = {f.strip() for f in token_feeds.split(",") if f.strip()}
    if feed not in bound:
        raise PermissionDenied(f"this token may write only the feed(s) {', '.join(sorted(bound)) or '(none)'}, "
                               f"not {feed!r}")


# --------------------------------------------------------------------------- seeing a case and its photos

#: what :func:`case_scope` answers for a user who sees no case at all (a department user without one)
NO_CASES: Final = ""


def case_scope(role: Role | str, user_department: Any = None) -> Optional[str]:
    """Which cases a user sees — the one home of the case-visibility rule, asked by
    :func:`may_see_case` (one case) and by the read models' SQL (``queries.cases.scope_conditions``:
    the queue, the case panel, the API's list and detail, Open311): ``None`` every case, else the
    code of the one department whose cases they see (``NO_CASES`` when a department user has none)."""
    if _as_role(role) is Role.DEPARTMENT:
        return str(user_department) if user_department else NO_CASES
    return None


def may_see_case(role: Role | str, *, user_department: Any = None, case_department: Any = None) -> bool:
    """Department users see their own department's cases only; every other role sees every case."""
    scope = case_scope(role, user_department)
    return scope is None or (scope != NO_CASES and _same_department(scope, case_department))


#: photos can show faces, number plates and doors: the wall's viewers (and kiosk screens) see a case
#: without personal data (DESIGN §3), so they see that it has photos, not the photos. Every other role
#: sees the photos of exactly the cases it sees (``may_see_case``).
MEDIA_ROLES: Final = frozenset({Role.LEADER, Role.DISPATCHER, Role.DEPARTMENT, Role.INSPECTOR, Role.ADMIN})


def check_media(role: Role | str, *, user_department: Any = None, case_department: Any = None) -> None:
    """Raise :class:`PermissionDenied` unless ``role`` may open the photos of a case: a role that
    may see the case (:func:`may_see_case`; a door answers a case the user may not see as not found,
    before it asks this), and one of ``MEDIA_ROLES``."""
    if not may_see_case(role, user_department=user_department, case_department=case_department):
        raise PermissionDenied(f"department '{user_department or '(none)'}' may not open the photos of a case "
                               f"of department '{case_department if case_department is not None else '(none)'}'",
                               role=_as_role(role))
    require(role, MEDIA_ROLES, "open case photos")


def may_see_media(role: Role | str, *, user_department: Any = None, case_department: Any = None) -> bool:
    try:
        check_media(role, user_department=user_department, case_department=case_department)
    except PermissionDenied:
        return False
    return True


# --------------------------------------------------------------------------- personal data

#: roles that see a reporter's name and phone; everyone else sees them masked
PERSONAL_DATA_ROLES: Final = frozenset({Role.DISPATCHER, Role.LEADER, Role.ADMIN})


def reporter_view(name: str | None, phone: str | None, role) -> tuple[str, str]:
    """The reporter's name and phone as ``role`` may see them ("王**", "138****1234" when masked)."""
    name, phone = name or "", phone or ""
    if role is not None and Role(str(role)) in PERSONAL_DATA_ROLES:
        return name, phone
    masked_phone = phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "*" * len(phone)
    return (name[0] + "**" if name else ""), masked_phone


# phone numbers (mainland mobiles, landlines with area code, 7+ digit runs) and 18-digit ID cards
_ID_CARD = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")
_PHONE = re.compile(r"(?<![\dA-Za-z])(\+?\d[\d\- ]{5,}\d)(?![\dA-Za-z])")


def mask_personal_text(text: str | None, role=None) -> str:
    """Free text as ``role`` may see it: ID-card numbers and phone numbers masked for anyone who
    may not see personal data (``role`` None = the public)."""
    text = text or ""
    if role is not None and Role(str(role)) in PERSONAL_DATA_ROLES:
        return text
    text = _ID_CARD.sub(lambda m: m.group(1) + "********" + m.group(2)[-1:].rjust(4, "*"), text)

    def _phone(m: re.Match) -> str:
        digits = re.sub(r"\D", "", m.group(1))
        if len(digits) < 7:
            return m.group(1)
        return digits[:3] + "****" + digits[-4:] if len(digits) >= 11 else "*" * (len(digits) - 4) + digits[-4:]
    return _PHONE.sub(_phone, text)


# --------------------------------------------------------------------------- the citizen's 进度查询

#: a citizen (no login) proves a case is theirs with the last digits of the phone given at report
PROGRESS_KEY_DIGITS: Final = 4


def progress_key(phone: str | None) -> str | None:
    """The key a citizen queries a case's progress with: the last four digits of the phone given at
    report (whatever its punctuation); None when no phone is on record — such a case cannot be queried."""
    digits = re.sub(r"\D", "", phone or "")
    return digits[-PROGRESS_KEY_DIGITS:] if len(digits) >= PROGRESS_KEY_DIGITS else None


def may_query_progress(phone_on_record: str | None, digits: str) -> bool:
    """The public progress page shows a case to whoever gives its phone's last four digits; compared
    in constant time (the answer must not tell, by its speed, how many digits were right)."""
    key = progress_key(phone_on_record)
    return key is not None and hmac.compare_digest(key.encode(), (digits or "").encode())


__all__ = ["ASSIST_ROLES", "assist_actions", "check_assist", "may_see_assisted", "ACK_ROLES", "CREATE_ROLES", "DECISIONS", "KPI_ROLES", "MEDIA_ROLES", "PERSONAL_DATA_ROLES", "PUSH_ROLES",
           "REQUESTABLE", "REQUEST_ONLY", "ROLE_ACTIONS", "WORKBENCH_ROLES", "actions_for", "available_actions",
           "NO_CASES", "case_scope", "check_edit", "check_media", "check_permission", "is_request_only", "may_see_case",
           "may_see_media",
           "mask_personal_text", "may", "may_query_progress", "progress_key", "reporter_view", "require", "require_feed",
           "roles_for"]
