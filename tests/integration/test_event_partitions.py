"""The idempotency keys of actions in their own table (event_requests, migration 0005) on both backends."""
from __future__ import annotations

from sqlalchemy import select

from data_sources.store.db import get_db
from incidents.tables import EventRequest, Incident, IncidentEvent
from tests.integration.test_api import client_for, make_case


def test_a_request_id_is_kept_in_event_requests_and_a_retry_is_applied_once(server):
    cid = make_case(server, "reported", ext="K-1")
    other = make_case(server, "reported", ext="K-2")
    cl = client_for(server, "disp", "dispatcher")
    body = {"action": "register", "version": 1, "request_id": "key-1"}
    answers = [cl.post(f"/api/v1/incidents/{cid}/actions", json=body) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200] and answers[1].get_json()["version"] == 2
    reused = cl.post(f"/api/v1/incidents/{other}/actions", json=body)
    assert reused.status_code == 422 and f"case {cid}" in reused.get_json()["error"]["message"]
    with get_db(server).session_scope() as s:
        events = s.scalars(select(IncidentEvent).where(IncidentEvent.request_id == "key-1")).all()
        key = s.get(EventRequest, "key-1")
        assert [e.action for e in events] == ["register"]
        assert (key.incident_id, key.event_id) == (cid, events[0].id)
        assert s.get(Incident, other).version == 1
