"""签收 and 退单 in a real browser (issue 14 items 1 and 2): a dispatched case shows its 签收时限
with its own light in the case panel and the queue's 签收 column; the department returns it with a
reason code chosen from the pack's list; after two returns the dispatcher is offered 审定派遣.
Screenshots at 1920×1080 in tests/browser/artifacts/."""
from __future__ import annotations

import json

from tests.browser.conftest import ARTIFACTS
from tests.browser.test_workbench import _case, _create_case, _open_in_queue


def _api_act(page, cid: int, **body) -> dict:
    version = _case(page, cid)["version"]
    resp = page.request.post(f"/api/v1/incidents/{cid}/actions", data=json.dumps({"version": version, **body}),
                             headers={"Content-Type": "application/json"})
    assert resp.status == 200, resp.text()
    return resp.json()


def _choose(page, dropdown: str, label: str) -> None:
    page.click(f"{dropdown}")
    page.get_by_role("option", name=label).click()


def test_a_department_returns_a_case_with_a_reason_code_and_the_third_dispatch_is_an_arbitration(
        new_page, login, department):
    disp = new_page(1920, 1080)
    login(disp, "dispatcher", "/login?next=/dispatch")
    cid = _create_case(disp, "浏览器测试：退单与审定")["id"]
    _api_act(disp, cid, action="register")
    _api_act(disp, cid, action="dispatch", department=department["code"])

    dept = new_page(1920, 1080)
    login(dept, "department", "/login?next=/dispatch")
    _open_in_queue(dept, cid)
    panel = dept.locator("#case-body").inner_text()
    assert "签收时限" in panel and "待签收" in panel
    assert dept.locator(f"#dispatch-grid .ag-row[row-id='{cid}'] [col-id='sign_light']").inner_text() == "◆"
    dept.click("#case-actions .act-return")
    dept.wait_for_selector("#case-form:not(.hidden)")
    assert dept.locator("#case-field-return_reason").is_visible()
    dept.click("#case-confirm")
    dept.wait_for_selector("#case-result:has-text('请选择退单原因')")
    _choose(dept, "#case-return-reason", "属地不符")
    dept.fill("#case-note", "该路段属上城区")
    dept.wait_for_timeout(300)
    dept.screenshot(path=str(ARTIFACTS / "sign_for_return_form_1920.png"))
    dept.click("#case-confirm")
    dept.wait_for_selector("#case-result:has-text('已完成：退单')")
    assert dept.errors == [], "\n".join(dept.errors)

    _api_act(disp, cid, action="dispatch", department=department["code"])
    _api_act(dept, cid, action="return", reason="ownership")
    _open_in_queue(disp, cid)
    disp.wait_for_selector("#case-actions .act-arbitrate")
    assert disp.locator("#case-actions .act-dispatch").count() == 0
    assert "第 2 次退单" in disp.locator(".timeline").inner_text()
    disp.click("#case-actions .act-arbitrate")
    disp.wait_for_selector("#case-form:not(.hidden)")
    disp.fill("#case-note", "经审定由本部门办理")
    disp.click("#case-confirm")
    disp.wait_for_selector("#case-result:has-text('已完成：审定派遣')")
    disp.wait_for_selector("#case-body:has-text('已审定，不可退单')")
    disp.wait_for_timeout(500)
    disp.screenshot(path=str(ARTIFACTS / "sign_for_arbitrated_1920.png"))
    assert _case(disp, cid)["arbitrated"] is True
    assert disp.errors == [], "\n".join(disp.errors)
