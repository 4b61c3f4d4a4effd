"""The leaders' brief: the page (through its Dash callbacks), /api/v1/kpis, the PDF and the Excel
file give the same numbers; a card lists the cases behind its number; exports check role and
parameters. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import io
import json
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


def _texts(node) -> list[str]:
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
    if isinstance(node, list):
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
        assert k.name in text and k.formula in text
        assert bv.change_text(k.value, b.previous.kpis[code].value, k.unit) in text
    table = next(_find(body, lambda p: p.get("id") == "brief-rank-department"))
    text = " ".join(_texts(table))
    for r in b.report.ranking.ranked:
        assert r.name in text and f"{r.score:.1f}" in text
    assert out["brief-pdf"]["href"] == f"/brief/export.pdf?{_q()}"
    assert "2024-05-06 至 2024-05-08" in " ".join(_texts(out["brief-period-text"]["children"]))


def test_a_viewer_cannot_render_or_drill_the_brief_through_crafted_callbacks(seeded):
    viewer = login(seeded.server, "vic", "viewer")
    assert _dash(viewer, RENDER, [{"id": "brief-period", "property": "data", "value": STORE}]).status_code == 204
    resp = _dash(viewer, "brief-drill.children",
                 [{"id": {"type": "brief-card", "code": "closure_rate"}, "property": "n_clicks", "value": 1}],
                 [{"id": "brief-period", "property": "data", "value": STORE}])
    assert resp.status_code == 204


def test_clicking_a_card_lists_the_cases_behind_the_number(seeded):
    b = _brief(seeded)
    client = login(seeded.server, "boss", "leader")
    resp = _dash(client, "brief-drill.children",
                 [{"id": {"type": "brief-card", "code": "closure_rate"}, "property": "n_clicks", "value": 1}],
                 [{"id": "brief-period", "property": "data", "value": STORE}])
    assert resp.status_code == 200, resp.data[:300]
    panel = resp.json["response"]["brief-drill"]["children"]
    k = b.report.kpis["closure_rate"]
    rows = list(_find(panel, lambda p: "href" in p and str(p["href"]).startswith("/incidents/")))
    assert len(rows) == k.denominator
    ticks = [t for t in _texts(next(_find(panel, lambda p: p.get("id") == "brief-drill-table"))) if t == "✓"]
    assert len(ticks) == k.numerator
    assert f"{int(k.numerator):,}" in " ".join(_texts(panel))


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
    from openpyxl import load_workbook
    b = _brief(seeded)
    client = login(seeded.server, "boss", "leader")
    resp = client.get(f"/brief/export.xlsx?{_q()}")
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    wb = load_workbook(io.BytesIO(resp.data))
    assert wb.sheetnames == ["概览", "走势", "部门排名", "区县排名", "一网通办", "其他指标", "案件清单"]
    rows = {r[0]: r for r in wb["概览"].iter_rows(min_row=6, values_only=True) if r[0]}
    for code in bv.CASE_CARDS + bv.SERVICE_CARDS:
        k = b.report.kpis[code]
        # Excel keeps 15 significant digits
        assert rows[code][2] == pytest.approx(k.value, rel=1e-12), code
        assert rows[code][10] == pytest.approx(k.numerator) and rows[code][11] == k.denominator, code
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


def test_excel_cells_with_formula_looking_text_stay_text(seeded):
    from openpyxl import load_workbook
    ids = _name_things_like_an_attacker(seeded)
    client = login(seeded.server, "boss", "leader")
    resp = client.get(f"/brief/export.xlsx?{_q()}")
    assert resp.status_code == 200
    wb = load_workbook(io.BytesIO(resp.data))
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
