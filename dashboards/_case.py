"""The case panel, shared by the side panel on /dispatch and the page /incidents/<id>: details, a
small map, the timeline, the routing suggestion, near-duplicates, and the actions of DESIGN §3.

Both pages hold the same component ids, so one set of callbacks serves both. The version of the
case the user saw travels in the ``CASE_DATA`` store and goes with every action: when someone
else changed the case first, the user is told who and when and the panel reloads.
Every callback checks the user on the server; ``services.perform`` checks the role again.
"""
from __future__ import annotations

import base64
import binascii
import math
import uuid
from datetime import datetime, timezone

import dash
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from flask import abort, current_app
from flask_login import current_user

from dashboards import _ids as ids
from dashboards import _theme as th
from dashboards._components import allowed, local_time
from dashboards._figures import channel_label, state_label
from dashboards._i18n import TEXT, t
from incidents import commands, services
from incidents.lifecycle import DomainError, StaleVersion, ValidationFailed
from incidents.media import MAX_PER_ACTION, STAGE_OF_ACTION
from incidents.model import ResolveOutcome
from incidents.queries import cases, reference

#: the keyboard shortcut of each action (also shown on its button)
KEYS = {"register": "r", "dispatch": "d", "sign": "s", "resolve": "f", "verify_pass": "p",
        "verify_fail": "n", "void": "v", "return": "b", "reassign": "a", "extend": "e",
        "suspend": "h", "resume": "u", "merge": "m", "supervise": "g", "reopen": "o", "arbitrate": "j",
        "assist_sign": "x", "assist_reply": "y", "contact": "c",
        # 回访: the citizen's answer, one key each as the call ends
        "revisit_satisfied": "1", "revisit_basic": "2", "revisit_unreachable": "3", "revisit_unsatisfied": "4"}
#: 回访 is offered as one button per result (``revisit`` with ``result``): the ones that need no
#: input are one click; 不满意 sends the case back (重办) and asks for the citizen's complaint
REVISIT_BUTTONS = ("revisit_satisfied", "revisit_basic", "revisit_unreachable", "revisit_unsatisfied")
#: which fields each action asks for; the ones in NEEDS must be filled in
FIELDS = {"void": {"reason", "note"}, "dispatch": {"dept", "assisting", "note"}, "reassign": {"dept", "note"},
          "arbitrate": {"dept", "assisting", "note"}, "assist_reply": {"note"}, "return": {"return_reason", "note"}, "extend": {"hours", "note"}, "suspend": {"note"}, "merge": {"dup", "note"},
          "supervise": {"level", "note"}, "verify_fail": {"note", "photos"}, "approve": {"note"}, "reject": {"note"},
          # photos come with the department's 反馈 and the inspector's 核查 (incidents.media.STAGE_OF_ACTION)
          **{a.value: {"note", "photos"} for a in STAGE_OF_ACTION if a.value != "verify_fail"}}
NEEDS = {"void": "reason", "reassign": "dept", "return": "return_reason", "arbitrate": "note", "extend": "hours", "suspend": "note",
         "merge": "dup", "verify_fail": "note", "reject": "note", "assist_reply": "note",
         "revisit_unsatisfied": "complaint"}
FIELDS["resolve"] = FIELDS["resolve"] | {"outcome"}     # 实际解决 / 解释说明 (实际解决 preselected)
#: the actions that need no input: one click (or key) queues them in the browser, and they are sent
#: when the undo window ends or the user moves on (see ``undo_seconds``). Each can also be put right
#: by the next ordinary step, so nothing is lost by not asking. Everything else opens the form.
ONE_CLICK = ("register", "sign", "verify_pass", "resume", "assist_sign", "contact", "revisit_satisfied",
             "revisit_basic", "revisit_unreachable")


def undo_seconds() -> float:
    """How long a one-click action waits in the browser for 撤销 before it is sent: nothing is written
    before, so an undone action leaves no event, no version bump and no trace in the KPIs. The
    ``UNDO_SECONDS`` setting (``CITYOPS_UNDO_SECONDS``, 5 s); the case store hands it to the browser."""
    return float(current_app.config["UNDO_SECONDS"])


#: the deadline clock is recomputed on the server (working time needs the city's calendar)
CLOCK_MS = 60_000
#: the actions that decide a department's request: offered beside the request, not in the action bar
DECISIONS = ("approve", "reject")
VOID_REASONS = ("duplicate", "invalid", "not_ours")


def actor() -> services.Actor:
    return services.Actor.of(current_user)


def guard() -> None:
    """Refuse (HTTP 403) a callback from anyone who may not open the workbench or a case page."""
    if not current_user.is_authenticated:
        abort(403)


def guard_actions() -> None:
    """Actions: only the workbench roles, before ``services.perform`` checks the role once more."""
    if not allowed("dispatch"):
        abort(403)


# --------------------------------------------------------------------------- layout

def panel(*, closable: bool) -> html.Div:
    """The case panel's static frame; the callbacks fill it."""
    head = [html.Div(id=ids.CASE_COUNTDOWN, className="case-countdown")]
    if closable:
        head.append(html.Button("✕", id=ids.CASE_CLOSE, className="case-close", title=f"{t('close')} (Esc)"))
    return html.Div(id=ids.CASE_BOX, className="case-box", children=[
        dcc.Store(id=ids.CASE_DATA), dcc.Store(id=ids.CASE_DONE, data=0), dcc.Store(id=ids.CASE_PENDING),
        dcc.Store(id=ids.CASE_QUEUED), dcc.Store(id=ids.CASE_COMMIT),
        dcc.Interval(id=ids.CASE_TICK, interval=CLOCK_MS),
        dcc.Interval(id=ids.CASE_UNDO_TICK, interval=250, disabled=True),
        html.Div(className="case-head", children=head),
        html.Div(id=ids.CASE_RESULT, className="case-result", role="status"),
        html.Div(id=ids.CASE_UNDO_BAR, className="case-queued hidden", role="status", children=[
            html.Span(id=ids.CASE_UNDO_TEXT, className="case-queued-text"),
            html.Button([t("undo"), html.Kbd("Z")], id=ids.CASE_UNDO, className="btn btn-undo", title=f"{t('undo')} (Z)"),
            html.Button(t("apply_now"), id=ids.CASE_APPLY_NOW, className="btn btn-small btn-now")]),
        html.Div(id=ids.CASE_BODY, className="case-body"),
        html.Div(id=ids.CASE_ACTIONS, className="case-actions"),
        action_form(),
        html.Div(id=f"{ids.CASE_MAP}-box", className="case-map-box"),
        html.Div(id=f"{ids.CASE_BODY}-more", className="case-more"),
    ])


