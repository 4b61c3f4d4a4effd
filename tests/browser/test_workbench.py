"""The workbench in a real browser: a case goes through its whole life from the UI by three roles;
two users acting on one case see the conflict; a department sees only its own cases; a crafted
callback POST from a viewer changes nothing. Screenshots at 1920×1080 in tests/browser/artifacts/."""
from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.browser.conftest import ARTIFACTS, UNDO_SECONDS, hold_undo_window

XIHU = {"lon": 120.10, "lat": 30.27}      # inside 西湖区: rule 134 routes E0101 there to 330106-CGJ
OTHER_DEPARTMENT = "HZ-CGJ"


def _create_case(page, title: str, **extra) -> dict:
    """A new case through the API, as the signed-in user of ``page``."""
    body = {"source": "bt", "external_id": uuid.uuid4().hex, "channel": "12345", "title": title,
            "category_code": "E0101", "address": "西湖区文三路 1 号", "reporter_name": "王小明",
            "reporter_phone": "13812345678", **XIHU, **extra}
    resp = page.request.post("/api/v1/incidents", data=json.dumps(body),
                             headers={"Content-Type": "application/json"})
    assert resp.status == 201, resp.text()
    return resp.json()


def _case(page, case_id: int) -> dict:
    resp = page.request.get(f"/api/v1/incidents/{case_id}")
    assert resp.status == 200, resp.text()
    return resp.json()


def _open_in_queue(page, case_id: int) -> None:
    """Find the case with the search box and open it with the keyboard (focus the row, Enter)."""
    page.wait_for_selector("#dispatch-grid .ag-row")
    page.click("label:has(input[value='all_open'])")
    page.fill("#dispatch-search", f"#{case_id}")
    page.press("#dispatch-search", "Enter")
    row = page.locator(f"#dispatch-grid .ag-row[row-id='{case_id}']")
    row.wait_for()
    page.wait_for_function("() => (document.querySelector('#dispatch-total')||{}).innerText === '共 1 件'")
    row.locator("[col-id='title']").click()
    page.wait_for_selector(f"#case-body .case-title:has-text('#{case_id}')")


def _act(page, key: str, *, note: str | None = None, expect: str = "已完成：") -> None:
    """Press the action's shortcut key, fill the note, confirm, wait for the result."""
    page.keyboard.press(key)
    page.wait_for_selector("#case-form:not(.hidden)")
    if note is not None:
        page.fill("#case-note", note)
    page.click("#case-confirm")
    page.wait_for_selector(f"#case-result:has-text('{expect}')")


def _one_click(page, key: str, *, expect: str = "已完成：") -> None:
    """Press a one-click action's key: no form, the undo bar counts down, then the action is applied."""
    page.keyboard.press(key)
    page.wait_for_selector("#case-queued-bar:not(.hidden)")
    assert page.locator("#case-form.hidden").count() == 1, "a one-click action must not open the form"
    page.wait_for_selector(f"#case-result:has-text('{expect}')")


def _state_chip(page) -> str:
    return page.locator("#case-body .state-chip").inner_text()


