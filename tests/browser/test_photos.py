"""Photos in a real browser (issue 14 item 4): a case reported with a photo, a department resolves it
with a photo chosen in the case panel's upload, and the inspector at 核查 sees before and after side
by side — both photos really load. Screenshots (1920×1080 and 375×812) in tests/browser/artifacts/."""
from __future__ import annotations

import io
import json
import uuid

from PIL import Image

from tests.browser.conftest import ARTIFACTS

XIHU = {"lon": 120.10, "lat": 30.27}      # inside 西湖区: E0101 there is routed to the department user's bureau


def _photo(color: tuple, text_band: tuple, size=(800, 600)) -> bytes:
    im = Image.new("RGB", size, color)
    im.paste(text_band, (0, size[1] // 2 - 40, size[0], size[1] // 2 + 40))
    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: "N", 2: (30.0, 16.0, 12.0), 3: "E", 4: (120.0, 6.0, 0.0)})
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif)
    return out.getvalue()


def _act(page, case_id: int, action: str, version: int, **extra) -> int:
    resp = page.request.post(f"/api/v1/incidents/{case_id}/actions",
                             data=json.dumps({"action": action, "version": version, **extra}),
                             headers={"Content-Type": "application/json"})
    assert resp.status == 200, resp.text()
    return resp.json()["version"]


def _loaded_images(page, selector: str) -> int:
    return page.evaluate(f"""() => [...document.querySelectorAll({json.dumps(selector)})]
                                  .filter(i => i.complete && i.naturalWidth > 0).length""")


def test_a_department_resolves_with_a_photo_and_the_inspector_compares_before_and_after(new_page, login, department):
    disp = new_page(1920, 1080)
    login(disp, "dispatcher", "/login?next=/dispatch")
    resp = disp.request.post("/api/v1/incidents", multipart={
        "source": "bt", "external_id": uuid.uuid4().hex, "channel": "app", "title": "浏览器测试：人行道井盖破损",
        "category_code": "E0101", "address": "西湖区文三路 8 号", "lon": str(XIHU["lon"]), "lat": str(XIHU["lat"]),
        "photo": {"name": "citizen.jpg", "mimeType": "image/jpeg", "buffer": _photo((120, 90, 60), (200, 40, 40))}})
    assert resp.status == 201, resp.text()
    case = resp.json()
    cid, v = case["id"], case["version"]
    assert [a["stage"] for a in case["attachments"]] == ["report"]
    v = _act(disp, cid, "register", v)
    v = _act(disp, cid, "dispatch", v, department=department["code"])

    dept = new_page(1920, 1080)
    login(dept, "department", f"/login?next=/incidents/{cid}")
    dept.wait_for_selector(f"#case-body .case-title:has-text('#{cid}')")
    dept.wait_for_selector(".case-photos img")
    dept.keyboard.press("s")                          # 签收: one key, applied when its undo window ends
    dept.wait_for_selector("#case-queued-bar:not(.hidden)")
    dept.wait_for_selector("#case-result:has-text('已完成：签收')")
    dept.wait_for_function("() => document.querySelector('#case-body .state-chip').innerText === '处置中'")
    dept.keyboard.press("f")
    dept.wait_for_selector("#case-form:not(.hidden) #case-field-photos:not(.hidden)")
    dept.set_input_files("#case-photos input[type=file]", files=[
        {"name": "after.jpg", "mimeType": "image/jpeg", "buffer": _photo((70, 110, 80), (230, 230, 230))}])
    dept.wait_for_selector("#case-photos-list:has-text('after.jpg')")
    dept.fill("#case-note", "井盖已更换，恢复通行")
    dept.screenshot(path=str(ARTIFACTS / "photos_resolve_form_1920.png"))
    dept.click("#case-confirm")
    dept.wait_for_selector("#case-result:has-text('已完成：处置反馈')")
    assert dept.errors == [], "\n".join(dept.errors)

    insp = new_page(1920, 1080)
    login(insp, "inspector", f"/login?next=/incidents/{cid}")
    insp.wait_for_selector(".case-photos.compare .photo-report img")
    insp.wait_for_selector(".case-photos.compare .photo-resolve img")
    insp.wait_for_function("""() => [...document.querySelectorAll('.case-photos.compare img')]
                                      .every(i => i.complete && i.naturalWidth > 0)""")
    assert _loaded_images(insp, ".case-photos.compare .photo-report img") == 1
    assert _loaded_images(insp, ".case-photos.compare .photo-resolve img") == 1
    assert "处置前" in insp.locator(".case-photos.compare").inner_text()
    assert "处置后" in insp.locator(".case-photos.compare").inner_text()
    assert "照片 1 张" in insp.locator(".timeline").inner_text()
    insp.wait_for_timeout(600)   # the small map draws
    insp.screenshot(path=str(ARTIFACTS / "photos_verify_compare_1920.png"), full_page=True)
    assert insp.errors == [], "\n".join(insp.errors)

    phone = new_page(375, 812)
    login(phone, "inspector", f"/login?next=/incidents/{cid}")
    phone.wait_for_function("""() => [...document.querySelectorAll('.case-photos.compare img')]
                                       .filter(i => i.complete && i.naturalWidth > 0).length === 2""")
    phone.locator(".case-photos.compare").scroll_into_view_if_needed()
    phone.screenshot(path=str(ARTIFACTS / "photos_verify_compare_375.png"))
    # the resolve photo opens in full, without its GPS EXIF
    after = [a for a in dept.request.get(f"/api/v1/incidents/{cid}").json()["attachments"] if a["stage"] == "resolve"]
    body = insp.request.get(after[0]["url"]).body()
    assert Image.open(io.BytesIO(body)).getexif().get_ifd(0x8825) == {}
    assert phone.errors == [], "\n".join(phone.errors)
