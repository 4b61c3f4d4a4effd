"""The brief in a real browser at 1920×1080: cards with their numbers equal the API's, a click on a
card opens the drawer with every case behind it and nothing else of the page is drawn again, the
period picker opens on the last complete month and remembers the choice, the export links
download a PDF and an Excel file (through the background job) for the page's own period."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlparse

from tests.browser.conftest import ARTIFACTS


def _open(page, login, path: str = "/brief?preset=last30"):
    """The brief on a period with cases (the demo history is 3 days: the default, last month, is empty)."""
    login(page, "leader", path)
    page.wait_for_selector("#brief-case-cards .brief-card")
    return page


def _api(page, path: str) -> dict:
    return page.evaluate("async p => (await fetch(p)).json()", path)


def test_the_cards_show_the_numbers_of_the_api_for_the_page_period(new_page, login):
    page = _open(new_page(1920, 1080), login)
    href = page.get_attribute("#brief-pdf", "href")
    q = parse_qs(urlparse(href).query)
    body = _api(page, "/api/v1/kpis?" + "&".join(f"{k}={v[0].replace('+', '%2B')}" for k, v in q.items()))
    api = {k["code"]: k for k in body["kpis"]}
    assert page.locator("#brief-case-cards .brief-card").count() == 19   # 按时签收率, 退单数, the five 回访 rates
    assert page.locator("#brief-service-cards .brief-card").count() == 4
    for code in ("reported_count", "closure_rate", "on_time_disposal_rate", "overdue_open_count"):
        card = page.locator(f"[id*='\"code\":\"{code}\"']")
        value = card.locator(".card-value").inner_text()
        k = api[code]
        want = f"{100 * k['value']:.1f}" if k["unit"] == "%" else f"{int(k['value']):,}"
        assert value == want, (code, value, want)
        ratio = card.locator(".card-ratio").inner_text()
        assert f"{int(k['numerator']):,}" in ratio
    assert page.locator("#brief-rank-department tbody tr").count() > 0
    assert page.locator("#brief-online-table tbody tr").count() > 0
    # every card keeps its 口径 as a tooltip and its trend (or why there is none)
    assert page.locator(".brief-card .card-formula-mark[title]").count() == 23
    assert page.locator(".brief-card .card-spark").count() == 23
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "brief-1920x1080.png"))
    assert page.errors == [], "\n".join(page.errors)


def test_a_card_click_opens_the_drawer_with_every_case_and_leaves_the_page_as_it_was(new_page, login):
    page = _open(new_page(1920, 1080), login)
    card = "[id*='\"code\":\"closure_rate\"']"
    ratio = page.locator(f"{card} .card-ratio").inner_text()
    num, den = (int(x.replace(",", "")) for x in re.findall(r"[\d,]+", ratio)[:2])
    # the page's own nodes, remembered: a re-render would put new ones in their place
    page.evaluate("""() => { window.__cards = document.querySelector('#brief-case-cards');
                             window.__body = document.querySelector('#brief-body').firstElementChild; }""")
    posted = []
    page.on("request", lambda r: posted.append(r.post_data or "") if "_dash-update-component" in r.url else None)
    page.click(card)
    page.wait_for_selector("#brief-drill.open")
    page.wait_for_selector("#brief-drill-grid .ag-row[row-index='0'] .ag-cell[col-id='title']:not(:empty)")
    summary = page.inner_text("#brief-drill-summary")
    assert f"{num:,}" in summary and f"{den:,}" in summary
    assert page.evaluate("() => window.__cards === document.querySelector('#brief-case-cards') && window.__cards.isConnected")
    assert page.evaluate("() => window.__body === document.querySelector('#brief-body').firstElementChild")
    assert not [p for p in posted if "brief-body" in json.loads(p)["output"]]
    count = page.evaluate("() => dash_ag_grid.getApi('brief-drill-grid').getDisplayedRowCount()")
    assert count == den
    first = page.locator("#brief-drill-grid .ag-row[row-index='0']")
    href = first.locator("a").first.get_attribute("href")
    assert re.fullmatch(r"/incidents/\d+", href)
    if den > num:       # 结案率: the cases not closed yet come first, marked as holding it back
        assert "拉低指标" in first.locator(".ag-cell[col-id='mark']").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "brief-drawer-1920x1080.png"))
    # the last case too: the grid asks the server for the block it scrolls to
    page.evaluate("n => dash_ag_grid.getApi('brief-drill-grid').ensureIndexVisible(n - 1, 'bottom')", den)
    page.wait_for_selector(f"#brief-drill-grid .ag-row[row-index='{den - 1}'] .ag-cell[col-id='title']:not(:empty)")
    page.keyboard.press("Escape")                                        # Esc closes it
    page.wait_for_selector("#brief-drill:not(.open)", state="attached")
    page.focus(card)                                                     # a focused card opens with Enter
    page.keyboard.press("Enter")
    page.wait_for_selector("#brief-drill.open")
    page.click("#brief-drill-close")
    page.wait_for_selector("#brief-drill:not(.open)", state="attached")
    assert page.evaluate("() => window.__cards.isConnected")
    assert page.errors == [], "\n".join(page.errors)


def test_the_period_picker_remembers_the_choice_and_the_exports(new_page, login):
    page = _open(new_page(1920, 1080), login, "/brief")
    assert page.is_checked("#brief-preset input[value='last_month']")     # a first visit: the last whole month
    assert page.inner_text("#brief-period-label") == "上月"
    before = page.get_attribute("#brief-pdf", "href")
    page.click("#brief-preset label:has-text('本月')")
    page.wait_for_function("h => document.querySelector('#brief-pdf').getAttribute('href') !== h", arg=before)
    assert re.fullmatch(r"本月（截至 \d+ 日）", page.inner_text("#brief-period-label"))
    page.reload()
    page.wait_for_selector("#brief-case-cards .brief-card")
    assert page.is_checked("#brief-preset input[value='month']")          # remembered in this browser
    before = page.get_attribute("#brief-pdf", "href")
    page.click("#brief-preset label:has-text('今日')")
    page.wait_for_function("h => document.querySelector('#brief-pdf').getAttribute('href') !== h", arg=before)
    href = page.get_attribute("#brief-pdf", "href")
    q = parse_qs(urlparse(href).query)
    assert q["to"][0] > q["from"][0]
    assert re.fullmatch(r"今日（截至 \d\d:\d\d）", page.inner_text("#brief-period-label"))
    period = page.inner_text(".brief-period-main").split("统计期：")[1]
    assert " 至 " not in period                                 # a single day
    for link, kind in (("#brief-pdf", "application/pdf"), ("#brief-xlsx", "spreadsheetml")):
        url = page.get_attribute(link, "href")
        info = page.evaluate("""async u => { const r = await fetch(u);
            return {status: r.status, type: r.headers.get('content-type'), size: (await r.arrayBuffer()).byteLength}; }""",
                             url)
        assert info["status"] == 200 and kind in info["type"] and info["size"] > 1000, (url, info)
    # the Excel button runs the background job, shows its progress and downloads the file
    with page.expect_download() as download:
        page.click("#brief-xlsx")
    assert download.value.suggested_filename.endswith(".xlsx")
    assert page.errors == [], "\n".join(page.errors)
