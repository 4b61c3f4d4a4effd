"""/incidents/<id> — one case on its own page: the same panel as the workbench's side panel
(dashboards._case). Every signed-in role may open it; personal data is masked by role, and a
department user asking for another department's case gets "not found"."""
from __future__ import annotations

import dash
from dash import dcc, html
from flask_login import current_user

from dashboards import _case
from dashboards import _ids as ids
from dashboards._components import allowed, forbidden
from dashboards._i18n import t

dash.register_page(__name__, path_template="/incidents/<incident_id>", name="案件详情", order=3,
                   title="案件详情 · CityOps")


def layout(incident_id=None, **_kwargs):
    if not current_user.is_authenticated:
        return forbidden()
    try:
        case_id = int(str(incident_id).lstrip("#"))
    except (TypeError, ValueError):
        case_id = None
    back = [dcc.Link(f"← {t('back_to_queue')}", href="/dispatch", className="back-link")] if allowed("dispatch") else []
    return html.Div(className="incident-page", children=[
        dcc.Store(id=ids.CASE_ID, data=case_id),
        html.Div(back, className="incident-nav"),
        html.Div(t("keys_help"), className="wb-help"),
        _case.panel(closable=False),
    ])
