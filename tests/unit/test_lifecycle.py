"""The lifecycle transition table and the permission table (DESIGN §3). Pure, no DB."""
from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest

from incidents.lifecycle import (
    DomainError,
    NotFound,
    PermissionDenied,
    StaleVersion,
    TransitionError,
    ValidationFailed,
    allowed_actions,
    is_allowed,
    next_state,
)
from incidents.permissions import check_permission, is_request_only, may
from incidents.model import STATE_LABELS_ZH, Action, Role, State

S, A = State, Action
SAME = "same"  # expectation marker: the state does not change

# Written independently of incidents.lifecycle.TRANSITIONS, straight from DESIGN §3, action by action.
IN_HAND = (S.DISPATCHED, S.IN_PROGRESS)  # a department holds the case (dispatched, or signed for)
EXPECTED: dict[tuple[State, Action], State | str] = {
    (S.REPORTED, A.REGISTER): S.REGISTERED,
    **{(s, A.VOID): S.VOIDED for s in (S.REPORTED, S.REGISTERED)},
    (S.REGISTERED, A.DISPATCH): S.DISPATCHED,
    (S.REGISTERED, A.ARBITRATE): S.DISPATCHED,   # 审定: a dispatch after N returns
    (S.DISPATCHED, A.SIGN): S.IN_PROGRESS,
    **{(s, A.RETURN): S.REGISTERED for s in IN_HAND},
    **{(s, A.REASSIGN): S.DISPATCHED for s in IN_HAND},
    **{(s, A.EXTEND): SAME for s in IN_HAND},
    **{(s, A.SUSPEND): S.SUSPENDED for s in (S.REGISTERED, *IN_HAND)},
    (S.SUSPENDED, A.RESUME): S.DISPATCHED,  # with resume_to=DISPATCHED (see below)
    **{(s, A.RESOLVE): S.RESOLVED for s in IN_HAND},
    (S.RESOLVED, A.VERIFY_PASS): S.CLOSED,
    (S.RESOLVED, A.VERIFY_FAIL): S.DISPATCHED,
    **{(s, A.MERGE): S.VOIDED for s in (S.REPORTED, S.REGISTERED, *IN_HAND)},
    (S.CLOSED, A.REOPEN): S.REGISTERED,
    **{(s, A.SUPERVISE): SAME for s in State if s.is_open},
    **{(s, A.CONTACT): SAME for s in IN_HAND},      # 先行联系: recorded while the department holds it
    (S.CLOSED, A.REVISIT): SAME,                    # 回访: closed stays closed (不满意: see below)
    **{(s, A.LINK_REPEAT): SAME for s in State if s is not S.VOIDED},   # 重复诉求: a link, no state change
}

ALL_PAIRS = list(itertools.product(State, Action))


def test_product_is_complete():
    # approve / reject decide a department's request: no state transition of their own (the approved
    # extend / suspend is the transition), so the table has no row for them; nor have assist_sign /
    # assist_reply (协办: they move an assisting department's part, never the case; lifecycle.check_assist)
    assert len(ALL_PAIRS) == len(State) * len(Action) == 184
    assert len(EXPECTED) == 41


def test_an_unsatisfied_revisit_sends_the_closed_case_back_to_its_department():
    assert next_state(S.CLOSED, A.REVISIT, redo=True) is S.DISPATCHED
    assert next_state(S.CLOSED, A.REVISIT, redo=False) is S.CLOSED
    with pytest.raises(TransitionError):
        next_state(S.RESOLVED, A.REVISIT, redo=True)


@pytest.mark.parametrize(("state", "action"), ALL_PAIRS, ids=lambda v: v.value)
def test_every_state_action_pair(state: State, action: Action):
    expected = EXPECTED.get((state, action))
    if expected is None:
        with pytest.raises(TransitionError) as info:
            next_state(state, action, resume_to=S.DISPATCHED)
        err = info.value
        msg = str(err)
        assert f"'{action.value}'" in msg
        assert f"'{state.value}'" in msg
        assert STATE_LABELS_ZH[state] in msg
        assert err.code == "invalid_transition"
        assert isinstance(err, DomainError)
        assert err.state is state and err.action is action
        assert set(err.allowed) == {a for (s, a) in EXPECTED if s is state}
        for a in err.allowed:
            assert a.value in msg.split("allowed from here:")[1]
        assert not is_allowed(state, action)
    else:
        want = state if expected == SAME else expected
        assert next_state(state, action, resume_to=S.DISPATCHED) is want
        assert is_allowed(state, action)


