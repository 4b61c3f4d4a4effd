"""/wall — the city at a glance (大屏) for operators at a video wall.

One grid layout that rearranges itself for 16:9 and 32:9 walls (assets/wall.css), type sized
from the screen height, the map in the middle with switchable layers (districts, grid heat,
case points), drill-down into a district, an alarm ticker with acknowledgement, and an honest
"数据更新于" line with a stale banner that appears when the database cannot be reached and goes
when it comes back. A refresh sends the whole map only when its layers change; otherwise it
patches the numbers and points.
"""
from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from typing import NamedTuple, Optional

import dash
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from flask import current_app, g
from flask_login import current_user

from dashboards import _ids as ids
from dashboards import _theme as th
from dashboards._answers import keep_private, shared
from dashboards._components import allowed, forbidden, graph, local_time, panel, pct, tile
from dashboards._figures import (channel_label, donut, hbar, hourly_trend, map_bounds, map_plan, state_label,
                                 wall_map_base, wall_map_full, wall_map_layers, wall_map_patch)
from dashboards._i18n import lang, t
from incidents import commands, kpis, permissions, services
from incidents.lifecycle import DomainError
from incidents.queries import reference, wall

log = logging.getLogger(__name__)
dash.register_page(__name__, path="/wall", name="态势大屏", order=0, title="态势大屏 · CityOps")

LAYERS = ["districts", "grid", "points"]
DEFAULT_LAYERS = ["districts", "points"]


def layout(**_kwargs):
    if not allowed("wall"):
        return forbidden()
    every = float(current_app.config["WALL_REFRESH_SECONDS"]) * 1000
    city = reference.city_info()
    first = _first_render(city)
    return html.Div(className="wall", id="wall", children=[
        dcc.Interval(id=ids.WALL_TICK, interval=every),
        dcc.Store(id="wall-seen", data=first["seen"]), dcc.Store(id="wall-district"),
        dcc.Store(id="wall-last-ok", data=first["last_ok"]), dcc.Store(id="wall-scale", data=1.0),
        html.Div(first["banner"], id="wall-banner", className=first["banner_cls"], role="alert"),
        html.Div(first["tiles"], id=ids.WALL_TILES, className="wall-tiles"),
        html.Div(className="wall-grid", children=[
            panel(t("by_state"), graph(ids.WALL_STATES, figure=first["states"]), cls="p-states", id_="wall-p-states"),
            panel(t("channels"), graph(ids.WALL_CHANNELS, figure=first["channels"]), cls="p-channels", id_="wall-p-channels"),
            panel(t("dept_on_time", n=kpis.MIN_RANKING_VOLUME),
                  html.Div(first["depts"], id="wall-depts", className="bars"), cls="p-depts", id_="wall-p-depts"),
            html.Div(className="panel p-map", children=[
                html.Div(className="map-head", children=[
                    html.Div(first["title"], id="wall-map-title", className="panel-title"),
                    dcc.Checklist(id="wall-layers", value=DEFAULT_LAYERS, inline=True, className="layers",
                                  options=[{"label": t(f"layer_{k}"), "value": k} for k in LAYERS]),
                    html.Button(t("back_to_city"), id="wall-back", className="btn-link hidden", n_clicks=0),
                ]),
                html.Div(graph(ids.WALL_MAP, config=th.MAP_CONFIG, figure=first["map"]), className="panel-body",
                         **{"data-bounds": map_bounds(reference.district_shapes(city.name))}),
            ]),
            panel(t("trend_24h"), graph(ids.WALL_TREND, figure=first["trend"]), cls="p-trend", id_="wall-p-trend"),
            panel(t("top_categories"), graph(ids.WALL_CATEGORIES, figure=first["cats"]), cls="p-cats", id_="wall-p-cats"),
            panel(t("feeds"), html.Div(first["feeds"], id="wall-feeds", className="feeds"), cls="p-feeds", id_="wall-p-feeds"),
        ]),
        # the ticker pages through its alarms, whole ones only (assets/wall.js)
        html.Div(className="ticker", **{"data-sound": "1" if current_app.config["WALL_ALARM_SOUND"] else "0"},
                 children=[
            html.Span(t("alarms"), className="ticker-title"),
            html.Ul(first["alarms"], id=ids.WALL_RECENT, className="ticker-list"),
            html.Span(className="ticker-page", id="wall-ticker-page"),
            html.Span(first["updated"], id=ids.WALL_UPDATED, className="updated"),
        ]),
    ])


