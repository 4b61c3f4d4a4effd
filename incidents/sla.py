"""Working calendar, deadlines (处置时限) and the traffic light (亮灯). Pure: stdlib + chinese_calendar.

DESIGN §4. Every function that depends on the current time takes ``now`` explicitly.
Inputs may be aware datetimes in any time zone; naive datetimes are taken as UTC.
Arithmetic happens in the calendar's local zone; results are aware UTC datetimes.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from incidents.model import Light, TimeUnit

UTC = timezone.utc

HOLIDAY_SOURCES = ("chinese-calendar", "none")
#: ``holidays:CC`` or ``holidays:CC-SUBDIV`` (e.g. ``holidays:US-NY``): the public holidays of a country
#: (and one of its subdivisions) from the maintained ``holidays`` package, observed days included
HOLIDAYS_PREFIX = "holidays:"


def _holidays_country(source: str) -> tuple[str, str | None]:
    code = source[len(HOLIDAYS_PREFIX):].strip()
    country, _, subdiv = code.partition("-")
    return country.upper(), (subdiv.upper() or None)


def holiday_source_problem(source: str) -> str | None:
    """None when ``source`` names a holiday calendar this module can read, else what is wrong with it."""
    if source in HOLIDAY_SOURCES:
        return None
    if not source.startswith(HOLIDAYS_PREFIX):
        return (f"holiday_source must be one of {', '.join(HOLIDAY_SOURCES)} or {HOLIDAYS_PREFIX}COUNTRY[-SUBDIVISION] "
                f"(e.g. holidays:US-NY), not {source!r}")
    import holidays
    country, subdiv = _holidays_country(source)
    try:
        holidays.country_holidays(country, subdiv=subdiv)
    except NotImplementedError as exc:
        return f"holiday_source {source!r}: {exc} (see the holidays package's list of countries)"
    return None
GREEN_MAX = 0.8    # fraction ≤ 0.8 → green
YELLOW_MAX = 1.0   # fraction ≤ 1.0 → yellow, above → red

_MAX_SCAN_DAYS = 3660  # give up looking for office time after ~10 years (misconfigured calendar)

Span = tuple[datetime, datetime | None]


def to_utc(dt: datetime) -> datetime:
    """Aware UTC; naive input is taken as UTC."""
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _parse_time(value: time | str) -> time:
    if isinstance(value, time):
        return value
    return time.fromisoformat(str(value).strip())


def _parse_period(p) -> tuple[time, time]:
    if isinstance(p, str):
        a, b = p.replace("–", "-").split("-")
        return _parse_time(a), _parse_time(b)
    a, b = p
    return _parse_time(a), _parse_time(b)


class WorkCalendar:
    """Office hours, weekends, statutory holidays and 调休 working days of one city.

    ``office_hours``: periods of a working day, e.g. ``[(time(8, 30), time(12)), (time(13, 30),
    time(17, 30))]`` (``"08:30-12:00"`` strings are accepted too). ``holiday_source``:
    ``"chinese-calendar"`` (statutory holidays and 调休 from the ``chinesecalendar`` package,
    Mon–Fri for years it does not know), ``"holidays:CC[-SUBDIV]"`` (Mon–Fri without the public
    holidays of that country and subdivision, observed days included, from the ``holidays``
    package) or ``"none"`` (Mon–Fri). ``overrides`` win over all of them.
    """

    def __init__(self, office_hours: Sequence[tuple[time, time]] | Sequence[str], tz: str,
                 holiday_source: str = "chinese-calendar",
                 overrides: dict[date, bool] | None = None) -> None:
        periods = sorted(_parse_period(p) for p in office_hours)
        if not periods:
            raise ValueError("office_hours must have at least one period")
        for s, e in periods:
            if not s < e:
                raise ValueError(f"office period {s}–{e} must start before it ends")
        for (_, e1), (s2, _) in zip(periods, periods[1:]):
            if s2 < e1:
                raise ValueError("office periods overlap")
        problem = holiday_source_problem(holiday_source)
        if problem:
            raise ValueError(problem)
        self.office_hours: tuple[tuple[time, time], ...] = tuple(periods)
        self.tz_name = tz
        self.tz = ZoneInfo(tz)
        self.holiday_source = holiday_source
        self.overrides: dict[date, bool] = dict(overrides or {})
        self._workday_cache: dict[date, bool] = {}
        self._period_cache: dict[date, tuple[tuple[datetime, datetime], ...]] = {}
        self._unknown_years: set[int] = set()
        self._public_holidays = None
        if holiday_source.startswith(HOLIDAYS_PREFIX):
            import holidays
            country, subdiv = _holidays_country(holiday_source)
            self._public_holidays = holidays.country_holidays(country, subdiv=subdiv)   # years fill in on use

    def __repr__(self) -> str:
        hours = ",".join(f"{s:%H:%M}-{e:%H:%M}" for s, e in self.office_hours)
        return f"WorkCalendar({hours}, tz={self.tz_name!r}, holidays={self.holiday_source!r})"

    # ---------------------------------------------------------------- days

    @property
    def hours_per_day(self) -> float:
        secs = sum(
            (datetime.combine(date.min, e) - datetime.combine(date.min, s)).total_seconds()
            for s, e in self.office_hours
        )
        return secs / 3600.0

    def is_workday(self, d: date) -> bool:
        if isinstance(d, datetime):
            d = d.date()
        cached = self._workday_cache.get(d)
        if cached is not None:
            return cached
        if d in self.overrides:
            result = bool(self.overrides[d])
        elif self.holiday_source == "chinese-calendar" and d.year not in self._unknown_years:
            try:
                import chinese_calendar
                result = bool(chinese_calendar.is_workday(d))
            except NotImplementedError:  # a year the package has no data for
                self._unknown_years.add(d.year)
                result = d.weekday() < 5
        elif self._public_holidays is not None:
            result = d.weekday() < 5 and d not in self._public_holidays
        else:
            result = d.weekday() < 5
        self._workday_cache[d] = result
        return result

    def knows_holidays(self, year: int) -> bool:
        """False when holidays for ``year`` fall back to Mon–Fri (no data)."""
        if self._public_holidays is not None:
            return True
        if self.holiday_source != "chinese-calendar":
            return False
        if year in self._unknown_years:
            return False
        import chinese_calendar
        try:
            chinese_calendar.is_workday(date(year, 7, 1))
        except NotImplementedError:
            self._unknown_years.add(year)
            return False
        return True

    def _periods(self, d: date) -> tuple[tuple[datetime, datetime], ...]:
        """The office periods of local day ``d`` as UTC intervals (empty on a day off)."""
        got = self._period_cache.get(d)
        if got is None:
            if self.is_workday(d):
                got = tuple(
                    (datetime.combine(d, s, tzinfo=self.tz).astimezone(UTC),
                     datetime.combine(d, e, tzinfo=self.tz).astimezone(UTC))
                    for s, e in self.office_hours
                )
            else:
                got = ()
            self._period_cache[d] = got
        return got

    def _local_date(self, utc_dt: datetime) -> date:
        return utc_dt.astimezone(self.tz).date()

    # ---------------------------------------------------------------- arithmetic

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The earliest instant at which ``hours`` of office time have passed since ``start``."""
        if hours < 0:
            raise ValueError("hours must not be negative")
        cursor = to_utc(start)
        remaining = timedelta(hours=hours)
        if remaining <= timedelta(0):
            return cursor
        day = self._local_date(cursor)
        for _ in range(_MAX_SCAN_DAYS):
            for ps, pe in self._periods(day):
                if pe <= cursor:
                    continue
                begin = ps if ps > cursor else cursor
                avail = pe - begin
                if remaining <= avail:
                    return begin + remaining
                remaining -= avail
            day += timedelta(days=1)
        raise ValueError(f"{self!r} has no office time within {_MAX_SCAN_DAYS} days")

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        a, b = to_utc(a), to_utc(b)
        total = timedelta(0)
        if b <= a:
            return total
        day, last = self._local_date(a), self._local_date(b)
        while day <= last:
            for ps, pe in self._periods(day):
                lo = ps if ps > a else a
                hi = pe if pe < b else b
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def working_hours_between(self, a: datetime, b: datetime) -> float:
        """Office hours between ``a`` and ``b`` (0 when ``b <= a``)."""
        return self.working_time_between(a, b).total_seconds() / 3600.0

    def working_hours_between_many(self, starts, ends):
        """:meth:`working_hours_between` for arrays of aware instants (pandas Series or
        DatetimeIndex, same length), vectorised: with W(t) the office seconds from the first
        office period to ``t``, the answer is (W(b) − W(a)) / 3600, clipped at 0. Returns a float
        numpy array."""
        import numpy as np
        import pandas as pd
        a = pd.DatetimeIndex(pd.to_datetime(starts, utc=True))
        b = pd.DatetimeIndex(pd.to_datetime(ends, utc=True))
        out = np.zeros(len(a), dtype=float)
        ok = ~(a.isna() | b.isna())
        if not ok.any():
            return out
        lo = min(a[ok].min(), b[ok].min()).astimezone(self.tz).date() - timedelta(days=1)
        hi = max(a[ok].max(), b[ok].max()).astimezone(self.tz).date() + timedelta(days=1)
        begins, ends_ = [], []
        day = lo
        while day <= hi:
            for ps, pe in self._periods(day):
                begins.append(ps)
                ends_.append(pe)
            day += timedelta(days=1)
        if not begins:
            return out
        ps = pd.DatetimeIndex(begins).as_unit("us").asi8.astype(np.int64)
        pe = pd.DatetimeIndex(ends_).as_unit("us").asi8.astype(np.int64)
        before = np.concatenate(([0], np.cumsum(pe - ps)[:-1]))     # office µs before each period

        def w(t: pd.DatetimeIndex) -> np.ndarray:
            x = t.as_unit("us").asi8.astype(np.int64)
            k = np.searchsorted(ps, x, side="right") - 1               # the last period begun by t
            inside = np.clip(x - ps[np.maximum(k, 0)], 0, (pe - ps)[np.maximum(k, 0)])
            return np.where(k >= 0, before[np.maximum(k, 0)] + inside, 0)
        diff = (w(b[ok]) - w(a[ok])) / 3.6e9
        out[ok] = np.maximum(diff, 0.0)
        return out


