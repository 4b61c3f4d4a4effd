"""The phone in the field and the citizen's 进度查询 (issue 14 item 7), at 375×812 in Chromium: a
department user finds a case in the queue's cards, signs for it and resolves it with a photo from the
camera input; an inspector verifies it with a photo; a citizen checks its progress with the case
number and the phone's last four digits. The workbench at 1920×1080 keeps its table. Nothing is
wider than the screen. Screenshots in tests/browser/artifacts/ (field_*.png)."""
from __future__ import annotations

import io
import json
import uuid

from PIL import Image

from tests.browser.conftest import ARTIFACTS, hold_undo_window

PHONE = (375, 812)
XIHU = {"lon": 120.10, "lat": 30.27}      # inside 西湖区: the department user's bureau


def _jpeg(color: tuple) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), color).save(out, "JPEG")
    return out.getvalue()


def _new_case(page, department: str, title: str, phone: str) -> int:
    """A citizen's case, registered and dispatched to ``department`` through the API (as a dispatcher)."""
    resp = page.request.post("/api/v1/incidents", data=json.dumps({
        "source": "bt-field", "external_id": uuid.uuid4().hex, "channel": "app", "title": title,
        "category_code": "E0101", "address": "西湖区文三路 8 号", "lon": XIHU["lon"], "lat": XIHU["lat"],
        "reporter_name": "李秀英", "reporter_phone": phone}), headers={"Content-Type": "application/json"})
    assert resp.status == 201, resp.text()
    cid, v = resp.json()["id"], resp.json()["version"]
    for action, extra in (("register", {}), ("dispatch", {"department": department})):
        r = page.request.post(f"/api/v1/incidents/{cid}/actions", headers={"Content-Type": "application/json"},
                              data=json.dumps({"action": action, "version": v, **extra}))
        assert r.status == 200, r.text()
        v = r.json()["version"]
    return cid


def _fits(page) -> None:
    """Nothing sticks out to the right: no horizontal scrolling on the phone."""
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]


def _open_card(page, cid: int) -> None:
    page.fill("#dispatch-search", str(cid))
    page.press("#dispatch-search", "Enter")
    card = page.locator(f".case-card:has(.cc-id:text-is('#{cid}'))")
    card.wait_for()
    card.click()
    page.wait_for_selector(f".wb-panel.open #case-body .case-title:has-text('#{cid}')")


def _photo_form(page, action_selector: str, photo: bytes, name: str, note: str) -> None:
    """Opens an action's form, checks the photo input asks for the back camera, attaches a photo."""
    page.click(action_selector)
    page.wait_for_selector("#case-form:not(.hidden) #case-field-photos:not(.hidden)")
    page.wait_for_function("() => { const r = document.getElementById('case-form').getBoundingClientRect();"
                           " return r.top >= 0 && r.top < innerHeight / 2; }")    # the form is brought into sight
    file_input = page.locator("#case-photos input[type=file]")
    page.wait_for_function("() => document.querySelector('#case-photos input[type=file]').getAttribute('capture') === 'environment'")
    assert file_input.get_attribute("accept") == "image/*"
    file_input.set_input_files(files=[{"name": name, "mimeType": "image/jpeg", "buffer": photo}])
    page.wait_for_selector(f"#case-photos-list:has-text('{name}')")
    page.fill("#case-note", note)


