"""The pages in a real browser: the login gate, who may open what, the wall at 1920×1080 with its
map and live figures, the department's own queue, logout, English labels."""
from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import ARTIFACTS, ROLES

PAGES = ["wall", "brief", "dispatch"]
LANDING = {"viewer": "/wall", "leader": "/brief", "dispatcher": "/dispatch", "department": "/dispatch",
           "inspector": "/dispatch", "admin": "/wall"}
# mirrors dashboards._components.PAGE_ROLES: written out so a change there shows up here
MAY_OPEN = {
    "wall": set(ROLES),
    "brief": {"leader", "admin", "dispatcher"},
    "dispatch": {"dispatcher", "department", "inspector", "leader", "admin"},
}
# what each page shows once its first callback has answered
CONTENT = {
    "wall": ".wall-tiles .tile",
    "brief": "#brief-case-cards .brief-card",
    "dispatch": "#dispatch-total:not(:empty)",
}
UPDATED = re.compile(r"数据更新于\s*(\d{2}:\d{2}:\d{2})")


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3].split("?")[0] if url.count("/") >= 3 else "/"


def _settle(page, ms: int = 500) -> None:
    """Let pending callbacks answer (and log any error) before reading page.errors."""
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(ms)


def test_without_a_session_pages_show_the_login_form_and_the_api_answers_401(new_page, live_server):
    page = new_page()
    for name in PAGES:
        page.goto(f"/{name}")
        assert _path(page.url) == "/login", page.url
        assert page.locator("#username").is_visible()
        assert page.locator("#password").is_visible()
        assert page.locator("#password").get_attribute("type") == "password"
        assert page.locator(".shell").count() == 0, "the app shell must not render without a session"
    assert page.errors == []

    for path in ("/api/v1/anything", "/api/v1/incidents"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(live_server + path, timeout=10)
        assert err.value.code == 401
        assert err.value.headers.get_content_type() == "application/json"
        body = json.loads(err.value.read())
        assert body["error"]["code"] == "unauthorized"


def test_wrong_password_keeps_the_login_form_with_an_error(new_page, users):
    page = new_page()
    page.goto("/login")
    page.fill("#username", users["viewer"][0])
    page.fill("#password", "not-the-password")
    page.click("#login-submit")
    page.wait_for_selector(".login-error")
    assert _path(page.url) == "/login"
    assert page.locator("#username").input_value() == users["viewer"][0]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_lands_on_its_page_and_opens_only_the_pages_it_may(role, new_page, login):
    page = new_page()
    login(page, role)
    page.goto("/")
    page.wait_for_url(f"**{LANDING[role]}")
    assert _path(page.url) == LANDING[role]

    for name in PAGES:
        page.goto(f"/{name}")
        assert _path(page.url) == f"/{name}", f"{role} was sent away from /{name}: {page.url}"
        page.wait_for_selector(".shell .topbar")
        if role in MAY_OPEN[name]:
            page.wait_for_selector(CONTENT[name], state="attached")
            assert page.locator(".forbidden").count() == 0
            nav = page.locator(f"#nav-{name}")
            assert nav.count() == 1, f"{role} may open /{name} but the top bar has no link to it"
        else:
            page.wait_for_selector(".forbidden")
            assert page.locator(CONTENT[name]).count() == 0
            assert page.locator(f"#nav-{name}").count() == 0, f"{role} sees a link to /{name}"
        _settle(page)
    assert page.errors == [], f"{role}: browser errors:\n" + "\n".join(page.errors)


def _wall_map_data(page) -> list[dict]:
    return page.evaluate("""() => {
        const gd = document.querySelector('#wall-map .js-plotly-plot');
        if (!gd || !gd.data) return [];
        return gd.data.map(t => ({type: t.type, mode: t.mode || null,
                                  locations: (t.locations || []).length,
                                  points: (t.lat || []).length}));
    }""")


def test_wall_at_1920x1080_shows_the_13_districts_and_the_open_cases_without_overflow(new_page, login):
    page = new_page(1920, 1080)
    login(page, "viewer", "/login?next=/wall")
    page.wait_for_url("**/wall")
    page.wait_for_function("""() => {
        const gd = document.querySelector('#wall-map .js-plotly-plot');
        return gd && gd.data && gd.data.length > 0;
    }""")
    traces = _wall_map_data(page)
    choropleths = [t for t in traces if t["type"] == "choroplethmap"]
    assert len(choropleths) == 1, traces
    assert choropleths[0]["locations"] == 13, traces
    markers = [t for t in traces if t["type"] == "scattermap" and "markers" in (t["mode"] or "markers")]
    assert markers, traces
    assert sum(t["points"] for t in markers) > 0, f"no open cases on the map: {traces}"
    page.wait_for_selector("#wall-map canvas.maplibregl-canvas", state="attached")

    tiles = page.locator(".wall-tiles .tile")
    assert tiles.count() == 9
    for text in tiles.locator(".tile-value").all_inner_texts():
        assert re.fullmatch(r"[\d,]+|\d+\.\d%|—", text.strip()), f"tile value {text!r} is not a figure"
    page.wait_for_function("() => /数据更新于\\s*\\d{2}:\\d{2}:\\d{2}/.test("
                           "document.querySelector('#wall-updated')?.innerText || '')")

    _settle(page, 1500)   # let the map draw before measuring and taking the picture
    sizes = page.evaluate("""() => {
        const se = document.scrollingElement, pg = document.querySelector('.page');
        const out = [];
        for (const el of document.querySelectorAll('.wall, .wall-tiles .tile, .panel, .updated, .topbar')) {
            const r = el.getBoundingClientRect();
            if (r.right > innerWidth + 1 || r.bottom > innerHeight + 1 || r.left < -1 || r.top < -1)
                out.push(`${el.className} ${Math.round(r.left)},${Math.round(r.top)}-`
                         + `${Math.round(r.right)},${Math.round(r.bottom)}`);
        }
        return {w: innerWidth, h: innerHeight, sw: se.scrollWidth, sh: se.scrollHeight,
                pw: pg.scrollWidth, pcw: pg.clientWidth, ph: pg.scrollHeight, pch: pg.clientHeight,
                outside: out};
    }""")
    assert sizes["sh"] <= sizes["h"] + 1 and sizes["sw"] <= sizes["w"] + 1, sizes
    assert sizes["ph"] <= sizes["pch"] + 1 and sizes["pw"] <= sizes["pcw"] + 1, sizes
    assert sizes["outside"] == [], sizes

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "wall-1920x1080.png"))
    assert page.errors == [], "browser errors:\n" + "\n".join(page.errors)


