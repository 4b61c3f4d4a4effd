"""Figures built from read models (frames in, figures out)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import plotly.graph_objects as go

import layers
from dashboards import _theme as th
from dashboards._i18n import t
from incidents.model import STATE_LABELS_EN, STATE_LABELS_ZH, CHANNEL_LABELS_EN, CHANNEL_LABELS_ZH, State, Channel
from dashboards._i18n import lang


def state_label(s: str) -> str:
    return (STATE_LABELS_EN if lang() == "en" else STATE_LABELS_ZH).get(State(s), s)


def channel_label(c: str) -> str:
    try:
        return (CHANNEL_LABELS_EN if lang() == "en" else CHANNEL_LABELS_ZH)[Channel(c)]
    except ValueError:
        return c


def case_map(shapes: dict, open_by_district: dict, points: list[dict], *, center: tuple[float, float],
             zoom: float, tile_url: str = "") -> go.Figure:
    light_labels = {"red": t("overdue"), "yellow": t("yellow"), "green": t("green"), "none": t("open_cases")}
    traces = (layers.LAYERS["districts"](shapes, open_by_district, label=t("legend_open"), unit=t("cases_unit"))
              + layers.LAYERS["incidents"](points, colors=th.LIGHT_COLORS, labels=light_labels))
    fig = go.Figure(traces)
    fig.update_layout(**th.base_layout(
        map=dict(style=th.offline_map_style(tile_url), center=dict(lat=center[0], lon=center[1]), zoom=zoom),
        showlegend=True, legend=dict(x=0.01, y=0.02, bgcolor="rgba(7,18,31,0.75)", font=dict(size=14))))
    return fig


def hourly_trend(hourly: list[tuple[datetime, int]], tz: str) -> go.Figure:
    zone = ZoneInfo(tz)
    x = [h.astimezone(zone).strftime("%H:00") for h, _ in hourly]
    y = [n for _, n in hourly]
    fig = go.Figure(go.Bar(x=x, y=y, marker_color=th.ACCENT,
                           hovertemplate="%{x}：%{y} " + t("cases_unit") + "<extra></extra>"))
    fig.update_layout(**th.base_layout(margin=dict(l=36, r=8, t=4, b=28),
                                       xaxis=dict(showgrid=False, tickfont=dict(size=11), nticks=8),
                                       yaxis=dict(gridcolor=th.GRID, tickfont=dict(size=11))))
    return fig


def hbar(items: list[tuple[str, int]], color: str = th.ACCENT) -> go.Figure:
    items = list(reversed(items))
    fig = go.Figure(go.Bar(x=[n for _, n in items], y=[k for k, _ in items], orientation="h",
                           marker_color=color, text=[f"{n:,}" for _, n in items], textposition="auto",
                           hovertemplate="%{y}：%{x:,} " + t("cases_unit") + "<extra></extra>"))
    fig.update_layout(**th.base_layout(margin=dict(l=8, r=8, t=4, b=4),
                                       xaxis=dict(visible=False), yaxis=dict(automargin=True, dtick=1, tickfont=dict(size=13))))
    return fig


def donut(values: dict[str, int], labeller, colors: dict[str, str] | None = None) -> go.Figure:
    keys = [k for k, v in sorted(values.items(), key=lambda kv: -kv[1]) if v]
    fig = go.Figure(go.Pie(labels=[labeller(k) for k in keys], values=[values[k] for k in keys], hole=0.55,
                           marker=dict(colors=[(colors or {}).get(k) for k in keys] if colors else None),
                           textinfo="label+percent", textfont=dict(size=12), sort=False,
                           hovertemplate="%{label}：%{value:,} " + t("cases_unit") + "（%{percent}）<extra></extra>"))
    fig.update_layout(**th.base_layout(margin=dict(l=4, r=4, t=4, b=4)))
    return fig
