"""回访 in a real browser: the hotline opens 待回访, records 未联系上 with one key and 不满意 with the
citizen's complaint, and the case goes back to its department (重办). Screenshot at 1920×1080."""
from __future__ import annotations

import json

from tests.browser.conftest import ARTIFACTS
from tests.browser.test_workbench import XIHU, _case, _create_case, _one_click


def _post(page, cid: int, action: str, **extra) -> None:
    version = _case(page, cid)["version"]
    r = page.request.post(f"/api/v1/incidents/{cid}/actions", headers={"Content-Type": "application/json"},
                          data=json.dumps({"action": action, "version": version, **extra}))
    assert r.status == 200, r.text()


def test_the_hotline_records_revisit_results_from_the_workbench(new_page, login, department):
    disp = new_page(1920, 1080)
    login(disp, "dispatcher", "/login?next=/dispatch")
    cid = _create_case(disp, "浏览器测试：回访", **XIHU)["id"]
    _post(disp, cid, "register")
    _post(disp, cid, "dispatch", department=department["code"])
    dept = new_page()
    login(dept, "department", "/login?next=/dispatch")
    for action, extra in (("sign", {}), ("contact", {}), ("resolve", {"outcome": "solved", "note": "已清理"})):
        _post(dept, cid, action, **extra)
    insp = new_page()
    login(insp, "inspector", "/login?next=/dispatch")
    _post(insp, cid, "verify_pass")

    disp.goto("/dispatch")
    disp.wait_for_selector("#dispatch-grid .ag-row")
    disp.click("label:has(input[value='pending_revisit'])")
    disp.wait_for_function("() => (document.querySelector('#dispatch-total')||{}).innerText !== '共 0 件'")
    # the rows drawn (the infinite model shows empty rows while a block loads): a closed case's row says
    # when it was closed where a running case's shows its clock
    disp.wait_for_function("() => [...document.querySelectorAll(\"#dispatch-grid .ag-row [col-id='remaining']\")]"
                           ".some(c => c.innerText.startsWith('结案 '))")
    disp.screenshot(path=str(ARTIFACTS / "workbench_revisit_queue_1920.png"))
    disp.fill("#dispatch-search", f"#{cid}")
    disp.press("#dispatch-search", "Enter")
    disp.wait_for_function("() => (document.querySelector('#dispatch-total')||{}).innerText === '共 1 件'")
    row = disp.locator(f"#dispatch-grid .ag-row[row-id='{cid}']")
    row.wait_for()
    row.locator("[col-id='title']").click()
    disp.wait_for_selector(f"#case-body .case-title:has-text('#{cid}')")
    assert "待回访" in disp.locator("#case-body").inner_text()
    assert disp.locator(".case-actions .act-revisit_satisfied").count() == 1
    _one_click(disp, "3", expect="已完成：未联系上")
    disp.wait_for_selector("#case-body .revisit-chip.r-unreachable")
    disp.keyboard.press("4")                         # 不满意 asks for the complaint
    disp.wait_for_selector("#case-form:not(.hidden)")
    disp.fill("#case-note", "市民反映仍有积水")
    disp.wait_for_timeout(300)
    disp.screenshot(path=str(ARTIFACTS / "workbench_revisit_1920.png"))
    disp.click("#case-confirm")
    disp.wait_for_selector("#case-result:has-text('已完成：不满意')")
    disp.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '已派遣'")
    after = _case(disp, cid)
    assert (after["state"], after["department"]["code"], after["revisit_result"]) == \
        ("dispatched", department["code"], "unsatisfied")
    assert [e["payload"].get("result") for e in after["timeline"] if e["action"] == "revisit"] == \
        ["unreachable", "unsatisfied"]
    assert disp.errors == [], "\n".join(disp.errors)