@pytest.mark.parametrize("state", list(State), ids=lambda v: v.value)
def test_allowed_actions_match_table(state: State):
    assert set(allowed_actions(state)) == {a for (s, a) in EXPECTED if s is state}
    assert len(set(allowed_actions(state))) == len(allowed_actions(state))


def test_message_example_from_the_brief():
    with pytest.raises(TransitionError) as info:
        next_state(S.REGISTERED, A.SIGN)
    assert str(info.value) == (
        "cannot 'sign' a case in state 'registered' (立案); "
        "allowed from here: dispatch, arbitrate, void, suspend, merge, supervise, link_repeat"
    )


def test_voided_is_final_and_says_so():
    assert allowed_actions(S.VOIDED) == ()
    with pytest.raises(TransitionError, match="allowed from here: none"):
        next_state(S.VOIDED, A.REOPEN)


@pytest.mark.parametrize("before", [S.REGISTERED, S.DISPATCHED, S.IN_PROGRESS])
def test_resume_returns_to_state_before_suspend(before: State):
    suspended = next_state(before, A.SUSPEND)
    assert suspended is S.SUSPENDED
    assert next_state(suspended, A.RESUME, resume_to=before) is before
    assert next_state("suspended", "resume", resume_to=before.value) is before


def test_resume_needs_a_valid_resume_to():
    with pytest.raises(ValidationFailed) as info:
        next_state(S.SUSPENDED, A.RESUME)
    assert info.value.code == "invalid"
    for bad in (S.CLOSED, S.VOIDED, S.RESOLVED, S.SUSPENDED, S.REPORTED):
        with pytest.raises(ValidationFailed, match="cannot resume"):
            next_state(S.SUSPENDED, A.RESUME, resume_to=bad)


def test_strings_are_accepted_and_unknowns_are_validation_errors():
    assert next_state("registered", "dispatch") is S.DISPATCHED
    with pytest.raises(ValidationFailed):
        next_state("registered", "teleport")
    with pytest.raises(ValidationFailed):
        next_state("limbo", "dispatch")


def test_happy_path_and_rework():
    s = S.REPORTED
    for a in (A.REGISTER, A.DISPATCH, A.SIGN, A.RESOLVE, A.VERIFY_FAIL, A.SIGN, A.RESOLVE,
              A.VERIFY_PASS, A.REOPEN, A.DISPATCH):
        s = next_state(s, a)
    assert s is S.DISPATCHED


# --------------------------------------------------------------------------- permissions

ROLE_MAY: dict[Role, set[Action]] = {
    Role.VIEWER: set(),
    Role.LEADER: {A.SUPERVISE},
    Role.DISPATCHER: {A.REGISTER, A.VOID, A.DISPATCH, A.REASSIGN, A.EXTEND, A.SUSPEND,
                      A.RESUME, A.MERGE, A.REOPEN, A.APPROVE, A.REJECT, A.ARBITRATE, A.REVISIT,
                      A.LINK_REPEAT},
    Role.DEPARTMENT: {A.SIGN, A.RETURN, A.RESOLVE, A.EXTEND, A.SUSPEND, A.CONTACT},
    Role.INSPECTOR: {A.VERIFY_PASS, A.VERIFY_FAIL},
    Role.ADMIN: set(),
}


@pytest.mark.parametrize(("role", "action"), list(itertools.product(Role, Action)),
                         ids=lambda v: v.value)
def test_permission_matrix(role: Role, action: Action):
    kw = {"user_department": "城管局", "case_department": "城管局"}
    if action in ROLE_MAY[role]:
        check_permission(role, action, **kw)
        assert may(role, action, **kw)
    else:
        with pytest.raises(PermissionDenied) as info:
            check_permission(role, action, **kw)
        assert info.value.code == "forbidden"
        assert isinstance(info.value, DomainError)
        assert f"'{role.value}'" in str(info.value)
        assert f"'{action.value}'" in str(info.value)
        assert not may(role, action, **kw)


