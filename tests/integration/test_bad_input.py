"""Bad input answers 4xx with the error envelope, never 500 (issue 11, item 4), through every door:
the REST API, push ingestion, Open311 POST, and the workbench's Dash callback (which calls
incidents.commands.act → services, where the same bounds hold). And while the database
refuses connections, the HTTP doors answer 503 with Retry-After."""
from __future__ import annotations

import json
import uuid

import pytest

from data_sources.store.db import EXTENSION_KEY, Database, get_db
from incidents import bounds
from incidents.tables import Incident
from tests.integration.helpers import login
from tests.integration.test_api import client_for, make_case, snapshot

NUL = "井盖\x00缺失"
BIG = 2**64            # beyond 64-bit
HUGE = 10**30


def _envelope(resp, *statuses: int) -> dict:
    assert resp.status_code in statuses, (resp.status_code, resp.get_data(as_text=True)[:300])
    body = resp.get_json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], body
    return body["error"]


def _raw_json(client, url: str, text: str):
    return client.post(url, data=text.encode(), content_type="application/json")


@pytest.fixture
def cases(server):
    """A dispatched case (extend, supervise, merge apply to it) and the dispatcher's client."""
    return {"dispatched": make_case(server, "dispatched", ext=f"bad-{uuid.uuid4().hex[:8]}"),
            "client": client_for(server, "bad-disp", "dispatcher")}


# --------------------------------------------------------------------------- REST API

CREATE = {"source": "test", "channel": "12345", "title": "井盖缺失", "category_code": "C0101"}

#: (name, how to send it) → the case's action endpoint unless a URL is given
ACTION_BODIES = [
    ("extend hours 1e6", '{"action": "extend", "version": %(v)d, "hours": 1e6}'),
    ("extend hours 1e308", '{"action": "extend", "version": %(v)d, "hours": 1e308}'),
    ("extend hours 1e400 (inf)", '{"action": "extend", "version": %(v)d, "hours": 1e400}'),
    ("extend hours Infinity", '{"action": "extend", "version": %(v)d, "hours": Infinity}'),
    ("extend hours -Infinity", '{"action": "extend", "version": %(v)d, "hours": -Infinity}'),
    ("extend hours NaN", '{"action": "extend", "version": %(v)d, "hours": NaN}'),
    ("extend hours 0", '{"action": "extend", "version": %(v)d, "hours": 0}'),
    ("supervise level 99", '{"action": "supervise", "version": %(v)d, "level": 99}'),
    ("supervise level 10^12", '{"action": "supervise", "version": %(v)d, "level": 1000000000000}'),
    ("merge duplicate_of 2^64", '{"action": "merge", "version": %(v)d, "duplicate_of": 18446744073709551616}'),
    ("merge duplicate_of 10^30", '{"action": "merge", "version": %(v)d, "duplicate_of": ' + str(HUGE) + '}'),
    ("version 2^64", '{"action": "register", "version": 18446744073709551616}'),
    ("NUL in note", '{"action": "extend", "version": %(v)d, "hours": 2, "note": "a\\u0000b"}'),
    ("NUL in request_id", '{"action": "extend", "version": %(v)d, "hours": 2, "request_id": "r\\u0000"}'),
    ("NUL in department", '{"action": "reassign", "version": %(v)d, "department": "HZ\\u0000"}'),
    ("unpaired surrogate in note", '{"action": "extend", "version": %(v)d, "hours": 2, "note": "\\ud800"}'),
    ("100 000-deep body", "[" * 100_000 + "]" * 100_000),
]


@pytest.mark.parametrize("name,body", ACTION_BODIES, ids=[n for n, _ in ACTION_BODIES])
def test_a_bad_action_body_is_a_400_and_changes_nothing(server, cases, name, body):
    cid, client = cases["dispatched"], cases["client"]
    before = snapshot(server, cid)
    text = body % {"v": before[1]} if "%(v)" in body else body
    err = _envelope(_raw_json(client, f"/api/v1/incidents/{cid}/actions", text), 400)
    assert err["code"] == "bad_request"
    assert snapshot(server, cid) == before


CREATE_BODIES = [
    ("NUL in title", {**CREATE, "external_id": "n1", "title": NUL}),
    ("NUL in description", {**CREATE, "external_id": "n2", "description": NUL}),
    ("NUL in external_id", {**CREATE, "external_id": "n\x003"}),
    ("NUL in a field name", {**CREATE, "external_id": "n4", "ti\x00tle": "x"}),
    ("unpaired surrogate in title", {**CREATE, "external_id": "n5", "title": "\ud800"}),
]


