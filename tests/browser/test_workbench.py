"""The workbench in a real browser: a case goes through its whole life from the UI by three roles;
two users acting on one case see the conflict; a department sees only its own cases; a crafted
callback POST from a viewer changes nothing. Screenshots at 1920×1080 in tests/browser/artifacts/."""
from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.browser.conftest import ARTIFACTS

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


def _state_chip(page) -> str:
    return page.locator("#case-body .state-chip").inner_text()


def test_a_case_goes_from_report_to_closed_through_the_workbench(new_page, login, department):
    disp = new_page(1920, 1080)
    login(disp, "dispatcher", "/login?next=/dispatch")
    case = _create_case(disp, "浏览器测试：人行道积水")
    cid = case["id"]
    _open_in_queue(disp, cid)
    assert "13812345678" in disp.locator("#case-body .reporter").inner_text()  # a dispatcher sees the reporter
    _act(disp, "r", note="情况属实，予以立案")
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
    _act(dept, "s")
    dept.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '处置中'")
    _act(dept, "f", note="已清理积水，恢复通行")
    dept.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '已反馈'")
    assert dept.errors == [], "\n".join(dept.errors)

    insp = new_page(1920, 1080)
    login(insp, "inspector", f"/login?next=/incidents/{cid}")
    insp.wait_for_selector(f"#case-body .case-title:has-text('#{cid}')")
    _act(insp, "p", note="现场核查通过")
    insp.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '已结案'")
    timeline = insp.locator(".timeline").inner_text()
    for label in ("上报", "立案", "派遣", "签收", "处置反馈", "核查通过"):
        assert label in timeline, (label, timeline)
    for actor in ("bt-dispatcher", "bt-department", "bt-inspector"):
        assert actor in timeline
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
    _act(a, "r")                                  # the dispatcher registers first
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
             ("case-dept", "value", OTHER_DEPARTMENT), ("case-dup", "value", None), ("case-level", "value", 1)]
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
