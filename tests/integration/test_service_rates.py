"""Seeding the 一网通办 / 好差评 demo rows and the KPI feed: idempotent, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from data_sources.feeds import demo_service_rates as sr
from data_sources.runtime import get_runtime
from data_sources.seed import init_db
from data_sources.store.db import get_db
from incidents.tables import Incident, KpiIndicator, KpiValue, ServiceRate
from tests.integration.helpers import NOW


def _counts(server) -> tuple[int, int, int, int]:
    with get_db(server).session_scope() as s:
        return (s.scalar(select(func.count()).select_from(ServiceRate)),
                s.scalar(select(func.sum(ServiceRate.total))),
                s.scalar(select(func.count()).select_from(KpiValue)),
                s.scalar(select(func.count()).select_from(KpiIndicator)))


def test_reseeding_inserts_nothing_twice_and_keeps_the_figures(server):
    pack = get_runtime(server).pack
    start, end = date(2026, 11, 1), date(2026, 11, 14)
    with get_db(server).session_scope() as s:
        inserted = sr.seed_service_rates(s, pack, start, end, seed=3)
        assert inserted == len(sr.generate_service_rates(pack, start, end, seed=3)) > 0
        assert sr.seed_kpis(s, start, end, seed=3) > 0
    first = _counts(server)
    with get_db(server).session_scope() as s:
        assert sr.seed_service_rates(s, pack, start, end, seed=3) == 0
        assert sr.seed_kpis(s, start, end, seed=3) == 0
        # an overlapping, longer range adds only the new days
        more = sr.seed_service_rates(s, pack, start, end + timedelta(days=1), seed=3)
    assert more == len(sr.generate_service_rates(pack, end + timedelta(days=1), end + timedelta(days=1), 3))
    assert _counts(server)[0] == first[0] + more
    with get_db(server).session_scope() as s:
        # 网办率 of the KPI feed is computed from the service rows
        online, total = s.execute(select(func.sum(ServiceRate.online), func.sum(ServiceRate.total))
                                  .where(ServiceRate.day == start)).one()
        kpi = s.scalar(select(KpiValue.value).where(KpiValue.indicator_code == "online_rate",
                                                    KpiValue.period_start == start))
        assert kpi == round(online / total, 4)
        ind = s.get(KpiIndicator, "online_rate")
        assert (ind.target, ind.direction, ind.unit, ind.period) == (0.85, "up", "%", "day")
        assert s.get(KpiIndicator, "cases_per_10k").direction == "down"
        assert s.get(KpiIndicator, "gdp_growth").period == "quarter"


def test_init_db_seeds_the_history_days_of_service_rates_with_the_demo_data_once(server):
    with get_db(server).session_scope() as s:
        # a demo case exists already: init_db skips the (slow) history and still seeds the rates
        s.add(Incident(source="demo", external_id="x", channel="grid", title="t", state="reported",
                       reported_at=NOW, updated_at=NOW))
    out = init_db(server, echo=lambda *_: None, seed_demo=True, now=NOW)
    assert out["service_rates"]["service_rates"] > 0 and out["service_rates"]["kpi_values"] > 0
    with get_db(server).session_scope() as s:
        first, last = s.execute(select(func.min(ServiceRate.day), func.max(ServiceRate.day))).one()
    days = int(server.config["DEMO_HISTORY_DAYS"])       # 460 by default: the cases' span, back to last year's quarter
    assert last == date(2026, 11, 17) and (last - first).days == days - 1 and days >= 396   # up to yesterday, city time
    counts = _counts(server)
    again = init_db(server, echo=lambda *_: None, seed_demo=True, now=NOW)
    assert again["service_rates"] == {"service_rates": 0, "kpi_values": 0}
    assert _counts(server) == counts
    # without demo data (production databases), nothing is seeded
    assert "service_rates" not in init_db(server, echo=lambda *_: None, seed_demo=False, now=NOW)
