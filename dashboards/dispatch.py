"""/dispatch — the workbench queue, first version: ready-made views, filtered in the database.
Department users see their own department's cases only."""
from __future__ import annotations

from datetime import datetime, timezone

import dash
from dash import Input, Output, dcc, html
from flask_login import current_user

from dashboards import _ids as ids
from dashboards._components import allowed, forbidden, local_time, panel
from dashboards._figures import state_label
from dashboards._i18n import t
from incidents import queries
from incidents.model import Role, State

dash.register_page(__name__, path="/dispatch", name="派遣工作台", order=2, title="派遣工作台 · CityOps")

VIEWS = {
    "all_open": dict(),
    "pending_register": dict(states=[State.REPORTED.value]),
    "pending_dispatch": dict(states=[State.REGISTERED.value]),
    "yellow": dict(light="yellow"),
    "red": dict(light="red"),
    "pending_verify": dict(states=[State.RESOLVED.value]),
    "suspended": dict(states=[State.SUSPENDED.value]),
}
LIMIT = 100


def layout(**_kwargs):
    if not allowed("dispatch"):
        return forbidden()
    header = []
    if current_user.role == Role.DEPARTMENT:
        names = queries.department_names(queries.city_info().name)
        header.append(html.P(t("my_department", name=names.get(current_user.department_code, "")), className="muted"))
    return html.Div(className="dispatch", children=[
        dcc.Interval(id=ids.DISPATCH_TICK, interval=10_000),
        *header,
        dcc.RadioItems(id=ids.DISPATCH_VIEW, value="all_open", className="views", inline=True,
                       options=[{"label": t(f"view_{k}"), "value": k} for k in VIEWS]),
        html.Div(id=ids.DISPATCH_COUNTS, className="muted"),
        panel(t("queue_title"), html.Div(id=ids.DISPATCH_TABLE), cls="table-panel"),
    ])


@dash.callback(Output(ids.DISPATCH_TABLE, "children"), Output(ids.DISPATCH_COUNTS, "children"),
               Input(ids.DISPATCH_VIEW, "value"), Input(ids.DISPATCH_TICK, "n_intervals"))
def refresh(view, _n):
    if not allowed("dispatch") or view not in VIEWS:
        raise dash.exceptions.PreventUpdate
    now = datetime.now(timezone.utc)
    own = current_user.department_code if current_user.role == Role.DEPARTMENT else None
    rows = queries.queue(now, department_code=own, limit=LIMIT + 1, **VIEWS[view])
    names = queries.department_names(queries.city_info().name)
    head = html.Tr([html.Th(t("col_light")), html.Th(t("col_id"), className="num")]
                   + [html.Th(t(k)) for k in ("col_reported", "col_title", "col_category", "col_state",
                                              "col_department", "col_deadline")])
    body = []
    for r in rows[:LIMIT]:
        running = r["state"] in (State.DISPATCHED.value, State.IN_PROGRESS.value)
        body.append(html.Tr([
            html.Td(html.Span(className=f"dot {r['light'] if running else 'none'}")),
            html.Td(f"#{r['id']}", className="num"), html.Td(local_time(r["reported_at"])),
            html.Td(r["title"]), html.Td(r["name"] or "—"), html.Td(state_label(r["state"])),
            html.Td(names.get(r["department_code"], "—") if r["department_code"] else "—"),
            html.Td(local_time(r["deadline"]) if running else "—")]))
    shown = min(len(rows), LIMIT)
    more = "+" if len(rows) > LIMIT else ""
    return (html.Table([html.Thead(head), html.Tbody(body)], className="table", id="dispatch-queue-table"),
            f"{shown}{more} {t('cases_unit')}")
