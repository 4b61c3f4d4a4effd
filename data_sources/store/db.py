"""Database engine and sessions.

One ``Database`` per app (``app.extensions['cityops.db']``). SQLite runs in WAL mode with
foreign keys on; PostgreSQL uses psycopg 3. Services never commit: ``session_scope``
commits at the boundary or rolls back on error.

Fail fast (issue 11): nothing waits on the database for ever. ``make_engine`` takes three
timeouts (the app passes ``DB_CONNECT_TIMEOUT``, ``DB_STATEMENT_TIMEOUT``, ``DB_POOL_TIMEOUT``):

- PostgreSQL: ``connect_timeout``; ``statement_timeout`` set by the server; TCP keepalives and
  ``tcp_user_timeout`` for a peer that vanished; and, because a server (or a proxy in front of it)
  that stops answering on an open connection is covered by none of those, every wait of psycopg
  on the socket is bounded too (statement timeout + 1 s; a pre-ping by the connect timeout): the
  connection is then closed and the error is a disconnect, so the pool replaces it;
- SQLite: the lock wait (busy timeout) and a deadline per statement (a progress handler);
- both: ``pool_timeout`` for a checkout when every pooled connection is busy.

A database that is away surfaces as an exception for which :func:`is_unavailable` is true;
the HTTP doors answer it with 503 and ``Retry-After``.
"""
from __future__ import annotations

import math
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import psycopg
from psycopg import errors as _pg_errors
from sqlalchemy import create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

EXTENSION_KEY = "cityops.db"
#: what a 503 tells the client to wait before trying again (seconds)
RETRY_AFTER_SECONDS = 5
#: the client-side bound of a statement exceeds the server's statement_timeout by this much, so that
#: the server's clean cancel (the connection stays usable) normally comes first
WAIT_GRACE_SECONDS = 1.0
#: what psycopg raises when Connection.wait(timeout=…) expires (private, an OperationalError)
_WAIT_TIMEOUT = getattr(_pg_errors, "_WaitTimeout", psycopg.OperationalError)
#: SQLite: the progress handler runs every this many virtual machine instructions
_SQLITE_PROGRESS_STEPS = 20_000


def normalise_url(url: str) -> str:
    """Accept postgres:// and postgresql:// and use the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _positive(seconds: Optional[float]) -> Optional[float]:
    return float(seconds) if seconds and float(seconds) > 0 else None


def make_engine(url: str, *, connect_timeout: Optional[float] = None, statement_timeout: Optional[float] = None,
                pool_timeout: Optional[float] = None, pool_size: Optional[int] = None) -> Engine:
    """An engine on ``url``; each timeout in seconds, None or 0 = not bounded (tools, benchmarks);
    ``pool_size`` = a pool of exactly that many connections (no overflow), None = 10 + 20 overflow."""
    url = normalise_url(url)
    u = make_url(url)
    connect_timeout, statement_timeout = _positive(connect_timeout), _positive(statement_timeout)
    pool_args = {"pool_timeout": float(pool_timeout)} if _positive(pool_timeout) else {}
    if pool_size:
        pool_args.update(pool_size=int(pool_size), max_overflow=0)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        lock_wait = statement_timeout or 10.0
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": lock_wait},
                               **(pool_args if not _in_memory(u) else {}))
        event.listen(engine, "connect", _sqlite_pragmas(lock_wait))
        if statement_timeout:
            _sqlite_statement_deadline(engine, statement_timeout)
        return engine
    connect_args = _pg_connect_args(u, connect_timeout, statement_timeout)
    engine = create_engine(url, pool_pre_ping=True, **{"pool_size": 10, "max_overflow": 20, **pool_args},
                           connect_args=connect_args)
    if statement_timeout or connect_timeout:
        _bound_pg_waits(engine, statement=statement_timeout and statement_timeout + WAIT_GRACE_SECONDS,
                        ping=connect_timeout)
    return engine


def _in_memory(u) -> bool:
    return u.get_backend_name() == "sqlite" and (not u.database or u.database == ":memory:")


# --------------------------------------------------------------------------- SQLite


def _sqlite_pragmas(lock_wait: float):
    def on_connect(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(lock_wait * 1000)}")
        cur.close()
    return on_connect


def _sqlite_statement_deadline(engine: Engine, seconds: float) -> None:
    """A statement still running ``seconds`` after it started is interrupted
    (sqlite3.OperationalError: interrupted)."""

    @event.listens_for(engine, "connect")
    def _install(dbapi_conn, record):
        deadline = record.info["cityops.deadline"] = [0.0]
        dbapi_conn.set_progress_handler(lambda: 1 if deadline[0] and time.monotonic() > deadline[0] else 0,
                                        _SQLITE_PROGRESS_STEPS)

    @event.listens_for(engine, "before_cursor_execute")
    def _arm(conn, cursor, statement, parameters, context, executemany):
        deadline = conn.info.get("cityops.deadline")
        if deadline is not None and not conn.info.get("cityops.unbounded"):
            deadline[0] = time.monotonic() + seconds

    def _disarm(conn, *_args):
        deadline = conn.info.get("cityops.deadline")
        if deadline is not None:
            deadline[0] = 0.0

    event.listen(engine, "after_cursor_execute", _disarm)
    event.listen(engine, "handle_error", lambda ctx: _disarm(ctx.connection) if ctx.connection is not None else None)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_connect_args(u, connect_timeout: Optional[float], statement_timeout: Optional[float]) -> dict:
    """libpq parameters; one given in the URL's query string wins over the configured one."""
    args: dict = {}
    if connect_timeout:
        # libpq counts whole seconds, at least 2; a peer that stops acknowledging what we send is given
        # as long, and an idle connection is probed for life as often (keepalives)
        args["connect_timeout"] = max(2, math.ceil(connect_timeout))
        args["tcp_user_timeout"] = int(connect_timeout * 1000)
        probe = max(1, math.ceil(connect_timeout))
        args.update(keepalives=1, keepalives_idle=probe, keepalives_interval=probe, keepalives_count=3)
    # no JIT: it compiled for 150–190 ms before each KPI scan of a quarter (EXPLAIN ANALYZE at 1M
    # cases) that then ran in 300–450 ms; the statements here are all that short
    options = ["-c jit=off"]
    if statement_timeout:
        options.append(f"-c statement_timeout={int(statement_timeout * 1000)}")
    given = u.query.get("options")
    args["options"] = " ".join([given, *options] if isinstance(given, str) and given else options)
    return {k: v for k, v in args.items() if k == "options" or k not in u.query}


