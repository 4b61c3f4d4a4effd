"""Read model of feed health: is every feed arriving at its usual rate, what did its last runs
bring and reject (the ops view, the wall's feed panel, ``GET /api/v1/feeds``)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session

from data_sources.store.cache import cache
from data_sources.store.db import read_scope
from incidents.queries._common import current_version, time_bucket
from incidents.tables import FeedRun, Incident


#: how many past days at the same hour make a feed's usual hourly rate
USUAL_DAYS = 7
#: A feed arriving at its usual rate λ brings nothing for t with probability exp(−λt): silent when
#: that is below 0.1 % (7 usual intervals), late below 5 % (3 intervals) or when the last hour
#: brought less than a third of the usual volume (when that volume is big enough to tell).
#: Shorter thresholds raise false alarms on quiet night hours.
SILENT_INTERVALS = 7.0
LATE_INTERVALS = 3.0
LATE_MIN_USUAL = 3.0
FEED_ERROR_STATUSES = ("failed", "error")


@dataclass(frozen=True)
class FeedHealth:
    feed: str                          # the cases' source (feed runs: their source, else their feed name)
    last_record_at: datetime | None    # latest of max(reported_at) and the last feed run's finished_at
    lag_seconds: float | None          # now − last_record_at (never negative)
    last_hour: int                     # cases reported in the last hour
    usual_hourly: float                # mean of the same hour over the last USUAL_DAYS days
    usual_interval_seconds: float | None
    runs_24h: int
    received_24h: int
    quarantined_24h: int
    reject_rate: float | None          # quarantined ÷ received over the feed runs of the last 24 h
    last_run_status: str | None
    last_error: str | None
    last_error_at: datetime | None
    status: str                        # ok | late | silent


def feed_health(now: datetime) -> list[FeedHealth]:
    """Health of every feed (ops view, the wall's feed panel, GET /api/v1/feeds)."""
    return _feed_health(current_version(), time_bucket(now, 15))


@cache.memoize(timeout=120)
def _feed_health(version: int, bucket: int) -> list[FeedHealth]:
    now = datetime.fromtimestamp(bucket * 15, tz=timezone.utc)
    with read_scope() as s:
        return feed_health_rows(s, now)


def feed_status(lag_seconds: float | None, last_hour: int, usual_hourly: float) -> str:
    if usual_hourly <= 0 or lag_seconds is None:
        return "ok"  # nothing usually arrives at this hour: silence says nothing
    interval = 3600.0 / usual_hourly
    if lag_seconds > SILENT_INTERVALS * interval:
        return "silent"
    if lag_seconds > LATE_INTERVALS * interval or (usual_hourly >= LATE_MIN_USUAL and last_hour < usual_hourly / 3):
        return "late"
    return "ok"


def feed_health_rows(session: Session, now: datetime) -> list[FeedHealth]:

    hour, day = timedelta(hours=1), timedelta(days=1)
    # one index probe per feed on (source, reported_at), not a scan of the whole table
    sources = set(session.scalars(select(Incident.source).where(Incident.reported_at >= now - 30 * day).distinct()))
    sources |= set(session.scalars(select(FeedRun.source).distinct())) | set(session.scalars(select(FeedRun.feed).distinct()))
    last_reported = {}
    for src in sorted(x for x in sources if x):
        last = session.scalar(select(func.max(Incident.reported_at)).where(Incident.source == src))
        if last is not None:
            last_reported[src] = last
    # bucket 0 = the last hour, bucket d = the same hour d days ago
    # (the last hour has no upper bound: a feed's clock may run a little ahead of ours)
    buckets = [func.sum(case((Incident.reported_at >= now - hour, 1), else_=0))]
    buckets += [func.sum(case((and_(Incident.reported_at >= now - d * day - hour,
                                    Incident.reported_at < now - d * day), 1), else_=0))
                for d in range(1, USUAL_DAYS + 1)]
    counts = {row[0]: [int(v or 0) for v in row[1:]] for row in session.execute(
        select(Incident.source, *buckets)
        .where(Incident.reported_at >= now - USUAL_DAYS * day - hour).group_by(Incident.source))}

    key = func.coalesce(func.nullif(FeedRun.source, literal("")), FeedRun.feed)
    runs: dict[str, dict] = {}
    for k, finished in session.execute(select(key, func.max(FeedRun.finished_at)).group_by(key)):
        runs[k] = {"finished": finished}
    for k, n, received, quarantined in session.execute(
            select(key, func.count(), func.sum(FeedRun.received), func.sum(FeedRun.quarantined))
            .where(FeedRun.started_at >= now - day, FeedRun.started_at <= now).group_by(key)):
        runs[k].update(n=int(n), received=int(received or 0), quarantined=int(quarantined or 0))
    latest = select(func.max(FeedRun.id)).group_by(key)
    for k, status in session.execute(select(key, FeedRun.status).where(FeedRun.id.in_(latest))):
        runs[k]["status"] = status
    failed = select(func.max(FeedRun.id)).where(FeedRun.status.in_(FEED_ERROR_STATUSES)).group_by(key)
    for k, error, at, started in session.execute(
            select(key, FeedRun.error, FeedRun.finished_at, FeedRun.started_at).where(FeedRun.id.in_(failed))):
        runs[k].update(error=error or "failed", error_at=at or started)

    out = []
    for feed in sorted(set(last_reported) | set(runs)):
        run = runs.get(feed, {})
        times = [t for t in (last_reported.get(feed), run.get("finished")) if t is not None]
        last = max(times) if times else None
        lag = max((now - last).total_seconds(), 0.0) if last else None
        c = counts.get(feed, [0] * (USUAL_DAYS + 1))
        usual = sum(c[1:]) / USUAL_DAYS
        received = run.get("received", 0)
        out.append(FeedHealth(
            feed=feed, last_record_at=last, lag_seconds=lag, last_hour=c[0], usual_hourly=round(usual, 3),
            usual_interval_seconds=round(3600.0 / usual, 1) if usual > 0 else None,
            runs_24h=run.get("n", 0), received_24h=received, quarantined_24h=run.get("quarantined", 0),
            reject_rate=run.get("quarantined", 0) / received if received else None,
            last_run_status=run.get("status"), last_error=run.get("error"), last_error_at=run.get("error_at"),
            status=feed_status(lag, c[0], usual)))
    return out
