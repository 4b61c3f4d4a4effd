"""KPIs (DESIGN §6): pure functions over frames with a fixed ``as_of``. Pure: stdlib + pandas.

Two frames describe the cases (the loaders in :mod:`incidents.queries.brief` build them with SQL):

* ``cases``: one row per case — ``id``, ``reported_at``, ``district_code``, ``department_code``,
  ``state``, ``deadline``, ``on_time`` (the columns as they are *now*), and for rebuilding a
  deadline ``base_hours`` (category limit × priority factor, in the category's clock),
  ``natural`` (True for natural-hour categories) and optionally ``from_sign`` (True when the pack's
  处置 clock starts at the department's 签收, ``[workflow] disposal_clock = "sign"``);
* ``events``: the timeline — ``incident_id``, ``id``, ``at``, ``action``, ``from_state``,
  ``to_state``, ``department_code`` (the case's department after the action), ``hours`` (extend),
  and optionally ``kind``: an ``approve`` event (a dispatcher granting a department's request)
  counts as the action it approved, its ``kind`` (``extend`` / ``suspend``); requests and
  rejections change nothing and the loaders leave them out.

What was true at ``as_of`` comes from the events up to ``as_of``; events after it are ignored.
The case row's deadline/on-time columns are used only where no later event can have changed them;
otherwise the deadline in force is rebuilt from the events (start of the clock, approved
extensions, suspended spans) with the calendar passed in, exactly as the services compute it.
Periods are half-open ``[start, end)``; every instant is an aware datetime (UTC inside).
"""
from __future__ import annotations

import calendar as _calendar
import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Optional
from zoneinfo import ZoneInfo

import pandas as pd

from incidents.model import State

UTC = timezone.utc

#: the department's clock runs (or is paused) in these states (``incidents.model`` is their home)
WITH_DEPARTMENT = tuple(s.value for s in State.running_states())
#: a 回访 that sent the case back (不满意 → 重办): the frames name it ``redo`` (:func:`_facts`); it
#: restarts the clock at the same department and is a rework, like a ``verify_fail``
REDO = "redo"
REVISIT = "revisit"
#: the 回访 events, whatever their result
REVISIT_EVENTS = (REVISIT, REDO)
CLOCK_STARTS = ("dispatch", "reassign", "verify_fail", REDO)
CLOCK_STOPS = ("return", "reopen")
REWORK_ACTIONS = ("verify_fail", "reopen", REDO)
MISDISPATCH_ACTIONS = ("return", "reassign")
#: actions after which the stored ``deadline`` no longer is the one in force earlier
DEADLINE_CHANGERS = CLOCK_STARTS + CLOCK_STOPS + ("extend", "resume")
#: an approval of a department's request: it stands for the approved action (its ``kind``)
APPROVE = "approve"
#: an arbitration (审定) is a dispatch the department may not return: it counts as a ``dispatch``
ARBITRATE = "arbitrate"
#: actions after which the stored ``on_time`` no longer belongs to an earlier resolve
ON_TIME_CHANGERS = ("verify_fail", "reopen", "resolve", REDO)
#: a 回访's results (model.RevisitResult) that reached the citizen, that were satisfied, and the one
#: that sent the case back; a resolve's outcome 实际解决 (model.ResolveOutcome; none named = solved)
REVISIT_REACHED = ("satisfied", "basic", "unsatisfied")
REVISIT_SATISFIED = ("satisfied", "basic")
REVISIT_REDO = "unsatisfied"
SOLVED = "solved"

GRADES = ((90.0, "A"), (75.0, "B"), (60.0, "C"), (40.0, "D"))
DEFAULT_WEIGHTS = {"closure_rate": 0.3, "on_time_disposal_rate": 0.3, "rework": 0.3, "volume": 0.1}
#: further parts a pack may weigh into the 综合指标值 ([kpi.weights]): weight key → (KPI code, scored as
#: the rate, or as 1 − the rate for a lower-is-better one)
EXTRA_WEIGHTS = {"first_contact_rate": ("first_contact_rate", False), "actual_solve_rate": ("actual_solve_rate", False),
                 "satisfaction_rate": ("satisfaction_rate", False), "revisit_rate": ("revisit_rate", False),
                 "on_time_sign_rate": ("on_time_sign_rate", False), "redo": ("redo_rate", True)}
#: a group (department, district) with fewer cases than this is listed apart, never ranked: the one
#: home of the rule for the brief, the API, the exports and the wall's department ranking
MIN_RANKING_VOLUME = 20
#: a rate over fewer cases than this says so rather than show a figure (the wall at 06:00: 0 of 2
#: closed is no 0.0 %): the wall's tiles and the brief's cards
MIN_RATE_SAMPLE = 10
UNASSIGNED = "(未派遣)"


# =========================================================================== periods


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        raise ValueError(f"naive datetime {dt!r}: pass an aware datetime (city time or UTC)")
    return dt.astimezone(UTC)


@dataclass(frozen=True)
class Period:
    """``[start, end)``, aware UTC."""

    start: datetime
    end: datetime

    def __post_init__(self):
        object.__setattr__(self, "start", _utc(self.start))
        object.__setattr__(self, "end", _utc(self.end))
        if not self.start < self.end:
            raise ValueError(f"a period needs start < end (got {self.start} .. {self.end})")

    def __contains__(self, t: datetime) -> bool:
        return self.start <= t < self.end


def _is_midnight(local: datetime) -> bool:
    return local.time() == time(0)


def _shift_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    y, m = d.year + y, m + 1
    return date(y, m, min(d.day, _calendar.monthrange(y, m)[1]))


def previous_period(period: Period, tz: str) -> Period:
    """环比: the period of the same length just before. Whole calendar months (city time) step back
    by the same number of months; whole days by the same number of days (DST-safe); else by the
    exact duration."""
    z = ZoneInfo(tz)
    a, b = period.start.astimezone(z), period.end.astimezone(z)
    if _is_midnight(a) and _is_midnight(b):
        if a.day == 1 and b.day == 1:
            months = (b.year - a.year) * 12 + b.month - a.month
            start = datetime.combine(_shift_months(a.date(), -months), time(0), z)
            return Period(start, period.start)
        days = (b.date() - a.date()).days
        return Period(datetime.combine(a.date() - timedelta(days=days), time(0), z), period.start)
    return Period(period.start - (period.end - period.start), period.start)


def same_period_last_year(period: Period, tz: str) -> Period:
    """同比: the same dates one year earlier (29 Feb → 28 Feb), in city time."""
    z = ZoneInfo(tz)

    def back(dt: datetime) -> datetime:
        local = dt.astimezone(z)
        d = _shift_months(local.date(), -12)
        return datetime.combine(d, local.time(), z)
    return Period(back(period.start), back(period.end))


def service_days(period: Period, tz: str) -> tuple[date, date]:
    """Service-rate rows are per day: day ``d`` belongs to the period when its local midnight
    does. Returns ``(first, end)`` with ``first <= d < end``."""
    z = ZoneInfo(tz)
    a, b = period.start.astimezone(z), period.end.astimezone(z)
    first = a.date() if _is_midnight(a) else a.date() + timedelta(days=1)
    end = b.date() if _is_midnight(b) else b.date() + timedelta(days=1)
    return first, max(first, end)


# =========================================================================== results


@dataclass(frozen=True)
class KpiResult:
    code: str
    name: str
    name_en: str
    value: Optional[float]        # None when the denominator is 0
    numerator: float
    denominator: Optional[float]  # None for counts
    unit: str
    target: Optional[float]
    direction: str                # up | down
    formula: str                  # 口径
    drill: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> Optional[bool]:
        if self.value is None or self.target is None:
            return None
        return self.value >= self.target if self.direction == "up" else self.value <= self.target


@dataclass(frozen=True)
class RankRow:
    code: str
    name: str
    volume: int
    closure_rate: Optional[float]
    on_time_disposal_rate: Optional[float]
    rework_rate: Optional[float]
    volume_score: Optional[float]
    score: Optional[float]
    grade: Optional[str]
    rank: Optional[int]
    reason: str = ""              # why unranked
    #: 协办按时回复率 of the department (its assisting parts; not a weight of the score): None without one
    assist_reply_rate: Optional[float] = None


@dataclass(frozen=True)
class Ranking:
    by: str                       # department | district
    min_volume: int
    weights: dict[str, float]
    ranked: list[RankRow]
    unranked: list[RankRow]
    red: list[RankRow]            # 红榜: best N
    black: list[RankRow]          # 黑榜: worst N
    formula: str


@dataclass(frozen=True)
class KpiReport:
    start: datetime
    end: datetime
    as_of: datetime
    kpis: dict[str, KpiResult]
    group_by: Optional[str] = None
    groups: dict[str, dict[str, KpiResult]] = field(default_factory=dict)
    ranking: Optional[Ranking] = None


