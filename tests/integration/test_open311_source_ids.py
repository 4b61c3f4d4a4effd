"""Open311 both ways (issue 15 item 4): an imported request keeps its source's service_request_id
and answers it on requests/<id>; updated_datetime is its last change; ``flask import open311``
reads a server. SQLite and PostgreSQL."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from functools import partial
from http.server import SimpleHTTPRequestHandler

import pytest
from sqlalchemy import func, select

from data_sources.feeds.files import read_records
from data_sources.ingest import ingest
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents.tables import Incident, IncidentEvent
from tests.conftest import BACKENDS, build_app, database_url
from tests.integration.test_feeds import DATA, _open311_pack
from tests.integration.test_feeds_open311_client import _serve

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
CHICAGO = DATA / "open311_chicago_requests_2014_extended.json"
POTHOLE = "14-00684314"          # closed (notes timeline)
DUPLICATE = "14-02155558"        # closed as a duplicate: voided


@pytest.fixture(scope="module", params=BACKENDS)
def app(request, tmp_path_factory):
    """One app per backend for the module, on a pack of Chicago and Bloomington; each test imports
    under source labels of its own."""
    folder = tmp_path_factory.mktemp(f"o311ids-{request.param}")
    app = build_app(database_url(request.param, folder), PACK=str(_open311_pack(folder)))
    yield app
    get_db(app.server).dispose()


def ids_of(resp) -> list[str]:
    assert resp.status_code == 200, resp.data
    return [r["service_request_id"] for r in resp.get_json()]


def test_an_imported_request_answers_its_source_id_and_its_last_change(app):
    db, rt = get_db(app.server), get_runtime(app.server)
    assert ingest(db, rt.rules, rt.pack, read_records(CHICAGO), "open311", source_label="chicago",
                  now=NOW).run.inserted == 50
    client = app.server.test_client()
    r = client.get(f"/open311/v2/requests/{POTHOLE}.json")
    assert r.status_code == 200, r.data
    (req,) = r.get_json()
    assert req["service_request_id"] == POTHOLE and req["status"] == "closed"
    with db.session_scope() as s:
        case = s.scalar(select(Incident).where(Incident.source == "chicago", Incident.external_id == POTHOLE))
        internal, written = case.id, case.updated_at
        last_event = s.scalar(select(func.max(IncidentEvent.at)).where(IncidentEvent.incident_id == case.id))
    # the last change is the source's last event (2014/2015), not the import's time (2030)
    updated = datetime.fromisoformat(req["updated_datetime"])
    assert updated == last_event.replace(microsecond=0) and updated.year < 2016 and written.year == 2030
    assert updated.utcoffset() is not None
    # the internal id keeps working where no source uses it as an id; XML answers the same id
    assert ids_of(client.get(f"/open311/v2/requests/{internal}.json")) == [POTHOLE]
    root = ET.fromstring(client.get(f"/open311/v2/requests/{POTHOLE}.xml").data)
    assert root.findtext("request/service_request_id") == POTHOLE
    assert sorted(ids_of(client.get(f"/open311/v2/requests.json?service_request_id={POTHOLE},{DUPLICATE}"))) \
        == sorted([POTHOLE, DUPLICATE])
    assert client.get("/open311/v2/requests/14-99999999.json").status_code == 404
    assert client.get("/open311/v2/requests/14%00.json").status_code == 404          # never a 500
    assert client.get("/open311/v2/requests/99999999999999.json").status_code == 404
    assert client.get("/open311/v2/requests.json?service_request_id=a%00b").status_code == 400

    # the same file under a second source: one id, two requests — the list answers both, the
    # single read says which internal ids to ask for
    ingest(db, rt.rules, rt.pack, read_records(CHICAGO), "open311", source_label="chicago-mirror", now=NOW)
    with db.session_scope() as s:
        both = sorted(s.scalars(select(Incident.id).where(Incident.external_id == POTHOLE)))
    r = client.get(f"/open311/v2/requests/{POTHOLE}.json")
    assert r.status_code == 400 and all(str(i) in r.get_json()[0]["description"] for i in both)
    assert ids_of(client.get(f"/open311/v2/requests.json?service_request_id={POTHOLE}")) == [POTHOLE, POTHOLE]
    assert ids_of(client.get(f"/open311/v2/requests/{both[1]}.json")) == [POTHOLE]


def test_a_case_changed_here_after_import_is_updated_at_that_change(app):
    from incidents import services
    from incidents.model import Role
    from incidents.services import Actor
    db, rt = get_db(app.server), get_runtime(app.server)
    ingest(db, rt.rules, rt.pack, read_records(DATA / "open311_bloomington_requests.json"), "open311",
           source_label="bloomington-changed", now=NOW)
    later = datetime(2031, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    with db.session_scope() as s:
        case = s.scalar(select(Incident).where(Incident.source == "bloomington-changed", Incident.state != "closed",
                                               Incident.state != "voided").order_by(Incident.id))
        ext = case.external_id
        services.perform(s, rt.rules, Actor("sup", Role.LEADER), case.id, "supervise", version=case.version,
                         now=later, note="督办")
    (req,) = app.server.test_client().get(f"/open311/v2/requests/{ext}.json").get_json()
    assert datetime.fromisoformat(req["updated_datetime"]) == later


def test_flask_import_open311_reads_a_server_in_json_and_in_xml(app, tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    for name in ("services", "requests"):
        (www / f"{name}.json").write_bytes((DATA / f"open311_bloomington_{name}.json").read_bytes())
    # the XML of the same requests: what our own server answers for them
    ingest(get_db(app.server), *(lambda rt: (rt.rules, rt.pack))(get_runtime(app.server)),
           read_records(www / "requests.json"), "open311", source_label="bloomington", now=NOW)
    web = app.server.test_client()
    (www / "requests.xml").write_bytes(web.get("/open311/v2/requests.xml?start_date=2012-04-01T00:00:00Z"
                                               "&end_date=2012-06-29T00:00:00Z").data)
    (www / "services.xml").write_bytes(web.get("/open311/v2/services.xml").data)
    xml_ids = {el.findtext("service_request_id") for el in ET.fromstring((www / "requests.xml").read_bytes())}
    assert len(xml_ids) == 21

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    srv, port = _serve(partial(Quiet, directory=str(www)), wsgi=False)
    try:
        runner = app.server.test_cli_runner()
        url = f"http://127.0.0.1:{port}/"
        out = runner.invoke(args=["import", "open311", url, "--from", "2012-01-01", "--to", "2012-12-31",
                                  "--source", "blm-json"])
        assert out.exit_code == 0, out.output
        assert "services read: 46" in out.output and "inserted" in out.output
        out = runner.invoke(args=["import", "open311", url, "--from", "2012-05-01", "--to", "2012-06-01",
                                  "--format", "xml", "--source", "blm-xml"])
        assert out.exit_code == 0, out.output
        bad = runner.invoke(args=["import", "open311", "ftp://example.com", "--from", "2012-01-01"])
        assert bad.exit_code != 0 and "http(s)" in bad.output
    finally:
        srv.shutdown()
    with get_db(app.server).session_scope() as s:
        def ids(source):
            return set(s.scalars(select(Incident.external_id).where(Incident.source == source)))
        assert len(ids("blm-json")) == 21 and ids("blm-json") == ids("bloomington")
        # the XML server published the source's ids, and they came back unchanged
        assert ids("blm-xml") == xml_ids == ids("bloomington")
        states = dict(s.execute(select(Incident.external_id, Incident.state)
                                .where(Incident.source == "blm-xml")).all())
        originals = dict(s.execute(select(Incident.external_id, Incident.state)
                                   .where(Incident.source == "bloomington")).all())
        for ext, state in states.items():
            assert (state in ("closed", "voided")) == (originals[ext] in ("closed", "voided")), ext