def _first_render(city) -> dict:
    """The page arrives with its figures: the map is created once with its data, and refreshes
    only patch it (the first tick comes one period later, when the map has loaded)."""
    view = _view(city, None)
    empty = {"seen": None, "last_ok": None, "tiles": [], "states": {}, "channels": {}, "depts": [], "trend": {},
             "cats": {}, "feeds": [], "alarms": [], "updated": "", "title": t("map_title"),
             "map": wall_map_base(view)}
    try:
        data = wall.wall_data(datetime.now(timezone.utc), city.timezone,
                                      every=current_app.config["WALL_REFRESH_SECONDS"])
    except wall.Unavailable:
        return {**empty, "banner": t("stale_db", t="—"), "banner_cls": "wall-banner stale"}
    out = render(data, city, DEFAULT_LAYERS, 1.0, None, first=True)
    keys = ["tiles", "map", "states", "channels", "depts", "trend", "cats", "feeds", "alarms", "updated",
            "banner", "banner_cls", "seen", "last_ok", "title", "back_cls"]
    return dict(zip(keys, out))


# small screens show one side panel at a time, rotating every few refreshes (CSS decides when)
SIDE_PANELS = ["p-states", "p-channels", "p-depts", "p-trend", "p-cats", "p-feeds"]
dash.clientside_callback(
    """function(n) {
        const names = %s, active = Math.floor((n || 0) / 2) %% names.length;
        return names.map((c, i) => 'panel ' + c + (i === active ? ' rot-active' : ''));
    }""" % SIDE_PANELS,
    [Output(f"wall-{c}", "className") for c in SIDE_PANELS], Input(ids.WALL_TICK, "n_intervals"))

# the type on a wall is sized from the screen height; figures follow the same scale
dash.clientside_callback(
    "function(_) { return Math.round(window.innerHeight / 1080 * 100) / 100; }",
    Output("wall-scale", "data"), Input("wall", "id"))
# a screen of another size than 1080p asks for its refresh at once (its figures drawn at its own scale
# from the first second), not one refresh period after the first paint
dash.clientside_callback(
    "function(scale) { return scale && scale !== 1 ? 1 : window.dash_clientside.no_update; }",
    Output(ids.WALL_TICK, "n_intervals"), Input("wall-scale", "data"), prevent_initial_call=True)


def _ask(layers_on, district, scale, seen) -> "Ask | None":
    """What a refresh asks for, bounded, with the data clock it is answered at (read once per request:
    the key of the shared answer and the answer itself are of the same version and bucket); None when
    the caller may not see the wall or an input is out of bounds."""
    if not allowed("wall"):
        return None
    asked = (layers_on, district, scale, seen)
    memo = g.get("wall_ask")
    if memo is not None and memo[0] == asked:
        if isinstance(memo[1], wall.Unavailable):
            raise memo[1]   # the database is away: one wait per request, not one per question
        return memo[1]
    layers = _bounded_layers(layers_on)
    if layers is None or not _bounded_district(district) or not _bounded_scale(scale) or not _bounded_seen(seen):
        return None
    every = current_app.config["WALL_REFRESH_SECONDS"]
    try:
        clock = wall.clock(datetime.now(timezone.utc), every)
    except wall.Unavailable as exc:   # the caller says so
        g.wall_ask = (asked, exc)
        raise
    ask = Ask(layers, district or None, float(scale or 1.0), seen, clock, every)
    g.wall_ask = (asked, ask)
    return ask


class Ask(NamedTuple):   # (a dataclass needs its module in sys.modules, which Dash's page loader skips)
    layers: tuple
    district: Optional[str]
    scale: float
    seen: Optional[dict]
    clock: wall.Clock
    every: float

    @property
    def mode(self) -> str:
        """"layers" (the map's traces change), "patch" (numbers and points) or "idle" (only the time line)."""
        return _mode(self.seen, _structure(list(self.layers), self.district, self.scale),
                     self.clock.version, self.clock.as_of)


