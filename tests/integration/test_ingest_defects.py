"""Ingestion defects found by hostile testing: a UTF-16 CSV is read, not quarantined whole; DD/MM/YYYY
is read when a mapping declares it; placeholder dates (1899) are refused with a clear reason; a run
whose process was killed is closed as failed when the next run starts."""
from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from data_sources.feeds.files import read_records
from data_sources.feeds.mappings import BUILTIN_DIR, MAPPINGS, load_mapping_file
from data_sources.ingest import RUN_OWNER, Ingestor, ingest
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents.tables import FeedRun, Incident, Quarantine

NOW = datetime(2026, 11, 18, 2, 0, tzinfo=timezone.utc)
WEST_LAKE = ("120.1593", "30.2585")
HEADER = ["external_id", "title", "category_code", "reported_at", "lon", "lat"]


def _csv(rows) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(HEADER)
    w.writerows(rows)
    return out.getvalue()


def _run(server, records, mapping=None):
    rt = get_runtime(server)
    return ingest(get_db(server), rt.rules, rt.pack, records, mapping or MAPPINGS["native"], now=NOW)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_utf16_or_utf32_csv_is_read_not_quarantined(server, tmp_path, encoding):
    text = _csv([["U1", "人行道破损", "C0101", "2026-11-16 09:00", *WEST_LAKE],
                 ["U2", "井盖缺失", "C0101", "2026-11-16 10:00", *WEST_LAKE]])
    data = text.encode(encoding)
    if encoding == "utf-16-le":   # no byte-order mark at all
        assert not data.startswith(b"\xff\xfe")
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    run = _run(server, read_records(path)).run
    assert (run.received, run.inserted, run.quarantined) == (2, 2, 0)
    with get_db(server).session_scope() as s:
        assert s.scalar(select(Incident.title).where(Incident.external_id == "U1")) == "人行道破损"


def test_day_first_dates_are_read_when_the_mapping_declares_them(server, tmp_path):
    dmy = tmp_path / "native-dmy.toml"   # the native mapping file, declaring DD/MM/YYYY dates
    dmy.write_text((BUILTIN_DIR / "native.toml").read_text().replace("[timestamps]\n", "[timestamps]\ndayfirst = true\n"))
    rec = {"external_id": "D1", "title": "路灯不亮", "category_code": "C0101", "reported_at": "21/10/2025 09:30",
           "lon": WEST_LAKE[0], "lat": WEST_LAKE[1]}
    refused = _run(server, [(rec, 1)])
    assert refused.run.quarantined == 1 and "unreadable timestamp" in next(iter(refused.reasons))
    accepted = _run(server, [(rec, 1)], mapping=load_mapping_file(dmy)).run
    assert accepted.inserted == 1
    with get_db(server).session_scope() as s:
        reported = s.scalar(select(Incident.reported_at).where(Incident.external_id == "D1"))
    assert reported == datetime(2025, 10, 21, 1, 30, tzinfo=timezone.utc)   # 09:30 in Hangzhou


def test_a_placeholder_date_before_the_earliest_is_refused_with_its_reason(server):
    recs = [({"external_id": "Y1", "title": "旧数据", "category_code": "C0101", "reported_at": "1899-12-30 00:00",
              "lon": WEST_LAKE[0], "lat": WEST_LAKE[1]}, 1),
            ({"external_id": "Y2", "title": "新数据", "category_code": "C0101", "reported_at": "2026-11-16 09:00",
              "state": "closed", "closed_at": "1900-01-01", "lon": WEST_LAKE[0], "lat": WEST_LAKE[1]}, 2)]
    summary = _run(server, recs)
    assert (summary.run.inserted, summary.run.quarantined) == (0, 2)
    with get_db(server).session_scope() as s:
        reasons = s.scalars(select(Quarantine.reason).order_by(Quarantine.id)).all()
    assert reasons[0].startswith("reported_at 1899-12-") and "is before 1990-01-01" in reasons[0] and "INGEST_MIN_DATE" in reasons[0]
    # closed before created is caught first for Y2: either way a clear reason, nothing dropped silently
    assert reasons[1]


def test_a_killed_run_is_closed_as_failed_when_the_next_run_starts(server):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = RUN_OWNER.rpartition(":")[0]
    with get_db(server).session_scope() as s:
        rows = [FeedRun(feed="killed", source="x", started_at=NOW, status="running", owner=f"{host}:{dead.pid}",
                        heartbeat_at=NOW),
                FeedRun(feed="elsewhere", source="x", started_at=NOW, status="running", owner="other-host:1",
                        heartbeat_at=datetime.now(timezone.utc) - timedelta(hours=1)),
                FeedRun(feed="alive", source="x", started_at=NOW, status="running", owner=RUN_OWNER,
                        heartbeat_at=datetime.now(timezone.utc)),
                FeedRun(feed="busy-elsewhere", source="x", started_at=NOW, status="running", owner="other-host:2",
                        heartbeat_at=datetime.now(timezone.utc))]
        for r in rows:
            r.received = r.inserted = r.updated = r.unchanged = r.quarantined = 0
            r.error = ""
        s.add_all(rows)
    rt = get_runtime(server)
    Ingestor(get_db(server), rt.rules, rt.pack, MAPPINGS["native"], now=NOW).finish("ok")
    with get_db(server).session_scope() as s:
        status = {r.feed: (r.status, r.error) for r in s.scalars(select(FeedRun))}
    assert status["killed"][0] == "failed" and "interrupted" in status["killed"][1]
    assert status["elsewhere"][0] == "failed"
    assert status["alive"][0] == "running" and status["busy-elsewhere"][0] == "running"
    assert status["native"][0] == "ok"
