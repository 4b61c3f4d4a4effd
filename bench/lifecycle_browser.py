"""A citizen's case's whole life at the workbench, by three users in headless Debian Chromium at 1920×1080:
the real app (``python app.py``) on a fresh SQLite database with the demo history. Each run creates
one case (API, like a feed) and counts every click and key press of the users (trusted events only)
and the seconds from the first to the last, per step:

    register     dispatcher: open the case (search #id, click its row), 立案 (one click)
    dispatch     dispatcher: 派遣, the suggested department, 确认
    sign         department: open /dispatch, the new case at the top of 我的待办 (flagged 新), 签收
    contact      department: 先行联系 (one click: it called the citizen)
    resolve      department: 处置反馈, a note, 确认 (实际解决 preselected)
    verify_pass  inspector:  open the case (search), 核查通过 (one click)
    revisit      dispatcher: open the case (待回访, search), 回访 满意 (one click)

A one-click action waits out its undo window (the ``UNDO_SECONDS`` setting, at its default here) before it is sent:
the seconds include it, once per one-click step, and ``--apply-now`` clicks 立即生效 instead (one
more click) to show the flow without it. Logins are not counted. The peer to read the seconds against
is the undo window itself: ``lifecycle_wait_s`` is the part of the total spent waiting in it.

    python -m bench.lifecycle_browser --days 3 --runs 3 [--port 8841]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench._common import header
from bench.brief_browser import _flask, _free_port, serving

PASSWORD = "bench-lifecycle-browser-pw-{role}"
ROLES = ("dispatcher", "department", "inspector")
DEPARTMENT = "330106-CGJ"   # 西湖区城市管理局: rule 134 routes E0101 in 西湖区 there
COUNT = """(() => {
    window.__taps = [];
    const typing = el => el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.isContentEditable);
    // an action tap: a click on an action, the form's buttons or the undo bar, or an action's key
    const acting = el => !!el.closest('.case-actions, .form-buttons, .req-buttons, #case-queued-bar');
    document.addEventListener('click', e => {
        if (e.isTrusted) { window.__taps.push(acting(e.target) ? 'action' : 'click'); } }, true);
    document.addEventListener('keydown', e => {
        if (!e.isTrusted || typing(e.target)) { return; }
        const act = e.key.length === 1 && document.querySelector('.case-actions button[data-key="' + e.key.toLowerCase() + '"]');
        if (act) { window.__taps.push('action'); } else if (e.key.length === 1 || e.key === 'Enter') { window.__taps.push('key'); }
    }, true);
    document.addEventListener('input', e => {
        if (e.isTrusted && typing(e.target) && !window.__typing) { window.__typing = true; window.__taps.push('typing'); } }, true);
})()"""


def _env(db: Path, port: int, days: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOPS_")}
    env.update(CITYOPS_DATABASE_URL=f"sqlite:///{db}", CITYOPS_PORT=str(port), CITYOPS_HOST="127.0.0.1",
               CITYOPS_SECRET_KEY="bench-lifecycle-browser", CITYOPS_DEMO_HISTORY_DAYS=str(days),
               CITYOPS_DEMO_FEED="false", CITYOPS_EXPORT_DIR=str(db.parent / "exports"),
               CITYOPS_MEDIA_DIR=str(db.parent / "media"), PYTHONUNBUFFERED="1")
    return env


def _login(browser, base: str, role: str):
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, base_url=base, locale="zh-CN",
                              timezone_id="Asia/Shanghai")
    ctx.add_init_script(COUNT)
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    page.goto("/login")
    page.fill("#username", f"bench-{role}")
    page.fill("#password", PASSWORD.format(role=role))
    with page.expect_navigation():
        page.click("#login-submit")
    return ctx, page


def _taps(page) -> tuple[int, int]:
    """(every tap, action taps) since the last call."""
    got = page.evaluate("() => { const t = window.__taps || []; window.__taps = []; window.__typing = false; return t; }")
    return len(got), got.count("action")


def _search_open(page, cid: int, view: str = "all_open") -> None:
    page.wait_for_selector("#dispatch-grid .ag-row")
    page.click(f"label:has(input[value='{view}'])")
    page.fill("#dispatch-search", f"#{cid}")
    page.press("#dispatch-search", "Enter")
    row = page.locator(f"#dispatch-grid .ag-row[row-id='{cid}']")
    row.wait_for()
    page.wait_for_function("() => (document.querySelector('#dispatch-total')||{}).innerText === '共 1 件'")
    row.locator("[col-id='title']").click()
    page.wait_for_selector(f"#case-body .case-title:has-text('#{cid}')")


def _chip(page, text: str) -> None:
    page.wait_for_function("t => (document.querySelector('#case-body .state-chip')||{}).innerText === t", arg=text)


def _one_click(page, css: str, label: str, apply_now: bool) -> None:
    page.locator(f"#case-actions {css}").click()
    if apply_now:
        page.locator("#case-apply-now").click()
    page.wait_for_selector(f"#case-result:has-text('已完成：{label}')")


def run_once(browser, base: str, apply_now: bool) -> dict[str, tuple[tuple[int, int], float]]:
    out: dict[str, tuple[tuple[int, int], float]] = {}
    dctx, disp = _login(browser, base, "dispatcher")
    body = {"source": "bench", "external_id": uuid.uuid4().hex, "channel": "12345", "title": "基准：人行道积水",
            "category_code": "E0101", "address": "西湖区文三路 1 号", "lon": 120.10, "lat": 30.27}
    cid = disp.request.post("/api/v1/incidents", data=json.dumps(body),
                            headers={"Content-Type": "application/json"}).json()["id"]
    disp.goto(base + "/dispatch")
    _taps(disp)
    t = time.perf_counter()
    _search_open(disp, cid)
    _one_click(disp, ".act-register", "立案", apply_now)
    _chip(disp, "立案")
    out["register"] = (_taps(disp), time.perf_counter() - t)
    t = time.perf_counter()
    disp.locator("#case-actions .act-dispatch").click()
    disp.wait_for_selector("#case-form:not(.hidden)")
    disp.click("#case-confirm")
    disp.wait_for_selector("#case-result:has-text('已完成：派遣')")
    out["dispatch"] = (_taps(disp), time.perf_counter() - t)
    dctx.close()

    pctx, dept = _login(browser, base, "department")
    _taps(dept)
    t = time.perf_counter()
    dept.goto(base + "/dispatch")
    row = dept.locator(f"#dispatch-grid .ag-center-cols-container .ag-row[row-id='{cid}']")
    row.wait_for()
    row.locator("[col-id='title']").click()
    dept.wait_for_selector(f"#case-body .case-title:has-text('#{cid}')")
    _one_click(dept, ".act-sign", "签收", apply_now)
    _chip(dept, "处置中")
    out["sign"] = (_taps(dept), time.perf_counter() - t)
    t = time.perf_counter()
    _one_click(dept, ".act-contact", "先行联系", apply_now)
    out["contact"] = (_taps(dept), time.perf_counter() - t)
    t = time.perf_counter()
    dept.locator("#case-actions .act-resolve").click()
    dept.wait_for_selector("#case-form:not(.hidden)")
    dept.locator("#case-note").press_sequentially("已处理")
    dept.click("#case-confirm")
    dept.wait_for_selector("#case-result:has-text('已完成：处置反馈')")
    out["resolve"] = (_taps(dept), time.perf_counter() - t)
    pctx.close()

    ictx, insp = _login(browser, base, "inspector")
    insp.goto(base + "/dispatch")
    _taps(insp)
    t = time.perf_counter()
    _search_open(insp, cid)
    _one_click(insp, ".act-verify_pass", "核查通过", apply_now)
    _chip(insp, "已结案")
    out["verify_pass"] = (_taps(insp), time.perf_counter() - t)
    ictx.close()

    rctx, rev = _login(browser, base, "dispatcher")
    rev.goto(base + "/dispatch")
    _taps(rev)
    t = time.perf_counter()
    _search_open(rev, cid, "pending_revisit")        # 待回访: the closed citizen cases not yet reached
    _one_click(rev, ".act-revisit_satisfied", "满意", apply_now)
    rev.wait_for_selector("#case-body .revisit-chip.r-satisfied")
    out["revisit"] = (_taps(rev), time.perf_counter() - t)
    case = rev.request.get(f"/api/v1/incidents/{cid}").json()
    rctx.close()
    if (case["state"], case.get("revisit_result"), bool(case.get("first_contacted_at"))) != ("closed", "satisfied", True):
        raise SystemExit(f"case {cid} ended {case['state']}, 回访 {case.get('revisit_result')}, "
                         f"先行联系 {case.get('first_contacted_at')}: not closed, satisfied and contacted")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.lifecycle_browser", description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=3, help="days of demo history")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--port", type=int, default=0, help="the app's port (default: a free one)")
    p.add_argument("--apply-now", action="store_true", help="click 立即生效 instead of waiting out the undo window")
    args = p.parse_args(argv)
    header("a case's whole life by three users in headless Chromium, 1920×1080", argv)
    from app import DEFAULTS
    UNDO_SECONDS = DEFAULTS["UNDO_SECONDS"]     # _env passes no CITYOPS_UNDO_SECONDS: the app runs at it
    tmp = Path(tempfile.mkdtemp(prefix="cityops-bench-lifecycle-"))
    port = args.port or _free_port()
    env = _env(tmp / "cityops.db", port, args.days)
    _flask(env, "init-db", "--demo")
    for role in ROLES:
        extra = ["--department", DEPARTMENT] if role == "department" else []
        _flask(env, "create-user", f"bench-{role}", "--role", role, *extra, "--password-stdin", "--replace",
               stdin=PASSWORD.format(role=role) + "\n")
    with serving(env, tmp, port) as (base, browser):
        run_once(browser, base, args.apply_now)        # warm-up: first page loads compile nothing twice
        runs = [run_once(browser, base, args.apply_now) for _ in range(args.runs)]
    steps = list(runs[0])
    print(f"  {'step':12s} {'taps':>4s} {'action':>6s}  seconds (median)"
          "   — taps: clicks, keys and one per text typed (finding the case included); action: those on actions")
    for s in steps:
        secs = [r[s][1] for r in runs]
        print(f"  {s:12s} {runs[0][s][0][0]:4d} {runs[0][s][0][1]:6d}  " + " ".join(f"{x:.2f}" for x in secs)
              + f"  ({statistics.median(secs):.2f})")
    taps = [sum(r[s][0][0] for s in steps) for r in runs]
    action_taps = [sum(r[s][0][1] for s in steps) for r in runs]
    secs = [sum(r[s][1] for s in steps) for r in runs]
    one_click = ("register", "sign", "contact", "verify_pass", "revisit")
    wait = 0.0 if args.apply_now else UNDO_SECONDS * len(one_click)
    print(f"  total: {statistics.median(taps):.0f} taps ({statistics.median(action_taps):.0f} on actions), "
          f"{statistics.median(secs):.1f} s, of which {wait:.0f} s "
          f"are the undo windows of {len(one_click)} one-click steps ({UNDO_SECONDS:g} s each)")
    print(f"RESULT lifecycle_taps={statistics.median(taps):.0f} lifecycle_action_taps={statistics.median(action_taps):.0f} "
          f"lifecycle_s={statistics.median(secs):.2f} "
          f"lifecycle_wait_s={wait:.0f} lifecycle_active_s={statistics.median(secs) - wait:.2f} "
          f"lifecycle_one_click_action_taps_max={max(r[s][0][1] for r in runs for s in one_click)} "
          f"apply_now={int(args.apply_now)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