def action_form() -> html.Div:
    def field(name, label, control):
        return html.Label(className="form-field", id=f"case-field-{name}", children=[html.Span(label), control])
    depts = [{"label": f"{n}", "value": c} for c, n in reference.department_options()]
    max_bytes = int(current_app.config.get("MEDIA_MAX_BYTES") or 10 * 1024 * 1024)
    return html.Div(id=ids.CASE_FORM, className="case-form hidden", children=[
        html.Div(id=ids.CASE_FORM_TITLE, className="case-form-title"),
        field("reason", t("reason"), dcc.Dropdown(id=ids.CASE_REASON, clearable=False, searchable=False,
                                                  options=[{"label": t(f"void_{r}"), "value": r} for r in VOID_REASONS])),
        # 退单: a reason code from the pack's list (its labels), the free text in the note
        field("return_reason", t("return_reason"), dcc.Dropdown(
            id=ids.CASE_RETURN_REASON, clearable=False, searchable=False,
            options=[{"label": label, "value": code}
                     for code, label in reference.case_rules().return_reasons.items()])),
        field("dept", t("target_department"), dcc.Dropdown(id=ids.CASE_DEPT, options=depts, clearable=False)),
        # 协办: any other departments, each with its own sign-for and reply deadline
        field("assisting", t("assisting_departments"), dcc.Dropdown(
            id=ids.CASE_ASSISTING, options=depts, multi=True, value=[], placeholder=t("assisting_placeholder"))),
        # the lead's resolve while assisting replies are missing: only with this ticked and a note
        field("override", t("override_label"), dcc.Checklist(
            id=ids.CASE_OVERRIDE, options=[{"label": " " + t("override_text"), "value": "override"}], value=[],
            className="override-check")),
        field("hours", t("hours"), dcc.Input(id=ids.CASE_HOURS, type="number", min=0.5, step=0.5)),
        field("dup", t("duplicate_of"), dcc.Input(id=ids.CASE_DUP, type="number", min=1, step=1)),
        field("level", t("level"), dcc.Dropdown(id=ids.CASE_LEVEL, clearable=False, searchable=False, value=1,
                                                options=[{"label": f"{n} 级" if n else "", "value": n} for n in (1, 2, 3)])),
        field("outcome", t("f_outcome"), dcc.RadioItems(
            id=ids.CASE_OUTCOME, value=ResolveOutcome.SOLVED.value, inline=True, className="outcome-choice",
            options=[{"label": t(f"outcome_{o.value}"), "value": o.value} for o in ResolveOutcome])),
        field("note", t("note"), dcc.Textarea(id=ids.CASE_NOTE, rows=2, maxLength=500)),
        field("photos", t("upload_label", mb=f"{max_bytes / 1024 / 1024:g}", n=MAX_PER_ACTION), html.Div([
            # the browser refuses larger files at once; the server checks size and type again (the bytes)
            dcc.Upload(id=ids.CASE_PHOTOS, multiple=True, accept="image/jpeg,image/png,image/webp",
                       max_size=max_bytes, className="photo-drop", className_active="photo-drop active",
                       children=html.Span(t("upload_hint"))),
            html.Div(id=ids.CASE_PHOTOS_LIST, className="photo-chosen")])),
        html.Div(className="form-buttons", children=[
            html.Button(t("confirm"), id=ids.CASE_CONFIRM, className="btn btn-primary", title="Ctrl+Enter"),
            html.Button(t("cancel"), id=ids.CASE_CANCEL, className="btn", title="Esc")]),
    ])


# --------------------------------------------------------------------------- rendering

def load(incident_id) -> dict | None:
    if incident_id in (None, ""):
        return None
    return cases.case_detail(datetime.now(timezone.utc), int(incident_id), rules=reference.case_rules(),
                               role=str(current_user.role), department_code=current_user.department_code)


def act_label(action: str, request_only: bool = False) -> str:
    """An action's button text; a request-only action (a department's extend) reads 申请延期."""
    if request_only and f"act_request_{action}" in TEXT:
        return t(f"act_request_{action}")
    return t(f"act_{action}") if f"act_{action}" in TEXT else action


def kind_label(kind: str) -> str:
    return t(f"request_kind_{kind}") if f"request_kind_{kind}" in TEXT else kind


def request_summary(r: dict) -> str:
    """延期 +8.0 工时 / 挂账：原因 — one line of a request for the grid and the panel."""
    text = kind_label(r["kind"])
    if r.get("hours"):
        text += " " + t("request_hours", h=f"{r['hours']:g}")
    return text


def requests_section(d: dict) -> html.Div | None:
    """The case's requests: pending ones first, with 批准 / 驳回 for whoever may decide."""
    if not d.get("requests"):
        return None
    items = []
    for r in d["requests"]:
        pending = r["status"] == "pending"
        lines = [html.Div(className="req-head", children=[
            html.Span(t(f"request_status_{r['status']}"), className=f"req-status req-{r['status']}"),
            html.B(request_summary(r)), html.Span(f" #{r['id']}", className="muted")])]
        if r["note"] or r["reason"]:
            lines.append(html.Div(" · ".join(x for x in (r["reason"], r["note"]) if x), className="req-note"))
        lines.append(html.Div(t("request_by", who=r["requested_by"], at=local_time(r["requested_at"], "%m-%d %H:%M")),
                              className="req-meta muted"))
        if not pending:
            lines.append(html.Div(t("request_decided", who=r["decided_by"] or "?", status=t(f"request_status_{r['status']}"),
                                    at=local_time(r["decided_at"], "%m-%d %H:%M") if r["decided_at"] else "?")
                                  + (f"：{r['decision_note']}" if r["decision_note"] else ""), className="req-meta muted"))
        elif d.get("may_decide"):
            lines.append(html.Div(className="req-buttons", children=[
                html.Button(act_label(a), className=f"btn btn-small act-{a}",
                            id={"type": ids.CASE_DECIDE, "action": a, "request": r["id"]}) for a in DECISIONS]))
        else:
            lines.append(html.Div(t("request_wait"), className="req-meta req-wait"))
        items.append(html.Li(lines, className=f"req req-{r['status']}"))
    return html.Div(className="case-section case-requests", children=[html.H4(t("requests")),
                                                                       html.Ul(items, className="reqs")])


def one_decimal(h: float) -> str:
    """Hours to one decimal — and "<0.1" for a few minutes, which would read 0.0 (a case two office
    minutes over its deadline is over, not at 0.0)."""
    h = abs(h)
    return "<0.1" if 0 < h < 0.05 else f"{h:.1f}"


def hours_text(h: float | None, overdue: bool = False) -> str:
    """Working hours left, or over when past the deadline (which may be outside office hours)."""
    if h is None:
        return "—"
    return t("remaining_over", h=one_decimal(h)) if overdue or h < 0 else t("remaining_left", h=one_decimal(h))


def sign_row(d: dict, row):
    """签收时限 with its own light while the department has not signed for the case."""
    if not d.get("sign_due"):
        return row(t("f_sign_due"), "—")
    when = local_time(d["sign_due"], "%Y-%m-%d %H:%M")
    if not d.get("sign_light"):
        return row(t("f_sign_due"), when)
    lit = d["sign_light"]
    return row(t("f_sign_due"), html.Span([html.Span(className=f"dot {lit}"), when, " ",
                                           t("sign_overdue") if lit == "red" else t("sign_waiting")],
                                          className=f"sign-due {lit}"))


