"""/dispatch — the workbench: the queue as an AG Grid fed block by block from the database
(infinite row model: view + scope + search + filters + sort + one page run in SQL), ready-made
views, the case side panel (dashboards._case), bulk dispatch, live refresh and keyboard use.
Department users see and act on their own department's cases only (scoped on the server)."""
from __future__ import annotations

from datetime import datetime, timezone

import dash
import dash_ag_grid as dag
from dash import Input, Output, State, dcc, html, no_update
from flask_login import current_user

from dashboards import _case
from dashboards import _ids as ids
from dashboards import _theme as th
from dashboards._components import allowed, forbidden, local_time
from dashboards._figures import state_label
from dashboards._i18n import t
from incidents import commands
from incidents.lifecycle import DomainError
from incidents.model import Role
from incidents.queries import cases, reference

dash.register_page(__name__, path="/dispatch", name="派遣工作台", order=2, title="派遣工作台 · CityOps")

VIEWS = cases.QUEUE_VIEWS
POLL_MS = 4000
BLOCK = 100


def _columns() -> list[dict]:
    text = {"filter": "agTextColumnFilter", "filterParams": {"filterOptions": ["contains", "equals", "startsWith"],
                                                             "maxNumConditions": 1}}
    return [
        {"field": "id", "headerName": t("col_id"), "width": 110, "filter": "agNumberColumnFilter",
         "filterParams": {"filterOptions": ["equals", "greaterThan", "lessThan"], "maxNumConditions": 1},
         "valueFormatter": {"function": "params.value == null ? '' : '#' + params.value"}},
        {"field": "light", "headerName": t("col_light"), "width": 76, "sortable": True,
         "valueFormatter": {"function": "params.value ? '●' : '—'"},
         "cellClassRules": {"light-red": "params.value == 'red'", "light-yellow": "params.value == 'yellow'",
                            "light-green": "params.value == 'green'"}},
        {"field": "sign_light", "headerName": t("col_sign"), "width": 76, "sortable": False,
         "tooltipField": "sign_tip", "valueFormatter": {"function": "params.value ? '◆' : ''"},
         "cellClassRules": {"light-red": "params.value == 'red'", "light-yellow": "params.value == 'yellow'",
                            "light-green": "params.value == 'green'"}},
        {"field": "remaining", "headerName": t("col_remaining"), "width": 150,
         "cellClassRules": {"over": "params.data && params.data.light == 'red'"}},
        {"field": "title", "headerName": t("col_title"), "flex": 2, "minWidth": 200, **text,
         # 新 (待签收) and 紧急 / 督办 tags in front of the title
         "cellRenderer": "CaseTitle"},
        {"field": "category", "headerName": t("col_category"), "width": 130, **text},
        {"field": "state", "headerName": t("col_state"), "width": 96},
        {"field": "request", "headerName": t("col_request"), "width": 130, "sortable": False,
         "cellClass": "req-cell", "tooltipField": "request_tip"},
        {"field": "priority", "headerName": t("col_priority"), "width": 96},
        {"field": "district", "headerName": t("col_district"), "width": 110, **text},
        {"field": "department", "headerName": t("col_department"), "flex": 1, "minWidth": 150, **text},
        {"field": "reported_at", "headerName": t("col_reported"), "width": 120},
        {"field": "supervise_level", "headerName": t("col_supervise"), "width": 80,
         "valueFormatter": {"function": "params.value ? '★'.repeat(params.value) : ''"}},
        # the queue as cards on a phone (assets/dispatch.js shows this column alone below 700 px)
        {"colId": "card", "field": "title", "headerName": t("col_card"), "hide": True, "flex": 1,
         "sortable": False, "cellRenderer": "CaseCard", "cellClass": "card-cell"},
    ]


# rows are made at their height once (the infinite row model cannot change it on the fly): on a phone
# they are cards (assets/dispatch.js shows the card column there), decided when the grid is made
PHONE_ROWS = "queueRowHeight()"    # assets/dispatch.js: 86 px below 700 px, else 34


def _grid_theme() -> dict:
    return {"function": (f"themeQuartz.withParams({{backgroundColor: '{th.PANEL}', foregroundColor: '{th.TEXT}', "
                         f"accentColor: '{th.ACCENT}', headerBackgroundColor: '#102640', borderColor: '{th.GRID}', "
                         f"oddRowBackgroundColor: '#0f2139', fontSize: 14, rowHeight: {PHONE_ROWS}, headerHeight: 36, "
                         f"selectedRowBackgroundColor: 'rgba(53,167,255,0.22)', "
                         f"fontFamily: \"{th.FONT}\"}})")}


