"""POST /api/v1/feeds/<feed>/records: token auth, JSON array or NDJSON, counts and quarantine
reasons in the answer, idempotent, 403 / 413 / 400 as JSON."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from data_sources.store.db import get_db
from incidents import auth
from incidents.tables import FeedRun, Incident
from tests.integration.helpers import push_record

URL = "/api/v1/feeds/partner-a/records"


def _rec(i, **kw):
    return push_record(f"PU{i}", label=i, reported_at="2024-05-06 09:00", **kw)


@pytest.fixture
def tokens(server):
    now = datetime.now(timezone.utc)
    out = {}
    with get_db(server).session_scope() as s:
        for role in ("dispatcher", "viewer", "leader"):
            auth.create_user(s, f"push-{role}", role, password="push-feed-secret-9", now=now)
            out[role] = {"Authorization": "Bearer " + auth.create_token(s, f"push-{role}", now=now)}
    return out


def test_push_json_then_ndjson_counts_reasons_and_is_idempotent(server, tokens):
    c = server.test_client()
    body = [_rec(1), _rec(2), _rec(3, category_code="NOPE"), "not a record"]
    res = c.post(URL, json=body, headers=tokens["dispatcher"])
    assert res.status_code == 200, res.get_json()
    out = res.get_json()
    assert (out["received"], out["inserted"], out["quarantined"], out["mapping"]) == (4, 2, 2, "native")
    assert out["received"] == out["inserted"] + out["updated"] + out["unchanged"] + out["quarantined"]
    reasons = " | ".join(r["reason"] for r in out["quarantine_reasons"])
    assert "unknown complaint type" in reasons and "not an object" in reasons
    assert {"line": 3, "external_id": "PU3"} == {k: out["quarantined_records"][0][k] for k in ("line", "external_id")}

    again = c.post(URL, json=body, headers=tokens["dispatcher"]).get_json()
    assert (again["inserted"], again["unchanged"], again["quarantined"]) == (0, 2, 2)

    # a dispatcher's system may re-title and dispatch (closing is the inspector's: tests/…/test_push_permissions.py)
    nd = "\n".join([json.dumps(_rec(2, title="道路破损 2（已派遣）", state="dispatched"),
                               ensure_ascii=False), json.dumps(_rec(4)), "{broken"]) + "\n"
    res = c.post(URL, data=nd.encode(), headers={**tokens["dispatcher"], "Content-Type": "application/x-ndjson"})
    out = res.get_json()
    assert res.status_code == 200 and (out["received"], out["inserted"], out["updated"], out["quarantined"]) == (3, 1, 1, 1)
    with get_db(server).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Incident).where(Incident.source == "partner-a")) == 3
        assert s.scalar(select(Incident.state).where(Incident.external_id == "PU2")) == "dispatched"
        assert [r.status for r in s.scalars(select(FeedRun).where(FeedRun.feed == "partner-a"))] == ["ok"] * 3


def test_push_refuses_roles_bad_json_oversized_bodies_and_anonymous(server, tokens):
    c = server.test_client()
    for role in ("viewer", "leader"):
        res = c.post(URL, json=[_rec(1)], headers=tokens[role])
        assert res.status_code == 403 and res.get_json()["error"]["code"] == "forbidden"
    assert c.post(URL, json=[_rec(1)]).status_code == 401
    res = c.post(URL, data=b"[{not json", headers={**tokens["dispatcher"], "Content-Type": "application/json"})
    assert res.status_code == 400 and "not valid JSON" in res.get_json()["error"]["message"]
    res = c.post(URL, data=b"42", headers={**tokens["dispatcher"], "Content-Type": "application/json"})
    assert res.status_code == 400
    server.config["PUSH_MAX_BYTES"] = 1000
    res = c.post(URL, json=[_rec(i) for i in range(20)], headers=tokens["dispatcher"])
    assert res.status_code == 413 and res.get_json()["error"]["code"] == "too_large"
    res = c.post(URL + "?mapping=nope", json=[_rec(1)], headers=tokens["dispatcher"])
    assert res.status_code == 400 and "unknown mapping" in res.get_json()["error"]["message"]
    with get_db(server).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Incident)) == 0