def render(d: dict) -> tuple:
    """(body, actions, more, map figure, store) of one case."""
    def row(label, value, cls=""):
        return html.Div(className=f"kv {cls}", children=[html.Span(label, className="k"), html.Span(value, className="v")])
    light = d["light"] or "none"
    reporter = " ".join(x for x in (d["reporter_name"], d["reporter_phone"]) if x) or "—"
    if d["reporter_masked"] and reporter != "—":
        reporter += " " + t("f_masked")
    body = [
        html.H3([html.Span(className=f"dot {light}"), f"#{d['id']} {d['title']}"], className="case-title"),
        html.Div(className="kvs", children=[
            row(t("f_state"), html.Span(state_label(d["state"]), className=f"state-chip s-{d['state']}")),
            row(t("f_category"), d["category"] or "—"),
            row(t("f_channel"), channel_label(d["channel"])),
            row(t("col_priority"), t(f"priority_{d['priority']}") if d["priority"] in ("normal", "urgent", "emergency") else d["priority"]),
            row(t("f_address"), d["address"] or "—"),
            row(t("f_area"), f"{d['district'] or '—'} / {d['grid'] or d['grid_code'] or '—'}"),
            row(t("f_lead_department") if d.get("parts") else t("f_department"), d["department"] or "—"),
            row(t("f_reporter"), reporter, "reporter"),
            row(t("f_reported"), local_time(d["reported_at"], "%Y-%m-%d %H:%M")),
            row(t("f_deadline"), local_time(d["deadline"], "%Y-%m-%d %H:%M") if d["deadline"] else "—"),
            sign_row(d, row),
            row(t("f_returns"), (t("returns_n", n=d["return_count"]) if d.get("return_count") else "—")
                + (" · " + t("arbitrated") if d.get("arbitrated") else "")),
            *citizen_rows(d, row),
            row(t("f_supervise"), f"{d['supervise_level']} 级" if d["supervise_level"] else "—"),
            row(t("f_rework"), f"{d['rework_count']} 次"),
            *([row(t("f_alarms"), t("alarms_n", n=d["alarm_count"]))] if d.get("alarm_count") else []),
            row(t("f_version"), f"v{d['version']} · {d['updated_by'] or '—'} · {local_time(d['updated_at'])}"),
        ]),
        html.P(d["description"], className="case-desc") if d["description"] else None,
        parts_section(d),
        requests_section(d),
        photos_section(d),
    ]
    request_only = set(d.get("request_only") or ())
    actions = []
    offered = panel_actions(d["actions"])
    for a in offered:
        if a in DECISIONS:
            continue
        actions.append(html.Button([act_label(a, a in request_only), html.Kbd(KEYS.get(a, "").upper())],
                                   className=f"btn act act-{a}" + (" act-oneclick" if a in ONE_CLICK else ""),
                                   id={"type": ids.CASE_ACT, "action": a},
                                   title=t("one_click_tip", s=f"{undo_seconds():g}") if a in ONE_CLICK else None,
                                   **{"data-key": KEYS.get(a, "")}))
        if a in ONE_CLICK:     # the same action with a note (or, at 核查, photos): the form, Shift + key
            actions.append(html.Button("…", className=f"btn act act-more act-{a}-more", id={"type": ids.CASE_ACT_FORM, "action": a},
                                       title=t("with_note_tip", action=act_label(a), letter=KEYS.get(a, "").upper()),
                                       **{"data-form-key": KEYS.get(a, "")}))
    actions = actions or [html.Span(t("no_actions"), className="muted")]
    may_merge = "merge" in d["actions"]
    dups = [html.Li(className="dup", children=[
        html.A(f"#{x['id']}", href=f"/incidents/{x['id']}", target="_blank"),
        html.Span(f" {x['title']} · {state_label(x['state'])} · {t('meters', m=x['distance_m'])}"),
        html.Button(t("merge_into"), className="btn btn-small", id={"type": ids.CASE_MERGE, "target": x["id"]})
        if may_merge else None]) for x in d["duplicates"]]
    s = d["suggestion"]
    more = [
        html.Div(className="case-section", children=[html.H4(t("suggestion")),
                                                      html.P([html.B(s["department"]), html.Br(), html.Span(s["reason"], className="muted")])]),
        repeats_section(d),
        html.Div(className="case-section", children=[html.H4(t("duplicates")),
                                                      html.Ul(dups, className="dups") if dups else html.P(t("no_duplicates"), className="muted")]),
        html.Div(className="case-section", children=[html.H4(t("timeline")), timeline(d["timeline"], d.get("department_names"))]),
    ]
    store = {"id": d["id"], "version": d["version"], "state": d["state"], "actions": offered,
             "request_only": sorted(request_only),
             "requests": {str(r["id"]): r["kind"] for r in d.get("requests", ()) if r["status"] == "pending"},
             "suggested": s["department_code"], "department": d["department_code"],
             "awaiting": d.get("awaiting") or [],
             "one_click": [a for a in offered if a in ONE_CLICK],
             "labels": {a: act_label(a) for a in offered if a in ONE_CLICK},
             "undo_ms": round(undo_seconds() * 1000),
             "texts": {"queued": t("queued", s="{s}", action="{action}", id="{id}"),
                       "undone": t("undone", action="{action}", id="{id}")}}
    return [b for b in body if b is not None], actions, more, case_map(d), store


def parts_section(d: dict) -> html.Div | None:
    """主办 / 协办: the lead and each assisting department of the current dispatch, with its sign-for
    and reply state, deadlines and its own light."""
    parts = d.get("parts") or []
    if not parts:
        return None
    def when(v):
        return local_time(v, "%m-%d %H:%M")
    # the lead's own sign-for (待签收) while dispatched, else the case's state; its 处置时限 below
    lead_state = t("part_dispatched") if d["state"] == "dispatched" else state_label(d["state"])
    items = [html.Li(className="part part-lead", children=[
        html.Span(t("part_lead"), className="part-role lead"),
        html.Span(className=f"dot {d['light']}") if d.get("light") else None,
        html.B(d["department"] or "—"), html.Span(lead_state, className="part-state muted"),
        html.Div(t("part_deadline", at=when(d["deadline"])), className="part-meta muted") if d.get("deadline") else None])]
    for p in parts:
        late = ((p["sign_on_time"] is False and p["state"] == "signed") or p["reply_on_time"] is False)
        detail = [t("part_sign_due", at=when(p["sign_due"])) if p["state"] == "dispatched" else None,
                  t("part_reply_due", at=when(p["reply_due"])),
                  t("part_replied_at", at=when(p["replied_at"])) if p["replied_at"] else None]
        items.append(html.Li(className=f"part part-{p['state']}", children=[
            html.Span(t("part_assist"), className="part-role assist"),
            html.Span(className=f"dot {p['light']}") if p["light"] else None,
            html.B(p["department"] or p["department_code"]),
            html.Span(t(f"part_{p['state']}") + (f" · {t('part_late')}" if late else ""),
                      className="part-state" + (" late" if late else "")),
            html.Div(" · ".join(x for x in detail if x), className="part-meta muted"),
            html.Div(p["reply_note"], className="part-note") if p["reply_note"] else None]))
    return html.Div(className="case-section case-parts", children=[html.H4(t("parts_title")),
                                                                   html.Ul(items, className="parts")])