def test_a_case_goes_from_report_to_closed_through_the_workbench(new_page, login, department):
    disp = new_page(1920, 1080)
    login(disp, "dispatcher", "/login?next=/dispatch")
    case = _create_case(disp, "浏览器测试：人行道积水")
    cid = case["id"]
    _open_in_queue(disp, cid)
    assert "13812345678" in disp.locator("#case-body .reporter").inner_text()  # a dispatcher sees the reporter
    _one_click(disp, "r")
    disp.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '立案'")
    # dispatch: the routing suggestion is preselected and explained
    assert department["name"] in disp.locator(".case-section").first.inner_text()
    disp.keyboard.press("d")
    disp.wait_for_selector("#case-form:not(.hidden)")
    disp.wait_for_timeout(300)
    disp.screenshot(path=str(ARTIFACTS / "workbench_queue_panel_1920.png"))
    assert department["name"] in disp.locator("#case-field-dept").inner_text()
    disp.click("#case-confirm")
    disp.wait_for_selector("#case-result:has-text('已完成：派遣')")
    assert _case(disp, cid)["department"]["code"] == department["code"]
    disp.fill("#dispatch-search", "")                    # back to the whole queue: the panel stays
    disp.press("#dispatch-search", "Enter")
    disp.wait_for_function("() => (document.querySelector('#dispatch-total')||{}).innerText !== '共 1 件'")
    disp.wait_for_selector("#dispatch-grid .ag-center-cols-container .ag-row:nth-child(5)")
    disp.wait_for_timeout(500)
    disp.screenshot(path=str(ARTIFACTS / "workbench_queue_full_1920.png"))
    assert disp.errors == [], "\n".join(disp.errors)

    dept = new_page(1920, 1080)
    login(dept, "department", "/login?next=/dispatch")
    _open_in_queue(dept, cid)
    assert "13812345678" not in dept.locator("#case-body .reporter").inner_text()  # masked for departments
    _one_click(dept, "s")
    dept.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '处置中'")
    _act(dept, "f", note="已清理积水，恢复通行")
    dept.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '已反馈'")
    assert dept.errors == [], "\n".join(dept.errors)

    insp = new_page(1920, 1080)
    login(insp, "inspector", f"/login?next=/incidents/{cid}")
    insp.wait_for_selector(f"#case-body .case-title:has-text('#{cid}')")
    _one_click(insp, "p")
    insp.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '已结案'")
    timeline = insp.locator(".timeline").inner_text()
    for label in ("上报", "立案", "派遣", "签收", "处置反馈", "核查通过"):
        assert label in timeline, (label, timeline)
    # people and their department (or role), not bare login names
    for actor in ("bt-dispatcher（派遣员）", f"bt-department（{department['name']}）", "bt-inspector（监督员）"):
        assert actor in timeline, (actor, timeline)
    assert "已清理积水" in timeline
    insp.wait_for_timeout(600)  # the small map draws
    insp.screenshot(path=str(ARTIFACTS / "workbench_incident_page_1920.png"), full_page=True)
    detail = _case(disp, cid)
    assert detail["state"] == "closed"
    assert [e["action"] for e in detail["timeline"]] == ["report", "register", "dispatch", "sign", "resolve",
                                                          "verify_pass"]
    assert insp.errors == [], "\n".join(insp.errors)


def test_the_second_of_two_users_acting_on_one_case_sees_who_changed_it_and_the_view_reloads(new_page, login):
    a = new_page()
    login(a, "dispatcher", "/login?next=/dispatch")
    cid = _create_case(a, "浏览器测试：并发处理")["id"]
    b = new_page()
    login(b, "leader", f"/login?next=/incidents/{cid}")
    b.wait_for_selector(f"#case-body .case-title:has-text('#{cid}')")
    a.goto(f"/incidents/{cid}")
    a.wait_for_selector(f"#case-body .case-title:has-text('#{cid}')")
    _one_click(a, "r")                            # the dispatcher registers first
    b.keyboard.press("g")                         # the leader, still on version 1, supervises
    b.wait_for_selector("#case-form:not(.hidden)")
    b.click("#case-confirm")
    b.wait_for_selector("#case-result.conflict")
    msg = b.locator("#case-result").inner_text()
    assert "bt-dispatcher" in msg and re.search(r"\d{2}:\d{2}:\d{2}", msg), msg
    b.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '立案'")
    after = _case(a, cid)
    assert after["version"] == 2 and after["supervise_level"] == 0, "the stale action must change nothing"
    assert a.errors == [] and b.errors == [], "\n".join(a.errors + b.errors)


