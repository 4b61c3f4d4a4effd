"""Browser-test fixtures: the real app in a subprocess on a fresh SQLite database, and headless
Debian Chromium driven by Playwright (DESIGN §9: never `playwright install`).

    live_server   session: base URL of `python app.py` (demo pack, 3 days of history, demo feed on)
    users         session: {role: (username, password, department_code)} created through the CLI
    browser       session: one headless Chromium
    new_page      function: a factory for pages in fresh contexts; each page collects console
                  errors and page errors in `page.errors` (list of str)
    login         function: login(page, role) posts the login form as that role's user
"""
from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("CITYOPS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ROLES = ["viewer", "leader", "dispatcher", "department", "inspector", "admin"]
PASSWORD = "browser-test-pw-{role}"
PREFERRED_DEPARTMENT = "330106-CGJ"   # 西湖区城市管理局
# generous: the machines running the suite are often busy with other suites; waits end as soon as the page is ready
TIMEOUT_MS = int(os.environ.get("CITYOPS_TEST_BROWSER_TIMEOUT_MS", "60000"))
#: the workbench's undo window in the app under test (CITYOPS_UNDO_SECONDS; the product's is 5 s): the
#: flows that only wait it out wait 1 s; the steps that act inside it hold the page's clock (hold_undo_window)
UNDO_SECONDS = 1.0


def _departments() -> list[dict]:
    with open(ROOT / "data_sources" / "packs" / "hangzhou" / "departments.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _pick_department() -> dict:
    rows = _departments()
    for row in rows:
        if row["code"] == PREFERRED_DEPARTMENT:
            return row
    districts = [r for r in rows if r["level"] == "district"]
    assert districts, "the hangzhou pack has no district departments"
    return districts[0]


@pytest.fixture(scope="session")
def department() -> dict:
    """The department row (code, name, name_en, …) the department user works for."""
    return _pick_department()


def _free_port() -> int:
    if os.environ.get("CITYOPS_TEST_PORT"):       # a port of one's own on a shared machine
        return int(os.environ["CITYOPS_TEST_PORT"])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _app_env(db_path: Path, port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOPS_")}
    env.update({
        "CITYOPS_DATABASE_URL": f"sqlite:///{db_path}",
        "CITYOPS_EXPORT_DIR": str(db_path.parent / "exports"),
        "CITYOPS_MEDIA_DIR": str(db_path.parent / "media"),
        "CITYOPS_PORT": str(port),
        "CITYOPS_HOST": "127.0.0.1",
        "CITYOPS_SECRET_KEY": "browser-test-secret-key",
        "CITYOPS_DEMO_HISTORY_DAYS": "3",
        "CITYOPS_DEMO_FEED": "true",
        "CITYOPS_WALL_REFRESH_SECONDS": "2",
        "CITYOPS_UNDO_SECONDS": str(UNDO_SECONDS),
        "CITYOPS_LANG": "zh-CN",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _flask(env: dict, *args: str, input: str | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, input=input)
    if proc.returncode != 0:
        pytest.fail(f"flask {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@pytest.fixture(scope="session")
def _prepared(tmp_path_factory, department):
    """A fresh database with the pack, 3 days of demo history and one known user per role."""
    tmp = tmp_path_factory.mktemp("cityops-browser")
    port = _free_port()
    env = _app_env(tmp / "cityops.db", port)
    _flask(env, "init-db", "--demo")
    users = {}
    for role in ROLES:
        name = f"bt-{role}"
        pw = PASSWORD.format(role=role)
        args = ["create-user", name, "--role", role, "--password-stdin", "--replace"]
        dept = department["code"] if role == "department" else None
        if dept:
            args += ["--department", dept]
        _flask(env, *args, input=pw + "\n")
        users[role] = (name, pw, dept)
    return tmp, port, env, users


@pytest.fixture(scope="session")
def users(_prepared) -> dict:
    return _prepared[3]


_SERVER: dict = {}


def _assert_server_alive() -> None:
    proc = _SERVER.get("proc")
    if proc is not None and proc.poll() is not None:
        tail = "\n".join(proc.log_path.read_text(errors="replace").splitlines()[-30:])
        pytest.fail(f"the app process ended (exit code {proc.returncode}); last lines of its log:\n{tail}")


@pytest.fixture(scope="session")
def live_server(_prepared):
    tmp, port, env, _ = _prepared
    log_path = tmp / "server.log"
    log = open(log_path, "w+", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"/healthz did not answer within 60 s; server output:\n{log_path.read_text()}")
            time.sleep(0.3)
        proc.log_path = log_path
        _SERVER["proc"] = proc
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


@pytest.fixture(scope="session")
def server_log(_prepared) -> Path:
    return _prepared[0] / "server.log"


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: `make browser-deps` installs Debian's chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser, live_server):
    """new_page(width=1440, height=900) -> a page in a fresh context (no cookies), with
    `page.errors` collecting console errors and uncaught page errors."""
    contexts = []

    def make(width: int = 1440, height: int = 900):
        ctx = browser.new_context(viewport={"width": width, "height": height}, base_url=live_server,
                                  locale="zh-CN", timezone_id="Asia/Shanghai")
        ctx.set_default_timeout(TIMEOUT_MS)
        contexts.append(ctx)
        page = ctx.new_page()
        page.errors = []
        page.on("console", lambda m: page.errors.append(f"console.{m.type}: {m.text} @ {m.location}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e} @ {page.url}\n{e.stack}"))
        return page

    _assert_server_alive()
    yield make
    for ctx in contexts:
        ctx.close()
    _assert_server_alive()


@contextlib.contextmanager
def hold_undo_window(page):
    """Inside: the page's ``Date.now()`` stands still (timers keep running), so an action queued for 撤销
    stays queued however long the test's steps take on a busy machine — undo, 立即生效, another case or
    leaving the page then act inside the window by construction, not by a race with it. After: the clock
    runs again from the real time, so the window ends as it would have."""
    page.clock.set_fixed_time(time.time())
    try:
        yield
    finally:
        page.clock.set_system_time(time.time())


@pytest.fixture
def login(users):
    def do(page, role: str, next_path: str = "/login"):
        username, password, _ = users[role]
        page.goto(next_path)
        page.wait_for_selector("#username")
        page.fill("#username", username)
        page.fill("#password", password)
        with page.expect_navigation():
            page.click("#login-submit")
        assert not page.locator(".login-error").count(), f"login as {username} failed"
        return page
    return do