@pytest.mark.parametrize("action", sorted(ROLE_MAY[Role.DEPARTMENT]), ids=lambda v: v.value)
def test_department_only_on_own_cases(action: Action):
    assert may(Role.DEPARTMENT, action, user_department="水务局", case_department="水务局")
    assert may(Role.DEPARTMENT, action, user_department=7, case_department="7")
    with pytest.raises(PermissionDenied, match="水务局.*园林局") as info:
        check_permission(Role.DEPARTMENT, action, user_department="水务局",
                         case_department="园林局")
    assert info.value.code == "forbidden"
    # a case with no department yet is nobody's
    assert not may(Role.DEPARTMENT, action, user_department="水务局", case_department=None)
    # a department user without a department may do nothing
    with pytest.raises(PermissionDenied, match="without a department"):
        check_permission(Role.DEPARTMENT, action, user_department=None, case_department="水务局")
    assert not may(Role.DEPARTMENT, action, user_department="", case_department="")


def test_other_roles_ignore_departments():
    assert may(Role.DISPATCHER, A.DISPATCH)
    assert may(Role.DISPATCHER, A.REASSIGN, user_department=None, case_department="园林局")
    assert may(Role.INSPECTOR, A.VERIFY_PASS, case_department="园林局")
    assert may("leader", "supervise")


def test_dispatcher_may_not_supervise_and_leader_may_not_dispatch():
    assert not may(Role.DISPATCHER, A.SUPERVISE)
    with pytest.raises(PermissionDenied, match=r"allowed for: dispatcher"):
        check_permission(Role.LEADER, A.DISPATCH)


@pytest.mark.parametrize(("role", "action"), list(itertools.product(Role, Action)),
                         ids=lambda v: v.value)
def test_is_request_only(role: Role, action: Action):
    expected = role is Role.DEPARTMENT and action in (A.EXTEND, A.SUSPEND)
    assert is_request_only(role, action) is expected


def test_the_actions_offered_follow_the_pending_requests():
    from incidents.permissions import available_actions
    own = {"user_department": "城管局", "case_department": "城管局"}
    assert available_actions(Role.DEPARTMENT, State.IN_PROGRESS, **own) == [A.RESOLVE, A.RETURN, A.EXTEND, A.SUSPEND,
                                                                           A.CONTACT]
    # a department's extend waits for a decision: no second one; nobody but a dispatcher decides
    assert available_actions(Role.DEPARTMENT, State.IN_PROGRESS, pending=["extend"], **own) == [
        A.RESOLVE, A.RETURN, A.SUSPEND, A.CONTACT]
    assert available_actions(Role.DISPATCHER, State.IN_PROGRESS, pending=["extend"]) == [
        A.REASSIGN, A.EXTEND, A.SUSPEND, A.MERGE, A.LINK_REPEAT, A.APPROVE, A.REJECT]
    assert A.APPROVE not in available_actions(Role.DISPATCHER, State.IN_PROGRESS)      # nothing to decide
    assert available_actions(Role.LEADER, State.IN_PROGRESS, pending=["suspend"]) == [A.SUPERVISE]


def test_after_exactly_n_returns_the_next_dispatch_is_an_arbitration():
    from incidents.lifecycle import blocked_actions, check_blocked
    from incidents.permissions import available_actions
    n = 2
    for returns in (0, 1):
        assert blocked_actions(return_count=returns, max_returns=n, arbitrated=False) == {A.ARBITRATE}
        check_blocked(A.DISPATCH, return_count=returns, max_returns=n, arbitrated=False)
        with pytest.raises(ValidationFailed, match="use 'dispatch'"):
            check_blocked(A.ARBITRATE, return_count=returns, max_returns=n, arbitrated=False)
    assert blocked_actions(return_count=2, max_returns=n, arbitrated=False) == {A.DISPATCH}
    with pytest.raises(ValidationFailed, match="arbitration"):
        check_blocked(A.DISPATCH, return_count=2, max_returns=n, arbitrated=False)
    check_blocked(A.ARBITRATE, return_count=2, max_returns=n, arbitrated=False)
    # what the dispatcher is offered follows the rule
    blocked = blocked_actions(return_count=2, max_returns=n, arbitrated=False)
    assert available_actions(Role.DISPATCHER, State.REGISTERED, blocked=blocked)[0] is A.ARBITRATE
    assert A.DISPATCH not in available_actions(Role.DISPATCHER, State.REGISTERED, blocked=blocked)
    assert A.ARBITRATE not in available_actions(Role.DISPATCHER, State.REGISTERED,
                                                blocked=blocked_actions(return_count=1, max_returns=n,
                                                                        arbitrated=False))