def test_a_department_user_cannot_see_another_departments_case(new_page, login):
    disp = new_page()
    login(disp, "dispatcher", "/login?next=/dispatch")
    cid = _create_case(disp, "浏览器测试：他部门案件")["id"]
    for action, extra in (("register", {}), ("dispatch", {"department": OTHER_DEPARTMENT})):
        version = _case(disp, cid)["version"]
        r = disp.request.post(f"/api/v1/incidents/{cid}/actions", headers={"Content-Type": "application/json"},
                              data=json.dumps({"action": action, "version": version, **extra}))
        assert r.status == 200, r.text()

    dept = new_page()
    login(dept, "department", "/login?next=/dispatch")
    dept.wait_for_selector("#dispatch-grid .ag-row")
    dept.click("label:has(input[value='all_open'])")
    dept.fill("#dispatch-search", f"#{cid}")
    dept.press("#dispatch-search", "Enter")
    dept.wait_for_function("() => (document.querySelector('#dispatch-total')||{}).innerText === '共 0 件'")
    assert dept.locator(f"#dispatch-grid .ag-row[row-id='{cid}']").count() == 0
    dept.goto(f"/incidents/{cid}")
    dept.wait_for_selector(".case-missing")
    assert "未找到" in dept.locator(".case-missing").inner_text()
    assert "浏览器测试" not in dept.locator(".page").inner_text()
    assert dept.request.get(f"/api/v1/incidents/{cid}").status == 404
    assert dept.errors == [], "\n".join(dept.errors)


def _dispatch_post(page, cid: int, version: int):
    """The confirm_action callback's request, as the browser would send it."""
    outputs = [{"id": "case-result", "property": "children"}, {"id": "case-done", "property": "data"},
               {"id": "case-result", "property": "className"}]
    state = [("case-pending", "data", {"action": "dispatch", "case": cid, "request_id": uuid.uuid4().hex}),
             ("case-data", "data", {"id": cid, "version": version}), ("case-done", "data", 0),
             ("case-reason", "value", None), ("case-note", "value", "crafted"), ("case-hours", "value", None),
             ("case-dept", "value", OTHER_DEPARTMENT), ("case-dup", "value", None), ("case-level", "value", 1),
             ("case-photos", "contents", None), ("case-photos", "filename", None),
             ("case-return-reason", "value", None), ("case-assisting", "value", None), ("case-override", "value", None),
             ("case-outcome", "value", "solved")]
    body = {"output": "..case-result.children...case-done.data...case-result.className..", "outputs": outputs,
            "inputs": [{"id": "case-confirm", "property": "n_clicks", "value": 1}],
            "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
            "changedPropIds": ["case-confirm.n_clicks"]}
    return page.request.post("/_dash-update-component", data=json.dumps(body),
                             headers={"Content-Type": "application/json"})


def test_a_crafted_dispatch_callback_from_a_viewer_is_refused_and_changes_nothing(new_page, login):
    disp = new_page()
    login(disp, "dispatcher", "/login?next=/dispatch")
    cid = _create_case(disp, "浏览器测试：伪造请求")["id"]
    r = disp.request.post(f"/api/v1/incidents/{cid}/actions", headers={"Content-Type": "application/json"},
                          data=json.dumps({"action": "register", "version": 1}))
    assert r.status == 200
    before = _case(disp, cid)

    viewer = new_page()
    login(viewer, "viewer", "/login?next=/wall")
    resp = _dispatch_post(viewer, cid, before["version"])
    assert resp.status == 403, (resp.status, resp.text())
    after = _case(disp, cid)
    assert (after["version"], after["state"]) == (before["version"], "registered")

    # the same request from a dispatcher's session does dispatch: the crafted request was the real one
    ok = _dispatch_post(disp, cid, before["version"])
    assert ok.status == 200, ok.text()
    assert _case(disp, cid)["state"] == "dispatched"