def refresh_key(_n, layers_on, district, scale, seen, _last_ok):
    """Everything a refresh's answer depends on, as (what is asked, at which data clock): screens
    asking alike share one rendered answer."""
    try:
        ask = _ask(layers_on, district, scale, seen)
    except wall.Unavailable:
        return None    # the database is away: each screen gets its own stale banner
    if ask is None:
        return None
    can_ack = current_user.role in permissions.ACK_ROLES   # the ticker's acknowledge buttons
    asked = ("wall.refresh", ask.every, ask.layers, ask.district, round(ask.scale, 2), ask.mode, lang(), can_ack)
    return asked, (ask.clock.version, ask.clock.as_of.isoformat())


@dash.callback(
    Output(ids.WALL_TILES, "children"), Output(ids.WALL_MAP, "figure"), Output(ids.WALL_STATES, "figure"),
    Output(ids.WALL_CHANNELS, "figure"), Output("wall-depts", "children"), Output(ids.WALL_TREND, "figure"),
    Output(ids.WALL_CATEGORIES, "figure"), Output("wall-feeds", "children"), Output(ids.WALL_RECENT, "children"),
    Output(ids.WALL_UPDATED, "children"), Output("wall-banner", "children"), Output("wall-banner", "className"),
    Output("wall-seen", "data"), Output("wall-last-ok", "data"), Output("wall-map-title", "children"),
    Output("wall-back", "className"),
    Input(ids.WALL_TICK, "n_intervals"), Input("wall-layers", "value"), Input("wall-district", "data"),
    State("wall-scale", "data"), State("wall-seen", "data"), State("wall-last-ok", "data"),
    prevent_initial_call=True)
@shared(refresh_key)
def refresh(_n, layers_on, district, scale, seen, last_ok):
    try:
        ask = _ask(layers_on, district, scale, seen)
        if ask is None:
            raise dash.exceptions.PreventUpdate
        city = reference.city_info()
        data = wall.wall_data(ask.clock.as_of, city.timezone, every=ask.every, district=ask.district,
                              version=ask.clock.version)
    except wall.Unavailable as exc:  # the database is away: say so, keep what is on screen, retry next tick
        log.warning("wall refresh failed: %s", exc)
        keep_private()   # it names the time this screen last had data
        banner = t("stale_db", t=local_time(datetime.fromisoformat(last_ok), "%H:%M:%S") if last_ok else "—")
        return (no_update,) * 10 + (banner, "wall-banner stale", no_update, no_update, no_update, no_update)
    return render(data, city, list(ask.layers), ask.scale, seen)


def _structure(layers_on, district, view_scale) -> list:
    return [sorted(layers_on), district, round(view_scale, 2)]


def _mode(seen, structure, version, as_of) -> str:
    if not seen or seen.get("structure") != structure:
        return "layers"
    same_minute = (seen.get("as_of") or "")[:16] == as_of.isoformat()[:16]
    # lights change with the clock: the map is refreshed at least once a minute
    return "idle" if seen.get("version") == version and same_minute else "patch"


def _bounded_layers(layers_on):
    if layers_on is None:
        return ()
    if not isinstance(layers_on, list) or len(layers_on) > len(LAYERS) or not all(x in LAYERS for x in layers_on):
        return None
    return tuple(layers_on)


def _bounded_district(district) -> bool:
    return district is None or (isinstance(district, str) and 0 < len(district) <= 32
                                and district.replace("-", "").replace("_", "").replace(".", "").isalnum())


def _bounded_scale(scale) -> bool:
    return scale is None or (isinstance(scale, (int, float)) and not isinstance(scale, bool)
                             and math.isfinite(scale) and 0.1 <= scale <= 10)


def _bounded_seen(seen) -> bool:
    return seen is None or (isinstance(seen, dict) and len(repr(seen)) <= 1000)


