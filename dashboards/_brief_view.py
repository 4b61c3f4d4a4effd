"""How the brief writes its numbers, shared by the page, the PDF and the Excel export so that all
three show the same text: values with units, targets, changes (环比/同比), the period line and
the sparkline. Formatting only: every number comes from ``incidents.kpis`` via ``incidents.queries.brief``."""
from __future__ import annotations

import base64
from datetime import datetime
from typing import Optional
from zoneinfo import ZoneInfo

from incidents import kpis

CASE_CARDS = kpis.CASE_KPIS
SERVICE_CARDS = kpis.SERVICE_KPIS
#: a change under 0.05 (percentage points or %) prints as 0.0: shown as no change, neither good nor bad
FLAT = 0.0005
PRESET_LABELS = {"today": ("今日", "Today"), "week": ("本周", "This week"), "month": ("本月", "This month"),
                 "quarter": ("本季度", "This quarter"), "custom": ("自定义", "Custom")}


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
