"""The case page's mini-map (issue 14 item 6, a loose end of item 1's stop): it draws the case's
district boundary and its point for a red case, for a case outside every district, and says so
when a case has no location at all — screenshots at 1920×1080."""
from __future__ import annotations

import json
import uuid

from tests.browser.conftest import ARTIFACTS


def _create_case(page, title: str, **where) -> dict:
    body = {"source": "bt-map", "external_id": uuid.uuid4().hex, "channel": "12345", "title": title,
            "category_code": "E0101", "address": "杭州湾", **where}
    resp = page.request.post("/api/v1/incidents", data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert resp.status == 201, resp.text()
    return resp.json()

#: what the map's plotly figure holds, as the browser has it: traces with their point counts, the
#: canvas size, and the map's centre and zoom
_DRAWN = """() => {
  const gd = document.querySelector('#case-map .js-plotly-plot');
  if (!gd || !gd._fullLayout || !gd._fullLayout.map) return null;
  const canvas = gd.querySelector('canvas');
  return {traces: (gd._fullData || []).map(t => ({uid: t.uid, n: (t.lon || []).filter(x => x !== null).length})),
          w: canvas ? canvas.clientWidth : 0, h: canvas ? canvas.clientHeight : 0,
          zoom: gd._fullLayout.map.zoom, center: gd._fullLayout.map.center};
}"""


def _open(page, cid: int, name: str) -> dict:
    page.goto(f"/incidents/{cid}")
    page.wait_for_selector(f"#case-body .case-title:has-text('#{cid}')")
    page.wait_for_function(f"() => ({_DRAWN})() !== null")
    page.wait_for_timeout(800)     # MapLibre draws its canvas
    page.screenshot(path=str(ARTIFACTS / f"case_map_{name}_1920.png"), full_page=True)
    return page.evaluate(_DRAWN)


def test_the_case_page_map_draws_the_district_and_the_point(new_page, login):
    page = new_page(1920, 1080)
    login(page, "dispatcher")
    red = page.request.get("/api/v1/incidents?light=red&per_page=50").json()["items"]
    located = [c for c in red if c["lon"] is not None and c["district_code"]]
    assert located, "the demo history has red cases"
    for i, case in enumerate(located[:3]):
        drawn = _open(page, case["id"], f"red{i}")
        assert drawn["w"] > 300 and drawn["h"] > 300, drawn            # a box of its own size, not 0
        boundary, point = drawn["traces"]
        assert boundary["n"] > 20 and point["n"] == 1, drawn
    # a point outside every district (in Hangzhou Bay): framed with the nearest district, every outline drawn
    outside = _create_case(page, "海上漂浮物", lon=120.95, lat=30.35)
    drawn = _open(page, outside["id"], "outside")
    assert drawn["traces"][0]["n"] > 100 and drawn["traces"][1]["n"] == 1 and 8 < drawn["zoom"] <= 11, drawn
    # no location at all: the whole city and a note
    nowhere = _create_case(page, "位置不详的来电", lon=None, lat=None, address="")
    drawn = _open(page, nowhere["id"], "nowhere")
    assert drawn["traces"][0]["n"] > 100 and drawn["w"] > 300, drawn
    assert page.locator("#case-map").inner_text().strip() == "未标注位置（无坐标）"
    assert page.errors == [], "\n".join(page.errors)