def panel_actions(actions: list[str]) -> list[str]:
    """The panel's buttons for the actions offered: ``revisit`` as one button per result;
    ``link_repeat`` is a button beside each candidate parent (repeats_section), not one here."""
    out = []
    for a in actions:
        if a == "link_repeat":
            continue
        out += list(REVISIT_BUTTONS) if a == "revisit" else [a]
    return out


def repeats_section(d: dict) -> html.Div:
    """重复诉求: the candidate parents with their score and its parts (one click links this case as
    their child), or the parent this case repeats; the children of a parent, and — the parent closed
    — closing the open ones with it under one reason."""
    r = d["repeats"]
    reach = t("repeat_reach", r=f"{r['reach']['radius_m']:g}", h=f"{r['reach']['window_h']:g}",
              auto=f"{r['auto_link_score']:g}")
    w = r["weights"]

    def part(k, v):
        return f"{v:.2f}×{w.get(k, 0):g}"
    items = []
    if r["parent"]:
        p = r["parent"]
        who = t("repeat_auto") if p["auto"] else t("repeat_manual", who=p["linked_by"] or "—")
        score = " · " + t("repeat_score", s=f"{p['score']:.2f}") if p.get("score") is not None else ""
        items.append(html.Div(className="repeat-parent", children=[
            html.Span(t("repeat_parent"), className="k"),
            html.A(f"#{p['id']}", href=f"/incidents/{p['id']}"),
            html.Span(f" {p['title']} · {state_label(p['state'])} · {who}{score}")]))
    elif r["candidates"] or not r["children"]:
        rows = []
        for c in r["candidates"]:
            pt = c["parts"]
            rows.append(html.Li(className="repeat-cand", children=[
                html.Div(className="repeat-head", children=[
                    html.A(f"#{c['id']}", href=f"/incidents/{c['id']}", target="_blank"),
                    html.Span(f" {c['title']} · {state_label(c['state'])} · {local_time(c['reported_at'], '%m-%d %H:%M')}"),
                    html.B(t("repeat_score", s=f"{c['score']:.2f}"), className="repeat-score")]),
                html.Div(t("repeat_parts", d=f"{c['distance_m']:.0f}", pd=part("distance", pt["distance"]),
                           h=f"{c['hours']:.1f}", pt=part("time", pt["time"]), px=part("text", pt["text"]),
                           pc=part("category", pt["category"])), className="repeat-parts muted"),
                html.Button(t("link_repeat"), className="btn btn-small",
                            id={"type": ids.CASE_LINK_REPEAT, "target": c["id"]}) if r["may_link"] else None]))
        items += [html.P(t("repeat_candidates"), className="muted"), html.Ul(rows, className="repeats")] if rows \
            else [html.P(t("no_repeat_candidates"), className="muted")]
    if r["children"]:
        items.append(html.P(t("repeat_children", n=len(r["children"])), className="k"))
        items.append(html.Ul(className="repeats", children=[html.Li([
            html.A(f"#{c['id']}", href=f"/incidents/{c['id']}", target="_blank"),
            html.Span(f" {c['title']} · {state_label(c['state'])} · {local_time(c['reported_at'], '%m-%d %H:%M')}")])
            for c in r["children"]]))
    if r["may_close_children"]:
        items.append(html.Div(className="repeat-close", children=[
            dcc.Input(id={"type": ids.CASE_CHILDREN_REASON, "case": d["id"]}, type="text", maxLength=500,
                      placeholder=t("close_children_reason"), className="input"),
            html.Button(t("close_children"), className="btn btn-small",
                        id={"type": ids.CASE_CLOSE_CHILDREN, "case": d["id"]})]))
    return html.Div(className="case-section repeats-section", children=[
        html.H4(t("repeats")), html.P(reach, className="muted small"), *items])


def as_service_action(action: str) -> tuple[str, str | None]:
    """(the services' action, the 回访 result) of a panel button."""
    if action in REVISIT_BUTTONS:
        return "revisit", action.removeprefix("revisit_")
    return action, None


def citizen_rows(d: dict, row) -> list:
    """先行联系, 处置结果 and 回访 of a citizen's case (nothing for another channel's)."""
    if not d.get("citizen"):
        return []
    contact = local_time(d["first_contacted_at"], "%Y-%m-%d %H:%M") if d.get("first_contacted_at") else "—"
    outcome = t(f"outcome_{d['resolve_outcome']}") if d.get("resolve_outcome") else "—"
    if d.get("revisit_result"):
        visit = html.Span([t(f"revisit_{d['revisit_result']}"), " · ", local_time(d["revisited_at"], "%m-%d %H:%M")],
                          className=f"revisit-chip r-{d['revisit_result']}")
    else:
        visit = html.Span(t("revisit_due"), className="revisit-chip r-due") if d["state"] == "closed" else "—"
    return [row(t("f_contact"), contact), row(t("f_outcome"), outcome), row(t("f_revisit"), visit)]


def clock(c: dict | None) -> list:
    """The case's one deadline clock: time left (or over) in working time — natural hours for a
    natural-time category — with the deadline itself as a date; empty when the clock does not run."""
    if not c or c.get("remaining_hours") is None:
        return []
    natural = c.get("time_unit") == "natural_hours"
    h, over = c["remaining_hours"], c["light"] == "red" or c["remaining_hours"] < 0
    text = (t("clock_over_natural" if natural else "clock_over", h=one_decimal(h)) if over
            else t("clock_left_natural" if natural else "clock_left", h=one_decimal(h)))
    return [html.B(text, className=f"clock-left {c['light']}"),
            html.Span(t("clock_deadline", at=local_time(c["deadline"], "%Y-%m-%d %H:%M")), className="clock-date")]


STAGES = ("report", "resolve", "verify")


def photo_tile(a: dict) -> html.Div:
    """A photo's thumbnail (a click opens the full photo), or a link (never shown as an image: the
    browser would fetch it from elsewhere)."""
    when = local_time(a["created_at"], "%m-%d %H:%M")
    if a["kind"] == "photo":
        return html.A(href=a["url"], target="_blank", rel="noopener", className="photo", title=t("photo_open"),
                      children=[html.Img(src=a["thumbnail_url"], alt=a["name"] or f"#{a['id']}"),
                                html.Span(f"{when} · {a['created_by']}", className="photo-meta")])
    return html.A(href=a["url"], target="_blank", rel="noopener noreferrer nofollow", className="photo photo-link",
                  children=[html.Span(t("photo_link"), className="photo-link-label"),
                            html.Span(a["name"] or a["url"], className="photo-link-url"),
                            html.Span(f"{when} · {a['created_by']}", className="photo-meta")])


