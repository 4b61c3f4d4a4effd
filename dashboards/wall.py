"""/wall — the city at a glance (大屏), first version: today's figures, lights, the map of open
cases over the district boundaries, the 24-hour trend, top problems, channels, latest activity."""
from __future__ import annotations

from datetime import datetime, timezone

import dash
from dash import Input, Output, State, dcc, html, no_update
from flask import current_app

from dashboards import _ids as ids
from dashboards import _theme as th
from dashboards._components import allowed, forbidden, graph, local_time, panel, tile
from dashboards._figures import case_map, channel_label, donut, hbar, hourly_trend, state_label
from dashboards._i18n import t
from incidents import queries

dash.register_page(__name__, path="/wall", name="态势大屏", order=0, title="态势大屏 · CityOps")


def layout(**_kwargs):
    if not allowed("wall"):
        return forbidden()
    every = float(current_app.config["WALL_REFRESH_SECONDS"]) * 1000
    return html.Div(className="wall", children=[
        dcc.Interval(id=ids.WALL_TICK, interval=every),
        dcc.Store(id="wall-version"),
        html.Div(id=ids.WALL_TILES, className="wall-tiles"),
        html.Div(className="wall-grid", children=[
            html.Div(className="wall-col", children=[
                panel(t("by_state"), graph(ids.WALL_STATES), cls="grow"),
                panel(t("channels"), graph(ids.WALL_CHANNELS), cls="grow"),
            ]),
            panel(t("map_title"), graph(ids.WALL_MAP, config=th.MAP_CONFIG), cls="wall-map"),
            html.Div(className="wall-col", children=[
                panel(t("trend_24h"), graph(ids.WALL_TREND), cls="grow"),
                panel(t("top_categories"), graph(ids.WALL_CATEGORIES), cls="grow"),
                panel(t("recent"), html.Ul(id=ids.WALL_RECENT, className="recent"), cls="grow"),
            ]),
        ]),
        html.Div(id=ids.WALL_UPDATED, className="updated"),
    ])


@dash.callback(
    Output(ids.WALL_TILES, "children"), Output(ids.WALL_MAP, "figure"), Output(ids.WALL_STATES, "figure"),
    Output(ids.WALL_TREND, "figure"), Output(ids.WALL_CATEGORIES, "figure"), Output(ids.WALL_CHANNELS, "figure"),
    Output(ids.WALL_RECENT, "children"), Output(ids.WALL_UPDATED, "children"), Output("wall-version", "data"),
    Input(ids.WALL_TICK, "n_intervals"), State("wall-version", "data"))
def refresh(_n, seen):
    if not allowed("wall"):
        raise dash.exceptions.PreventUpdate
    now = datetime.now(timezone.utc)
    city = queries.city_info()
    snap = queries.wall_snapshot(now, city.timezone, every=current_app.config["WALL_REFRESH_SECONDS"])
    updated = f"{t('updated_at')} {local_time(snap.as_of, '%H:%M:%S')}"
    key = [snap.version, snap.as_of.isoformat()]
    if seen == key:
        return (no_update,) * 7 + (updated, no_update)
    return (_tiles(snap), _map(snap, city), _states(snap), hourly_trend(snap.hourly, city.timezone),
            hbar(snap.top_categories), donut(snap.channels, channel_label), _recent(snap), updated, key)


def _tiles(snap):
    open_n = sum(n for s, n in snap.by_state.items() if s not in ("closed", "voided"))
    return [
        tile(t("today_reported"), snap.today["reported"], t("cases_unit"), title="今日0时起上报的案件数"),
        tile(t("today_registered"), snap.today["registered"], t("cases_unit"), title="今日0时起立案的案件数"),
        tile(t("today_dispatched"), snap.today["dispatched"], t("cases_unit"), title="今日0时起派遣的案件数"),
        tile(t("today_closed"), snap.today["closed"], t("cases_unit"), title="今日0时起核查结案的案件数"),
        tile(t("open_cases"), open_n, t("cases_unit"), title="除已结案、已作废外的全部案件"),
        tile(t("yellow"), snap.lights.get("yellow", 0), t("cases_unit"), tone="warn",
             title="处置中且已用时限超过80%的案件"),
        tile(t("overdue"), snap.lights.get("red", 0), t("cases_unit"), tone="alarm",
             title="处置中且已超过处置时限的案件"),
    ]


def _map(snap, city):
    return case_map(queries.district_shapes(city.name), snap.open_by_district, snap.points,
                    center=city.center, zoom=city.zoom, tile_url=current_app.config["TILE_URL"])


def _states(snap):
    order = ["reported", "registered", "dispatched", "in_progress", "resolved", "suspended"]
    return hbar([(state_label(s), snap.by_state.get(s, 0)) for s in order], color=th.ACCENT)


def _recent(snap):
    from dashboards._figures import state_label as sl
    return [html.Li([html.Span(local_time(e["at"], "%H:%M"), className="t"),
                     html.Span(sl(e["state"]), className=f"s s-{e['state']}"),
                     html.Span(f"#{e['id']} {e['title']}", className="d")]) for e in snap.recent]
