"""The frozen cases' rollups (incidents.rollups): the KPI sums read through them equal the sums of a
scan over every fact row — per department, district and bucket — and the reference, on weeks of
demo history; every write keeps them (a reopened, revisited or deleted case moves out of its week);
a pack with another time zone or citizen channels does not read them until ``init-db`` rebuilds."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from data_sources.feeds import simulator
from data_sources.runtime import get_runtime
from data_sources.seed import init_db
from data_sources.store.db import get_db
from incidents import facts, kpis, rollups, services
from incidents.model import Action, Role, State
from incidents.queries import kpi_facts
from incidents.services import Actor
from incidents.tables import CaseFact, CaseRollup, Incident, Meta
from tests.integration.test_kpi_facts import _check

UTC = timezone.utc
CITY = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def _midnight(t: datetime) -> datetime:
    return t.astimezone(CITY).replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


@pytest.fixture
def history(app):
    """Ten days of simulated history up to NOW (a Friday; its rollup week began on Thursday): most cases
    closed in the weeks before."""
    with app.server.app_context(), get_db(app.server).session_scope() as s:
        simulator.seed_history(s, simulator.build(app.server), NOW, 10)
    return app


def _sums(s, rt, period, as_of, *, buckets=None, grouped=True, rolled=True, monkeypatch=None):
    if not rolled:
        monkeypatch.setattr(rollups, "usable", lambda *a, **k: False)
    try:
        return kpi_facts.period_sums(s, period, as_of, cal=rt.calendar, priority_factors=rt.pack.priority_factors,
                                     hours_per_day=rt.calendar.hours_per_day, tz=rt.pack.timezone,
                                     buckets=buckets, grouped=grouped, disposal_clock=rt.rules.disposal_clock,
                                     citizen_channels=rt.rules.citizen_channels)
    finally:
        monkeypatch.undo()


def _same_sums(a: dict, b: dict, where) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-6), (where, k)


def _nonzero(groups: dict) -> dict:
    return {k: v for k, v in groups.items() if any(v.values())}


#: (days back, length in days, hours ago): the whole history seen now, most of it frozen weeks ago;
#: five days a week back; six days seen 40 hours ago (the replay beside the rollups); today
PERIODS = ((9, 10, 0), (9, 5, 0), (8, 6, 40), (0, 1, 0))


def test_the_rollups_give_the_scans_sums_and_the_reference(history, monkeypatch):
    rt = get_runtime(history.server)
    with history.server.app_context(), get_db(history.server).session_scope() as s:
        assert rollups.usable(s, rt.pack.timezone, rt.rules.citizen_channels)
        assert rollups.differences(s) == 0
        for days_back, length_days, hours_ago in PERIODS:
            start = _midnight(NOW - timedelta(days=days_back))
            period = kpis.Period(start, start + timedelta(days=length_days))
            as_of = NOW - timedelta(hours=hours_ago)
            buckets = kpis.period_buckets(period, rt.pack.timezone)
            fast = _sums(s, rt, period, as_of, buckets=buckets, monkeypatch=monkeypatch)
            scan = _sums(s, rt, period, as_of, buckets=buckets, rolled=False, monkeypatch=monkeypatch)
            if length_days > 1:     # the rollups really carried most of the period
                rolled = sum(v["reported"] for v in fast.rolled["department"].values())
                assert rolled > (fast.total()["reported"] / 2 if not hours_ago else 0), period
                assert sum(v["reported"] for v in fast.rolled["district"].values()) == rolled
            _same_sums(fast.total(), scan.total(), (period, "total"))
            for by in ("department", "district"):
                got, want = _nonzero(fast.by(by)), _nonzero(scan.by(by))
                assert got.keys() == want.keys(), (period, by)
                for code in want:
                    _same_sums(got[code], want[code], (period, by, code))
            for i, (a, b) in enumerate(zip(fast.buckets, scan.buckets)):
                _same_sums(a, b, (period, "bucket", i))
            # the comparisons' way: the total alone
            _same_sums(_sums(s, rt, period, as_of, grouped=False, monkeypatch=monkeypatch).total(), scan.total(),
                       (period, "ungrouped"))
        # and the reference (incidents.kpis over the events), for the whole history
        _check(s, rt, kpis.Period(_midnight(NOW - timedelta(days=9)), _midnight(NOW) + timedelta(days=1)), NOW)


def _frozen_case(s, before: datetime, state: str, after: datetime, channels=None) -> Incident:
    """A case in ``state`` frozen before ``before``, closed (or frozen) since ``after``."""
    cid = s.scalar(select(CaseFact.incident_id).where(CaseFact.state == state, CaseFact.frozen_at < before,
                                                      func.coalesce(CaseFact.last_closed_at,
                                                                    CaseFact.frozen_at) >= after,
                                                      CaseFact.channel.in_(channels or ("12345", "app", "grid")),
                                                      CaseFact.department_code.isnot(None))
                   .order_by(CaseFact.frozen_at).limit(1))
    assert cid is not None
    return s.get(Incident, cid)


def test_every_write_keeps_the_rollups(history, monkeypatch):
    """A reopened case leaves its frozen week (and is scanned again); a 回访 moves a closed case to the
    week of the visit; after each, the stored rollups are what the fact rows
    say and the rolled-up sums equal the scan's."""
    rt = get_runtime(history.server)
    this_week = rollups.week_start(rollups.week_of(NOW))        # (the 7-day reopen window reaches before it)
    period = kpis.Period(_midnight(NOW - timedelta(days=9)), _midnight(NOW) + timedelta(days=1))
    with history.server.app_context(), get_db(history.server).session_scope() as s:
        def rolled_rows(case_id) -> int:
            week = rollups.week_of(s.scalar(select(CaseFact.frozen_at).where(CaseFact.incident_id == case_id)))
            return s.scalar(select(func.count()).select_from(CaseRollup).where(CaseRollup.week == week)) or 0

        def agree(when: datetime) -> None:
            assert rollups.differences(s) == 0
            _same_sums(_sums(s, rt, period, when, monkeypatch=monkeypatch).total(),
                       _sums(s, rt, period, when, rolled=False, monkeypatch=monkeypatch).total(), when)

        reopened = _frozen_case(s, this_week, State.CLOSED.value, NOW - timedelta(days=6))
        assert rolled_rows(reopened.id) > 0
        services.act(s, rt.rules, Actor("d", Role.DISPATCHER), reopened.id, Action.REOPEN,
                     version=reopened.version, now=NOW, reason="市民再次反映")
        s.flush()
        assert s.get(CaseFact, reopened.id).frozen_at == rollups.FROZEN_NEVER
        agree(NOW + timedelta(minutes=1))

        visited = _frozen_case(s, this_week, State.CLOSED.value, NOW - timedelta(days=9), rt.rules.citizen_channels)
        services.act(s, rt.rules, Actor("d", Role.DISPATCHER), visited.id, Action.REVISIT,
                     version=visited.version, now=NOW, result="satisfied")
        s.flush()
        assert s.get(CaseFact, visited.id).frozen_at == NOW
        agree(NOW + timedelta(minutes=1))
        agree(NOW + timedelta(days=8))      # its new week is rolled up from then on


