"""The citizen's 进度查询 (issue 14 item 7), on SQLite and PostgreSQL: public (no login), the right
number and the phone's last four digits give state, department and dates in Hangzhou time; a wrong
number, wrong digits and a case without a phone give the very same answer; nothing personal leaves;
every query counts against a per-address limit that answers 429 in Chinese."""
from __future__ import annotations

import itertools
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from data_sources.store.db import get_db
from incidents import services
from incidents.model import Role
from incidents.queries.reference import case_rules
from tests.conftest import BACKENDS, REDIS_URL, build_app, database_url

T0 = datetime(2026, 11, 18, 2, 0, tzinfo=timezone.utc)        # Wed 10:00 in Hangzhou
DEPT, DEPT_NAME = "330106-CGJ", "西湖区城市管理局"
XIHU = (120.10, 30.27)                                          # inside 西湖区
PERSONAL = ("王建国", "13812345678", "138-1234-5678", "文三路 8 号", "家门口井盖丢了")
_addresses = (f"10.9.{i // 250}.{i % 250 + 1}" for i in itertools.count())


def _address() -> dict:
    """A client address of its own for each test: the limit counts per address."""
    return {"REMOTE_ADDR": next(_addresses)}


def _case(s, external_id: str, phone: str, *actions) -> int:
    """A citizen's 12345 case in 西湖区, reported at T0, then ``actions`` (action, hours after T0,
    fields) applied by the role that may."""
    c = services.create_case(s, case_rules(), source="t", external_id=external_id, channel="12345",
                             title="王建国家门口井盖丢了", description="王建国 13812345678 反映：家门口井盖丢了",
                             address="西湖区文三路 8 号", lon=XIHU[0], lat=XIHU[1],
                             category_code="C0101", reporter_name="王建国", reporter_phone=phone,
                             reported_at=T0, now=T0)
    s.flush()
    version = c.version
    who = {"register": Role.DISPATCHER, "dispatch": Role.DISPATCHER, "sign": Role.DEPARTMENT,
           "resolve": Role.DEPARTMENT, "verify_pass": Role.INSPECTOR, "return": Role.DEPARTMENT}
    for action, hours, fields in actions:
        role = who[action]
        actor = services.Actor("t-" + role.value, role, DEPT if role is Role.DEPARTMENT else None)
        version = services.act(s, case_rules(), actor, c.id, action, version=version,
                               now=T0 + timedelta(hours=hours), **fields).case.version
    return c.id


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, tmp_path_factory):
    limits = {"PROGRESS_RATE_PER_ADDRESS": "5 per minute", "RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex[:12]}"}
    if REDIS_URL:        # the counters where several workers share them (CI sets it)
        limits["RATELIMIT_STORAGE_URL"] = REDIS_URL
    app = build_app(database_url(request.param, tmp_path_factory.mktemp(request.param)), **limits)
    server = app.server
    with server.app_context(), get_db(server).session_scope() as s:
        closed = _case(s, "closed", "138-1234-5678",
                       ("register", 0.25, {}), ("dispatch", 0.5, {"department": DEPT}), ("sign", 1, {}),
                       ("resolve", 26, {"note": "已更换"}), ("verify_pass", 28, {}))
        returned = _case(s, "returned", "+86 139 0000 4321",
                         ("register", 0.25, {}), ("dispatch", 0.5, {"department": DEPT}),
                         ("return", 1, {"reason": "territory", "note": "不属本区"}))
        no_phone = _case(s, "no-phone", "")
        short_phone = _case(s, "short-phone", "110")
    yield server, {"closed": closed, "returned": returned, "no_phone": no_phone, "short_phone": short_phone}
    get_db(server).dispose()
    if REDIS_URL:
        import redis
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(f"*{limits['RATELIMIT_KEY_PREFIX']}*"))
        if keys:
            r.delete(*keys)


def _api(server, case, digits, addr=None):
    return server.test_client().post("/api/v1/progress", json={"case": str(case), "phone_last4": digits},
                                     environ_base=addr or _address())


def _form(server, case, digits, addr=None):
    return server.test_client().post("/progress", data={"case": str(case), "digits": digits},
                                     environ_base=addr or _address())


def test_the_right_number_and_digits_give_state_department_and_dates_in_hangzhou_time(world):
    server, cases = world
    resp = _api(server, cases["closed"], "5678")
    assert resp.status_code == 200, resp.data
    assert resp.get_json() == {
        "case": cases["closed"], "state": "closed", "state_label": "已结案", "category": "上水井盖",
        "district": "西湖区", "department": DEPT_NAME,
        "reported_at": "2026-11-18T10:00+08:00", "dispatched_at": "2026-11-18T10:30+08:00",
        "resolved_at": "2026-11-19T12:00+08:00", "closed_at": "2026-11-19T14:00+08:00"}
    page = _form(server, f"#{cases['closed']}", "5678")      # the number as printed on a receipt
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<span class="state-chip s-closed" id="progress-state">已结案</span>' in html
    assert DEPT_NAME in html
    assert re.findall(r'class="step-at">([^<]+)<', html) == [
        "2026-11-18 10:00", "2026-11-18 10:30", "2026-11-19 12:00", "2026-11-19 14:00"]


