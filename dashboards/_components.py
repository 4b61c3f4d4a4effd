"""Small layout pieces shared by the pages, and the server-side page guard."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from dash import dcc, html
from flask_login import current_user

from dashboards import _theme as th
from dashboards._i18n import t
from incidents import permissions
from incidents.model import Role
from incidents.queries import reference

# which roles may open which page (incidents.permissions); checked on the server when the page is built
PAGE_ROLES = {
    "wall": frozenset(Role),
    "brief": permissions.KPI_ROLES,
    "dispatch": permissions.WORKBENCH_ROLES,
}


def allowed(page: str) -> bool:
    return current_user.is_authenticated and current_user.role in PAGE_ROLES[page]


def forbidden() -> html.Div:
    return html.Div(className="forbidden", children=[html.H2(t("forbidden"))])


def tile(label: str, value, unit: str = "", *, tone: str = "", title: str = "", note=None) -> html.Div:
    """A figure with its label and unit; ``note``: the line under it that gives the figure its
    meaning (its target, or the same time yesterday)."""
    text = f"{value:,}" if isinstance(value, int) else str(value)
    return html.Div(className=f"tile {tone}", title=title, children=[
        html.Div(label, className="tile-label"),
        html.Div([html.Span(text, className="tile-value"), html.Span(unit, className="tile-unit")]),
        html.Div(note, className="tile-note") if note else None,
    ])


def panel(title: str, body, *, cls: str = "", id_: str | None = None) -> html.Div:
    kw = {"id": id_} if id_ else {}
    return html.Div(className=f"panel {cls}", children=[html.Div(title, className="panel-title"),
                                                        html.Div(body, className="panel-body")], **kw)


def graph(id_: str, config: dict | None = None, **kw) -> dcc.Graph:
    return dcc.Graph(id=id_, config=config or th.GRAPH_CONFIG, className="graph", **kw)


def local_time(dt: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    if dt is None:
        return "—"
    return dt.astimezone(ZoneInfo(city_tz())).strftime(fmt)


def city_tz() -> str:
    return reference.city_info().timezone


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"