# --------------------------------------------------------------------------- deadlines


def _is_natural(time_unit: TimeUnit | str) -> bool:
    return TimeUnit(time_unit) is TimeUnit.NATURAL_HOURS


def allowed_hours(time_limit: float, time_unit: TimeUnit | str, calendar: WorkCalendar, *,
                  priority_factor: float = 1.0, extension_hours: float = 0.0) -> float:
    """The counted hours a case is allowed: limit × factor (+ extension)."""
    unit = TimeUnit(time_unit)
    base = float(time_limit) * (calendar.hours_per_day if unit is TimeUnit.WORK_DAYS else 1.0)
    total = base * float(priority_factor) + float(extension_hours)
    if total < 0:
        raise ValueError("allowed time must not be negative")
    return total


def _merge_spans(spans: Iterable[Span], floor: datetime,
                 now: datetime | None) -> list[tuple[datetime, datetime]]:
    """Suspended spans clipped to start at ``floor``, sorted and merged; open spans end at now."""
    out: list[tuple[datetime, datetime]] = []
    for s, e in spans:
        if e is None:
            if now is None:
                raise ValueError("an open suspended span (end None) needs 'now'")
            e = now
        s, e = max(to_utc(s), floor), to_utc(e)
        if e > s:
            out.append((s, e))
    out.sort()
    merged: list[tuple[datetime, datetime]] = []
    for s, e in out:
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def deadline_for(dispatched_at: datetime, time_limit: float, time_unit: TimeUnit | str,
                 calendar: WorkCalendar, *, priority_factor: float = 1.0,
                 extension_hours: float = 0.0, suspended_spans: Iterable[Span] = (),
                 now: datetime | None = None) -> datetime:
    """The deadline in force (aware UTC).

    Working units count office time of ``calendar``; ``natural_hours`` counts wall-clock
    time. ``extension_hours`` are in the same kind of time. Time inside ``suspended_spans``
    does not count, so the deadline moves later by the counted time inside them (a span
    that starts after the deadline was already reached does not move it). A span with
    ``end=None`` (still suspended) ends at ``now``.
    """
    start = to_utc(dispatched_at)
    natural = _is_natural(time_unit)
    remaining = timedelta(hours=allowed_hours(time_limit, time_unit, calendar,
                                              priority_factor=priority_factor,
                                              extension_hours=extension_hours))
    now_utc = to_utc(now) if now is not None else None

    def measure(a: datetime, b: datetime) -> timedelta:
        return (b - a if b > a else timedelta(0)) if natural else calendar.working_time_between(a, b)

    def add(a: datetime, d: timedelta) -> datetime:
        return a + d if natural else calendar.add_working_hours(a, d.total_seconds() / 3600.0)

    cursor = start
    for s, e in _merge_spans(suspended_spans, start, now_utc):
        avail = measure(cursor, s)
        if remaining <= avail:
            break
        remaining -= avail
        cursor = max(cursor, e)
    return add(cursor, remaining)