def test_a_returned_case_shows_no_department_and_no_dispatch_of_its_earlier_round(world):
    server, cases = world
    body = _api(server, cases["returned"], "4321").get_json()        # "+86 139 0000 4321": punctuation aside
    assert (body["state"], body["state_label"]) == ("registered", "立案")
    assert body["department"] is None and body["dispatched_at"] is None
    assert body["resolved_at"] is None and body["closed_at"] is None


def test_wrong_digits_an_unknown_case_and_a_case_without_phone_give_the_same_answer(world):
    server, cases = world
    answers = [_api(server, cases["closed"], "5679"), _api(server, cases["closed"], "1234"),
               _api(server, 999_999, "5678"), _api(server, cases["no_phone"], "0000"),
               _api(server, cases["short_phone"], "0110"), _api(server, cases["returned"], "5678")]
    assert {(r.status_code, r.data) for r in answers} == {(404, answers[0].data)}
    assert answers[0].get_json()["error"]["code"] == "not_found"
    pages = [_form(server, cases["closed"], "5679"), _form(server, 999_999, "5678"),
             _form(server, cases["no_phone"], "0000")]
    assert {r.status_code for r in pages} == {200}       # the page answered; the JSON door says 404
    # the same words whichever was wrong (the page only echoes the number typed)
    texts = {re.search(r'id="progress-error">([^<]+)<', r.get_data(as_text=True)).group(1) for r in pages}
    assert texts == {"未查到匹配的案件：请核对案件编号和手机号后四位。报案时未留手机号的案件无法在此查询。"}


def test_nothing_personal_is_in_the_answer(world):
    server, cases = world
    for resp in (_api(server, cases["closed"], "5678"), _form(server, cases["closed"], "5678")):
        text = resp.get_data(as_text=True)
        assert resp.status_code == 200
        for secret in PERSONAL + ("王", "1234", "8 号", "t-department", "t-inspector", "已更换"):
            assert secret not in text, secret
    assert set(_api(server, cases["closed"], "5678").get_json()) == {
        "case", "state", "state_label", "category", "district", "department",
        "reported_at", "dispatched_at", "resolved_at", "closed_at"}


def test_malformed_input_is_a_clear_400(world):
    server, cases = world
    for case, digits, word in (("abc", "5678", "案件编号"), (cases["closed"], "56a8", "后四位"),
                               (cases["closed"], "45678", "后四位"), ("1" * 13, "5678", "案件编号")):
        resp = _api(server, case, digits)
        assert resp.status_code == 400 and word in resp.get_json()["error"]["message"], (case, digits)
    resp = server.test_client().post("/api/v1/progress", data="[1]", content_type="application/json",
                                     environ_base=_address())
    assert resp.status_code == 400


def test_every_query_counts_and_the_sixth_in_a_minute_is_refused_in_chinese(world):
    server, cases = world
    addr = _address()
    statuses = [_api(server, cases["closed"], d, addr).status_code for d in ("0001", "0002", "0003", "5678")]
    statuses.append(_form(server, cases["closed"], "5678", addr).status_code)   # the form shares the limit
    assert statuses == [404, 404, 404, 200, 200]
    refused = _api(server, cases["closed"], "5678", addr)
    assert refused.status_code == 429
    assert "查询过于频繁" in refused.get_json()["error"]["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 61
    page = _form(server, cases["closed"], "5678", addr)
    assert page.status_code == 429 and "查询过于频繁，请" in page.get_data(as_text=True)
    assert _api(server, cases["closed"], "5678").status_code == 200     # another address is not affected


def test_the_page_is_public_and_opens_nothing_else(world):
    server, _ = world
    client = server.test_client()
    page = client.get("/progress")
    assert page.status_code == 200 and 'id="progress-form"' in page.get_data(as_text=True)
    assert "Set-Cookie" not in page.headers                 # a citizen gets no session
    assert 'href="/progress"' in client.get("/login").get_data(as_text=True)
    assert client.get("/api/v1/incidents").status_code == 401
    # digits never travel in a URL: there is no GET door
    wrong = client.get("/api/v1/progress?case=1&phone_last4=5678")
    assert wrong.status_code == 404 and wrong.get_json()["error"]["code"] == "not_found"


def test_the_public_progress_door_is_in_the_openapi_document_without_a_login(app):
    """The one public JSON door is documented where the others are: its body, its answer (no personal
    field among them), its misses and its limit, with no security requirement."""
    from data_sources.web.api import openapi_document
    from data_sources.web.progress import API_PATH
    doc = openapi_document()
    op = doc["paths"][API_PATH]["post"]
    assert op["security"] == []
    assert set(op["responses"]) == {"200", "400", "404", "429"}
    out = doc["components"]["schemas"][op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert {"state", "department", "reported_at", "closed_at"} <= set(out["properties"])
    assert not {"title", "description", "address", "reporter_phone", "lat", "lon"} & set(out["properties"])
    body = doc["components"]["schemas"]["ProgressQuery"]
    assert body["required"] == ["case", "phone_last4"]
