"""/brief — leaders' KPI brief, first version: the last 30 days by department, with 口径."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dash
from dash import Input, Output, dcc, html

from dashboards import _ids as ids
from dashboards._components import allowed, forbidden, panel, pct, tile
from dashboards._i18n import t
from incidents import queries

dash.register_page(__name__, path="/brief", name="领导简报", order=1, title="领导简报 · CityOps")


def layout(**_kwargs):
    if not allowed("brief"):
        return forbidden()
    return html.Div(className="brief", children=[
        dcc.Interval(id=ids.BRIEF_TICK, interval=60_000),
        html.H2(t("brief_title")),
        html.P(t("brief_period"), className="muted"),
        html.Div(id=ids.BRIEF_TILES, className="brief-tiles"),
        panel(t("department"), html.Div(id=ids.BRIEF_TABLE), cls="table-panel"),
    ])


@dash.callback(Output(ids.BRIEF_TILES, "children"), Output(ids.BRIEF_TABLE, "children"),
               Input(ids.BRIEF_TICK, "n_intervals"))
def refresh(_n):
    if not allowed("brief"):
        raise dash.exceptions.PreventUpdate
    now = datetime.now(timezone.utc)
    rows = queries.department_table(now, now - timedelta(days=30))
    n = sum(r["dispatched"] for r in rows)
    closed = sum(r["closed"] for r in rows)
    on_time = sum(r["on_time"] for r in rows)
    overdue = sum(r["overdue_open"] for r in rows)
    tiles = [
        tile(t("dispatched_n"), n, t("cases_unit"), title="近30天派遣的案件数"),
        tile(t("closed_n"), closed, t("cases_unit"), title="其中已核查结案的案件数"),
        tile(t("closure_rate"), pct(closed / n if n else None), title=f"结案率 = 已结案 {closed:,} ÷ 派遣 {n:,}"),
        tile(t("on_time_rate"), pct(on_time / n if n else None),
             title=f"按期处置率 = 按期处置 {on_time:,} ÷ 派遣 {n:,}"),
        tile(t("overdue_open"), overdue, t("cases_unit"), tone="alarm", title="已超过处置时限仍未处置的案件"),
    ]
    head = html.Tr([html.Th(t("department"))]
                   + [html.Th(t(k), className="num") for k in ("dispatched_n", "closed_n", "closure_rate",
                                                               "on_time_rate", "overdue_open", "rework_n")])
    body = [html.Tr([html.Td(r["name"]), html.Td(f"{r['dispatched']:,}", className="num"),
                     html.Td(f"{r['closed']:,}", className="num"), html.Td(pct(r["closure_rate"]), className="num"),
                     html.Td(pct(r["on_time_rate"]), className="num"),
                     html.Td(f"{r['overdue_open']:,}", className="num alarm" if r["overdue_open"] else "num"),
                     html.Td(f"{r['rework']:,}", className="num")]) for r in rows]
    return tiles, html.Table([html.Thead(head), html.Tbody(body)], className="table", id="brief-department-table")
