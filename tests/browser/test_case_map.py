"""The case page's mini-map (issue 14 item 6, a loose end of item 1's stop): it draws the case's
district boundary and its point for a red case, for a case outside every district, and says so
when a case has no location at all — screenshots at 1920×1080."""
from __future__ import annotations

from tests.browser.conftest import ARTIFACTS

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
    recent = page.request.get("/api/v1/incidents?per_page=100&sort=-reported_at").json()["items"]
    outside = [c for c in recent if c["lon"] is not None and not c["district_code"]]
    if outside:                   # a demo point outside every district: the city's outlines around it
        drawn = _open(page, outside[0]["id"], "outside")
        assert drawn["traces"][0]["n"] > 100 and drawn["zoom"] == 11, drawn
    assert page.errors == [], "\n".join(page.errors)