def test_another_basis_scans_until_init_db_rebuilds(history, monkeypatch):
    """Rollups built on one time zone do not answer a pack on another (its days differ): the KPI
    path scans every fact row, and ``init-db`` rebuilds them on the pack's basis."""
    rt = get_runtime(history.server)
    period = kpis.Period(_midnight(NOW - timedelta(days=9)), _midnight(NOW))
    with history.server.app_context(), get_db(history.server).session_scope() as s:
        want = _sums(s, rt, period, NOW, rolled=False, monkeypatch=monkeypatch).total()
        s.get(Meta, rollups.BASIS_KEY).value = rollups.basis("America/New_York", rt.rules.citizen_channels)
        s.flush()
        stale = _sums(s, rt, period, NOW, monkeypatch=monkeypatch)
        assert stale.rolled == {}                       # not read: the scan alone
        _same_sums(stale.total(), want, "scan")
    init_db(history.server, echo=lambda *_: None, seed_demo=False)
    with history.server.app_context(), get_db(history.server).session_scope() as s:
        assert rollups.usable(s, rt.pack.timezone, rt.rules.citizen_channels)
        assert rollups.differences(s) == 0
        again = _sums(s, rt, period, NOW, monkeypatch=monkeypatch)
        assert again.rolled
        _same_sums(again.total(), want, "rebuilt")


def test_city_days_follow_daylight_saving():
    """The rollups' days are city-time dates across a change of the clocks (New York, 2026-03-08)."""
    offsets = dict(rollups._offsets("America/New_York"))
    assert offsets[datetime(2026, 3, 8, 7, 0, tzinfo=UTC)] == -4 * 3600
    assert offsets[datetime(2026, 11, 1, 6, 0, tzinfo=UTC)] == -5 * 3600
    shanghai = rollups._offsets("Asia/Shanghai")      # (China kept summer time only in 1986–1991)
    assert max(t for t, _ in shanghai).year == 1991 and shanghai[-1][1] == 8 * 3600
    assert rollups.local_days([datetime(2026, 3, 8, 5, 0, tzinfo=UTC)], "America/New_York") == \
        [datetime(2026, 3, 8).date()]
    assert rollups.local_days([datetime(2026, 3, 9, 5, 0, tzinfo=UTC)], "America/New_York") is None