@pytest.mark.parametrize("name,body", CREATE_BODIES, ids=[n for n, _ in CREATE_BODIES])
def test_a_bad_new_case_is_a_400_and_stores_nothing(server, cases, name, body):
    client = cases["client"]
    text = json.dumps(body)   # ASCII JSON: \u0000 and \ud800 escaped as JSON allows
    err = _envelope(_raw_json(client, "/api/v1/incidents", text), 400)
    assert err["code"] == "bad_request"
    with get_db(server).session_scope() as s:
        assert s.query(Incident).filter(Incident.source == "test", Incident.external_id.like("n%")).count() == 0


GETS = [
    ("NUL in q", "/api/v1/incidents?q=a%00b", 400),
    ("NUL in a list filter", "/api/v1/incidents?department=HZ%00", 400),
    ("page beyond 64-bit", f"/api/v1/incidents?page={BIG}", 400),
    ("page 10^30", f"/api/v1/incidents?page={HUGE}", 400),
    ("page beyond the bound", f"/api/v1/incidents?page={bounds.MAX_PAGE + 1}", 400),
    ("per_page 10^30", f"/api/v1/incidents?per_page={HUGE}", 400),
    ("case id beyond 64-bit", f"/api/v1/incidents/{BIG}", 404),
    ("case id beyond the column", f"/api/v1/incidents/{bounds.MAX_ID + 1}", 404),
    ("case id 10^30", f"/api/v1/incidents/{HUGE}", 404),
]


@pytest.mark.parametrize("name,url,status", GETS, ids=[n for n, _, _ in GETS])
def test_a_bad_query_or_id_is_a_4xx(server, cases, name, url, status):
    _envelope(cases["client"].get(url), status)


def test_an_action_on_an_id_beyond_64_bit_is_a_404(server, cases):
    resp = cases["client"].post(f"/api/v1/incidents/{BIG}/actions", json={"action": "register", "version": 1})
    assert _envelope(resp, 404)["code"] == "not_found"


def test_the_bounds_are_in_the_api_schema(server, cases):
    doc = cases["client"].get("/api/v1/openapi.json").get_json()
    action = doc["components"]["schemas"]["ActionRequest"]["properties"]
    level = action["level"]["anyOf"][0]
    assert (level["minimum"], level["maximum"]) == (bounds.SUPERVISE_LEVEL_MIN, bounds.SUPERVISE_LEVEL_MAX)
    assert action["hours"]["anyOf"][0]["maximum"] == bounds.MAX_EXTEND_HOURS


# --------------------------------------------------------------------------- push and Open311

PUSH = "/api/v1/feeds/partner-b/records?mapping=native"


def test_a_deeply_nested_push_body_is_a_400(server, cases):
    client = cases["client"]
    deep = "[" * 100_000 + "]" * 100_000
    err = _envelope(_raw_json(client, PUSH, deep), 400)
    assert err["code"] == "bad_request" and "nested" in err["message"]
    resp = client.post(PUSH, data=('{"a":' * 100_000 + "1" + "}" * 100_000).encode(),
                       content_type="application/x-ndjson")
    assert resp.status_code == 200 and resp.get_json()["quarantined"] == 1   # a bad line: quarantined


def test_a_pushed_record_with_a_nul_is_quarantined_not_a_500(server, cases):
    rec = {"external_id": "PN1", "title": NUL, "category_code": "C0101", "reported_at": "2024-05-06 09:00",
           "lon": 120.1593, "lat": 30.2585}
    good = {**rec, "external_id": "PN2", "title": "井盖缺失"}
    resp = cases["client"].post(PUSH, json=[rec, good])
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    body = resp.get_json()
    assert (body["inserted"], body["quarantined"]) == (1, 1)
    assert "NUL" in body["quarantined_records"][0]["reason"]


def test_open311_refuses_a_nul_with_a_400_in_its_own_format(server, cases):
    from tests.integration.test_open311 import token_for
    key = token_for(server, "o311-bad")
    client = server.test_client()
    for field in ("description", "service_code", "address_string"):
        form = {"api_key": key, "service_code": "C0204", "lat": "30.256", "long": "120.148", field: NUL}
        resp = client.post("/open311/v2/requests.json", data=form)
        assert resp.status_code == 400, (field, resp.get_data(as_text=True))
        assert resp.get_json()[0]["code"] == 400
    resp = client.get("/open311/v2/requests.json?service_code=C%00")
    assert resp.status_code == 400


# --------------------------------------------------------------------------- the workbench (Dash)

#: (name, action, form values) as a crafted callback POST could send them
DASH_CASES = [
    ("extend hours 1e6", "extend", {"hours": 1e6}),
    ("extend hours 1e308", "extend", {"hours": 1e308}),
    ("extend hours Infinity", "extend", {"hours": "Infinity"}),
    ("extend hours NaN", "extend", {"hours": "NaN"}),
    ("extend hours not a number", "extend", {"hours": "lots"}),
    ("supervise level 99", "supervise", {"level": 99}),
    ("supervise level 10^12", "supervise", {"level": 10**12}),
    ("supervise level -3", "supervise", {"level": -3}),
    ("merge duplicate_of 2^64", "merge", {"dup": BIG}),
    ("NUL in note", "extend", {"hours": 2, "note": NUL}),
    ("NUL in department", "reassign", {"dept": "HZ\x00"}),
]


