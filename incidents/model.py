"""Enums and value objects of the domain. Pure: stdlib only.

Screens and services ask questions of these enums ("is it open?") instead of
listing string literals, so a new state only has to be added here.
"""
from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    REPORTED = "reported"        # 上报
    REGISTERED = "registered"    # 立案
    DISPATCHED = "dispatched"    # 已派遣 (deadline clock starts)
    IN_PROGRESS = "in_progress"  # 处置中 (signed)
    RESOLVED = "resolved"        # 已反馈
    CLOSED = "closed"            # 已结案
    VOIDED = "voided"            # 已作废
    SUSPENDED = "suspended"      # 挂账

    @property
    def is_open(self) -> bool:
        return self not in (State.CLOSED, State.VOIDED)

    @property
    def is_with_department(self) -> bool:
        """The department's clock is running (or paused) in these states."""
        return self in (State.DISPATCHED, State.IN_PROGRESS)

    @classmethod
    def open_states(cls) -> tuple["State", ...]:
        return tuple(s for s in cls if s.is_open)

    @classmethod
    def running_states(cls) -> tuple["State", ...]:
        """States whose deadline clock runs (the case is with a department): the traffic light's."""
        return tuple(s for s in cls if s.is_with_department)


class Action(StrEnum):
    REGISTER = "register"
    VOID = "void"
    DISPATCH = "dispatch"
    SIGN = "sign"
    RETURN = "return"
    REASSIGN = "reassign"
    EXTEND = "extend"
    SUSPEND = "suspend"
    RESUME = "resume"
    RESOLVE = "resolve"
    VERIFY_PASS = "verify_pass"
    VERIFY_FAIL = "verify_fail"
    MERGE = "merge"
    SUPERVISE = "supervise"
    REOPEN = "reopen"
    APPROVE = "approve"          # a dispatcher grants a department's pending request (extend / suspend)
    REJECT = "reject"            # … or turns it down
    ARBITRATE = "arbitrate"      # 审定: after N returns a dispatcher rules which department handles it; no return
    ASSIST_SIGN = "assist_sign"    # 协办签收: an assisting department signs for its part of a case
    ASSIST_REPLY = "assist_reply"  # 协办回复: … and replies (with a note); neither moves the case's state
    CONTACT = "contact"          # 先行联系: the department records its first contact with the citizen
    REVISIT = "revisit"          # 回访: the hotline asks the citizen after closure; 不满意 sends it back (重办)
    LINK_REPEAT = "link_repeat"  # 重复诉求: this case (the child) repeats an earlier one (its parent); no state change


#: actions after which a case's milestones alone (its register, first and last dispatch, final
#: resolve, first and last closure) no longer tell what it was at an earlier instant: they send it
#: back, aside or out, or move its clock. A case's ``revised_at`` is the time of its last one; at any
#: instant after that, the KPIs read the case from its fact row with the later milestones masked,
#: and only the cases revised after the instant are replayed from their events (DESIGN §6).
#: Not here: ``arbitrate`` (a forward dispatch; it follows a return, which revised the case) and ``sign``
#: (the 签收 milestones — first sign-for and the first dispatch's sign-for deadline — are fixed once set;
#: where the pack starts the 处置 clock at the 签收, a sign-for after the instant sets a deadline later
#: than it, so the case was no more overdue then than its fact row says).
REVISING_ACTIONS = frozenset({Action.RETURN, Action.REASSIGN, Action.EXTEND, Action.SUSPEND, Action.RESUME,
                              Action.VOID, Action.MERGE, Action.VERIFY_FAIL, Action.REOPEN})


#: a dispatch of either kind: an ``arbitrate`` (审定) is a dispatch the department may no longer
#: return; every count of dispatches (派遣数, the first and last dispatch) counts both
DISPATCH_ACTIONS = (Action.DISPATCH, Action.ARBITRATE)


#: what an assisting department (协办) does to its own part of a case (``case_assignments``): the lead
#: department (主办, ``Incident.department_code``) keeps the case's state; these move only the part
ASSIST_ACTIONS = frozenset({Action.ASSIST_SIGN, Action.ASSIST_REPLY})
#: actions that end the assisting parts of the current dispatch (the case leaves its departments):
#: a part not yet replied to and not yet due then no longer counts in 协办按时回复率
ASSIST_ENDING_ACTIONS = frozenset({Action.RETURN, Action.REOPEN, Action.VOID, Action.MERGE})


class ResolveOutcome(StrEnum):
    """What a department's resolve (处置反馈) says it did: the problem is solved on the ground, or
    it was explained to the citizen (not solvable, not ours to solve, already lawful …).
    A resolve that names none is 实际解决 (``services.transition``: the outcome a department
    reports unless it chooses 解释说明)."""
    SOLVED = "solved"            # 实际解决
    EXPLAINED = "explained"      # 解释说明


