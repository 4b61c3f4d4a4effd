"""The brief in a real browser at 1920×1080: cards with their numbers equal the API's, a click on a
card lists the cases behind it, the period picker changes the period, the export links download
a PDF and an Excel file for the page's own period."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlparse

from tests.browser.conftest import ARTIFACTS


def _open(page, login):
    login(page, "leader", "/brief")
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
    assert page.locator("#brief-case-cards .brief-card").count() == 12
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
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "brief-1920x1080.png"))
    assert page.errors == [], "\n".join(page.errors)


def test_clicking_a_card_lists_its_cases_and_they_open(new_page, login):
    page = _open(new_page(1920, 1080), login)
    ratio = page.locator("[id*='\"code\":\"closure_rate\"'] .card-ratio").inner_text()
    num, den = (int(x.replace(",", "")) for x in re.findall(r"[\d,]+", ratio)[:2])
    page.click("[id*='\"code\":\"closure_rate\"']")
    page.wait_for_selector("#brief-drill-table tbody tr")
    summary = page.inner_text("#brief-drill-summary")
    assert f"{num:,}" in summary and f"{den:,}" in summary
    rows = page.locator("#brief-drill-table tbody tr")
    assert rows.count() == min(den, 200)
    first = rows.first.locator("a").get_attribute("href")
    assert re.fullmatch(r"/incidents/\d+", first)
    if den > num:       # 结案率: the cases not closed yet come first
        assert rows.first.locator("td.tick").inner_text() == ""
    page.click("#brief-drill-close")
    page.wait_for_selector("#brief-drill-table", state="detached")
    assert page.errors == [], "\n".join(page.errors)


def test_the_period_picker_and_the_exports(new_page, login):
    page = _open(new_page(1920, 1080), login)
    before = page.get_attribute("#brief-pdf", "href")
    page.click("#brief-preset label:has-text('今日')")
    page.wait_for_function("h => document.querySelector('#brief-pdf').getAttribute('href') !== h", arg=before)
    href = page.get_attribute("#brief-pdf", "href")
    q = parse_qs(urlparse(href).query)
    assert q["to"][0] > q["from"][0]
    period = page.inner_text(".brief-period-main")
    assert "至" not in period                                   # a single day
    for link, kind in (("#brief-pdf", "application/pdf"), ("#brief-xlsx", "spreadsheetml")):
        url = page.get_attribute(link, "href")
        info = page.evaluate("""async u => { const r = await fetch(u);
            return {status: r.status, type: r.headers.get('content-type'), size: (await r.arrayBuffer()).byteLength}; }""",
                             url)
        assert info["status"] == 200 and kind in info["type"] and info["size"] > 1000, (url, info)
    assert page.errors == [], "\n".join(page.errors)