def _confirm(server, username: str, role: str, cid: int, version: int, action: str, values: dict) -> str:
    """What the workbench's confirm callback does with the form (dashboards._case.run_action:
    incidents.commands.act → services), as ``username``; answers the result's status."""
    from flask_login import login_user
    from dashboards import _case
    from data_sources.web.gate import SessionUser
    from incidents.model import Role
    with server.test_request_context("/_dash-update-component", method="POST"):
        login_user(SessionUser(1, username, Role(role), None, username))
        pending = {"case": cid, "action": action, "request_id": uuid.uuid4().hex}
        status, _message = _case.run_action(pending, {"id": cid, "version": version},
                                            {k: values.get(k) for k in ("reason", "note", "hours", "dept", "dup",
                                                                        "level")})
    return status


@pytest.mark.parametrize("name,action,values", DASH_CASES, ids=[n for n, _, _ in DASH_CASES])
def test_the_workbench_refuses_the_same_bad_input(server, name, action, values):
    cid = make_case(server, "dispatched", ext=f"dash-{uuid.uuid4().hex[:8]}")
    role = "leader" if action == "supervise" else "dispatcher"
    before = snapshot(server, cid)
    assert _confirm(server, f"wb-{role}", role, cid, before[1], action, values) in ("refused", "incomplete")
    assert snapshot(server, cid) == before


def test_the_workbench_refuses_a_case_id_beyond_64_bit_and_accepts_the_bounds(server):
    cid = make_case(server, "dispatched", ext=f"dash-{uuid.uuid4().hex[:8]}")
    assert _confirm(server, "wb-d", "dispatcher", BIG, 1, "extend", {"hours": 2}) == "refused"
    version = snapshot(server, cid)[1]
    assert _confirm(server, "wb-d", "dispatcher", cid, version, "extend", {"hours": bounds.MAX_EXTEND_HOURS}) == "ok"
    version = snapshot(server, cid)[1]
    assert _confirm(server, "wb-l", "leader", cid, version, "supervise",
                    {"level": bounds.SUPERVISE_LEVEL_MAX}) == "ok"


def test_the_workbench_search_box_takes_a_nul_or_a_huge_number(server):
    from incidents.queries.cases import search_conditions
    from sqlalchemy import func, select
    with get_db(server).session_scope() as s:
        for q in (NUL, str(BIG), "#" + str(HUGE), "\ud800"):
            s.scalar(select(func.count()).select_from(Incident).where(*search_conditions(q)))


# --------------------------------------------------------------------------- the database away

def test_while_the_database_refuses_connections_the_doors_answer_503_with_retry_after(tmp_path):
    from tests.conftest import build_app
    app = build_app(f"sqlite:///{tmp_path / 'away.db'}")
    server = app.server
    client = login(server, "away-disp", "dispatcher")    # a session cookie: no database needed to know who
    get_db(server).dispose()
    # the database server is away: nothing listens on port 9
    server.extensions[EXTENSION_KEY] = Database("postgresql://postgres@127.0.0.1:9/none", connect_timeout=2,
                                                statement_timeout=2, pool_timeout=2)
    for method, url, kw in [("get", "/api/v1/incidents", {}), ("get", "/api/v1/incidents/1", {}),
                            ("post", "/api/v1/incidents/1/actions", {"json": {"action": "register", "version": 1}}),
                            ("post", PUSH, {"json": [{"external_id": "x"}]})]:
        resp = getattr(client, method)(url, **kw)
        assert _envelope(resp, 503)["code"] == "unavailable", url
        assert int(resp.headers["Retry-After"]) > 0
    resp = server.test_client().get("/open311/v2/requests.json")
    assert resp.status_code == 503 and int(resp.headers["Retry-After"]) > 0
    assert server.test_client().get("/readyz").status_code == 503
    # a door without a handler of its own (the brief's exports, Dash callbacks) answers 503 through the
    # app's handler (a dispatcher may export the brief)
    resp = client.get("/brief/export.xlsx?from=2026-11-01&to=2026-11-30")
    assert _envelope(resp, 503)["code"] == "unavailable" and int(resp.headers["Retry-After"]) > 0


def test_a_nul_in_the_login_form_is_refused_with_400_and_logs_nobody_in(server):
    client = server.test_client()
    for form in ({"username": "a\x00b", "password": "whatever-pass"}, {"username": "fay", "password": "p\x00w"}):
        resp = client.post("/login", data=form)
        assert resp.status_code == 400 and 'name="password"' in resp.get_data(as_text=True)
    assert client.get("/api/v1/incidents").status_code == 401
