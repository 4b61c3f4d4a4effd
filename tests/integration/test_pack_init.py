"""``flask --app app pack init``: the pack it writes from a projected Shapefile and a head of the
real NYC export is the app's pack (CITYOPS_PACK), and the export imports into it with its agencies
as departments and its types as categories, on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
from datetime import date

from flask import Flask
from sqlalchemy import select

from data_sources.cli import packs as pack_cli
from data_sources.feeds.files import read_records
from data_sources.ingest import ingest
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents.tables import Incident
from tests.conftest import build_app
from tests.unit.test_pack_init import EAST, WEST, nyc_head, write_shapefile


def run_pack_init(tmp_path, *args):
    cli_app = Flask("pack-init-test")
    pack_cli.register(cli_app)
    return cli_app.test_cli_runner().invoke(args=["pack", "init", *args])


def test_pack_init_writes_a_pack_the_app_loads_and_the_sample_imports_into(db_url, tmp_path):
    sample = nyc_head(tmp_path, 200)
    folder = tmp_path / "riverside"
    result = run_pack_init(tmp_path, "riverside", "--boundary", str(write_shapefile(tmp_path, epsg=2263)),
                           "--sample", str(sample), "--mapping", "nyc311", "--country", "US", "--subdivision", "NY",
                           "--timezone", "America/New_York", "--grid-size", "1000", "--out", str(folder))
    assert result.exit_code == 0, result.output
    assert "review:" in result.output and "guessed from column 'DistCode'" in result.output
    assert "EPSG:2263" in result.output and "holidays:US-NY" in result.output
    # the folder exists now: a second run refuses to overwrite it without --force
    again = run_pack_init(tmp_path, "riverside", "--boundary", str(tmp_path / "districts.shp"), "--timezone", "UTC",
                          "--out", str(folder))
    assert again.exit_code != 0 and "--force" in again.output

    app = build_app(db_url, PACK=str(folder))
    try:
        rt = get_runtime(app.server)
        assert rt.pack.name == "riverside" and not rt.calendar.is_workday(date(2025, 12, 25))
        summary = ingest(get_db(app.server), rt.rules, rt.pack, read_records(sample), "nyc311", source_label="nyc")
        with sample.open(encoding="utf-8", newline="") as f:
            rows = {r["Unique Key"]: r for r in csv.DictReader(f)}
        assert summary.run.received == len(rows) and summary.run.quarantined == 0
        depts = {d.name: d.code for d in rt.pack.departments}
        cats = {c.name: c.code for c in rt.pack.categories}
        with get_db(app.server).session_scope() as s:
            cases = s.execute(select(Incident.external_id, Incident.department_code, Incident.category_code,
                                     Incident.district_code, Incident.grid_code, Incident.lon, Incident.lat)).all()
        assert len(cases) == len(rows)
        for ext, dept, cat, district, grid, lon, lat in cases:
            assert cat == cats[rows[ext]["Complaint Type"]]
            if dept is not None:
                assert dept == depts[rows[ext]["Agency"]]
            inside = {code for code, (x0, y0, x1, y1) in (("11", WEST), ("12", EAST))
                      if lon is not None and x0 + 1e-3 < lon < x1 - 1e-3 and y0 + 1e-3 < lat < y1 - 1e-3}
            if inside:       # a point well inside a district is placed in it and in one of its grids
                assert district in inside and grid is not None and grid.startswith(district)
        assert any(d is not None for _, d, *_ in cases)
        assert sum(1 for *_, district, _g, _x, _y in cases if district is not None) >= 10
    finally:
        get_db(app.server).dispose()
