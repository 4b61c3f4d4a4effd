"""The leaders' brief as a leader sees it: the real app (``python app.py``) on a fresh SQLite
database with the demo history, driven by headless Debian Chromium (Playwright, never
``playwright install``) at the demo size, 1920×1080. Times from the browser's side, until the
thing is drawn:

    load    /brief opened (the last 30 days) until every case card shows its number
            (cold: the brief computed by the server; warm: a second leader's load, the brief cached)
    period  a click on 本月 until the cards of the new period are drawn
    drill   a click on the 结案率 card until the drawer's first rows of cases are drawn
            (the rest of the page is not sent again: that is what the figure shows)
    drill_last  the drawer scrolled to its last case until that row is drawn

    python -m bench.brief_browser --days 90 --runs 3

The server time of the same brief (no browser) is ``python -m bench.brief``: the peer to read
these figures against.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from bench._common import ROOT, header

CHROMIUM = os.environ.get("CITYOPS_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PASSWORD = "bench-brief-browser-pw"
CARD = "[id*='\"code\":\"closure_rate\"']"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(db: Path, port: int, days: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOPS_")}
    env.update(CITYOPS_DATABASE_URL=f"sqlite:///{db}", CITYOPS_PORT=str(port), CITYOPS_HOST="127.0.0.1",
               CITYOPS_SECRET_KEY="bench-brief-browser", CITYOPS_DEMO_HISTORY_DAYS=str(days),
               CITYOPS_DEMO_FEED="false", CITYOPS_EXPORT_DIR=str(db.parent / "exports"), PYTHONUNBUFFERED="1")
    return env


def _flask(env: dict, *args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env, check=True,
                   capture_output=True, text=True, input=stdin, timeout=1800)


def _wait_healthy(base: str, proc) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app ended with {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the app did not answer /healthz within 120 s")


def _login(ctx, base: str):
    page = ctx.new_page()
    page.set_default_timeout(180_000)
    page.goto(base + "/login")
    page.fill("#username", "bench-leader")
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("#login-submit")
    return page


def _cards_drawn(page) -> None:
    """Every case card (one per case KPI) shows its number (not just the first one drawn)."""
    from incidents.kpis import CASE_KPIS
    page.wait_for_function("""n => {
        const v = document.querySelectorAll('#brief-case-cards .brief-card .card-value');
        return v.length === n && Array.from(v).every(e => e.textContent.trim() !== ''); }""", arg=len(CASE_KPIS))


def measure(base: str, browser, runs: int, screenshot: str | None = None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"load_cold": [], "load": [], "period": [], "drill": [], "drill_last": []}
    for i in range(runs):
        ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai")
        page = _login(ctx, base)
        t = time.perf_counter()
        page.goto(base + "/brief?preset=last30")
        _cards_drawn(page)
        out["load_cold" if i == 0 else "load"].append(time.perf_counter() - t)
        if screenshot and i == 0:       # the page as the leader first sees it (to look at, not timed)
            page.screenshot(path=screenshot, full_page=True)
        before = page.get_attribute("#brief-pdf", "href")
        t = time.perf_counter()
        page.click("#brief-preset label:has-text('本月')")
        page.wait_for_function("h => document.querySelector('#brief-pdf').getAttribute('href') !== h", arg=before)
        _cards_drawn(page)
        out["period"].append(time.perf_counter() - t)
        t = time.perf_counter()
        page.click(CARD)
        page.wait_for_selector("#brief-drill.open #brief-drill-grid .ag-row[row-index='0'] "
                               ".ag-cell[col-id='title']:not(:empty)")
        out["drill"].append(time.perf_counter() - t)
        # the last case behind the number: the grid asks for the block it scrolls to
        n = page.evaluate("() => dash_ag_grid.getApi('brief-drill-grid').getDisplayedRowCount()")
        t = time.perf_counter()
        page.evaluate("n => dash_ag_grid.getApi('brief-drill-grid').ensureIndexVisible(n - 1, 'bottom')", n)
        page.wait_for_selector(f"#brief-drill-grid .ag-row[row-index='{n - 1}'] .ag-cell[col-id='title']:not(:empty)")
        out["drill_last"].append(time.perf_counter() - t)
        out["drill_rows"] = [float(n)]
        ctx.close()
    if not out["load"]:
        out["load"] = out["load_cold"]
    return out


@contextmanager
def serving(env: dict, tmp: Path, port: int):
    """The real app (``python app.py``) with ``env`` on ``port`` and a headless Chromium: yields
    (base URL, browser); stops both and removes ``tmp`` (its database and log) afterwards."""
    from playwright.sync_api import sync_playwright
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            yield base, browser
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.brief_browser", description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=90, help="days of demo history (the demo default: 90)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--screenshot", help="save the first loaded page as this PNG (full page)")
    args = p.parse_args(argv)
    header("leader brief in headless Chromium, 1920×1080", argv)
    tmp = Path(tempfile.mkdtemp(prefix="cityops-bench-brief-browser-"))
    port = _free_port()
    env = _env(tmp / "cityops.db", port, args.days)
    t = time.perf_counter()
    _flask(env, "init-db", "--demo")
    _flask(env, "create-user", "bench-leader", "--role", "leader", "--password-stdin", "--replace",
           stdin=PASSWORD + "\n")
    print(f"database: {args.days} days of demo history in {time.perf_counter() - t:.0f} s ({tmp})")
    with serving(env, tmp, port) as (base, browser):
        got = measure(base, browser, args.runs, args.screenshot)
    rows = int(got.pop("drill_rows", [0])[0])
    for name, values in got.items():
        print(f"  {name:10s} " + " ".join(f"{v:.2f}" for v in values) + f"  (median {statistics.median(values):.2f} s)")
    med = {k: statistics.median(v) for k, v in got.items()}
    print(f"  drill ÷ load (warm): {med['drill'] / med['load']:.2f} — the drawer draws without the page")
    print(f"  drill_last: the block of the last of {rows:,} cases behind 结案率 (本月)")
    print(f"RESULT brief_load_browser_s={med['load']:.2f} brief_load_cold_browser_s={med['load_cold']:.2f} "
          f"brief_period_browser_s={med['period']:.2f} brief_drill_browser_s={med['drill']:.2f} "
          f"brief_drill_last_browser_s={med['drill_last']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
