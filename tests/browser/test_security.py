"""Security in a real browser: every page runs under the Content-Security-Policy with no violation
(Dash's inline scripts, plotly's styles, MapLibre's blob: workers), the headers are on pages, API
answers and assets, the kiosk token leaves the address bar, and a throttled login says so in Chinese."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.browser.conftest import _flask

SHOTS = Path("/work/shots")

# collects every CSP violation the page reports, from its first script on
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(
    e.effectiveDirective + ' blocked ' + (e.blockedURI || 'inline') + ' @ ' + e.sourceFile + ':' + e.lineNumber +
    ' ' + (e.sample || '')));
"""


def _csp_watch(page) -> list:
    console = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    return console


def _violations(page, console) -> list:
    return list(page.evaluate("window.__csp || []")) + console


def _first_case_id(page) -> int:
    resp = page.request.get("/api/v1/incidents?per_page=1")
    assert resp.ok, resp.status
    return json.loads(resp.body())["items"][0]["id"]


def test_every_page_runs_under_the_csp_with_no_violation(new_page, login):
    page = new_page(1920, 1080)
    console = _csp_watch(page)
    page.goto("/login")
    page.wait_for_selector("#login-submit")
    assert _violations(page, console) == [], "on /login"

    login(page, "admin", "/login?next=/wall")
    page.wait_for_selector(".wall-tiles .tile")
    # the map is drawn by MapLibre (WebGL, blob: workers): its canvas must be there
    page.wait_for_selector("#wall-map .maplibregl-canvas, #wall-map canvas", state="attached")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)
    assert _violations(page, console) == [], "on /wall"

    cid = _first_case_id(page)
    for path, ready in (("/brief", "#brief-case-cards .brief-card"), ("/dispatch", "#dispatch-total:not(:empty)"),
                        (f"/incidents/{cid}", ".topbar")):
        page.goto(path)
        page.wait_for_selector(ready)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1000)
        assert _violations(page, console) == [], f"on {path}"
    assert page.errors == [], "browser errors:\n" + "\n".join(page.errors)
    # the control: an injected inline script is blocked, and the watch reports it
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
                  " document.body.appendChild(s); }")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__ran") is None
    assert any("script-src" in v for v in _violations(page, console)), _violations(page, console)


def _headers(url: str, **kw) -> dict:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, **kw), timeout=10) as r:
            return dict(r.headers)
    except urllib.error.HTTPError as err:
        return dict(err.headers)


@pytest.mark.parametrize("path", ["/login", "/api/v1/incidents", "/assets/cityops.css", "/healthz"])
def test_security_headers_on_pages_api_answers_and_assets(live_server, path):
    h = _headers(live_server + path)
    csp = h["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self' 'sha256-" in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'self'" in csp and h["X-Frame-Options"] == "SAMEORIGIN"
    assert h["X-Content-Type-Options"] == "nosniff" and h["Referrer-Policy"] == "same-origin"


def test_a_page_from_another_site_cannot_log_the_browser_in(new_page, live_server, users):
    """Login CSRF: a foreign page posting the login form (with our own credentials) is refused."""
    page = new_page()
    username, password, _ = users["viewer"]
    # a page of "another site": the same form, posted from about:blank (Origin: null)
    page.set_content(f"""<form method="post" action="{live_server}/login" id="f">
        <input name="username" value="{username}"><input name="password" value="{password}"></form>""")
    with page.expect_navigation():
        page.evaluate("document.getElementById('f').submit()")
    page.goto("/wall")
    assert page.url.split("?")[0].endswith("/login"), "a cross-site post logged the browser in"


def test_the_kiosk_token_leaves_the_address_bar(new_page, _prepared):
    env = _prepared[2]
    url = _flask(env, "create-kiosk", "security-test", "--days", "1").strip().splitlines()[-1]
    token = url.split("kiosk=")[1]
    page = new_page(1920, 1080)
    page.goto("/wall?kiosk=" + token)
    page.wait_for_selector(".wall-tiles .tile")
    assert token not in page.url and page.url.endswith("/wall")
    # the kiosk wall has no "log out everywhere" (it would end every wall of that kiosk)
    assert page.locator("#logout-everywhere-button").count() == 0
    # and the URL with the token is not in the history: one step back is the blank start page
    page.go_back()
    assert page.url == "about:blank"


def test_a_throttled_login_says_so_in_chinese(new_page):
    page = new_page(1920, 1080)
    page.goto("/login")
    for _ in range(6):
        page.fill("#username", "throttle-probe")
        page.fill("#password", "certainly-not-it")
        with page.expect_navigation():
            page.click("#login-submit")
    error = page.locator(".login-error").inner_text()
    assert "登录失败次数过多" in error and "秒后再试" in error, error
    assert page.locator("#username").input_value() == "throttle-probe"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "login-throttled.png"))