def test_a_department_requests_an_extension_and_a_dispatcher_approves_it_in_the_approval_view(
        new_page, login, department):
    import os
    from datetime import datetime
    disp = new_page(1920, 1080)
    login(disp, "dispatcher", "/login?next=/dispatch")
    cid = _create_case(disp, "浏览器测试：延期申请")["id"]
    for body in ({"action": "register", "version": 1}, {"action": "dispatch", "version": 2,
                                                          "department": department["code"]}):
        r = disp.request.post(f"/api/v1/incidents/{cid}/actions", data=json.dumps(body),
                              headers={"Content-Type": "application/json"})
        assert r.status == 200, r.text()
    before = _case(disp, cid)

    dept = new_page(1920, 1080)
    login(dept, "department", "/login?next=/dispatch")
    _open_in_queue(dept, cid)
    assert "申请延期" in dept.locator("#case-actions .act-extend").inner_text()
    assert "申请挂账" in dept.locator("#case-actions .act-suspend").inner_text()
    dept.keyboard.press("e")
    dept.wait_for_selector("#case-form:not(.hidden)")
    assert "申请延期" in dept.locator("#case-form-title").inner_text()
    dept.fill("#case-hours", "8")
    dept.fill("#case-note", "需协调燃气公司迁改管线")
    dept.click("#case-confirm")
    dept.wait_for_selector("#case-result:has-text('已提交延期申请')")
    dept.wait_for_selector("#case-body .case-requests .req-pending")
    assert "等待派遣员审批" in dept.locator("#case-body .case-requests").inner_text()
    assert dept.locator("#case-body .req-buttons").count() == 0         # a department cannot decide
    assert dept.locator("#case-actions .act-extend").count() == 0        # one pending request of a kind
    shots = os.environ.get("CITYOPS_SHOTS_DIR")       # extra screenshots for a reviewer, outside the repo
    if shots:
        dept.screenshot(path=f"{shots}/approvals_department_request_1920.png")
    mid = _case(dept, cid)
    assert (mid["deadline"], mid["counters"]["extensions"]) == (before["deadline"], 0)

    # the dispatcher's 待审批 view lists it with the request
    disp.goto("/dispatch")
    disp.wait_for_selector("#dispatch-grid .ag-row")
    disp.click("label:has(input[value='pending_approval'])")
    row = disp.locator(f"#dispatch-grid .ag-row[row-id='{cid}']")
    row.wait_for()
    assert row.locator("[col-id='request']").inner_text().strip() == "延期 +8 工时"
    row.locator("[col-id='title']").click()
    disp.wait_for_selector("#case-body .req-buttons .act-approve")
    disp.wait_for_timeout(400)
    for path in [ARTIFACTS / "workbench_pending_approval_1920.png"] + (
            [f"{shots}/approvals_pending_view_1920.png"] if shots else []):
        disp.screenshot(path=str(path))
    disp.click("#case-body .req-buttons .act-approve")
    disp.wait_for_selector("#case-form:not(.hidden)")
    assert "批准 · 延期申请" in disp.locator("#case-form-title").inner_text()
    disp.fill("#case-note", "同意延期")
    disp.click("#case-confirm")
    disp.wait_for_selector("#case-result:has-text('已批准延期申请')")
    disp.wait_for_selector("#case-body .case-requests .req-approved")
    if shots:
        disp.screenshot(path=f"{shots}/approvals_after_approve_1920.png")
    after = _case(disp, cid)
    assert after["counters"]["extensions"] == 1 and after["counters"]["extension_hours"] == 8.0
    assert datetime.fromisoformat(after["deadline"]) > datetime.fromisoformat(before["deadline"])
    assert after["requests"][0]["status"] == "approved" and after["requests"][0]["decided_by"] == "bt-dispatcher"
    assert [e["action"] for e in after["timeline"]][-2:] == ["request", "approve"]
    assert disp.errors == [] and dept.errors == [], "\n".join(disp.errors + dept.errors)


# --------------------------------------------------------------------------- the workbench at one click

COUNT_CLICKS = """(() => {
    // what the user does, not what scripts do: trusted clicks and key presses outside text fields
    window.__taps = [];
    const typing = el => el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.isContentEditable);
    document.addEventListener('click', e => {
        if (!e.isTrusted) { return; }
        const el = e.target.closest('button, a, .ag-row, label, input') || e.target;
        const kind = el.closest('.case-actions, .form-buttons, .req-buttons, #case-queued-bar') ? 'action' : 'other';
        window.__taps.push({kind: kind, what: (el.id || el.className || el.tagName) + ''});
    }, true);
    document.addEventListener('keydown', e => {
        if (!e.isTrusted || typing(e.target) || e.key.length !== 1) { return; }
        window.__taps.push({kind: document.querySelector('.case-actions button[data-key="' + e.key.toLowerCase() + '"]')
                                   ? 'action' : 'other', what: 'key ' + e.key});
    }, true);
})()"""