def photos_section(d: dict) -> html.Div | None:
    """The case's photos and links by stage. While the case waits for 核查 (resolved), the report's
    photos (before) and the resolve's (after) stand side by side for the inspector."""
    items = d.get("attachments") or []
    if not items and d["state"] != "resolved":
        return None
    if items and not d.get("may_see_media"):
        n = sum(1 for a in items if a["kind"] == "photo")
        return html.Div(className="case-section case-photos", children=[
            html.H4(t("photos")), html.P(t("photos_hidden", n=n), className="muted")])
    by_stage = {st: [a for a in items if a["stage"] == st] for st in STAGES}

    def column(stage: str, label: str) -> html.Div:
        tiles = [photo_tile(a) for a in by_stage[stage]] or [html.Span(t("photo_none"), className="muted photo-none")]
        return html.Div(className=f"photo-col photo-{stage}", children=[html.Div(label, className="photo-col-head"),
                                                                         html.Div(tiles, className="photo-tiles")])
    if d["state"] == "resolved":      # 核查: before / after
        cols = [column("report", t("photo_before")), column("resolve", t("photo_after"))]
        if by_stage["verify"]:
            cols.append(column("verify", t("stage_verify")))
        return html.Div(className="case-section case-photos compare", children=[
            html.H4(t("photo_compare")), html.Div(cols, className="photo-cols")])
    cols = [column(st, t(f"stage_{st}")) for st in STAGES if by_stage[st]]
    return html.Div(className="case-section case-photos", children=[
        html.H4(t("photos")), html.Div(cols, className="photo-cols")])


def timeline(events: list[dict], names: dict | None = None) -> html.Ol:
    names = names or {}
    items = []
    for e in events:
        extra = []
        payload = e["payload"] or {}
        for k in ("reason", "routing", "hours", "level"):
            if payload.get(k) not in (None, ""):
                extra.append(f"{k}: {payload[k]}")
        if e["action"] == "return" and payload.get("returns"):
            extra.append(t("returns_n", n=payload["returns"]))
        if e["action"] == "sign" and payload.get("on_time") is False:
            extra.append(t("sign_late"))
        if payload.get("assisting"):
            extra.append(t("ev_assisting", names="、".join(names.get(x["department"], x["department"])
                                                          for x in payload["assisting"])))
        if payload.get("override"):
            extra.append(t("ev_override", names="、".join(names.get(x, x) for x in payload["override"])))
        if e["action"].startswith("assist_") and (payload.get("on_time") is False
                                                  or payload.get("sign_on_time") is False):
            extra.append(t("part_late"))
        if payload.get("outcome"):
            extra.append(t(f"outcome_{payload['outcome']}"))
        if payload.get("result"):
            extra.append(t(f"revisit_{payload['result']}") if not payload.get("redo") else t("ev_redo"))
        if e["action"] == "contact" and payload.get("first"):
            extra.append(t("ev_first_contact"))
        if payload.get("requested_by"):
            extra.append(f"{t('requested_by')}: {payload['requested_by']}")
        if payload.get("photos"):
            extra.append(t("ev_photos", n=payload["photos"]))
        if payload.get("links"):
            extra.append(t("ev_links", n=payload["links"]))
        label = act_label(e["action"])
        if payload.get("kind") and e["action"] in ("request", *DECISIONS):
            label = f"{label}{kind_label(payload['kind'])}" + (f" #{payload['case_request_id']}"
                                                               if payload.get("case_request_id") else "")
        items.append(html.Li(className=f"ev ev-{e['action']}", children=[
            html.Span(local_time(e["at"], "%m-%d %H:%M:%S"), className="ev-at"),
            html.B(label),
            html.Span(f" {actor_text(e)}", className="ev-actor", title=e["actor"]),
            html.Span(f" → {state_label(e['to_state'])}" if e["to_state"] else ""),
            html.Span(f" · {e['department']}" if e["department"] else "", className="muted"),
            html.Div(e["note"], className="ev-note") if e["note"] else None,
            html.Div(" · ".join(extra), className="ev-note muted") if extra else None]))
    return html.Ol(items, className="timeline")


def actor_text(e: dict) -> str:
    """Who acted, as people read it: 王芳（西湖区城市管理局）, 李强（派遣员）; a feed or token as it came."""
    name = e.get("actor_name") or e["actor"]
    unit = e.get("actor_unit") or (role_label(e["actor_role"]) if e.get("actor_role") else None)
    return f"{name}（{unit}）" if unit else name


def role_label(role: str) -> str:
    return t(f"role_{role}") if f"role_{role}" in TEXT else role


#: the closest a point outside every district is shown (about 10 km across the small map), framed
#: with the nearest district so the outlines give it a place
POINT_ONLY_ZOOM = 11.0


def case_map(d: dict) -> go.Figure:
    """The case's district boundary and its point, framed together. A point outside every district
    (or a district the pack has no shape for) gets the city's district outlines around it; a case
    with no location the whole city and a note saying so — never a blank box."""
    city = reference.city_info()
    shapes = reference.district_shapes(city.name)
    lons, lats = [], []
    for f in shapes["features"]:
        if f["id"] == d["district_code"]:
            lons, lats = outline(f["geometry"])
    has_point = d["lon"] is not None and d["lat"] is not None
    line = dict(color=th.ACCENT, width=2)
    if not lons:         # nothing of its own to frame: the city's districts, thin, for a sense of place
        for f in shapes["features"]:
            xs_, ys_ = outline(f["geometry"])
            lons, lats = lons + xs_, lats + ys_
        line = dict(color=th.MUTED, width=1)
        own = False
    else:
        own = True
    # line traces with fixed uids: the map layers are updated in place when the case changes
    traces = [go.Scattermap(lon=lons, lat=lats, mode="lines", uid="case-district", hoverinfo="skip", line=line)]
    if has_point:
        color = th.LIGHT_COLORS.get(d["light"] or "none", th.ACCENT)
        traces.append(go.Scattermap(lon=[round(d["lon"], 5)], lat=[round(d["lat"], 5)], mode="markers", uid="case-point",
                                    marker=dict(size=16, color=color), hovertext=[d["address"] or d["title"]],
                                    hoverinfo="text"))
    if own:              # frame the whole district with the point in it
        xs = [x for x in lons if x is not None] + ([d["lon"]] if has_point else [])
        ys = [y for y in lats if y is not None] + ([d["lat"]] if has_point else [])
        center, zoom = dict(lon=(min(xs) + max(xs)) / 2, lat=(min(ys) + max(ys)) / 2), fit_zoom(xs, ys)
    elif has_point:      # the point and the nearest district (by its centre) framed together
        near = min(shapes["features"], default=None, key=lambda f: (f["properties"]["lon"] - d["lon"]) ** 2
                   + (f["properties"]["lat"] - d["lat"]) ** 2)
        bx, by = outline(near["geometry"]) if near else ([], [])
        xs = [x for x in bx if x is not None] + [d["lon"]]
        ys = [y for y in by if y is not None] + [d["lat"]]
        center = dict(lon=(min(xs) + max(xs)) / 2, lat=(min(ys) + max(ys)) / 2)
        zoom = min(fit_zoom(xs, ys), POINT_ONLY_ZOOM)
    else:
        center, zoom = dict(lon=city.center[1], lat=city.center[0]), city.zoom
    fig = go.Figure(traces)
    fig.update_layout(**th.base_layout(margin=dict(l=0, r=0, t=0, b=0), map=dict(
        style=th.MAP_STYLE_URL, center=center, zoom=zoom)))
    if not has_point:
        fig.add_annotation(text=t("case_no_location"), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                           font=dict(size=14, color=th.TEXT), bgcolor=th.PANEL, bordercolor=th.GRID, borderpad=6)
    # the style goes by URL (/map/style.json): an inline style object is re-applied by MapLibre on
    # every update of the figure and fails on the layers it already has ("layer already exists")
    return dcc.Graph(id=ids.CASE_MAP, className="case-map", config=th.MAP_CONFIG, figure=fig)


