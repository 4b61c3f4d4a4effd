"""Figures built from read models (frames in, figures out)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
from dash import Patch

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


def map_plan(layers_on: list[str], district: str | None) -> list[str]:
    """The traces of the wall map, in order; a refresh patches them by position."""
    plan = []
    if district or "districts" in layers_on:
        plan.append("areas")            # districts by open cases, or the chosen district's grid cells
    if not district and "grid" in layers_on:
        plan.append("heat")             # all grid cells as a heat layer
    if district:
        plan.append("outline")
    if "points" in layers_on:
        plan += [f"p:{light}" for light in layers.incidents.ORDER]
    return plan


def _light_labels() -> dict[str, str]:
    return {"red": t("overdue"), "yellow": t("yellow"), "green": t("green"), "none": t("not_dispatched")}


def map_bounds(shapes: dict) -> str:
    """The map panel's ``data-bounds`` ("west,south,east,north"): assets/wall.js fits the city
    into the panel's own size and aspect from the first paint."""
    return ",".join(f"{v:.5f}" for v in layers.districts.bounds(shapes))


def wall_map_base(view: dict) -> go.Figure:
    """The wall map without data, sent with the page; every refresh after that is a Patch. Its style
    is our own offline style by URL (/map/style.json): an inline style object is re-diffed by
    MapLibre on updates, which fails ("Map error.")."""
    fig = go.Figure()
    fig.update_layout(**th.base_layout(
        map=dict(style=th.MAP_STYLE_URL, center=dict(lat=view["lat"], lon=view["lon"]), zoom=view["zoom"]),
        showlegend=True, legend=dict(x=0.01, y=0.02, bgcolor="rgba(7,18,31,0.75)")))
    return fig


def _map_traces(plan: list[str], data, *, district_shapes: dict, grid_shapes: dict) -> list:
    traces = []
    label, unit = t("legend_open"), t("cases_unit")
    for kind in plan:
        if kind == "areas":
            shapes = grid_shapes if data.district else district_shapes
            traces += layers.LAYERS["districts"](shapes, data.by_area, label=label, unit=unit, name="areas",
                                                 scale_title=f"{label}（{unit}）")
        elif kind == "heat":
            traces += layers.LAYERS["grid"](grid_shapes, data.grid_counts, label=label, unit=unit, heat=True,
                                            name="heat")
        elif kind == "outline":
            sel = {"type": "FeatureCollection",
                   "features": [f for f in district_shapes["features"] if f["id"] == data.district]}
            traces += layers.LAYERS["outlines"](sel, color="#8fd3ff", width=2.5)
    if any(k.startswith("p:") for k in plan):
        traces += layers.LAYERS["incidents"](data.points, colors=th.LIGHT_COLORS, labels=_light_labels())
    return traces


def wall_map_full(plan: list[str], data, *, district_shapes: dict, grid_shapes: dict, view: dict) -> go.Figure:
    """The first render of the wall map, with its data, built with the page."""
    fig = wall_map_base(view)
    fig.add_traces(_map_traces(plan, data, district_shapes=district_shapes, grid_shapes=grid_shapes))
    fig.update_layout(uirevision=f"map-{data.district or 'city'}-1.00")
    return fig


def wall_map_layers(plan: list[str], data, *, district_shapes: dict, grid_shapes: dict, view: dict,
                    scale: float = 1.0) -> Patch:
    """A Patch that replaces the map's traces (layers switched or a district chosen) and its view."""
    traces = _map_traces(plan, data, district_shapes=district_shapes, grid_shapes=grid_shapes)
    patch = Patch()
    patch["data"] = [tr.to_plotly_json() for tr in traces]
    if data.district:     # (the city's view is fitted to the panel in the browser: assets/wall.js)
        patch["layout"]["map"]["center"] = {"lat": view["lat"], "lon": view["lon"]}
        patch["layout"]["map"]["zoom"] = view["zoom"]
    patch["layout"]["uirevision"] = f"map-{data.district or 'city'}-{scale:.2f}"
    patch["layout"]["font"] = dict(family=th.FONT, color=th.TEXT, size=round(14 * scale))
    patch["layout"]["legend"]["font"] = dict(size=round(14 * scale))
    return patch


