"""Replay: a real file played as a live feed at ×N speed.

The records (read by :mod:`data_sources.feeds.files`, the first ``limit`` of the file) are
ordered by their time in the source (the mapping's validated ``reported_at``) and record i is
released at ``start + (t_i − t_0) / N``, so the original gaps between records are kept, only
shorter. Records released at the same moment go in together (one batch); all of them land in
one feed run, ingested exactly like an import (upsert by (source, external_id), quarantine
with reasons). A record the mapping rejects has no trustworthy time: it is released with the
record before it and quarantined. ``clock`` and ``sleep`` are injectable so that tests run
the schedule on a fake clock.

The cases keep their original timestamps (the replay does not move them to today).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from typing import Callable, Iterable, Optional

from data_sources.feeds.base import UNREADABLE, FeedContext, Rejected
from data_sources.ingest import Ingestor, RunSummary


@dataclass
class Planned:
    offset: float                  # seconds after the start of the replay
    source_time: Optional[datetime]
    raw: dict
    line: int


@dataclass
class Release:
    at: float                      # seconds after the start, on the replay's clock
    planned: float                 # when the first of these records was due
    records: int
    released: int                  # so far, in all
    source_time: Optional[datetime]


@dataclass
class ReplayResult:
    summary: RunSummary
    releases: list[Release] = field(default_factory=list)
    released_at: dict[int, float] = field(default_factory=dict)   # line -> seconds after start


def plan(records: Iterable[tuple[dict, int]], mapping, ctx: FeedContext, speed: float,
         limit: Optional[int] = None) -> list[Planned]:
    """The release schedule: (t_i − t_0) / speed for every record, in source-time order."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    timed: list[tuple[Optional[datetime], dict, int]] = []
    previous: Optional[datetime] = None
    for raw, line in (islice(records, limit) if limit else records):
        t = None
        if UNREADABLE not in raw:
            try:
                t = mapping.to_case(raw, ctx).reported_at
            except (Rejected, ValueError, TypeError, KeyError):
                t = None
        t = t or previous
        previous = t
        timed.append((t, raw, line))
    known = [t for t, _, _ in timed if t is not None]
    t0 = min(known) if known else None
    # records before the first timed one take the first known time; sort is stable
    timed = [(t or t0, raw, line) for t, raw, line in timed]
    timed.sort(key=lambda x: x[0] or datetime.min.replace(tzinfo=timezone.utc))
    return [Planned(((t - t0).total_seconds() / speed) if t and t0 else 0.0, t, raw, line) for t, raw, line in timed]


def replay(db, rules, pack, records: Iterable[tuple[dict, int]], mapping, *, speed: float,
           limit: Optional[int] = None, feed_name: str = "replay", source_label: Optional[str] = None,
           crs: Optional[str] = None, now: Optional[datetime] = None,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
           on_release: Optional[Callable[[Release, int], None]] = None) -> ReplayResult:
    """Play ``records`` through ``mapping`` at ``speed`` × real time; returns the feed run and
    the releases (time, count) as they happened."""
    if isinstance(mapping, str):
        from data_sources.feeds.mappings import get_mapping
        mapping = get_mapping(mapping)
    now = now or datetime.now(timezone.utc)
    ctx = FeedContext(pack, crs=crs or getattr(mapping, "crs", None) or pack.crs, now=now,
                      dayfirst=bool(getattr(mapping, "dayfirst", False)))
    schedule = plan(records, mapping, ctx, speed, limit)
    run = Ingestor(db, rules, pack, mapping, feed_name, source_label or mapping.name, crs=crs, now=now)
    result = ReplayResult(summary=None)  # type: ignore[arg-type]
    i, n = 0, len(schedule)
    try:
        start = clock()
        while i < n:
            wait = start + schedule[i].offset - clock()
            if wait > 0:
                sleep(wait)
            at = clock() - start
            j = i + 1
            while j < n and schedule[j].offset <= at:
                j += 1
            batch = schedule[i:j]
            run.feed([(p.raw, p.line) for p in batch])
            for p in batch:
                result.released_at[p.line] = at
            rel = Release(at, schedule[i].offset, len(batch), j, batch[-1].source_time)
            result.releases.append(rel)
            if on_release:
                on_release(rel, n)
            i = j
    except BaseException as exc:   # Ctrl-C included: what was released stays, the run says so
        result.summary = run.finish("failed", f"{type(exc).__name__}: {exc} (after {i} of {n} records)")
        raise
    result.summary = run.finish("ok")
    return result


__all__ = ["Planned", "Release", "ReplayResult", "plan", "replay"]