def layout(**_kwargs):
    if not allowed("dispatch"):
        return forbidden()
    header = []
    if current_user.role == Role.DEPARTMENT:
        names = reference.department_names(reference.city_info().name)
        header.append(html.Span(t("my_department", name=names.get(current_user.department_code, "")),
                                className="my-dept"))
    depts = [{"label": t("bulk_suggested"), "value": ""}] + [
        {"label": n, "value": c} for c, n in reference.department_options()]
    grid = dag.AgGrid(
        id=ids.DISPATCH_GRID, className="dispatch-grid", rowModelType="infinite", columnDefs=_columns(),
        defaultColDef={"sortable": True, "resizable": True, "suppressHeaderMenuButton": False},
        getRowId="'' + params.data.id",
        rowClassRules={"row-attention": "params.data && params.data.attention",
                       "row-emergency": "params.data && params.data.priority_code == 'emergency'",
                       "row-new": "params.data && params.data.new"},
        dashGridOptions={"theme": _grid_theme(), "cacheBlockSize": BLOCK, "maxBlocksInCache": 20,
                         "infiniteInitialRowCount": 1, "rowBuffer": 20,
                         "rowSelection": {"mode": "multiRow", "checkboxes": True, "headerCheckbox": False,
                                          "enableClickSelection": True},
                         "localeText": {"noRowsToShow": t("no_data"), "loadingOoo": "…"}},
        style={"height": "100%", "width": "100%"})
    return html.Div(className="dispatch workbench", children=[
        dcc.Interval(id=ids.DISPATCH_POLL, interval=POLL_MS),
        dcc.Store(id=ids.DISPATCH_VERSION), dcc.Store(id=ids.DISPATCH_REFRESH, data=0),
        dcc.Store(id=ids.CASE_ID),
        html.Div(className="wb-bar", children=[
            *header,
            dcc.RadioItems(id=ids.DISPATCH_VIEW, value="my_todo", className="views", inline=True,
                           options=[{"label": t(f"view_{k}"), "value": k} for k in cases.views_for(str(current_user.role))]),
            dcc.Input(id=ids.DISPATCH_SEARCH, type="search", debounce=True, className="wb-search",
                      placeholder=t("search_placeholder")),
            html.Span(id=ids.DISPATCH_TOTAL, className="wb-total"),
        ]),
        html.Div(t("keys_help"), id=ids.DISPATCH_HELP, className="wb-help"),
        html.Div(className="wb-main", children=[
            html.Div(grid, className="wb-grid", id="dispatch-queue-table"),
            html.Aside(id=ids.DISPATCH_PANEL, className="wb-panel", children=[
                html.Div(id=ids.DISPATCH_BULK, className="wb-bulk hidden", children=[
                    html.Div(id=ids.DISPATCH_BULK_COUNT, className="wb-bulk-count"),
                    dcc.Dropdown(id=ids.DISPATCH_BULK_DEPT, options=depts, value="", clearable=False),
                    html.Button(t("bulk_dispatch"), id=ids.DISPATCH_BULK_GO, className="btn btn-primary"),
                    html.Div(id=ids.DISPATCH_BULK_RESULT, className="case-result")]),
                html.Div(t("pick_case"), className="wb-empty muted"),
                _case.panel(closable=True)]),
        ]),
    ])


def row_of(r: dict) -> dict:
    """One grid row: display strings in the city's timezone and language."""
    return {"id": r["id"], "version": r["version"], "light": r["light"], "sign_light": r.get("sign_light"),
            "sign_tip": (f"{t('f_sign_due')} {local_time(r['sign_due'], '%m-%d %H:%M')}"
                         if r.get("sign_light") else ""),
            # a closed case (待回访) has no clock: when it was closed instead (a 回访 follows it soon)
            "remaining": (t("closed_on", at=local_time(r["closed_at"], "%m-%d %H:%M"))
                          if r["state"] == "closed" and r.get("closed_at")
                          else _case.hours_text(r["remaining_hours"], r["light"] == "red")),
            "remaining_hours": r["remaining_hours"], "title": r["title"], "category": r["category"] or "—",
            "state": state_label(r["state"]), "state_code": r["state"],
            "request": " / ".join(_case.request_summary(q) for q in r.get("requests") or ()),
            "request_tip": " / ".join(f"{_case.request_summary(q)} · {t('requested_by')} {q['requested_by']}"
                                      + (f" · {q['note']}" if q["note"] else "") for q in r.get("requests") or ()),
            "priority": t(f"priority_{r['priority']}") if r["priority"] in ("normal", "urgent", "emergency") else r["priority"],
            "priority_code": r["priority"], "attention": r.get("attention", False), "new": r.get("new", False),
            # 协办: the department's own part of a case another department leads (its light and deadline)
            "tags": ([["assist", t("tag_assist")]] if r.get("assist") else [])
                    + ([["new", t("tag_new")]] if r.get("new") else [])
                    + ([[r["priority"], t(f"priority_{r['priority']}")]] if r["priority"] in cases.ATTENTION_PRIORITIES else [])
                    + ([["supervised", t("tag_supervised")]] if r["supervise_level"] else []),
            "district": r["district"] or "—", "department": r["department"] or "—",
            "reported_at": local_time(r["reported_at"]), "supervise_level": r["supervise_level"] or 0}