def test_a_department_signs_and_resolves_and_an_inspector_verifies_on_a_phone(new_page, login, department):
    desk = new_page(1920, 1080)
    login(desk, "dispatcher", "/login?next=/dispatch")
    cid = _new_case(desk, department["code"], "手机测试：文三路井盖松动", "13900004321")
    desk.wait_for_selector(".dispatch-grid .ag-header-cell-text:text-is('剩余工时')")   # the desk keeps its table
    assert desk.locator(".case-card").count() == 0
    desk.screenshot(path=str(ARTIFACTS / "field_workbench_1920.png"))

    dept = new_page(*PHONE)
    login(dept, "department", "/login?next=/dispatch")
    dept.wait_for_selector(".case-card")
    assert not dept.locator(".dispatch-grid .ag-header-cell-text:text-is('剩余工时')").is_visible()
    _fits(dept)
    dept.screenshot(path=str(ARTIFACTS / "field_queue_375.png"))
    _open_card(dept, cid)
    sign = dept.locator(".case-actions .act-sign")
    assert sign.bounding_box()["height"] >= 44                     # a thumb's tap target
    with hold_undo_window(dept):                                    # 立即生效 lands inside the window
        sign.click()                                                # 签收: one tap, then "now" skips the undo wait
        dept.click("#case-apply-now")
        dept.wait_for_selector("#case-result:has-text('已完成：签收')")
    dept.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '处置中'")
    dept.screenshot(path=str(ARTIFACTS / "field_case_375.png"))
    _photo_form(dept, ".case-actions .act-resolve", _jpeg((70, 110, 80)), "after.jpg", "井盖已加固")
    _fits(dept)
    dept.screenshot(path=str(ARTIFACTS / "field_resolve_form_375.png"))
    dept.click("#case-confirm")
    dept.wait_for_selector("#case-result:has-text('已完成：处置反馈')")
    dept.wait_for_selector("#case-form.hidden", state="attached")
    dept.click("#case-close")                                       # back to the queue
    dept.wait_for_selector(".wb-panel.open", state="detached")
    assert dept.errors == [], "\n".join(dept.errors)

    insp = new_page(*PHONE)
    login(insp, "inspector", "/login?next=/dispatch")
    insp.wait_for_selector(".case-card")
    _open_card(insp, cid)
    insp.wait_for_selector(".case-photos.compare .photo-resolve img")
    _photo_form(insp, ".case-actions .act-verify_pass-more", _jpeg((90, 90, 140)), "check.jpg", "现场核查已修复")
    insp.click("#case-confirm")
    insp.wait_for_selector("#case-result:has-text('已完成：核查通过')")
    insp.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '已结案'")
    insp.wait_for_function("() => document.querySelector('.wb-panel.open').scrollTop === 0")   # the result in sight
    insp.wait_for_selector("#case-form.hidden", state="attached")                              # the form closes
    _fits(insp)
    insp.screenshot(path=str(ARTIFACTS / "field_verify_375.png"))
    detail = desk.request.get(f"/api/v1/incidents/{cid}").json()
    assert detail["state"] == "closed"
    assert sorted(a["stage"] for a in detail["attachments"]) == ["resolve", "verify"]
    assert insp.errors == [], "\n".join(insp.errors)


def test_a_citizen_checks_the_progress_on_a_phone(new_page, login, department):
    desk = new_page(1920, 1080)
    login(desk, "dispatcher", "/login?next=/dispatch")
    cid = _new_case(desk, department["code"], "手机测试：路灯不亮", "138 0000 2468")

    phone = new_page(*PHONE)
    phone.goto("/login")
    phone.click("#progress-link")                                   # the login page links to it
    phone.wait_for_selector("#progress-form")
    _fits(phone)
    phone.fill("#progress-case", str(cid))
    phone.fill("#progress-digits", "2469")
    phone.click("#progress-submit")
    assert "未查到匹配的案件" in phone.locator("#progress-error").inner_text()
    assert phone.input_value("#progress-case") == str(cid)          # the number stays, the digits go
    phone.fill("#progress-digits", "2468")
    phone.screenshot(path=str(ARTIFACTS / "field_progress_form_375.png"))
    phone.click("#progress-submit")
    phone.wait_for_selector("#progress-answer")
    assert phone.locator("#progress-state").inner_text() == "已派遣"
    answer = phone.locator("#progress-answer").inner_text()
    assert department["name"] in answer
    for personal in ("李秀英", "138 0000", "13800002468", "文三路", "路灯不亮"):   # nobody's name, phone, address or words
        assert personal not in answer
    _fits(phone)
    phone.screenshot(path=str(ARTIFACTS / "field_progress_answer_375.png"))
    assert phone.errors == [], "\n".join(phone.errors)
