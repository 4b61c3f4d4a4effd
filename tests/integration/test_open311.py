"""Open311 GeoReport v2 at /open311/v2/ (DESIGN §8), on SQLite and PostgreSQL.

One app per backend for the whole module (building one costs a pack install); every test
uses its own category codes, so the cases of one test never show up in another's filters.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import auth, services
from incidents.model import Role
from incidents.services import Actor
from incidents.tables import Incident, User
from tests.conftest import BACKENDS, build_app, database_url

WEST_LAKE = (120.148, 30.256)      # 西湖区
DISPATCHER = Actor("o311-disp", Role.DISPATCHER)


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    app = build_app(database_url(request.param, tmp_path_factory.mktemp(request.param)))
    yield app.server
    get_db(app.server).dispose()


def token_for(server, username: str, role: str = "dispatcher") -> str:
    now = datetime.now(timezone.utc)
    with get_db(server).session_scope() as s:
        if s.scalar(select(User).where(User.username == username)) is None:
            s.add(User(username=username, display_name=username, password_hash="!", role=role,
                       active=True, created_at=now))
            s.flush()
        return auth.create_token(s, username, now=now)


def make_case(server, category: str, *, at: datetime, ext: str, state: str = "reported",
              description: str = "井盖破损") -> int:
    rules = get_runtime(server).rules
    with get_db(server).session_scope() as s:
        case = services.create_case(s, rules, source="test", external_id=ext, channel="12345",
                                    title=description, reported_at=at, now=at, category_code=category,
                                    lon=WEST_LAKE[0], lat=WEST_LAKE[1], description=description,
                                    reporter_name="张三", reporter_phone="13800001111")
        if state in ("closed", "voided", "dispatched"):
            case = services.perform(s, rules, DISPATCHER, case.id, "register" if state != "voided" else "void",
                                    version=case.version, now=at, reason="invalid" if state == "voided" else None)
        if state in ("closed", "dispatched"):
            case = services.perform(s, rules, DISPATCHER, case.id, "dispatch", version=case.version, now=at,
                                    department="HZ-CGJ")
        if state == "closed":
            dept = Actor("o311-dept", Role.DEPARTMENT, "HZ-CGJ")
            case = services.perform(s, rules, dept, case.id, "sign", version=case.version, now=at)
            case = services.perform(s, rules, dept, case.id, "resolve", version=case.version, now=at,
                                    note="已修复")
            case = services.perform(s, rules, Actor("o311-insp", Role.INSPECTOR), case.id, "verify_pass",
                                    version=case.version, now=at)
        return case.id


def ids_of(resp) -> list[str]:
    assert resp.status_code == 200, resp.data
    return [r["service_request_id"] for r in resp.get_json()]


def post(client, **form):
    return client.post("/open311/v2/requests.json", data=form)


# --------------------------------------------------------------------------- discovery and services

def test_discovery_describes_the_endpoint_in_json_and_xml(server):
    client = server.test_client()   # no login: Open311 reading is public
    r = client.get("/open311/v2/discovery.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    endpoint = r.get_json()["endpoints"][0]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2") and "text/xml" in endpoint["formats"]
    root = ET.fromstring(client.get("/open311/v2/discovery.xml").data)
    assert root.tag == "discovery"
    assert root.find("endpoints/endpoint/specification").text == "http://wiki.open311.org/GeoReport_v2"
    assert [f.text for f in root.findall("endpoints/endpoint/formats/format")] == ["application/json", "text/xml"]


def test_services_are_our_categories_in_json_and_xml(server):
    client = server.test_client()
    services_json = client.get("/open311/v2/services.json").get_json()
    by_code = {s["service_code"]: s for s in services_json}
    e0104 = by_code["E0104"]
    assert e0104["service_name"] == "水域不洁" and e0104["group"] == "市容环境"
    assert e0104["metadata"] is False and e0104["type"] == "realtime"
    assert "水域不洁" in e0104["keywords"] and e0104["description"]
    root = ET.fromstring(client.get("/open311/v2/services.xml").data)
    assert root.tag == "services"
    xml_codes = [s.findtext("service_code") for s in root.findall("service")]
    assert xml_codes == [s["service_code"] for s in services_json]
    assert root.find("service[service_code='E0104']/metadata").text == "false"


def test_a_service_definition_exists_only_for_known_codes(server):
    client = server.test_client()
    r = client.get("/open311/v2/services/E0104.json")
    assert r.status_code == 200 and r.get_json() == {"service_code": "E0104", "attributes": []}
    r = client.get("/open311/v2/services/NOPE.json")
    assert r.status_code == 404
    assert r.get_json()[0]["code"] == 404 and "NOPE" in r.get_json()[0]["description"]
    r = client.get("/open311/v2/services/NOPE.xml")
    assert r.status_code == 404 and ET.fromstring(r.data).findtext("error/code") == "404"


# --------------------------------------------------------------------------- reading requests

def test_requests_default_to_the_last_90_days_and_honour_the_filters(server):
    now = datetime.now(timezone.utc)
    old = make_case(server, "C0201", at=now - timedelta(days=100), ext="o311-old")
    recent = make_case(server, "C0201", at=now - timedelta(days=5), ext="o311-recent")
    closed = make_case(server, "C0201", at=now - timedelta(days=3), ext="o311-closed", state="closed")
    voided = make_case(server, "C0201", at=now - timedelta(days=2), ext="o311-voided", state="voided")
    other = make_case(server, "C0202", at=now - timedelta(days=1), ext="o311-other")
    client = server.test_client()
    base = "/open311/v2/requests.json?service_code="

    # newest first, the last 90 days by default
    assert ids_of(client.get(base + "C0201")) == ["o311-voided", "o311-closed", "o311-recent"]
    assert ids_of(client.get(base + "C0201,C0202")) == ["o311-other", "o311-voided", "o311-closed", "o311-recent"]
    assert ids_of(client.get(base + "C0201&status=open")) == ["o311-recent"]
    assert ids_of(client.get(base + "C0201&status=closed")) == ["o311-voided", "o311-closed"]
    # an explicit window (an offset in the query string may arrive with its '+' as a space)
    start = (now - timedelta(days=101)).astimezone(timezone(timedelta(hours=8))).isoformat(timespec="seconds")
    end = (now - timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids_of(client.get(base + f"C0201&start_date={start.replace('+', '%2B')}&end_date={end}")) == ["o311-old"]
    assert ids_of(client.get(base + f"C0201&start_date={start}&end_date={end}")) == ["o311-old"]
    # only one end given: 90 days from it
    assert ids_of(client.get(base + f"C0201&end_date={(now - timedelta(days=4)).isoformat()}"
                                    .replace("+", "%2B"))) == ["o311-recent"]
    assert ids_of(client.get(base + f"C0201&start_date={start.replace('+', '%2B')}")) == ["o311-old"]
    # ids override every other filter, old ones included; a case is known by its source's id (what the
    # answers give) and, where no source's id is the same, by its internal id
    assert sorted(ids_of(client.get(f"/open311/v2/requests.json?service_request_id={old},{other}"
                                    "&service_code=E0101"))) == sorted(["o311-old", "o311-other"])
    # paging extension
    assert ids_of(client.get(base + "C0201&page_size=2&page=2")) == ["o311-recent"]
    # bad parameters answer in the spec's error format
    for bad in ("C0201&status=pending", "C0201&start_date=yesterday", "C0201&page_size=5000",
                f"C0201&start_date=2020-01-01T00:00:00Z&end_date=2020-12-31T00:00:00Z"):
        r = client.get(base + bad)
        assert r.status_code == 400 and r.get_json()[0]["code"] == 400, bad


def test_a_request_reads_open_or_closed_with_agency_and_no_personal_data(server):
    now = datetime.now(timezone.utc)
    closed = make_case(server, "C0203", at=now - timedelta(hours=3), ext="o311-one", state="closed")
    client = server.test_client()
    r = client.get(f"/open311/v2/requests/{closed}.json")
    assert r.status_code == 200
    (req,) = r.get_json()
    assert req["status"] == "closed" and req["service_code"] == "C0203" and req["service_name"] == "停车场（泊位）"
    assert req["agency_responsible"] == "杭州市城市管理局" and req["status_notes"] == "已修复"
    assert req["requested_datetime"].endswith("+08:00") and req["expected_datetime"].endswith("+08:00")
    assert (req["long"], req["lat"]) == WEST_LAKE
    assert "张三" not in r.get_data(as_text=True) and "13800001111" not in r.get_data(as_text=True)
    assert client.get("/open311/v2/requests/999999.json").status_code == 404
    r = client.get("/open311/v2/requests/abc.xml")
    assert r.status_code == 404 and ET.fromstring(r.data).findtext("error/code") == "404"


# --------------------------------------------------------------------------- creating requests

def test_post_creates_a_case_that_reads_open_without_expected_time_until_dispatched(server):
    key = token_for(server, "citizen-app")
    client = server.test_client()
    r = post(client, api_key=key, service_code="C0204", lat="30.256", long="120.148",
             description="路灯不亮", first_name="四", last_name="李", phone="13900002222",
             email="li@example.com", media_url="https://example.com/p.jpg")
    assert r.status_code == 201, r.data
    (answer,) = r.get_json()
    rid = answer["service_request_id"]
    assert answer["service_notice"]
    with get_db(server).session_scope() as s:
        case = s.get(Incident, int(rid))
        assert (case.source, case.channel, case.state, case.category_code) == ("open311", "app", "reported", "C0204")
        assert (case.reporter_name, case.reporter_phone) == ("李四", "13900002222")
        assert case.district_code == "330106"
        version = case.version

    (req,) = client.get(f"/open311/v2/requests/{rid}.json").get_json()
    assert req["status"] == "open" and req["expected_datetime"] is None and req["agency_responsible"] is None
    assert req["sign_for_datetime"] is None
    assert req["description"] == "路灯不亮" and req["media_url"] == "https://example.com/p.jpg"
    body = client.get(f"/open311/v2/requests/{rid}.json").get_data(as_text=True)
    assert "李四" not in body and "13900002222" not in body and "li@example.com" not in body

    rules = get_runtime(server).rules
    now = datetime.now(timezone.utc)
    with get_db(server).session_scope() as s:
        case = services.perform(s, rules, DISPATCHER, int(rid), "register", version=version, now=now)
        case = services.perform(s, rules, DISPATCHER, int(rid), "dispatch", version=case.version, now=now,
                                department="HZ-CGJ")
        deadline, sign_due = case.deadline, case.sign_due
    (req,) = client.get(f"/open311/v2/requests/{rid}.json").get_json()
    assert req["status"] == "open" and req["agency_responsible"] == "杭州市城市管理局"
    assert datetime.fromisoformat(req["expected_datetime"]) == deadline.replace(microsecond=0)
    # our extension: the department's 签收时限, the pack's working hours after the dispatch
    assert sign_due == rules.calendar.add_working_hours(now, rules.sign_for_limit("normal"))
    assert datetime.fromisoformat(req["sign_for_datetime"]) == sign_due.replace(microsecond=0)


def test_post_without_a_valid_api_key_is_refused_in_the_spec_format(server):
    client = server.test_client()
    form = dict(service_code="C0205", lat="30.256", long="120.148", description="x")
    viewer_key = token_for(server, "wall-kiosk", role="viewer")
    for key in (None, "", "cot_not-a-token", viewer_key):
        r = post(client, **form, **({} if key is None else {"api_key": key}))
        assert r.status_code == 403, key
        assert r.get_json()[0]["code"] == 403 and r.get_json()[0]["description"]
    r = client.post("/open311/v2/requests.xml", data=form)
    assert r.status_code == 403 and ET.fromstring(r.data).findtext("error/code") == "403"
    revoked = token_for(server, "old-app")
    with get_db(server).session_scope() as s:
        auth.revoke_tokens(s, "old-app", now=datetime.now(timezone.utc))
    assert post(client, **form, api_key=revoked).status_code == 403
    with get_db(server).session_scope() as s:
        assert s.scalar(select(Incident.id).where(Incident.category_code == "C0205")) is None


def test_post_with_an_unknown_service_code_or_no_location_is_a_bad_request(server):
    key = token_for(server, "citizen-app")
    client = server.test_client()
    r = post(client, api_key=key, service_code="NOPE", lat="30.256", long="120.148")
    assert r.status_code == 400 and "NOPE" in r.get_json()[0]["description"]
    assert post(client, api_key=key, service_code="C0206").status_code == 400                # no location
    assert post(client, api_key=key, service_code="C0206", lat="30.2").status_code == 400    # half a point
    assert post(client, api_key=key, service_code="C0206", lat="95", long="120").status_code == 400
    r = post(client, api_key=key, service_code="C0206", address_string="延安路 100 号")
    assert r.status_code == 201


def test_xml_answers_are_well_formed_and_escaped(server):
    key = token_for(server, "citizen-app")
    client = server.test_client()
    nasty = '<script>alert("x")</script> & ]]> \x01 "quotes"'
    r = client.post("/open311/v2/requests.xml", data=dict(api_key=key, service_code="C0207",
                                                         address_string="<b>解放路</b> & 1号", description=nasty))
    assert r.status_code == 201 and r.mimetype == "text/xml"
    rid = ET.fromstring(r.data).findtext("request/service_request_id")
    r = client.get(f"/open311/v2/requests/{rid}.xml")
    assert b"<script>" not in r.data
    req = ET.fromstring(r.data).find("request")
    assert req.findtext("description") == nasty.replace("\x01", "")
    assert req.findtext("address") == "<b>解放路</b> & 1号"
    assert req.findtext("status") == "open" and req.findtext("expected_datetime") == ""
    ET.fromstring(client.get("/open311/v2/requests.xml?service_code=C0207").data)


def test_open311_is_public_but_other_machine_paths_still_need_a_login(server):
    client = server.test_client()
    assert client.get("/open311/v2/services.json").status_code == 200
    r = client.get("/open311/v2/nothing.json")
    assert r.status_code == 404 and r.get_json()[0]["code"] == 404
    r = client.post("/open311/v2/services.json")
    assert r.status_code == 405 and r.get_json()[0]["code"] == 405
    assert client.get("/api/v1/incidents").status_code == 401
    assert client.get("/open311/other").status_code == 401


# --------------------------------------------------------------------------- privacy and keys

PERSONAL = "联系人手机13812345678，座机0571-87654321，身份证号330106199001011234，家住文三路"


def test_public_answers_mask_phone_and_id_numbers_and_round_coordinates(server):
    now = datetime.now(timezone.utc)
    rid = make_case(server, "C0208", at=now - timedelta(hours=1), ext="o311-pii", description=PERSONAL)
    with get_db(server).session_scope() as s:
        s.get(Incident, rid).lon, s.get(Incident, rid).lat = 120.148123, 30.256789
    client = server.test_client()
    for path in (f"/open311/v2/requests/{rid}.json", "/open311/v2/requests.json?service_code=C0208"):
        body = client.get(path).get_data(as_text=True)
        (req,) = json.loads(body)
        for secret in ("13812345678", "87654321", "330106199001011234", "19900101"):
            assert secret not in body, (path, secret)
        assert "138****5678" in req["description"] and "家住文三路" in req["description"]
        assert (req["lat"], req["long"]) == (30.257, 120.148)
    for path in (f"/open311/v2/requests/{rid}.xml", "/open311/v2/requests.xml?service_code=C0208"):
        r = client.get(path)
        req = ET.fromstring(r.data).find("request")
        assert "13812345678" not in r.get_data(as_text=True) and "330106199001011234" not in r.get_data(as_text=True)
        assert "138****5678" in req.findtext("description")
        assert (req.findtext("lat"), req.findtext("long")) == ("30.257", "120.148")


def test_a_setting_makes_reading_need_a_key_sent_in_a_header(server, monkeypatch):
    rid = make_case(server, "C0209", at=datetime.now(timezone.utc) - timedelta(hours=1), ext="o311-key")
    key = token_for(server, "o311-reader", role="viewer")
    client = server.test_client()
    monkeypatch.setitem(server.config, "OPEN311_REQUIRE_KEY", True)
    for path in (f"/open311/v2/requests/{rid}.json", "/open311/v2/requests.xml", "/open311/v2/services.json"):
        assert client.get(path).status_code == 403, path
        assert client.get(path, headers={"X-Api-Key": "cot_not-a-token"}).status_code == 403, path
        assert client.get(path, headers={"X-Api-Key": key}).status_code == 200, path
    r = client.get(f"/open311/v2/requests/{rid}.json?api_key={key}")
    assert r.status_code == 400 and "URL" in r.get_json()[0]["description"]
    assert client.get("/open311/v2/discovery.json").status_code == 200      # how to get a key stays public
    monkeypatch.setitem(server.config, "OPEN311_REQUIRE_KEY", False)
    assert client.get(f"/open311/v2/requests/{rid}.json").status_code == 200


def test_post_takes_the_key_from_the_body_or_a_header_never_the_url(server):
    key = token_for(server, "citizen-app")
    client = server.test_client()
    form = dict(service_code="C0210", lat="30.256", long="120.148", description="井盖缺失")
    r = client.post("/open311/v2/requests.json", data=form, headers={"X-Api-Key": key})
    assert r.status_code == 201, r.data
    r = client.post("/open311/v2/requests.json", json={**form, "api_key": key})
    assert r.status_code == 201, r.data
    r = client.post(f"/open311/v2/requests.json?api_key={key}", data=form)
    assert r.status_code == 400 and "api_key" in r.get_json()[0]["description"]
    r = client.post(f"/open311/v2/requests.xml?api_key={key}", data={**form, "api_key": key})
    assert r.status_code == 400 and ET.fromstring(r.data).findtext("error/code") == "400"
    with get_db(server).session_scope() as s:
        made = s.scalars(select(Incident).where(Incident.category_code == "C0210")).all()
        assert len(made) == 2 and {c.description for c in made} == {"井盖缺失"}