def _taps(page) -> list[dict]:
    """The user's clicks and key presses since the last call."""
    return page.evaluate("() => { const t = window.__taps || []; window.__taps = []; return t; }")


def _open_from_todo(page, case_id: int) -> None:
    """Open a case from 我的待办 as listed, by clicking its row (no search)."""
    row = page.locator(f"#dispatch-grid .ag-center-cols-container .ag-row[row-id='{case_id}']")
    row.wait_for()
    row.locator("[col-id='title']").click()
    page.wait_for_selector(f"#case-body .case-title:has-text('#{case_id}')")


def test_a_one_click_action_waits_out_its_undo_window_and_an_undo_writes_nothing(new_page, login):
    disp = new_page(1920, 1080)
    login(disp, "dispatcher", "/login?next=/dispatch")
    cid = _create_case(disp, "浏览器测试：单击与撤销")["id"]
    _open_in_queue(disp, cid)
    with hold_undo_window(disp):                                  # the clicks below land inside the window
        disp.locator("#case-actions .act-register").click()       # one click, no form
        disp.wait_for_selector("#case-queued-bar:not(.hidden)")
        assert disp.locator("#case-form.hidden").count() == 1
        assert f"立案 #{cid} · {UNDO_SECONDS:g} 秒后生效" in disp.locator("#case-queued-text").inner_text()
        assert disp.locator("#case-actions.queued").count() == 1    # no second action while it waits
        disp.wait_for_timeout(300)
        disp.screenshot(path=str(ARTIFACTS / "workbench_one_click_undo_1920.png"))
        disp.locator("#case-undo").click()
        disp.wait_for_selector("#case-result:has-text('已撤销')")
        disp.wait_for_selector("#case-queued-bar.hidden", state="attached")
    disp.wait_for_timeout((UNDO_SECONDS + 1) * 1000)              # past the window: still nothing sent
    after = _case(disp, cid)
    assert (after["state"], after["version"]) == ("reported", 1)
    assert [e["action"] for e in after["timeline"]] == ["report"], "an undone action leaves no event"

    # Z undoes too; then the same key again is applied when its window ends, once
    with hold_undo_window(disp):
        disp.keyboard.press("r")
        disp.wait_for_selector("#case-queued-bar:not(.hidden)")
        disp.keyboard.press("z")
        disp.wait_for_selector("#case-result:has-text('已撤销')")
    _one_click(disp, "r")
    disp.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '立案'")
    done = _case(disp, cid)
    assert (done["state"], done["version"]) == ("registered", 2)
    assert [e["action"] for e in done["timeline"]] == ["report", "register"]
    assert disp.errors == [], "\n".join(disp.errors)


def test_a_one_click_action_is_sent_at_once_when_the_user_moves_on_to_another_case(new_page, login):
    disp = new_page(1920, 1080)
    login(disp, "dispatcher", "/login?next=/dispatch")
    first = _create_case(disp, "浏览器测试：移开即生效 A")["id"]
    second = _create_case(disp, "浏览器测试：移开即生效 B")["id"]
    _open_in_queue(disp, first)
    with hold_undo_window(disp):                                  # sent by moving on, never by the window's end
        disp.keyboard.press("r")
        disp.wait_for_selector("#case-queued-bar:not(.hidden)")
        _open_in_queue(disp, second)                              # another case: the first is sent now
        assert disp.locator("#case-queued-bar.hidden").count() == 1
        disp.wait_for_selector(f"#case-result:has-text('已完成：立案 #{first}')")
    assert _case(disp, first)["state"] == "registered"
    assert _case(disp, second)["state"] == "reported"
    # leaving the page inside the window: sent through the API with the same request id
    with hold_undo_window(disp):
        disp.keyboard.press("r")
        disp.wait_for_selector("#case-queued-bar:not(.hidden)")
        disp.goto("/wall")
    disp.wait_for_selector("#wall-root, .wall, body")
    for _ in range(100):                                          # the request sent as the page went away
        got = _case(disp, second)
        if got["state"] == "registered":
            break
        disp.wait_for_timeout(100)
    assert got["state"] == "registered" and [e["action"] for e in got["timeline"]].count("register") == 1
    assert disp.errors == [], "\n".join(disp.errors)