def _bound_pg_waits(engine: Engine, *, statement: Optional[float], ping: Optional[float]) -> None:
    """psycopg waits on its socket without a limit; these connections wait at most ``statement``
    seconds (and a pool pre-ping at most ``ping``) for the server, then close and raise."""
    @event.listens_for(engine, "do_connect")
    def _connect(dialect, conn_rec, cargs, cparams):
        conn = BoundedPgConnection.connect(*cargs, **cparams)
        conn.wait_limit = statement
        return conn

    dialect = engine.dialect
    plain_ping = dialect.do_ping

    def bounded_ping(dbapi_connection) -> bool:
        before = getattr(dbapi_connection, "wait_limit", None)
        if ping and isinstance(dbapi_connection, psycopg.Connection):
            dbapi_connection.wait_limit = ping
        try:
            return plain_ping(dbapi_connection)
        finally:
            if isinstance(dbapi_connection, psycopg.Connection):
                dbapi_connection.wait_limit = before

    dialect.do_ping = bounded_ping   # the pool's pre-ping calls the dialect's do_ping


class BoundedPgConnection(psycopg.Connection):
    """A psycopg connection whose every wait on the server is bounded by ``wait_limit`` seconds."""

    wait_limit: Optional[float] = None

    def wait(self, gen, interval=0.1, timeout=None):
        limit = self.wait_limit if timeout is None else None
        if limit is None:
            return super().wait(gen, interval=interval, timeout=timeout)
        try:
            return super().wait(gen, interval=interval, timeout=limit)
        except _WAIT_TIMEOUT:
            # the protocol stopped half-way: this connection cannot be used again
            self.close()
            raise psycopg.OperationalError(
                f"the database did not answer within {limit:g} s; connection closed") from None