# name, name_en, unit, direction, formula
DEFINITIONS: dict[str, tuple[str, str, str, str, str]] = {
    "reported_count": ("上报数", "Reported", "件", "up",
                       "上报数 = 上报时间在统计期内（且不晚于统计时点）的案件数（含作废）"),
    "registered_count": ("立案数", "Registered", "件", "up",
                         "立案数 = 统计期内有立案动作（且不晚于统计时点）的案件数（含其后作废的）"),
    "dispatched_count": ("派遣数", "Dispatched", "件", "up",
                         "派遣数 = 统计期内有派遣动作（且不晚于统计时点）的案件数（同一案件多次派遣计一次）"),
    "closed_count": ("结案数", "Closed", "件", "up",
                     "结案数 = 统计期内有结案（核查通过）动作（且不晚于统计时点）的案件数（同一案件多次结案计一次）"),
    "closure_rate": ("结案率", "Closure rate", "%", "up",
                     "结案率 = 期内立案（不含作废）且截至统计时点已结案的案件数 ÷ 期内立案（不含作废）的案件数"),
    "on_time_closure_rate": ("按期结案率", "On-time closure rate", "%", "up",
                             "按期结案率 = 期内立案（不含作废）且截至统计时点已结案、最终一次处置反馈不晚于当时有效处置时限的案件数 "
                             "÷ 期内立案（不含作废）的案件数；数据源自带处置时限的案件以其为准"),
    "on_time_disposal_rate": ("按期处置率", "On-time disposal rate", "%", "up",
                              "按期处置率 = 期内首次派遣（不含作废）且截至统计时点最终一次处置反馈不晚于有效处置时限（含批准延期、扣除挂账）的案件数 "
                              "÷ 期内首次派遣（不含作废）的案件数；处置时限自（最近一次）派遣起算，城市包 [workflow] "
                              "disposal_clock = \"sign\" 时自部门签收起算（签收前挂账不计）；导入的数据源自带处置时限"
                              "（映射文件 [timestamps] deadline）的案件以其为有效处置时限（延期、挂账顺延）"),
    "rework_rate": ("返工率", "Rework rate", "%", "down",
                    "返工率 = 期内立案（不含作废）且截至统计时点有过核查不通过（返工）或重新立案的案件数 ÷ 期内立案（不含作废）的案件数"),
    "accurate_dispatch_rate": ("准确派遣率", "Accurate dispatch rate", "%", "up",
                               "准确派遣率 = 期内首次派遣（不含作废）且截至统计时点从未被回退或改派的案件数 ÷ 期内首次派遣（不含作废）的案件数"),
    "on_time_sign_rate": ("按时签收率", "On-time sign-for rate", "%", "up",
                          "按时签收率 = 期内首次派遣（不含作废）且截至统计时点已在首次派遣的签收时限内签收的案件数 "
                          "÷ 期内首次派遣（不含作废）且有签收时限的案件数；签收时限 = 派遣时刻起按工作日历计的工作时"
                          "（城市包 [workflow.sign_for_hours]，按优先级），节假日不计、调休工作日计入；"
                          "处置时限自派遣起算，城市包 [workflow] disposal_clock = \"sign\" 时自签收起算"),
    "returns_count": ("退单数", "Returns", "件", "down",
                      "退单数 = 统计期内（且不晚于统计时点）的退单次数（每次退单计一次，须选退单原因）；按部门统计时计入退单的部门，"
                      "按区统计时计入案件所在区；同一案件退单达城市包 [workflow] max_returns 次后由派遣员审定派遣，不可再退"),
    "first_contact_rate": ("先行联系率", "First-contact rate", "%", "up",
                           "先行联系率 = 期内首次派遣（不含作废）的市民诉求案件中，截至统计时点承办部门已先行联系市民"
                           "（首次处置反馈之前登记联系时间）的案件数 ÷ 期内首次派遣（不含作废）的市民诉求案件数；"
                           "市民诉求 = 来源渠道为城市包 [workflow] citizen_channels（默认 12345 热线、市民App，Open311 计入 App）"),
    "actual_solve_rate": ("实际解决率", "Actual solve rate", "%", "up",
                          "实际解决率 = 期内首次派遣（不含作废）的市民诉求案件中，截至统计时点最终一次处置反馈为「实际解决」的案件数 "
                          "÷ 其中截至统计时点已处置反馈（实际解决 + 解释说明）的案件数；处置反馈未选结果的按实际解决计"),
    "revisit_rate": ("回访率", "Revisit rate", "%", "up",
                     "回访率 = 期内首次结案（不含作废）的市民诉求案件中，截至统计时点已回访（含未联系上）的案件数 "
                     "÷ 期内首次结案（不含作废）的市民诉求案件数"),
    "satisfaction_rate": ("市民满意率", "Citizen satisfaction rate", "%", "up",
                          "市民满意率 = 统计期内（且不晚于统计时点）回访结果为满意或基本满意的回访次数 ÷ 同期联系上市民的回访次数"
                          "（满意 + 基本满意 + 不满意，不含未联系上）；按部门统计时计入回访时的承办部门"),
    "redo_rate": ("发回重办率", "Sent-back rate", "%", "down",
                  "发回重办率 = 统计期内（且不晚于统计时点）回访结果为不满意、案件发回原承办部门重办的回访次数 ÷ 同期回访次数"
                  "（每次不满意回访计一次；同一次结案只能回访到一次，不会重复计入）；按部门统计时计入回访时的承办部门"),
    "repeat_rate": ("重复诉求率", "Repeat complaint rate", "%", "down",
                    "重复诉求率 = 期内受理（上报）的案件中截至统计时点已被关联为重复诉求（子件，link_repeat：人工一键关联或"
                    "达到城市包 auto_link_score 自动关联）的件数 ÷ 期内受理（上报）的案件数；作废与否不影响分子分母；"
                    "按案件受理时间归入时段，按首次关联时间判断是否截至统计时点"),
    "extension_rate": ("延期率", "Extension rate", "%", "down",
                       "延期率 = 期内首次派遣（不含作废）且截至统计时点有批准延期的案件数 ÷ 期内首次派遣（不含作废）的案件数"),
    "overdue_open_count": ("超期未处置数", "Overdue open cases", "件", "down",
                           "超期未处置数 = 统计时点处于已派遣/处置中且已超过有效处置时限的案件数"
                           "（挂账案件计时停止：挂账时已超期的计入；处置时限自签收起算的城市包，未签收的案件无处置时限，"
                           "只计签收超时）"),
    "mean_handling_hours": ("平均处置时长", "Mean handling time", "工作小时", "down",
                            "平均处置时长 = Σ（首次派遣至最终一次处置反馈的工作时长）÷ 期内首次派遣（不含作废）且截至统计时点已处置反馈的案件数"),
    "assist_reply_rate": ("协办按时回复率", "Assisting on-time reply rate", "%", "up",
                          "协办按时回复率 = 回复时限在统计期内且不晚于统计时点的协办部分中，在回复时限内回复的数量 "
                          "÷ 这些协办部分的数量；按部门统计时计入协办部门（主办部门的按期处置率等指标不变）；"
                          "回复时限 = 派遣时刻起按案件类别的计时方式，取处置时限（含优先级系数）的城市包 "
                          "[workflow] assist_reply_share 比例，不随主办的延期、挂账移动；签收时限同主办；"
                          "在回复时限前未回复即因回退、重新立案、作废、合并或改为主办而结束的协办部分不计入"),
    "online_rate": ("网办率", "Online processing rate", "%", "up",
                    "网办率 = 期内网上办理的办件数 ÷ 期内全部办件数（一网通办）"),
    "good_rating_rate": ("好评率", "Good rating rate", "%", "up",
                         "好评率 = 期内（★4 + ★5）评价数 ÷ 期内评价总数"),
    "bad_rating_rectification_rate": ("差评整改率", "Bad rating rectification rate", "%", "up",
                                      "差评整改率 = 期内差评（★1、★2）中 15 个工作日内整改的数量 ÷ 期内差评数"),
    "on_time_completion_rate": ("按时办结率", "On-time completion rate", "%", "up",
                                "按时办结率 = 期内在法定时限内办结的办件数 ÷ 期内办结的办件数"),
    "composite_score": ("综合指标值", "Composite score", "分", "up",
                        "综合指标值 = 100 × (结案率 × 0.3 + 按期处置率 × 0.3 + (1 − 返工率) × 0.3 + 办件量得分 × 0.1)，"
                        "办件量得分 = 本单位期内立案数 ÷ 参与排名单位中的最大值；等级 A ≥ 90，B ≥ 75，C ≥ 60，D ≥ 40，E < 40"),
}
CASE_KPIS = ("reported_count", "registered_count", "dispatched_count", "closed_count", "closure_rate",
             "on_time_closure_rate", "on_time_disposal_rate", "rework_rate", "accurate_dispatch_rate",
             "extension_rate", "overdue_open_count", "mean_handling_hours", "on_time_sign_rate", "returns_count",
             "first_contact_rate", "actual_solve_rate", "revisit_rate", "satisfaction_rate", "redo_rate")
SERVICE_KPIS = ("online_rate", "good_rating_rate", "bad_rating_rectification_rate", "on_time_completion_rate")

#: 主办 / 协办: KPIs of the assisting parts (``case_assignments``), one row per part, not per case; by
#: department only (the assisting department), beside the case KPIs of the lead
ASSIST_KPIS = ("assist_reply_rate",)
ASSIST_SUMS = ("assist_due", "assist_on_time")
#: the events that tell the assisting parts (:func:`assist_parts`): the dispatches that name them, the
#: replies, and the actions that end them (their payload lists the departments whose parts ended)
ASSIST_EVENTS = ("dispatch", "arbitrate", "assist_reply", "return", "reopen", "void", "merge", "reassign")

