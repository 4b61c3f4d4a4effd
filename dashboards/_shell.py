"""The app shell: top bar with navigation by role, user, language, clock; the page container."""
from __future__ import annotations

import dash
from dash import Input, Output, dcc, html
from flask import session
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from dashboards import _ids as ids
from dashboards._components import PAGE_ROLES
from dashboards._i18n import lang, t
from incidents.model import ROLE_LABELS_ZH
from incidents.queries import reference

NAV = [("wall", "/wall", "nav_wall"), ("brief", "/brief", "nav_brief"), ("dispatch", "/dispatch", "nav_dispatch")]


def layout():
    if not current_user.is_authenticated:
        # the gate redirects page requests to /login; this only shows for direct layout fetches
        return html.Div(id="shell-anon")
    city = reference.city_info()
    role = current_user.role
    links = [dcc.Link(t(key), href=href, className="nav-link", id=f"nav-{page}")
             for page, href, key in NAV if role in PAGE_ROLES[page]]
    other = "en" if lang() != "en" else "zh-CN"
    role_label = ROLE_LABELS_ZH[role] if lang() != "en" else role.value
    # a kiosk wall is nobody's desk: no language link (its URL says ?lang=) and no 退出 to press by
    # accident — revoking its token (flask revoke-token) ends it
    kiosk = bool(session.get("kiosk"))
    controls = [] if kiosk else [html.A("English" if other == "en" else "中文", href=f"?lang={other}",
                                        className="lang", id="lang-switch"), *_logout_forms()]
    return html.Div(className="shell", children=[
        dcc.Location(id=ids.SHELL_URL),
        html.Header(className="topbar", children=[
            html.Div(className="brand", children=[
                html.Span("◉", className="brand-mark"),
                # on a phone only the city stays (assets/cityops.css hides .brand-app)
                html.Span(city.title if lang() != 'en' else city.title_en),
                html.Span(f" · {t('app_title')}", className="brand-app")]),
            html.Nav(links, id=ids.SHELL_NAV, className="nav"),
            html.Div(className="user", children=[
                html.Span(id=ids.SHELL_CLOCK, className="clock", title=city.timezone),
                html.Span(f"{current_user.display_name}（{role_label}）", className="who"),
                *controls,
            ]),
        ]),
        dcc.Interval(id=ids.SHELL_CLOCK_TICK, interval=1000),
        html.Main(dash.page_container, className="page"),
    ])


def _logout_forms() -> list:
    """退出 (this browser) and 退出所有设备 (every browser of this user); both post the session's
    CSRF token."""
    token = generate_csrf()
    forms = [html.Form(action="/logout", method="post", className="logout-form", children=[
        dcc.Input(type="hidden", name="csrf_token", value=token),
        html.Button(t("logout"), type="submit", className="btn-link", id="logout-button")])]
    forms.append(html.Form(action="/logout-everywhere", method="post", className="logout-form", children=[
        dcc.Input(type="hidden", name="csrf_token", value=token),
        html.Button(t("logout_everywhere"), type="submit", className="btn-link btn-quiet",
                    id="logout-everywhere-button", title=t("logout_everywhere_hint"))]))
    return forms


def register_callbacks(app) -> None:
    # the clock runs in the browser; the city's timezone comes from the pack
    app.clientside_callback(
        """function(n, tz) {
            const f = new Intl.DateTimeFormat('zh-CN', {timeZone: tz, year: 'numeric', month: '2-digit',
                day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false});
            return f.format(new Date());
        }""",
        Output(ids.SHELL_CLOCK, "children"), Input(ids.SHELL_CLOCK_TICK, "n_intervals"),
        dash.State(ids.SHELL_CLOCK, "title"))
