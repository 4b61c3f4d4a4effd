"""The leaders' brief: the page (through its Dash callbacks), /api/v1/kpis, the PDF and the Excel
file give the same numbers; a card lists the cases behind its number; exports check role and
parameters. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import io
import json
from types import SimpleNamespace
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from dashboards import _brief_view as bv
from data_sources.feeds.demo_service_rates import seed_kpis, seed_service_rates
from data_sources.ingest import ingest
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import kpis
from incidents.queries import brief as qb
from tests.integration.helpers import login

SH = ZoneInfo("Asia/Shanghai")
START, END, AS_OF = datetime(2024, 5, 6, tzinfo=SH), datetime(2024, 5, 9, tzinfo=SH), datetime(2024, 5, 10, 12, tzinfo=SH)
PLACES = {"330106-CGJ": (120.1293, 30.2585), "330105-CGJ": (120.1420, 30.3190)}


def _seed(app):
    """54 cases over two district bureaus (closed, dispatched, registered, one voided), their
    service-rate rows and the KPI feed."""
    db, rt = get_db(app.server), get_runtime(app.server)
    recs, n = [], 0
    for dept, count in (("330106-CGJ", 30), ("330105-CGJ", 24)):
        lon, lat = PLACES[dept]
        for i in range(count):
            n += 1
            day = 6 + i % 3
            state = "closed" if i % 5 < 3 else ("dispatched" if i % 5 == 3 else "registered")
            rec = {"external_id": f"B{n}", "title": f"占道经营 {n}", "category_code": "C0101",
                   "reported_at": f"2024-05-0{day} {8 + i % 8:02d}:15", "lon": lon + i * 1e-4, "lat": lat,
                   "state": state, "department_code": dept}
            if state == "closed":
                rec["closed_at"] = f"2024-05-0{day + (1 if i % 2 else 0)} 16:40"
            recs.append((rec, n))
    recs.append(({"external_id": "B-dup", "title": "重复", "category_code": "C0101", "reported_at": "2024-05-07 10:00",
                  "lon": PLACES["330106-CGJ"][0], "lat": PLACES["330106-CGJ"][1], "state": "duplicate"}, n + 1))
    ingest(db, rt.rules, rt.pack, recs, "native", now=datetime(2024, 6, 1, tzinfo=SH))
    with db.session_scope() as s:
        seed_service_rates(s, rt.pack, date(2024, 4, 1), date(2024, 5, 9), seed=3)
        seed_kpis(s, date(2024, 4, 1), date(2024, 5, 9), seed=3)


@pytest.fixture
def seeded(app):
    _seed(app)
    return app


def _brief(app):
    with app.server.test_request_context():
        return qb.brief(START, END, AS_OF)


def _q() -> str:
    from urllib.parse import urlencode
    return urlencode({"from": START.isoformat(), "to": END.isoformat(), "as_of": AS_OF.isoformat()})


# --------------------------------------------------------------------------- the API

def test_the_brief_equals_the_api_overall_per_department_and_per_district(seeded):
    b = _brief(seeded)
    client = login(seeded.server, "boss", "leader")
    for by, report in (("department", b.report), ("district", b.districts)):
        body = client.get(f"/api/v1/kpis?{_q()}&group_by={by}").json
        api = {k["code"]: k for k in body["kpis"]}
        for code, k in report.kpis.items():
            assert (api[code]["value"], api[code]["numerator"], api[code]["denominator"]) == \
                (k.value, k.numerator, k.denominator), code
        ranked = [(r["code"], r["score"], r["grade"]) for r in body["ranking"]["ranked"]]
        assert ranked == [(r.code, r.score, r.grade) for r in report.ranking.ranked]
    assert b.report.kpis["reported_count"].value == 55
    assert b.report.kpis["closure_rate"].denominator == 54          # the voided duplicate is out
    assert [r.code for r in b.report.ranking.ranked] and b.report.ranking.min_volume == 20
    assert b.report.kpis["online_rate"].denominator > 0              # the 一网通办 rows of the period
    assert {i.code for i in b.indicators} >= {"hotline_connect_rate", "pm25"}


# --------------------------------------------------------------------------- the page

def _dash(client, output: str, inputs: list, state: list | None = None):
    """A crafted POST to a callback; a pattern-matching input (dict id, ALL) goes as a list."""
    outs = [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in output.strip(".").split("...")]
    first = inputs[0]
    if isinstance(first["id"], dict):
        changed = json.dumps(first["id"], sort_keys=True, separators=(",", ":")) + "." + first["property"]
        inputs = [[first]] + inputs[1:]
    else:
        changed = f"{first['id']}.{first['property']}"
    body = {"output": output, "outputs": outs[0] if len(outs) == 1 else outs, "inputs": inputs,
            "state": state or [], "changedPropIds": [changed]}
    return client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")


STORE = {"from": START.isoformat(), "to": END.isoformat(), "as_of": AS_OF.isoformat(), "preset": "custom"}
RENDER = "..brief-body.children...brief-period-text.children...brief-pdf.href...brief-xlsx.href.."
SHOWN = [{"id": "brief-period", "property": "data", "value": None}]     # the period the page shows: none yet


def _markup(node: dict) -> dict:
    """A block of server-written HTML (dashboards._markup: a Markdown component with raw HTML) as
    the components it stands for: {"props": {attributes, "className", "children"}}, so that the
    helpers below read it like the rest of the page."""
    from html.parser import HTMLParser

    class Tree(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.root = {"props": {"children": []}}
            self.stack = [self.root]

        def handle_starttag(self, tag, attrs):
            props = {("className" if k == "class" else k): v for k, v in attrs}
            el = {"type": tag, "props": {**props, "children": []}}
            self.stack[-1]["props"]["children"].append(el)
            if tag not in ("img", "br", "hr"):
                self.stack.append(el)

        def handle_endtag(self, tag):
            self.stack.pop()

        def handle_data(self, data):
            self.stack[-1]["props"]["children"].append(data)

    tree = Tree()
    tree.feed(node["props"]["children"])
    return tree.root


def _is_markup(node) -> bool:
    return (isinstance(node, dict) and node.get("type") == "Markdown"
            and node.get("props", {}).get("dangerously_allow_html") is True)


def _texts(node) -> list[str]:
    if _is_markup(node):
        return _texts(_markup(node))
    if isinstance(node, str):
        return [node]
    if isinstance(node, (int, float)):
        return [str(node)]
    if isinstance(node, list):
        return [s for x in node for s in _texts(x)]
    if isinstance(node, dict):
        return _texts(node.get("props", {}).get("children")) if "props" in node else []
    return []


def _find(node, pred):
    if _is_markup(node):
        yield from _find(_markup(node), pred)
    elif isinstance(node, list):
        for x in node:
            yield from _find(x, pred)
    elif isinstance(node, dict) and "props" in node:
        if pred(node["props"]):
            yield node
        yield from _find(node["props"].get("children"), pred)


def test_the_page_shows_the_numbers_of_the_brief(seeded):
    b = _brief(seeded)
    client = login(seeded.server, "boss", "leader")
    resp = _dash(client, RENDER, [{"id": "brief-period", "property": "data", "value": STORE}])
    assert resp.status_code == 200, resp.data[:300]
    out = resp.json["response"]
    body = out["brief-body"]["children"]
    for code in bv.CASE_CARDS + bv.SERVICE_CARDS:
        k = b.report.kpis[code]
        card = next(_find(body, lambda p, c=code: p.get("id") == {"type": "brief-card", "code": c}))
        text = " ".join(_texts(card))
        assert bv.number(k.value, k.unit) in text and bv.ratio_text(k) in text, (code, text)
        assert k.name in text and k.formula not in text                 # 口径 is a tooltip, not text
        assert card["props"]["title"] == k.formula
        mark = next(_find(card, lambda p: p.get("className") == "card-formula-mark"))
        assert mark["props"]["title"] == k.formula
        assert bv.change_text(k.value, b.previous.kpis[code].value, k.unit) in text
    table = next(_find(body, lambda p: p.get("id") == "brief-rank-department"))
    text = " ".join(_texts(table))
    for r in b.report.ranking.ranked:
        assert r.name in text and f"{r.score:.1f}" in text
    assert out["brief-pdf"]["href"] == f"/brief/export.pdf?{_q()}"
    assert "2024-05-06 至 2024-05-08" in " ".join(_texts(out["brief-period-text"]["children"]))


def test_the_period_of_the_address_is_drawn_in_the_first_answer_and_not_again(seeded):
    client = login(seeded.server, "boss", "leader")
    route = [{"id": "_pages_location", "property": "pathname", "value": "/brief"},
             {"id": "_pages_location", "property": "search", "value": "?preset=month"}]
    resp = _dash(client, ".._pages_content.children..._pages_store.data..", route)
    assert resp.status_code == 200, resp.data[:300]
    page = resp.json["response"]["_pages_content"]["children"]
    shown = next(_find(page, lambda p: p.get("id") == "brief-period"))["props"]["data"]
    assert shown["preset"] == "month"
    # the cards of the first answer are those the period's own callback draws
    drawn = _dash(client, RENDER, [{"id": "brief-period", "property": "data", "value": shown}]).json["response"]
    for code in bv.CASE_CARDS + bv.SERVICE_CARDS:
        def card(node, c=code):
            return " ".join(_texts(next(_find(node, lambda p: p.get("id") == {"type": "brief-card", "code": c}))))
        assert card(page) == card(drawn["brief-body"]["children"]), code
    pdf = next(_find(page, lambda p: p.get("id") == "brief-pdf"))["props"]["href"]
    assert pdf == drawn["brief-pdf"]["href"]
    # the browser's first call of the period callback remembers the choice and draws nothing again
    inputs = [{"id": "brief-preset", "property": "value", "value": "month"},
              {"id": "brief-range", "property": "start_date", "value": None},
              {"id": "brief-range", "property": "end_date", "value": None},
              {"id": "brief-tick", "property": "n_intervals", "value": None}]
    out = _dash(client, _outputs(client, "brief-period.data"), inputs,
                [{"id": "brief-period", "property": "data", "value": shown}]).json["response"]
    assert out["brief-choice"]["data"] == {"preset": "month"}
    assert "brief-period" not in out


def test_the_brief_writes_names_from_the_data_as_text(seeded):
    from dashboards import brief as page
    from dashboards._markup import Markup, tag
    with seeded.server.test_request_context():
        rows = page.red_black(SimpleNamespace(ranking=SimpleNamespace(
            ranked=[SimpleNamespace(name='<img src=x onerror="alert(1)">', score=90.0, grade="A")],
            red=[SimpleNamespace(name='<img src=x onerror="alert(1)">', score=90.0, grade="A")], black=[])))
    html_ = rows.children
    assert "<img" not in html_ and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html_
    assert '<img src=x onerror="alert(1)">' in " ".join(_texts(rows.to_plotly_json()))     # shown as written
    assert isinstance(tag("b", "x"), Markup) and "\n" not in tag("td", "a\nb", title="c\nd")


def _outputs(client, needle: str) -> str:
    """The output string of the callback whose outputs name ``needle`` (as the browser reads it
    from /_dash-dependencies: an allow_duplicate output carries a suffix)."""
    deps = client.get("/_dash-dependencies").json
    return next(d["output"] for d in deps if needle in d["output"])


CARD_CLICK = [{"id": {"type": "brief-card", "code": "closure_rate"}, "property": "n_clicks", "value": 1}]


def _open_drawer(client, code: str = "closure_rate"):
    click = [{"id": {"type": "brief-card", "code": code}, "property": "n_clicks", "value": 1}]
    return _dash(client, _outputs(client, "brief-drill-head.children"), click,
                 [{"id": "brief-period", "property": "data", "value": STORE}])


def _rows(client, key: dict, first: int, last: int):
    return _dash(client, "brief-drill-grid.getRowsResponse",
                 [{"id": "brief-drill-grid", "property": "getRowsRequest", "value": {"startRow": first, "endRow": last}}],
                 [{"id": "brief-drill-key", "property": "data", "value": key}])


def test_a_viewer_cannot_render_or_drill_the_brief_through_crafted_callbacks(seeded):
    leader = login(seeded.server, "boss", "leader")
    viewer = login(seeded.server, "vic", "viewer")
    assert _dash(viewer, RENDER, [{"id": "brief-period", "property": "data", "value": STORE}]).status_code == 204
    drawer = _outputs(leader, "brief-drill-head.children")
    resp = _dash(viewer, drawer, CARD_CLICK, [{"id": "brief-period", "property": "data", "value": STORE}])
    assert resp.status_code == 204
    key = {"code": "closure_rate", **{k: STORE[k] for k in ("from", "to", "as_of")}}
    assert _rows(viewer, key, 0, 100).status_code == 204
    period = _outputs(leader, "brief-period.data")
    resp = _dash(viewer, period, [{"id": "brief-preset", "property": "value", "value": "month"},
                                  {"id": "brief-range", "property": "start_date", "value": None},
                                  {"id": "brief-range", "property": "end_date", "value": None},
                                  {"id": "brief-tick", "property": "n_intervals", "value": None}], SHOWN)
    assert resp.status_code == 204


def test_a_card_click_answers_only_the_drawer_which_pages_through_every_case(seeded):
    b = _brief(seeded)
    client = login(seeded.server, "boss", "leader")
    resp = _open_drawer(client)
    assert resp.status_code == 200, resp.data[:300]
    out = resp.json["response"]
    assert set(out) == {"brief-drill-head", "brief-drill-key", "brief-drill"}      # nothing else of the page
    assert out["brief-drill"]["className"] == "brief-drill open"
    k = b.report.kpis["closure_rate"]
    head = " ".join(_texts(out["brief-drill-head"]["children"]))
    assert f"{int(k.numerator):,}" in head and f"{int(k.denominator):,}" in head and k.formula in head
    key = out["brief-drill-key"]["data"]
    assert key["code"] == "closure_rate"
    rows, step = [], 7                     # small blocks: the seed's 54 cases take eight of them
    while True:
        page = _rows(client, key, len(rows), len(rows) + step)
        assert page.status_code == 200, page.data[:300]
        got = page.json["response"]["brief-drill-grid"]["getRowsResponse"]
        assert got["rowCount"] == k.denominator
        if not got["rowData"]:
            break
        rows += got["rowData"]
    assert len(rows) == k.denominator and len({r["id"] for r in rows}) == len(rows)
    assert sum(r["in_numerator"] for r in rows) == k.numerator
    # 结案率: the cases not closed hold it back, are marked, and come first
    holding = [r["holding"] for r in rows]
    assert holding == [not r["in_numerator"] for r in rows]
    assert holding == sorted(holding, reverse=True) and any(holding)
    assert all("拉低指标" in r["mark"] for r in rows if r["holding"])


def test_the_drawer_of_a_count_lists_its_cases_and_a_crafted_block_is_bounded(seeded):
    b = _brief(seeded)
    client = login(seeded.server, "boss", "leader")
    key = _open_drawer(client, "reported_count").json["response"]["brief-drill-key"]["data"]
    got = _rows(client, key, 0, 10_000_000).json["response"]["brief-drill-grid"]["getRowsResponse"]
    assert got["rowCount"] == b.report.kpis["reported_count"].value == 55
    assert len(got["rowData"]) == 55 and not any(r["holding"] for r in got["rowData"])   # a count up: no blame
    assert _rows(client, {**key, "code": "online_rate"}, 0, 10).status_code == 204     # not from cases
    assert _rows(client, {**key, "as_of": "not a time"}, 0, 10).status_code == 204


def test_drill_ids_are_the_cases_of_the_numerator_and_the_cohort(seeded):
    with seeded.server.test_request_context():
        b = qb.brief(START, END, AS_OF)
        for code in kpis.CASE_KPIS:
            d = qb.drill(START, END, AS_OF, code)
            k = b.report.kpis[code]
            if code == "mean_handling_hours":
                assert d.numerator == k.denominator
            else:
                assert d.numerator == k.numerator, code
                assert d.denominator == (int(k.denominator) if k.denominator is not None else None), code
        with pytest.raises(ValueError):
            qb.drill(START, END, AS_OF, "online_rate")


# --------------------------------------------------------------------------- exports

def test_the_pdf_is_a4_with_an_embedded_chinese_font_and_the_same_numbers(seeded):
    from pypdf import PdfReader
    b = _brief(seeded)
    client = login(seeded.server, "boss", "leader")
    resp = client.get(f"/brief/export.pdf?{_q()}")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    pdf = PdfReader(io.BytesIO(resp.data))
    w, h = (float(x) for x in pdf.pages[0].mediabox.upper_right)
    assert (round(w), round(h)) == (595, 842)                        # A4 in points
    fonts = []
    for page in pdf.pages:
        for f in (page["/Resources"].get("/Font") or {}).values():
            f = f.get_object()
            desc = f.get("/FontDescriptor")
            fonts.append((str(f["/BaseFont"]), bool(desc and "/FontFile2" in desc.get_object())))
    assert any("WenQuanYi" in name and embedded for name, embedded in fonts), fonts
    text = "".join(p.extract_text() for p in pdf.pages)
    assert "城市运行指标简报" in text and "2024-05-06 至 2024-05-08" in text
    for code in bv.CASE_CARDS + bv.SERVICE_CARDS:
        k = b.report.kpis[code]
        assert k.name in text and bv.with_unit(k.value, k.unit) in text and bv.ratio_text(k) in text, code
    for r in b.report.ranking.ranked:
        assert f"{r.score:.1f}" in text


def test_the_excel_file_has_the_kpis_and_case_lists_that_add_up(seeded):
    b = _brief(seeded)
    wb = _workbook(seeded)
    assert wb.sheetnames == ["概览", "走势", "部门排名", "区县排名", "一网通办", "其他指标", "案件清单"]
    rows = {r[0]: r for r in wb["概览"].iter_rows(min_row=6, values_only=True) if r[0]}
    for code in bv.CASE_CARDS + bv.SERVICE_CARDS:
        k = b.report.kpis[code]
        # Excel keeps 15 significant digits
        assert rows[code][2] == (pytest.approx(k.value, rel=1e-12) if k.value is not None else "—"), code
        assert rows[code][10] == pytest.approx(k.numerator), code
        assert rows[code][11] == (k.denominator if k.denominator is not None else "—"), code
    cases = list(wb["案件清单"].iter_rows(min_row=2, values_only=True))
    header, cases = cases[0], cases[1:]
    for code in kpis.CASE_KPIS:
        k = b.report.kpis[code]
        col = header.index(k.name)
        n = sum(1 for r in cases if r[col] == "分子")
        d = sum(1 for r in cases if r[col] == "分母")
        if code == "mean_handling_hours":
            assert n == k.denominator
        else:
            assert n == k.numerator, code
            if k.denominator is not None:
                assert n + d == k.denominator, code
    ranked = [r for r in wb["部门排名"].iter_rows(min_row=2, values_only=True) if isinstance(r[0], int)]
    assert [(r[1], r[8]) for r in ranked] == [(x.code, x.score) for x in b.report.ranking.ranked]


@pytest.mark.parametrize("role", ["viewer", "department", "inspector"])
def test_exports_are_forbidden_to_roles_without_the_brief(seeded, role):
    client = login(seeded.server, f"u-{role}", role, "330106-CGJ" if role == "department" else None)
    for ext in ("pdf", "xlsx"):
        resp = client.get(f"/brief/export.{ext}?{_q()}")
        assert resp.status_code == 403 and resp.json["error"]["code"] == "forbidden"


def test_exports_need_a_login_and_valid_dates(seeded):
    anon = seeded.server.test_client()
    assert anon.get(f"/brief/export.pdf?{_q()}").status_code in (302, 401)
    client = login(seeded.server, "boss", "leader")
    for query, needle in (("from=2024-05-06", "to"), ("from=yesterday&to=2024-05-08", "from"),
                          ("from=2024-05-08&to=2024-05-01", "before")):
        resp = client.get(f"/brief/export.xlsx?{query}")
        assert resp.status_code == 400 and needle in resp.json["error"]["message"], query
    # dates are whole days in city time, the end inclusive
    resp = client.get("/brief/export.xlsx?from=2024-05-06&to=2024-05-08&as_of=2024-05-10T12:00:00")
    assert resp.status_code == 200


# --------------------------------------------------------------------------- periods

def test_the_period_presets_in_city_time():
    now = datetime(2026, 11, 22, 19, 30, tzinfo=timezone.utc)              # Monday 03:30 in Hangzhou
    tz = "Asia/Shanghai"

    def p(preset, **kw):
        r = qb.preset_period(preset, now, tz, **kw)
        return r.start.astimezone(SH).date().isoformat(), r.end.astimezone(SH).date().isoformat()
    assert p("today") == ("2026-11-23", "2026-11-24")
    assert p("week") == ("2026-11-23", "2026-11-30")
    assert p("month") == ("2026-11-01", "2026-12-01")
    assert p("quarter") == ("2026-10-01", "2027-01-01")
    assert p("custom", start=date(2026, 1, 1), end=date(2026, 1, 31)) == ("2026-01-01", "2026-02-01")
    with pytest.raises(ValueError):
        qb.preset_period("custom", now, tz, start=date(2026, 2, 1), end=date(2026, 1, 1))
    with pytest.raises(ValueError):
        qb.preset_period("decade", now, tz)


@pytest.mark.parametrize("start,end,as_of", [
    (START, END, AS_OF),
    (datetime(2024, 5, 6, tzinfo=SH), datetime(2024, 5, 7, tzinfo=SH), datetime(2024, 5, 8, 12, tzinfo=SH)),
    (datetime(2024, 5, 7, tzinfo=SH), datetime(2024, 5, 8, tzinfo=SH), datetime(2024, 5, 7, 13, tzinfo=SH)),
    (datetime(2024, 5, 8, tzinfo=SH), datetime(2024, 5, 9, tzinfo=SH), datetime(2024, 6, 1, tzinfo=SH)),
])
def test_the_sql_prefilter_keeps_every_case_a_kpi_needs(seeded, start, end, as_of):
    """The loader fetches only the cases a period can need; the KPIs equal those over every case."""
    from data_sources.runtime import get_runtime
    from incidents.queries.brief import kpi_report, load_kpi_frames
    rt = get_runtime(seeded.server)
    kw = dict(priority_factors=rt.pack.priority_factors, hours_per_day=rt.calendar.hours_per_day,
              tz=rt.pack.timezone)
    with seeded.server.test_request_context():
        with get_db(seeded.server).session_scope() as s:
            # from the beginning of time to as_of: every case and event there is
            cases, events, rates = load_kpi_frames(s, datetime(2000, 1, 1, tzinfo=SH), as_of, as_of, **kw)
        want = kpis.kpi_report(cases, events, rates, kpis.Period(start, end), as_of, tz=rt.pack.timezone,
                               cal=rt.calendar, targets=rt.pack.kpi_targets)
        got = kpi_report(start, end, as_of)
    for code in kpis.CASE_KPIS:
        assert (got.kpis[code].numerator, got.kpis[code].denominator) == \
            (want.kpis[code].numerator, want.kpis[code].denominator), code


def test_the_page_as_of_is_floored_to_five_minutes_so_leaders_share_one_computation():
    t = datetime(2026, 11, 22, 19, 38, 41, tzinfo=timezone.utc)
    assert qb.floor_as_of(t) == datetime(2026, 11, 22, 19, 35, tzinfo=timezone.utc)
    assert qb.floor_as_of(qb.floor_as_of(t)) == qb.floor_as_of(t)


# --------------------------------------------------------------------------- exports are inert

FORMULA_TITLES = ['=HYPERLINK("http://x","详情")', "=cmd|' /C calc'!A0", "+1", "-2+3", "@SUM(A1)",
                  "=1+1", "\t=2+2", "http://example.com/click"]
MARKUP = '<b>城管</b> & <font color="red">执法</font> <link href="http://x">点</link> 1<2 &amp;'


def _name_things_like_an_attacker(app):
    """Case titles that look like formulas, and a department and an indicator whose names look
    like formulas and reportlab markup (the names reach the exports from the pack and the KPI feed)."""
    from sqlalchemy import select, update
    from incidents.tables import Department, Incident, KpiIndicator
    with get_db(app.server).session_scope() as s:
        ids = s.scalars(select(Incident.id).order_by(Incident.id)).all()
        for i, title in zip(ids, FORMULA_TITLES):
            s.execute(update(Incident).where(Incident.id == i).values(title=title))
        s.execute(update(Department).where(Department.code == "330106-CGJ").values(name="=" + MARKUP))
        code = s.scalars(select(KpiIndicator.code).order_by(KpiIndicator.code).limit(1)).first()
        s.execute(update(KpiIndicator).where(KpiIndicator.code == code).values(name=MARKUP))
    return ids[:len(FORMULA_TITLES)]


def _workbook(app):
    """The Excel file of the test period as a leader downloads it, opened with openpyxl."""
    from openpyxl import load_workbook
    resp = login(app.server, "boss", "leader").get(f"/brief/export.xlsx?{_q()}")
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"], resp.data[:300]
    return load_workbook(io.BytesIO(resp.data))


def test_excel_cells_with_formula_looking_text_stay_text(seeded):
    ids = _name_things_like_an_attacker(seeded)
    wb = _workbook(seeded)
    formulas = [(ws.title, c.coordinate, c.value) for ws in wb for row in ws.iter_rows() for c in row
                if c.data_type == "f"]
    assert formulas == []
    cases = {r[0]: r for r in wb["案件清单"].iter_rows(min_row=3, values_only=True)}
    assert [cases[i][1] for i in ids] == FORMULA_TITLES
    assert cases[ids[0]][4] == "=" + MARKUP                              # the department column
    assert "=" + MARKUP in [r[2] for r in wb["部门排名"].iter_rows(min_row=2, values_only=True)]
    assert MARKUP in [r[2] for r in wb["其他指标"].iter_rows(min_row=2, values_only=True)]
    # the numbers stay numbers
    ranked = [r for r in wb["部门排名"].iter_rows(min_row=2, values_only=True) if isinstance(r[0], int)]
    assert ranked and all(isinstance(r[3], int) and isinstance(r[8], float) for r in ranked)


def test_the_pdf_shows_markup_looking_names_as_written(seeded):
    from pypdf import PdfReader
    _name_things_like_an_attacker(seeded)
    client = login(seeded.server, "boss", "leader")
    resp = client.get(f"/brief/export.pdf?{_q()}")
    assert resp.status_code == 200, resp.data[:300]
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(resp.data)).pages)
    flat = "".join(text.split())
    assert "".join(MARKUP.split()) in flat                              # the indicator's name, verbatim
    assert "".join(("=" + MARKUP).split()) in flat                      # the department's name, verbatim


# --------------------------------------------------------------------------- the period a leader opens on

def test_the_brief_opens_on_the_last_complete_month_and_flags_a_month_to_date(seeded):
    now = datetime(2026, 12, 2, 10, 20, tzinfo=SH)
    tz = "Asia/Shanghai"
    assert bv.DEFAULT_PRESET == "last_month"

    def days(choice):
        p = bv.leader_period(choice, now, tz)
        return p.start.astimezone(SH).date().isoformat(), p.end.astimezone(SH).date().isoformat()
    assert days("last_month") == ("2026-11-01", "2026-12-01")               # whole, finished
    assert days("last30") == ("2026-11-02", "2026-12-02")                   # 30 whole days before today
    assert days("month") == ("2026-12-01", "2027-01-01")
    month = bv.leader_period("month", now, tz)
    assert bv.period_label("month", month.start, month.end, now, tz) == "本月（截至 2 日）"
    assert bv.period_label("month", month.start, month.end, now, tz, en=True) == "Month to date (through the 2nd)"
    last = bv.leader_period("last_month", now, tz)
    assert bv.period_label("last_month", last.start, last.end, now, tz) == "上月"     # finished: no flag

    # through the page's own callbacks: no choice yet → nothing computed (the browser restores
    # the remembered one or the default first); a choice → its period, remembered as the choice
    from dashboards import brief as page
    client = login(seeded.server, "boss", "leader")
    period = _outputs(client, "brief-period.data")
    inputs = [{"id": "brief-preset", "property": "value", "value": None},
              {"id": "brief-range", "property": "start_date", "value": None},
              {"id": "brief-range", "property": "end_date", "value": None},
              {"id": "brief-tick", "property": "n_intervals", "value": None}]
    assert _dash(client, period, inputs, SHOWN).status_code == 204
    inputs[0]["value"] = "last_month"
    resp = _dash(client, period, inputs, SHOWN)
    assert resp.status_code == 200, resp.data[:300]
    out = resp.json["response"]
    assert out["brief-choice"]["data"] == {"preset": "last_month"}
    store = out["brief-period"]["data"]
    assert datetime.fromisoformat(store["to"]).astimezone(SH).day == 1       # ends on a first of the month

    with seeded.server.test_request_context():
        data = dict(page.period_for("month", None, None, datetime(2024, 5, 2, 2, 0, tzinfo=timezone.utc))[0])
    body = _dash(client, RENDER, [{"id": "brief-period", "property": "data", "value": data}]).json["response"]
    text = " ".join(_texts(body["brief-period-text"]["children"]))
    assert "本月（截至 2 日）" in text and "2024-05-01 至 2024-05-31" in text


def test_a_trend_line_needs_enough_finished_slices(seeded):
    b = _brief(seeded)                                  # three days: three slices, fewer than the minimum
    client = login(seeded.server, "boss", "leader")
    body = _dash(client, RENDER, [{"id": "brief-period", "property": "data", "value": STORE}]).json["response"]
    cards = body["brief-body"]["children"]
    card = next(_find(cards, lambda p: p.get("id") == {"type": "brief-card", "code": "closure_rate"}))
    assert len(b.buckets) < bv.MIN_SPARK_POINTS
    assert not list(_find(card, lambda p: str(p.get("src", "")).startswith("data:image/svg")))
    assert "时段不足" in " ".join(_texts(card))
    assert bv.spark_points([0.1, None, 0.3, 0.4, 0.5], partial_from=4) == 3


# --------------------------------------------------------------------------- the PDF's summary

def test_the_pdf_opens_with_a_summary_naming_the_largest_move_a_missed_target_and_the_worst_unit(seeded):
    from pypdf import PdfReader
    b = _brief(seeded)
    client = login(seeded.server, "boss", "leader")
    resp = client.get(f"/brief/export.pdf?{_q()}")
    assert resp.status_code == 200
    first = "".join(PdfReader(io.BytesIO(resp.data)).pages[0].extract_text().split())
    for heading in ("本期总体情况", "主要问题", "下步建议"):
        assert heading in first
    assert first.index("本期总体情况") < first.index("主要问题") < first.index("下步建议") < first.index("一、案件办理")
    r = b.report
    missed = [r.kpis[c] for c in bv.CASE_CARDS + bv.SERVICE_CARDS if r.kpis[c].met is False]
    assert missed, "the seed misses some targets"
    problems = first[first.index("主要问题"):first.index("下步建议")]
    for k in missed:                                   # every target missed, named with its number
        assert "".join(f"{k.name}{bv.with_unit(k.value, k.unit)}".split()) in problems, k.code
    k = max(missed, key=lambda k: abs(k.value - k.target))
    assert "".join(f"{k.name}{bv.with_unit(k.value, k.unit)}，未达目标".split()) in problems
    worst = r.ranking.black[0]
    assert f"{worst.name}{worst.score:.1f}分" in first
    with seeded.server.test_request_context():
        s = bv.summary(b)
    moves = [x for x in s["本期总体情况"] if x.startswith("环比变化最大")]
    changes = [(abs(kpis.change(r.kpis[c].value, b.previous.kpis[c].value, r.kpis[c].unit) or 0), c)
               for c in bv.CASE_CARDS + bv.SERVICE_CARDS]
    top = r.kpis[max(changes, key=lambda x: (x[0], -ord(x[1][0])))[1]]
    if moves:
        assert top.name in moves[0]
        assert "".join(moves[0].split()) in first


# --------------------------------------------------------------------------- Excel as the page prints it

def test_excel_numbers_are_formatted_as_on_the_page_with_a_dash_where_nothing_compares(seeded):
    b = _brief(seeded)
    wb = _workbook(seeded)
    ws = wb["概览"]
    rows = {row[0].value: row for row in ws.iter_rows(min_row=6) if row[0].value}
    want = {"%": "0.0%", "件": "#,##0", "工作小时": "#,##0.0"}
    for code in bv.CASE_CARDS + bv.SERVICE_CARDS:
        k, row = b.report.kpis[code], rows[code]
        if k.value is not None:
            assert row[2].number_format == want[k.unit], code
        prev = b.previous.kpis[code].value
        if prev is None:
            assert row[6].value == "—", code                           # no earlier figure: a dash, not 0
        else:
            assert row[6].number_format == want[k.unit] and row[6].value == pytest.approx(prev), code
        assert row[7].value == bv.change_text(k.value, prev, k.unit)
        if k.denominator is None:
            assert row[11].value == "—", code
    assert any(b.previous.kpis[c].value is None for c in bv.CASE_CARDS), "the seed has an empty earlier period"
    cases = wb["案件清单"]
    first = next(cases.iter_rows(min_row=3, max_row=3))
    assert first[6].number_format == "yyyy-mm-dd hh:mm" and first[6].is_date
    assert wb["走势"]["A2"].number_format == "yyyy-mm-dd"                  # day slices: dates
    ranked = [row for row in wb["部门排名"].iter_rows(min_row=2) if isinstance(row[0].value, int)]
    assert ranked and ranked[0][4].number_format == "0.0%" and ranked[0][8].number_format == "#,##0.0"


# --------------------------------------------------------------------------- the export job

def _job(client, query: str | None = None):
    resp = client.post(f"/brief/exports?{query or _q()}")
    assert resp.status_code == 202, resp.data[:300]
    job = resp.json["job"]
    assert resp.headers["Location"] == job["status_url"]
    for _ in range(300):
        if job["state"] in ("done", "failed"):
            return job
        import time
        time.sleep(0.1)
        job = client.get(job["status_url"]).json["job"]
    raise AssertionError(f"the job did not finish: {job}")


def test_the_excel_job_starts_reports_progress_and_downloads(seeded):
    from openpyxl import load_workbook
    client = login(seeded.server, "boss", "leader")
    job = _job(client)
    assert job["state"] == "done", job
    assert job["progress"] == 1.0 and job["rows_done"] == job["rows_total"] and job["rows_total"] > 0
    again = client.post(f"/brief/exports?{_q()}").json["job"]
    assert again["id"] == job["id"]                                      # the same asker, period: the same file
    resp = client.get(job["download_url"])
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    assert resp.is_streamed or resp.direct_passthrough                   # from disk, not built in memory
    wb = load_workbook(io.BytesIO(resp.get_data()))
    assert wb["案件清单"].max_row - 2 == job["rows_total"]
    resp.close()
    # a script's GET waits for the job; a job longer than the wait answers 202 with where to look
    seeded.server.config["EXPORT_WAIT_SECONDS"] = 0
    other = "from=2024-05-06&to=2024-05-07&as_of=2024-05-10T12:00:00"
    resp = client.get(f"/brief/export.xlsx?{other}")
    assert resp.status_code in (200, 202)
    if resp.status_code == 202:
        assert resp.headers["Location"] == resp.json["job"]["status_url"] and resp.headers["Retry-After"]
    assert client.get("/brief/exports/nonexistent-job").status_code == 404


@pytest.mark.parametrize("role", ["viewer", "department"])
def test_the_export_job_is_refused_to_roles_without_the_brief_at_every_step(seeded, role):
    leader = login(seeded.server, "boss", "leader")
    job = _job(leader)
    other = login(seeded.server, f"u-{role}", role, "330106-CGJ" if role == "department" else None)
    assert other.post(f"/brief/exports?{_q()}").status_code == 403
    assert other.get(job["status_url"]).status_code == 403
    assert other.get(job["download_url"]).status_code == 403
    # a second leader does not get the first one's file either
    second = login(seeded.server, "boss2", "leader")
    assert second.get(job["status_url"]).status_code == 404
    assert second.get(job["download_url"]).status_code == 404
    anon = seeded.server.test_client()
    assert anon.post(f"/brief/exports?{_q()}").status_code in (302, 401)


@pytest.mark.parametrize("backend", ["sqlite"])      # the writer's memory: no database needed twice
def test_the_excel_case_list_is_written_row_by_row_in_constant_memory(seeded, tmp_path, monkeypatch):
    """Memory bounded: XlsxWriter's constant-memory mode flushes each row to disk as it is written;
    the workbook holds one row, so 5,000 case rows cost hardly more to write than 500. (Measured: in
    constant-memory mode 0.78 → 0.88 MB, ×1.1; without it 2.2 → 16 MB, ×7.5 — the bound of ×2.5 parts
    them as clearly as 2,000 and 20,000 rows did, ×1.1 and ×9.2, in a fifth of the time.)"""
    import tracemalloc

    import pandas as pd
    import xlsxwriter
    from dashboards import _exports

    b = _brief(seeded)
    options = []
    real = xlsxwriter.Workbook

    def spy(path, opts=None):
        options.append(dict(opts or {}))
        return real(path, opts)
    monkeypatch.setattr(xlsxwriter, "Workbook", spy)

    def peak(n: int) -> int:
        t0 = datetime(2024, 5, 6, 1, 0, tzinfo=timezone.utc)
        rows = [dict(id=i, title=f"占道经营 {i}", category="占道经营", district="西湖区", department="西湖区城管局",
                     state="closed", reported_at=t0, deadline=t0, closed_at=t0) for i in range(1, n + 1)]
        flags = pd.DataFrame({c: ["N"] * n for c in kpis.CASE_KPIS}, index=range(1, n + 1))
        seen = []
        with seeded.server.test_request_context():
            tracemalloc.start()
            _exports.brief_xlsx(b, rows, flags, tmp_path / f"{n}.xlsx", lambda done, total: seen.append(done))
            _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert seen[-1] == n and len(seen) >= n // 1000
        return top
    small, big = peak(500), peak(5_000)
    assert all(o.get("constant_memory") for o in options)
    assert big < 2.5 * small, (small, big)          # not ten times: the rows do not pile up