def wall_map_patch(plan: list[str], data, *, district_shapes: dict, grid_shapes: dict) -> Patch:
    """Only the numbers and points change between refreshes: the shapes stay in the browser."""
    patch = Patch()
    for i, kind in enumerate(plan):
        if kind in ("areas", "heat"):
            if kind == "heat":
                z = layers.districts.values_for(grid_shapes, data.grid_counts)
            else:
                z = layers.districts.values_for(grid_shapes if data.district else district_shapes, data.by_area)
            patch["data"][i]["z"] = z
            patch["data"][i]["zmax"] = max(z) if z and max(z) > 0 else 1
        elif kind.startswith("p:"):
            lon, lat, custom, sizes = layers.incidents.point_arrays(data.points, kind[2:])
            patch["data"][i]["lon"], patch["data"][i]["lat"] = lon, lat
            patch["data"][i]["customdata"], patch["data"][i]["marker"]["size"] = custom, sizes
    return patch


def _scaled(scale: float, **kw) -> dict:
    layout = th.base_layout(**kw)
    layout["font"] = dict(family=th.FONT, color=th.TEXT, size=round(13 * scale))
    return layout


def hourly_trend(hourly: list[tuple[datetime, int]], tz: str, *, scale: float = 1.0) -> go.Figure:
    zone = ZoneInfo(tz)
    x = [h.astimezone(zone).strftime("%H:00") for h, _ in hourly]
    y = [n for _, n in hourly]
    fig = go.Figure(go.Bar(x=x, y=y, marker_color=th.ACCENT,
                           hovertemplate="%{x}：%{y} " + t("cases_unit") + "<extra></extra>"))
    fig.update_layout(**_scaled(scale, margin=dict(l=round(40 * scale), r=8, t=4, b=round(28 * scale)),
                                xaxis=dict(showgrid=False, nticks=8, tickfont=dict(size=round(11 * scale))),
                                yaxis=dict(gridcolor=th.GRID, tickfont=dict(size=round(11 * scale)))))
    return fig


def hbar(items: list[tuple[str, int]], color: str = th.ACCENT, *, scale: float = 1.0) -> go.Figure:
    items = list(reversed(items))
    fig = go.Figure(go.Bar(x=[n for _, n in items], y=[k for k, _ in items], orientation="h",
                           marker_color=color, text=[f"{n:,}" for _, n in items], textposition="auto",
                           textfont=dict(size=round(12 * scale)), cliponaxis=False,
                           hovertemplate="%{y}：%{x:,} " + t("cases_unit") + "<extra></extra>"))
    fig.update_layout(**_scaled(scale, margin=dict(l=8, r=8, t=4, b=4), bargap=0.25,
                                xaxis=dict(visible=False),
                                yaxis=dict(automargin=True, dtick=1, tickfont=dict(size=round(13 * scale)))))
    return fig


def donut(values: dict[str, int], labeller, colors: dict[str, str] | None = None, *, scale: float = 1.0) -> go.Figure:
    keys = [k for k, v in sorted(values.items(), key=lambda kv: -kv[1]) if v]
    fig = go.Figure(go.Pie(labels=[labeller(k) for k in keys], values=[values[k] for k in keys], hole=0.55,
                           marker=dict(colors=[(colors or {}).get(k) for k in keys] if colors else None),
                           textinfo="label+percent", textfont=dict(size=round(12 * scale)), sort=False,
                           textposition="outside", automargin=True,
                           hovertemplate="%{label}：%{value:,} " + t("cases_unit") + "（%{percent}）<extra></extra>"))
    fig.update_layout(**_scaled(scale, margin=dict(l=8, r=8, t=8, b=8)))
    return fig