# what a drill's cohort / numerator name means in the facts frame
_COHORTS = {"reported": "reported_in", "registered_event": "registered_in", "dispatched_event": "dispatched_in",
            "closed_event": "closed_in", "registered": "reg_cohort", "dispatched": "disp_cohort",
            "open_overdue": "overdue", "signable": "disp_signable", "returned_event": "returned_in",
            "citizen_dispatched": "cit_disp_cohort", "citizen_resolved": "cit_handled_cohort",
            "citizen_closed": "cit_closed_cohort", "revisited_event": "revisited_in", "reached_event": "reached_in"}
_NUMERATORS = {"closed": "closed", "closed_on_time": "closed_on_time", "resolved_on_time": "on_time_final",
               "reworked": "reworked", "never_returned_or_reassigned": "accurate", "extended": "extended",
               "resolved": "resolved_final", "signed_on_time": "signed_on_time", "contacted": "contacted",
               "solved": "solved_final", "revisited": "revisited", "satisfied_event": "satisfied_in",
               "redo_event": "redo_in"}


def _result(code: str, numerator: float, denominator: Optional[float], *, targets: dict, drill: dict,
            value: Optional[float] = None, formula: Optional[str] = None) -> KpiResult:
    name, name_en, unit, direction, text = DEFINITIONS[code]
    if denominator is None:
        v = numerator if value is None else value
    elif denominator == 0:
        v = None
    else:
        v = value if value is not None else numerator / denominator
    return KpiResult(code=code, name=name, name_en=name_en, value=v, numerator=numerator,
                     denominator=denominator, unit=unit, target=targets.get(code), direction=direction,
                     formula=formula or text, drill=drill)


# =========================================================================== 重复诉求率 (reference)

def repeat_rate(cases: pd.DataFrame, events: pd.DataFrame, period: Period, as_of: datetime, *,
                targets: Optional[dict] = None) -> KpiResult:
    """重复诉求率, the reference over the timeline: ``cases`` (id, reported_at), ``events`` (incident_id,
    action, at). The cohort is the cases reported in the period by ``as_of``; a case counts as a repeat
    when its first ``link_repeat`` event is at or before ``as_of``. The fast path
    (:func:`incidents.queries.kpi_facts.repeat_rate`) reads the same from the cases' link columns."""
    as_of = _utc(as_of)
    rep = _utc_col(cases["reported_at"]) if len(cases) else pd.Series([], dtype="datetime64[ns, UTC]")
    cohort = cases.loc[(rep >= _ts(period.start)) & (rep < _ts(period.end)) & (rep <= _ts(as_of)), "id"]
    links = events[events["action"] == "link_repeat"]
    if len(links):
        first = links.assign(at=_utc_col(links["at"])).groupby("incident_id")["at"].min()
        linked = set(first[first <= _ts(as_of)].index)
    else:
        linked = set()
    num = int(cohort.isin(linked).sum())
    return _result("repeat_rate", num, int(len(cohort)), targets=targets or {},
                   drill=_drill(period, as_of, "reported", numerator="repeat"))


# =========================================================================== facts at as_of

CASE_COLUMNS = ("id", "reported_at", "district_code", "department_code", "state", "deadline", "on_time",
                "base_hours", "natural", "first_sign_due", "citizen")
#: (optional: ``outcome`` of a resolve, ``result`` of a revisit — from the event's payload)
EVENT_COLUMNS = ("incident_id", "id", "at", "action", "from_state", "to_state", "department_code", "hours")


def _ts(dt: datetime) -> pd.Timestamp:
    return pd.Timestamp(_utc(dt))


def _utc_col(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, utc=True)


def _advance(start: datetime, hours: float, natural: bool, cal) -> datetime:
    if natural or cal is None:
        return start + timedelta(hours=hours)
    return cal.add_working_hours(start, hours)


def _span(a: datetime, b: datetime, natural: bool, cal) -> float:
    if natural or cal is None:
        return max((b - a).total_seconds() / 3600.0, 0.0)
    return cal.working_hours_between(a, b)


def deadline_in_force(events: Iterable[tuple], base_hours: Optional[float], natural: bool,
                      cal, from_sign: bool = False, fixed: Optional[datetime] = None) -> Optional[datetime]:
    """The deadline after the given events ``(action, at, from_state, hours)`` in time order, as the
    services compute it: clock start (dispatch, reassign, verify_fail — or, ``from_sign``, the
    department's 签收 after one) + base + approved extensions since the dispatch + suspended time
    spent with the department since the clock started. None when no clock runs. ``fixed``: the
    source's own deadline (an import's), in force instead of start + base, moved the same way."""
    start = None
    ext = susp = 0.0
    susp_at = susp_from = None
    for action, at, from_state, hours in events:
        if action in CLOCK_STARTS:
            start, ext, susp = (None if from_sign else at), 0.0, 0.0
        elif action == "sign" and from_sign:
            start = at
        elif action in CLOCK_STOPS:
            start = None
        elif action == "extend":
            ext += float(hours or 0.0) if hours == hours else 0.0  # NaN-safe
        elif action == "suspend":
            susp_at, susp_from = at, from_state
        elif action == "resume":
            if susp_at is not None and susp_from in WITH_DEPARTMENT and start is not None:
                susp += _span(susp_at, at, natural, cal)
            susp_at = susp_from = None
    if start is not None and fixed is not None and not pd.isna(fixed):
        moved = ext + susp
        return _advance(fixed, moved, natural, cal) if moved else fixed
    if start is None or base_hours is None or (isinstance(base_hours, float) and math.isnan(base_hours)):
        return None
    return _advance(start, float(base_hours) + ext + susp, natural, cal)


def case_facts(cases: pd.DataFrame, events: pd.DataFrame, period: Period, as_of: datetime,
               cal=None) -> pd.DataFrame:
    """One row per case (index ``id``) with what was true at ``as_of`` for ``period``: cohort flags,
    state, department, on-time of the final resolve, rework/return/extension flags, overdue,
    handling hours. Events after ``as_of`` are ignored (they only tell whether the stored
    deadline/on-time columns still describe ``as_of``)."""
    return _facts(cases, events, period, as_of, cal)[0]


def _set_period(f: pd.DataFrame, before: pd.DataFrame, reported_at: pd.Series, period: Period) -> None:
    """The columns of ``f`` that depend on the period (the cohorts); every other fact depends only
    on the case and ``as_of``, so a sub-period's KPIs need only these recomputed."""
    lo, hi = _ts(period.start), _ts(period.end)
    in_period = before[(before["at"] >= lo) & (before["at"] < hi)]

    def ids(actions) -> pd.Index:
        return pd.Index(in_period.loc[in_period["action"].isin(actions), "incident_id"].unique())

    f["reported_in"] = (reported_at >= lo) & (reported_at < hi)
    f["registered_in"] = f.index.isin(ids(("register",)))
    f["dispatched_in"] = f.index.isin(ids(("dispatch",)))
    f["closed_in"] = f.index.isin(ids(("verify_pass",)))
    f["reg_cohort"] = f["registered_in"] & ~f["voided"]
    f["disp_cohort"] = (f["first_dispatch_at"] >= lo) & (f["first_dispatch_at"] < hi) & ~f["voided"]
    f["disp_signable"] = f["disp_cohort"] & f["has_sign_due"]
    # 退单: each return in the period, and the department that returned it (退单数 per department)
    returns = in_period[in_period["action"] == "return"]
    f["returns_in"] = returns.groupby("incident_id").size().reindex(f.index, fill_value=0).astype(int)
    f["returned_in"] = f["returns_in"] > 0
    by = returns.groupby("incident_id")["returned_by"].agg(tuple) if len(returns) else pd.Series(dtype=object)
    f["returned_from"] = pd.Series([by.get(i, ()) for i in f.index], index=f.index, dtype=object)
    # the citizen cohorts: first dispatch (先行联系率, 实际解决率) and first closure (回访率) in the period
    f["cit_disp_cohort"] = f["disp_cohort"] & f["citizen"]
    f["cit_handled_cohort"] = f["cit_disp_cohort"] & f["resolved_final"]
    f["cit_closed_cohort"] = (f["first_closed_at"] >= lo) & (f["first_closed_at"] < hi) & ~f["voided"] & f["citizen"]
    # 回访: each visit in the period, by result, and the department it asked about (its event's)
    visits = in_period[in_period["action"].isin(REVISIT_EVENTS)]
    result = visits["result"] if "result" in visits.columns else pd.Series(None, index=visits.index, dtype=object)
    for name, mask in (("revisits_in", None), ("reached_in_n", result.isin(REVISIT_REACHED)),
                       ("satisfied_in_n", result.isin(REVISIT_SATISFIED)), ("redo_in_n", result.eq(REVISIT_REDO))):
        part = visits if mask is None else visits[mask]
        f[name] = part.groupby("incident_id").size().reindex(f.index, fill_value=0).astype(int)
    f["revisited_in"] = f["revisits_in"] > 0
    f["reached_in"] = f["reached_in_n"] > 0
    f["satisfied_in"] = f["satisfied_in_n"] > 0
    f["redo_in"] = f["redo_in_n"] > 0
    if len(visits):
        pairs = pd.Series(list(zip(visits["department_code"], result)), index=visits.index)
        by_visit = pairs.groupby(visits["incident_id"]).agg(tuple)
    else:
        by_visit = pd.Series(dtype=object)
    f["visits_from"] = pd.Series([by_visit.get(i, ()) for i in f.index], index=f.index, dtype=object)