def counted_time(dispatched_at: datetime, now: datetime, time_unit: TimeUnit | str,
                 calendar: WorkCalendar, *, suspended_spans: Iterable[Span] = ()) -> timedelta:
    """Time on the clock since dispatch: office (or natural) time minus suspended spans."""
    start, end = to_utc(dispatched_at), to_utc(now)
    if end <= start:
        return timedelta(0)
    natural = _is_natural(time_unit)

    def measure(a: datetime, b: datetime) -> timedelta:
        return (b - a if b > a else timedelta(0)) if natural else calendar.working_time_between(a, b)

    total = measure(start, end)
    for s, e in _merge_spans(suspended_spans, start, end):
        total -= measure(s, min(e, end))
    return max(total, timedelta(0))


def _micros(td: timedelta) -> int:
    return (td.days * 86400 + td.seconds) * 1_000_000 + td.microseconds


def elapsed_fraction(dispatched_at: datetime, now: datetime, time_limit: float,
                     time_unit: TimeUnit | str, calendar: WorkCalendar, *,
                     priority_factor: float = 1.0, extension_hours: float = 0.0,
                     suspended_spans: Iterable[Span] = ()) -> float:
    """Counted time since dispatch ÷ allowed time (limit × factor + extension)."""
    used = _micros(counted_time(dispatched_at, now, time_unit, calendar,
                                suspended_spans=suspended_spans))
    allowed = _micros(timedelta(hours=allowed_hours(time_limit, time_unit, calendar,
                                                    priority_factor=priority_factor,
                                                    extension_hours=extension_hours)))
    if allowed <= 0:
        return math.inf if used > 0 else 0.0
    return used / allowed


