"""How the brief writes its numbers, shared by the page, the PDF and the Excel export so that all
three show the same text: values with units, targets, changes (环比/同比), the period line and
the sparkline, the PDF's written summary, and what a picker choice means. Formatting only: every
number comes from ``incidents.kpis`` via ``incidents.queries.brief``."""
from __future__ import annotations

import base64
from datetime import date, datetime, timedelta
from typing import Optional
from zoneinfo import ZoneInfo

from incidents import kpis

CASE_CARDS = kpis.CASE_KPIS
#: the case KPIs of the citizens' own cases (pack [workflow] citizen_channels): a row of their own
CITIZEN_CARDS = ("first_contact_rate", "actual_solve_rate", "revisit_rate", "satisfaction_rate", "redo_rate")
SERVICE_CARDS = kpis.SERVICE_KPIS
#: a change under 0.05 (percentage points or %) prints as 0.0: shown as no change, neither good nor bad
FLAT = 0.0005
PRESET_LABELS = {"today": ("今日", "Today"), "week": ("本周", "This week"), "month": ("本月", "This month"),
                 "last_month": ("上月", "Last month"), "last30": ("近 30 天", "Last 30 days"),
                 "quarter": ("本季度", "This quarter"), "custom": ("自定义", "Custom")}
#: what the brief opens on the first time (then the leader's last choice, kept in the browser):
#: the last complete month, compared with the month before it, whole against whole
DEFAULT_PRESET = "last_month"
#: a trend line needs this many finished slices with a value; fewer say so instead of a line
MIN_SPARK_POINTS = 4


def leader_period(choice: str, now: datetime, tz: str, *, start: Optional[date] = None,
                  end: Optional[date] = None) -> kpis.Period:
    """The period a picker choice means in city time: the read model's presets, and the two
    complete ones a leader asks for — 上月 (the last whole month) and 近 30 天 (the 30 whole days
    before today) — as whole-day custom periods of the read model."""
    from incidents.queries.brief import preset_period
    d = now.astimezone(ZoneInfo(tz)).date()
    if choice == "last_month":
        last = d.replace(day=1) - timedelta(days=1)
        return preset_period("custom", now, tz, start=last.replace(day=1), end=last)
    if choice == "last30":
        return preset_period("custom", now, tz, start=d - timedelta(days=30), end=d - timedelta(days=1))
    return preset_period(choice, now, tz, start=start, end=end)


def period_label(choice: str, start: datetime, end: datetime, as_of: datetime, tz: str, en: bool = False) -> str:
    """The choice as a leader reads it; a period still running says how far it goes:
    本月（截至 2 日）, 本周（截至周三）, 本季度（截至 12 月 2 日）, 今日（截至 14:35）."""
    name = PRESET_LABELS.get(choice, PRESET_LABELS["custom"])[1 if en else 0]
    if not (start <= as_of < end):
        return name
    at = as_of.astimezone(ZoneInfo(tz))
    if en:
        thru = {"today": at.strftime("%H:%M"), "week": at.strftime("%a"), "month": _ordinal(at.day)}.get(
            choice, at.strftime("%b %-d"))
        return {"today": "Today", "week": "Week to date", "month": "Month to date",
                "quarter": "Quarter to date"}.get(choice, name) + f" (through {thru})"
    thru = {"today": at.strftime("%H:%M"), "week": "周" + "一二三四五六日"[at.weekday()],
            "month": f"{at.day} 日"}.get(choice, f"{at.month} 月 {at.day} 日")
    return f"{name}（截至 {thru}）"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"the {n}{suffix}"


def spark_points(values: Optional[list], partial_from: Optional[int] = None) -> int:
    """Finished slices with a value: what a trend line would draw."""
    cut = len(values or []) if partial_from is None else partial_from
    return sum(1 for v in (values or [])[:cut] if v is not None)


def holds_back(k, in_numerator: bool) -> Optional[bool]:
    """Whether a case behind ``k`` holds the number back: for a rate where higher is better the
    cases not (yet) in the numerator, where lower is better those in it; for a count where lower
    is better (超期未处置数) every case counted; None where a single case neither helps nor hurts
    (上报数, 平均处置时长)."""
    if k.denominator is not None and is_rate(k.unit):
        return (not in_numerator) if k.direction == "up" else in_numerator
    if k.denominator is None and k.direction == "down":
        return in_numerator
    return None


