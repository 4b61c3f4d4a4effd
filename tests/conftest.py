"""Shared fixtures. Integration tests run on SQLite always and on PostgreSQL when
CITYOPS_TEST_DATABASE_URL is set (CI sets it; under CI a missing database fails, never skips)."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("CITYOPS_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("CITYOPS_TEST_REDIS_URL", "")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

if IN_CI and not (PG_URL and REDIS_URL):
    raise RuntimeError("CI must run the suite against PostgreSQL and Redis: set CITYOPS_TEST_DATABASE_URL "
                       "and CITYOPS_TEST_REDIS_URL (.ci/run does)")



def _shared_data() -> Path:
    """The real 311 files (../shared/data beside the checkout, wherever it was cloned):
    CITYOPS_SHARED_DATA, else the sibling folder, else the workspace's."""
    for candidate in (os.environ.get("CITYOPS_SHARED_DATA"), ROOT.parent / "shared" / "data", "/work/shared/data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return ROOT.parent / "shared" / "data"


SHARED_DATA = _shared_data()
BACKENDS = ["sqlite", "postgresql"]
_pg_db: dict[str, str] = {}


def pg_test_url(suffix: str = "") -> str:
    """A database of this test process's own on the CITYOPS_TEST_DATABASE_URL server, so that
    several test runs on one machine never drop each other's tables. Dropped at exit. ``suffix``
    names another one beside it: for data a module builds once and keeps while the other tests
    reset theirs (``shared_app``)."""
    if not PG_URL:
        return ""
    if suffix not in _pg_db:
        import atexit
        from sqlalchemy import text
        from sqlalchemy.engine import make_url
        from data_sources.store.db import make_engine, normalise_url
        name = f"cityops_test_{os.getpid()}{'_' + suffix if suffix else ''}"
        admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        _pg_db[suffix] = make_url(normalise_url(PG_URL)).set(database=name).render_as_string(hide_password=False)

        def _drop():
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        atexit.register(_drop)
    return _pg_db[suffix]


def reset_postgres(url: str) -> None:
    from sqlalchemy import text
    from data_sources.store.db import make_engine
    engine = make_engine(url)
    with engine.begin() as conn:
        # a connection an earlier test left open (idle in transaction, holding a lock on a table)
        # would make the DROP wait for ever: end every other backend on this database first
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        conn.execute(text("SET LOCAL lock_timeout = '60s'"))
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def database_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'cityops.db'}"
    if not PG_URL:
        pytest.skip("PostgreSQL: set CITYOPS_TEST_DATABASE_URL to run (CI does)")
    url = pg_test_url()
    reset_postgres(url)
    return url


def build_app(url: str, **overrides):
    """An app on ``url`` with migrations applied and the Hangzhou pack installed (no demo data)."""
    import tempfile
    import uuid
    from app import create_app
    from data_sources.seed import init_db
    # export jobs write into a folder of this app's own (made by the first job), never into the
    # checkout's instance folder, nor into another app's
    exports = f"{tempfile.gettempdir()}/cityops-test-exports-{uuid.uuid4().hex}"
    media = f"{tempfile.gettempdir()}/cityops-test-media-{uuid.uuid4().hex}"   # case photos, likewise
    app = create_app({"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": "test-secret",
                      "DEMO_FEED": False, "EXPORT_DIR": exports, "MEDIA_DIR": media, **overrides})
    init_db(app.server, echo=lambda *_: None, seed_demo=False)
    return app


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def db_url(backend, tmp_path) -> str:
    return database_url(backend, tmp_path)


@pytest.fixture
def app(db_url):
    app = build_app(db_url)
    yield app
    from data_sources.store.db import get_db
    get_db(app.server).dispose()


@contextlib.contextmanager
def shared_app(backend: str, tmp_path_factory, name: str):
    """An app (as ``app``) on a database of its own that lives beside the per-test ones: for a
    module-scoped fixture that builds data once for tests that only read it. On PostgreSQL a
    database apart (``pg_test_url(name)``), so the per-test resets of the main one never touch it."""
    from data_sources.store.db import get_db
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'cityops.db'}"
    else:
        if not PG_URL:
            pytest.skip("PostgreSQL: set CITYOPS_TEST_DATABASE_URL to run (CI does)")
        url = pg_test_url(name)
        reset_postgres(url)
    app = build_app(url)
    try:
        yield app
    finally:
        get_db(app.server).dispose()


@pytest.fixture
def server(app):
    return app.server