def light_for_fraction(fraction: float) -> Light:
    if fraction <= GREEN_MAX:
        return Light.GREEN
    if fraction <= YELLOW_MAX:
        return Light.YELLOW
    return Light.RED


def traffic_light(dispatched_at: datetime, now: datetime, time_limit: float,
                  time_unit: TimeUnit | str, calendar: WorkCalendar, *,
                  priority_factor: float = 1.0, extension_hours: float = 0.0,
                  suspended_spans: Iterable[Span] = ()) -> Light:
    return light_for_fraction(elapsed_fraction(
        dispatched_at, now, time_limit, time_unit, calendar, priority_factor=priority_factor,
        extension_hours=extension_hours, suspended_spans=suspended_spans))


def sign_for_deadline(dispatched_at: datetime, hours: float, calendar: WorkCalendar) -> datetime:
    """签收时限: ``hours`` of office time after a dispatch (a dispatch outside office hours starts
    counting at the next office period; holidays and weekends do not count, 调休 days do)."""
    return calendar.add_working_hours(dispatched_at, hours)


def sign_for_light(dispatched_at: datetime, sign_due: datetime, now: datetime,
                   calendar: WorkCalendar) -> Light:
    """The 签收 light of a case not yet signed for: office time since the dispatch ÷ the sign-for
    time, with the thresholds of the 处置 light (≤ 80 % green, ≤ 100 % yellow, then red)."""
    allowed = calendar.working_hours_between(dispatched_at, sign_due)
    if to_utc(now) > to_utc(sign_due):
        return Light.RED
    if allowed <= 0:
        return Light.GREEN
    return light_for_fraction(calendar.working_hours_between(dispatched_at, now) / allowed)