def render(data, city, layers_on, scale, seen, *, first: bool = False):
    view_scale, scale = scale, max(scale, 1.0)   # the map zooms with the screen; type never shrinks
    structure = _structure(layers_on, data.district, view_scale)
    plan = map_plan(layers_on, data.district)
    shapes = reference.district_shapes(city.name)
    grids = wall.grid_shapes(data.district or "") if ("grid" in layers_on or data.district) else {"features": []}
    mode = "first" if first else _mode(seen, structure, data.version, data.as_of)
    if mode == "first":
        fig = wall_map_full(plan, data, district_shapes=shapes, grid_shapes=grids, view=_view(city, None))
    elif mode == "idle":
        fig = no_update
    elif mode == "patch":
        fig = wall_map_patch(plan, data, district_shapes=shapes, grid_shapes=grids)
    else:
        fig = wall_map_layers(plan, data, district_shapes=shapes, grid_shapes=grids,
                              view=_view(city, data.district, view_scale, shapes), scale=scale)
    updated = f"{t('updated_at')} {local_time(data.as_of, '%H:%M:%S')}"
    silent = [_feed_name(f["feed"]) for f in data.feeds if f["status"] == "silent"]
    banner, banner_cls = (t("stale_feed", feeds="、".join(silent)), "wall-banner warn") if silent else ("", "wall-banner hidden")
    if mode == "idle":  # nothing changed: the time line moves, a stale banner goes
        return (no_update,) * 9 + (updated, banner, banner_cls) + (no_update, data.as_of.isoformat()) + (no_update,) * 2
    names = {f["id"]: f["properties"]["name"] for f in shapes["features"]}
    title = f"{t('map_title')} · {names.get(data.district, '')}" if data.district else f"{t('map_title')} · {t('drill_hint')}"
    return (_tiles(data), fig, _states(data, scale), donut(data.channels, channel_label, scale=scale), _depts(data),
            hourly_trend(data.hourly, city.timezone, scale=scale), hbar(data.top_categories, scale=scale),
            _feeds(data), _alarms(data), updated,
            banner, banner_cls,
            {"structure": structure, "version": data.version, "as_of": data.as_of.isoformat()},
            data.as_of.isoformat(), title, "btn-link" if data.district else "btn-link hidden")


@dash.callback(Output("wall-district", "data"), Input(ids.WALL_MAP, "clickData"), Input("wall-back", "n_clicks"),
               prevent_initial_call=True)
def drill(click, _back):
    """Click a district to zoom in and filter every panel to it; the button brings back the city."""
    if not allowed("wall"):
        raise dash.exceptions.PreventUpdate
    if ctx.triggered_id == "wall-back":
        return None
    point = (click or {}).get("points", [{}])[0]
    code = point.get("location")
    if code and code in {f["id"] for f in reference.district_shapes(reference.city_info().name)["features"]}:
        return code
    raise dash.exceptions.PreventUpdate


@dash.callback(Output({"type": "ack", "key": ALL}, "disabled"), Input({"type": "ack", "key": ALL}, "n_clicks"),
               prevent_initial_call=True)
def acknowledge(clicks):
    """An operator acknowledges an alarm: recorded with who and when; it leaves every wall at the next refresh."""
    if not ctx.triggered_id or not any(clicks) or not current_user.is_authenticated:
        raise dash.exceptions.PreventUpdate
    actor = services.Actor.of(current_user)
    try:
        commands.acknowledge_alarm(actor, ctx.triggered_id["key"], now=datetime.now(timezone.utc))
    except DomainError:
        raise dash.exceptions.PreventUpdate
    return [True if i.get("id", {}).get("key") == ctx.triggered_id["key"] else no_update
            for i in ctx.outputs_list]


def _view(city, district, scale: float = 1.0, shapes: dict | None = None) -> dict:
    """Centre and zoom for the city or a district; a bigger wall (scale) shows the same area larger."""
    bigger = math.log2(min(max(scale, 0.25), 8.0))
    if not district:
        return {"lat": city.center[0], "lon": city.center[1], "zoom": round(city.zoom + bigger, 2)}
    feature = next(f for f in shapes["features"] if f["id"] == district)
    xs, ys = [], []
    g = feature["geometry"]
    for poly in (g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]):
        xs += [p[0] for p in poly[0]]
        ys += [p[1] for p in poly[0]]
    dlon, dlat = max(xs) - min(xs), max(ys) - min(ys)
    zoom = min(math.log2(900 * 360 / (256 * max(dlon, 1e-3))), math.log2(650 * 360 / (256 * max(dlat * 1.15, 1e-3))))
    return {"lat": (min(ys) + max(ys)) / 2, "lon": (min(xs) + max(xs)) / 2, "zoom": round(zoom - 0.3 + bigger, 2)}


