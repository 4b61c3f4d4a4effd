"""Replay of a real file at ×N on a fake clock: the release schedule keeps the source's time
offsets, everything ends up ingested, the counts add up; the CLI prints progress."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import func, select

from data_sources.feeds.files import read_records
from data_sources.feeds.replay import replay
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents.tables import Incident

WEST_LAKE = (120.1593, 30.2585)
# source times (minutes after 09:00, city time) in file order: deliberately not sorted
MINUTES = [0, 1, 1, 3, 60, 30, 2]


class FakeClock:
    def __init__(self):
        self.t = 5000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def _file(tmp_path):
    lines = []
    for i, m in enumerate(MINUTES):
        lines.append({"external_id": f"R{i}", "title": f"暴露垃圾 {i}", "category_code": "C0101",
                      "reported_at": f"2024-05-06 {9 + m // 60:02d}:{m % 60:02d}", "lon": WEST_LAKE[0],
                      "lat": WEST_LAKE[1]})
    lines.insert(3, {"external_id": "BAD", "title": "x", "category_code": "NOPE", "reported_at": "2024-05-06 09:00"})
    path = tmp_path / "day.ndjson"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\n")
    return path


def test_replay_keeps_the_source_offsets_at_speed_n_and_ingests_everything(app, tmp_path):
    db, rt = get_db(app.server), get_runtime(app.server)
    clock = FakeClock()
    res = replay(db, rt.rules, rt.pack, read_records(_file(tmp_path)), "native", speed=60, clock=clock,
                 sleep=clock.sleep)
    # line of R<i> is i + 1 (R3.. shifted by the bad line 4); at ×60 one source minute is one second
    lines = {f"R{i}": (i + 1 if i < 3 else i + 2) for i in range(len(MINUTES))}
    for i, m in enumerate(MINUTES):
        assert res.released_at[lines[f"R{i}"]] == m * 60 / 60
    assert res.released_at[4] == res.released_at[lines["R2"]]      # the rejected one goes with its predecessor
    assert [r.records for r in res.releases] == [1, 3, 1, 1, 1, 1]  # 0 | 1,1,bad | 2 | 3 | 30 | 60
    assert sum(clock.sleeps) == 60.0 and clock.t == 5060.0
    run = res.summary.run
    assert (run.received, run.inserted, run.quarantined, run.status) == (8, 7, 1, "ok")
    assert run.received == run.inserted + run.updated + run.unchanged + run.quarantined
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Incident).where(Incident.source == "native")) == 7


def test_replay_cli_prints_progress_and_honours_limit(app, tmp_path):
    res = app.server.test_cli_runner().invoke(
        args=["replay", str(_file(tmp_path)), "--mapping", "native", "--speed", "100000", "--limit", "4",
              "--source", "replayed"])
    assert res.exit_code == 0, res.output
    assert "released" in res.output and "inserted" in res.output
    with get_db(app.server).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Incident).where(Incident.source == "replayed")) == 3
