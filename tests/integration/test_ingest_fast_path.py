"""The ingest fast path (new cases built as plain rows and bulk-written) against the service path
(every new case built through ``services.apply_action`` on an ORM object, one by one): the same
records imported into two databases, one each way, leave the very same rows behind — cases
(states, timestamps, deadlines, warn_at, on_time, department, area codes, counters, version),
their events (sequence, actions, states, times, actor, department, note, payload as stored),
quarantine rows, feed-run counts and the data version — on a first import, on the next export
(changes and new records in the same batches) and on re-imports. Also: an identical re-import
changes nothing, and a batch colliding with another import's rows is rolled back whole and
retried. SQLite and PostgreSQL."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Text, cast, func, select

from data_sources.ingest import ingest
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import services
from incidents.tables import FeedRun, Incident, IncidentEvent, Meta, Quarantine
from tests.conftest import PG_URL, build_app, pg_test_url, reset_postgres

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
# cross the Labour Day and National Day holidays, weekends and nights of 2024 (Asia/Shanghai)
START = datetime(2024, 4, 26, 0, 0)


@pytest.fixture
def pair(backend, tmp_path):
    """Two fresh databases with the Hangzhou pack: (fast, reference)."""
    if backend == "sqlite":
        urls = [f"sqlite:///{tmp_path / 'fast.db'}", f"sqlite:///{tmp_path / 'reference.db'}"]
    else:
        if not PG_URL:
            pytest.skip("PostgreSQL: set CITYOPS_TEST_DATABASE_URL to run (CI does)")
        # the reference database is made once and dropped at exit with the other: a DROP DATABASE here
        # waited for a forced checkpoint of everything written meanwhile (37 s of CI's teardown)
        urls = [pg_test_url(), pg_test_url("reference")]
        for url in urls:
            reset_postgres(url)
    apps = []
    try:
        apps = [build_app(u) for u in urls]
        yield [(get_db(a.server), get_runtime(a.server)) for a in apps]
    finally:
        for a in apps:
            get_db(a.server).dispose()


def _points(pack, rng, n_per_district=12):
    import shapely
    out = []
    for area in pack.districts():
        x0, y0, x1, y1 = area.geometry.bounds
        got = 0
        while got < n_per_district:
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if shapely.contains_xy(area.geometry, x, y):
                out.append((round(x, 6), round(y, 6)))
                got += 1
    return out


def _records(pack, n, seed=11):
    """Native records of every kind ingest turns into a timeline, plus a few bad ones."""
    rng = random.Random(seed)
    cats = [c.code for c in pack.categories]
    departments = [d.code for d in pack.departments]
    points = _points(pack, rng)
    fmt = "%Y-%m-%d %H:%M:%S"
    out = []
    for i in range(n):
        reported = START + timedelta(minutes=rng.randrange(0, 200 * 24 * 60))
        state = rng.choice(["registered", "dispatched", "in progress", "resolved", "closed", "closed", "closed",
                            "cancelled", "closed (duplicate)"])
        rec = {"external_id": f"F{i:05d}", "title": f"案件 {i}", "description": rng.choice(["", "desc", "井盖 " * 40]),
               "address": f"测试路{i % 97}号", "category_code": rng.choice(cats), "state": state,
               "reported_at": reported.strftime(fmt), "channel": rng.choice(["12345", "app", "grid", "iot", "video"]),
               "priority": rng.choice(["normal", "normal", "urgent", "emergency"])}
        where = rng.random()
        if where < 0.85:
            rec["lon"], rec["lat"] = points[rng.randrange(len(points))]
        elif where < 0.9:
            rec["lon"], rec["lat"] = 0, 0                    # placeholder: kept without a location
        elif where < 0.95:
            rec["lon"], rec["lat"] = 118.35, 29.2               # inside the pack's extent, in no district
        if state not in ("registered", "cancelled") and rng.random() < 0.8:
            rec["dispatched_at"] = (reported + timedelta(minutes=rng.randrange(1, 3000))).strftime(fmt)
        if state in ("resolved", "closed", "cancelled", "closed (duplicate)") and rng.random() < 0.9:
            # sometimes before the dispatch time (dispatch is then moved to it), late or early against the deadline
            rec["closed_at"] = (reported + timedelta(minutes=rng.randrange(1, 20 * 24 * 60))).strftime(fmt)
        if rng.random() < 0.3:
            rec["department_code"] = rng.choice(departments)
        out.append(rec)
    # resolved exactly at the deadline (on time) and a minute after it (late)
    hourly = next(c for c in pack.categories if c.time_unit == "natural_hours")
    for j, late in enumerate((0, 0, 1, 1)):
        reported = START + timedelta(days=7 * j, hours=3)
        dispatched = reported + timedelta(minutes=10)
        closed = dispatched + timedelta(hours=hourly.time_limit, minutes=late)
        out.append({"external_id": f"EDGE{j}", "title": "at the deadline", "category_code": hourly.code,
                    "state": "closed", "reported_at": reported.strftime(fmt), "dispatched_at": dispatched.strftime(fmt),
                    "closed_at": closed.strftime(fmt), "lon": points[0][0], "lat": points[0][1]})
    # bad records: quarantined the same way on both paths
    out.append({"external_id": "F00003", "title": "duplicate id in the run", "category_code": cats[0],
                "reported_at": "2024-05-06 09:00"})
    out.append({"external_id": "BAD1", "title": "no such category", "category_code": "Z9999",
                "reported_at": "2024-05-06 09:00"})
    out.append({"external_id": "BAD2", "title": "closed before created", "category_code": cats[0],
                "state": "closed", "reported_at": "2024-05-06 09:00", "closed_at": "2024-05-01 09:00"})
    out.append({"__unreadable__": "line is not valid JSON", "text": "{"})
    return out


def _changed(pack, records, seed=12):
    """The next export of the same source: some cases moved on, were edited or moved, new ones arrived."""
    rng = random.Random(seed)
    out = []
    for rec in records:
        rec = dict(rec)
        roll = rng.random()
        if "__unreadable__" in rec or rec["external_id"].startswith("BAD"):
            pass
        elif roll < 0.15:
            rec["state"] = "closed"
            rec["closed_at"] = (datetime.strptime(rec["reported_at"], "%Y-%m-%d %H:%M:%S")
                                + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
        elif roll < 0.2:
            rec["title"] = rec["title"] + "（更新）"
        elif roll < 0.25 and "lon" in rec:
            rec["lon"], rec["lat"] = 120.1593, 30.2585
        elif roll < 0.3:
            rec["state"] = "registered"                          # reopened, or "further along: kept"
        elif roll < 0.33:
            rec["state"], rec["department_code"] = "dispatched", "HZ-CGJ"
        out.append(rec)
    extra = _records(pack, 150, seed=13)
    for rec in extra:
        if "external_id" in rec:
            rec["external_id"] = "G" + rec["external_id"]
    return out + extra


def _dump(db) -> dict:
    """Every row ingest writes, in id order, as plain values (payloads also as stored text)."""
    with db.session_scope() as s:
        cases = [tuple(r) for r in s.execute(select(*Incident.__table__.columns).order_by(Incident.id))]
        events = [tuple(r) for r in s.execute(select(*IncidentEvent.__table__.columns).order_by(IncidentEvent.id))]
        stored = [r[0] for r in s.execute(select(cast(IncidentEvent.payload, Text)).order_by(IncidentEvent.id))]
        quarantine = [tuple(r) for r in s.execute(select(Quarantine.id, Quarantine.feed_run_id, Quarantine.feed,
                                                         Quarantine.raw, Quarantine.reason, Quarantine.status)
                                                  .order_by(Quarantine.id))]
        runs = [tuple(r) for r in s.execute(select(FeedRun.id, FeedRun.feed, FeedRun.source, FeedRun.received,
                                                   FeedRun.inserted, FeedRun.updated, FeedRun.unchanged,
                                                   FeedRun.quarantined, FeedRun.last_record_at, FeedRun.status)
                                            .order_by(FeedRun.id))]
        version = s.scalar(select(Meta.value).where(Meta.key == services.DATA_VERSION_KEY))
    return {"cases": cases, "events": events, "stored_payloads": stored, "quarantine": quarantine, "runs": runs,
            "data_version": version}


def _same(fast: dict, reference: dict) -> None:
    for key, want in reference.items():
        got = fast[key]
        if got == want:
            continue
        if not isinstance(want, list) or len(got) != len(want):
            pytest.fail(f"{key}: fast path {got if not isinstance(got, list) else len(got)!r} != "
                        f"reference {want if not isinstance(want, list) else len(want)!r}")
        diffs = [(a, b) for a, b in zip(got, want) if a != b]
        pytest.fail(f"{key}: {len(diffs)} rows differ, first: fast {diffs[0][0]!r} != reference {diffs[0][1]!r}")


def _import(db, rt, records, fast):
    calls = {"n": 0}
    real = services.apply_action

    def counting(*a, **kw):
        calls["n"] += 1
        return real(*a, **kw)
    services.apply_action = counting
    try:
        run = ingest(db, rt.rules, rt.pack, [(r, i + 1) for i, r in enumerate(records)], "native",
                     source_label="fastpath", now=NOW, batch_size=97, fast_path=fast).run
    finally:
        services.apply_action = real
    assert run.received == run.inserted + run.updated + run.unchanged + run.quarantined
    return run, calls["n"]


#: records of the first export: seven batches of 97 and every kind of record many times over (the
#: thresholds below are shares of it; 1,500 proved no more and took 2.5 times as long)
N = 600


def test_fast_path_writes_what_the_service_path_writes(pair):
    (fast_db, rt), (ref_db, ref_rt) = pair
    first = _records(rt.pack, N)

    run, calls = _import(fast_db, rt, first, fast=True)
    ref_run, ref_calls = _import(ref_db, ref_rt, first, fast=False)
    assert calls == 0 and ref_calls > 2 * N         # the fast path really is another way
    assert (run.inserted, run.quarantined) == (ref_run.inserted, ref_run.quarantined) == (N + 4, 4)
    a, b = _dump(fast_db), _dump(ref_db)
    _same(a, b)

    # the data covers what matters: every state, deadlines met and missed, areas found and not, routing
    cols = [c.key for c in Incident.__table__.columns]
    cases = [dict(zip(cols, r)) for r in a["cases"]]
    assert {c["state"] for c in cases} == {"registered", "dispatched", "in_progress", "resolved", "closed", "voided"}
    assert {c["on_time"] for c in cases} == {True, False, None}
    assert {c["void_reason"] for c in cases} >= {"invalid", "duplicate"}
    assert sum(1 for c in cases if c["grid_code"]) > 2 * N // 3
    assert any(c["lon"] is None for c in cases) and any(c["lon"] is not None and c["district_code"] is None
                                                        for c in cases)
    assert all((c["deadline"] is None) == (c["dispatched_at"] is None) for c in cases)
    assert sum(1 for c in cases if c["warn_at"] is not None) > N // 3
    assert len({c["priority"] for c in cases}) == 3
    ev_cols = [c.key for c in IncidentEvent.__table__.columns]
    events = [dict(zip(ev_cols, r)) for r in a["events"]]
    assert any(e["payload"] and "routing" in e["payload"] for e in events)
    assert {e["action"] for e in events} >= {"report", "register", "dispatch", "resolve", "verify_pass", "void"}

    # the next export: changes (the update path) and new cases in the same batches
    second = _changed(rt.pack, first)
    run, calls = _import(fast_db, rt, second, fast=True)
    ref_run, _ = _import(ref_db, ref_rt, second, fast=False)
    assert run.updated > N // 5 and run.inserted == 154
    assert (run.inserted, run.updated, run.unchanged, run.quarantined) == \
        (ref_run.inserted, ref_run.updated, ref_run.unchanged, ref_run.quarantined)
    a, b = _dump(fast_db), _dump(ref_db)
    _same(a, b)

    # the same export again: unchanged records are only counted (a source still saying "registered"
    # about a case that is further along is reported again as an update that keeps the state)
    run, _ = _import(fast_db, rt, second, fast=True)
    ref_run, _ = _import(ref_db, ref_rt, second, fast=False)
    assert run.inserted == 0 and run.unchanged > 13 * N // 15
    assert (run.updated, run.unchanged, run.quarantined) == (ref_run.updated, ref_run.unchanged, ref_run.quarantined)
    _same(_dump(fast_db), _dump(ref_db))

    # the first export once more, against the state both databases are in now
    run, _ = _import(fast_db, rt, first, fast=True)
    ref_run, _ = _import(ref_db, ref_rt, first, fast=False)
    assert (run.inserted, run.updated, run.unchanged, run.quarantined) == \
        (ref_run.inserted, ref_run.updated, ref_run.unchanged, ref_run.quarantined)
    _same(_dump(fast_db), _dump(ref_db))


def test_identical_reimport_changes_nothing_on_the_fast_path(app):
    db, rt = get_db(app.server), get_runtime(app.server)
    # (a closed record without a closing time is not in here: the import closes the case at the
    # report time and the first re-import then clears closed_at, on either path)
    records = [r for r in _records(rt.pack, 400, seed=5) if not (r.get("state") == "closed" and "closed_at" not in r)]
    n = len(records) - 4
    first, _ = _import(db, rt, records, fast=True)
    before = _dump(db)
    again, calls = _import(db, rt, records, fast=True)
    after = _dump(db)
    assert (first.inserted, first.quarantined) == (n, 4)
    assert (again.inserted, again.updated, again.unchanged, again.quarantined, calls) == (0, 0, n, 4, 0)
    assert after["cases"] == before["cases"] and after["events"] == before["events"]
    assert after["quarantine"] == [q[:1] + (again.id,) + q[2:] for q in before["quarantine"]]
    assert int(after["data_version"]) == int(before["data_version"]) + -(-len(records) // 97)  # once a batch


def test_fast_path_timeline_matches_services_apply_action_case_by_case(app):
    """The plain-row builder against services.apply_action on an ORM object, one record at a time."""
    from data_sources.feeds.base import FeedContext
    from data_sources.feeds.mappings import MAPPINGS
    from data_sources.ingest import Item, _Run
    rt = get_runtime(app.server)
    ctx = FeedContext(rt.pack, now=NOW)
    worker = _Run(None, rt.rules, rt.pack, MAPPINGS["native"], "native", "native", ctx, NOW, 1)
    checked = 0
    for i, raw in enumerate(_records(rt.pack, 600, seed=21)):
        if "__unreadable__" in raw or raw["external_id"].startswith("BAD"):
            continue
        inc = MAPPINGS["native"].to_case(raw, ctx)
        item = Item(raw, i)
        district, grid = rt.rules.areas.locate(inc.lon, inc.lat)
        fast_case, fast_events = worker._new_case(item, inc, district, grid)
        ref_case, ref_events = worker._new_case_via_services(item, inc)
        assert fast_case == ref_case
        assert fast_events == ref_events
        checked += 1
    assert checked > 500
    edge = {raw.get("external_id"): raw for raw in _records(rt.pack, 0)}
    on_time = [worker._new_case(Item(edge[k], 1), MAPPINGS["native"].to_case(edge[k], ctx), None, None)[0]["on_time"]
               for k in ("EDGE0", "EDGE2")]
    assert on_time == [True, False]


def test_a_batch_colliding_with_another_import_rolls_back_and_retries_as_updates(app, monkeypatch):
    """The bulk write raises the unique violation as SQLAlchemy's IntegrityError: the batch's
    transaction is rolled back whole and the batch runs once more, the collided records as known cases."""
    import data_sources.ingest as ingest_module
    db, rt = get_db(app.server), get_runtime(app.server)
    records = [r for r in _records(rt.pack, 60, seed=8) if "__unreadable__" not in r
               and not r["external_id"].startswith(("BAD", "EDGE")) and r["external_id"] != "F00003"
               and not (r.get("state") == "closed" and "closed_at" not in r)]
    first, _ = _import(db, rt, records[-10:], fast=True)          # "another import" got these in first
    assert first.inserted == 10
    before = _dump(db)
    real_known, blind = ingest_module._Run._known, {"n": 1}

    def known_blind_once(self, s, external_ids):                  # the lookup ran before the other commit
        if blind["n"]:
            blind["n"] -= 1
            return {}
        return real_known(self, s, external_ids)
    monkeypatch.setattr(ingest_module._Run, "_known", known_blind_once)
    run, _ = _import(db, rt, records, fast=True)
    assert blind["n"] == 0
    assert (run.received, run.inserted, run.unchanged, run.updated, run.quarantined) == \
        (len(records), len(records) - 10, 10, 0, 0)
    after = _dump(db)
    assert after["cases"][:10] == before["cases"]
    assert len(after["cases"]) == len(records) and len({c[3] for c in after["cases"]}) == len(records)
    n_events = len(after["events"])
    with db.session_scope() as s:   # every case has its whole timeline once: nothing of the failed attempt stayed
        assert s.scalar(select(func.count()).select_from(IncidentEvent)) == n_events
        per_case = dict(s.execute(select(IncidentEvent.incident_id, func.count())
                                  .group_by(IncidentEvent.incident_id)).all())
        versions = dict(s.execute(select(Incident.id, Incident.version)).all())
    assert per_case == versions
