"""GET /api/v1/kpis: the same numbers as incidents.queries.brief.kpi_report, roles, bad dates."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from data_sources.ingest import ingest
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents.queries.brief import kpi_report
from tests.integration.helpers import login

SH = ZoneInfo("Asia/Shanghai")
WEST_LAKE = (120.1593, 30.2585)
FROM, TO, AS_OF = "2024-05-06", "2024-05-08", "2024-05-10T12:00:00"


def _cases(app):
    db, rt = get_db(app.server), get_runtime(app.server)
    recs = []
    for i in range(6):
        state = "closed" if i < 3 else ("dispatched" if i < 5 else "registered")
        rec = {"external_id": f"K{i}", "title": f"井盖缺失 {i}", "category_code": "C0101",
               "reported_at": f"2024-05-06 0{8 + i % 2}:00", "lon": WEST_LAKE[0], "lat": WEST_LAKE[1],
               "state": state, "department_code": "HZ-CGJ"}
        if state == "closed":
            rec["closed_at"] = f"2024-05-0{6 + i} 11:00"
        recs.append((rec, i + 1))
    recs.append(({"external_id": "K9", "title": "重复", "category_code": "C0101", "reported_at": "2024-05-07 10:00",
                  "lon": WEST_LAKE[0], "lat": WEST_LAKE[1], "state": "duplicate"}, 9))
    ingest(db, rt.rules, rt.pack, recs, "native", now=datetime(2024, 6, 1, tzinfo=SH))


def test_kpis_answer_the_numbers_of_kpi_report(app):
    _cases(app)
    client = login(app.server, "boss", "leader")
    resp = client.get(f"/api/v1/kpis?from={FROM}&to={TO}&as_of={AS_OF}")
    assert resp.status_code == 200, resp.json
    body = resp.json
    with app.server.app_context():
        rep = kpi_report(datetime(2024, 5, 6, tzinfo=SH), datetime(2024, 5, 8, tzinfo=SH),
                         datetime(2024, 5, 10, 12, tzinfo=SH))
    got = {k["code"]: k for k in body["kpis"]}
    assert set(got) == set(rep.kpis)
    for code, k in rep.kpis.items():
        assert (got[code]["value"], got[code]["numerator"], got[code]["denominator"]) == \
            (k.value, k.numerator, k.denominator), code
        assert got[code]["formula"] == k.formula and got[code]["drill"] == k.drill
    assert got["reported_count"]["value"] == 7 and got["closure_rate"]["denominator"] == 6
    assert got["closure_rate"]["numerator"] == 3 and got["closure_rate"]["target"] == 0.95
    assert "不含作废" in got["closure_rate"]["formula"]
    assert body["start"] == "2024-05-05T16:00:00Z" and body["as_of"] == "2024-05-10T04:00:00Z"


def test_kpis_grouped_by_department_with_ranking(app):
    _cases(app)
    client = login(app.server, "disp", "dispatcher")
    body = client.get(f"/api/v1/kpis?from={FROM}&to={TO}&as_of={AS_OF}&group_by=department").json
    groups = {g["code"]: g for g in body["groups"]}
    assert "HZ-CGJ" in groups
    cgj = {k["code"]: k for k in groups["HZ-CGJ"]["kpis"]}
    assert cgj["closure_rate"]["drill"]["department"] == "HZ-CGJ"
    ranking = body["ranking"]
    assert ranking["ranked"] == []                       # 6 cases: below the minimum volume
    unranked = {r["code"]: r for r in ranking["unranked"]}
    assert set(unranked) == {"HZ-CGJ", "(未派遣)"}           # K5 (registered) and K9 (voided) have no department
    assert "最低" in unranked["HZ-CGJ"]["reason"] and unranked["HZ-CGJ"]["volume"] == 5
    assert "综合指标值" in ranking["formula"]


@pytest.mark.parametrize("role,department", [("viewer", None), ("department", "HZ-CGJ"), ("inspector", None)])
def test_kpis_are_forbidden_to_other_roles(app, role, department):
    client = login(app.server, f"u-{role}", role, department)
    resp = client.get(f"/api/v1/kpis?from={FROM}&to={TO}")
    assert resp.status_code == 403 and resp.json["error"]["code"] == "forbidden"


def test_kpis_admin_may_read(app):
    client = login(app.server, "root", "admin")
    assert client.get(f"/api/v1/kpis?from={FROM}&to={TO}&group_by=district").status_code == 200


@pytest.mark.parametrize("query", [f"from={TO}&to={FROM}", f"from={FROM}&to={FROM}", "from=2024-13-40&to=2024-05-08",
                                   f"to={TO}", f"from={FROM}&to={TO}&group_by=street", f"from={FROM}&to={TO}&x=1"])
def test_kpis_bad_dates_and_parameters_are_400(app, query):
    client = login(app.server, "boss", "leader")
    resp = client.get(f"/api/v1/kpis?{query}")
    assert resp.status_code == 400, (query, resp.json)
    assert resp.json["error"]["code"] == "bad_request"


def test_kpis_in_the_openapi_document(app):
    client = login(app.server, "boss", "leader")
    doc = client.get("/api/v1/openapi.json").json
    op = doc["paths"]["/api/v1/kpis"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"from", "to", "group_by", "as_of"}
    assert "403" in op["responses"] and "400" in op["responses"]


def test_kpi_report_is_memoized_per_data_version(app):
    _cases(app)
    args = (datetime(2024, 5, 6, tzinfo=SH), datetime(2024, 5, 8, tzinfo=SH), datetime(2024, 5, 10, 12, tzinfo=SH))
    with app.server.app_context():
        first = kpi_report(*args)
        assert kpi_report(*args) is first or kpi_report(*args) == first   # one computation per version
        db, rt = get_db(app.server), get_runtime(app.server)
        ingest(db, rt.rules, rt.pack, [({"external_id": "K20", "title": "新案", "category_code": "C0101",
                                         "reported_at": "2024-05-07 09:00", "lon": WEST_LAKE[0],
                                         "lat": WEST_LAKE[1]}, 1)], "native", now=datetime(2024, 6, 1, tzinfo=SH))
        assert kpi_report(*args).kpis["reported_count"].value == first.kpis["reported_count"].value + 1
