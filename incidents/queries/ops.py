"""Read model of the operations figures /metrics shows at scrape time: a few GROUP BY counts, each
one cheap SQL aggregate (no rows leave the database), never memoized (a scrape wants the present)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from incidents.queries.wall import lights_of_running_cases
from incidents.tables import FeedRun, Quarantine


@dataclass(frozen=True)
class OpsFigures:
    lights: dict[str, int]                       # light → cases with a running clock (as the wall counts them)
    feed_runs: dict[tuple[str, str], int]        # (feed, status) → runs
    quarantine: dict[tuple[str, str], int]       # (feed, status) → quarantined records


def ops_figures(s: Session, now: datetime) -> OpsFigures:
    return OpsFigures(
        lights=lights_of_running_cases(s, now),
        feed_runs={(f, st): n for f, st, n in s.execute(
            select(FeedRun.feed, FeedRun.status, func.count()).group_by(FeedRun.feed, FeedRun.status))},
        quarantine={(f, st): n for f, st, n in s.execute(
            select(Quarantine.feed, Quarantine.status, func.count()).group_by(Quarantine.feed, Quarantine.status))})


__all__ = ["OpsFigures", "ops_figures"]