def _facts(cases: pd.DataFrame, events: pd.DataFrame, period: Period, as_of: datetime,
           cal=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """:func:`case_facts` plus what :func:`_set_period` needs for sub-periods: the events up to
    ``as_of`` and the report times."""
    as_of_ts = _ts(as_of)
    c = cases.copy() if len(cases.columns) else pd.DataFrame(columns=list(CASE_COLUMNS))
    if "id" in c.columns:
        c = c.set_index("id")
    for col in ("reported_at", "deadline", "first_sign_due", "source_deadline"):
        c[col] = _utc_col(c[col]) if col in c.columns else pd.Series(pd.NaT, index=c.index, dtype="datetime64[us, UTC]")
    for col, default in (("base_hours", float("nan")), ("natural", False), ("from_sign", False), ("on_time", None),
                         ("district_code", None), ("department_code", None), ("state", None), ("citizen", False)):
        if col not in c.columns:
            c[col] = default
    c = c[c["reported_at"] <= as_of_ts]

    ev = events.copy() if len(events.columns) else pd.DataFrame(columns=list(EVENT_COLUMNS))
    if "hours" not in ev.columns:
        ev["hours"] = float("nan")
    ev["at"] = _utc_col(ev["at"])
    if "kind" in ev.columns and len(ev):
        approved = ev["action"].eq(APPROVE) & ev["kind"].notna()
        ev.loc[approved, "action"] = ev.loc[approved, "kind"]
    if len(ev):
        ev.loc[ev["action"].eq(ARBITRATE), "action"] = "dispatch"
        # a 回访 that left the case closed no more (不满意): the 重办 the rest of the formulas see
        ev.loc[ev["action"].eq(REVISIT) & ev["to_state"].ne("closed"), "action"] = REDO
    for col in ("outcome", "result"):
        if col not in ev.columns:
            ev[col] = None
    if "id" not in ev.columns:
        ev["id"] = range(len(ev))
    ev = ev[ev["incident_id"].isin(c.index)].sort_values(["incident_id", "at", "id"], kind="stable")
    # who returned a case: its department before the return (the return event's is the one after: none)
    ev["returned_by"] = ev.groupby("incident_id")["department_code"].shift(1) if len(ev) else None
    before = ev[ev["at"] <= as_of_ts]
    after = ev[ev["at"] > as_of_ts]

    f = pd.DataFrame(index=c.index)
    f.index.name = "id"
    f["district_code"] = c["district_code"]

    last = before.groupby("incident_id").tail(1).set_index("incident_id")
    f["state"] = last["to_state"].reindex(f.index)
    f["department_code"] = last["department_code"].reindex(f.index)

    def ids(frame, actions) -> pd.Index:
        return pd.Index(frame.loc[frame["action"].isin(actions), "incident_id"].unique())

    def first(actions) -> pd.Series:
        return before[before["action"].isin(actions)].groupby("incident_id")["at"].min().reindex(f.index)

    f["first_dispatch_at"] = first(("dispatch",))
    f["voided"] = f["state"].eq("voided")
    # 按时签收: the first sign-for by as_of, at or before the first dispatch's 签收时限 (fixed once set)
    sign_due = c["first_sign_due"].reindex(f.index)
    first_sign = first(("sign",))
    f["has_sign_due"] = sign_due.notna()
    f["signed_on_time"] = (first_sign.notna() & sign_due.notna() & (first_sign <= sign_due)).astype(bool)
    f["citizen"] = c["citizen"].reindex(f.index).fillna(False).astype(bool)
    # 先行联系: a contact by as_of that no resolve came before (the order of the timeline decides ties)
    seq = pd.Series(range(len(before)), index=before.index)

    def first_seq(action) -> pd.Series:
        return seq[before["action"].eq(action)].groupby(before["incident_id"]).min().reindex(f.index)
    contact_seq, resolve_seq = first_seq("contact"), first_seq("resolve")
    f["contacted"] = (contact_seq.notna() & (resolve_seq.isna() | (contact_seq < resolve_seq))).astype(bool)
    f["first_closed_at"] = first(("verify_pass",))
    f["revisited"] = f.index.isin(ids(before, REVISIT_EVENTS))
    f["closed"] = f["state"].eq("closed")
    # the final resolve stands when the case is resolved or closed at as_of; its outcome (none named: 实际解决)
    resolves = before[before["action"] == "resolve"].groupby("incident_id").tail(1).set_index("incident_id")
    last_resolve = resolves["at"].reindex(f.index)
    f["resolved_final"] = f["state"].isin(("resolved", "closed")) & last_resolve.notna()
    f["solved_final"] = f["resolved_final"] & resolves["outcome"].reindex(f.index).astype(object).fillna(SOLVED).eq(SOLVED)
    _set_period(f, before, c["reported_at"], period)
    f["reworked"] = f.index.isin(ids(before, REWORK_ACTIONS))
    f["accurate"] = ~f.index.isin(ids(before, MISDISPATCH_ACTIONS))
    f["extended"] = f.index.isin(ids(before, ("extend",)))
    f["final_resolve_at"] = last_resolve.where(f["resolved_final"])

    later_on_time = f.index.isin(ids(after, ON_TIME_CHANGERS))
    from_sign = c["from_sign"].eq(True).reindex(f.index, fill_value=False)
    # (a 处置 clock that starts at the 签收: a sign-for after as_of changes the deadline in force too)
    later_deadline = f.index.isin(ids(after, DEADLINE_CHANGERS)) | (
        from_sign.to_numpy() & f.index.isin(ids(after, ("sign",))))
    stored_on_time = c["on_time"].reindex(f.index)

    # last suspension (for cases suspended at as_of)
    susp = before[before["action"] == "suspend"].groupby("incident_id").tail(1).set_index("incident_id")
    f["suspended_at"] = susp["at"].reindex(f.index).where(f["state"].eq("suspended"))
    f["suspended_from"] = susp["from_state"].reindex(f.index).where(f["state"].eq("suspended"))

    # the per-case loops below touch only the cases that need them; plain dicts keep them cheap
    positions = before.groupby("incident_id").indices if len(before) else {}
    base_hours = c["base_hours"].to_dict()
    fixed = {k: v.to_pydatetime() for k, v in c["source_deadline"].dropna().items()}
    natural = c["natural"].to_dict()
    from_sign = from_sign.to_dict()

    def rebuilt(cid, until) -> Optional[datetime]:
        pos = positions.get(cid)
        if pos is None:
            return None
        g = before.iloc[pos]
        g = g[g["at"] <= until]
        nat = natural.get(cid)
        return deadline_in_force(zip(g["action"], (t.to_pydatetime() for t in g["at"]), g["from_state"], g["hours"]),
                                 base_hours.get(cid), False if pd.isna(nat) else bool(nat), cal,
                                 from_sign=from_sign.get(cid, False), fixed=fixed.get(cid))

    resolve_at = f["final_resolve_at"].to_dict()
    stored_on_time = stored_on_time.to_dict()
    later_on_time = dict(zip(f.index, later_on_time))
    on_time = {}
    for cid in f.index[f["resolved_final"]]:
        stored = stored_on_time.get(cid)
        if not later_on_time[cid] and stored is not None and not pd.isna(stored):
            on_time[cid] = bool(stored)
        else:
            at = resolve_at[cid]
            dl = rebuilt(cid, at)
            on_time[cid] = dl is None or at.to_pydatetime() <= dl
    f["on_time_final"] = pd.Series(on_time, dtype=bool).reindex(f.index, fill_value=False).astype(bool)
    f["closed_on_time"] = f["closed"] & f["on_time_final"]

    overdue = {}
    running = f["state"].isin(WITH_DEPARTMENT)
    held = f["state"].eq("suspended") & f["suspended_from"].isin(WITH_DEPARTMENT)
    stored_deadline = c["deadline"].reindex(f.index).to_dict()
    later_deadline = dict(zip(f.index, later_deadline))
    held_at = f["suspended_at"].where(held).to_dict()
    as_of_py = as_of_ts.to_pydatetime()
    for cid in f.index[running | held]:
        dl = stored_deadline.get(cid)
        dl = None if pd.isna(dl) else dl.to_pydatetime()
        if later_deadline[cid]:
            dl = rebuilt(cid, as_of_ts)
        if dl is None:
            continue
        point = held_at[cid].to_pydatetime() if not pd.isna(held_at[cid]) else as_of_py
        overdue[cid] = point > dl
    f["overdue"] = pd.Series(overdue, dtype=bool).reindex(f.index, fill_value=False).astype(bool)

    # handling hours of every resolved case (a sub-period's cohort is a subset): office time from
    # the first dispatch to the final resolve, vectorised over the calendar
    done = f.index[f["resolved_final"] & f["first_dispatch_at"].notna()]
    a, b = f.loc[done, "first_dispatch_at"], f.loc[done, "final_resolve_at"]
    if cal is None:
        spans = ((b - a).dt.total_seconds() / 3600.0).clip(lower=0.0).to_numpy()
    else:
        spans = cal.working_hours_between_many(a, b)
    f["handling_hours"] = pd.Series(spans, index=done, dtype=float).reindex(f.index)
    return f, before, c["reported_at"]


# =========================================================================== KPIs


def _drill(period: Period, as_of: datetime, cohort: str, *, numerator: Optional[str] = None,
           exclude_voided: bool = False, group: Optional[dict] = None) -> dict:
    d = {"from": period.start.isoformat(), "to": period.end.isoformat(), "as_of": _utc(as_of).isoformat(),
         "cohort": cohort, "exclude_voided": exclude_voided}
    if numerator:
        d["numerator"] = numerator
    if group:
        d.update(group)
    return d


#: what a case KPI counts, summed over cases (:func:`case_sums`); every case KPI is built from these
#: sums (:func:`case_kpis_from_sums`), so the reference (frames) and the fact table's SQL path
#: (:mod:`incidents.queries.kpi_facts`) share one definition of each KPI
CASE_SUMS = ("reported", "registered", "dispatched", "closed", "reg", "reg_closed", "reg_closed_on_time",
             "reg_reworked", "disp", "disp_on_time", "disp_accurate", "disp_extended", "overdue", "handled",
             "handled_hours", "disp_signable", "disp_signed_on_time", "returns",
             "cit_disp", "cit_disp_contacted", "cit_handled", "cit_handled_solved", "cit_closed",
             "cit_closed_revisited", "revisits", "revisits_reached", "revisits_satisfied", "revisits_redo")
#: the sums that count events (退单, 回访), each in the group of the department the event names
#: (:func:`group_sums`), not the case's department at as_of
_VISIT_SUMS = ("revisits", "revisits_reached", "revisits_satisfied", "revisits_redo")


def case_sums(facts: pd.DataFrame) -> dict[str, float]:
    """The :data:`CASE_SUMS` of ``facts`` (a frame of :func:`case_facts`)."""
    def n(mask) -> int:
        return int(mask.sum())
    if not len(facts):
        return dict.fromkeys(CASE_SUMS, 0)
    reg, disp = facts["reg_cohort"], facts["disp_cohort"]
    handled = disp & facts["resolved_final"]
    return {"reported": n(facts["reported_in"]), "registered": n(facts["registered_in"]),
            "dispatched": n(facts["dispatched_in"]), "closed": n(facts["closed_in"]), "reg": n(reg),
            "reg_closed": n(reg & facts["closed"]), "reg_closed_on_time": n(reg & facts["closed_on_time"]),
            "reg_reworked": n(reg & facts["reworked"]), "disp": n(disp), "disp_on_time": n(disp & facts["on_time_final"]),
            "disp_accurate": n(disp & facts["accurate"]), "disp_extended": n(disp & facts["extended"]),
            "overdue": n(facts["overdue"]), "handled": n(handled),
            "handled_hours": float(facts.loc[handled, "handling_hours"].sum()) if handled.any() else 0.0,
            "disp_signable": n(facts["disp_signable"]),
            "disp_signed_on_time": n(facts["disp_signable"] & facts["signed_on_time"]),
            "returns": int(facts["returns_in"].sum()),
            "cit_disp": n(facts["cit_disp_cohort"]), "cit_disp_contacted": n(facts["cit_disp_cohort"] & facts["contacted"]),
            "cit_handled": n(facts["cit_handled_cohort"]),
            "cit_handled_solved": n(facts["cit_handled_cohort"] & facts["solved_final"]),
            "cit_closed": n(facts["cit_closed_cohort"]),
            "cit_closed_revisited": n(facts["cit_closed_cohort"] & facts["revisited"]),
            "revisits": int(facts["revisits_in"].sum()), "revisits_reached": int(facts["reached_in_n"].sum()),
            "revisits_satisfied": int(facts["satisfied_in_n"].sum()), "revisits_redo": int(facts["redo_in_n"].sum())}


def group_sums(facts: pd.DataFrame, columns: list[str]) -> dict:
    """The :data:`CASE_SUMS` per group of ``columns`` (``department_code`` and/or ``district_code``;
    :data:`UNASSIGNED` for none), keyed by the group's value (one column) or tuple: each case in its
    group at ``as_of``, but 退单数 in the group of the department that returned the case (a returned
    case has no department any more, or another one)."""
    if not len(facts):
        return {}
    keys = [facts[c].fillna(UNASSIGNED) for c in columns]
    out: dict = {}
    for key, part in facts.groupby(keys, sort=True):
        sums = case_sums(part)
        sums["returns"] = 0
        for k in _VISIT_SUMS:
            sums[k] = 0
        out[key if isinstance(key, tuple) else (key,)] = sums
    if "department_code" not in columns:
        for key, part in facts.groupby(keys, sort=True):
            sums = case_sums(part)
            for k in ("returns", *_VISIT_SUMS):
                out[key if isinstance(key, tuple) else (key,)][k] = sums[k]
    else:
        visited = facts[facts["revisits_in"] > 0]
        for cid, row in visited.iterrows():
            for dept, result in row["visits_from"]:
                key = tuple((dept if isinstance(dept, str) else UNASSIGNED) if c == "department_code"
                            else (row[c] if isinstance(row[c], str) else UNASSIGNED) for c in columns)
                g = out.setdefault(key, dict.fromkeys(CASE_SUMS, 0))
                g["revisits"] += 1
                g["revisits_reached"] += int(result in REVISIT_REACHED)
                g["revisits_satisfied"] += int(result in REVISIT_SATISFIED)
                g["revisits_redo"] += int(result == REVISIT_REDO)
        returned = facts[facts["returns_in"] > 0]
        for cid, row in returned.iterrows():
            for dept in row["returned_from"]:
                key = tuple((dept if isinstance(dept, str) else UNASSIGNED) if c == "department_code"
                            else (row[c] if isinstance(row[c], str) else UNASSIGNED) for c in columns)
                out.setdefault(key, dict.fromkeys(CASE_SUMS, 0))["returns"] += 1
    return out if len(columns) > 1 else {k[0]: v for k, v in out.items()}


# =========================================================================== 主办 / 协办 (assisting parts)


def assist_parts(events: pd.DataFrame) -> pd.DataFrame:
    """The assisting parts (协办) the timeline tells, from the events (columns incident_id, id, at,
    action, payload) of :data:`ASSIST_EVENTS`: a dispatch's payload ``assisting`` opens one per
    department (with its ``reply_due``), an ``assist_reply`` (payload ``department``) answers the
    department's live part, an event's payload ``assist_ended`` ends the named parts. One row per
    part: incident_id, department_code, dispatched_at, reply_due, replied_at, ended_at."""
    cols = ["incident_id", "department_code", "dispatched_at", "reply_due", "replied_at", "ended_at"]
    rows: list[dict] = []
    live: dict[tuple[int, str], dict] = {}
    for e in events.sort_values(["incident_id", "at", "id"]).itertuples(index=False):
        payload = e.payload or {}
        cid = int(e.incident_id)
        for code in payload.get("assist_ended") or ():
            part = live.pop((cid, code), None)
            if part is not None:
                part["ended_at"] = _ts(e.at)
        if e.action == "assist_reply":
            part = live.get((cid, payload.get("department")))
            if part is not None and part["replied_at"] is None:
                part["replied_at"] = _ts(e.at)
        for named in payload.get("assisting") or ():
            part = {"incident_id": cid, "department_code": named["department"], "dispatched_at": _ts(e.at),
                    "reply_due": pd.Timestamp(named["reply_due"]).tz_convert("UTC"), "replied_at": None,
                    "ended_at": None}
            live[(cid, named["department"])] = part
            rows.append(part)
    out = pd.DataFrame(rows, columns=cols)
    for c in ("dispatched_at", "reply_due", "replied_at", "ended_at"):
        out[c] = pd.to_datetime(out[c], utc=True)
    return out


def assist_sums(parts: pd.DataFrame, period: Period, as_of: datetime) -> dict[str, dict[str, int]]:
    """:data:`ASSIST_SUMS` per assisting department: the parts due in the period (reply deadline in
    it and passed at ``as_of``), not ended before both their reply and their deadline; and of those,
    the ones replied at or before the deadline."""
    if not len(parts):
        return {}
    lo, hi, t = _ts(period.start), _ts(period.end), _ts(as_of)
    p = parts[parts["dispatched_at"] <= t]
    replied = p["replied_at"].notna() & (p["replied_at"] <= t)
    ended_early = p["ended_at"].notna() & (p["ended_at"] <= t) & ~replied & (p["ended_at"] < p["reply_due"])
    due = (p["reply_due"] >= lo) & (p["reply_due"] < hi) & (p["reply_due"] <= t) & ~ended_early
    on_time = due & replied & (p["replied_at"] <= p["reply_due"])
    out: dict[str, dict[str, int]] = {}
    for dept, part in p[due].groupby("department_code", sort=True):
        out[str(dept)] = {"assist_due": int(len(part)), "assist_on_time": int(on_time[part.index].sum())}
    return out


def assist_kpis(sums: Optional[dict], period: Period, as_of: datetime, targets: Optional[dict] = None,
                group: Optional[dict] = None) -> dict[str, KpiResult]:
    """协办按时回复率 from its :data:`ASSIST_SUMS` (zero when ``sums`` is None)."""
    sums = sums or {}
    return {"assist_reply_rate": _result("assist_reply_rate", int(sums.get("assist_on_time", 0)),
                                         int(sums.get("assist_due", 0)), targets=targets or {},
                                         drill=_drill(period, as_of, "assist_due", numerator="assist_on_time",
                                                      group=group))}


def add_assist(*many: Optional[dict]) -> dict[str, int]:
    return {k: sum((m or {}).get(k, 0) for m in many) for k in ASSIST_SUMS}


def add_sums(*many: dict) -> dict[str, float]:
    return {k: sum(m.get(k, 0) for m in many) for k in CASE_SUMS}


def case_kpis(facts: pd.DataFrame, period: Period, as_of: datetime, targets: Optional[dict] = None,
              group: Optional[dict] = None) -> dict[str, KpiResult]:
    """The case KPIs of DESIGN §6 over ``facts`` (already restricted to a group, if any)."""
    return case_kpis_from_sums(case_sums(facts), period, as_of, targets, group)


def case_kpis_from_sums(sums: dict, period: Period, as_of: datetime, targets: Optional[dict] = None,
                        group: Optional[dict] = None) -> dict[str, KpiResult]:
    """The case KPIs of DESIGN §6 from their :data:`CASE_SUMS`."""
    t = targets or {}

    def dr(cohort, numerator=None, voided=False):
        return _drill(period, as_of, cohort, numerator=numerator, exclude_voided=voided, group=group)

    def r(code, num, den, drill, **kw):
        return _result(code, int(sums[num]), None if den is None else int(sums[den]), targets=t, drill=drill, **kw)

    out = {
        "reported_count": r("reported_count", "reported", None, dr("reported")),
        "registered_count": r("registered_count", "registered", None, dr("registered_event")),
        "dispatched_count": r("dispatched_count", "dispatched", None, dr("dispatched_event")),
        "closed_count": r("closed_count", "closed", None, dr("closed_event")),
        "closure_rate": r("closure_rate", "reg_closed", "reg", dr("registered", "closed", True)),
        "on_time_closure_rate": r("on_time_closure_rate", "reg_closed_on_time", "reg",
                                  dr("registered", "closed_on_time", True)),
        "on_time_disposal_rate": r("on_time_disposal_rate", "disp_on_time", "disp",
                                   dr("dispatched", "resolved_on_time", True)),
        "rework_rate": r("rework_rate", "reg_reworked", "reg", dr("registered", "reworked", True)),
        "accurate_dispatch_rate": r("accurate_dispatch_rate", "disp_accurate", "disp",
                                    dr("dispatched", "never_returned_or_reassigned", True)),
        "extension_rate": r("extension_rate", "disp_extended", "disp", dr("dispatched", "extended", True)),
        "overdue_open_count": r("overdue_open_count", "overdue", None, dr("open_overdue")),
        "on_time_sign_rate": r("on_time_sign_rate", "disp_signed_on_time", "disp_signable",
                               dr("signable", "signed_on_time", True)),
        "returns_count": r("returns_count", "returns", None, dr("returned_event")),
        "first_contact_rate": r("first_contact_rate", "cit_disp_contacted", "cit_disp",
                                dr("citizen_dispatched", "contacted", True)),
        "actual_solve_rate": r("actual_solve_rate", "cit_handled_solved", "cit_handled",
                               dr("citizen_resolved", "solved", True)),
        "revisit_rate": r("revisit_rate", "cit_closed_revisited", "cit_closed", dr("citizen_closed", "revisited", True)),
        "satisfaction_rate": r("satisfaction_rate", "revisits_satisfied", "revisits_reached",
                               dr("reached_event", "satisfied_event")),
        "redo_rate": r("redo_rate", "revisits_redo", "revisits", dr("revisited_event", "redo_event")),
    }
    handled, total = int(sums["handled"]), float(sums["handled_hours"])
    out["mean_handling_hours"] = _result("mean_handling_hours", round(total, 6), handled, targets=t,
                                         drill=dr("dispatched", "resolved", True),
                                         value=round(total / handled, 4) if handled else None)
    return out


SERVICE_RATE_COLUMNS = ("department_code", "day", "total", "online", "completed", "on_time", "rating_1", "rating_2",
                        "rating_3", "rating_4", "rating_5", "bad_rectified")


def service_kpis(rates: pd.DataFrame, period: Period, tz: str, targets: Optional[dict] = None,
                 group: Optional[dict] = None) -> dict[str, KpiResult]:
    """网办率, 好评率, 差评整改率, 按时办结率 over the service-rate rows whose day lies in the period."""
    t = targets or {}
    first, end = service_days(period, tz)
    if len(rates):
        days = pd.to_datetime(rates["day"]).dt.date
        r = rates[(days >= first) & (days < end)]
    else:
        r = rates

    def s(col) -> int:
        return int(r[col].sum()) if len(r) and col in r.columns else 0

    rated = sum(s(f"rating_{i}") for i in range(1, 6))
    bad = s("rating_1") + s("rating_2")
    drill = {"service_rates": True, "day_from": first.isoformat(), "day_to": end.isoformat(), **(group or {})}
    return {
        "online_rate": _result("online_rate", s("online"), s("total"), targets=t, drill=drill),
        "good_rating_rate": _result("good_rating_rate", s("rating_4") + s("rating_5"), rated, targets=t, drill=drill),
        "bad_rating_rectification_rate": _result("bad_rating_rectification_rate", s("bad_rectified"), bad, targets=t,
                                                 drill=drill),
        "on_time_completion_rate": _result("on_time_completion_rate", s("on_time"), s("completed"), targets=t,
                                           drill=drill),
    }


def drill_ids(facts: pd.DataFrame, result: KpiResult) -> tuple[list[int], list[int]]:
    """(numerator case ids, denominator case ids) behind a case KPI; counts give their cases as the
    numerator and an empty denominator; service-rate KPIs have no cases (two empty lists)."""
    d = result.drill
    if d.get("service_rates") or d.get("cohort") not in _COHORTS:
        return [], []
    mask = facts[_COHORTS[d["cohort"]]].astype(bool)
    if d.get("department") is not None:
        mask &= facts["department_code"].fillna(UNASSIGNED).eq(d["department"])
    if d.get("district") is not None:
        mask &= facts["district_code"].fillna(UNASSIGNED).eq(d["district"])
    cohort = sorted(int(i) for i in facts.index[mask])
    if "numerator" not in d:
        return cohort, []
    num = mask & facts[_NUMERATORS[d["numerator"]]].astype(bool)
    return sorted(int(i) for i in facts.index[num]), cohort


def case_flags(facts: pd.DataFrame, results: dict[str, KpiResult]) -> pd.DataFrame:
    """One row per case behind any of ``results`` (case KPIs), a column per KPI code: "N" when the
    case counts in the numerator (for counts: is counted), "D" when it is in the denominator
    only, "" otherwise. The columns' "N" and "N"+"D" totals are each KPI's numerator and
    denominator — but 退单数 counts returns: a case returned twice in the period is one "N"."""
    cols = {}
    for code, res in results.items():
        num, den = drill_ids(facts, res)
        col = pd.Series("", index=facts.index, dtype=object)
        col[col.index.isin(den)] = "D"
        col[col.index.isin(num)] = "N"
        cols[code] = col
    out = pd.DataFrame(cols, index=facts.index)
    return out[(out != "").any(axis=1)] if len(out.columns) else out


# =========================================================================== composite, rankings


def grade_for(score: Optional[float]) -> Optional[str]:
    if score is None:
        return None
    s = round(float(score), 6)
    for floor, grade in GRADES:
        if s >= floor:
            return grade
    return "E"


def composite_score(closure_rate: float, on_time_disposal_rate: float, rework_rate: float, volume_score: float,
                    weights: Optional[dict] = None, extra: Optional[dict[str, Optional[float]]] = None) -> float:
    """100 × the weighted parts. ``extra``: the group's values of the pack's further parts
    (:data:`EXTRA_WEIGHTS` key → its KPI's value); a part a group has no value for (no citizen case
    to revisit …) leaves its weight to the others in proportion, so the scale stays the same."""
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    raw = (w["closure_rate"] * closure_rate + w["on_time_disposal_rate"] * on_time_disposal_rate
           + w["rework"] * (1.0 - rework_rate) + w["volume"] * volume_score)
    total = used = w["closure_rate"] + w["on_time_disposal_rate"] + w["rework"] + w["volume"]
    for key, (_code, lower_better) in EXTRA_WEIGHTS.items():
        weight = float(w.get(key, 0.0) or 0.0)
        if not weight:
            continue
        total += weight
        value = (extra or {}).get(key)
        if value is None:
            continue
        raw += weight * ((1.0 - value) if lower_better else value)
        used += weight
    return round(100.0 * raw * (total / used if used else 0.0), 4)


def extra_parts(results: dict[str, KpiResult], weights: dict) -> dict[str, Optional[float]]:
    """A group's values of the further 综合指标值 parts its pack weighs (:data:`EXTRA_WEIGHTS`)."""
    return {key: results[code].value for key, (code, _) in EXTRA_WEIGHTS.items()
            if weights.get(key) and code in results}


def rank_groups(groups: dict[str, dict[str, KpiResult]], *, by: str, names: Optional[dict[str, str]] = None,
                min_volume: int = MIN_RANKING_VOLUME, weights: Optional[dict] = None, top_n: int = 3) -> Ranking:
    """综合指标值 ranking. Volume = the group's 立案 cohort (结案率's denominator); a group below
    ``min_volume`` (or without a 按期处置率) is listed as unranked, never at the top."""
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    names = names or {}
    eligible, unranked = [], []
    for code, k in groups.items():
        vol = int(k["closure_rate"].denominator or 0)
        base = dict(code=code, name=names.get(code, code), volume=vol, closure_rate=k["closure_rate"].value,
                    on_time_disposal_rate=k["on_time_disposal_rate"].value, rework_rate=k["rework_rate"].value)
        if code == UNASSIGNED:
            unranked.append(RankRow(**base, volume_score=None, score=None, grade=None, rank=None,
                                    reason="未派遣到部门"))
        elif vol < min_volume:
            unranked.append(RankRow(**base, volume_score=None, score=None, grade=None, rank=None,
                                    reason=f"办件量 {vol} < 最低 {min_volume}"))
        elif base["closure_rate"] is None or base["on_time_disposal_rate"] is None or base["rework_rate"] is None:
            unranked.append(RankRow(**base, volume_score=None, score=None, grade=None, rank=None,
                                    reason="期内无派遣案件，按期处置率无法计算"))
        else:
            eligible.append(base)
    top = max((b["volume"] for b in eligible), default=0)
    rows = []
    for b in eligible:
        vs = b["volume"] / top if top else 0.0
        score = composite_score(b["closure_rate"], b["on_time_disposal_rate"], b["rework_rate"], vs, w,
                                extra=extra_parts(groups[b["code"]], w))
        rows.append(RankRow(**b, volume_score=round(vs, 6), score=score, grade=grade_for(score), rank=None))
    rows.sort(key=lambda r: (-r.score, -r.volume, r.code))
    ranked = []
    for i, r in enumerate(rows):
        # equal scores share a rank (1, 2, 2, 4)
        rank = ranked[-1].rank if ranked and ranked[-1].score == r.score else i + 1
        ranked.append(replace(r, rank=rank))
    unranked.sort(key=lambda r: (-r.volume, r.code))
    # red and black lists never share a row: with fewer than 2N ranked, each takes half
    n = min(top_n, max(1, len(ranked) // 2))
    red = ranked[:n]
    black = [r for r in reversed(ranked[-n:]) if r not in red] if ranked else []
    parts = "".join(f" + {'(1 − ' + DEFINITIONS[code][0] + ')' if lower else DEFINITIONS[code][0]} × {w[key]:g}"
                    for key, (code, lower) in EXTRA_WEIGHTS.items() if w.get(key))
    formula = (f"综合指标值 = 100 × (结案率 × {w['closure_rate']:g} + 按期处置率 × {w['on_time_disposal_rate']:g} + "
               f"(1 − 返工率) × {w['rework']:g}{parts} + 办件量得分 × {w['volume']:g})，办件量得分 = 期内立案数 ÷ 参与排名的最大值；"
               + ("某单位无市民诉求指标值时，其权重按比例分给其余各项；" if parts else "") +
               f"期内立案数 < {min_volume} 的不参与排名；等级 A ≥ 90，B ≥ 75，C ≥ 60，D ≥ 40，E < 40")
    return Ranking(by=by, min_volume=min_volume, weights=w, ranked=ranked, unranked=unranked, red=red,
                   black=black, formula=formula)


def composite_results(ranking: Ranking, period: Period, as_of: datetime) -> dict[str, KpiResult]:
    """综合指标值 as a KpiResult per ranked group."""
    out = {}
    for r in ranking.ranked:
        out[r.code] = _result("composite_score", r.score, None, targets={}, value=r.score, formula=ranking.formula,
                              drill=_drill(period, as_of, "registered", exclude_voided=True,
                                           group={ranking.by: r.code}))
    return out


# =========================================================================== one report


def kpi_report(cases: pd.DataFrame, events: pd.DataFrame, rates: Optional[pd.DataFrame], period: Period,
               as_of: datetime, *, tz: str, cal=None, targets: Optional[dict] = None,
               weights: Optional[dict] = None, group_by: Optional[str] = None,
               names: Optional[dict[str, str]] = None, min_volume: int = MIN_RANKING_VOLUME,
               top_n: int = 3, assist_events: Optional[pd.DataFrame] = None) -> KpiReport:
    """Every KPI of DESIGN §6 for ``period`` at ``as_of``; with ``group_by`` (department |
    district) the same per group and the 综合指标值 ranking. ``assist_events``: the events of
    :data:`ASSIST_EVENTS` with their payloads (协办按时回复率; none: no assisting parts)."""
    if group_by not in (None, "department", "district"):
        raise ValueError("group_by must be None, 'department' or 'district'")
    rates = rates if rates is not None else pd.DataFrame(columns=list(SERVICE_RATE_COLUMNS))
    facts = case_facts(cases, events, period, as_of, cal)
    assist = None
    if assist_events is not None and len(assist_events):
        t = _ts(as_of)
        assist = assist_sums(assist_parts(assist_events[_utc_col(assist_events["at"]) <= t]), period, as_of)
    return _report(facts, rates, period, as_of, tz=tz, targets=targets, weights=weights, group_by=group_by,
                   names=names, min_volume=min_volume, top_n=top_n, assist=assist)


def _report(facts: pd.DataFrame, rates: pd.DataFrame, period: Period, as_of: datetime, *, tz: str,
            targets: Optional[dict], weights: Optional[dict], group_by: Optional[str],
            names: Optional[dict[str, str]], min_volume: int, top_n: int,
            assist: Optional[dict[str, dict]] = None) -> KpiReport:
    groups = None
    if group_by is not None:
        groups = group_sums(facts, ["department_code" if group_by == "department" else "district_code"])
    return report_from_sums(case_sums(facts), groups, rates, period, as_of, tz=tz, targets=targets, weights=weights,
                            group_by=group_by, names=names, min_volume=min_volume, top_n=top_n, assist=assist)


def report_from_sums(total: dict, groups: Optional[dict[str, dict]], rates: pd.DataFrame, period: Period,
                     as_of: datetime, *, tz: str, targets: Optional[dict], weights: Optional[dict] = None,
                     group_by: Optional[str] = None, names: Optional[dict[str, str]] = None,
                     min_volume: int = MIN_RANKING_VOLUME, top_n: int = 3,
                     assist: Optional[dict[str, dict]] = None) -> KpiReport:
    """:func:`kpi_report` from the :data:`CASE_SUMS` of the whole period (``total``) and of each
    group (``groups``: department or district code, :data:`UNASSIGNED` for none → sums);
    ``assist``: the :data:`ASSIST_SUMS` per assisting department (协办按时回复率: the total, and per
    department when grouped by department)."""
    rates = rates if rates is not None else pd.DataFrame(columns=list(SERVICE_RATE_COLUMNS))
    assist = assist or {}
    kpis = {**case_kpis_from_sums(total, period, as_of, targets), **service_kpis(rates, period, tz, targets),
            **assist_kpis(add_assist(*assist.values()), period, as_of, targets)}
    report = KpiReport(start=period.start, end=period.end, as_of=_utc(as_of), kpis=kpis, group_by=group_by)
    if group_by is None:
        return report
    out: dict[str, dict[str, KpiResult]] = {}
    for code in sorted(groups or {}):
        g = {group_by: code}
        out[code] = case_kpis_from_sums(groups[code], period, as_of, targets, group=g)
        if group_by == "department":
            out[code].update(service_kpis(rates[rates["department_code"] == code] if len(rates) else rates,
                                          period, tz, targets, group=g))
    if group_by == "department" and len(rates):
        # departments that run government services but had no case in the period
        for code in sorted(set(rates["department_code"]) - set(out)):
            g = {group_by: code}
            out[code] = {**case_kpis_from_sums(dict.fromkeys(CASE_SUMS, 0), period, as_of, targets, group=g),
                         **service_kpis(rates[rates["department_code"] == code], period, tz, targets, group=g)}
    if group_by == "department":
        # 协办按时回复率 by the assisting department, also one that led no case in the period
        for code in sorted(set(assist) - set(out)):
            out[code] = case_kpis_from_sums(dict.fromkeys(CASE_SUMS, 0), period, as_of, targets,
                                            group={group_by: code})
        for code in out:
            out[code].update(assist_kpis(assist.get(code), period, as_of, targets, group={group_by: code}))
    ranking = rank_groups(out, by=group_by, names=names, min_volume=min_volume, weights=weights, top_n=top_n)
    if group_by == "department":
        with_rate = [[replace(r, assist_reply_rate=out[r.code]["assist_reply_rate"].value) for r in rows]
                     for rows in (ranking.ranked, ranking.unranked, ranking.red, ranking.black)]
        ranking = replace(ranking, ranked=with_rate[0], unranked=with_rate[1], red=with_rate[2], black=with_rate[3])
    for code, res in composite_results(ranking, period, as_of).items():
        out[code]["composite_score"] = res
    return replace(report, groups=out, ranking=ranking)


# =========================================================================== the brief (trends, comparisons)


def period_buckets(period: Period, tz: str) -> list[Period]:
    """The points of a sparkline: hours for a day, days up to 62 days, weeks (Monday) up to
    a year, else months; boundaries at city-time midnights, the first and last clipped to the
    period."""
    z = ZoneInfo(tz)
    span = period.end - period.start
    a = period.start.astimezone(z)

    def nxt(t: datetime) -> datetime:
        if span <= timedelta(hours=25):
            return (t.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).astimezone(UTC)
        d = t.astimezone(z).date()
        if span <= timedelta(days=62):
            d = d + timedelta(days=1)
        elif span <= timedelta(days=366):
            d = d + timedelta(days=7 - d.weekday())
        else:
            d = _shift_months(d.replace(day=1), 1)
        return datetime.combine(d, time(0), z).astimezone(UTC)

    out, t = [], a
    while t < period.end:
        u = min(nxt(t), period.end)
        out.append(Period(t, u))
        t = u
    return out


def kpi_series(facts: pd.DataFrame, before: pd.DataFrame, reported_at: pd.Series, rates: pd.DataFrame,
               buckets: list[Period], as_of: datetime, *, tz: str) -> dict[str, list[Optional[float]]]:
    """Each KPI's value per bucket, equal to the KPI of that sub-period at the same ``as_of``
    (only the cohorts depend on the period); None for buckets that begin after ``as_of``.
    超期未处置数 is a state at ``as_of``, not a flow: it has no series."""
    return series_from_sums(bucket_sums(facts, before, reported_at, buckets), rates, buckets, as_of, tz=tz)


def bucket_sums(facts: pd.DataFrame, before: pd.DataFrame, reported_at: pd.Series,
                buckets: list[Period]) -> list[dict[str, float]]:
    """The :data:`CASE_SUMS` of each bucket (the facts' cohorts set to that sub-period)."""
    g = facts.copy(deep=False)
    out = []
    for b in buckets:
        _set_period(g, before, reported_at, b)
        out.append(case_sums(g))
    return out


def series_from_sums(sums: list[dict], rates: pd.DataFrame, buckets: list[Period], as_of: datetime, *,
                     tz: str) -> dict[str, list[Optional[float]]]:
    """:func:`kpi_series` from each bucket's :data:`CASE_SUMS`."""
    out: dict[str, list[Optional[float]]] = {c: [] for c in CASE_KPIS + SERVICE_KPIS}
    as_of = _utc(as_of)
    for b, bs in zip(buckets, sums):
        if b.start > as_of:       # not begun yet: no value (a count of 0 would read as a fall)
            for values in out.values():
                values.append(None)
            continue
        for code, r in {**case_kpis_from_sums(bs, b, as_of), **service_kpis(rates, b, tz)}.items():
            out[code].append(r.value)
    out.pop("overdue_open_count")
    return out


@dataclass(frozen=True)
class Comparison:
    """A like-for-like period to compare with: the same progress into the period (``as_of`` at
    the same offset from its start), so a month in progress meets the previous month's first
    weeks, not the whole month."""

    kind: str                     # previous (环比) | last_year (同比)
    period: Period
    as_of: datetime


def comparisons(period: Period, as_of: datetime, tz: str) -> tuple[Comparison, Comparison]:
    """环比 and 同比 of ``period`` seen at ``as_of``."""
    as_of = _utc(as_of)
    prev = previous_period(period, tz)
    prev_as_of = min(prev.start + (as_of - period.start), as_of)
    ly = same_period_last_year(period, tz)
    ly_as_of = same_period_last_year(Period(as_of - timedelta(seconds=1), as_of), tz).end

    def cut(p: Period, at: datetime) -> Period:
        return Period(p.start, max(min(p.end, at), p.start + timedelta(seconds=1)))
    return (Comparison("previous", cut(prev, prev_as_of), max(prev_as_of, prev.start)),
            Comparison("last_year", cut(ly, ly_as_of), max(ly_as_of, ly.start)))


def change(current: Optional[float], before: Optional[float], unit: str) -> Optional[float]:
    """The change shown beside a KPI: percentage points for rates (0.012 = +1.2 个百分点),
    relative change for counts and hours (0.1 = +10 %); None when either side is missing."""
    if current is None or before is None:
        return None
    if unit == "%":
        return current - before
    if before == 0:
        return None
    return (current - before) / abs(before)


INDICATOR_COLUMNS = ("code", "name", "name_en", "unit", "direction", "target", "period", "group")
INDICATOR_VALUE_COLUMNS = ("indicator_code", "period_start", "dimension", "value")


@dataclass(frozen=True)
class IndicatorDefinition:
    """What a KPI-feed indicator is: the fields of INDICATOR_COLUMNS."""

    code: str
    name: str
    name_en: str
    unit: str
    direction: str
    target: Optional[float]
    period: str                   # day | month | quarter | year
    group: str


@dataclass(frozen=True)
class IndicatorResult(IndicatorDefinition):
    """A KPI-feed indicator over a brief period. Daily indicators: the mean of the days in the
    period (the sum for counts in 件); monthly/quarterly/yearly ones: the latest value whose
    period began before the brief's end."""

    value: Optional[float]
    covers: str                   # what the value covers, e.g. "2026-11-01 至 2026-11-21 日均" or "2026年10月"
    n: int                        # values behind it
    series: list[Optional[float]]
    formula: str

    @property
    def met(self) -> Optional[bool]:
        if self.value is None or self.target is None:
            return None
        return self.value >= self.target if self.direction == "up" else self.value <= self.target


def _label(kind: str, d: date) -> str:
    if kind == "month":
        return f"{d.year}年{d.month}月"
    if kind == "quarter":
        return f"{d.year}年第{(d.month - 1) // 3 + 1}季度"
    return f"{d.year}年"


def indicator_results(indicators: pd.DataFrame, values: pd.DataFrame, period: Period,
                      tz: str) -> list[IndicatorResult]:
    """The KPI feed's indicators (city-wide values, dimension "") over ``period``, by group and code."""
    first, end = service_days(period, tz)
    v = values[values["dimension"].fillna("").eq("")] if len(values) else values
    out = []
    for ind in indicators.sort_values(["group", "code"]).itertuples(index=False):
        mine = v[v["indicator_code"] == ind.code] if len(v) else v
        days = pd.to_datetime(mine["period_start"]).dt.date if len(mine) else pd.Series(dtype=object)
        target = None if ind.target is None or pd.isna(ind.target) else float(ind.target)
        if ind.period == "day":
            inside = mine.assign(d=days)[(days >= first) & (days < end)].sort_values("d") if len(mine) else mine
            vals = [float(x) for x in inside["value"]] if len(inside) else []
            total = ind.unit == "件"
            value = (sum(vals) if total else sum(vals) / len(vals)) if vals else None
            last = end - timedelta(days=1)
            covers = f"{first.isoformat()} 至 {last.isoformat()} {'合计' if total else '日均'}"
            formula = (f"{ind.name} = 统计期内每日数值之{'和' if total else '算术平均'}（{len(vals)} 天有数据）")
            out.append(IndicatorResult(ind.code, ind.name, ind.name_en, ind.unit, ind.direction, target, ind.period,
                                       ind.group, value, covers, len(vals), vals, formula))
            continue
        upto = mine.assign(d=days)[days < end].sort_values("d") if len(mine) else mine
        if len(upto):
            latest = upto.iloc[-1]
            value, covers = float(latest["value"]), _label(ind.period, latest["d"])
        else:
            value, covers = None, "—"
        series = [float(x) for x in upto["value"].tail(12)] if len(upto) else []
        formula = f"{ind.name} = 统计期结束前最近一期（{covers}）的数值（按{ {'month': '月', 'quarter': '季度', 'year': '年'}.get(ind.period, ind.period)}报送）"
        out.append(IndicatorResult(ind.code, ind.name, ind.name_en, ind.unit, ind.direction, target, ind.period,
                                   ind.group, value, covers, 1 if value is not None else 0, series, formula))
    return out


@dataclass(frozen=True)
class Brief:
    """What the leaders' brief shows, every number from the functions above: the period's KPIs
    with the department ranking (``report``) and the district ranking (``districts``), the
    like-for-like comparisons, a series per KPI over ``buckets`` and the KPI feed."""

    report: KpiReport
    districts: KpiReport
    previous: KpiReport
    last_year: KpiReport
    buckets: list[Period]
    series: dict[str, list[Optional[float]]]
    indicators: list[IndicatorResult]
    indicators_previous: dict[str, Optional[float]]


def brief_figures(cases: pd.DataFrame, events: pd.DataFrame, rates: pd.DataFrame, period: Period, as_of: datetime,
                  *, tz: str, cal=None, targets: Optional[dict] = None, weights: Optional[dict] = None,
                  department_names: Optional[dict[str, str]] = None,
                  district_names: Optional[dict[str, str]] = None, min_volume: int = MIN_RANKING_VOLUME,
                  top_n: int = 3):
    """The period's two grouped reports (department, district), the KPI series and the case
    flags (:func:`case_flags` of the case KPIs), computing the case facts once; the reports
    equal :func:`kpi_report` with the same arguments. Returns
    ``(by_department, by_district, buckets, series, flags)``."""
    facts, before, reported_at = _facts(cases, events, period, as_of, cal)
    kw = dict(tz=tz, targets=targets, weights=weights, min_volume=min_volume, top_n=top_n)
    by_dept = _report(facts, rates, period, as_of, group_by="department", names=department_names, **kw)
    by_district = _report(facts, rates, period, as_of, group_by="district", names=district_names, **kw)
    flags = case_flags(facts, {c: by_dept.kpis[c] for c in CASE_KPIS})
    buckets = period_buckets(period, tz)
    series = kpi_series(facts, before, reported_at, rates, buckets, as_of, tz=tz)
    return by_dept, by_district, buckets, series, flags


__all__ = ["CASE_KPIS", "CASE_SUMS", "add_sums", "bucket_sums", "case_kpis_from_sums", "case_sums",
           "report_from_sums", "series_from_sums", "repeat_rate", "DEFINITIONS", "GRADES", "Brief", "Comparison", "IndicatorResult", "KpiReport", "KpiResult",
           "Period", "RankRow", "Ranking", "SERVICE_KPIS", "UNASSIGNED", "brief_figures", "case_facts", "case_flags", "case_kpis",
           "IndicatorDefinition", "change", "comparisons", "composite_score", "deadline_in_force", "drill_ids", "grade_for",
           "indicator_results", "kpi_report", "kpi_series", "period_buckets", "previous_period", "rank_groups",
           "same_period_last_year", "service_days", "service_kpis"]
