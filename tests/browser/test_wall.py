"""The wall in headless Chromium: sized for real walls, nothing overflowing, drill-down, alarm
acknowledgement, and the stale banner when the database goes away and comes back."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import ARTIFACTS, ROOT, TIMEOUT_MS, _app_env, _flask, _free_port
from tests.tcp_proxy import TcpProxy

PG_VIEWER_PASSWORD = "stale-banner-wall-2026"
SIZES = [(1920, 1080), (3840, 2160), (5760, 1620), (7680, 2160), (1366, 768)]

LAYOUT_CHECK = """() => {
  const vw = window.innerWidth, vh = window.innerHeight, out = [];
  const doc = document.scrollingElement;
  if (doc.scrollHeight > vh + 1 || doc.scrollWidth > vw + 1) out.push(`page scrolls: ${doc.scrollWidth}x${doc.scrollHeight}`);
  // (a small screen shows one side panel at a time: the others are not displayed)
  const boxes = [...document.querySelectorAll('.wall .tile, .wall .panel, .wall .ticker')]
    .filter(b => getComputedStyle(b).display !== 'none');
  const rects = boxes.map(b => [b, b.getBoundingClientRect()]);
  for (const [b, r] of rects) {
    if (r.width < 20 || r.height < 20) out.push(`too small: ${b.className} ${r.width}x${r.height}`);
    if (r.left < -1 || r.top < -1 || r.right > vw + 1 || r.bottom > vh + 1) out.push(`outside viewport: ${b.className}`);
  }
  for (let i = 0; i < rects.length; i++) for (let j = i + 1; j < rects.length; j++) {
    const a = rects[i][1], c = rects[j][1];
    const w = Math.min(a.right, c.right) - Math.max(a.left, c.left), h = Math.min(a.bottom, c.bottom) - Math.max(a.top, c.top);
    if (w > 1 && h > 1) out.push(`overlap: ${rects[i][0].className} / ${rects[j][0].className}`);
  }
  for (const body of document.querySelectorAll('.wall .panel-body, .wall .tile')) {
    if (body.scrollHeight > body.clientHeight + 2 || body.scrollWidth > body.clientWidth + 2)
      out.push(`content overflows: ${body.parentElement.className} ${body.scrollWidth}x${body.scrollHeight} > ${body.clientWidth}x${body.clientHeight}`);
  }
  return out;
}"""

MAP_DATA = """() => { const gd = document.querySelector('#wall-map .js-plotly-plot');
  return gd && gd.data && gd.data.length ? gd.data.map(t => ({type: t.type, n: (t.locations || t.lon || []).length})) : null; }"""
#: how much of the map panel the city takes: its bounds projected by the map itself, as shares of
#: the panel's width and height
CITY_SHARE = """() => { const body = document.querySelector('.p-map .panel-body[data-bounds]');
  const gd = body.querySelector('.js-plotly-plot'), m = gd._fullLayout.map._subplot.map;
  const b = body.dataset.bounds.split(',').map(Number);
  const sw = m.project([b[0], b[1]]), ne = m.project([b[2], b[3]]);
  return [(ne.x - sw.x) / gd.clientWidth, (sw.y - ne.y) / gd.clientHeight]; }"""
FIRST_LAYER_HAS = """(n) => { const gd = document.querySelector('#wall-map .js-plotly-plot');
  return !!(gd && gd.data && gd.data.length && gd.data[0].type === 'choroplethmap' && n(gd.data[0].locations.length)); }"""


def _first_layer(page, predicate: str):
    page.wait_for_function(f"() => ({FIRST_LAYER_HAS})({predicate})")


def _open_wall(page, login, role="dispatcher"):
    login(page, role, "/login?next=/wall")
    page.wait_for_function(f"() => ({MAP_DATA})() !== null")
    page.wait_for_selector(".wall-tiles .tile")
    page.wait_for_function("() => document.querySelector('.maplibregl-canvas') !== null")
    page.wait_for_timeout(500)


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_wall_fills_the_screen_without_overflow(new_page, login, width, height):
    page = new_page(width, height)
    _open_wall(page, login)
    traces = page.evaluate(MAP_DATA)
    areas = next(t for t in traces if t["type"] == "choroplethmap")
    assert areas["n"] == 13
    assert sum(t["n"] for t in traces if t["type"] == "scattermap") > 0
    assert page.locator(".wall-tiles .tile").count() == 9
    # the city fills its map panel at every aspect, from the first paint (not after a refresh)
    page.wait_for_function(f"() => {{ const s = ({CITY_SHARE})(); return Math.max(...s) > 0.85; }}")
    share = page.evaluate(CITY_SHARE)
    assert max(share) > 0.85 and all(0.2 < s <= 1.0 for s in share), share
    problems = page.evaluate(LAYOUT_CHECK)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"wall-{width}x{height}.png"))
    assert problems == [], "\n".join(problems)
    # type grows with the screen: tile values are at least 3.5 % of the height
    size = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('.tile-value')).fontSize)")
    assert size >= 0.035 * height
    assert page.errors == [], "\n".join(page.errors)


def test_clicking_a_district_drills_down_and_the_city_comes_back(new_page, login):
    page = new_page(1920, 1080)
    _open_wall(page, login)
    # what plotly reports for a click on 西湖区 (a real WebGL click is not reliable in headless Chromium)
    page.evaluate("""() => window.dash_clientside.set_props('wall-map',
        {clickData: {points: [{curveNumber: 0, pointNumber: 2, location: '330106'}]}})""")
    page.wait_for_function("() => document.querySelector('#wall-map-title').innerText.includes('西湖区')")
    _first_layer(page, "k => k > 13")   # the district's grid cells replace the districts
    assert page.locator("#wall-back").is_visible()
    page.click("#wall-back")
    page.wait_for_function("() => !document.querySelector('#wall-map-title').innerText.includes('西湖区')")
    _first_layer(page, "k => k === 13")
    assert page.errors == [], "\n".join(page.errors)


def test_an_operator_acknowledges_an_alarm_and_the_ticker_says_who_and_when(new_page, login):
    page = new_page(1920, 1080)
    _open_wall(page, login, "dispatcher")
    # an urgent case arrives (through the REST API, as the dispatcher): it raises an alarm
    resp = page.request.post("/api/v1/incidents", data={
        "external_id": f"urgent-{time.time_ns()}", "channel": "12345", "title": "浏览器测试：燃气泄漏",
        "category_code": "E0101", "lon": 120.148, "lat": 30.256, "priority": "urgent"})
    assert resp.status == 201, resp.text()
    case_id = resp.json()["id"]
    button = page.locator(f"""button.ack[id*='urgent:{case_id}"']""")
    button.wait_for()
    key = button.get_attribute("id")
    button.click()
    page.wait_for_function("(id) => !document.getElementById(id)", arg=key)
    page.wait_for_function("() => document.querySelector('.ticker-list').textContent.includes('✓ bt-dispatcher')")
    viewer = new_page(1920, 1080)
    _open_wall(viewer, login, "viewer")
    assert viewer.locator(".ticker-list button.ack").count() == 0  # a viewer (kiosk) may not acknowledge
    assert page.errors == [] and viewer.errors == []


@pytest.fixture
def pg_wall(browser, tmp_path):
    """The app on PostgreSQL through a TCP proxy that the test can cut."""
    from tests.conftest import PG_URL, pg_test_url, reset_postgres
    if not PG_URL:
        pytest.skip("PostgreSQL: set CITYOPS_TEST_DATABASE_URL (CI does)")
    from sqlalchemy.engine import make_url
    url = make_url(pg_test_url())
    reset_postgres(url.render_as_string(hide_password=False))
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    port = _free_port()
    env = _app_env(tmp_path / "unused.db", port)
    env["CITYOPS_DATABASE_URL"] = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    env["CITYOPS_DEMO_HISTORY_DAYS"] = "1"
    _flask(env, "init-db", "--demo")
    _flask(env, "create-user", "pg-viewer", "--role", "viewer", "--password-stdin", "--replace",
           input=PG_VIEWER_PASSWORD + "\n")
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, base_url=base)
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx.new_page(), proxy, base
    finally:
        ctx.close()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        proxy.stop()
        log.close()


def test_the_stale_banner_appears_when_the_database_goes_and_leaves_when_it_returns(pg_wall):
    page, proxy, base = pg_wall
    page.goto("/login?next=/wall")
    page.fill("#username", "pg-viewer")
    page.fill("#password", PG_VIEWER_PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector(".wall-tiles .tile")
    assert not page.locator("#wall-banner.stale").count()
    proxy.stop()                                   # the database is unreachable
    page.wait_for_selector("#wall-banner.stale")
    assert "数据库连接中断" in page.locator("#wall-banner").inner_text()
    assert page.locator(".wall-tiles .tile").count() == 9   # the last figures stay on screen
    with pytest.raises(urllib.error.HTTPError) as probe:   # and the readiness probe says so
        urllib.request.urlopen(base + "/readyz", timeout=10)
    assert probe.value.code == 503
    proxy.start()                                  # it comes back on the same port
    page.wait_for_function("() => !document.querySelector('#wall-banner.stale')")


TICKER_PAGE = """() => {
  const list = document.querySelector('.ticker-list'), box = list.getBoundingClientRect();
  const shown = [...list.children].filter(li => getComputedStyle(li).display !== 'none');
  const cut = shown.filter(li => { const r = li.getBoundingClientRect();
    return r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5; });
  return {shown: shown.map(li => li.dataset.i), cut: cut.length, counter: document.querySelector('.ticker-page').textContent};
}"""


@pytest.mark.parametrize("width,height", [(1366, 768), (1920, 1080)])
def test_the_ticker_pages_through_30_alarms_whole_ones_only(browser, width, height):
    """The ticker's paging (assets/wall.js, assets/wall.css) on 30 alarms: each page shows only
    alarms that fit whole inside the ticker, the counter says which page, the pages turn, and every
    alarm is on one page (the pages turn every 0.4 s here, every 6 s on a wall)."""
    css = "\n".join((ROOT / "assets" / name).read_text(encoding="utf-8") for name in ("cityops.css", "wall.css"))
    items = "".join(
        f'<li class="alarm {"urgent escalated" if i == 0 else "red"}" data-i="{i}"><span class="t">0{i % 10}:1{i % 6}</span>'
        f'<span class="k">{"紧急·已升级带班领导" if i == 0 else "案件超期"}</span>'
        f'<span class="d">#{3000 + i} {"钱江路机动车乱停放" * (1 + i % 3)}</span><button class="ack">确认</button></li>'
        for i in range(30))
    html_page = (f"<html><head><style>{css}</style></head><body><div class='wall'><div class='ticker' data-sound='0' data-page-seconds='0.4'>"
                 f"<span class='ticker-title'>告警</span><ul class='ticker-list'>{items}</ul>"
                 f"<span class='ticker-page'></span><span class='updated'>数据更新于 04:36:02</span></div></div>"
                 f"<script>{(ROOT / 'assets' / 'wall.js').read_text(encoding='utf-8')}</script></body></html>")
    ctx = browser.new_context(viewport={"width": width, "height": height})
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        page = ctx.new_page()
        page.set_content(html_page)
        page.wait_for_function("() => document.querySelector('.ticker-page').textContent.includes('/')")
        seen_pages, seen_items = set(), set()
        while True:
            now = page.evaluate(TICKER_PAGE)
            assert now["cut"] == 0 and now["shown"], now
            page_no, pages = now["counter"].split("/")
            seen_pages.add(page_no)
            seen_items.update(now["shown"])
            if len(seen_pages) == int(pages):
                break
            page.wait_for_function("(c) => document.querySelector('.ticker-page').textContent !== c", arg=now["counter"])
        assert int(pages) > 1 and seen_items == {str(i) for i in range(30)}
        page.screenshot(path=str(ARTIFACTS / f"ticker-{width}x{height}.png"), clip={"x": 0, "y": 0, "width": width, "height": 80})
    finally:
        ctx.close()