def test_wall_figures_refresh_by_themselves(new_page, login):
    page = new_page(1920, 1080)
    login(page, "viewer", "/login?next=/wall")
    updated = page.locator("#wall-updated")
    page.wait_for_function("() => /\\d{2}:\\d{2}:\\d{2}/.test("
                           "document.querySelector('#wall-updated')?.innerText || '')")
    first = UPDATED.search(updated.inner_text())
    assert first, updated.inner_text()
    deadline = time.monotonic() + 20
    while True:
        now = UPDATED.search(updated.inner_text())
        if now and now.group(1) != first.group(1):
            break
        assert time.monotonic() < deadline, f"'数据更新于 {first.group(1)}' did not change in 20 s"
        page.wait_for_timeout(250)
    assert page.errors == [], "browser errors:\n" + "\n".join(page.errors)


def test_department_user_sees_only_its_own_departments_cases(new_page, login, department):
    page = new_page()
    login(page, "department", "/login?next=/dispatch")
    page.wait_for_selector("#dispatch-grid .ag-row")
    assert department["name"] in page.locator(".dispatch").inner_text()
    cells = "#dispatch-grid .ag-center-cols-container .ag-row [col-id='department']"
    # every ready-made view of the queue, not just the default one
    labels = page.locator("#dispatch-view label")
    assert labels.count() >= 2
    for i in range(labels.count()):
        value = labels.nth(i).locator("input").get_attribute("value")
        labels.nth(i).click()
        page.wait_for_function("v => document.querySelector(`#dispatch-view input[value='${v}']`).checked", arg=value)
        _settle(page, 300)
        texts = page.locator(cells).all_inner_texts()
        others = sorted({c for c in texts if c.strip() != department["name"]})
        assert others == [], (value, f"{len(texts)} rows; rows of other departments: {others}")
    assert page.errors == [], "browser errors:\n" + "\n".join(page.errors)


def test_logout_brings_back_the_login_page(new_page, login):
    page = new_page()
    login(page, "dispatcher", "/login?next=/dispatch")
    page.wait_for_selector(".topbar")
    with page.expect_navigation():
        page.click(".topbar .logout-form button[type=submit]")
    assert _path(page.url) == "/login"
    page.wait_for_selector("#username")
    page.goto("/dispatch")
    assert _path(page.url) == "/login", "the session survived the logout"
    assert page.locator("#password").is_visible()


def test_wall_speaks_english_with_lang_en(new_page, login):
    page = new_page(1920, 1080)
    # the language chosen on the login page stays after login (one page load, no navigation mid-map)
    login(page, "viewer", "/login?lang=en&next=/wall")
    page.wait_for_selector(".wall-tiles .tile")
    labels = page.locator(".wall-tiles .tile-label").all_inner_texts()
    assert "Reported today" in labels, labels
    page.wait_for_function("() => (document.querySelector('#wall-updated')?.innerText || '')"
                           ".startsWith('Data as of')")
    assert page.locator("#lang-switch").inner_text() == "中文"
    assert page.errors == [], "browser errors:\n" + "\n".join(page.errors)