# --------------------------------------------------------------------------- errors


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database is away or too slow (refused, timed out, cut, pool
    exhausted, locked), as opposed to a bug or bad data: the doors answer it with 503."""
    if isinstance(exc, (sa_exc.TimeoutError, sa_exc.DisconnectionError, TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig
    if isinstance(exc, sqlite3.OperationalError):
        message = str(exc).lower()
        return any(m in message for m in ("locked", "busy", "interrupted", "unable to open", "disk i/o"))
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


@contextmanager
def unbounded(conn) -> Iterator[None]:
    """Lift the statement timeout for the transaction of ``conn`` (a SQLAlchemy Connection):
    migrations may build an index for longer than a web request should wait."""
    conn.info["cityops.unbounded"] = True
    raw = conn.connection.dbapi_connection
    before = getattr(raw, "wait_limit", None)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        if hasattr(raw, "wait_limit"):
            raw.wait_limit = None
    try:
        yield
    finally:
        conn.info.pop("cityops.unbounded", None)
        if hasattr(raw, "wait_limit"):
            raw.wait_limit = before


@contextmanager
def bulk_load(conn, tables: list[str]) -> Iterator[None]:
    """A large load into ``tables`` in the open transaction of ``conn`` (SQLite; elsewhere only the
    statement timeout is lifted): a large page cache while it runs, and the tables' secondary
    indexes dropped and built again at the end from their own ``CREATE INDEX`` text — sorting
    once beats keeping a dozen B-trees in order row by row. The DDL is part of the transaction,
    so a rollback gives the indexes back. (WAL with ``synchronous=NORMAL`` syncs only at
    checkpoints, and SQLite refuses to change it inside a transaction: it stays.)"""
    with unbounded(conn):
        raw = conn.connection.dbapi_connection
        if conn.dialect.name != "sqlite" or not getattr(raw, "in_transaction", False):
            yield
            return
        marks = ", ".join("?" * len(tables))
        indexes = conn.exec_driver_sql(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({marks}) ORDER BY tbl_name, name", tuple(tables)).all()
        cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        conn.exec_driver_sql("PRAGMA cache_size=-262144")     # KiB: 256 MB while the load runs
        try:
            for name, _ in indexes:
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
            yield
            for _, sql in indexes:
                conn.exec_driver_sql(sql)
        finally:
            conn.exec_driver_sql(f"PRAGMA cache_size={int(cache)}")


class Database:
    """``engine`` for writes and everything else; ``read_engine`` (``read_scope``) for the read
    models that many screens poll: a pool of its own (``read_pool_size`` connections, on
    ``read_url`` — a replica — or the same database), so polling screens can never take the
    connections that writes need. ``read_pool_size`` 0 and no ``read_url``: one pool for both."""

    def __init__(self, url: str, *, connect_timeout: Optional[float] = None,
                 statement_timeout: Optional[float] = None, pool_timeout: Optional[float] = None,
                 read_url: Optional[str] = None, read_pool_size: Optional[int] = None):
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, connect_timeout=connect_timeout, statement_timeout=statement_timeout,
                                  pool_timeout=pool_timeout)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        read_url = normalise_url(read_url) if read_url else None
        if (read_url or read_pool_size) and not (read_url is None and _in_memory(make_url(self.url))):
            self.read_engine = make_engine(read_url or self.url, connect_timeout=connect_timeout,
                                           statement_timeout=statement_timeout, pool_timeout=pool_timeout,
                                           pool_size=read_pool_size or None)
        else:
            self.read_engine = self.engine
        self.read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)
        self._ping_lock = threading.Lock()
        self._ping_thread: Optional[threading.Thread] = None
        self._ping_outcome: dict = {}

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def read_scope(self) -> Iterator[Session]:
        """A session on the read pool, for read models: nothing written, nothing committed."""
        session = self.read_sessions()
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    def ping(self, timeout: Optional[float] = None) -> None:
        """SELECT 1; with ``timeout``, raise TimeoutError when no answer came within it, whatever the
        database does (the ping runs in a thread of its own; while one is pending, callers share it)."""
        if timeout is None:
            self._ping_once()
            return
        with self._ping_lock:
            thread, outcome = self._ping_thread, self._ping_outcome
            if thread is None or not thread.is_alive():
                outcome = {}
                thread = threading.Thread(target=self._ping_into, args=(outcome,), name="cityops-db-ping",
                                          daemon=True)
                self._ping_thread, self._ping_outcome = thread, outcome
                thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"no answer from the database within {timeout:g} s")
        if "error" in outcome:
            raise outcome["error"]

    def _ping_once(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def _ping_into(self, outcome: dict) -> None:
        try:
            self._ping_once()
        except Exception as exc:  # handed to the caller
            outcome["error"] = exc

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def get_db(app=None) -> Database:
    if app is None:
        from flask import current_app
        app = current_app
    return app.extensions[EXTENSION_KEY]


@contextmanager
def session_scope(app=None) -> Iterator[Session]:
    with get_db(app).session_scope() as session:
        yield session


@contextmanager
def read_scope(app=None) -> Iterator[Session]:
    with get_db(app).read_scope() as session:
        yield session
