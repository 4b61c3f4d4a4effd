"""The case lifecycle: transition table and domain errors. Pure: stdlib only.

DESIGN §3. Screens and services never hard-code which action is legal where: they ask
:func:`allowed_actions` / :func:`next_state` here, and who may act in :mod:`incidents.permissions`.
"""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Final, TypeVar

from incidents.model import STATE_LABELS_ZH, Action, Role, State

# --------------------------------------------------------------------------- errors


class DomainError(Exception):
    """Base of every error the domain raises on purpose. ``code`` is machine-readable."""

    code: str = "domain_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class TransitionError(DomainError):
    """An action that is not allowed from the case's current state."""

    code = "invalid_transition"

    def __init__(self, state: State, action: Action, allowed: tuple[Action, ...]) -> None:
        self.state = state
        self.action = action
        self.allowed = tuple(allowed)
        label = STATE_LABELS_ZH.get(state, "")
        here = ", ".join(a.value for a in self.allowed) if self.allowed else "none (final state)"
        super().__init__(
            f"cannot '{action.value}' a case in state '{state.value}' ({label}); "
            f"allowed from here: {here}"
        )


class PermissionDenied(DomainError):
    code = "forbidden"

    def __init__(self, message: str, *, role: Role | None = None,
                 action: Action | None = None) -> None:
        super().__init__(message)
        self.role = role
        self.action = action


class StaleVersion(DomainError):
    """Optimistic locking: the case changed since the actor loaded it."""

    code = "stale_version"

    def __init__(self, changed_by: str | None, changed_at: datetime | str | None, *,
                 expected: int | None = None, actual: int | None = None) -> None:
        self.changed_by = changed_by
        self.changed_at = changed_at
        self.expected = expected
        self.actual = actual
        if isinstance(changed_at, datetime):
            when = changed_at.isoformat(sep=" ", timespec="seconds")
        else:
            when = changed_at if changed_at is not None else "an unknown time"
        who = changed_by if changed_by else "someone else"
        super().__init__(f"changed by {who} at {when}, reload")


class NotFound(DomainError):
    code = "not_found"


class ValidationFailed(DomainError):
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --------------------------------------------------------------------------- transitions


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


STAYS: Final = _Marker("STAYS")                 # the state does not change
RESUME_PREVIOUS: Final = _Marker("RESUME_PREVIOUS")  # back to the state before suspend
REDO_IF_UNSATISFIED: Final = _Marker("REDO_IF_UNSATISFIED")  # 回访: stays closed, or 不满意 → 重办 (dispatched)

_S, _A = State, Action
_E = TypeVar("_E", bound=Enum)

# What a case a department holds (dispatched, or signed for: in progress) allows, in that order.
_WITH_DEPARTMENT: Final[dict[Action, State | _Marker]] = {
    _A.RESOLVE: _S.RESOLVED,
    _A.RETURN: _S.REGISTERED,
    _A.REASSIGN: _S.DISPATCHED,
    _A.EXTEND: STAYS,
    _A.SUSPEND: _S.SUSPENDED,
    _A.MERGE: _S.VOIDED,
    _A.SUPERVISE: STAYS,
    _A.CONTACT: STAYS,          # 先行联系: recorded, the case stays where it is
    _A.LINK_REPEAT: STAYS,      # 重复诉求: linked to its parent, the case stays where it is
}

