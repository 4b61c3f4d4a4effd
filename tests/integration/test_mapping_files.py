"""`flask import incidents FILE --mapping NAME_OR_PATH` on SQLite and PostgreSQL: Open311 XML with
its services.xml, a mapping file given by path (its quarantined records retried through the same
file), and a broken mapping file refused before any record is read."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from data_sources.feeds.mappings import BUILTIN_DIR
from data_sources.store.db import get_db
from incidents.tables import FeedRun, Incident, IncidentEvent, Quarantine
from tests.conftest import build_app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "open311"


def _counts(output: str) -> dict[str, int]:
    out = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("received", "inserted", "updated", "unchanged", "quarantined"):
            out[parts[0]] = int(parts[1].replace(",", ""))
    assert out["received"] == out["inserted"] + out["updated"] + out["unchanged"] + out["quarantined"]
    return out


def test_open311_xml_with_services_imports_and_reimport_changes_nothing(db_url):
    app = build_app(db_url, PACK="sf")
    runner = app.server.test_cli_runner()
    args = ["import", "incidents", str(FIXTURES / "requests.xml"), "--mapping", "open311",
            "--services", str(FIXTURES / "services.xml"), "--source", "xml311"]
    res = runner.invoke(args=args)
    assert res.exit_code == 0, res.output
    assert _counts(res.output) == {"received": 3, "inserted": 3, "updated": 0, "unchanged": 0, "quarantined": 0}
    with get_db(app.server).session_scope() as s:
        rows = {r.external_id: r for r in s.scalars(select(Incident).where(Incident.source == "xml311"))}
        assert {k: r.state for k, r in rows.items()} == {"SF-1001": "dispatched", "SF-1002": "closed",
                                                          "SF-1003": "voided"}
        assert rows["SF-1002"].category_code == "STREETCLEAN" and rows["SF-1002"].lon is None
        assert rows["SF-1003"].void_reason == "duplicate"
    again = runner.invoke(args=args)
    assert again.exit_code == 0, again.output
    assert _counts(again.output)["unchanged"] == 3


def test_a_mapping_file_by_path_and_its_quarantine_retry(db_url, tmp_path):
    """A city's own file: the SF layout with the status 'Awaiting Crew' and Pacific dates day first."""
    app = build_app(db_url, PACK="sf")
    mapping = tmp_path / "sf-variant.toml"
    mapping.write_text((BUILTIN_DIR / "sf311.toml").read_text()
                       .replace('dispatched = ["assigned"', 'dispatched = ["awaiting crew", "assigned"')
                       .replace("[timestamps]\n", "[timestamps]\ndayfirst = true\n"))
    data = tmp_path / "cases.csv"
    data.write_text("unique_key,created_date,status,agency_name,category,latitude,longitude\n"
                    "V1,21/10/2017 09:30,Awaiting Crew,PUC Sewer Ops,Sewer Issues,37.77,-122.42\n"
                    "V2,22/10/2017 10:00,Open,PUC Sewer Ops,Alien landing,37.77,-122.42\n")
    runner = app.server.test_cli_runner()
    res = runner.invoke(args=["import", "incidents", str(data), "--mapping", str(mapping)])
    assert res.exit_code == 0, res.output
    assert _counts(res.output)["inserted"] == 1 and "unknown complaint type" in res.output
    with get_db(app.server).session_scope() as s:
        case = s.scalar(select(Incident).where(Incident.external_id == "V1"))
        assert (case.source, case.state, case.department_code) == ("sf-variant", "dispatched", "PUC")
        assert case.reported_at.replace(tzinfo=None).isoformat() == "2017-10-21T16:30:00"   # 09:30 PDT
    res = runner.invoke(args=["quarantine", "retry", "--all"])
    assert res.exit_code == 0 and "feed run" in res.output       # found the file again by its path


def test_a_broken_mapping_file_is_refused_before_any_record_is_read(db_url, tmp_path):
    app = build_app(db_url, PACK="sf")
    mapping = tmp_path / "city.toml"
    text = (BUILTIN_DIR / "sf311.toml").read_text().replace('columns = "agency_name"', 'colums = "agency_name"')
    mapping.write_text(text)
    line = text.splitlines().index('colums = "agency_name"') + 1
    runner = app.server.test_cli_runner()
    res = runner.invoke(args=["import", "incidents", str(FIXTURES / "requests.xml"), "--mapping", str(mapping)])
    assert res.exit_code != 0
    assert f"city.toml line {line}, key department.colums: unknown key" in res.output
    res = runner.invoke(args=["import", "incidents", str(FIXTURES / "requests.xml"), "--mapping", "chicago"])
    assert res.exit_code != 0 and "unknown mapping 'chicago'" in res.output
    with get_db(app.server).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(FeedRun)) == 0
        assert s.scalar(select(func.count()).select_from(Quarantine)) == 0


def test_a_transferred_case_is_reassigned_to_its_new_department(db_url, tmp_path):
    app = build_app(db_url, PACK="sf")
    header = "unique_key,created_date,status,agency_name,category,latitude,longitude\n"
    first, second = tmp_path / "day1.csv", tmp_path / "day2.csv"
    first.write_text(header + "T1,2017-10-21 09:30:00-07:00,Assigned,PUC Sewer Ops,Sewer Issues,37.77,-122.42\n")
    second.write_text(header + "T1,2017-10-21 09:30:00-07:00,Transferred,DPW Ops Queue,Sewer Issues,37.77,-122.42\n")
    runner = app.server.test_cli_runner()
    for path in (first, second):
        res = runner.invoke(args=["import", "incidents", str(path), "--mapping", "sf311"])
        assert res.exit_code == 0, res.output
    assert _counts(res.output)["updated"] == 1
    with get_db(app.server).session_scope() as s:
        case = s.scalar(select(Incident).where(Incident.external_id == "T1"))
        actions = s.execute(select(IncidentEvent.action, IncidentEvent.payload).where(
            IncidentEvent.incident_id == case.id).order_by(IncidentEvent.id)).all()
    assert (case.state, case.department_code) == ("dispatched", "DPW")
    assert [a for a, _ in actions] == ["report", "register", "dispatch", "reassign", "update"]
    assert actions[4][1]["source_status"] == "Transferred"