def _tiles(d):
    """The wall's figures, each with what makes it mean something at any hour: a count beside the
    same time yesterday, a rate beside its target — and a rate of too few cases says so."""
    targets = d.targets
    online = None
    if d.online:
        ratio, day = d.online
        goal = targets.get("online_rate")
        online = tile(f"{t('online_rate')}（{t('last_7_days')}）", pct(ratio.value),
                      tone=_against(ratio.value, goal), note=_target_note(goal),
                      title=f"网办率 = 网上办理 {ratio.numerator:,} ÷ 办件总数 {ratio.denominator:,}"
                            f"（截至 {day} 的近7天一网通办数据）")
    y = d.yesterday
    running = sum(d.lights.values())
    tiles = [
        tile(t("today_reported"), d.today["reported"], t("cases_unit"), title=_formula("reported_count"),
             note=_yesterday_note(d.today["reported"], y.get("reported"))),
        tile(t("today_registered"), d.today["registered"], t("cases_unit"), title=_formula("registered_count"),
             note=_yesterday_note(d.today["registered"], y.get("registered"))),
        tile(t("today_closed"), d.today["closed"], t("cases_unit"), title=_formula("closed_count"),
             note=_yesterday_note(d.today["closed"], y.get("closed"))),
        _rate_tile(t("closure_today"), d.closure, targets.get("closure_rate"), "closure_rate"),
        _rate_tile(t("on_time_today"), d.on_time, targets.get("on_time_disposal_rate"), "on_time_disposal_rate"),
        tile(t("overdue"), d.overdue, t("cases_unit"), tone="alarm" if d.overdue else "", title=_formula("overdue_open_count"),
             note=_yesterday_note(d.overdue, y.get("overdue"), lower_is_better=True)),
        tile(t("yellow"), d.lights.get("yellow", 0), t("cases_unit"), tone="warn" if d.lights.get("yellow") else "",
             title="即将超期：已派遣、尚未处置且已用时限超过80%的案件",
             note=t("share_of_running", share=pct(d.lights.get("yellow", 0) / running if running else None))),
        tile(t("open_cases"), d.open_total, t("cases_unit"), title="在办案件：除已结案、已作废外的全部案件",
             note=t("running_now", n=f"{running:,}")),
    ]
    return tiles + ([online] if online else [])


def _rate_tile(label: str, ratio, goal, code: str):
    title = f"{_formula(code)}（今日：{ratio.numerator:,} ÷ {ratio.denominator:,}）"
    if ratio.denominator < kpis.MIN_RATE_SAMPLE:      # 0 of 2 at dawn is no 0.0 %
        return tile(label, t("too_few"), "", title=title,
                    note=t("too_few_note", n=ratio.denominator, floor=kpis.MIN_RATE_SAMPLE))
    return tile(label, pct(ratio.value), tone=_against(ratio.value, goal), title=title, note=_target_note(goal))


def _against(value, goal) -> str:
    if value is None or goal is None:
        return ""
    return "good" if value >= goal else "warn"


def _target_note(goal):
    return f"{t('target')} ≥ {goal:.0%}" if goal is not None else None


def _yesterday_note(today: int, before, *, lower_is_better: bool = False):
    if before is None:
        return None
    delta = today - before
    arrow = "▲" if delta > 0 else "▼" if delta < 0 else "＝"
    tone = ("bad" if delta > 0 else "good") if lower_is_better and delta else ""   # (more reports: no verdict)
    return html.Span([f"{t('same_time_yesterday')} {before:,} ",
                      html.Span(f"{arrow}{abs(delta):,}" if delta else arrow, className=f"delta {tone}".strip())])


def _formula(code: str) -> str:
    """A tile's 口径: the brief's formula of the KPI it shows (the same number by the same path)."""
    return kpis.DEFINITIONS[code][4]


def _states(d, scale):
    order = ["reported", "registered", "dispatched", "in_progress", "resolved", "suspended"]
    return hbar([(state_label(s), d.by_state.get(s, 0)) for s in order], scale=scale)


