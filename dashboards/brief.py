"""/brief — the leaders' KPI brief: a period (the last complete month by default, then the leader's
last choice; today, week, month, quarter, the last 30 days, custom dates) with 环比 and 同比, a card
per KPI of DESIGN §6 (value, target, change, a sparkline when there are enough slices, numerator and
denominator, its 口径 as a tooltip), rankings with grades, 红黑榜, 一网通办 by department and the KPI
feed. A card click opens the drawer: its own callbacks, which touch nothing but the drawer, list
every case behind the number block by block (AG Grid, infinite row model), those holding it back
marked. Exports: /brief/export.pdf and the Excel file built by a background job (/brief/exports),
with the same ``from``/``to``/``as_of``. Every number comes from ``incidents.queries.brief``."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import dash
import dash_ag_grid as dag
from dash import ALL, Input, Output, State, ctx, dcc, html

from dashboards import _brief_view as bv
from dashboards import _ids as ids
from dashboards import _theme as th
from dashboards._components import allowed, city_tz, forbidden, local_time, panel
from dashboards._figures import state_label
from dashboards._i18n import lang, t
from dashboards._markup import Markup, block, tag
from incidents.queries import brief as qb
from incidents.kpis import Period

dash.register_page(__name__, path="/brief", name="领导简报", order=1, title="领导简报 · CityOps")

DRILL_BLOCK = 100         # drawer rows fetched per block
DRILL_MAX_BLOCK = 500     # the most a (crafted) block request gets: the API's per-page bound


def layout(preset: str | None = None, **_kwargs):
    if not allowed("brief"):
        return forbidden()
    en = lang() == "en"
    preset = preset if preset in bv.PRESET_LABELS else None    # None: the leader's last choice (restored below)
    first = first_view(preset)
    return html.Div(className="brief", children=[
        dcc.Interval(id=ids.BRIEF_TICK, interval=300_000),
        dcc.Store(id=ids.BRIEF_PERIOD, data=first["period"]),
        dcc.Store(id=ids.BRIEF_CHOICE, storage_type="local"),
        html.Div(className="brief-head", children=[
            html.H2(t("brief_title")),
            dcc.RadioItems(id=ids.BRIEF_PRESET, value=preset, className="views brief-presets", inline=True,
                           options=[{"label": v[1] if en else v[0], "value": k}
                                    for k, v in bv.PRESET_LABELS.items()]),
            dcc.DatePickerRange(id=ids.BRIEF_RANGE, display_format="YYYY-MM-DD", className="brief-range",
                                start_date=first["start"], end_date=first["end"],
                                start_date_id="brief-range-start", end_date_id="brief-range-end",
                                start_date_placeholder_text=t("brief_from"),
                                end_date_placeholder_text=t("brief_to"), minimum_nights=0,
                                first_day_of_week=1, month_format="MMMM YYYY" if en else "YYYY 年 M 月"),
            html.Div(className="brief-exports", children=[
                html.A(t("brief_pdf"), id=ids.BRIEF_PDF, className="btn-link", href=first["pdf"], target="_blank"),
                # a plain link for a script or a middle click; a click on the page starts the
                # background job instead and shows its progress (assets/brief.js)
                html.A(t("brief_xlsx"), id=ids.BRIEF_XLSX, className="btn-link", href=first["xlsx"],
                       **{"data-running": t("brief_xlsx_running"), "data-failed": t("brief_xlsx_failed"),
                          "data-done": t("brief_xlsx_done")}),
                html.Span(id=ids.BRIEF_XLSX_STATUS, className="brief-xlsx-status muted", role="status")]),
        ]),
        html.Div(first["period_text"], id=ids.BRIEF_PERIOD_TEXT, className="brief-period muted"),
        dcc.Loading(type="dot", color="#35a7ff", children=html.Div(first["body"], id=ids.BRIEF_BODY)),
        drawer(),
    ])


def first_view(preset: str | None) -> dict:
    """What the page shows in its first answer. The period the address names (?preset=month) is
    computed and drawn here, in the layout: no callback round trip before the cards. Without one
    (the leader's last choice lives in the browser) the callbacks below choose it; the body then
    waits as one block, which also has the browser fetch the renderer of such blocks meanwhile."""
    empty = {"period": None, "start": None, "end": None, "pdf": "#", "xlsx": "#", "period_text": None,
             "body": block(tag("div", "…", cls="brief-wait muted"))}
    if preset is None or preset == "custom":
        return empty
    data, first, last, _preset, _choice = period_for(preset, None, None, datetime.now(timezone.utc))
    body_, text, pdf, xlsx = render(data)
    return {"period": data, "start": first, "end": last, "pdf": pdf, "xlsx": xlsx, "period_text": text,
            "body": body_}


def drawer() -> html.Aside:
    """Built once with the page and only shown and hidden: a card click fills its head and points
    its grid at the card's cases; nothing else on the page is sent again. The grid itself comes
    once the cards are drawn, or with the first card opened if that is sooner (:func:`build_grid`):
    mounting AG Grid (its 230 kB script parsed, its sizes measured) took ~0.35 s of the page
    load's 1.2 s in headless Chromium, before the cards."""
    return html.Aside(id=ids.BRIEF_DRILL, className="brief-drill", children=[
        dcc.Store(id=ids.BRIEF_DRILL_KEY),
        # looks for the drawn cards 4 times a second, for 15 s at most (then the first card opened builds the grid)
        dcc.Interval(id=ids.BRIEF_DRILL_PREPARE, interval=250, max_intervals=60),
        dcc.Store(id=ids.BRIEF_CARDS_DRAWN),
        html.Div(className="panel table-panel", children=[
            html.Div(className="panel-title", children=[
                html.Span(t("brief_drill_title"), id="brief-drill-title"),
                html.Button(t("brief_drill_close"), id=ids.BRIEF_DRILL_CLOSE, className="btn-link drill-close",
                            n_clicks=0)]),
            html.Div(id=ids.BRIEF_DRILL_HEAD, className="brief-drill-head"),
            html.Div(className="brief-drill-body", id=ids.BRIEF_DRILL_TABLE)])])


def drill_grid() -> dag.AgGrid:
    return dag.AgGrid(
        id=ids.BRIEF_DRILL_GRID, className="brief-drill-grid", rowModelType="infinite", columnDefs=_drill_columns(),
        defaultColDef={"sortable": False, "resizable": True}, getRowId="'' + params.data.id",
        # one block request at a time: the grid answers each getRowsRequest through one prop, so a
        # second request in flight (AG Grid's default is 2) would never hear back and stay "…"
        dashGridOptions={"theme": _grid_theme(), "cacheBlockSize": DRILL_BLOCK, "maxBlocksInCache": 50,
                         "maxConcurrentDatasourceRequests": 1, "infiniteInitialRowCount": 1, "rowBuffer": 20,
                         "rowClassRules": {"holding": "params.data && params.data.holding === true"},
                         "localeText": {"noRowsToShow": t("no_data"), "loadingOoo": "…"}},
        style={"height": "100%", "width": "100%"})


def _grid_theme() -> dict:
    return {"function": (f"themeQuartz.withParams({{backgroundColor: '{th.PANEL}', foregroundColor: '{th.TEXT}', "
                         f"accentColor: '{th.ACCENT}', headerBackgroundColor: '#102640', borderColor: '{th.GRID}', "
                         f"oddRowBackgroundColor: '#0f2139', fontSize: 14, rowHeight: 32, headerHeight: 34, "
                         f"fontFamily: \"{th.FONT}\"}})")}


def _drill_columns() -> list[dict]:
    return [
        {"field": "id", "headerName": t("col_id"), "width": 100, "cellRenderer": "markdown",
         "valueGetter": {"function": "params.data ? '[' + params.data.id + '](/incidents/' + params.data.id + ')' : ''"}},
        {"field": "mark", "headerName": t("brief_drill_mark"), "width": 130, "tooltipField": "mark_tip",
         "cellClassRules": {"drill-holding": "params.data && params.data.holding === true",
                            "drill-counted": "params.data && params.data.in_numerator === true"}},
        {"field": "title", "headerName": t("f_title"), "flex": 2, "minWidth": 200, "tooltipField": "title"},
        {"field": "category", "headerName": t("f_category"), "width": 130},
        {"field": "district", "headerName": t("district"), "width": 100},
        {"field": "department", "headerName": t("department"), "flex": 1, "minWidth": 150},
        {"field": "state", "headerName": t("f_state"), "width": 90},
        {"field": "reported_at", "headerName": t("f_reported"), "width": 120},
        {"field": "deadline", "headerName": t("f_deadline"), "width": 120},
    ]


# --------------------------------------------------------------------------- period

# the leader's last choice, read where dcc.Store(storage_type="local") keeps it, before the first
# period is computed (an address with ?preset=… wins; a first visit gets bv.DEFAULT_PRESET)
dash.clientside_callback(
    """function(_id, current) {
        const nu = window.dash_clientside.no_update;
        if (current) { return [nu, nu, nu]; }
        let c = null;
        try { c = JSON.parse(window.localStorage.getItem('%s')); } catch (e) { c = null; }
        const presets = %s;
        if (!c || presets.indexOf(c.preset) < 0) { return ['%s', nu, nu]; }
        if (c.preset === 'custom') { return [c.preset, c.start || nu, c.end || nu]; }
        return [c.preset, nu, nu];
    }""" % (ids.BRIEF_CHOICE, list(bv.PRESET_LABELS), bv.DEFAULT_PRESET),
    Output(ids.BRIEF_PRESET, "value", allow_duplicate=True), Output(ids.BRIEF_RANGE, "start_date", allow_duplicate=True),
    Output(ids.BRIEF_RANGE, "end_date", allow_duplicate=True),
    Input(ids.BRIEF_PRESET, "id"), State(ids.BRIEF_PRESET, "value"), prevent_initial_call="initial_duplicate")

# 自定义 opens the date picker (a click on its first field is what opens it)
dash.clientside_callback(
    """function(preset) {
        if (preset === 'custom' && dash_clientside.callback_context.triggered.length) {
            setTimeout(function () {
                const el = document.getElementById('brief-range-start');
                if (el) { el.focus(); el.click(); }
            }, 0);
        }
        return window.dash_clientside.no_update;
    }""",
    Output(ids.BRIEF_RANGE, "className"), Input(ids.BRIEF_PRESET, "value"), prevent_initial_call=True)


@dash.callback(Output(ids.BRIEF_PERIOD, "data"), Output(ids.BRIEF_RANGE, "start_date"),
               Output(ids.BRIEF_RANGE, "end_date"), Output(ids.BRIEF_PRESET, "value"),
               Output(ids.BRIEF_CHOICE, "data"),
               Input(ids.BRIEF_PRESET, "value"), Input(ids.BRIEF_RANGE, "start_date"),
               Input(ids.BRIEF_RANGE, "end_date"), Input(ids.BRIEF_TICK, "n_intervals"),
               State(ids.BRIEF_PERIOD, "data"))
def choose_period(preset, start_date, end_date, _n, shown):
    if not allowed("brief") or preset is None and ctx.triggered_id != ids.BRIEF_RANGE:
        raise dash.exceptions.PreventUpdate       # (no choice yet: the restore above is about to give one)
    if ctx.triggered_id == ids.BRIEF_RANGE:
        if not (start_date and end_date):
            raise dash.exceptions.PreventUpdate
        preset = "custom"
    out = period_for(preset, start_date, end_date, datetime.now(timezone.utc))
    if out[0] == shown:
        # the period the page already shows (drawn with the layout): remember the choice, draw nothing again
        return (dash.no_update, *out[1:])
    return out


def period_for(preset: str, start_date, end_date, now: datetime) -> tuple:
    """The page's period store, the picker's dates and the choice to remember, for a choice."""
    now, tz = qb.floor_as_of(now), city_tz()
    if preset == "custom" and not (start_date and end_date):
        raise dash.exceptions.PreventUpdate       # 自定义 picked, dates still to come
    try:
        period = bv.leader_period(preset, now, tz, start=date.fromisoformat(str(start_date)[:10]) if start_date else None,
                                  end=date.fromisoformat(str(end_date)[:10]) if end_date else None)
    except (ValueError, TypeError):
        raise dash.exceptions.PreventUpdate
    first = bv.local(period.start, tz, "%Y-%m-%d")
    last = bv.local(period.end - timedelta(seconds=1), tz, "%Y-%m-%d")      # the inclusive end date
    choice = {"preset": preset, "start": first, "end": last} if preset == "custom" else {"preset": preset}
    return ({"from": period.start.isoformat(), "to": period.end.isoformat(), "as_of": now.isoformat(),
             "preset": preset}, first, last, preset, choice)


def _period(data) -> tuple[datetime, datetime, datetime]:
    """The period in the store, checked (it comes from the browser)."""
    try:
        start, end, as_of = (datetime.fromisoformat(data[k]) for k in ("from", "to", "as_of"))
        Period(start, end)
        if as_of.tzinfo is None:
            raise ValueError("naive as_of")
        return start, end, as_of
    except (KeyError, TypeError, ValueError):
        raise dash.exceptions.PreventUpdate


@dash.callback(Output(ids.BRIEF_BODY, "children"), Output(ids.BRIEF_PERIOD_TEXT, "children"),
               Output(ids.BRIEF_PDF, "href"), Output(ids.BRIEF_XLSX, "href"),
               Input(ids.BRIEF_PERIOD, "data"))
def render(data):
    if not allowed("brief"):
        raise dash.exceptions.PreventUpdate
    start, end, as_of = _period(data)
    b = qb.brief(start, end, as_of)
    q = export_query(start, end, as_of)
    return body(b), period_line(b, data.get("preset")), f"/brief/export.pdf?{q}", f"/brief/export.xlsx?{q}"


def export_query(start: datetime, end: datetime, as_of: datetime) -> str:
    from urllib.parse import urlencode
    return urlencode({"from": start.isoformat(), "to": end.isoformat(), "as_of": as_of.isoformat()})


def period_line(b, preset: str | None = None) -> list:
    tz, en = city_tz(), lang() == "en"
    r, p, ly = b.report, b.previous, b.last_year
    colon = ": " if en else "："
    label = bv.period_label(preset or "custom", r.start, r.end, r.as_of, tz, en)
    running = r.start <= r.as_of < r.end
    return [html.Span([html.B(label, id="brief-period-label", className="running" if running else ""), "  ",
                       f"{t('brief_period')}{colon}{bv.period_text(r.start, r.end, tz, en)}"],
                      className="brief-period-main"),
            html.Span(f"{t('brief_as_of')} {local_time(r.as_of, '%Y-%m-%d %H:%M')}", id="brief-as-of"),
            html.Span(f"{t('brief_mom')}{colon}{bv.period_text(p.start, p.end, tz, en)}", title=t("brief_compare_note")),
            html.Span(f"{t('brief_yoy')}{colon}{bv.period_text(ly.start, ly.end, tz, en)}", title=t("brief_compare_note"))]


# --------------------------------------------------------------------------- body

def body(b) -> list:
    return [
        html.H3(t("brief_cases"), className="brief-section"),
        # every case KPI's card under #brief-case-cards; the citizen's (先行联系 … 发回重办) in a row of their own
        html.Div(id="brief-case-cards", children=[
            html.Div([card(b, code) for code in bv.CASE_CARDS if code not in bv.CITIZEN_CARDS],
                     className="brief-cards wide"),
            html.H3(t("brief_citizen"), className="brief-section"),
            html.Div([card(b, code) for code in bv.CITIZEN_CARDS], className="brief-cards citizen")]),
        html.H3(t("brief_services"), className="brief-section"),
        html.Div([card(b, code) for code in bv.SERVICE_CARDS], className="brief-cards services",
                 id="brief-service-cards"),
        html.Div(className="brief-row", children=[
            panel(t("brief_rank_departments"), ranking_table(b.report, "department"), cls="table-panel"),
            panel(t("brief_rank_districts"), ranking_table(b.districts, "district"), cls="table-panel"),
        ]),
        html.Div(className="brief-row", children=[
            panel(t("brief_red_black"), red_black(b.report), cls="table-panel"),
            panel(t("brief_online_by_department"), service_table(b.report), cls="table-panel"),
        ]),
        html.H3(t("brief_indicators"), className="brief-section"),
        indicators(b),
        html.P(b.report.ranking.formula if b.report.ranking else "", className="muted brief-footnote"),
    ]


def card(b, code: str) -> html.Div:
    """The card: a Dash component of its own (a click opens the drawer), what it shows one block."""
    k = b.report.kpis[code]
    tone = "" if k.met is None else ("met" if k.met else "missed")
    drillable = code in bv.CASE_CARDS
    kw = {"n_clicks": 0, "role": "button", "tabIndex": "0"} if drillable else {}
    return html.Div(block(card_markup(b, code)), id={"type": ids.BRIEF_CARD, "code": code},
                    title=k.formula, className=f"brief-card {tone}{' drillable' if drillable else ''}", **kw)


def card_markup(b, code: str) -> Markup:
    en = lang() == "en"
    k = b.report.kpis[code]
    prev, ly = b.previous.kpis[code].value, b.last_year.kpis[code].value
    tone = "" if k.met is None else ("met" if k.met else "missed")
    return tag("div", cls="card-in", children=[
        tag("div", [tag("span", k.name_en if en else k.name, cls="card-name"),
                    tag("span", bv.target_text(k, en), cls=f"card-target {tone}")], cls="card-top"),
        tag("div", [tag("span", bv.number(k.value, k.unit), cls="card-value"),
                    tag("span", "%" if bv.is_rate(k.unit) else bv.unit_label(k.unit, en), cls="card-unit")]),
        tag("div", [tag("span", [t("brief_mom"), " ", tag("b", bv.change_text(k.value, prev, k.unit, en))],
                        cls=f"chg {bv.change_tone(k.value, prev, k.unit, k.direction)}"),
                    tag("span", [t("brief_yoy"), " ", tag("b", bv.change_text(k.value, ly, k.unit, en))],
                        cls=f"chg {bv.change_tone(k.value, ly, k.unit, k.direction)}")], cls="card-changes"),
        spark(b.series.get(code), k, b),
        tag("div", [tag("span", bv.ratio_text(k, en), cls="card-ratio"),
                    tag("span", t("brief_formula"), cls="card-formula-mark", title=k.formula)], cls="card-foot"),
    ])


def spark(series, k, b) -> Markup:
    """The trend line when the period has enough finished slices with a value, else why not."""
    if series is None:
        return tag("div", t("brief_no_series"), cls="card-spark muted")
    running = bv.running_bucket(b.buckets, b.report.as_of)
    n = bv.spark_points(series, running)
    if n < bv.MIN_SPARK_POINTS:
        return tag("div", t("brief_few_points"), cls="card-spark muted",
                   title=t("brief_few_points_note", n=n, min=bv.MIN_SPARK_POINTS))
    return tag("img", src=bv.sparkline_svg(series, target=k.target, partial_from=running), cls="card-spark",
               title=t("brief_spark_note", n=len(series)), alt="")


def _pct(x) -> str:
    return bv.with_unit(x, "%")


def ranking_table(report, by: str) -> dcc.Markdown:
    r = report.ranking
    if r is None:
        return block(tag("div", "—"))
    num = "num"
    # by department: each department's 协办按时回复率 beside its score (its own rate, not a weight of it)
    assist = by == "department"
    head = tag("tr", [tag("th", t("brief_rank"), cls=num), tag("th", t(by)), tag("th", t("brief_volume"), cls=num),
                      tag("th", t("closure_rate"), cls=num), tag("th", t("on_time_rate"), cls=num),
                      tag("th", t("brief_rework"), cls=num),
                      *([tag("th", t("col_assist_rate"), cls=num)] if assist else []),
                      tag("th", t("brief_score"), cls=num), tag("th", t("brief_grade"))])
    rows = [tag("tr", [tag("td", x.rank, cls=num), tag("td", x.name), tag("td", f"{x.volume:,}", cls=num),
                       tag("td", _pct(x.closure_rate), cls=num), tag("td", _pct(x.on_time_disposal_rate), cls=num),
                       tag("td", _pct(x.rework_rate), cls=num),
                       *([tag("td", _pct(x.assist_reply_rate), cls=num)] if assist else []),
                       tag("td", f"{x.score:.1f}", cls=num),
                       tag("td", tag("span", x.grade, cls=f"grade g-{x.grade}"))]) for x in r.ranked]
    rows += [tag("tr", [tag("td", "—", cls=num), tag("td", x.name), tag("td", f"{x.volume:,}", cls=num),
                        tag("td", x.reason, colSpan=6 if assist else 5, cls="muted")], cls="unranked")
             for x in r.unranked]
    return block(tag("div", tag("table", [tag("thead", head), tag("tbody", rows)], cls="table", id=f"brief-rank-{by}"),
                     cls="scroll"))


def red_black(report) -> dcc.Markdown:
    r = report.ranking
    if r is None or not r.ranked:
        return block(tag("div", t("brief_no_ranking"), cls="muted"))

    def lst(rows, cls):
        return tag("ol", [tag("li", [tag("span", x.name), tag("span", f"{x.score:.1f} {t('brief_points')}", cls="num"),
                                     tag("span", x.grade, cls=f"grade g-{x.grade}")]) for x in rows],
                   cls=f"rb-list {cls}")
    return block(tag("div", cls="red-black", id="brief-red-black", children=[
        tag("div", [tag("h4", t("brief_red"), cls="red"), lst(r.red, "red")]),
        tag("div", [tag("h4", t("brief_black"), cls="black"), lst(r.black, "black")]),
    ]))


def service_table(report) -> dcc.Markdown:
    rows = bv.service_rows(report)
    if not rows:
        return block(tag("div", t("brief_no_services"), cls="muted"))
    num = "num"
    head = tag("tr", [tag("th", t("department")), tag("th", t("brief_service_total"), cls=num),
                      tag("th", t("brief_online_n"), cls=num), tag("th", t("brief_online_rate")),
                      tag("th", t("brief_good_rate"), cls=num), tag("th", t("brief_on_time_completion"), cls=num)])
    body_rows = []
    for r in rows:
        width = max(0.0, min(1.0, r["online_rate"])) * 100
        mark = (r["target"] or 0) * 100
        body_rows.append(tag("tr", [
            tag("td", r["name"]), tag("td", f"{r['total']:,}", cls=num), tag("td", f"{r['online']:,}", cls=num),
            tag("td", tag("div", cls=f"online-bar {'met' if r['met'] else 'missed'}", children=[
                tag("div", cls="online-bar-fill", style=f"width: {width:.1f}%"),
                tag("div", cls="online-bar-mark", style=f"left: {mark:.1f}%"),
                tag("span", _pct(r["online_rate"]), cls="online-bar-text")])),
            tag("td", _pct(r["good_rating_rate"]), cls=num),
            tag("td", _pct(r["on_time_completion_rate"]), cls=num)]))
    return block(tag("div", tag("table", [tag("thead", head), tag("tbody", body_rows)], cls="table",
                                id="brief-online-table"), cls="scroll"))


def indicators(b) -> dcc.Markdown:
    en = lang() == "en"
    groups: dict[str, list] = {}
    for r in b.indicators:
        groups.setdefault(r.group or "—", []).append(r)
    if not groups:
        return block(tag("div", t("brief_no_indicators"), cls="muted"))
    panels = []
    for group, items in groups.items():
        rows = []
        for r in items:
            prev = b.indicators_previous.get(r.code)
            tone = "" if r.met is None else ("met" if r.met else "missed")
            rows.append(tag("tr", [
                tag("td", r.name_en if en else r.name, title=r.formula),
                tag("td", bv.with_unit(r.value, r.unit, en), cls=f"num {tone}"),
                tag("td", bv.target_text(r, en), cls="muted"),
                tag("td", bv.change_text(r.value, prev, r.unit, en) if r.period == "day" else "",
                    cls=f"num chg {bv.change_tone(r.value, prev, r.unit, r.direction)}"),
                tag("td", tag("img", src=bv.sparkline_svg(r.series, target=r.target, width=110, height=24), alt="")
                    if len(r.series) > 1 else ""),
                tag("td", r.covers, cls="muted small")]))
        # the panel of dashboards._components.panel, as markup
        panels.append(tag("div", cls="panel table-panel", children=[
            tag("div", group, cls="panel-title"),
            tag("div", tag("table", tag("tbody", rows), cls="table"), cls="panel-body")]))
    return block(tag("div", panels, cls="brief-indicators", id="brief-indicators"))


# --------------------------------------------------------------------------- drill-through (the drawer)

@dash.callback(Output(ids.BRIEF_DRILL_HEAD, "children"), Output(ids.BRIEF_DRILL_KEY, "data"),
               Output(ids.BRIEF_DRILL, "className", allow_duplicate=True),
               Input({"type": ids.BRIEF_CARD, "code": ALL}, "n_clicks"), State(ids.BRIEF_PERIOD, "data"),
               prevent_initial_call=True)
def open_drill(_clicks, data):
    if not allowed("brief"):
        raise dash.exceptions.PreventUpdate
    trig = ctx.triggered_id
    if not isinstance(trig, dict) or not (ctx.triggered and ctx.triggered[0].get("value")):
        raise dash.exceptions.PreventUpdate       # (new cards after a period change: not a click)
    start, end, as_of = _period(data)
    try:
        d = qb.drill(start, end, as_of, str(trig.get("code")), limit=0)
    except (ValueError, KeyError):
        raise dash.exceptions.PreventUpdate
    key = {"code": d.code, "from": data["from"], "to": data["to"], "as_of": data["as_of"]}
    return drill_head(d, qb.brief(start, end, as_of).report.kpis[d.code]), key, "brief-drill open"


# the cards drawn (their blocks are mounted when the Markdown script has come): time for the grid
dash.clientside_callback(
    """function(_n) {
        const nu = window.dash_clientside.no_update;
        return document.querySelector('#brief-case-cards .card-value') ? [true, true] : [nu, nu];
    }""",
    Output(ids.BRIEF_CARDS_DRAWN, "data"), Output(ids.BRIEF_DRILL_PREPARE, "disabled"),
    Input(ids.BRIEF_DRILL_PREPARE, "n_intervals"), prevent_initial_call=True)


@dash.callback(Output(ids.BRIEF_DRILL_TABLE, "children"), Input(ids.BRIEF_CARDS_DRAWN, "data"),
               Input(ids.BRIEF_DRILL_KEY, "data"), State(ids.BRIEF_DRILL_TABLE, "children"), prevent_initial_call=True)
def build_grid(_drawn, _key, built):
    """The drawer's grid, once: when the cards are drawn or with the first card opened (a grid
    made by the card's click asks its first rows with the key already set)."""
    if built or not allowed("brief"):
        raise dash.exceptions.PreventUpdate
    return drill_grid()


def drill_head(d, k) -> list:
    if d.denominator is None:
        summary = t("brief_drill_count", n=f"{d.numerator:,}")
    else:
        summary = t("brief_drill_rate", num=f"{d.numerator:,}", den=f"{d.denominator:,}")
    return [html.H3(k.name_en if lang() == "en" else k.name, id="brief-drill-name"),
            html.P(html.B(summary), id="brief-drill-summary"),
            html.P(d.formula, className="muted small", id="brief-drill-formula")]


@dash.callback(Output(ids.BRIEF_DRILL_GRID, "getRowsResponse"), Input(ids.BRIEF_DRILL_GRID, "getRowsRequest"),
               State(ids.BRIEF_DRILL_KEY, "data"))
def drill_rows(request, key):
    if not allowed("brief"):
        raise dash.exceptions.PreventUpdate
    if not request:
        raise dash.exceptions.PreventUpdate
    if not key:
        return {"rowData": [], "rowCount": 0}      # the drawer has not been opened yet
    start, end, as_of = _period(key)
    return drill_block(start, end, as_of, str(key.get("code")), request.get("startRow"), request.get("endRow"))


def drill_block(start: datetime, end: datetime, as_of: datetime, code: str, first, last) -> dict:
    """Rows ``[first, last)`` of the cases behind ``code`` (those holding the number back first)
    and how many there are."""
    try:
        first = max(0, int(first or 0))
        last = min(max(first + 1, int(last or first + DRILL_BLOCK)), first + DRILL_MAX_BLOCK)
    except (TypeError, ValueError):
        raise dash.exceptions.PreventUpdate
    try:
        d = qb.drill(start, end, as_of, code, limit=last - first, offset=first)
        k = qb.brief(start, end, as_of).report.kpis[code]
    except (ValueError, KeyError):
        raise dash.exceptions.PreventUpdate
    total = d.denominator if d.denominator is not None else d.numerator
    return {"rowData": [drill_row(r, k) for r in d.rows], "rowCount": total}


def drill_row(r: dict, k) -> dict:
    holding = bv.holds_back(k, r["in_numerator"])
    mark = t("brief_drill_holding") if holding else (t("brief_drill_in") if r["in_numerator"] else "")
    return {"id": r["id"], "in_numerator": bool(r["in_numerator"]), "holding": bool(holding),
            "mark": ("▼ " if holding else "✓ " if r["in_numerator"] else "") + mark,
            "mark_tip": t("brief_drill_holding_tip") if holding else "",
            "title": r["title"], "category": r["category"] or "—", "district": r["district"] or "—",
            "department": r["department"] or "—", "state": state_label(r["state"]),
            "reported_at": local_time(r["reported_at"]), "deadline": local_time(r["deadline"])}


# a new card in the drawer: the grid forgets the last one's blocks and asks from the top
dash.clientside_callback(
    """function(key) {
        try { const api = dash_ag_grid.getApi('%s'); api.purgeInfiniteCache(); api.ensureIndexVisible(0, 'top'); }
        catch (e) { /* the grid is not ready yet: its first request reads the key anyway */ }
        return window.dash_clientside.no_update;
    }""" % ids.BRIEF_DRILL_GRID,
    Output(ids.BRIEF_DRILL_GRID, "id"), Input(ids.BRIEF_DRILL_KEY, "data"), prevent_initial_call=True)

# closing the drawer is the browser's business: nothing to check or fetch
dash.clientside_callback(
    "function(n) { return n ? 'brief-drill' : window.dash_clientside.no_update; }",
    Output(ids.BRIEF_DRILL, "className", allow_duplicate=True), Input(ids.BRIEF_DRILL_CLOSE, "n_clicks"),
    prevent_initial_call=True)
