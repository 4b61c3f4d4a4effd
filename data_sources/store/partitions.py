"""The case events partitioned by month on PostgreSQL (native ``PARTITION BY RANGE (at)``).

``incident_events`` stays in the default schema; its monthly partitions (``incident_events_y2026m11``
…, upper bound exclusive, months in UTC like the stored times) and the DEFAULT partition live in the
schema ``partitions``: SQLAlchemy's inspector, and so Alembic's compare against the models, lists
every partition of the default schema as a table of its own.

Months are made ahead (:func:`ensure_ahead`, called by ``init-db``), so a new event finds its month;
an event of a month not made yet (far future, an old import) lands in DEFAULT and the next
:func:`ensure_ahead` moves it into its month. :func:`prune` drops whole months before a date.

Plumbing: knows the table names, imports nothing of the project. Every function takes a connection
in a transaction and does nothing on a database whose events are not partitioned (SQLite).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Iterable, Optional

from sqlalchemy import text

SCHEMA = "partitions"
TABLE = "incident_events"
DEFAULT = f"{SCHEMA}.{TABLE}_default"
MONTHS_AHEAD = 12
_LOCK = 0x1E7E_4A47   # one ensure or prune at a time (pg_advisory_xact_lock)
_BOUND = re.compile(r"FROM \('(\d{4}-\d{2}-\d{2})[^']*'\) TO \('(\d{4}-\d{2}-\d{2})[^']*'\)")


@dataclass(frozen=True)
class Month:
    name: str           # schema-qualified
    start: date
    end: date           # exclusive


def month_of(day: date | datetime) -> date:
    return date(day.year, day.month, 1)


def add_months(month: date, n: int) -> date:
    k = month.year * 12 + month.month - 1 + n
    return date(k // 12, k % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{SCHEMA}.{TABLE}_y{month.year:04d}m{month.month:02d}"


def is_partitioned(conn) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.scalar(text("SELECT EXISTS (SELECT 1 FROM pg_partitioned_table "
                                 "WHERE partrelid = to_regclass(:t))"), {"t": TABLE}))


def create_default(conn) -> None:
    """The schema of the partitions and the DEFAULT partition (of a table just made partitioned)."""
    conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {DEFAULT} PARTITION OF {TABLE} DEFAULT")


def months(conn) -> list[Month]:
    """The monthly partitions there are, oldest first (DEFAULT not included)."""
    rows = conn.execute(text(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_get_expr(c.relpartbound, c.oid) "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE i.inhparent = to_regclass(:t)"), {"t": TABLE}).all()
    found = []
    for name, bound in rows:
        m = _BOUND.search(bound or "")
        if m:
            found.append(Month(name, date.fromisoformat(m.group(1)), date.fromisoformat(m.group(2))))
    return sorted(found, key=lambda m: m.start)


def ensure_months(conn, wanted: Iterable[date]) -> list[str]:
    """Make the monthly partitions of ``wanted`` (first days of months) that are missing; rows of such
    a month sitting in DEFAULT move into it. Returns the partitions made."""
    if not is_partitioned(conn):
        return []
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    have = {m.start for m in months(conn)}
    made = []
    for start in sorted(set(wanted) - have):
        name, end = partition_name(start), add_months(start, 1)
        bound = f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        span = {"lo": datetime.combine(start, datetime.min.time()), "hi": datetime.combine(end, datetime.min.time())}
        stray = conn.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {DEFAULT} WHERE at >= :lo AND at < :hi)"), span)
        if stray:
            # a partition overlapping rows of DEFAULT cannot be created: fill a table, then attach it
            conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)")
            conn.execute(text(f"WITH moved AS (DELETE FROM {DEFAULT} WHERE at >= :lo AND at < :hi RETURNING *) "
                              f"INSERT INTO {name} SELECT * FROM moved"), span)
            conn.exec_driver_sql(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} {bound}")
        else:
            conn.exec_driver_sql(f"CREATE TABLE {name} PARTITION OF {TABLE} {bound}")
        made.append(name)
    return made


def ensure_ahead(conn, now: datetime, months_ahead: int = MONTHS_AHEAD,
                 since: Optional[date] = None) -> list[str]:
    """Every month from ``since`` (default: this month) to ``months_ahead`` months ahead, and the
    month of every row sitting in DEFAULT (moved into it)."""
    if not is_partitioned(conn):
        return []
    this = month_of(now.astimezone(timezone.utc) if now.tzinfo else now)
    first = month_of(since) if since else this
    wanted = {add_months(first, i) for i in range((this.year - first.year) * 12 + this.month - first.month
                                                  + months_ahead + 1)}
    wanted |= {month_of(d) for d in conn.scalars(text(f"SELECT DISTINCT date_trunc('month', at) FROM {DEFAULT}"))}
    return ensure_months(conn, wanted)


@dataclass(frozen=True)
class Pruned:
    month: Month
    events: int
    open_cases: int      # cases in an open state with events in this month: the month is kept
    dropped: bool


def prune(conn, before: date, *, open_states: Iterable[str], dry_run: bool = False) -> list[Pruned]:
    """Drop every monthly partition that ends on or before ``before`` (DETACH, then DROP) with the
    idempotency keys of its events, unless one of its events belongs to a case whose state is in
    ``open_states``: such a month is kept whole. ``dry_run`` only counts."""
    if not is_partitioned(conn):
        return []
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    states = list(open_states)
    out = []
    for month in (m for m in months(conn) if m.end <= before):
        events = conn.scalar(text(f"SELECT count(*) FROM {month.name}"))
        open_cases = conn.scalar(text(
            f"SELECT count(DISTINCT e.incident_id) FROM {month.name} e JOIN incidents i ON i.id = e.incident_id "
            f"WHERE i.state = ANY(:states)"), {"states": states})
        drop = not open_cases and not dry_run
        if drop:
            conn.exec_driver_sql(f"DELETE FROM event_requests WHERE event_id IN (SELECT id FROM {month.name})")
            conn.exec_driver_sql(f"ALTER TABLE {TABLE} DETACH PARTITION {month.name}")
            conn.exec_driver_sql(f"DROP TABLE {month.name}")
        out.append(Pruned(month, events, open_cases, drop))
    return out