def _depts(d):
    if not d.departments:
        return html.Div(t("no_data"), className="muted")
    return [html.Div(className="bar-row", children=[
        html.Span(name, className="bar-label", title=name),
        html.Span(className="bar-track", children=html.Span(
            className="bar-fill " + ("good" if (r.value or 0) >= 0.9 else "warn" if (r.value or 0) >= 0.75 else "bad"),
            style={"width": f"{100 * (r.value or 0):.1f}%"})),
        html.Span(pct(r.value), className="bar-value", title=f"按期 {r.numerator:,} ÷ 处置 {r.denominator:,}")])
        for name, r in d.departments]


def _feed_name(name: str) -> str:
    """A feed's name as the wall says it (the demo simulator's in Chinese)."""
    return t("feed_name_demo") if name == "demo" else name


def _feeds(d):
    """Feed health; when every feed is well it folds into one line (assets/wall.css gives the
    panel's room to the panels above: ``.wall-grid:has(.feeds-all-ok)``)."""
    if not d.feeds:
        return html.Div(t("no_data"), className="muted")
    if all(f["status"] == "ok" for f in d.feeds):
        names = "、".join(_feed_name(f["feed"]) for f in d.feeds[:4]) + ("…" if len(d.feeds) > 4 else "")
        return html.Div(className="feeds-all-ok", title="；".join(
            f"{_feed_name(f['feed'])}：近1小时 {f['last_hour']} 件，同时段常态 {f['usual_hourly']:.1f} 件/小时"
            for f in d.feeds), children=[html.Span(className="dot green"),
                                         html.Span(t("feeds_all_ok", n=len(d.feeds), names=names))])
    rows = []
    for f in d.feeds[:6]:
        lag = f["lag_seconds"]
        lag_text = "—" if lag is None else f"{lag / 60:.0f} {t('minutes')}"
        rows.append(html.Div(className=f"feed-row {f['status']}", children=[
            html.Span(className=f"dot {'green' if f['status'] == 'ok' else 'yellow' if f['status'] == 'late' else 'red'}"),
            html.Span(_feed_name(f["feed"]), className="feed-name"),
            html.Span(t(f"feed_{f['status']}"), className="feed-status"),
            html.Span(lag_text, className="feed-lag", title="距最后一条记录"),
            html.Span(f"{f['last_hour']} {t('per_hour')}", className="feed-rate",
                      title=f"近1小时 {f['last_hour']} 件；同时段常态 {f['usual_hourly']:.1f} 件/小时")]))
    return rows


def _alarms(d):
    if not d.alarms:
        return [html.Li(t("no_alarms"), className="muted")]
    can_ack = current_user.is_authenticated and current_user.role in permissions.ACK_ROLES
    minutes = reference.city_info().escalate_after_minutes
    items = []
    for a in d.alarms:
        title = _feed_name(a.title) if a.kind == "feed" else a.title
        if a.kind == "repeat":      # 重复诉求: the place, how many repeats, and the cases behind it
            text = f"{title} {t('alarm_repeat_n', n=a.count)} " + " ".join(f"#{i}" for i in a.cases[:6])
        else:
            text = title + (f" {t('alarm_folded', n=a.count)}" if a.count > 1 else "")
        if a.acked_by:          # who and when, in place of the button
            after = html.Span(t("acked_by", who=a.acked_by, at=local_time(a.acked_at, "%H:%M")), className="acked")
        elif can_ack:
            after = html.Button(t("ack"), id={"type": "ack", "key": a.key}, className="ack", n_clicks=0)
        else:
            after = None
        cls = f"alarm {a.kind}" + (" escalated" if a.escalated else "") + (" is-acked" if a.acked_by else "")
        items.append(html.Li(className=cls, title=t("escalated_hint", n=minutes) if a.escalated else None, children=[
            html.Span(local_time(a.at, "%H:%M"), className="t"),
            html.Span(t("alarm_escalated") if a.escalated else t(f"alarm_{a.kind}"), className="k"),
            html.Span((f"#{a.case_id} " if a.case_id and a.count == 1 and a.kind != "repeat" else "") + text,
                      className="d", title=a.reason or None),
            after]))
    return items
