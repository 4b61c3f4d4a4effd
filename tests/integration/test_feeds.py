"""Feed ingestion on SQLite and PostgreSQL: the real 311 files, idempotent re-import, updates,
quarantine of bad records, GBK / Excel files, GCJ-02 / BD-09 feeds, the CLI."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from sqlalchemy import func, select

from data_sources.coords import wgs84_to_bd09, wgs84_to_gcj02
from data_sources.feeds.files import read_records
from data_sources.ingest import ingest, retry_quarantined
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents.tables import FeedRun, Incident, IncidentEvent, Quarantine
from tests.conftest import build_app

DATA = SHARED_DATA
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


def _app(db_url, **overrides):
    app = build_app(db_url, **overrides)
    return app, get_db(app.server), get_runtime(app.server)


def _run(db, rt, records, mapping, **kw):
    return ingest(db, rt.rules, rt.pack, records, mapping, now=kw.pop("now", NOW), **kw)


def _adds_up(run):
    assert run.received == run.inserted + run.updated + run.unchanged + run.quarantined


# --------------------------------------------------------------------------- real files

def test_nyc311_real_file_imports_and_reimport_changes_nothing(db_url):
    app, db, rt = _app(db_url, PACK="nyc")
    first = _run(db, rt, read_records(DATA / "nyc311_2018-10-21_fullday.csv"), "nyc311").run
    assert first.received == 6765
    _adds_up(first)
    assert first.inserted == 6765 and first.quarantined == 0
    with db.session_scope() as s:
        states = dict(s.execute(select(Incident.state, func.count()).group_by(Incident.state)).all())
        assert states["closed"] == 2326 and sum(states.values()) == 6765
        assert s.scalar(select(func.count()).select_from(Incident).where(Incident.lon.is_(None))) == 115
        assert s.scalar(select(func.count()).select_from(Incident).where(Incident.district_code.is_not(None))) > 6000
        case = s.scalar(select(Incident).where(Incident.external_id == "40611598"))
        assert case.department_code == "NYPD" and case.state == "closed"
        actions = [e.action for e in s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == case.id)
                                               .order_by(IncidentEvent.id))]
        assert actions == ["report", "register", "dispatch", "resolve", "verify_pass"]
        ev = s.scalar(select(IncidentEvent).where(IncidentEvent.incident_id == case.id,
                                                  IncidentEvent.action == "verify_pass"))
        assert ev.actor == "import:nyc311" and ev.at == datetime(2018, 10, 21, 4, 59, tzinfo=timezone.utc)
        n_events = s.scalar(select(func.count()).select_from(IncidentEvent))
    second = _run(db, rt, read_records(DATA / "nyc311_2018-10-21_fullday.csv"), "nyc311").run
    assert (second.received, second.unchanged, second.inserted, second.updated) == (6765, 6765, 0, 0)
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(IncidentEvent)) == n_events
        assert s.scalar(select(func.count()).select_from(FeedRun)) == 2


def test_sf311_real_file_placeholders_flagged_not_plotted(db_url):
    app, db, rt = _app(db_url, PACK="sf")
    summary = _run(db, rt, read_records(DATA / "sf311_sample_2008-2018.csv"), "sf311")
    run = summary.run
    assert run.received == 10000
    _adds_up(run)
    assert run.inserted == 9983 and run.quarantined == 17
    assert summary.reasons == {"closed before created": 17}
    with db.session_scope() as s:
        no_loc = s.scalar(select(func.count()).select_from(Incident).where(Incident.lon.is_(None)))
        assert 4200 <= no_loc <= 4264
        assert s.scalar(select(func.count()).select_from(Incident).where(Incident.lon == 0)) == 0
        flagged = [p for p in s.scalars(select(IncidentEvent.payload).where(IncidentEvent.action == "report"))
                   if p and "placeholder" in (p.get("location_note") or "")]
        assert len(flagged) == no_loc
        assert s.scalar(select(func.count()).select_from(Incident).where(Incident.state == "voided")) == 4
        assert s.scalar(select(Incident.department_code).where(Incident.external_id == "6078653")) == "PUC"
    again = _run(db, rt, read_records(DATA / "sf311_sample_2008-2018.csv"), "sf311").run
    assert (again.unchanged, again.quarantined, again.inserted, again.updated) == (9983, 17, 0, 0)
    with db.session_scope() as s:  # the same bad records keep their one quarantine row each
        assert s.scalar(select(func.count()).select_from(Quarantine)) == 17


def _open311_pack(tmp_path: Path) -> Path:
    """A small pack for the Open311 files: Chicago and Bloomington as two districts."""
    p = tmp_path / "open311pack"
    shutil.copytree(Path(__file__).resolve().parents[2] / "data_sources" / "packs" / "sf", p)
    toml = (p / "pack.toml").read_text()
    toml = toml.replace('name = "sf"', 'name = "open311test"').replace("America/Los_Angeles", "America/Chicago")
    toml = toml.replace("center = [37.76, -122.44]", "center = [40.5, -87.0]")
    (p / "pack.toml").write_text(toml)

    def square(x0, y0, x1, y1):
        return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
    feats = []
    for code, name, geom in (("CHI", "Chicago", square(-87.95, 41.64, -87.52, 42.03)),
                             ("BLM", "Bloomington", square(-86.60, 39.10, -86.45, 39.23))):
        feats.append({"type": "Feature", "properties": {"code": code, "name": name, "level": "district",
                                                        "parent_code": None}, "geometry": geom})
        feats.append({"type": "Feature", "properties": {"code": code + "01", "name": name + " grid",
                                                        "level": "grid", "parent_code": code}, "geometry": geom})
    (p / "areas.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    services = json.loads((DATA / "open311_bloomington_services.json").read_text())
    group_cat = {"Streets, Parking & Traffic": "STREETDEF", "Hazards": "OTHER", "Water & Sewage Utility": "SEWER",
                 "Cleanup & Sanitation": "STREETCLEAN", "Parks & Recreation": "TREES"}
    rows = ["kind,value,department_code,category_code"]
    for svc in services:
        rows.append(f"complaint_type,{svc['service_code']},,{group_cat.get(svc['group'], 'GENERAL')}")
    for name, cat in (("Building Violation", "GENERAL"), ("Pavement Cave-In Survey", "STREETDEF"),
                      ("Street Cut Complaints", "STREETDEF"), ("Traffic Signal Out", "SIGNS"),
                      ("Pothole in Street", "STREETDEF"), ("Street Light Out", "WATER"),
                      ("Abandoned Vehicle", "PARKING")):
        rows.append(f"complaint_type,{name},,{cat}")
    rows.append("agency,Police Department,SFPD,")
    (p / "mapping.csv").write_text("\n".join(rows) + "\n")
    return p


def test_open311_chicago_and_bloomington_via_tmp_pack(db_url, tmp_path):
    app, db, rt = _app(db_url, PACK=str(_open311_pack(tmp_path)))
    chi = _run(db, rt, read_records(DATA / "open311_chicago_requests_2014_extended.json"), "open311",
               source_label="chicago").run
    assert (chi.received, chi.inserted) == (50, 50)
    _adds_up(chi)
    blm = _run(db, rt, read_records(DATA / "open311_bloomington_requests.json"), "open311",
               source_label="bloomington").run
    assert (blm.received, blm.inserted) == (21, 21)
    with db.session_scope() as s:
        states = dict(s.execute(select(Incident.state, func.count()).where(Incident.source == "chicago")
                                .group_by(Incident.state)).all())
        assert states.get("registered") == 1 and states.get("voided", 0) >= 1
        assert states.get("closed", 0) + states.get("voided", 0) == 49
        dup = s.scalar(select(Incident).where(Incident.external_id == "14-02155558"))
        assert dup.state == "voided" and dup.void_reason == "duplicate"
        assert s.scalar(select(func.count()).select_from(Incident)
                        .where(Incident.source == "bloomington", Incident.lon.is_(None))) == 8  # 6 at 0,0 + 2 without
        graffiti = s.scalar(select(Incident).where(Incident.external_id == "4fbd3beeb1fe2c9f5c000001"))
        assert graffiti.district_code == "BLM"
        assert graffiti.reported_at == datetime(2012, 5, 23, 19, 35, 8, tzinfo=timezone.utc)
    again = _run(db, rt, read_records(DATA / "open311_bloomington_requests.json"), "open311",
                 source_label="bloomington").run
    assert again.unchanged == 21


# --------------------------------------------------------------------------- updates, bad records (Hangzhou, native)

WEST_LAKE = (120.1593, 30.2585)  # WGS84


def _rec(i, **kw):
    base = {"external_id": f"N{i}", "title": f"井盖缺失 {i}", "category_code": "C0101",
            "reported_at": "2024-05-06 09:00", "lon": WEST_LAKE[0], "lat": WEST_LAKE[1], "state": "registered"}
    base.update(kw)
    return base


def test_changed_record_updates_case_and_appends_events(app):
    db, rt = get_db(app.server), get_runtime(app.server)
    recs = [(_rec(1), 1), (_rec(2), 2)]
    first = _run(db, rt, recs, "native").run
    assert first.inserted == 2
    changed = [(_rec(1, state="closed", closed_at="2024-05-07 10:00", title="井盖缺失（已修复）"), 1), (_rec(2), 2)]
    second = _run(db, rt, changed, "native").run
    assert (second.updated, second.unchanged, second.inserted) == (1, 1, 0)
    with db.session_scope() as s:
        case = s.scalar(select(Incident).where(Incident.external_id == "N1"))
        assert case.state == "closed" and case.title == "井盖缺失（已修复）"
        assert case.closed_at == datetime(2024, 5, 7, 2, 0, tzinfo=timezone.utc)  # Asia/Shanghai
        actions = [e.action for e in s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == case.id)
                                               .order_by(IncidentEvent.id))]
        assert actions == ["report", "register", "update", "dispatch", "resolve", "verify_pass"]
        upd = s.scalar(select(IncidentEvent).where(IncidentEvent.incident_id == case.id,
                                                   IncidentEvent.action == "update"))
        assert upd.payload["changed"]["state"] == ["registered", "closed"]
    third = _run(db, rt, changed, "native").run
    assert third.unchanged == 2


def test_bad_records_are_quarantined_with_reasons_and_nothing_crashes(app, tmp_path):
    db, rt = get_db(app.server), get_runtime(app.server)
    latin = tmp_path / "bad.csv"  # bytes valid in neither UTF-8 nor GB18030 on one row
    latin.write_bytes(b"external_id,title,category_code,reported_at,lon,lat\n"
                      b"E1,ok,C0101,2024-05-06 09:00,120.1593,30.2585\n"
                      b"E2,caf\xe9 \x80\xff,C0101,2024-05-06 09:00,120.1593,30.2585\n")
    enc = _run(db, rt, read_records(latin), "native", source_label="bad-enc")
    assert enc.run.received == 2 and enc.run.quarantined >= 1
    bad = [
        (_rec(10, reported_at="32/13/2024 25:61"), 1),                       # broken date
        (_rec(11, external_id=""), 2),                                       # missing id
        (_rec(12, title=""), 3),                                             # missing title
        (_rec(13, lon=-74.0, lat=40.7), 4),                                  # out of area: kept, flagged
        (_rec(14, category_code="Z9999"), 5),                                # unknown category
        (_rec(15), 6), (_rec(15, title="again"), 7),                         # duplicate id in one file
        (_rec(16, description="x" * 50_000), 8),                             # oversized
        (_rec(17, closed_at="2024-05-01 00:00", state="closed"), 9),         # closed before created
        (_rec(18, title="<b>井盖</b><script>alert(1)</script>"), 10),         # HTML: kept, stripped
        (_rec(19, lon=0, lat=0), 11),                                        # placeholder: kept, not plotted
        ({"__unreadable__": "line is not valid JSON", "text": "{"}, 12),      # unreadable
        (_rec(20, state="teleported"), 13),                                  # unknown status
    ]
    summary = _run(db, rt, bad, "native", source_label="bad")
    run = summary.run
    _adds_up(run)
    assert (run.received, run.inserted, run.quarantined) == (13, 4, 9)
    assert summary.flags == {"location unknown": 2}                         # out of area, 0,0
    with db.session_scope() as s:
        reasons = [q.reason for q in s.scalars(select(Quarantine).where(Quarantine.feed_run_id == run.id)
                                               .order_by(Quarantine.id))]
        raws = [json.loads(q.raw) for q in s.scalars(select(Quarantine).where(Quarantine.feed_run_id == run.id))]
        html_case = s.scalar(select(Incident).where(Incident.external_id == "N18"))
        zero = s.scalar(select(Incident).where(Incident.external_id == "N19"))
        away = s.scalar(select(Incident).where(Incident.external_id == "N13"))
        away_report = s.scalar(select(IncidentEvent.payload).where(IncidentEvent.incident_id == away.id,
                                                                   IncidentEvent.action == "report"))
    text = "\n".join(reasons)
    for expected in ("unreadable timestamp", "external_id: is missing", "title: is missing",
                     "unknown complaint type 'Z9999'", "duplicate external id 'N15'", "characters long",
                     "closed before created", "not valid JSON", "unknown status"):
        assert expected in text
    assert all("record" in r for r in raws)
    assert html_case.title == "井盖" and "<" not in html_case.title
    assert zero.lon is None and zero.lat is None
    assert away.lon is None and away.district_code is None
    assert "outside the area" in away_report["flags"]["location unknown"]


def test_gbk_csv_and_xlsx_import(app, tmp_path):
    db, rt = get_db(app.server), get_runtime(app.server)
    gbk = tmp_path / "cases.csv"
    gbk.write_bytes("external_id,title,category_code,reported_at,lon,lat,address\n"
                    "G1,井盖缺失,C0101,2024-05-06 09:00,120.1593,30.2585,湖滨路1号\n".encode("gbk"))
    run = _run(db, rt, read_records(gbk), "native", source_label="gbk").run
    assert run.inserted == 1
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    ws.append(["external_id", "title", "category_code", "reported_at", "lon", "lat"])
    ws.append(["X1", "暴露垃圾", "C0101", datetime(2024, 5, 6, 9, 30), 120.1653, 30.2793])
    ws.append(["X2", "道路破损", "C0101", "5/6/24 10:15", 120.2075, 30.2484])
    wb.save(tmp_path / "cases.xlsx")
    run = _run(db, rt, read_records(tmp_path / "cases.xlsx"), "native", source_label="xlsx").run
    assert (run.received, run.inserted) == (2, 2)
    with db.session_scope() as s:
        assert s.scalar(select(Incident.address).where(Incident.external_id == "G1")) == "湖滨路1号"
        x1 = s.scalar(select(Incident).where(Incident.external_id == "X1"))
        assert x1.reported_at == datetime(2024, 5, 6, 1, 30, tzinfo=timezone.utc)
        assert x1.district_code is not None


@pytest.mark.parametrize("crs,convert", [("GCJ02", wgs84_to_gcj02), ("BD09", wgs84_to_bd09)])
def test_gcj02_and_bd09_feeds_are_converted(app, crs, convert):
    db, rt = get_db(app.server), get_runtime(app.server)
    lon, lat = (float(v) for v in convert(*WEST_LAKE))
    run = _run(db, rt, [(_rec(1, lon=lon, lat=lat), 1)], "native", source_label=crs, crs=crs).run
    assert run.inserted == 1
    with db.session_scope() as s:
        case = s.scalar(select(Incident).where(Incident.source == crs))
    assert abs(case.lon - WEST_LAKE[0]) < 1e-5 and abs(case.lat - WEST_LAKE[1]) < 1e-5


def test_quarantine_retry_ingests_records_that_became_valid(app, tmp_path):
    db, rt = get_db(app.server), get_runtime(app.server)
    run = _run(db, rt, [(_rec(1, category_code="NEWCAT"), 1)], "native").run
    assert run.quarantined == 1
    # the pack learns the code (a mapping row), then the record is retried
    pack_dir = tmp_path / "hz"
    shutil.copytree(rt.pack.path, pack_dir)
    (pack_dir / "mapping.csv").write_text("kind,value,department_code,category_code\ncomplaint_type,NEWCAT,,C0101\n")
    from data_sources.runtime import runtime_for
    rt2 = runtime_for(str(pack_dir))
    out = retry_quarantined(db, rt2.rules, rt2.pack, now=NOW)
    assert len(out) == 1 and out[0].run.inserted == 1
    with db.session_scope() as s:
        assert s.scalar(select(Quarantine.status)) == "retried"
        assert s.scalar(select(Incident.category_code).where(Incident.external_id == "N1")) == "C0101"


def test_cli_import_and_quarantine(app, tmp_path):
    path = tmp_path / "cases.ndjson"
    path.write_text(json.dumps(_rec(1), ensure_ascii=False) + "\n" + json.dumps(_rec(2, category_code="BAD")) + "\n")
    runner = app.server.test_cli_runner()
    res = runner.invoke(args=["import", "incidents", str(path), "--mapping", "native", "--source", "cli"])
    assert res.exit_code == 0, res.output
    assert "inserted" in res.output and "quarantined" in res.output and "unknown complaint type" in res.output
    res = runner.invoke(args=["quarantine", "list"])
    assert res.exit_code == 0 and "BAD" in res.output
    with get_db(app.server).session_scope() as s:
        qid = s.scalar(select(Quarantine.id))
    res = runner.invoke(args=["quarantine", "show", str(qid)])
    assert res.exit_code == 0 and '"category_code": "BAD"' in res.output
    res = runner.invoke(args=["quarantine", "retry", "--all"])
    assert res.exit_code == 0 and "quarantined" in res.output


def test_the_sources_own_deadline_is_the_deadline_in_force(app):
    """Issue 15 item 3e: a mapped deadline column (native: ``deadline``) replaces the category's limit
    (C0101: one working day) — on the case, its fact row and the KPIs' rebuild of it."""
    from incidents import kpis
    from incidents.tables import CaseFact
    db, rt = get_db(app.server), get_runtime(app.server)
    recs = [(_rec(40, state="closed", closed_at="2024-05-06 15:00", deadline="2024-05-06 12:00"), 1),  # late by the source
            (_rec(41, state="closed", closed_at="2024-05-06 15:00"), 2),                                # on time by C0101
            (_rec(42, state="dispatched", deadline="2024-05-20 18:00"), 3)]
    assert _run(db, rt, recs, "native", source_label="due").run.inserted == 3
    due = datetime(2024, 5, 20, 10, tzinfo=timezone.utc)                      # 18:00 in Hangzhou
    with db.session_scope() as s:
        rows = {r.external_id: r for r in s.scalars(select(Incident).where(Incident.source == "due"))}
        assert (rows["N40"].on_time, rows["N41"].on_time) == (False, True)
        assert rows["N40"].source_deadline == datetime(2024, 5, 6, 4, tzinfo=timezone.utc)
        assert rows["N41"].source_deadline is None
        n42 = rows["N42"]
        assert n42.deadline == n42.source_deadline == due and s.get(CaseFact, n42.id).deadline == due
        events = s.execute(select(IncidentEvent.action, IncidentEvent.at, IncidentEvent.from_state)
                           .where(IncidentEvent.incident_id == n42.id).order_by(IncidentEvent.id)).all()
        assert kpis.deadline_in_force([(a, at, f, None) for a, at, f in events], 8.0, False, rt.calendar,
                                      fixed=n42.source_deadline) == due
    later = [(_rec(42, state="dispatched", deadline="2024-05-22 18:00"), 1)]
    assert _run(db, rt, later, "native", source_label="due").run.updated == 1
    with db.session_scope() as s:
        n42 = s.scalar(select(Incident).where(Incident.source == "due", Incident.external_id == "N42"))
        assert n42.deadline == datetime(2024, 5, 22, 10, tzinfo=timezone.utc) == s.get(CaseFact, n42.id).deadline
