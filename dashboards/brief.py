"""/brief — the leaders' KPI brief: a period (today, week, month, quarter, custom) with 环比 and 同比,
a card per KPI of DESIGN §6 (value, target, change, sparkline, 口径 with numerator and
denominator; a click lists the cases behind it), rankings with grades, 红黑榜, 一网通办 by
department and the KPI feed. Exports: /brief/export.pdf and /brief/export.xlsx with the same
``from``/``to``/``as_of``. Every number comes from ``incidents.queries.brief``."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import dash
from dash import ALL, Input, Output, State, ctx, dcc, html

from dashboards import _brief_view as bv
from dashboards import _ids as ids
from dashboards._components import allowed, city_tz, forbidden, local_time, panel
from dashboards._figures import state_label
from dashboards._i18n import lang, t
from incidents.queries import brief as qb
from incidents.kpis import Period

dash.register_page(__name__, path="/brief", name="领导简报", order=1, title="领导简报 · CityOps")


def layout(preset: str = "month", **_kwargs):
    if not allowed("brief"):
        return forbidden()
    en = lang() == "en"
    preset = preset if preset in qb.PRESETS else "month"
    return html.Div(className="brief", children=[
        dcc.Interval(id=ids.BRIEF_TICK, interval=300_000),
        dcc.Store(id=ids.BRIEF_PERIOD),
        html.Div(className="brief-head", children=[
            html.H2(t("brief_title")),
            dcc.RadioItems(id=ids.BRIEF_PRESET, value=preset, className="views brief-presets", inline=True,
                           options=[{"label": v[1] if en else v[0], "value": k}
                                    for k, v in bv.PRESET_LABELS.items()]),
            dcc.DatePickerRange(id=ids.BRIEF_RANGE, display_format="YYYY-MM-DD", className="brief-range",
                                start_date_placeholder_text=t("brief_from"),
                                end_date_placeholder_text=t("brief_to"), minimum_nights=0),
            html.Div(className="brief-exports", children=[
                html.A(t("brief_pdf"), id=ids.BRIEF_PDF, className="btn-link", href="#", target="_blank"),
                html.A(t("brief_xlsx"), id=ids.BRIEF_XLSX, className="btn-link", href="#")]),
        ]),
        html.Div(id=ids.BRIEF_PERIOD_TEXT, className="brief-period muted"),
        dcc.Loading(type="dot", color="#35a7ff", children=html.Div(id=ids.BRIEF_BODY)),
        html.Div(id=ids.BRIEF_DRILL, className="brief-drill"),
    ])


# --------------------------------------------------------------------------- period

@dash.callback(Output(ids.BRIEF_PERIOD, "data"), Output(ids.BRIEF_RANGE, "start_date"),
               Output(ids.BRIEF_RANGE, "end_date"), Output(ids.BRIEF_PRESET, "value"),
               Input(ids.BRIEF_PRESET, "value"), Input(ids.BRIEF_RANGE, "start_date"),
               Input(ids.BRIEF_RANGE, "end_date"), Input(ids.BRIEF_TICK, "n_intervals"))
def choose_period(preset, start_date, end_date, _n):
    if not allowed("brief"):
        raise dash.exceptions.PreventUpdate
    now = qb.floor_as_of(datetime.now(timezone.utc))
    tz = city_tz()
    if ctx.triggered_id == ids.BRIEF_RANGE:
        if not (start_date and end_date):
            raise dash.exceptions.PreventUpdate
        preset = "custom"
    try:
        if preset == "custom":
            period = qb.preset_period("custom", now, tz, start=date.fromisoformat(str(start_date)[:10]),
                                      end=date.fromisoformat(str(end_date)[:10]))
        else:
            period = qb.preset_period(preset or "month", now, tz)
    except (ValueError, TypeError):
        raise dash.exceptions.PreventUpdate
    first = bv.local(period.start, tz, "%Y-%m-%d")
    last = bv.local(period.end - timedelta(seconds=1), tz, "%Y-%m-%d")      # the inclusive end date
    return ({"from": period.start.isoformat(), "to": period.end.isoformat(), "as_of": now.isoformat(),
             "preset": preset}, first, last, preset)


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
    return body(b), period_line(b), f"/brief/export.pdf?{q}", f"/brief/export.xlsx?{q}"


def export_query(start: datetime, end: datetime, as_of: datetime) -> str:
    from urllib.parse import urlencode
    return urlencode({"from": start.isoformat(), "to": end.isoformat(), "as_of": as_of.isoformat()})


def period_line(b) -> list:
    tz, en = city_tz(), lang() == "en"
    r, p, ly = b.report, b.previous, b.last_year
    colon = ": " if en else "："
    return [html.Span(f"{t('brief_period')}{colon}{bv.period_text(r.start, r.end, tz, en)}", className="brief-period-main"),
            html.Span(f"{t('brief_as_of')} {local_time(r.as_of, '%Y-%m-%d %H:%M')}", id="brief-as-of"),
            html.Span(f"{t('brief_mom')}{colon}{bv.period_text(p.start, p.end, tz, en)}", title=t("brief_compare_note")),
            html.Span(f"{t('brief_yoy')}{colon}{bv.period_text(ly.start, ly.end, tz, en)}", title=t("brief_compare_note"))]


# --------------------------------------------------------------------------- body

def body(b) -> list:
    return [
        html.H3(t("brief_cases"), className="brief-section"),
        html.Div([card(b, code) for code in bv.CASE_CARDS], className="brief-cards", id="brief-case-cards"),
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
    en = lang() == "en"
    k = b.report.kpis[code]
    prev, ly = b.previous.kpis[code].value, b.last_year.kpis[code].value
    tone = "" if k.met is None else ("met" if k.met else "missed")
    series = b.series.get(code)
    drillable = code in bv.CASE_CARDS
    children = [
        html.Div([html.Span(k.name_en if en else k.name, className="card-name"),
                  html.Span(bv.target_text(k, en), className=f"card-target {tone}")], className="card-top"),
        html.Div([html.Span(bv.number(k.value, k.unit), className="card-value"),
                  html.Span("%" if bv.is_rate(k.unit) else bv.unit_label(k.unit, en), className="card-unit")]),
        html.Div([html.Span([t("brief_mom"), " ", html.B(bv.change_text(k.value, prev, k.unit, en))],
                            className=f"chg {bv.change_tone(k.value, prev, k.unit, k.direction)}"),
                  html.Span([t("brief_yoy"), " ", html.B(bv.change_text(k.value, ly, k.unit, en))],
                            className=f"chg {bv.change_tone(k.value, ly, k.unit, k.direction)}")],
                 className="card-changes"),
        html.Img(src=bv.sparkline_svg(series, target=k.target, partial_from=bv.running_bucket(b.buckets, b.report.as_of)),
                 className="card-spark",
                 title=t("brief_spark_note", n=len(series))) if series else
        html.Div(t("brief_no_series"), className="card-spark muted"),
        html.Div(bv.ratio_text(k, en), className="card-ratio"),
        html.Div(k.formula, className="card-formula"),
    ]
    kw = {"n_clicks": 0, "role": "button", "tabIndex": "0"} if drillable else {}
    return html.Div(children, id={"type": ids.BRIEF_CARD, "code": code}, title=k.formula,
                    className=f"brief-card {tone}{' drillable' if drillable else ''}", **kw)


def _pct(x) -> str:
    return bv.with_unit(x, "%")


def ranking_table(report, by: str) -> html.Div:
    r = report.ranking
    if r is None:
        return html.Div("—")
    head = html.Tr([html.Th(t("brief_rank"), className="num"), html.Th(t(by)), html.Th(t("brief_volume"), className="num"),
                    html.Th(t("closure_rate"), className="num"), html.Th(t("on_time_rate"), className="num"),
                    html.Th(t("brief_rework"), className="num"), html.Th(t("brief_score"), className="num"),
                    html.Th(t("brief_grade"))])
    rows = [html.Tr([html.Td(x.rank, className="num"), html.Td(x.name), html.Td(f"{x.volume:,}", className="num"),
                     html.Td(_pct(x.closure_rate), className="num"), html.Td(_pct(x.on_time_disposal_rate), className="num"),
                     html.Td(_pct(x.rework_rate), className="num"), html.Td(f"{x.score:.1f}", className="num"),
                     html.Td(html.Span(x.grade, className=f"grade g-{x.grade}"))]) for x in r.ranked]
    rows += [html.Tr([html.Td("—", className="num"), html.Td(x.name), html.Td(f"{x.volume:,}", className="num"),
                      html.Td(x.reason, colSpan=5, className="muted")], className="unranked") for x in r.unranked]
    return html.Div([html.Table([html.Thead(head), html.Tbody(rows)], className="table",
                                id=f"brief-rank-{by}")], className="scroll")


def red_black(report) -> html.Div:
    r = report.ranking
    if r is None or not r.ranked:
        return html.Div(t("brief_no_ranking"), className="muted")

    def lst(rows, cls):
        return html.Ol([html.Li([html.Span(x.name), html.Span(f"{x.score:.1f} {t('brief_points')}", className="num"),
                                 html.Span(x.grade, className=f"grade g-{x.grade}")]) for x in rows],
                       className=f"rb-list {cls}")
    return html.Div(className="red-black", id="brief-red-black", children=[
        html.Div([html.H4(t("brief_red"), className="red"), lst(r.red, "red")]),
        html.Div([html.H4(t("brief_black"), className="black"), lst(r.black, "black")]),
    ])


def service_table(report) -> html.Div:
    rows = bv.service_rows(report)
    if not rows:
        return html.Div(t("brief_no_services"), className="muted")
    head = html.Tr([html.Th(t("department")), html.Th(t("brief_service_total"), className="num"),
                    html.Th(t("brief_online_n"), className="num"), html.Th(t("brief_online_rate")),
                    html.Th(t("brief_good_rate"), className="num"), html.Th(t("brief_on_time_completion"), className="num")])
    body_rows = []
    for r in rows:
        width = max(0.0, min(1.0, r["online_rate"])) * 100
        mark = (r["target"] or 0) * 100
        body_rows.append(html.Tr([
            html.Td(r["name"]), html.Td(f"{r['total']:,}", className="num"), html.Td(f"{r['online']:,}", className="num"),
            html.Td(html.Div(className=f"online-bar {'met' if r['met'] else 'missed'}", children=[
                html.Div(className="online-bar-fill", style={"width": f"{width:.1f}%"}),
                html.Div(className="online-bar-mark", style={"left": f"{mark:.1f}%"}),
                html.Span(_pct(r["online_rate"]), className="online-bar-text")])),
            html.Td(_pct(r["good_rating_rate"]), className="num"),
            html.Td(_pct(r["on_time_completion_rate"]), className="num")]))
    return html.Div([html.Table([html.Thead(head), html.Tbody(body_rows)], className="table",
                                id="brief-online-table")], className="scroll")


def indicators(b) -> html.Div:
    en = lang() == "en"
    groups: dict[str, list] = {}
    for r in b.indicators:
        groups.setdefault(r.group or "—", []).append(r)
    if not groups:
        return html.Div(t("brief_no_indicators"), className="muted")
    panels = []
    for group, items in groups.items():
        rows = []
        for r in items:
            prev = b.indicators_previous.get(r.code)
            tone = "" if r.met is None else ("met" if r.met else "missed")
            rows.append(html.Tr([
                html.Td(r.name_en if en else r.name, title=r.formula),
                html.Td(bv.with_unit(r.value, r.unit, en), className=f"num {tone}"),
                html.Td(bv.target_text(r, en), className="muted"),
                html.Td(bv.change_text(r.value, prev, r.unit, en) if r.period == "day" else "",
                        className=f"num chg {bv.change_tone(r.value, prev, r.unit, r.direction)}"),
                html.Td(html.Img(src=bv.sparkline_svg(r.series, target=r.target, width=110, height=24))
                        if len(r.series) > 1 else ""),
                html.Td(r.covers, className="muted small")]))
        panels.append(panel(group, html.Table(html.Tbody(rows), className="table"), cls="table-panel"))
    return html.Div(panels, className="brief-indicators", id="brief-indicators")


# --------------------------------------------------------------------------- drill-through

@dash.callback(Output(ids.BRIEF_DRILL, "children"),
               Input({"type": ids.BRIEF_CARD, "code": ALL}, "n_clicks"), State(ids.BRIEF_PERIOD, "data"),
               prevent_initial_call=True)
def drill(_clicks, data):
    if not allowed("brief"):
        raise dash.exceptions.PreventUpdate
    trig = ctx.triggered_id
    if not isinstance(trig, dict) or not (ctx.triggered and ctx.triggered[0].get("value")):
        raise dash.exceptions.PreventUpdate
    start, end, as_of = _period(data)
    try:
        d = qb.drill(start, end, as_of, str(trig.get("code")))
    except (ValueError, KeyError):
        raise dash.exceptions.PreventUpdate
    return drill_panel(d)


def drill_panel(d) -> html.Div:
    if d.denominator is None:
        summary = t("brief_drill_count", n=f"{d.numerator:,}")
    else:
        summary = t("brief_drill_rate", num=f"{d.numerator:,}", den=f"{d.denominator:,}")
    head = html.Tr([html.Th("#"), html.Th(t("brief_drill_in")), html.Th(t("f_title")), html.Th(t("f_category")),
                    html.Th(t("district")), html.Th(t("department")), html.Th(t("f_state")),
                    html.Th(t("f_reported")), html.Th(t("f_deadline"))])
    rows = [html.Tr([html.Td(html.A(r["id"], href=f"/incidents/{r['id']}")),
                     html.Td("✓" if r["in_numerator"] else "", className="tick"),
                     html.Td(r["title"]), html.Td(r["category"]), html.Td(r["district"]), html.Td(r["department"]),
                     html.Td(state_label(r["state"])), html.Td(local_time(r["reported_at"])),
                     html.Td(local_time(r["deadline"]))]) for r in d.rows]
    shown = len(d.rows)
    total = d.denominator if d.denominator is not None else d.numerator
    more = t("brief_drill_more", shown=f"{shown:,}", total=f"{total:,}") if total > shown else ""
    return panel(f"{d.name} · {t('brief_drill_title')}", html.Div([
        html.Button(t("brief_drill_close"), id=ids.BRIEF_DRILL_CLOSE, className="btn-link drill-close", n_clicks=0),
        html.P([html.B(summary), " ", html.Span(more, className="muted")], id="brief-drill-summary"),
        html.P(d.formula, className="muted small"),
        html.Div(html.Table([html.Thead(head), html.Tbody(rows)], className="table", id="brief-drill-table"),
                 className="scroll drill-scroll")]), cls="table-panel", id_="brief-drill-panel")


# closing the drawer is the browser's business: nothing to check or fetch
dash.clientside_callback(
    "function(n) { return n ? null : window.dash_clientside.no_update; }",
    Output(ids.BRIEF_DRILL, "children", allow_duplicate=True), Input(ids.BRIEF_DRILL_CLOSE, "n_clicks"),
    prevent_initial_call=True)