class RevisitResult(StrEnum):
    """The citizen's answer to a 回访 (follow-up call after closure)."""
    SATISFIED = "satisfied"              # 满意
    BASICALLY_SATISFIED = "basic"        # 基本满意
    UNSATISFIED = "unsatisfied"          # 不满意: the case goes back to the same department (重办)
    UNREACHABLE = "unreachable"          # 未联系上: not reached; the closure may be revisited again

    @property
    def reached(self) -> bool:
        return self is not RevisitResult.UNREACHABLE

    @property
    def satisfied(self) -> bool:
        return self in (RevisitResult.SATISFIED, RevisitResult.BASICALLY_SATISFIED)

    @property
    def redo(self) -> bool:
        """不满意 reopens the case to the department that handled it (重办)."""
        return self is RevisitResult.UNSATISFIED


class RequestStatus(StrEnum):
    """A department's request (``case_requests``): only an approved one changes the case."""

    PENDING = "pending"          # 待审批
    APPROVED = "approved"        # 已批准
    REJECTED = "rejected"        # 已驳回


class MediaStage(StrEnum):
    """When a photo or link was attached to a case (incidents.media): with the report (the
    citizen's or inspector's photo), with the department's resolve (after), or at verification."""
    REPORT = "report"
    RESOLVE = "resolve"
    VERIFY = "verify"


class Role(StrEnum):
    VIEWER = "viewer"
    LEADER = "leader"
    DISPATCHER = "dispatcher"
    DEPARTMENT = "department"
    INSPECTOR = "inspector"
    ADMIN = "admin"


class Channel(StrEnum):
    HOTLINE = "12345"            # 12345 热线
    GRID = "grid"                # 网格巡查
    IOT = "iot"                  # 物联感知
    VIDEO = "video"              # 视频识别
    APP = "app"                  # 市民App


#: the channels whose cases a citizen raised (回访, 先行联系, 实际解决 are theirs) when a pack names none
#: (``[workflow] citizen_channels``); Open311 requests arrive on the ``app`` channel
DEFAULT_CITIZEN_CHANNELS = (Channel.HOTLINE.value, Channel.APP.value)


class Priority(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class Light(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class TimeUnit(StrEnum):
    WORK_HOURS = "work_hours"        # 工作时
    WORK_DAYS = "work_days"          # 工作日
    NATURAL_HOURS = "natural_hours"  # 自然时 (emergencies)


class CategoryKind(StrEnum):
    COMPONENT = "component"  # 部件
    EVENT = "event"          # 事件


STATE_LABELS_ZH = {
    State.REPORTED: "上报", State.REGISTERED: "立案", State.DISPATCHED: "已派遣",
    State.IN_PROGRESS: "处置中", State.RESOLVED: "已反馈", State.CLOSED: "已结案",
    State.VOIDED: "已作废", State.SUSPENDED: "挂账",
}
STATE_LABELS_EN = {s: s.value.replace("_", " ").title() for s in State}

CHANNEL_LABELS_ZH = {
    Channel.HOTLINE: "12345热线", Channel.GRID: "网格巡查", Channel.IOT: "物联感知",
    Channel.VIDEO: "视频识别", Channel.APP: "市民App",
}
CHANNEL_LABELS_EN = {
    Channel.HOTLINE: "12345 hotline", Channel.GRID: "Grid patrol", Channel.IOT: "IoT sensor",
    Channel.VIDEO: "Video AI", Channel.APP: "Citizen app",
}
ROLE_LABELS_ZH = {
    Role.VIEWER: "观察员", Role.LEADER: "领导", Role.DISPATCHER: "派遣员",
    Role.DEPARTMENT: "专业部门", Role.INSPECTOR: "监督员", Role.ADMIN: "管理员",
}
OUTCOME_LABELS_ZH = {ResolveOutcome.SOLVED: "实际解决", ResolveOutcome.EXPLAINED: "解释说明"}
OUTCOME_LABELS_EN = {ResolveOutcome.SOLVED: "Solved", ResolveOutcome.EXPLAINED: "Explained"}
REVISIT_LABELS_ZH = {RevisitResult.SATISFIED: "满意", RevisitResult.BASICALLY_SATISFIED: "基本满意",
                     RevisitResult.UNSATISFIED: "不满意", RevisitResult.UNREACHABLE: "未联系上"}
REVISIT_LABELS_EN = {RevisitResult.SATISFIED: "Satisfied", RevisitResult.BASICALLY_SATISFIED: "Basically satisfied",
                     RevisitResult.UNSATISFIED: "Unsatisfied", RevisitResult.UNREACHABLE: "Not reached"}