# Written state by state, the main forward action first (the order allowed_actions returns).
TRANSITIONS: Final[dict[tuple[State, Action], State | _Marker]] = {
    (_S.REPORTED, _A.REGISTER): _S.REGISTERED,
    (_S.REPORTED, _A.VOID): _S.VOIDED,
    (_S.REPORTED, _A.MERGE): _S.VOIDED,
    (_S.REPORTED, _A.SUPERVISE): STAYS,
    (_S.REPORTED, _A.LINK_REPEAT): STAYS,

    (_S.REGISTERED, _A.DISPATCH): _S.DISPATCHED,
    (_S.REGISTERED, _A.ARBITRATE): _S.DISPATCHED,   # 审定: the dispatch after N returns (services.arbitration_due)
    (_S.REGISTERED, _A.VOID): _S.VOIDED,
    (_S.REGISTERED, _A.SUSPEND): _S.SUSPENDED,
    (_S.REGISTERED, _A.MERGE): _S.VOIDED,
    (_S.REGISTERED, _A.SUPERVISE): STAYS,
    (_S.REGISTERED, _A.LINK_REPEAT): STAYS,

    (_S.DISPATCHED, _A.SIGN): _S.IN_PROGRESS,
    **{(_S.DISPATCHED, a): to for a, to in _WITH_DEPARTMENT.items()},

    **{(_S.IN_PROGRESS, a): to for a, to in _WITH_DEPARTMENT.items()},

    (_S.RESOLVED, _A.VERIFY_PASS): _S.CLOSED,
    (_S.RESOLVED, _A.VERIFY_FAIL): _S.DISPATCHED,   # 返工: same department, rework +1
    (_S.RESOLVED, _A.SUPERVISE): STAYS,
    (_S.RESOLVED, _A.LINK_REPEAT): STAYS,

    (_S.SUSPENDED, _A.RESUME): RESUME_PREVIOUS,
    (_S.SUSPENDED, _A.SUPERVISE): STAYS,
    (_S.SUSPENDED, _A.LINK_REPEAT): STAYS,

    (_S.CLOSED, _A.REOPEN): _S.REGISTERED,
    (_S.CLOSED, _A.REVISIT): REDO_IF_UNSATISFIED,   # 回访 (citizen cases: services.check_revisit)
    (_S.CLOSED, _A.LINK_REPEAT): STAYS,             # a closed complaint found later to repeat an earlier one
    # voided: final, nothing allowed
}

#: States a case may be suspended from, hence the states ``resume`` may return to.
SUSPENDABLE_STATES: Final[tuple[State, ...]] = tuple(
    s for (s, a) in TRANSITIONS if a is Action.SUSPEND
)

_ALLOWED: dict[State, tuple[Action, ...]] = {
    s: tuple(a for (s2, a) in TRANSITIONS if s2 is s) for s in State
}


def as_member(kind: type[_E], value: _E | str, field: str) -> _E:
    """``value`` as a member of the enum ``kind``; ValidationFailed on ``field`` when it names none."""
    if type(value) is kind:     # already a member: the transitions' hot path (Enum() costs a µs)
        return value
    try:
        return kind(value)
    except ValueError:
        raise ValidationFailed(f"unknown {field} {value!r}", field=field) from None


def _as_state(value: State | str) -> State:
    return as_member(State, value, "state")


def as_action(value: Action | str) -> Action:
    """``value`` as an Action; ValidationFailed when it names none."""
    return as_member(Action, value, "action")


def allowed_actions(state: State | str) -> tuple[Action, ...]:
    """Actions the lifecycle allows from ``state`` (regardless of who acts)."""
    return _ALLOWED[_as_state(state)]


def is_allowed(state: State | str, action: Action | str) -> bool:
    return (_as_state(state), as_action(action)) in TRANSITIONS


def next_state(state: State | str, action: Action | str, *,
               resume_to: State | str | None = None, redo: bool = False) -> State:
    """The state after ``action``; raises :class:`TransitionError` when not allowed.

    ``resume`` needs ``resume_to``: the state the case was in before it was suspended.
    ``revisit`` leaves a closed case closed, or with ``redo`` (the citizen is 不满意) sends it back
    to its department (重办: dispatched, the clock starts again).
    """
    st, act = _as_state(state), as_action(action)
    target = TRANSITIONS.get((st, act))
    if target is None:
        raise TransitionError(st, act, _ALLOWED[st])
    if target is STAYS:
        return st
    if target is REDO_IF_UNSATISFIED:
        return State.DISPATCHED if redo else st
    if target is RESUME_PREVIOUS:
        if resume_to is None:
            raise ValidationFailed("resume needs the state before the suspension (resume_to)",
                                   field="resume_to")
        back = _as_state(resume_to)
        if back not in SUSPENDABLE_STATES:
            raise ValidationFailed(
                f"cannot resume to '{back.value}': a case is only suspended from "
                + ", ".join(s.value for s in SUSPENDABLE_STATES),
                field="resume_to",
            )
        return back
    assert isinstance(target, State)
    return target