def _commit_post(page, cid: int, version: int, action: str):
    """The commit_action callback's request, as the browser would send it."""
    outputs = [{"id": "case-result", "property": "children"}, {"id": "case-done", "property": "data"},
               {"id": "case-result", "property": "className"}]
    deps = page.request.get("/_dash-dependencies").json()
    key = next(d["output"] for d in deps if any(i["id"] == "case-commit" for i in d["inputs"]))
    body = {"output": key, "outputs": outputs,
            "inputs": [{"id": "case-commit", "property": "data",
                        "value": {"action": action, "case": cid, "version": version, "request_id": uuid.uuid4().hex}}],
            "state": [{"id": "case-done", "property": "data", "value": 0}],
            "changedPropIds": ["case-commit.data"]}
    return page.request.post("/_dash-update-component", data=json.dumps(body),
                             headers={"Content-Type": "application/json"})


def test_a_crafted_one_click_commit_is_checked_on_the_server(new_page, login):
    disp = new_page()
    login(disp, "dispatcher", "/login?next=/dispatch")
    cid = _create_case(disp, "浏览器测试：伪造单击")["id"]
    viewer = new_page()
    login(viewer, "viewer", "/login?next=/wall")
    assert _commit_post(viewer, cid, 1, "register").status == 403
    dept = new_page()
    login(dept, "department", "/login?next=/dispatch")
    refused = _commit_post(dept, cid, 1, "register")                # a department may not register
    assert refused.json()["response"]["case-result"]["className"] == "case-result refused", refused.text()
    void = _commit_post(disp, cid, 1, "void")                      # void needs its reason: never one click
    assert void.json()["response"]["case-result"]["className"] == "case-result refused", void.text()
    assert (_case(disp, cid)["state"], _case(disp, cid)["version"]) == ("reported", 1)
    ok = _commit_post(disp, cid, 1, "register")
    assert "已完成" in ok.json()["response"]["case-result"]["children"], ok.text()
    assert _case(disp, cid)["state"] == "registered"


