"""`import service-rates FILE` and `import kpis FILE`: validated rows upserted by their keys, bad
rows quarantined with reasons, counts that add up, a second import that changes nothing."""
from __future__ import annotations

import csv
from datetime import date

from openpyxl import Workbook
from sqlalchemy import func, select

from data_sources.store.db import get_db
from incidents.tables import FeedRun, KpiIndicator, KpiValue, Quarantine, ServiceRate

SR_HEADER = ["department_code", "day", "item_code", "item_name", "total", "online", "completed", "on_time",
             "rating_1", "rating_2", "rating_3", "rating_4", "rating_5", "bad_rectified"]


def _csv(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _runs(server, feed):
    with get_db(server).session_scope() as s:
        runs = s.scalars(select(FeedRun).where(FeedRun.feed == feed).order_by(FeedRun.id)).all()
    for r in runs:
        assert r.received == r.inserted + r.updated + r.unchanged + r.quarantined
    return runs


def test_import_service_rates_upserts_by_key_and_quarantines_bad_rows(server, tmp_path):
    rows = [
        ["HZ-SCJGJ", "2024-05-06", "QYKB", "企业开办", 60, 55, 58, 57, 1, 0, 2, 10, 20, 1],
        ["HZ-SCJGJ", "2024/05/07", "QYKB", "企业开办", "1,200", 1100, 1000, 990, 0, 0, 0, 100, 300, 0],
        ["HZ-SCJGJ", "2024-05-06", "QYKB", "again", 1, 1, 1, 1, 0, 0, 0, 0, 1, 0],        # duplicate key
        ["NOPE", "2024-05-06", "QYKB", "x", 1, 1, 1, 1, 0, 0, 0, 0, 1, 0],                # unknown department
        ["HZ-SCJGJ", "2024-13-40", "QYKB", "x", 1, 1, 1, 1, 0, 0, 0, 0, 1, 0],            # bad day
        ["HZ-SCJGJ", "2024-05-08", "QYKB", "x", 10, 11, 5, 5, 0, 0, 0, 0, 1, 0],          # online > total
        ["HZ-SCJGJ", "2024-05-09", "QYKB", "x", 10, 5, 5, 5, 0, 0, 0, 0, 1, -1],          # negative
        ["HZ-SCJGJ", "2024-05-10", "", "x", 10, 5, 5, 5, 0, 0, 0, 0, 1, 0],               # missing item
    ]
    path = _csv(tmp_path / "rates.csv", SR_HEADER, rows)
    runner = server.test_cli_runner()
    res = runner.invoke(args=["import", "service-rates", str(path)])
    assert res.exit_code == 0, res.output
    first = _runs(server, "service-rates")[-1]
    assert (first.received, first.inserted, first.quarantined) == (8, 2, 6)
    with get_db(server).session_scope() as s:
        reasons = "\n".join(s.scalars(select(Quarantine.reason).where(Quarantine.feed == "service-rates")))
        sr = s.scalar(select(ServiceRate).where(ServiceRate.day == date(2024, 5, 7)))
        assert sr.total == 1200 and sr.rating_5 == 300
    for expected in ("duplicate key", "not a department", "unreadable date", "online (11) is more than total",
                     "is negative", "item_code"):
        assert expected in reasons, expected

    # the same file again: nothing changes; a corrected row updates, the bad rows keep one row each
    runner.invoke(args=["import", "service-rates", str(path)])
    second = _runs(server, "service-rates")[-1]
    assert (second.unchanged, second.inserted, second.updated, second.quarantined) == (2, 0, 0, 6)
    rows[1][4] = 1300
    res = runner.invoke(args=["import", "service-rates", str(_csv(tmp_path / "rates.csv", SR_HEADER, rows))])
    third = _runs(server, "service-rates")[-1]
    assert (third.updated, third.unchanged) == (1, 1), res.output
    with get_db(server).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(ServiceRate)) == 2
        assert s.scalar(select(func.count()).select_from(Quarantine).where(Quarantine.feed == "service-rates")) == 6


def test_import_kpis_from_xlsx_creates_indicators_and_upserts_values(server, tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.append(["indicator_code", "name", "unit", "direction", "target", "period", "period_start", "dimension",
               "value"])
    ws.append(["WBL", "网办率", "%", "up", 0.85, "month", date(2024, 5, 1), "", 0.91])
    ws.append(["WBL", "网办率", "%", "up", 0.85, "month", date(2024, 4, 1), "", 0.88])
    ws.append(["WBL", "网办率", "%", "up", 0.85, "month", date(2024, 4, 1), "HZ-SCJGJ", 0.93])
    ws.append(["AJS", "案件数", "件", "DOWN", "", "day", "2024-05-06", "", "1,234"])
    ws.append(["AJS", "案件数", "件", "down", "", "month", "2024-05-06", "", 5])        # not a month start
    ws.append(["AJS", "案件数", "件", "sideways", "", "day", "2024-05-07", "", 5])       # bad direction
    ws.append(["AJS", "案件数", "件", "down", "", "day", "2024-05-08", "", "n/a"])       # bad value
    ws.append(["WBL", "网办率", "%", "up", 0.85, "month", date(2024, 5, 1), "", 0.5])    # duplicate key
    ws.append(["", "无名", "", "up", "", "day", "2024-05-06", "", 1])                      # missing code
    wb.save(tmp_path / "kpis.xlsx")
    runner = server.test_cli_runner()
    res = runner.invoke(args=["import", "kpis", str(tmp_path / "kpis.xlsx")])
    assert res.exit_code == 0, res.output
    assert "indicators created 2" in res.output
    run = _runs(server, "kpis")[-1]
    assert (run.received, run.inserted, run.quarantined) == (9, 4, 5)
    with get_db(server).session_scope() as s:
        ajs = s.get(KpiIndicator, "AJS")
        assert (ajs.direction, ajs.unit, ajs.target, ajs.period) == ("down", "件", None, "day")
        assert s.scalar(select(KpiValue.value).where(KpiValue.indicator_code == "AJS")) == 1234
        reasons = "\n".join(s.scalars(select(Quarantine.reason).where(Quarantine.feed == "kpis")))
    for expected in ("not the start of a month", "direction", "not a number", "duplicate key", "indicator_code"):
        assert expected in reasons, expected

    # a changed target updates the indicator; a changed value updates the value
    for cell in ("E2", "E3", "E4", "E9"):
        ws[cell] = 0.9
    ws["I2"] = 0.95
    wb.save(tmp_path / "kpis.xlsx")
    res = runner.invoke(args=["import", "kpis", str(tmp_path / "kpis.xlsx")])
    run = _runs(server, "kpis")[-1]
    assert (run.updated, run.unchanged, run.inserted) == (1, 3, 0) and "updated 1" in res.output
    with get_db(server).session_scope() as s:
        assert s.get(KpiIndicator, "WBL").target == 0.9