def test_an_arbitrated_case_can_no_longer_be_returned():
    from incidents.lifecycle import blocked_actions, check_blocked
    from incidents.permissions import available_actions
    own = {"user_department": "城管局", "case_department": "城管局"}
    blocked = blocked_actions(return_count=2, max_returns=2, arbitrated=True)
    assert A.RETURN in blocked
    with pytest.raises(ValidationFailed, match="can no longer return"):
        check_blocked(A.RETURN, return_count=2, max_returns=2, arbitrated=True)
    assert available_actions(Role.DEPARTMENT, State.DISPATCHED, blocked=blocked, **own) == [
        A.SIGN, A.RESOLVE, A.EXTEND, A.SUSPEND, A.CONTACT]


def test_a_closure_is_revisited_once_and_only_a_citizens_case():
    from incidents.lifecycle import blocked_actions
    from incidents.permissions import available_actions

    def offered(**kw):
        return available_actions(Role.DISPATCHER, State.CLOSED,
                                 blocked=blocked_actions(return_count=0, max_returns=2, arbitrated=False, **kw))
    assert offered(citizen=True, revisit_result=None) == [A.REOPEN, A.REVISIT, A.LINK_REPEAT]
    assert offered(citizen=True, revisit_result="unreachable") == [A.REOPEN, A.REVISIT, A.LINK_REPEAT]   # try again
    for done in ("satisfied", "basic", "unsatisfied"):
        assert offered(citizen=True, revisit_result=done) == [A.REOPEN, A.LINK_REPEAT]
    assert offered(citizen=False, revisit_result=None) == [A.REOPEN, A.LINK_REPEAT]
    assert available_actions(Role.DEPARTMENT, State.CLOSED, user_department="城管局", case_department="城管局") == []


# --------------------------------------------------------------------------- other errors


def test_stale_version_message():
    at = datetime(2026, 3, 2, 10, 15, 3, tzinfo=timezone.utc)
    err = StaleVersion("张三", at, expected=3, actual=4)
    assert err.code == "stale_version"
    assert err.changed_by == "张三" and err.changed_at == at
    assert str(err) == "changed by 张三 at 2026-03-02 10:15:03+00:00, reload"
    assert isinstance(err, DomainError)


def test_not_found_and_validation_codes():
    assert NotFound("case 42 not found").code == "not_found"
    assert str(NotFound("case 42 not found")) == "case 42 not found"
    v = ValidationFailed("reason required", field="note")
    assert v.code == "invalid" and v.field == "note"
    assert DomainError("x", code="custom").code == "custom"


@pytest.mark.parametrize("role", list(Role))
def test_reporter_details_are_masked_for_roles_without_access_to_personal_data(role):
    from incidents.permissions import PERSONAL_DATA_ROLES, reporter_view
    name, phone = reporter_view("王小明", "13812345678", role)
    if role in PERSONAL_DATA_ROLES:
        assert (name, phone) == ("王小明", "13812345678")
    else:
        assert (name, phone) == ("王**", "138****5678")
    assert reporter_view(None, "12345", role)[1] in ("12345", "*****")


# --------------------------------------------------------------------------- seeing a case and its photos

@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("user_department,case_department", [("330106-CGJ", "330106-CGJ"), ("330106-CGJ", "HZ-ZJJ"),
                                                             (None, "HZ-ZJJ"), ("330106-CGJ", None)])
def test_photos_follow_the_case_visibility_rule_and_viewers_never_see_them(role, user_department, case_department):
    """One rule: whoever may open a case's photos may see the case; of those who may see it, only the
    viewer (the wall, kiosks: a case without personal data) may not open its photos."""
    from incidents.lifecycle import PermissionDenied
    from incidents.permissions import case_scope, check_media, may_see_case, may_see_media
    dept = user_department if role is Role.DEPARTMENT else None
    sees = may_see_case(role, user_department=dept, case_department=case_department)
    photos = may_see_media(role, user_department=dept, case_department=case_department)
    assert photos == (sees and role is not Role.VIEWER)
    # the SQL scope and the one-case answer are the same rule
    scope = case_scope(role, dept)
    assert sees == (scope is None or (bool(scope) and scope == case_department))
    if not photos:
        with pytest.raises(PermissionDenied):
            check_media(role, user_department=dept, case_department=case_department)
    expected = role is not Role.DEPARTMENT or (dept is not None and dept == case_department)
    assert sees == expected
