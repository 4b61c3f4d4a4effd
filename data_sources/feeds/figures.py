"""Importing figure files: 一网通办 service rates and KPI values (CSV or XLSX).

``service-rates`` columns: department_code, day, item_code, item_name, total, online, completed,
on_time, rating_1 … rating_5, bad_rectified. Upsert by (department_code, day, item_code).

``kpis`` columns: indicator_code (or code), name, unit, direction (up|down), target, period
(day|month|quarter|year), period_start, dimension, value. Each row creates or updates its
``KpiIndicator`` (the last row of a code wins) and upserts its ``KpiValue`` by
(indicator_code, period_start, dimension).

Rows are validated with pydantic; a bad row (and a second row with the same key in one file)
goes to the quarantine table under the feed ``service-rates`` / ``kpis`` with its one reason.
Every run writes a ``feed_runs`` row with received = inserted + updated + unchanged +
quarantined; importing the same file twice changes nothing (all unchanged).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from datetime import date, datetime, timezone
from typing import Annotated, Any, Callable, Iterable, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select, tuple_

from data_sources.feeds.base import UNREADABLE, blank, parse_number
from data_sources.ingest import RUN_OWNER, RunSummary, _reason_kind, _scope_factory, close_interrupted_runs
from incidents.tables import FeedRun, KpiIndicator, KpiValue, Quarantine, ServiceRate

BATCH = 1000
SERVICE_RATES_FEED, KPIS_FEED = "service-rates", "kpis"
COUNT_COLUMNS = ("total", "online", "completed", "on_time", "rating_1", "rating_2", "rating_3", "rating_4",
                 "rating_5", "bad_rectified")


class RowRejected(Exception):
    pass


def _day(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    for fmt in ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日", "%m/%d/%Y"):
        try:
            return datetime.strptime(text[:10] if fmt == "%Y-%m-%d" else text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"unreadable date {text[:40]!r}")


def _count(value) -> int:
    if blank(value):
        return 0
    n = parse_number(value)
    if n is None or n != int(n):
        raise ValueError(f"{value!r} is not a whole number")
    if n < 0:
        raise ValueError(f"{value!r} is negative")
    return int(n)


def _text(v) -> str:
    return "" if blank(v) else str(v).strip()


def _required_day(v) -> date:
    if blank(v):
        raise ValueError("is missing")
    return _day(v)


_Text = Annotated[str, BeforeValidator(_text)]            # a text cell: blank is "", else stripped
_Day = Annotated[date, BeforeValidator(_required_day)]    # a date cell that must be there


class _Row(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")


class ServiceRateRow(_Row):
    department_code: _Text = Field(min_length=1, max_length=40)
    day: _Day
    item_code: _Text = Field(min_length=1, max_length=40)
    item_name: _Text = Field("", max_length=120)
    total: int = 0
    online: int = 0
    completed: int = 0
    on_time: int = 0
    rating_1: int = 0
    rating_2: int = 0
    rating_3: int = 0
    rating_4: int = 0
    rating_5: int = 0
    bad_rectified: int = 0

    @field_validator(*COUNT_COLUMNS, mode="before")
    @classmethod
    def _counts(cls, v):
        return _count(v)

    @model_validator(mode="after")
    def _consistent(self):
        for part in ("online", "completed"):
            if getattr(self, part) > self.total:
                raise ValueError(f"{part} ({getattr(self, part)}) is more than total ({self.total})")
        if self.on_time > self.completed:
            raise ValueError(f"on_time ({self.on_time}) is more than completed ({self.completed})")
        rated = sum(getattr(self, f"rating_{i}") for i in range(1, 6))
        if rated > self.completed:
            raise ValueError(f"ratings ({rated}) are more than completed cases ({self.completed})")
        if self.bad_rectified > self.rating_1 + self.rating_2:
            raise ValueError(f"bad_rectified ({self.bad_rectified}) is more than the bad ratings "
                             f"(rating_1 + rating_2 = {self.rating_1 + self.rating_2})")
        return self


_QUARTER_MONTHS = (1, 4, 7, 10)


class KpiRow(_Row):
    indicator_code: _Text = Field(min_length=1, max_length=40)
    name: _Text = Field(min_length=1, max_length=80)
    unit: _Text = Field("", max_length=20)
    direction: Literal["up", "down"] = "up"
    target: Optional[float] = None
    period: Literal["day", "month", "quarter", "year"] = "day"
    period_start: _Day
    dimension: _Text = Field("", max_length=60)
    value: float

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data):
        if isinstance(data, dict) and blank(data.get("indicator_code")) and not blank(data.get("code")):
            data = {**data, "indicator_code": data["code"]}
        return data

    @field_validator("direction", "period", mode="before")
    @classmethod
    def _lower(cls, v):
        return str(v).strip().lower()

    @field_validator("target", "value", mode="before")
    @classmethod
    def _number(cls, v, info):
        n = parse_number(v)
        if n is None and info.field_name == "value":
            raise ValueError("is missing")
        return n

    @model_validator(mode="after")
    def _aligned(self):
        d = self.period_start
        ok = {"day": True, "month": d.day == 1, "quarter": d.day == 1 and d.month in _QUARTER_MONTHS,
              "year": d.day == 1 and d.month == 1}[self.period]
        if not ok:
            raise ValueError(f"period_start {d} is not the start of a {self.period}")
        if not math.isfinite(self.value):
            raise ValueError("value is not a finite number")
        return self


def _validate(model: type[BaseModel], raw: dict) -> BaseModel:
    if UNREADABLE in raw:
        raise RowRejected(str(raw[UNREADABLE]))
    clean = {k: v for k, v in raw.items() if not blank(v)}   # a blank cell: the column's default
    try:
        return model.model_validate(clean)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "missing":
            msg = "is missing"
        raise RowRejected(f"{loc}: {msg}" if loc else msg) from None


class _FigureRun:
    def __init__(self, db, feed: str, source: str, now: datetime):
        self.scope, self.feed, self.source, self.now = _scope_factory(db), feed, source[:300], now
        self.reasons: Counter = Counter()
        with self.scope() as s:
            close_interrupted_runs(s)
            run = FeedRun(feed=feed, source=self.source, started_at=now, status="running", received=0, inserted=0,
                          updated=0, unchanged=0, quarantined=0, error="", owner=RUN_OWNER,
                          heartbeat_at=datetime.now(timezone.utc))
            s.add(run)
            s.flush()
            self.run_id = run.id

    def quarantine(self, s, raw: dict, line: int, reason: str, counts: Counter) -> None:
        counts["quarantined"] += 1
        self.reasons[_reason_kind(reason)] += 1
        text = json.dumps({"record": raw, "line": line, "source": self.source}, ensure_ascii=False, default=str)
        q = s.scalar(select(Quarantine).where(Quarantine.feed == self.feed, Quarantine.status == "new",
                                              Quarantine.raw == text))
        if q is not None:   # the same bad row imported again keeps its one row
            q.reason, q.feed_run_id = reason, self.run_id
        else:
            s.add(Quarantine(feed_run_id=self.run_id, feed=self.feed, raw=text, reason=reason, status="new",
                             created_at=self.now))

    def add(self, s, counts: Counter, n: int) -> None:
        run = s.get(FeedRun, self.run_id)
        for k, v in counts.items():
            setattr(run, k, getattr(run, k) + v)
        run.received += n
        run.heartbeat_at = datetime.now(timezone.utc)
        assert run.received == run.inserted + run.updated + run.unchanged + run.quarantined

    def run(self, records: Iterable[tuple[dict, int]], write: Callable[[Any, list, Counter], None],
            progress: Optional[Callable[[int], None]]) -> RunSummary:
        """``write(session, batch, counts)`` for each batch of ``records``, a transaction a batch whose
        counts it adds to the run; finishes the run "ok", or "failed" with the error (then raises it)."""
        try:
            for batch in _batches(records, BATCH):
                with self.scope() as s:
                    counts: Counter = Counter()
                    write(s, batch, counts)
                    s.flush()
                    self.add(s, counts, len(batch))
                if progress:
                    progress(len(batch))
        except Exception as exc:
            self.finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        return self.finish("ok")

    def finish(self, status: str, error: str = "") -> RunSummary:
        with self.scope() as s:
            run = s.get(FeedRun, self.run_id)
            run.status, run.error, run.finished_at = status, error[:2000], datetime.now(timezone.utc)
            s.flush()
            s.expunge(run)
        return RunSummary(run=run, reasons=self.reasons)


def _batches(records: Iterable[tuple[dict, int]], size: int):
    batch = []
    for item in records:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_service_rates(db, records: Iterable[tuple[dict, int]], *, departments: Optional[set[str]] = None,
                         source: str = "file", now: Optional[datetime] = None,
                         progress: Optional[Callable[[int], None]] = None) -> RunSummary:
    """Upsert service-rate rows by (department_code, day, item_code); ``departments``: the
    known department codes (a row of another department is quarantined)."""
    now = now or datetime.now(timezone.utc)
    fr = _FigureRun(db, SERVICE_RATES_FEED, source, now)
    seen: dict[tuple, int] = {}

    def write(s, batch, counts: Counter) -> None:
        good: list[tuple[dict, int, ServiceRateRow]] = []
        for raw, line in batch:
            try:
                row = _validate(ServiceRateRow, raw)
                if departments is not None and row.department_code not in departments:
                    raise RowRejected(f"department_code: {row.department_code!r} is not a department "
                                      "of the pack")
                key = (row.department_code, row.day, row.item_code)
                if key in seen:
                    raise RowRejected(f"duplicate key {row.department_code}/{row.day}/{row.item_code} "
                                      f"in this file (first on line {seen[key]})")
                seen[key] = line
                good.append((raw, line, row))
            except RowRejected as exc:
                fr.quarantine(s, raw, line, str(exc), counts)
        keys = [(r.department_code, r.day, r.item_code) for _, _, r in good]
        existing = {}
        for i in range(0, len(keys), 300):
            for sr in s.scalars(select(ServiceRate).where(
                    tuple_(ServiceRate.department_code, ServiceRate.day, ServiceRate.item_code)
                    .in_(keys[i:i + 300]))):
                existing[(sr.department_code, sr.day, sr.item_code)] = sr
        for raw, line, row in good:
            values = row.model_dump()
            sr = existing.get((row.department_code, row.day, row.item_code))
            if sr is None:
                s.add(ServiceRate(**values, source=source[:40]))
                counts["inserted"] += 1
            elif any(getattr(sr, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(sr, k, v)
                sr.source = source[:40]
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1

    return fr.run(records, write, progress)


def import_kpis(db, records: Iterable[tuple[dict, int]], *, source: str = "file", now: Optional[datetime] = None,
                progress: Optional[Callable[[int], None]] = None) -> tuple[RunSummary, Counter]:
    """Create/update indicators and upsert their values; returns the run and the indicator
    counts (``created``, ``updated``)."""
    now = now or datetime.now(timezone.utc)
    fr = _FigureRun(db, KPIS_FEED, source, now)
    seen: dict[tuple, int] = {}
    indicators: Counter = Counter()
    touched: set[str] = set()

    def write(s, batch, counts: Counter) -> None:
        for raw, line in batch:
            try:
                row = _validate(KpiRow, raw)
                key = (row.indicator_code, row.period_start, row.dimension)
                if key in seen:
                    raise RowRejected(f"duplicate key {row.indicator_code}/{row.period_start}/"
                                      f"{row.dimension or '-'} in this file (first on line {seen[key]})")
                seen[key] = line
            except RowRejected as exc:
                fr.quarantine(s, raw, line, str(exc), counts)
                continue
            meta = dict(name=row.name, unit=row.unit, direction=row.direction, target=row.target,
                        period=row.period)
            ind = s.get(KpiIndicator, row.indicator_code)
            if ind is None:
                s.add(KpiIndicator(code=row.indicator_code, name_en="", group="", **meta))
                s.flush()
                indicators["created"] += 1
                touched.add(row.indicator_code)
            elif any(getattr(ind, k) != v for k, v in meta.items()):
                for k, v in meta.items():
                    setattr(ind, k, v)
                if row.indicator_code not in touched:
                    indicators["updated"] += 1
                    touched.add(row.indicator_code)
            kv = s.scalar(select(KpiValue).where(KpiValue.indicator_code == row.indicator_code,
                                                 KpiValue.period_start == row.period_start,
                                                 KpiValue.dimension == row.dimension))
            if kv is None:
                s.add(KpiValue(indicator_code=row.indicator_code, period_start=row.period_start,
                               dimension=row.dimension, value=row.value))
                counts["inserted"] += 1
            elif kv.value != row.value:
                kv.value = row.value
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1

    return fr.run(records, write, progress), indicators


__all__ = ["KPIS_FEED", "SERVICE_RATES_FEED", "KpiRow", "ServiceRateRow", "import_kpis", "import_service_rates"]