def blocked_actions(*, return_count: int, max_returns: int, arbitrated: bool, citizen: bool = True,
                    revisit_result: str | None = None) -> frozenset[Action]:
    """What the 退单 / 审定 rule (DESIGN §3) refuses a case whatever its state: after ``max_returns``
    returns its next dispatch is an ``arbitrate`` (a plain ``dispatch`` is refused), before that there
    is nothing to arbitrate, and an arbitrated case can no longer be returned. And the 回访 rule
    (:func:`revisit_refusal`): only a citizen's case is revisited, once per closure that reached them."""
    out = {Action.DISPATCH} if (return_count or 0) >= max_returns else {Action.ARBITRATE}
    if arbitrated:
        out.add(Action.RETURN)
    if revisit_refusal(citizen=citizen, revisit_result=revisit_result):
        out.add(Action.REVISIT)
    return frozenset(out)


def revisit_refusal(*, citizen: bool, revisit_result: str | None) -> str | None:
    """Why a closed case may not be revisited (回访), or None: a case a citizen did not raise (its
    channel is none of the pack's ``citizen_channels``) has nobody to call back; a closure whose
    回访 reached the citizen (满意, 基本满意, 不满意) is done — only 未联系上 may be tried again, so a
    second 回访 of one closure can neither count twice nor send the case back twice.
    ``revisit_result``: the last 回访 of the current closure (None: none yet)."""
    from incidents.model import RevisitResult
    if not citizen:
        return "回访 is for cases a citizen raised (12345, app, Open311 …): this case came from another channel"
    if revisit_result is not None and RevisitResult(revisit_result).reached:
        return f"this closure was already revisited ({revisit_result}); a closure is revisited once"
    return None


def check_blocked(action: Action, *, return_count: int, max_returns: int, arbitrated: bool, citizen: bool = True,
                  revisit_result: str | None = None) -> None:
    """Raise :class:`ValidationFailed` (field ``action``) when :func:`blocked_actions` refuses ``action``."""
    if action not in blocked_actions(return_count=return_count, max_returns=max_returns, arbitrated=arbitrated,
                                     citizen=citizen, revisit_result=revisit_result):
        return
    if action is Action.DISPATCH:
        raise ValidationFailed(f"returned {return_count} times (limit {max_returns}): the next dispatch is an "
                               f"arbitration (审定): use 'arbitrate' with a note", field="action")
    if action is Action.ARBITRATE:
        raise ValidationFailed(f"arbitrate (审定) follows {max_returns} returns; this case was returned "
                               f"{return_count or 0} times: use 'dispatch'", field="action")
    if action is Action.REVISIT:
        raise ValidationFailed(revisit_refusal(citizen=citizen, revisit_result=revisit_result) or "", field="action")
    raise ValidationFailed("the case was dispatched by arbitration (审定): the department can no longer return it",
                           field="action")


# --------------------------------------------------------------------------- 主办 / 协办

#: states in which an assisting department (协办) may sign for and reply to its part: the case is with
#: its departments, on hold, or already resolved / closed by the lead (a late reply is still recorded).
#: Reported, registered (returned, reopened) and voided cases have no live assisting part.
ASSIST_STATES: Final[tuple[State, ...]] = (State.DISPATCHED, State.IN_PROGRESS, State.SUSPENDED, State.RESOLVED,
                                           State.CLOSED)


def check_assist(state: State | str, action: Action | str, *, signed: bool, replied: bool) -> None:
    """Raise unless an assisting part in this state may take ``action`` (assist_sign / assist_reply):
    a part signs once, replies once (a reply without a sign-for signs it too), and only while the
    case is in :data:`ASSIST_STATES`."""
    st, act = _as_state(state), as_action(action)
    if act not in (Action.ASSIST_SIGN, Action.ASSIST_REPLY):
        raise ValidationFailed(f"{act.value} is not an assisting department's action", field="action")
    if st not in ASSIST_STATES:
        raise TransitionError(st, act, ())
    if replied:
        raise ValidationFailed("this assisting part (协办) has already replied", field="action")
    if act is Action.ASSIST_SIGN and signed:
        raise ValidationFailed("this assisting part (协办) is already signed for", field="action")


__all__ = [
    "ASSIST_STATES", "check_assist",
    "blocked_actions", "check_blocked", "revisit_refusal", "REDO_IF_UNSATISFIED",
    "DomainError", "TransitionError", "PermissionDenied", "StaleVersion", "NotFound",
    "ValidationFailed", "STAYS", "RESUME_PREVIOUS", "TRANSITIONS", "SUSPENDABLE_STATES",
    "allowed_actions", "is_allowed", "next_state",
]
