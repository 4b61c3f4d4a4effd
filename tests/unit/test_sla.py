"""Working calendar, deadlines and the traffic light (DESIGN §4). Pure, no DB.

Office hours 08:30–12:00 and 13:30–17:30 (7.5 h a day), Asia/Shanghai (UTC+8, no DST).

The real 2026 schedule, as chinesecalendar 1.11.0 reports it (checked with
``chinese_calendar.is_workday`` / ``get_holiday_detail``; the first test pins it):

- 春节 Spring Festival: off Sun 02-15 … Mon 02-23 (9 days); 调休 working Sat 02-14 and Sat 02-28.
- 中秋 Mid-autumn: off Fri 09-25 … Sun 09-27 (Fri 09-25 is a holiday, not a working day).
- 国庆 National Day: off Thu 10-01 … Wed 10-07; 调休 working Sun 09-20 and Sat 10-10
  (Sun 10-11 is off as usual).
- 元旦: off Thu 01-01 … Sat 01-03; 调休 working Sun 01-04.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from incidents.model import Light, TimeUnit
from incidents.sla import (
    WorkCalendar,
    allowed_hours,
    deadline_for,
    elapsed_fraction,
    is_on_time,
    light_for_fraction,
    remaining_working_hours,
    traffic_light,
    working_duration_hours,
)

SH = ZoneInfo("Asia/Shanghai")
UTC = timezone.utc
OFFICE = [(time(8, 30), time(12, 0)), (time(13, 30), time(17, 30))]
WH, WD, NH = TimeUnit.WORK_HOURS, TimeUnit.WORK_DAYS, TimeUnit.NATURAL_HOURS


def L(y, m, d, hh=0, mm=0, ss=0) -> datetime:
    """A local (Asia/Shanghai) wall-clock time."""
    return datetime(y, m, d, hh, mm, ss, tzinfo=SH)


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar(OFFICE, "Asia/Shanghai")


def assert_utc_equal(got: datetime, want: datetime) -> None:
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0), got
    assert got == want, f"{got.astimezone(SH)} != {want.astimezone(SH)}"


# --------------------------------------------------------------------------- the calendar


def test_real_2026_schedule_is_what_these_tests_assume():
    import chinese_calendar as cc

    off = [date(2026, 2, d) for d in range(15, 24)] + [date(2026, 9, 25)] + \
        [date(2026, 10, d) for d in range(1, 8)] + [date(2026, 10, 11)]
    on = [date(2026, 2, 14), date(2026, 2, 28), date(2026, 9, 20), date(2026, 10, 10),
          date(2026, 1, 4), date(2026, 2, 13), date(2026, 2, 24), date(2026, 9, 24),
          date(2026, 9, 28), date(2026, 10, 8), date(2026, 10, 9)]
    assert not any(cc.is_workday(d) for d in off)
    assert all(cc.is_workday(d) for d in on)
    assert cc.get_holiday_detail(date(2026, 2, 14)) == (False, "Spring Festival")  # 调休 Sat
    assert cc.get_holiday_detail(date(2026, 10, 10)) == (False, "National Day")    # 调休 Sat
    assert cc.get_holiday_detail(date(2026, 9, 20)) == (False, "National Day")     # 调休 Sun


def test_hours_per_day(cal):
    assert cal.hours_per_day == 7.5
    assert WorkCalendar(["09:00-17:00"], "UTC", "none").hours_per_day == 8.0


def test_is_workday_follows_chinese_calendar(cal):
    assert cal.is_workday(date(2026, 2, 14))        # Sat, 调休 working
    assert not cal.is_workday(date(2026, 2, 16))    # Mon, 春节
    assert cal.is_workday(date(2026, 2, 28))        # Sat, 调休 working
    assert not cal.is_workday(date(2026, 9, 25))    # Fri, 中秋
    assert cal.is_workday(date(2026, 9, 20))        # Sun, 调休 working
    assert not cal.is_workday(date(2026, 10, 5))    # Mon, 国庆
    assert cal.is_workday(date(2026, 10, 10))       # Sat, 调休 working
    assert not cal.is_workday(date(2026, 10, 11))   # Sun
    assert cal.is_workday(date(2026, 3, 2))         # ordinary Mon
    assert not cal.is_workday(date(2026, 3, 7))     # ordinary Sat


def test_holiday_source_none_is_monday_to_friday():
    plain = WorkCalendar(OFFICE, "Asia/Shanghai", holiday_source="none")
    assert plain.is_workday(date(2026, 2, 16))      # Mon (a holiday in China)
    assert not plain.is_workday(date(2026, 2, 14))  # Sat (调休 in China)


def test_overrides_win():
    c = WorkCalendar(OFFICE, "Asia/Shanghai",
                     overrides={date(2026, 2, 16): True, date(2026, 3, 2): False})
    assert c.is_workday(date(2026, 2, 16))
    assert not c.is_workday(date(2026, 3, 2))
    assert c.is_workday(date(2026, 3, 3))


def test_unknown_year_falls_back_to_monday_to_friday(cal):
    # chinesecalendar covers 2004..2026 only; 2003 raises NotImplementedError inside it.
    assert cal.is_workday(date(2003, 10, 1))        # Wed, National Day in reality
    assert cal.is_workday(date(2003, 1, 1))         # Wed, New Year in reality
    assert not cal.is_workday(date(2003, 10, 4))    # Sat
    assert not cal.knows_holidays(2003)
    assert cal.knows_holidays(2026)
    # arithmetic works there too: Fri 2003-10-03 17:00 + 1 h → Mon 2003-10-06 09:00
    assert_utc_equal(cal.add_working_hours(L(2003, 10, 3, 17), 1), L(2003, 10, 6, 9))


def test_bad_calendars_are_rejected():
    with pytest.raises(ValueError):
        WorkCalendar([(time(8), time(12)), (time(11), time(14))], "UTC")
    with pytest.raises(ValueError):
        WorkCalendar([(time(12), time(8))], "UTC")
    with pytest.raises(ValueError):
        WorkCalendar([], "UTC")
    with pytest.raises(ValueError):
        WorkCalendar(OFFICE, "UTC", holiday_source="hand-typed")


# --------------------------------------------------------------------------- add_working_hours


@pytest.mark.parametrize(("start", "hours", "want"), [
    # lunch: Mon 03-02 11:00 + 2 h = 11:00–12:00 (1) + 13:30–14:30 (1)
    (L(2026, 3, 2, 11), 2, L(2026, 3, 2, 14, 30)),
    # starting in the lunch break waits for 13:30: 12:30 + 2 h → 15:30
    (L(2026, 3, 2, 12, 30), 2, L(2026, 3, 2, 15, 30)),
    # exactly at 12:00 + 0.5 h → 14:00
    (L(2026, 3, 2, 12), 0.5, L(2026, 3, 2, 14)),
    # a full day from 08:30 ends 17:30 the same day (earliest instant, not next morning)
    (L(2026, 3, 2, 8, 30), 7.5, L(2026, 3, 2, 17, 30)),
    # night: Tue 20:00 + 1 h → Wed 09:30; early morning 07:00 + 1 h → 09:30
    (L(2026, 3, 3, 20), 1, L(2026, 3, 4, 9, 30)),
    (L(2026, 3, 4, 7), 1, L(2026, 3, 4, 9, 30)),
    # weekend: Fri 03-06 17:00 + 1 h = 0.5 Fri + 0.5 Mon 03-09 → 09:00
    (L(2026, 3, 6, 17), 1, L(2026, 3, 9, 9)),
    # exact to the second: 08:30 + 1807 s → 09:00:07
    (L(2026, 3, 2, 8, 30), 1807 / 3600, L(2026, 3, 2, 9, 0, 7)),
    # 春节: Fri 02-13 16:00 + 8 h: Fri 16:00–17:30 1.5; Sat 02-14 is 调休 working:
    #   08:30–12:00 3.5 (5.0), 13:30 + 3.0 → Sat 02-14 16:30
    (L(2026, 2, 13, 16), 8, L(2026, 2, 14, 16, 30)),
    # Fri 02-13 16:00 + 16 h: 1.5 Fri + 7.5 Sat 02-14 (9.0); 02-15 … 02-23 off;
    #   Tue 02-24: 3.5 morning (12.5) + 3.5 afternoon → 17:00
    (L(2026, 2, 13, 16), 16, L(2026, 2, 24, 17)),
    # 中秋: Thu 09-24 16:00 + 8 h: Thu 1.5; Fri 09-25 中秋 off, Sat/Sun off;
    #   Mon 09-28: 3.5 morning (5.0) + 3.0 → 16:30
    (L(2026, 9, 24, 16), 8, L(2026, 9, 28, 16, 30)),
    # 国庆 调休 Sat 10-10: Fri 10-09 16:00 + 4 h: Fri 1.5; Sat 10-10 08:30 + 2.5 → 11:00
    (L(2026, 10, 9, 16), 4, L(2026, 10, 10, 11)),
    # 国庆 调休 Sun 09-20: start on Sat 09-19 (off) 10:00 + 1 h → Sun 09-20 09:30
    (L(2026, 9, 19, 10), 1, L(2026, 9, 20, 9, 30)),
    # 元旦: Wed 12-31-2025 17:00 + 1 h: 0.5 Wed; 01-01..01-03 off; Sun 01-04 调休 → 09:00
    (L(2025, 12, 31, 17), 1, L(2026, 1, 4, 9)),
    # zero hours: the start itself
    (L(2026, 3, 7, 3), 0, L(2026, 3, 7, 3)),
])
def test_add_working_hours(cal, start, hours, want):
    assert_utc_equal(cal.add_working_hours(start, hours), want)


def test_add_ten_working_days_across_spring_festival(cal):
    # Fri 02-13 16:00 + 75 h (10 × 7.5): Fri 1.5, Sat 02-14 7.5 (9.0), Tue 02-24 … Fri 02-27
    # 4 × 7.5 (39.0), Sat 02-28 调休 7.5 (46.5), Mon 03-02 … Wed 03-04 22.5 (69.0),
    # Thu 03-05: 3.5 morning (72.5) + 2.5 → 16:00. The 10 working days after Fri 02-13 are
    # 02-14, 24, 25, 26, 27, 28, 03-02, 03, 04, 05 — 16:00 on the 10th.
    start = L(2026, 2, 13, 16)
    assert_utc_equal(cal.add_working_hours(start, 75), L(2026, 3, 5, 16))


def test_inputs_in_any_zone_and_naive_as_utc(cal):
    want = L(2026, 3, 2, 14, 30)
    assert_utc_equal(cal.add_working_hours(datetime(2026, 3, 2, 3, 0), 2), want)  # naive UTC
    assert_utc_equal(cal.add_working_hours(datetime(2026, 3, 2, 3, 0, tzinfo=UTC), 2), want)
    ny = datetime(2026, 3, 1, 22, 0, tzinfo=ZoneInfo("America/New_York"))  # = 03:00Z Mon
    assert_utc_equal(cal.add_working_hours(ny, 2), want)


def test_negative_hours_rejected(cal):
    with pytest.raises(ValueError):
        cal.add_working_hours(L(2026, 3, 2, 9), -1)


# --------------------------------------------------------------------------- between


@pytest.mark.parametrize(("a", "b", "want"), [
    (L(2026, 3, 2, 11), L(2026, 3, 2, 14, 30), 2.0),           # lunch skipped
    (L(2026, 3, 2, 12, 10), L(2026, 3, 2, 13, 20), 0.0),       # inside lunch
    (L(2026, 3, 6, 17), L(2026, 3, 9, 9), 1.0),                # weekend
    (L(2026, 3, 2, 0), L(2026, 3, 3, 0), 7.5),                 # a whole day
    (L(2026, 3, 2, 9), L(2026, 3, 2, 8), 0.0),                 # b <= a
    (L(2026, 3, 2, 9), L(2026, 3, 2, 9), 0.0),
    # 春节: Fri 02-13 12:00 → Tue 02-24 09:00: Fri 13:30–17:30 4, Sat 02-14 (调休) 7.5,
    #   Tue 08:30–09:00 0.5 → 12.0
    (L(2026, 2, 13, 12), L(2026, 2, 24, 9), 12.0),
    # 国庆: Wed 09-30 09:00 → Fri 10-09 09:00: Wed 3 + 4, Thu 10-08 7.5, Fri 0.5 → 15.0
    (L(2026, 9, 30, 9), L(2026, 10, 9, 9), 15.0),
    # whole 国庆 fortnight Mon 09-28 00:00 → Mon 10-12 00:00: 09-28, 29, 30, 10-08, 09,
    #   10 (调休 Sat) = 6 working days → 45.0
    (L(2026, 9, 28), L(2026, 10, 12), 45.0),
])
def test_working_hours_between(cal, a, b, want):
    assert cal.working_hours_between(a, b) == pytest.approx(want, abs=1e-9)
    assert working_duration_hours(a, b, cal) == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize("start", [L(2026, 2, 13, 16), L(2026, 9, 30, 12, 45),
                                   L(2026, 10, 3, 2), L(2026, 3, 2, 17, 29, 59)])
@pytest.mark.parametrize("hours", [0.25, 1, 3.5, 7.5, 13.37, 40])
def test_round_trip(cal, start, hours):
    end = cal.add_working_hours(start, hours)
    assert cal.working_hours_between(start, end) == pytest.approx(hours, abs=1e-6)


# --------------------------------------------------------------------------- deadline_for


def test_deadline_work_hours_across_spring_festival(cal):
    d = deadline_for(L(2026, 2, 13, 16), 8, WH, cal)
    assert_utc_equal(d, L(2026, 2, 14, 16, 30))


def test_deadline_work_days(cal):
    # 1 working day from Mon 03-02 10:00 → 10:00 Tue 03-03 (10–12 2, 13:30–17:30 4, +1.5)
    assert_utc_equal(deadline_for(L(2026, 3, 2, 10), 1, WD, cal), L(2026, 3, 3, 10))
    # 1 working day from Thu 09-24 10:00: Thu 6 h; Fri 09-25 中秋 off; Mon 09-28 +1.5 → 10:00
    assert_utc_equal(deadline_for(L(2026, 9, 24, 10), 1, WD, cal), L(2026, 9, 28, 10))
    # 2 working days (15 h) from Wed 09-30 15:00: Wed 2.5; 10-01..07 off; Thu 10-08 7.5 (10.0);
    #   Fri 10-09 3.5 morning (13.5) + 1.5 → 15:00 Fri 10-09
    assert_utc_equal(deadline_for(L(2026, 9, 30, 15), 2, WD, cal), L(2026, 10, 9, 15))
    # 3 working days (22.5 h) from Thu 02-12 10:00: Thu 6, Fri 02-13 7.5, Sat 02-14 (调休) 7.5
    #   (21.0), 02-15..23 off, Tue 02-24 + 1.5 → 10:00
    assert_utc_equal(deadline_for(L(2026, 2, 12, 10), 3, WD, cal), L(2026, 2, 24, 10))


def test_deadline_natural_hours_ignore_the_calendar(cal):
    # emergency, 2 natural hours, dispatched Sat 10-03 23:00 (国庆 night) → Sun 10-04 01:00
    assert_utc_equal(deadline_for(L(2026, 10, 3, 23), 2, NH, cal), L(2026, 10, 4, 1))
    # 4 h × priority 0.5 = 2 h, + 1 natural hour extension → 02:00
    assert_utc_equal(
        deadline_for(L(2026, 10, 3, 23), 4, NH, cal, priority_factor=0.5, extension_hours=1),
        L(2026, 10, 4, 2))
    # natural suspension: 4 h from 10:00, suspended 11:00–12:30 (1.5 h) → 15:30
    assert_utc_equal(
        deadline_for(L(2026, 3, 7, 10), 4, "natural_hours", cal,
                     suspended_spans=[(L(2026, 3, 7, 11), L(2026, 3, 7, 12, 30))]),
        L(2026, 3, 7, 15, 30))


def test_deadline_priority_factor(cal):
    # 8 work hours × 0.5 = 4 from Mon 03-02 10:00: 10–12 (2) + 13:30–15:30 → 15:30
    assert_utc_equal(deadline_for(L(2026, 3, 2, 10), 8, WH, cal, priority_factor=0.5),
                     L(2026, 3, 2, 15, 30))
    # 1 working day × 0.5 = 3.75 h from 08:30 → 12:00 + 0.25 → 13:45
    assert_utc_equal(deadline_for(L(2026, 3, 2, 8, 30), 1, WD, cal, priority_factor=0.5),
                     L(2026, 3, 2, 13, 45))


def test_deadline_extension(cal):
    # 4 + 2 extension = 6 working hours from Mon 03-02 16:00: Mon 1.5; Tue 3.5 (5.0) + 1.0 → 14:30
    assert_utc_equal(deadline_for(L(2026, 3, 2, 16), 4, WH, cal, extension_hours=2),
                     L(2026, 3, 3, 14, 30))
    # extension across National Day: 8 h + 7.5 h from Wed 09-30 09:00:
    #   Wed 7 (3 + 4), 10-01..07 off, Thu 10-08 7.5 (14.5), Fri 10-09 + 1.0 → 09:30
    assert_utc_equal(deadline_for(L(2026, 9, 30, 9), 8, WH, cal, extension_hours=7.5),
                     L(2026, 10, 9, 9, 30))


def test_suspension_spanning_a_night_counts_only_its_working_hours(cal):
    # 8 working hours from Mon 03-02 09:00: without suspension Mon 3 + 4 = 7, Tue + 1 → 09:30.
    assert_utc_equal(deadline_for(L(2026, 3, 2, 9), 8, WH, cal), L(2026, 3, 3, 9, 30))
    # suspended Mon 16:00 → Tue 10:00: 18 natural hours but only Mon 16:00–17:30 1.5 +
    # Tue 08:30–10:00 1.5 = 3 working hours. Deadline moves 3 working hours later:
    # Tue 09:30 + 3 = 09:30–12:00 2.5 + 13:30–14:00 0.5 → Tue 14:00.
    span = (L(2026, 3, 2, 16), L(2026, 3, 3, 10))
    assert_utc_equal(deadline_for(L(2026, 3, 2, 9), 8, WH, cal, suspended_spans=[span]),
                     L(2026, 3, 3, 14))
    # same span given twice / overlapping pieces / a piece before dispatch change nothing
    pieces = [span, (L(2026, 3, 2, 16), L(2026, 3, 2, 20)), (L(2026, 3, 1), L(2026, 3, 2, 9))]
    assert_utc_equal(deadline_for(L(2026, 3, 2, 9), 8, WH, cal, suspended_spans=pieces),
                     L(2026, 3, 3, 14))


def test_suspension_over_spring_festival(cal):
    # 2 working days (15 h) from Thu 02-12 09:00, suspended Fri 02-13 14:00 → Tue 02-24 09:00:
    # counted before: Thu 09:00–12:00 3 + 13:30–17:30 4 = 7, Fri 08:30–12:00 3.5 +
    # 13:30–14:00 0.5 = 4 → 11; the span swallows Fri 14:00–17:30, Sat 02-14 (调休) and
    # Tue 08:30–09:00; remaining 4 from Tue 09:00: 09:00–12:00 3 + 13:30–14:30 1
    # → Tue 02-24 14:30. (Without the suspension: 11 + Fri 3.5 + Sat 02-14 0.5 → Sat 09:00.)
    d = deadline_for(L(2026, 2, 12, 9), 2, WD, cal,
                     suspended_spans=[(L(2026, 2, 13, 14), L(2026, 2, 24, 9))])
    assert_utc_equal(d, L(2026, 2, 24, 14, 30))
    assert_utc_equal(deadline_for(L(2026, 2, 12, 9), 2, WD, cal), L(2026, 2, 14, 9))


def test_suspension_after_the_deadline_does_not_move_it(cal):
    # 4 working hours from Mon 03-02 09:00 → 14:30 (9–12 3 + 13:30–14:30). A suspension
    # from 16:00 (already overdue) does not give the time back.
    span = (L(2026, 3, 2, 16), L(2026, 3, 3, 10))
    assert_utc_equal(deadline_for(L(2026, 3, 2, 9), 4, WH, cal, suspended_spans=[span]),
                     L(2026, 3, 2, 14, 30))


def test_open_suspension_needs_now(cal):
    span = (L(2026, 3, 2, 10), None)
    with pytest.raises(ValueError):
        deadline_for(L(2026, 3, 2, 9), 4, WH, cal, suspended_spans=[span])
    # 4 h from 09:00, suspended since 10:00, now Tue 09:00: counted 1 h; the rest (3 h)
    # from Tue 09:00 → 12:00 Tue
    d = deadline_for(L(2026, 3, 2, 9), 4, WH, cal, suspended_spans=[span], now=L(2026, 3, 3, 9))
    assert_utc_equal(d, L(2026, 3, 3, 12))


def test_allowed_hours(cal):
    assert allowed_hours(2, WD, cal) == 15.0
    assert allowed_hours(8, WH, cal, priority_factor=0.5, extension_hours=1) == 5.0
    assert allowed_hours(24, NH, cal) == 24.0


# --------------------------------------------------------------------------- traffic light


@pytest.mark.parametrize(("f", "light"), [
    (0.0, Light.GREEN), (0.5, Light.GREEN), (0.8, Light.GREEN), (0.8000001, Light.YELLOW),
    (0.95, Light.YELLOW), (1.0, Light.YELLOW), (1.0000001, Light.RED), (3.0, Light.RED),
    (float("inf"), Light.RED),
])
def test_light_for_fraction(f, light):
    assert light_for_fraction(f) is light


def test_thresholds_exactly_at_80_and_100_percent(cal):
    start = L(2026, 3, 2, 8, 30)  # Mon; 8 working hours allowed
    # 80 % = 6.4 h: 08:30–12:00 3.5, 13:30 + 2.9 h (2 h 54 min) → 16:24
    at80 = L(2026, 3, 2, 16, 24)
    assert elapsed_fraction(start, at80, 8, WH, cal) == 0.8
    assert traffic_light(start, at80, 8, WH, cal) is Light.GREEN
    assert traffic_light(start, at80 + timedelta(seconds=1), 8, WH, cal) is Light.YELLOW
    # overnight Mon 20:00: 7.5 / 8 = 0.9375 → yellow
    assert elapsed_fraction(start, L(2026, 3, 2, 20), 8, WH, cal) == 0.9375
    # 100 % = Tue 09:00 (the deadline): still yellow; one second later red
    at100 = L(2026, 3, 3, 9)
    assert_utc_equal(deadline_for(start, 8, WH, cal), at100)
    assert elapsed_fraction(start, at100, 8, WH, cal) == 1.0
    assert traffic_light(start, at100, 8, WH, cal) is Light.YELLOW
    assert traffic_light(start, at100 + timedelta(seconds=1), 8, WH, cal) is Light.RED
    # before dispatch: nothing elapsed
    assert elapsed_fraction(start, L(2026, 3, 1), 8, WH, cal) == 0.0


def test_light_in_working_days_and_across_holidays(cal):
    # 1 working day from Thu 09-24 10:00; at Thu 17:30 6/7.5 = 0.8 → green
    assert elapsed_fraction(L(2026, 9, 24, 10), L(2026, 9, 24, 17, 30), 1, WD, cal) == 0.8
    assert traffic_light(L(2026, 9, 24, 10), L(2026, 9, 27, 23), 1, WD, cal) is Light.GREEN
    # Mon 09-28 09:00: 6 + 0.5 = 6.5 / 7.5 → yellow; 10:00:01 → red
    assert traffic_light(L(2026, 9, 24, 10), L(2026, 9, 28, 9), 1, WD, cal) is Light.YELLOW
    assert traffic_light(L(2026, 9, 24, 10), L(2026, 9, 28, 10, 0, 1), 1, WD, cal) is Light.RED


def test_light_natural_hours_priority_extension(cal):
    # 2 natural hours from Sat 10-03 23:00: at 00:36 1.6 / 2 = 0.8 → green
    assert elapsed_fraction(L(2026, 10, 3, 23), L(2026, 10, 4, 0, 36), 2, NH, cal) == 0.8
    assert traffic_light(L(2026, 10, 3, 23), L(2026, 10, 4, 1, 0, 1), 2, NH, cal) is Light.RED
    # 8 h × 0.5 = 4 h allowed; from Mon 08:30 at 11:42 (3.2 h) → 0.8 green
    assert elapsed_fraction(L(2026, 3, 2, 8, 30), L(2026, 3, 2, 11, 42), 8, WH, cal,
                            priority_factor=0.5) == 0.8
    # Mon 15:30 is 3.5 + 2 = 5.5 h: of 4 h → red; with a 2 h extension, of 6 h → yellow
    assert traffic_light(L(2026, 3, 2, 8, 30), L(2026, 3, 2, 15, 30), 8, WH, cal,
                         priority_factor=0.5) is Light.RED
    assert traffic_light(L(2026, 3, 2, 8, 30), L(2026, 3, 2, 15, 30), 8, WH, cal,
                         priority_factor=0.5, extension_hours=2) is Light.YELLOW


def test_light_with_suspension(cal):
    start = L(2026, 3, 2, 9)  # 8 working hours
    span = (L(2026, 3, 2, 16), L(2026, 3, 3, 10))  # 3 working hours stopped
    # Tue 14:00 is the moved deadline: 3 + 4 + 1.5 + 2 + 0.5 = 11 working hours since
    # dispatch, minus 3 suspended = 8 → exactly 1.0
    assert elapsed_fraction(start, L(2026, 3, 3, 14), 8, WH, cal, suspended_spans=[span]) == 1.0
    # while still suspended (open span), the clock does not move: Mon 16:00 → 5.5 h,
    # at Tue 09:59 still 5.5 / 8
    assert elapsed_fraction(start, L(2026, 3, 3, 9, 59), 8, WH, cal,
                            suspended_spans=[(L(2026, 3, 2, 16), None)]) == 5.5 / 8


# --------------------------------------------------------------------------- remaining / on time


def test_remaining_working_hours(cal):
    deadline = L(2026, 3, 3, 9)  # Tue 09:00
    assert remaining_working_hours(deadline, L(2026, 3, 2, 16), cal) == 2.0  # 1.5 + 0.5
    assert remaining_working_hours(deadline, L(2026, 3, 3, 10), cal) == -1.0
    assert remaining_working_hours(deadline, deadline, cal) == 0.0
    # Fri 17:30 deadline, now Saturday: no working time has passed since → 0, not -0.0
    r = remaining_working_hours(L(2026, 3, 6, 17, 30), L(2026, 3, 7, 12), cal)
    assert r == 0.0 and str(r) == "0.0"
    # across 国庆: deadline Thu 10-08 10:00, now Wed 09-30 17:00 → 0.5 + 1.5 = 2.0
    assert remaining_working_hours(L(2026, 10, 8, 10), L(2026, 9, 30, 17), cal) == 2.0
    # natural hours for emergencies
    assert remaining_working_hours(L(2026, 10, 4, 1), L(2026, 10, 3, 23), cal,
                                   time_unit=NH) == 2.0


def test_is_on_time():
    deadline = L(2026, 3, 3, 9)
    assert is_on_time(deadline, deadline)
    assert is_on_time(deadline - timedelta(seconds=1), deadline)
    assert not is_on_time(deadline + timedelta(seconds=1), deadline)
    assert is_on_time(datetime(2026, 3, 3, 1, 0, tzinfo=UTC), deadline)   # same instant
    assert is_on_time(datetime(2026, 3, 3, 1, 0), deadline)               # naive = UTC
    assert not is_on_time(None, deadline)


def test_working_hours_between_many_equals_the_one_by_one_answer():
    """The vectorised office time agrees with the loop on random spans across a holiday, a 调休
    workday, lunch breaks and weekends (Hangzhou hours)."""
    import random
    import pandas as pd
    from datetime import datetime, timedelta, timezone
    cal = WorkCalendar(["08:30-12:00", "13:30-17:30"], "Asia/Shanghai")
    rng = random.Random(4)
    t0 = datetime(2026, 9, 20, tzinfo=timezone.utc)
    starts, ends = [], []
    for _ in range(400):
        a = t0 + timedelta(minutes=rng.randrange(0, 60 * 24 * 30))
        starts.append(a)
        ends.append(a + timedelta(minutes=rng.randrange(-600, 60 * 24 * 12)))
    got = cal.working_hours_between_many(pd.Series(starts), pd.Series(ends))
    want = [cal.working_hours_between(a, b) for a, b in zip(starts, ends)]
    assert got.tolist() == pytest.approx(want, abs=1e-9)
    assert any(w > 0 for w in want) and any(w == 0 for w in want)


# --------------------------------------------------------------------------- 签收 (sign-for) deadlines


@pytest.mark.parametrize(("dispatched", "hours", "due"), [
    # 春节 eve: Fri 02-13 16:30 + 2 h: Fri 16:30–17:30 1 h; Sat 02-14 is a 调休 working day → 09:30
    (L(2026, 2, 13, 16, 30), 2.0, L(2026, 2, 14, 9, 30)),
    # on the 调休 Saturday itself, late: 17:00–17:30 0.5 h; 02-15 … 02-23 off; Tue 02-24 08:30 + 1.5 h
    (L(2026, 2, 14, 17, 0), 2.0, L(2026, 2, 24, 10, 0)),
    # dispatched inside the holiday: nothing counts until Tue 02-24 08:30
    (L(2026, 2, 18, 11, 0), 2.0, L(2026, 2, 24, 10, 30)),
    # 国庆: Wed 09-30 17:00 + 2 h: 0.5 h; 10-01 … 10-07 off; Thu 10-08 08:30 + 1.5 h
    (L(2026, 9, 30, 17, 0), 2.0, L(2026, 10, 8, 10, 0)),
    # 国庆 调休 Sat 10-10: Fri 10-09 17:00 + 1 h: 0.5 h Fri; Sat 10-10 08:30 + 0.5 h
    (L(2026, 10, 9, 17, 0), 1.0, L(2026, 10, 10, 9, 0)),
    # across lunch: 11:30 + 1 h → 12:00 is 0.5 h, 13:30 + 0.5 h
    (L(2026, 3, 3, 11, 30), 1.0, L(2026, 3, 3, 14, 0)),
])
def test_sign_for_deadline_counts_working_time_over_holidays_and_tiaoxiu(cal, dispatched, hours, due):
    from incidents.sla import sign_for_deadline
    assert_utc_equal(sign_for_deadline(dispatched, hours, cal), due.astimezone(UTC))


def test_the_sign_for_light_counts_office_time_only(cal):
    from incidents.sla import sign_for_deadline, sign_for_light
    dispatched = L(2026, 2, 14, 17, 0)                       # 调休 Saturday, 30 min before closing
    due = sign_for_deadline(dispatched, 2.0, cal)             # Tue 02-24 10:00
    # a week of 春节 later only 0.5 of 2 office hours have passed: still green
    assert sign_for_light(dispatched, due, L(2026, 2, 22, 15, 0), cal) is Light.GREEN
    assert sign_for_light(dispatched, due, L(2026, 2, 24, 9, 30), cal) is Light.GREEN    # 1.5 of 2 h: 75 %
    assert sign_for_light(dispatched, due, L(2026, 2, 24, 9, 50), cal) is Light.YELLOW   # 1.83 of 2 h: 92 %
    assert sign_for_light(dispatched, due, L(2026, 2, 24, 10, 0), cal) is Light.YELLOW  # exactly due: 100 %
    assert sign_for_light(dispatched, due, L(2026, 2, 24, 10, 1), cal) is Light.RED