def excel_format(unit: str) -> str:
    """The Excel number format that prints a value as :func:`number` does on the page."""
    if is_rate(unit):
        return "0.0%"
    if unit == "件":
        return "#,##0"
    return "#,##0.0"


def is_rate(unit: str) -> bool:
    return unit == "%"


def number(value: Optional[float], unit: str) -> str:
    """A value as the brief prints it, without its unit: rates in % with one decimal, counts
    with thousands separators, hours and scores with one decimal."""
    if value is None:
        return "—"
    if is_rate(unit):
        return f"{100 * value:.1f}"
    if unit == "件" and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def with_unit(value: Optional[float], unit: str, en: bool = False) -> str:
    text = number(value, unit)
    if value is None:
        return text
    if is_rate(unit):
        return f"{text}%"
    return f"{text} {unit_label(unit, en)}"


def unit_label(unit: str, en: bool = False) -> str:
    if not en:
        return unit
    return {"件": "cases", "工作小时": "working h", "分": "pts", "件/万人": "per 10k"}.get(unit, unit)


def target_text(k, en: bool = False) -> str:
    """目标 ≥ 95.0% (or ≤ for lower-is-better); "" without a target."""
    target = getattr(k, "target", None)
    if target is None:
        return ""
    sign = "≥" if k.direction == "up" else "≤"
    return f"{'Target' if en else '目标'} {sign} {with_unit(target, k.unit, en)}"


def change_text(current: Optional[float], before: Optional[float], unit: str, en: bool = False) -> str:
    """+1.2 个百分点 for rates, +10.0% for counts and hours, — when not comparable."""
    c = kpis.change(current, before, unit)
    if c is None:
        return "—"
    arrow = "▲" if c >= FLAT else ("▼" if c <= -FLAT else "＝")
    if is_rate(unit):
        return f"{arrow} {abs(100 * c):.1f} {'pts' if en else '个百分点'}"
    return f"{arrow} {abs(100 * c):.1f}%"


def change_tone(current: Optional[float], before: Optional[float], unit: str, direction: str) -> str:
    """good | bad | flat: whether the change is an improvement for this KPI."""
    c = kpis.change(current, before, unit)
    if c is None or abs(c) < FLAT:
        return "flat"
    return "good" if (c > 0) == (direction == "up") else "bad"


def ratio_text(k, en: bool = False) -> str:
    """分子 ÷ 分母 as printed under a rate; counts give their count."""
    if k.denominator is None:
        return f"{'count' if en else '计数'} {int(k.numerator):,}"
    num = f"{k.numerator:,.1f}" if k.code == "mean_handling_hours" else f"{int(k.numerator):,}"
    return f"{num} ÷ {int(k.denominator):,}"