def assist_light(dispatched_at: datetime, sign_due: datetime, signed_at: datetime | None, reply_due: datetime,
                 replied_at: datetime | None, now: datetime, calendar: WorkCalendar) -> Light | None:
    """The light of an assisting department's part (协办): None once replied; before its sign-for the
    worse of the 签收 light and the reply light, after it the reply light (office time since the
    dispatch ÷ the time allowed until ``reply_due``, the thresholds of the 处置 light)."""
    if replied_at is not None:
        return None
    reply = sign_for_light(dispatched_at, reply_due, now, calendar)
    if signed_at is not None:
        return reply
    sign = sign_for_light(dispatched_at, sign_due, now, calendar)
    order = (Light.GREEN, Light.YELLOW, Light.RED)
    return max(sign, reply, key=order.index)
#: where the 处置 clock starts (a pack's ``[workflow] disposal_clock``): at the dispatch (the national
#: workflow, DESIGN §4) or at the department's 签收 (hotline practice: until it signs, only the
#: sign-for clock runs)
DISPOSAL_CLOCKS = ("dispatch", "sign")


def disposal_clock_start(rule: str, dispatched_at: datetime | None,
                         signed_at: datetime | None) -> datetime | None:
    """The instant the 处置 deadline counts from under ``rule`` (``DISPOSAL_CLOCKS``): the (latest)
    dispatch, or the department's sign-for of it; None while that has not happened (no deadline
    yet: the case shows its 签收 clock only)."""
    if rule not in DISPOSAL_CLOCKS:
        raise ValueError(f"disposal clock must be one of {DISPOSAL_CLOCKS}, not {rule!r}")
    if dispatched_at is None:
        return None
    return signed_at if rule == "sign" else dispatched_at


def remaining_working_hours(deadline: datetime, now: datetime, calendar: WorkCalendar, *,
                            time_unit: TimeUnit | str | None = None) -> float:
    """Office hours left until ``deadline`` (negative when overdue).

    Pass ``time_unit=TimeUnit.NATURAL_HOURS`` for emergency categories to get wall-clock hours.
    """
    d, n = to_utc(deadline), to_utc(now)
    if time_unit is not None and _is_natural(time_unit):
        hours = (d - n).total_seconds() / 3600.0
    elif n <= d:
        hours = calendar.working_hours_between(n, d)
    else:
        hours = -calendar.working_hours_between(d, n)
    return hours + 0.0  # no -0.0


def is_on_time(resolved_at: datetime | None, deadline: datetime) -> bool:
    """按期: resolved at or before the deadline in force (None: not resolved → False)."""
    if resolved_at is None:
        return False
    return to_utc(resolved_at) <= to_utc(deadline)


def working_duration_hours(start: datetime, end: datetime, calendar: WorkCalendar) -> float:
    """Office hours from ``start`` to ``end`` (KPIs: handling time in working hours)."""
    return calendar.working_hours_between(start, end)


__all__ = [
    "UTC", "HOLIDAY_SOURCES", "HOLIDAYS_PREFIX", "holiday_source_problem", "GREEN_MAX", "YELLOW_MAX", "WorkCalendar", "to_utc",
    "allowed_hours", "deadline_for", "counted_time", "elapsed_fraction", "light_for_fraction",
    "traffic_light", "DISPOSAL_CLOCKS", "disposal_clock_start", "sign_for_deadline", "sign_for_light", "assist_light",
    "remaining_working_hours", "is_on_time", "working_duration_hours",
]
