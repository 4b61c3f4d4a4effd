"""init-db builds the same schema on SQLite and PostgreSQL, matching the models, and loads the pack."""
from __future__ import annotations

import json

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
import pytest
from sqlalchemy import func, inspect, select

from data_sources.seed import init_db
from data_sources.store.db import get_db, make_engine
from incidents.tables import Area, Base, Category, Department, Meta, RoutingRule
from tests.conftest import PG_URL, build_app, pg_test_url, reset_postgres


def _schema(engine) -> dict:
    insp = inspect(engine)
    out = {}
    for table in sorted(insp.get_table_names()):
        cols = {c["name"]: (c["nullable"], type(c["type"]).__name__) for c in insp.get_columns(table)}
        # PostgreSQL lists the index behind each unique constraint too; compare explicit indexes only
        idx = sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(table)
                     if "duplicates_constraint" not in i)
        uqs = sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table))
        out[table] = {"columns": sorted(cols), "nullable": {k: v[0] for k, v in cols.items()},
                      "indexes": idx, "unique": uqs}
    return out


def test_migrations_match_the_models(server):
    engine = get_db(server).engine
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_sqlite_and_postgresql_get_the_same_tables_columns_and_indexes(tmp_path):
    if not PG_URL:
        import pytest
        pytest.skip("PostgreSQL: set CITYOPS_TEST_DATABASE_URL")
    lite = build_app(f"sqlite:///{tmp_path / 'a.db'}")
    reset_postgres(pg_test_url())
    pg = build_app(pg_test_url())
    a = _schema(get_db(lite.server).engine)
    b = _schema(get_db(pg.server).engine)
    assert a.keys() == b.keys()
    for table in a:
        assert a[table]["columns"] == b[table]["columns"], table
        assert a[table]["nullable"] == b[table]["nullable"], table
        assert [i[:2] for i in a[table]["indexes"]] == [i[:2] for i in b[table]["indexes"]], table
    assert "incidents" in a and "incident_events" in a and "quarantine" in a


def test_init_db_loads_the_hangzhou_pack_and_is_idempotent(server):
    db = get_db(server)
    with db.session_scope() as s:
        districts = s.scalars(select(Area.code).where(Area.level == "district")).all()
        grids = s.scalar(select(func.count()).select_from(Area).where(Area.level == "grid"))
        orphan_grids = s.scalar(select(func.count()).select_from(Area).where(
            Area.level == "grid", Area.parent_code.not_in(districts)))
        categories = s.scalars(select(Category)).all()
        rules = s.scalar(select(func.count()).select_from(RoutingRule))
        depts = s.scalar(select(func.count()).select_from(Department))
    assert sorted(districts) == ["330102", "330105", "330106", "330108", "330109", "330110", "330111",
                                 "330112", "330113", "330114", "330122", "330127", "330182"]
    assert grids > 500 and orphan_grids == 0
    assert len(categories) >= 40 and {c.kind for c in categories} == {"component", "event"}
    assert {c.time_unit for c in categories} == {"work_hours", "work_days", "natural_hours"}
    assert rules > len(categories) and depts > 30
    # a second init-db changes nothing it should not and adds no duplicates
    init_db(server, echo=lambda *_: None, seed_demo=False)
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Area).where(Area.level == "grid")) == grids
        assert s.scalar(select(func.count()).select_from(RoutingRule)) == rules
        assert s.get(Meta, "pack").value == "hangzhou"


def test_district_geometry_is_stored_as_wgs84_geojson(server):
    with get_db(server).session_scope() as s:
        west_lake = s.get(Area, "330106")
        geo = json.loads(west_lake.geometry)
    assert geo["type"] in ("Polygon", "MultiPolygon")
    # WGS84 West Lake district lies around 120.0–120.2 E, 30.1–30.35 N
    assert 119.9 < west_lake.centroid_lon < 120.25 and 30.05 < west_lake.centroid_lat < 30.4


def test_init_db_cli_prints_demo_passwords_once(tmp_path, monkeypatch):
    app = build_app(f"sqlite:///{tmp_path / 'c.db'}", DEMO_HISTORY_DAYS=1)
    runner = app.server.test_cli_runner()
    first = runner.invoke(args=["init-db", "--demo"])
    assert first.exit_code == 0, first.output
    for role in ("viewer", "leader", "dispatcher", "department", "inspector", "admin"):
        assert f"  {role}" in first.output
    second = runner.invoke(args=["init-db", "--demo"])
    assert second.exit_code == 0 and "Demo accounts" not in second.output
    # and the printed password works
    line = next(l for l in first.output.splitlines() if l.strip().startswith("leader "))
    password = line.split()[-1]
    from tests.integration.helpers import post_login
    resp = post_login(app.server.test_client(), "leader", password)
    assert resp.status_code == 302 and resp.headers["Location"] == "/brief"


def test_each_app_hands_the_domain_its_own_city_even_two_at_once(tmp_path):
    import contextvars


    from app import create_app
    from data_sources.runtime import get_runtime
    from incidents.queries import reference
    base = {"TESTING": True, "SECRET_KEY": "test-secret", "DEMO_FEED": False}
    a = create_app({**base, "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"})
    b = create_app({**base, "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}", "PACK": "nyc"})
    with a.server.app_context():
        assert reference.city_info().name == "hangzhou"
        with b.server.app_context():
            assert reference.city_info().name == "nyc"
            assert reference.case_rules() is get_runtime(b.server).rules
        assert reference.city_info().name == "hangzhou"   # back to the outer app's city
        assert reference.case_rules() is get_runtime(a.server).rules
    with b.server.test_request_context():
        assert reference.city_info().timezone == get_runtime(b.server).pack.timezone
    # outside every app context the domain has no city, and says so
    with pytest.raises(RuntimeError, match="no city handed to the domain"):
        contextvars.Context().run(reference.city_info)


def test_a_sqlite_database_of_ones_own_gets_no_demo_data_without_demo(tmp_path):
    """Demo history and the demo feed only on the embedded default (instance/cityops.db) or with
    --demo: a city's own SQLite file stays as its imports leave it."""
    from sqlalchemy import func, select
    from app import DEFAULTS, create_app, is_embedded_default
    from data_sources.seed import init_db
    from data_sources.store.db import get_db
    from incidents.tables import Incident
    assert is_embedded_default({"DATABASE_URL": DEFAULTS["DATABASE_URL"]})
    assert not is_embedded_default({"DATABASE_URL": f"sqlite:///{tmp_path / 'city.db'}"})
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'city.db'}", "TESTING": True, "SECRET_KEY": "x",
                      "DEMO_HISTORY_DAYS": 1})
    assert app.server.config["DEMO_FEED"] is False
    result = init_db(app.server, echo=lambda *_: None)          # seed_demo not given: as init-db without flags
    with get_db(app.server).session_scope() as s:
        assert "history" not in result and s.scalar(select(func.count()).select_from(Incident)) == 0
    get_db(app.server).dispose()