def local(dt: datetime, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return dt.astimezone(ZoneInfo(tz)).strftime(fmt)


def period_text(start: datetime, end: datetime, tz: str, en: bool = False) -> str:
    """2026-11-01 至 2026-11-30 for whole days, else with times (end shown inclusive for days)."""
    to = " to " if en else " 至 "
    from datetime import timedelta
    a, b = start.astimezone(ZoneInfo(tz)), end.astimezone(ZoneInfo(tz))
    if a.time().hour == a.time().minute == 0 and b.time().hour == b.time().minute == 0:
        last = (b - timedelta(days=1)).date()
        return a.date().isoformat() if last == a.date() else f"{a.date().isoformat()}{to}{last.isoformat()}"
    return f"{a.strftime('%Y-%m-%d %H:%M')}{to}{b.strftime('%Y-%m-%d %H:%M')}"


def sparkline_svg(values: list[Optional[float]], *, color: str = "#35a7ff", width: int = 160, height: int = 34,
                  target: Optional[float] = None, partial_from: Optional[int] = None) -> str:
    """A small line as a data URI (an <img> needs no WebGL context and no plotly): gaps where a
    point has no value, a dashed line at the target when it falls in the range; points from
    ``partial_from`` on (the slice still running) in grey, so a day just begun does not read as
    a fall."""
    pts = [(i, v) for i, v in enumerate(values) if v is not None]
    body = ""
    if pts:
        lo = min(v for _, v in pts)
        hi = max(v for _, v in pts)
        if target is not None and lo <= target <= hi:
            lo, hi = min(lo, target), max(hi, target)
        span = (hi - lo) or 1.0
        n = max(len(values) - 1, 1)

        def xy(i, v):
            return 2 + (width - 4) * i / n, height - 3 - (height - 6) * (v - lo) / span
        cut = len(values) if partial_from is None else partial_from
        runs, run = [], []
        for i, v in enumerate(values[:cut]):
            if v is None:
                if run:
                    runs.append(run)
                run = []
            else:
                run.append(xy(i, v))
        if run:
            runs.append(run)
        for r in runs:
            if len(r) == 1:
                body += f'<circle cx="{r[0][0]:.1f}" cy="{r[0][1]:.1f}" r="1.8" fill="{color}"/>'
            else:
                body += ('<polyline fill="none" stroke="{c}" stroke-width="1.8" points="{p}"/>'
                         .format(c=color, p=" ".join(f"{x:.1f},{y:.1f}" for x, y in r)))
        tail = [xy(i, v) for i, v in enumerate(values) if v is not None and i >= cut - 1 and i >= 0]
        if partial_from is not None and len(tail) > 1:
            body += ('<polyline fill="none" stroke="#8aa2bf" stroke-width="1.4" stroke-dasharray="2,2" points="{p}"/>'
                     .format(p=" ".join(f"{x:.1f},{y:.1f}" for x, y in tail)))
        done = [(i, v) for i, v in pts if i < cut]
        if done:
            x, y = xy(*done[-1])
            body += f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6" fill="{color}"/>'
        if target is not None and lo <= target <= hi and hi > lo:
            ty = xy(0, target)[1]
            body += (f'<line x1="0" x2="{width}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#8aa2bf" '
                     'stroke-width="1" stroke-dasharray="3,3"/>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">{body}</svg>')
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def service_rows(report: kpis.KpiReport) -> list[dict]:
    """一网通办 by department: departments with service cases in the period, lowest 网办率 first."""
    names = {}
    if report.ranking:
        names = {r.code: r.name for r in report.ranking.ranked + report.ranking.unranked}
    rows = []
    for code, ks in report.groups.items():
        online = ks.get("online_rate")
        if online is None or not online.denominator:
            continue
        rows.append(dict(code=code, name=names.get(code, code), total=int(online.denominator),
                         online=int(online.numerator), online_rate=online.value, target=online.target,
                         met=online.met, good_rating_rate=ks["good_rating_rate"].value,
                         on_time_completion_rate=ks["on_time_completion_rate"].value))
    rows.sort(key=lambda r: (r["online_rate"], r["code"]))
    return rows


def running_bucket(buckets, as_of) -> Optional[int]:
    """Index of the slice that contains ``as_of`` (still running), if any."""
    for i, b in enumerate(buckets):
        if b.start <= as_of < b.end:
            return i
    return None


# --------------------------------------------------------------------------- the PDF's written summary

def _units(report, code: str, n: int = 2) -> list[tuple[str, float]]:
    """The ranked units (those with the minimum volume) worst at ``code``: (name, value)."""
    rk = report.ranking
    if rk is None:
        return []
    k = report.kpis[code]
    names = {x.code: x.name for x in rk.ranked}
    vals = [(names[c], ks[code].value) for c, ks in report.groups.items()
            if c in names and code in ks and ks[code].value is not None]
    worst = sorted(vals, key=lambda x: x[1], reverse=k.direction == "down")
    if k.target is not None:
        worst = [x for x in worst if (x[1] < k.target if k.direction == "up" else x[1] > k.target)]
    return worst[:n]


def summary(b) -> dict[str, list[str]]:
    """本期总体情况 / 主要问题 / 下步建议, written from the brief's own numbers: the volumes and the
    targets met, the largest moves against the previous period, the targets missed with the units
    furthest behind, the lowest composite scores — each named with its number."""
    r, prev = b.report, b.previous
    codes = CASE_CARDS + SERVICE_CARDS
    ks = [r.kpis[c] for c in codes]
    with_target = [k for k in ks if k.met is not None]
    missed = [k for k in with_target if not k.met]
    overall = []
    counts = [r.kpis[c] for c in CASE_CARDS if r.kpis[c].denominator is None and r.kpis[c].direction == "up"]
    if counts:
        overall.append("本期" + "、".join(f"{k.name} {with_unit(k.value, k.unit)}" for k in counts) + "。")
    if with_target:
        overall.append(f"有目标的 {len(with_target)} 项指标中达标 {len(with_target) - len(missed)} 项、"
                       f"未达标 {len(missed)} 项。")
    moves = []
    for k in ks:
        c = kpis.change(k.value, prev.kpis[k.code].value, k.unit)
        if c is not None and abs(c) >= FLAT:
            moves.append((abs(c), k, change_text(k.value, prev.kpis[k.code].value, k.unit),
                          change_tone(k.value, prev.kpis[k.code].value, k.unit, k.direction)))
    moves.sort(key=lambda m: (-m[0], m[1].code))
    if moves:
        overall.append("环比变化最大：" + "；".join(
            f"{k.name} {with_unit(k.value, k.unit)}（环比 {text}，{'向好' if tone == 'good' else '变差'}）"
            for _, k, text, tone in moves[:3]) + "。")
    else:
        overall.append("与上一周期相比各项指标无明显变化（或上一周期无可比数据）。")

    problems, actions = [], []
    # the three furthest from their targets (in points for rates, relative for the rest)
    missed.sort(key=lambda k: (-abs(k.value - k.target) / (1.0 if is_rate(k.unit) else abs(k.target) or 1.0), k.code))
    for k in missed[:3]:
        gap = abs(k.value - k.target)
        gap_text = f"{100 * gap:.1f} 个百分点" if is_rate(k.unit) else with_unit(gap, k.unit)
        worst = _units(r, k.code)
        who = ("，其中 " + "、".join(f"{n} {with_unit(v, k.unit)}" for n, v in worst)) if worst else ""
        problems.append(f"{k.name} {with_unit(k.value, k.unit)}，未达目标 {target_text(k).replace('目标 ', '')}"
                        f"（差 {gap_text}）{who}。")
        if worst:
            actions.append(f"督促 {'、'.join(n for n, _ in worst)} 提升{k.name}，"
                           f"力争达到 {target_text(k).replace('目标 ', '')}。")
        else:
            actions.append(f"分析{k.name}未达标原因，力争达到 {target_text(k).replace('目标 ', '')}。")
    if missed[3:]:
        problems.append(f"另有 {len(missed) - 3} 项未达标：" + "、".join(
            f"{k.name} {with_unit(k.value, k.unit)}（目标 {target_text(k).replace('目标 ', '')}）" for k in missed[3:]) + "。")
    overdue = [r.kpis[c] for c in CASE_CARDS if r.kpis[c].denominator is None and r.kpis[c].direction == "down"]
    worse = [(k, text) for _, k, text, tone in moves if tone == "bad" and k not in missed and k not in overdue][:2]
    for k, text in worse:
        problems.append(f"{k.name}环比变差：{with_unit(k.value, k.unit)}（环比 {text}）。")
    for k in overdue:
        if k.value:
            text = change_text(k.value, prev.kpis[k.code].value, k.unit)
            problems.append(f"截至统计时点{k.name} {with_unit(k.value, k.unit)}" + ("" if text == "—" else f"（环比 {text}）") + "。")
            actions.append(f"对{k.name.replace('数', '')}的 {with_unit(k.value, k.unit)}案件逐件督办，明确办结时限。")
    rk = r.ranking
    if rk and rk.black:
        worst_units = "、".join(f"{x.name} {x.score:.1f} 分（{x.grade}）" for x in rk.black)
        problems.append(f"综合指标值最低的单位：{worst_units}。")
        actions.append(f"对黑榜单位 {'、'.join(x.name for x in rk.black)} 开展督导，逐项对照结案率、按期处置率和返工率整改。")
    if rk and rk.red:
        actions.append(f"总结推广红榜单位 {'、'.join(f'{x.name}（{x.score:.1f} 分）' for x in rk.red[:2])} 的做法。")
    if not problems:
        problems.append("各项有目标的指标均已达标。")
    return {"本期总体情况": overall, "主要问题": problems, "下步建议": actions or ["保持现有工作力度。"]}