def fit_zoom(xs: list[float], ys: list[float], width_px: int = 320, height_px: int = 210) -> float:
    """The web-mercator zoom at which the box of these points fits ``width_px`` × ``height_px`` (the
    smallest map box, a phone's; MapLibre's world is 512 px wide at zoom 0)."""
    lon_span = max(max(xs) - min(xs), 0.002)
    lat_mid = math.radians((max(ys) + min(ys)) / 2)
    lat_span = max((max(ys) - min(ys)) / max(math.cos(lat_mid), 0.1), 0.002)
    z = min(math.log2(width_px * 360 / (512 * lon_span)), math.log2(height_px * 360 / (512 * lat_span)))
    return round(max(min(z, 15.0), 3.0), 2)


def outline(geometry: dict) -> tuple[list, list]:
    """A (Multi)Polygon's rings as one line (None between rings), 5 decimals."""
    polys = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
    lons, lats = [], []
    for poly in polys:
        for ring in poly:
            lons += [round(x, 5) for x, _ in ring] + [None]
            lats += [round(y, 5) for _, y in ring] + [None]
    return lons, lats


def not_found(incident_id) -> tuple:
    return ([html.P(t("case_not_found", id=incident_id), className="case-missing")], [], [], [], None)


# --------------------------------------------------------------------------- actions

def run_action(pending: dict | None, seen: dict | None, values: dict) -> tuple[str, str]:
    """Validate what the form needs, then one ``services.perform`` in one transaction.
    Answers (status, message), status ok | conflict | refused | incomplete; the panel reloads
    after ok and after a conflict (someone else's change is shown, nothing is overwritten)."""
    if not pending or not seen or pending.get("case") != seen.get("id"):
        return "incomplete", ""
    action = pending["action"]
    missing = _missing(action, values)
    if missing:
        return "incomplete", t(missing)
    service_action, result = as_service_action(action)
    try:
        photos = _photos(values) if "photos" in FIELDS.get(action, ()) else []
        done = commands.act(
            actor(), int(seen["id"]), service_action, version=int(seen["version"]), now=datetime.now(timezone.utc),
            outcome=values.get("outcome") if action == "resolve" else None, result=result,
            photos=photos,
            department=values.get("dept") if "dept" in FIELDS.get(action, ()) else None,
            note=(values.get("note") or "").strip(),
            reason=(values.get("reason") if action == "void"
                    else values.get("return_reason") if action == "return" else None),
            hours=float(values["hours"]) if action == "extend" and values.get("hours") else None,
            duplicate_of=int(values["dup"]) if action == "merge" and values.get("dup") else None,
            level=int(values["level"]) if action == "supervise" and values.get("level") else None,
            case_request_id=_as_id(pending.get("case_request")) if action in DECISIONS else None,
            request_id=pending.get("request_id"),
            **({"assisting": [str(x) for x in values.get("assisting") or [] if x]}
               if action in ("dispatch", "arbitrate") else {}),
            **({"override": "override" in (values.get("override") or [])} if action == "resolve" else {}))
    except StaleVersion as exc:
        when = local_time(exc.changed_at, "%H:%M:%S") if isinstance(exc.changed_at, datetime) else str(exc.changed_at)
        return "conflict", t("conflict", who=exc.changed_by or "?", when=when)
    except DomainError as exc:
        return "refused", t("refused", msg=exc.message)
    except (TypeError, ValueError, OverflowError):   # a crafted callback: hours, level or case id not numbers
        return "refused", t("refused", msg="hours, level and case numbers must be numbers")
    if done.request_status == "pending":
        return "ok", t("request_filed", kind=kind_label(done.request_kind), id=seen["id"])
    if done.request_status in ("approved", "rejected"):
        return "ok", t(f"request_{done.request_status}", kind=kind_label(done.request_kind), id=seen["id"],
                       state=state_label(done.state))
    return "ok", t("done_ok", action=act_label(action), id=seen["id"], state=state_label(done.state))


def _photos(values: dict) -> list[tuple[str, bytes]]:
    """The dcc.Upload's files as (name, bytes): its contents are data URLs ("data:…;base64,…").
    What they are is decided by the server from the bytes (incidents.media), not by these URLs."""
    contents, names = values.get("photos") or [], values.get("photo_names") or []
    if isinstance(contents, str):
        contents, names = [contents], [names] if isinstance(names, str) else names
    out = []
    for i, content in enumerate(contents):
        try:
            data = base64.b64decode(str(content).split(",", 1)[1], validate=True)
        except (IndexError, binascii.Error, ValueError):
            raise ValidationFailed(t("upload_bad"), field="photo") from None
        out.append((str(names[i]) if i < len(names) and names[i] else "", data))
    return out


