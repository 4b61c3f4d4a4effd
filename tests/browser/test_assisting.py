"""主办 / 协办 in a real browser (issue 14 item 3): the dispatcher names an assisting department in
the dispatch form; the assisting department finds its part in 我的待办 marked 协办 and replies from
it; the case page lists the lead and the assisting department with its state. Screenshots of the
dispatch form and the case page at 1920×1080 in tests/browser/artifacts/."""
from __future__ import annotations

from tests.browser.conftest import ARTIFACTS
from tests.browser.test_sign_for import _api_act, _choose
from tests.browser.test_workbench import _case, _create_case, _open_in_queue

LEAD_NAME = "杭州市城市管理局"


def test_a_dispatch_names_an_assisting_department_which_replies_from_its_queue(new_page, login, department):
    disp = new_page(1920, 1080)
    login(disp, "dispatcher", "/login?next=/dispatch")
    cid = _create_case(disp, "浏览器测试：主办与协办")["id"]
    _api_act(disp, cid, action="register")
    _open_in_queue(disp, cid)
    disp.click("#case-actions .act-dispatch")
    disp.wait_for_selector("#case-form:not(.hidden)")
    disp.locator("#case-field-assisting").wait_for(state="visible")
    assert not disp.locator("#case-field-override").is_visible()
    _choose(disp, "#case-dept", LEAD_NAME)
    _choose(disp, "#case-assisting", department["name"])
    disp.click("#case-form-title")               # close the list (Esc would cancel the form)
    disp.fill("#case-note", "请住建、属地协同")
    disp.wait_for_timeout(300)
    disp.screenshot(path=str(ARTIFACTS / "assisting_dispatch_form_1920.png"))
    disp.click("#case-confirm")
    disp.wait_for_selector("#case-result:has-text('已完成：派遣')")
    disp.wait_for_selector("#case-body .case-parts")
    assert department["name"] in disp.locator("#case-body .case-parts").inner_text()
    got = _case(disp, cid)
    assert got["lead_department"]["name"] == LEAD_NAME
    assert [p["department"]["code"] for p in got["assisting"]] == [department["code"]]
    assert disp.errors == [], "\n".join(disp.errors)

    dept = new_page(1920, 1080)
    login(dept, "department", "/login?next=/dispatch")
    dept.wait_for_selector("#dispatch-grid .ag-row")
    dept.fill("#dispatch-search", f"#{cid}")          # in 我的待办, the default view
    dept.press("#dispatch-search", "Enter")
    row = dept.locator(f"#dispatch-grid .ag-row[row-id='{cid}']")
    row.wait_for()
    assert "协办" in row.locator("[col-id='title']").inner_text()
    dept.wait_for_timeout(300)
    dept.screenshot(path=str(ARTIFACTS / "assisting_queue_1920.png"))
    row.locator("[col-id='title']").click()
    dept.wait_for_selector(f"#case-body .case-title:has-text('#{cid}')")
    assert dept.locator("#case-actions .act-resolve").count() == 0      # the lead's action, not the part's
    dept.click("#case-actions .act-assist_reply")
    dept.wait_for_selector("#case-form:not(.hidden)")
    dept.fill("#case-note", "已核实，属地配合清理")
    dept.click("#case-confirm")
    dept.wait_for_selector("#case-result:has-text('已完成：协办回复')")
    dept.wait_for_selector("#case-body .part-replied")
    assert dept.errors == [], "\n".join(dept.errors)
    assert _case(disp, cid)["assisting"][0]["state"] == "replied"

    disp.goto(f"/incidents/{cid}")
    disp.wait_for_selector("#case-body .part-replied")
    disp.wait_for_timeout(800)
    disp.screenshot(path=str(ARTIFACTS / "assisting_case_page_1920.png"), full_page=True)
    assert "已回复" in disp.locator("#case-body .case-parts").inner_text()
    assert disp.errors == [], "\n".join(disp.errors)