def test_a_full_lifecycle_by_three_users_takes_one_action_click_per_step_that_needs_no_input(
        new_page, login, department):
    """Dispatcher registers and dispatches, the department signs and resolves, the inspector verifies;
    every click and key press of the users is counted. A step that needs no input (立案, 签收, 核查通过)
    costs one action click or key; the department finds the new case at the top of 我的待办, flagged 新."""
    steps: dict[str, list[dict]] = {}
    disp = new_page(1920, 1080)
    disp.add_init_script(COUNT_CLICKS)
    login(disp, "dispatcher", "/login?next=/dispatch")
    cid = _create_case(disp, "浏览器测试：三人全流程计数")["id"]
    _open_in_queue(disp, cid)
    _taps(disp)
    disp.locator("#case-actions .act-register").click()
    disp.wait_for_selector("#case-result:has-text('已完成：立案')")
    disp.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '立案'")
    steps["register"] = _taps(disp)
    disp.locator("#case-actions .act-dispatch").click()            # needs input: the department (suggested)
    disp.wait_for_selector("#case-form:not(.hidden)")
    disp.click("#case-confirm")
    disp.wait_for_selector("#case-result:has-text('已完成：派遣')")
    steps["dispatch"] = _taps(disp)
    assert _case(disp, cid)["department"]["code"] == department["code"]

    dept = new_page(1920, 1080)
    dept.add_init_script(COUNT_CLICKS)
    login(dept, "department", "/login?next=/dispatch")
    views = dept.locator("#dispatch-view label").all_inner_texts()
    assert "待立案" not in views and "待派遣" not in views and "待核查" not in views, views
    row = dept.locator(f"#dispatch-grid .ag-center-cols-container .ag-row[row-id='{cid}']")
    row.wait_for()
    assert row.locator(".case-tag.t-new").count() == 1, "a newly dispatched case is flagged 新"
    index = int(row.get_attribute("row-index"))
    above = dept.locator("#dispatch-grid .ag-center-cols-container .ag-row").evaluate_all(
        f"(rows, i) => rows.filter(r => +r.getAttribute('row-index') < i).map(r => r.className)", index)
    assert all("row-attention" in c or "row-new" in c for c in above), "only 紧急/督办 and newer cases come first"
    _taps(dept)
    _open_from_todo(dept, cid)
    steps["open (department)"] = _taps(dept)
    dept.locator("#case-actions .act-sign").click()
    dept.wait_for_selector("#case-result:has-text('已完成：签收')")
    dept.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '处置中'")
    steps["sign"] = _taps(dept)
    dept.locator("#case-actions .act-resolve").click()              # needs input: what was done
    dept.wait_for_selector("#case-form:not(.hidden)")
    dept.fill("#case-note", "已清理，恢复通行")
    dept.click("#case-confirm")
    dept.wait_for_selector("#case-result:has-text('已完成：处置反馈')")
    steps["resolve"] = _taps(dept)

    insp = new_page(1920, 1080)
    insp.add_init_script(COUNT_CLICKS)
    login(insp, "inspector", "/login?next=/dispatch")
    views = insp.locator("#dispatch-view label").all_inner_texts()
    assert "待立案" not in views and "待派遣" not in views, views
    _open_in_queue(insp, cid)
    _taps(insp)
    insp.keyboard.press("p")
    insp.wait_for_selector("#case-result:has-text('已完成：核查通过')")
    steps["verify_pass"] = _taps(insp)

    actions = {k: [t for t in v if t["kind"] == "action"] for k, v in steps.items()}
    for step in ("register", "sign", "verify_pass"):               # no input needed: one click or key
        assert len(actions[step]) == 1 and len(steps[step]) == 1, (step, steps[step])
    assert len(actions["dispatch"]) == 2 and len(actions["resolve"]) == 2, actions
    assert len(steps["open (department)"]) == 1, steps["open (department)"]   # found without a search
    final = _case(disp, cid)
    assert final["state"] == "closed"
    assert [e["action"] for e in final["timeline"]] == ["report", "register", "dispatch", "sign", "resolve",
                                                         "verify_pass"]
    assert disp.errors == [] and dept.errors == [] and insp.errors == [], "\n".join(disp.errors + dept.errors + insp.errors)


def test_shift_and_the_key_of_a_one_click_action_opens_its_form_for_a_note(new_page, login, department):
    disp = new_page()
    login(disp, "dispatcher", "/login?next=/dispatch")
    cid = _create_case(disp, "浏览器测试：签收附说明")["id"]
    for body in ({"action": "register", "version": 1}, {"action": "dispatch", "version": 2,
                                                          "department": department["code"]}):
        assert disp.request.post(f"/api/v1/incidents/{cid}/actions", data=json.dumps(body),
                                 headers={"Content-Type": "application/json"}).status == 200
    dept = new_page()
    login(dept, "department", f"/login?next=/incidents/{cid}")
    dept.wait_for_selector(f"#case-body .case-title:has-text('#{cid}')")
    dept.keyboard.press("Shift+S")
    dept.wait_for_selector("#case-form:not(.hidden)")
    assert "签收" in dept.locator("#case-form-title").inner_text()
    assert dept.locator("#case-queued-bar.hidden").count() == 1        # the form, not the undo window
    dept.fill("#case-note", "已联系现场人员")
    dept.click("#case-confirm")
    dept.wait_for_selector("#case-result:has-text('已完成：签收')")
    last = _case(dept, cid)["timeline"][-1]
    assert (last["action"], last["note"]) == ("sign", "已联系现场人员")
    assert dept.errors == [], "\n".join(dept.errors)