def _as_id(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _missing(action: str, values: dict) -> str | None:
    need = NEEDS.get(action)
    if need == "note" and not (values.get("note") or "").strip():
        return "need_reason"
    if need == "complaint" and not (values.get("note") or "").strip():
        return "need_complaint"
    if need == "reason" and not values.get("reason"):
        return "need_reason"
    if need == "return_reason" and not values.get("return_reason"):
        return "need_return_reason"
    if need == "hours" and not _positive(values.get("hours")):
        return "need_hours"
    if need == "dept" and not values.get("dept"):
        return "need_department"
    if need == "dup" and not values.get("dup"):
        return "need_duplicate"
    return None


def _positive(value) -> bool:
    try:
        return float(value) > 0   # NaN is not
    except (TypeError, ValueError):
        return False


def form_state(action: str | None, seen: dict | None, target: int | None = None,
               case_request: int | None = None) -> tuple:
    """What the form shows for ``action``: (pending, form class, title, field classes…, dept, dup).
    ``case_request``: the request an approve / reject decides."""
    if not action or not seen:
        return (None, "case-form hidden", "", *(["form-field hidden"] * len(FORM_FIELDS)), no_update, None, "", None,
                no_update, None, [], [], no_update)
    fields = FIELDS.get(action, {"note"}) | {"note"}
    if action == "resolve" and seen.get("awaiting"):
        fields = fields | {"override"}     # assisting replies missing: the lead may resolve without them
    cls = ["form-field" if f in fields else "form-field hidden" for f in FORM_FIELDS]
    dept = seen.get("suggested") if action in ("dispatch", "arbitrate") else None
    pending = {"action": action, "case": seen["id"], "request_id": uuid.uuid4().hex}
    title = f"{act_label(action, action in (seen.get('request_only') or ()))} · #{seen['id']}"
    if action in DECISIONS:
        pending["case_request"] = case_request
        kind = (seen.get("requests") or {}).get(str(case_request), "")
        title = t("decide_title", action=act_label(action), kind=kind_label(kind), rid=case_request, id=seen["id"])
    return (pending, "case-form", title, *cls, dept, target, "", None, "", None, [], [],   # "": the last result goes
            ResolveOutcome.SOLVED.value)


# --------------------------------------------------------------------------- callbacks

#: the form's optional fields, shown or hidden by the action chosen
FORM_FIELDS = ("reason", "return_reason", "dept", "assisting", "override", "hours", "dup", "level", "photos",
               "outcome")
FIELD_OUTPUTS = [Output(f"case-field-{f}", "className") for f in FORM_FIELDS]


@dash.callback(Output(ids.CASE_BODY, "children"), Output(ids.CASE_ACTIONS, "children"),
               Output(f"{ids.CASE_BODY}-more", "children"), Output(f"{ids.CASE_MAP}-box", "children"),
               Output(ids.CASE_DATA, "data"), Output(ids.CASE_COUNTDOWN, "children"),
               Input(ids.CASE_ID, "data"), Input(ids.CASE_DONE, "data"))
def show_case(incident_id, _done):
    guard()
    if incident_id in (None, ""):
        return [], [], [], [], None, []
    d = load(incident_id)
    out = tuple(render(d) if d else not_found(incident_id)) + (clock(d),)
    if ctx.triggered_id == ids.CASE_DONE:
        # the same case reloads after an action or a conflict: keep its map (replacing a map that is
        # still drawing makes plotly fail on the purged graph); the point has not moved
        out = out[:3] + (no_update,) + out[4:]
    return out


@dash.callback(Output(ids.CASE_COUNTDOWN, "children", allow_duplicate=True), Input(ids.CASE_TICK, "n_intervals"),
               State(ids.CASE_DATA, "data"), prevent_initial_call=True)
def tick_clock(_n, seen):
    guard()
    if not seen or not seen.get("id"):
        return []
    return clock(cases.case_clock(datetime.now(timezone.utc), int(seen["id"]), calendar=reference.case_rules().calendar,
                                  role=str(current_user.role), department_code=current_user.department_code))


@dash.callback(Output(ids.CASE_PENDING, "data"), Output(ids.CASE_FORM, "className"),
               Output(ids.CASE_FORM_TITLE, "children"), *FIELD_OUTPUTS,
               Output(ids.CASE_DEPT, "value"), Output(ids.CASE_DUP, "value"), Output(ids.CASE_NOTE, "value"),
               Output(ids.CASE_HOURS, "value"), Output(ids.CASE_RESULT, "children", allow_duplicate=True),
               Output(ids.CASE_PHOTOS, "contents"),
               Output(ids.CASE_ASSISTING, "value"), Output(ids.CASE_OVERRIDE, "value"), Output(ids.CASE_OUTCOME, "value"),
               Input({"type": ids.CASE_ACT, "action": ALL}, "n_clicks"),
               Input({"type": ids.CASE_ACT_FORM, "action": ALL}, "n_clicks"),
               Input({"type": ids.CASE_MERGE, "target": ALL}, "n_clicks"),
               Input({"type": ids.CASE_DECIDE, "action": ALL, "request": ALL}, "n_clicks"),
               Input(ids.CASE_CANCEL, "n_clicks"), Input(ids.CASE_DATA, "data"),
               prevent_initial_call=True)
def choose_action(_acts, _forms, _merges, _decisions, _cancel, seen):
    guard()
    trig = ctx.triggered_id
    if not isinstance(trig, dict) or not ctx.triggered[0]["value"]:
        return form_state(None, seen)      # cancel, a new case, or fresh buttons: close the form
    if trig["type"] == ids.CASE_MERGE:
        return form_state("merge", seen, target=trig["target"])
    if trig["type"] == ids.CASE_DECIDE:
        return form_state(trig["action"], seen, case_request=trig["request"])
    if trig["type"] == ids.CASE_ACT and trig["action"] in ONE_CLICK:
        return form_state(None, seen)      # no form: queued in the browser with its undo (below)
    return form_state(trig["action"], seen)


@dash.callback(Output(ids.CASE_RESULT, "children"), Output(ids.CASE_DONE, "data"),
               Output(ids.CASE_RESULT, "className"),
               Input(ids.CASE_CONFIRM, "n_clicks"),
               State(ids.CASE_PENDING, "data"), State(ids.CASE_DATA, "data"), State(ids.CASE_DONE, "data"),
               State(ids.CASE_REASON, "value"), State(ids.CASE_NOTE, "value"), State(ids.CASE_HOURS, "value"),
               State(ids.CASE_DEPT, "value"), State(ids.CASE_DUP, "value"), State(ids.CASE_LEVEL, "value"),
               State(ids.CASE_PHOTOS, "contents"), State(ids.CASE_PHOTOS, "filename"),
               State(ids.CASE_RETURN_REASON, "value"), State(ids.CASE_ASSISTING, "value"),
               State(ids.CASE_OVERRIDE, "value"), State(ids.CASE_OUTCOME, "value"),
               prevent_initial_call=True)
def confirm_action(_n, pending, seen, done, reason, note, hours, dept, dup, level, photos, photo_names,
                   return_reason=None, assisting=None, override=None, outcome=None):
    guard_actions()
    status, message = run_action(pending, seen, dict(reason=reason, note=note, hours=hours, dept=dept,
                                                     dup=dup, level=level, photos=photos, photo_names=photo_names,
                                                     return_reason=return_reason, assisting=assisting,
                                                     override=override, outcome=outcome))
    reload = status in ("ok", "conflict")
    return message, (done or 0) + 1 if reload else no_update, f"case-result {status}"


@dash.callback(Output(ids.CASE_PHOTOS_LIST, "children"), Input(ids.CASE_PHOTOS, "contents"),
               State(ids.CASE_PHOTOS, "filename"), prevent_initial_call=True)
def show_chosen_photos(contents, names):
    guard()
    names = [] if not contents else [names] if isinstance(names, str) else list(names or [])
    return t("upload_chosen", n=len(names), names="、".join(str(n) for n in names)) if names else ""


def run_link(seen: dict | None, parent) -> tuple[str, str]:
    """One click on a candidate: this case (the child) linked to it (``link_repeat``), with the
    version the user saw; the same permission and rule as the API's."""
    if not seen or _as_id(parent) is None:
        return "incomplete", ""
    try:
        commands.act(actor(), int(seen["id"]), "link_repeat", version=int(seen["version"]),
                     now=datetime.now(timezone.utc), duplicate_of=int(parent))
    except StaleVersion as exc:
        when = local_time(exc.changed_at, "%H:%M:%S") if isinstance(exc.changed_at, datetime) else str(exc.changed_at)
        return "conflict", t("conflict", who=exc.changed_by or "?", when=when)
    except DomainError as exc:
        return "refused", t("refused", msg=exc.message)
    except (TypeError, ValueError, OverflowError):
        return "refused", t("refused", msg="case numbers must be numbers")
    return "ok", t("linked_ok", id=seen["id"], parent=int(parent))


def run_close_children(seen: dict | None, reason) -> tuple[str, str]:
    """The closed parent's open repeats closed with it under one reason (each its own event)."""
    if not seen:
        return "incomplete", ""
    if not str(reason or "").strip():
        return "incomplete", t("need_reason")
    try:
        closed, skipped = commands.close_children(actor(), int(seen["id"]), reason=str(reason).strip(),
                                                  now=datetime.now(timezone.utc))
    except DomainError as exc:
        return "refused", t("refused", msg=exc.message)
    more = t("close_children_skipped", ids="、".join(f"#{i}" for i in skipped)) if skipped else ""
    return "ok", t("close_children_done", n=len(closed), skipped=more)


@dash.callback(Output(ids.CASE_RESULT, "children", allow_duplicate=True),
               Output(ids.CASE_DONE, "data", allow_duplicate=True),
               Output(ids.CASE_RESULT, "className", allow_duplicate=True),
               Input({"type": ids.CASE_LINK_REPEAT, "target": ALL}, "n_clicks"),
               Input({"type": ids.CASE_CLOSE_CHILDREN, "case": ALL}, "n_clicks"),
               State({"type": ids.CASE_CHILDREN_REASON, "case": ALL}, "value"),
               State(ids.CASE_DATA, "data"), State(ids.CASE_DONE, "data"), prevent_initial_call=True)
def repeat_action(_links, _closes, reasons, seen, done):
    guard_actions()
    trig = ctx.triggered_id
    if not isinstance(trig, dict) or not ctx.triggered[0]["value"]:
        raise dash.exceptions.PreventUpdate
    if trig["type"] == ids.CASE_LINK_REPEAT:
        status, message = run_link(seen, trig["target"])
    else:
        status, message = run_close_children(seen, next((r for r in reasons or [] if r), ""))
    return message, (done or 0) + 1 if status in ("ok", "conflict") else no_update, f"case-result {status}"


def commit_one_click(queued: dict | None) -> tuple[str, str]:
    """Send a one-click action whose undo window is over: the same ``run_action`` as the form, with
    the version the user saw and the request id made when it was clicked (a retry or the page's
    last-moment send through the API applies it once). Anything but a one-click action is refused
    here: the others need what the form asks for."""
    if not isinstance(queued, dict) or queued.get("action") not in ONE_CLICK:
        return "refused", t("refused", msg="not a one-click action")
    try:
        case_id, version = int(queued["case"]), int(queued["version"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return "refused", t("refused", msg="case and version must be numbers")
    request_id = str(queued.get("request_id") or "")[:80] or None
    return run_action({"action": queued["action"], "case": case_id, "request_id": request_id},
                      {"id": case_id, "version": version}, {})


@dash.callback(Output(ids.CASE_RESULT, "children", allow_duplicate=True),
               Output(ids.CASE_DONE, "data", allow_duplicate=True),
               Output(ids.CASE_RESULT, "className", allow_duplicate=True),
               Input(ids.CASE_COMMIT, "data"), State(ids.CASE_DONE, "data"), prevent_initial_call=True)
def commit_action(queued, done):
    guard_actions()
    if not queued:
        raise dash.exceptions.PreventUpdate
    status, message = commit_one_click(queued)
    return message, (done or 0) + 1 if status in ("ok", "conflict") else no_update, f"case-result {status}"


# One click queues the action in the browser; 撤销 (or Z) drops it, nothing sent; the window's end,
# 立即生效, another case or another one-click action sends it (CASE_COMMIT → commit_action). The
# queued action is mirrored on window.cityopsQueued: leaving the page sends it through the API
# (assets/dispatch.js), with the same request id.
dash.clientside_callback(
    """function(acts, undo, now, tick, caseId, seen, queued) {
        const nu = window.dash_clientside.no_update, C = window.dash_clientside.callback_context;
        const trig = C.triggered || [];
        const ids = trig.filter(t => t.value || t.prop_id.indexOf('%(cid)s.') === 0).map(t => t.prop_id);
        const T = (seen && seen.texts) || {queued: '{action} #{id} · {s}', undone: '{action} #{id}'};
        let commit = nu, result = nu;
        let next = queued;
        const send = function () { if (next) { commit = Object.assign({}, next); next = null; } };
        if (ids.some(i => i.indexOf('"type":"%(act)s"') >= 0)) {
            const id = JSON.parse(ids.find(i => i.indexOf('"type":"%(act)s"') >= 0).split('.')[0]);
            if (!seen || (seen.one_click || []).indexOf(id.action) < 0) { return [nu, nu, nu, nu, nu, nu, nu]; }
            if (next && next.case === seen.id && next.action === id.action) { return [nu, nu, nu, nu, nu, nu, nu]; }
            send();
            const rid = (window.crypto && crypto.randomUUID) ? crypto.randomUUID().replace(/-/g, '')
                        : String(Date.now()) + Math.random().toString(16).slice(2);
            next = {action: id.action, case: seen.id, version: seen.version, request_id: rid,
                    label: (seen.labels || {})[id.action] || id.action, until: Date.now() + (Number(seen.undo_ms) || 0)};
            result = '';
        } else if (ids.indexOf('%(undo)s.n_clicks') >= 0) {
            if (next) { result = T.undone.replace('{action}', next.label).replace('{id}', next.case); next = null; }
        } else if (ids.indexOf('%(now)s.n_clicks') >= 0) {
            send();
        } else if (ids.indexOf('%(cid)s.data') >= 0) {
            if (next && next.case !== caseId) { send(); }
        } else if (next && Date.now() >= next.until) {
            send();
        }
        window.cityopsQueued = next;
        let text = '', bar = 'case-queued hidden';
        if (next) {
            const left = Math.max(1, Math.ceil((next.until - Date.now()) / 1000));
            text = T.queued.replace('{action}', next.label).replace('{id}', next.case).replace('{s}', left);
            bar = 'case-queued';
        }
        const actions = next && seen && next.case === seen.id ? 'case-actions queued' : 'case-actions';
        const same = JSON.stringify(next) === JSON.stringify(queued);
        return [same ? nu : next, commit, !next, text, bar, actions, result];
    }""" % {"act": ids.CASE_ACT, "undo": ids.CASE_UNDO, "now": ids.CASE_APPLY_NOW,
            "cid": ids.CASE_ID},
    Output(ids.CASE_QUEUED, "data"), Output(ids.CASE_COMMIT, "data"), Output(ids.CASE_UNDO_TICK, "disabled"),
    Output(ids.CASE_UNDO_TEXT, "children"), Output(ids.CASE_UNDO_BAR, "className"),
    Output(ids.CASE_ACTIONS, "className"), Output(ids.CASE_RESULT, "children", allow_duplicate=True),
    Input({"type": ids.CASE_ACT, "action": ALL}, "n_clicks"), Input(ids.CASE_UNDO, "n_clicks"),
    Input(ids.CASE_APPLY_NOW, "n_clicks"), Input(ids.CASE_UNDO_TICK, "n_intervals"), Input(ids.CASE_ID, "data"),
    State(ids.CASE_DATA, "data"), State(ids.CASE_QUEUED, "data"), prevent_initial_call=True)