def test_faithful_import_keeps_flags_and_counts(db_url, tmp_path):
    """Issue 15 item 3: closed before created quarantined by default, kept flagged when the mapping
    says so; an unusable location kept unknown and counted; an unknown type in the catch-all."""
    app = build_app(db_url, PACK="sf")
    header = "unique_key,created_date,closed_date,status,agency_name,category,latitude,longitude\n"
    data = tmp_path / "cases.csv"
    data.write_text(header
                    + "F1,2017-10-21 09:30:00-07:00,2017-10-20 08:00:00-07:00,Closed,PUC Sewer Ops,Sewer Issues,37.77,-122.42\n"
                    + "F2,2017-10-21 09:30:00-07:00,,Assigned,PUC Sewer Ops,Sewer Issues,40.7,-74.0\n"
                    + "F3,2017-10-21 09:30:00-07:00,,Assigned,PUC Sewer Ops,Alien landing,37.77,-122.42\n")
    runner = app.server.test_cli_runner()
    res = runner.invoke(args=["import", "incidents", str(data), "--mapping", "sf311"])
    assert res.exit_code == 0, res.output
    assert _counts(res.output) == {"received": 3, "inserted": 1, "updated": 0, "unchanged": 0, "quarantined": 2}
    assert "closed before created" in res.output and "unknown complaint type" in res.output
    assert "1  location unknown" in res.output
    lenient = tmp_path / "lenient.toml"
    lenient.write_text((BUILTIN_DIR / "sf311.toml").read_text()
                       .replace("[timestamps]\n", '[timestamps]\nclosed_before_created = "keep"\n')
                       .replace("[category]\n", '[category]\ncatch_all = "OTHER"\n'))
    res = runner.invoke(args=["import", "incidents", str(data), "--mapping", str(lenient)])
    assert res.exit_code == 0, res.output
    assert _counts(res.output) == {"received": 3, "inserted": 3, "updated": 0, "unchanged": 0, "quarantined": 0}
    for kind in ("1  location unknown", "1  closed before created", "1  unknown type"):
        assert kind in res.output
    with get_db(app.server).session_scope() as s:
        rows = {r.external_id: r for r in s.scalars(select(Incident).where(Incident.source == "lenient"))}
        reports = dict(s.execute(select(IncidentEvent.incident_id, IncidentEvent.payload).where(
            IncidentEvent.action == "report", IncidentEvent.incident_id.in_([r.id for r in rows.values()]))).all())
    f1, f2, f3 = rows["F1"], rows["F2"], rows["F3"]
    assert f1.state == "closed" and f1.closed_at == f1.reported_at
    assert "closed 2017-10-20 15:00Z" in reports[f1.id]["flags"]["closed before created"]
    assert f2.lon is None and f2.district_code is None and "outside the area" in reports[f2.id]["flags"]["location unknown"]
    assert f3.category_code == "OTHER" and reports[f3.id]["source_type"] == "Alien landing"
    again = runner.invoke(args=["import", "incidents", str(data), "--mapping", str(lenient)])
    assert _counts(again.output)["unchanged"] == 3


def test_an_open_case_naming_an_agency_is_dispatched_there_at_the_source_time(db_url, tmp_path):
    from incidents.tables import CaseFact
    app = build_app(db_url, PACK="sf")
    data = tmp_path / "open.csv"
    data.write_text("unique_key,created_date,status,agency_name,category,latitude,longitude\n"
                    "O1,2017-10-21 09:30:00-07:00,Open,PUC Sewer Ops,Sewer Issues,37.77,-122.42\n"
                    "O2,2017-10-21 09:30:00-07:00,Open,,Sewer Issues,37.77,-122.42\n")
    runner = app.server.test_cli_runner()
    res = runner.invoke(args=["import", "incidents", str(data), "--mapping", "sf311"])
    assert _counts(res.output)["inserted"] == 2, res.output
    with get_db(app.server).session_scope() as s:
        rows = {r.external_id: r for r in s.scalars(select(Incident).where(Incident.external_id.in_(["O1", "O2"])))}
        o1, o2 = rows["O1"], rows["O2"]
        dispatch = s.execute(select(IncidentEvent.at, IncidentEvent.department_code).where(
            IncidentEvent.incident_id == o1.id, IncidentEvent.action == "dispatch")).one()
        fact = s.get(CaseFact, o1.id)
        assert (o1.state, o1.department_code, o1.deadline is not None) == ("dispatched", "PUC", True)
        assert dispatch.at == o1.reported_at and dispatch.department_code == "PUC"
        assert (fact.department_code, fact.first_dispatched_at) == ("PUC", o1.reported_at)
        assert (o2.state, o2.department_code) == ("registered", None)          # no agency named: triage
    again = runner.invoke(args=["import", "incidents", str(data), "--mapping", "sf311"])
    assert _counts(again.output)["unchanged"] == 2