def fetch_block(request: dict, view: str, search: str | None) -> tuple[dict, str]:
    role = str(current_user.role)
    page = cases.queue_page(   # a view this role does not have (a crafted request) falls back to its to-do
        datetime.now(timezone.utc), view=view if view in cases.views_for(role) else "my_todo", role=role,
        department_code=current_user.department_code, q=search or "", sort_model=request.get("sortModel"),
        filter_model=request.get("filterModel"), start=request.get("startRow", 0),
        end=request.get("endRow", BLOCK), calendar=reference.case_rules().calendar,
        citizen_channels=reference.case_rules().citizen_channels)
    return {"rowData": [row_of(r) for r in page.rows], "rowCount": page.total}, t("total_cases", n=f"{page.total:,}")


def bulk_dispatch(rows: list[dict], department: str | None) -> str:
    """Dispatch each selected case with the version the user saw; one transaction per case."""
    ok = bad = 0
    for r in rows or []:
        try:
            commands.act(_case.actor(), int(r["id"]), "dispatch", version=int(r["version"]),
                         now=datetime.now(timezone.utc), department=department or None)
            ok += 1
        except DomainError:
            bad += 1
    return t("bulk_result", ok=ok, bad=bad)


# --------------------------------------------------------------------------- callbacks

@dash.callback(Output(ids.DISPATCH_GRID, "getRowsResponse"), Output(ids.DISPATCH_TOTAL, "children"),
               Input(ids.DISPATCH_GRID, "getRowsRequest"),
               State(ids.DISPATCH_VIEW, "value"), State(ids.DISPATCH_SEARCH, "value"))
def get_rows(request, view, search):
    if not allowed("dispatch"):
        _case.abort(403)
    if not request:
        raise dash.exceptions.PreventUpdate
    return fetch_block(request, view, search)


@dash.callback(Output(ids.DISPATCH_VERSION, "data"), Input(ids.DISPATCH_POLL, "n_intervals"),
               State(ids.DISPATCH_VERSION, "data"))
def poll_version(_n, seen):
    if not allowed("dispatch"):
        _case.abort(403)
    version = cases.queue_version()
    return no_update if version == seen else version


@dash.callback(Output(ids.DISPATCH_BULK_RESULT, "children"), Output(ids.DISPATCH_REFRESH, "data"),
               Input(ids.DISPATCH_BULK_GO, "n_clicks"), State(ids.DISPATCH_GRID, "selectedRows"),
               State(ids.DISPATCH_BULK_DEPT, "value"), State(ids.DISPATCH_REFRESH, "data"),
               prevent_initial_call=True)
def bulk(_n, rows, department, refresh):
    _case.guard_actions()
    return bulk_dispatch(rows, department), (refresh or 0) + 1


# the live part runs in the browser: only the visible block is fetched again, the selection
# (kept by row id through getRowId) stays where it is
dash.clientside_callback(
    """function(version, done, refresh, view, search) {
        let api = null;
        try { api = dash_ag_grid.getApi('%s'); } catch (e) { return window.dash_clientside.no_update; }
        const trig = (dash_clientside.callback_context.triggered || []).map(t => t.prop_id).join(' ');
        if (trig.indexOf('%s') >= 0 || trig.indexOf('%s') >= 0) {
            api.purgeInfiniteCache(); api.ensureIndexVisible(0, 'top');
        } else {
            api.refreshInfiniteCache();
        }
        return window.dash_clientside.no_update;
    }""" % (ids.DISPATCH_GRID, ids.DISPATCH_VIEW, ids.DISPATCH_SEARCH),
    Output(ids.DISPATCH_GRID, "id"), Input(ids.DISPATCH_VERSION, "data"), Input(ids.CASE_DONE, "data"),
    Input(ids.DISPATCH_REFRESH, "data"), Input(ids.DISPATCH_VIEW, "value"), Input(ids.DISPATCH_SEARCH, "value"),
    prevent_initial_call=True)

# one selected row opens the case panel; several show the bulk bar; none shows the hint
dash.clientside_callback(
    """function(rows, current) {
        rows = rows || [];
        const nu = window.dash_clientside.no_update;
        const id = rows.length === 1 ? rows[0].id : null;
        const panel = rows.length === 0 ? 'wb-panel' : (rows.length === 1 ? 'wb-panel open' : 'wb-panel bulk');
        return [id === current ? nu : id, panel, rows.length > 1 ? '%s'.replace('{n}', rows.length) : ''];
    }""" % t("bulk_selected"),
    Output(ids.CASE_ID, "data"), Output(ids.DISPATCH_PANEL, "className"), Output(ids.DISPATCH_BULK_COUNT, "children"),
    Input(ids.DISPATCH_GRID, "selectedRows"), State(ids.CASE_ID, "data"))

dash.clientside_callback(
    """function(n) {
        try { dash_ag_grid.getApi('%s').deselectAll(); } catch (e) { /* not ready */ }
        return window.dash_clientside.no_update;
    }""" % ids.DISPATCH_GRID,
    Output(ids.CASE_CLOSE, "id"), Input(ids.CASE_CLOSE, "n_clicks"), prevent_initial_call=True)
