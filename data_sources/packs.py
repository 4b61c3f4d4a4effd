"""City pack loader: a folder of data -> a validated, immutable :class:`Pack`.

A pack lives in ``data_sources/packs/<name>/`` (see DESIGN.md §7)::

    pack.toml         name, titles, timezone, crs, centre/zoom, office hours, KPI targets/weights,
                      priority factors, triage department, demo settings
    areas.geojson     districts and grids: properties code, name, level, parent_code
    departments.csv   code,name,name_en,level,district_code,parent_code
    categories.csv    code,kind,major_code,major_name,name,name_en,time_limit,time_unit,
                      dup_radius_m,dup_window_h,demo_weight,urgent
    routing.csv       id,category_code,area_code,department_code,note
    calendar.csv      optional: date,is_workday,note (overrides of the holiday source)
    service_items.csv optional: department,code,name,daily,online_bias (一网通办 items per department;
                      department ``*-SUFFIX`` = every district department ending in -SUFFIX)

Every coordinate of a pack (geometry, ``center``, ``demo.hotspots``) is in the pack's ``crs``
(WGS84, GCJ02 or BD09); the loader converts them to WGS84, the only CRS used inside CityOps.

Pure: no database, no network. Any problem raises :class:`PackError` naming the file, the row
and what is wrong. Nothing here knows about a particular city.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import shapely
from shapely.geometry import shape

from data_sources.coords import converter_to_wgs84, normalize_crs, transform_geometry
from incidents.sla import DISPOSAL_CLOCKS, HOLIDAY_SOURCES, holiday_source_problem
from incidents.model import DEFAULT_CITIZEN_CHANNELS, Channel
from incidents.repeats import DEFAULT_WEIGHTS as REPEAT_WEIGHTS, Reach, RepeatRules

__all__ = [
    "AREA_LEVELS",
    "CATEGORY_KINDS",
    "DEPARTMENT_LEVELS",
    "HOLIDAY_SOURCES",
    "PACKS_DIR",
    "TIME_UNITS",
    "Area",
    "Category",
    "Department",
    "Device",
    "IotSettings",
    "Pack",
    "PackError",
    "RoutingRule",
    "available_packs",
    "load_iot",
    "load_pack",
]

PACKS_DIR = Path(__file__).resolve().parent / "packs"

DEPARTMENT_LEVELS = ("city", "district", "street", "triage")
AREA_LEVELS = ("district", "grid")
CATEGORY_KINDS = ("component", "event")  # 部件 | 事件
TIME_UNITS = ("work_hours", "work_days", "natural_hours")
ANY_CATEGORY = "*"

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class PackError(ValueError):
    """A city pack is missing, malformed or inconsistent. The message says where and what."""


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    name_en: str
    level: str  # 'city' | 'district' | 'street' | 'triage'
    district_code: str | None
    parent_code: str | None


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    level: str  # 'district' | 'grid'
    parent_code: str | None
    geometry: Any  # shapely Polygon/MultiPolygon, WGS84


@dataclass(frozen=True)
class Category:
    code: str
    kind: str  # 'component' (部件) | 'event' (事件)
    major_code: str
    major_name: str
    name: str
    name_en: str
    time_limit: float
    time_unit: str  # 'work_hours' | 'work_days' | 'natural_hours'
    dup_radius_m: float
    dup_window_h: float
    demo_weight: float
    urgent: bool


@dataclass(frozen=True)
class RoutingRule:
    id: str
    category_code: str  # a small-class code, a major-class code or '*'
    area_code: str | None
    department_code: str
    note: str


@dataclass(frozen=True)
class ServiceItem:
    """A government-service item (事项) a department handles: ``department`` is a department code,
    or ``*-SUFFIX`` for every district department whose code ends in ``-SUFFIX``. ``daily`` is the
    usual number of cases on a working day; ``online_bias`` shifts the item's online rate."""

    department: str
    code: str
    name: str
    daily: float
    online_bias: float = 0.0


#: the 退单 reason codes a pack without ``[workflow.return_reasons]`` offers (code → label)
DEFAULT_RETURN_REASONS = {"territory": "属地不符", "ownership": "权属不清", "overlap": "职能交叉",
                          "not_ours": "非本部门职责", "incomplete": "信息不全", "other": "其他"}
#: 签收时限 (working hours from a dispatch to the department's sign-for) by priority, when a pack names none
DEFAULT_SIGN_FOR_HOURS = {"normal": 2.0, "urgent": 1.0, "emergency": 0.5}


@dataclass(frozen=True)
class Workflow:
    """The hotline rules of a pack's ``[workflow]`` (DESIGN §3): the 签收 clock, the 退单 reason codes
    and after how many returns the next dispatch is an arbitration, and where the 处置 clock starts
    (``disposal_clock``: ``"dispatch"``, DESIGN §4, or ``"sign"``, the department's 签收)."""

    sign_for_hours: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SIGN_FOR_HOURS))
    max_returns: int = 2
    return_reasons: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RETURN_REASONS))
    #: 协办回复时限: an assisting department's reply is due after this share (0 < share <= 1) of the
    #: case's 处置 limit, from the dispatch, on the category's clock
    assist_reply_share: float = 0.5
    disposal_clock: str = "dispatch"
    #: the channels whose cases a citizen raised: 回访 after closure, 先行联系率, 实际解决率, 回访率
    citizen_channels: tuple[str, ...] = DEFAULT_CITIZEN_CHANNELS


@dataclass(frozen=True)
class WallRules:
    """The operators' rules of a pack's ``[wall]``: an urgent alarm nobody acknowledges within
    ``escalate_after_minutes`` escalates to the duty leader (带班领导)."""

    escalate_after_minutes: int = 10


# eq=False: identity equality and hashing, so a Pack can key a cache (its dict fields are unhashable).
@dataclass(frozen=True, eq=False)
class Pack:
    name: str
    title: str
    title_en: str
    timezone: str
    crs: str  # the CRS the pack's files are written in; the loaded geometry is WGS84
    center: tuple[float, float]  # (lat, lon), WGS84
    zoom: float
    office_hours: list[tuple[dt.time, dt.time]]
    holiday_source: str
    calendar_overrides: dict[dt.date, bool]  # True = working day
    triage_department: str
    kpi_targets: dict[str, float]
    kpi_weights: dict[str, float]
    priority_factors: dict[str, float]
    demo: dict[str, Any]
    departments: tuple[Department, ...]
    areas: tuple[Area, ...]
    categories: tuple[Category, ...]
    routing_rules: tuple[RoutingRule, ...]
    path: Path
    service_items: tuple["ServiceItem", ...] = ()   # 一网通办 items per department (service_items.csv)
    workflow: Workflow = field(default_factory=Workflow)   # [workflow]: 签收, 退单, 审定
    wall: WallRules = field(default_factory=WallRules)     # [wall]: alarm escalation
    repeats: RepeatRules = field(default_factory=RepeatRules)   # [repeats]: 重复诉求

    # cached_property writes to the instance __dict__ directly, which a frozen dataclass allows.
    @cached_property
    def _departments_by_code(self) -> dict[str, Department]:
        return {d.code: d for d in self.departments}

    @cached_property
    def _categories_by_code(self) -> dict[str, Category]:
        return {c.code: c for c in self.categories}

    def districts(self) -> tuple[Area, ...]:
        return tuple(a for a in self.areas if a.level == "district")

    def grids(self) -> tuple[Area, ...]:
        return tuple(a for a in self.areas if a.level == "grid")

    def category(self, code: str) -> Category:
        """The small class with this code; KeyError if the pack has none."""
        try:
            return self._categories_by_code[code]
        except KeyError:
            raise KeyError(f"pack {self.name!r} has no category {code!r}") from None

    def department(self, code: str) -> Department:
        """The department with this code; KeyError if the pack has none."""
        try:
            return self._departments_by_code[code]
        except KeyError:
            raise KeyError(f"pack {self.name!r} has no department {code!r}") from None


# --------------------------------------------------------------------------- helpers


def available_packs() -> list[str]:
    """Names of the packs shipped in ``data_sources/packs/``."""
    if not PACKS_DIR.is_dir():
        return []
    return sorted(p.name for p in PACKS_DIR.iterdir() if (p / "pack.toml").is_file())


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if not text.strip():
        raise PackError("no pack given: expected a pack name or a path to a pack folder")
    if isinstance(name_or_path, Path) or "/" in text or "\\" in text or text.startswith("."):
        path = Path(text).expanduser()
        if not path.is_dir():
            raise PackError(f"pack folder {path} does not exist or is not a folder")
        return path.resolve()
    if not _NAME_RE.match(text):
        raise PackError(f"invalid pack name {text!r}: use letters, digits, '-' or '_'")
    path = PACKS_DIR / text
    if not path.is_dir():
        known = ", ".join(available_packs()) or "none"
        raise PackError(f"unknown pack {text!r}: no folder {path} (available: {known})")
    return path


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _read_csv(folder: Path, filename: str, columns: tuple[str, ...], *, required: bool = True) -> Iterator[tuple[int, dict]]:
    """Yield (line number, row) with stripped values; checks the header."""
    path = folder / filename
    if not path.is_file():
        if required:
            raise PackError(f"{filename}: missing from pack folder {folder}")
        return
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in columns if c not in header]
            if missing:
                raise PackError(
                    f"{filename}: header is missing column(s) {', '.join(missing)} "
                    f"(expected {','.join(columns)}; found {','.join(header) or 'no header'})"
                )
            reader.fieldnames = header
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise PackError(f"{filename} line {line}: more values than columns")
                if all(not (v or "").strip() for v in row.values()):
                    continue  # blank line
                yield line, {k: (v or "").strip() for k, v in row.items()}
    except UnicodeDecodeError as exc:
        raise PackError(f"{filename}: not valid UTF-8 ({exc})") from None
    except csv.Error as exc:
        raise PackError(f"{filename}: malformed CSV ({exc})") from None


def _once(where: str, lines: dict, key: Any, line: int, what: str) -> None:
    """Note that ``key`` stands on ``line``; PackError "``what`` (also line N)" when an earlier line has it."""
    if key in lines:
        raise PackError(f"{where}: {what} (also line {lines[key]})")
    lines[key] = line


def _keyed_rows(folder: Path, filename: str, columns: tuple[str, ...], lines: dict[str, int], what: str):
    """(line, where, key, row) for each row of a file whose first column is a key no two rows share
    (PackError "duplicate ``what`` KEY (also line N)"); ``lines`` gets each key's line."""
    for line, row in _read_csv(folder, filename, columns):
        where = f"{filename} line {line}"
        key = _need(where, row, columns[0])
        _once(where, lines, key, line, f"duplicate {what} {key}")
        yield line, where, key, row


def _need(where: str, row: dict, column: str) -> str:
    value = row.get(column, "")
    if not value:
        raise PackError(f"{where}: {column} is empty")
    return value


def _number(where: str, row: dict, column: str, *, positive: bool = False) -> float:
    raw = _need(where, row, column)
    try:
        value = float(raw)
    except ValueError:
        raise PackError(f"{where}: {column} {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "> 0" if positive else ">= 0"
        raise PackError(f"{where}: {column} {raw!r} must be a finite number {need}")
    return value


def _boolean(where: str, row: dict, column: str) -> bool:
    raw = _need(where, row, column).lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise PackError(f"{where}: {column} {row[column]!r} is not a boolean (true/false)")


def _choice(where: str, row: dict, column: str, choices: tuple[str, ...]) -> str:
    value = _need(where, row, column)
    if value not in choices:
        raise PackError(f"{where}: {column} {value!r} is not one of {', '.join(choices)}")
    return value


# --------------------------------------------------------------------------- pack.toml


def _read_toml(folder: Path) -> dict:
    path = folder / "pack.toml"
    if not path.is_file():
        raise PackError(f"pack.toml: missing from pack folder {folder}")
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise PackError(f"pack.toml: invalid TOML ({exc})") from None


def _toml_str(conf: dict, key: str, default: str | None = None) -> str:
    value = conf.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise PackError(f"pack.toml: {key} must be a non-empty string (got {value!r})")
    return value.strip()


def _toml_numbers(conf: dict, dotted: str) -> dict[str, float]:
    node: Any = conf
    for part in dotted.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        raise PackError(f"pack.toml: [{dotted}] must be a table")
    out = {}
    for key, value in node.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise PackError(f"pack.toml: [{dotted}] {key} must be a number >= 0 (got {value!r})")
        out[str(key)] = float(value)
    return out


def _workflow(conf: dict) -> Workflow:
    """``[workflow]``: ``sign_for_hours`` (a table priority = working hours), ``max_returns`` (an
    integer >= 1), ``return_reasons`` (a table code = label) and ``disposal_clock`` (where the 处置
    clock starts: ``"dispatch"`` or ``"sign"``); each missing one takes its default."""
    node = conf.get("workflow", {})
    if not isinstance(node, dict):
        raise PackError("pack.toml: [workflow] must be a table")
    sign = {**DEFAULT_SIGN_FOR_HOURS, **_toml_numbers(conf, "workflow.sign_for_hours")}
    for key, hours in sign.items():
        if hours <= 0:
            raise PackError(f"pack.toml: [workflow.sign_for_hours] {key} must be > 0 (got {hours:g})")
    unknown = sorted(set(node) - {"sign_for_hours", "max_returns", "return_reasons", "disposal_clock",
                                  "assist_reply_share", "citizen_channels"})
    if unknown:   # (a rule the code does not apply must not look as if it did)
        raise PackError(f"pack.toml: [workflow] has unknown setting(s) {', '.join(unknown)}")
    clock = node.get("disposal_clock", "dispatch")
    if clock not in DISPOSAL_CLOCKS:
        raise PackError(f"pack.toml: [workflow] disposal_clock must be one of "
                        f"{', '.join(repr(c) for c in DISPOSAL_CLOCKS)} (the 处置 clock starts at the dispatch or "
                        f"at the department's 签收), not {clock!r}")
    max_returns = node.get("max_returns", 2)
    if isinstance(max_returns, bool) or not isinstance(max_returns, int) or max_returns < 1:
        raise PackError(f"pack.toml: [workflow] max_returns must be an integer >= 1 (got {max_returns!r})")
    reasons = node.get("return_reasons", DEFAULT_RETURN_REASONS)
    if not isinstance(reasons, dict) or not reasons or not all(
            isinstance(k, str) and k.strip() and len(k) <= 40 and isinstance(v, str) and v.strip()
            for k, v in reasons.items()):
        raise PackError("pack.toml: [workflow.return_reasons] must be a table of code = label (codes up to 40 "
                        "characters)")
    share = node.get("assist_reply_share", 0.5)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise PackError(f"pack.toml: [workflow] assist_reply_share must be a number in (0, 1] (got {share!r})")
    citizen = node.get("citizen_channels", list(DEFAULT_CITIZEN_CHANNELS))
    known = {c.value for c in Channel}
    if not isinstance(citizen, list) or not all(isinstance(c, str) and c in known for c in citizen):
        raise PackError(f"pack.toml: [workflow] citizen_channels must be a list of channels among "
                        f"{', '.join(sorted(known))} (got {citizen!r})")
    return Workflow(sign_for_hours=sign, max_returns=max_returns,
                    return_reasons={str(k): str(v) for k, v in reasons.items()}, disposal_clock=clock,
                    assist_reply_share=float(share), citizen_channels=tuple(dict.fromkeys(citizen)))


def _wall(conf: dict) -> WallRules:
    """``[wall]``: ``escalate_after_minutes`` (an integer >= 1, default 10)."""
    node = conf.get("wall", {})
    if not isinstance(node, dict):
        raise PackError("pack.toml: [wall] must be a table")
    unknown = sorted(set(node) - {"escalate_after_minutes"})
    if unknown:
        raise PackError(f"pack.toml: [wall] has unknown setting(s) {', '.join(unknown)}")
    minutes = node.get("escalate_after_minutes", WallRules.escalate_after_minutes)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        raise PackError(f"pack.toml: [wall] escalate_after_minutes must be an integer >= 1 (got {minutes!r})")
    return WallRules(escalate_after_minutes=minutes)


def _positive(node: dict, key: str, default: float, where: str, *, upper: float | None = None) -> float:
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0 \
            or (upper is not None and value > upper):
        bound = f" and <= {upper:g}" if upper is not None else ""
        raise PackError(f"pack.toml: [{where}] {key} must be a number > 0{bound} (got {value!r})")
    return float(value)


def _repeats(conf: dict, categories: tuple[Category, ...]) -> RepeatRules:
    """``[repeats]`` (重复诉求): ``radius_m`` / ``window_h`` defaults, overridden per major class
    (``[repeats.major.<code>]``) and per category (``[repeats.category.<code>]``); ``related``: groups
    (lists) of category or major codes that may repeat each other; ``[repeats.weights]`` of the score's
    parts; ``auto_link_score`` (a new case above it links itself), ``min_score`` (the least shown);
    ``alarm_count`` repeats at one grid × category within ``alarm_days`` raise an alarm."""
    node = conf.get("repeats", {})
    if not isinstance(node, dict):
        raise PackError("pack.toml: [repeats] must be a table")
    unknown = sorted(set(node) - {"radius_m", "window_h", "major", "category", "related", "weights",
                                  "related_factor", "auto_link_score", "min_score", "alarm_count", "alarm_days"})
    if unknown:
        raise PackError(f"pack.toml: [repeats] has unknown setting(s) {', '.join(unknown)}")
    codes = {c.code for c in categories}
    majors: dict[str, set[str]] = {}
    for c in categories:
        majors.setdefault(c.major_code, set()).add(c.code)

    def reaches(kind: str, known) -> dict[str, Reach]:
        table = node.get(kind, {})
        if not isinstance(table, dict):
            raise PackError(f"pack.toml: [repeats.{kind}] must be a table of code = {{radius_m, window_h}}")
        out = {}
        for code, r in table.items():
            if code not in known:
                raise PackError(f"pack.toml: [repeats.{kind}] {code} is not a {kind} code of categories.csv")
            if not isinstance(r, dict) or set(r) - {"radius_m", "window_h"}:
                raise PackError(f"pack.toml: [repeats.{kind}.{code}] takes radius_m and window_h only")
            out[code] = Reach(_positive(r, "radius_m", radius, f"repeats.{kind}.{code}", upper=5000),
                              _positive(r, "window_h", window, f"repeats.{kind}.{code}", upper=24 * 366))
        return out

    radius = _positive(node, "radius_m", 100.0, "repeats", upper=5000)
    window = _positive(node, "window_h", 168.0, "repeats", upper=24 * 366)
    groups = []
    for group in node.get("related", []):
        if not isinstance(group, list) or len(group) < 2 or not all(isinstance(g, str) for g in group):
            raise PackError("pack.toml: [repeats] related must be a list of groups (lists of 2+ category or "
                            "major codes)")
        members: set[str] = set()
        for g in group:
            if g in codes:
                members.add(g)
            elif g in majors:
                members |= majors[g]
            else:
                raise PackError(f"pack.toml: [repeats] related names {g!r}, neither a category nor a major code")
        groups.append(frozenset(members))
    weights = {**REPEAT_WEIGHTS, **_toml_numbers(conf, "repeats.weights")}
    if set(weights) - set(REPEAT_WEIGHTS) or not sum(weights.values()) > 0:
        raise PackError(f"pack.toml: [repeats.weights] weighs {', '.join(REPEAT_WEIGHTS)} (numbers >= 0, not all 0)")
    alarm_count, alarm_days = node.get("alarm_count", 3), node.get("alarm_days", 30)
    for key, value in (("alarm_count", alarm_count), ("alarm_days", alarm_days)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 366:
            raise PackError(f"pack.toml: [repeats] {key} must be an integer from 1 to 366 (got {value!r})")
    return RepeatRules(radius_m=radius, window_h=window, by_major=reaches("major", majors),
                       by_category=reaches("category", codes), related=tuple(groups), weights=weights,
                       related_factor=_positive(node, "related_factor", 0.5, "repeats", upper=1),
                       auto_link_score=_positive(node, "auto_link_score", 0.9, "repeats", upper=1),
                       min_score=_positive(node, "min_score", 0.3, "repeats", upper=1),
                       alarm_count=alarm_count, alarm_days=alarm_days)


def _parse_time(text: Any, where: str) -> dt.time:
    if not isinstance(text, str):
        raise PackError(f"{where}: {text!r} is not a time string like \"08:30\"")
    try:
        return dt.time.fromisoformat(text.strip())
    except ValueError:
        raise PackError(f"{where}: {text!r} is not a time like \"08:30\"") from None


def _office_hours(conf: dict) -> list[tuple[dt.time, dt.time]]:
    table = conf.get("office_hours")
    periods = table.get("periods") if isinstance(table, dict) else None
    if not isinstance(periods, list) or not periods:
        raise PackError('pack.toml: [office_hours] periods must be a list like [["08:30", "12:00"], ...]')
    out: list[tuple[dt.time, dt.time]] = []
    for i, period in enumerate(periods, start=1):
        where = f"pack.toml: [office_hours] period {i}"
        if not isinstance(period, list) or len(period) != 2:
            raise PackError(f"{where} must be a [start, end] pair (got {period!r})")
        start, end = (_parse_time(p, where) for p in period)
        if start >= end:
            raise PackError(f"{where}: start {period[0]} is not before end {period[1]}")
        if out and start < out[-1][1]:
            raise PackError(f"{where}: starts before the previous period ends (periods must be in order, not overlapping)")
        out.append((start, end))
    return out


def _center(conf: dict, to_wgs84) -> tuple[float, float]:
    center = conf.get("center")
    if (
        not isinstance(center, list)
        or len(center) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in center)
    ):
        raise PackError(f"pack.toml: center must be [lat, lon] (got {center!r})")
    lat, lon = float(center[0]), float(center[1])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise PackError(f"pack.toml: center {center!r} is not a valid [lat, lon]")
    lon, lat = to_wgs84(lon, lat)
    return (lat, lon)


def _demo(conf: dict, to_wgs84) -> dict[str, Any]:
    demo = conf.get("demo", {})
    if not isinstance(demo, dict):
        raise PackError("pack.toml: [demo] must be a table")
    demo = dict(demo)
    hotspots = demo.get("hotspots", [])
    if not isinstance(hotspots, list):
        raise PackError("pack.toml: demo.hotspots must be a list of tables ([[demo.hotspots]])")
    converted = []
    for i, spot in enumerate(hotspots, start=1):
        where = f"pack.toml: demo.hotspots #{i}"
        if not isinstance(spot, dict):
            raise PackError(f"{where} must be a table")
        for key in ("lon", "lat", "weight", "radius_km"):
            value = spot.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise PackError(f"{where} ({spot.get('name', '?')}): {key} must be a number (got {value!r})")
        if spot["weight"] < 0 or spot["radius_km"] <= 0:
            raise PackError(f"{where} ({spot.get('name', '?')}): weight must be >= 0 and radius_km > 0")
        lon, lat = to_wgs84(float(spot["lon"]), float(spot["lat"]))
        converted.append({**spot, "lon": lon, "lat": lat})
    demo["hotspots"] = converted
    return demo


# --------------------------------------------------------------------------- tables


def _load_areas(folder: Path, to_wgs84) -> tuple[Area, ...]:
    filename = "areas.geojson"
    path = folder / filename
    if not path.is_file():
        raise PackError(f"{filename}: missing from pack folder {folder}")
    try:
        with path.open(encoding="utf-8-sig") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PackError(f"{filename}: not valid JSON ({exc})") from None
    features = data.get("features") if isinstance(data, dict) else None
    if data.get("type") != "FeatureCollection" or not isinstance(features, list):
        raise PackError(f"{filename}: must be a GeoJSON FeatureCollection")
    if not features:
        raise PackError(f"{filename}: has no features")

    areas: list[Area] = []
    seen: dict[str, int] = {}
    for index, feature in enumerate(features, start=1):
        props = (feature or {}).get("properties") or {}
        code = str(props.get("code") or "").strip()
        where = f"{filename} feature #{index}" + (f" (code {code})" if code else "")
        if not code:
            raise PackError(f"{where}: properties.code is empty")
        if code in seen:
            raise PackError(f"{where}: duplicate code {code} (also feature #{seen[code]})")
        seen[code] = index
        name = str(props.get("name") or "").strip()
        if not name:
            raise PackError(f"{where}: properties.name is empty")
        level = str(props.get("level") or "").strip()
        if level not in AREA_LEVELS:
            raise PackError(f"{where}: level {level!r} is not one of {', '.join(AREA_LEVELS)}")
        parent = props.get("parent_code")
        parent = str(parent).strip() if parent not in (None, "") else None
        areas.append(Area(code, name, level, parent, _area_geometry(feature.get("geometry"), where, to_wgs84)))

    by_code = {a.code: a for a in areas}
    if not any(a.level == "district" for a in areas):
        raise PackError(f"{filename}: has no district (level 'district')")
    for a in areas:
        if a.level == "grid":
            if a.parent_code is None:
                raise PackError(f"{filename} feature #{seen[a.code]} (code {a.code}): grid has no parent_code")
            parent = by_code.get(a.parent_code)
            if parent is None or parent.level != "district":
                raise PackError(
                    f"{filename} feature #{seen[a.code]} (code {a.code}): grid parent_code {a.parent_code} "
                    "is not a district in this pack"
                )
        elif a.parent_code is not None and a.parent_code in by_code:
            raise PackError(
                f"{filename} feature #{seen[a.code]} (code {a.code}): a district's parent_code must not be "
                f"another area of the pack ({a.parent_code})"
            )
    return tuple(areas)


def _area_geometry(raw: Any, where: str, to_wgs84):
    if not isinstance(raw, dict):
        raise PackError(f"{where}: has no geometry")
    try:
        geom = shape(raw)
    except Exception as exc:  # shapely raises several types for bad GeoJSON
        raise PackError(f"{where}: geometry cannot be read ({exc})") from None
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise PackError(f"{where}: geometry is a {geom.geom_type}, expected Polygon or MultiPolygon")
    if geom.is_empty:
        raise PackError(f"{where}: geometry is empty")
    coords = shapely.get_coordinates(geom)
    if not (abs(coords[:, 0]) <= 180).all() or not (abs(coords[:, 1]) <= 90).all():
        raise PackError(f"{where}: coordinates outside lon/lat range (is the geometry projected?)")
    geom = transform_geometry(geom, to_wgs84)
    if not geom.is_valid:
        fixed = shapely.make_valid(geom)
        if fixed.geom_type not in ("Polygon", "MultiPolygon"):
            parts = [p for p in shapely.get_parts(fixed) if p.geom_type in ("Polygon", "MultiPolygon")]
            fixed = shapely.union_all(parts) if parts else shapely.Polygon()
        geom = fixed
    if geom.is_empty or geom.area <= 0:
        raise PackError(f"{where}: geometry has no area (invalid and not repairable)")
    return geom


def _load_departments(folder: Path, district_codes: set[str]) -> tuple[Department, ...]:
    filename = "departments.csv"
    columns = ("code", "name", "name_en", "level", "district_code", "parent_code")
    depts: list[Department] = []
    lines: dict[str, int] = {}
    for line, where, code, row in _keyed_rows(folder, filename, columns, lines, "department code"):
        level = _choice(where, row, "level", DEPARTMENT_LEVELS)
        district = _blank(row["district_code"])
        if district is not None and district not in district_codes:
            raise PackError(f"{where}: department {code} district_code {district} is not a district in areas.geojson")
        if level in ("district", "street") and district is None:
            raise PackError(f"{where}: department {code} has level {level!r} but no district_code")
        depts.append(
            Department(
                code=code,
                name=_need(where, row, "name"),
                name_en=row["name_en"],
                level=level,
                district_code=district,
                parent_code=_blank(row["parent_code"]),
            )
        )
    if not depts:
        raise PackError(f"{filename}: has no departments")
    for d in depts:
        if d.parent_code is not None and d.parent_code not in lines:
            raise PackError(
                f"{filename} line {lines[d.code]}: department {d.code} parent_code {d.parent_code} is not a department"
            )
        if d.parent_code == d.code:
            raise PackError(f"{filename} line {lines[d.code]}: department {d.code} is its own parent")
    return tuple(depts)


def _load_categories(folder: Path) -> tuple[Category, ...]:
    filename = "categories.csv"
    columns = (
        "code", "kind", "major_code", "major_name", "name", "name_en", "time_limit", "time_unit",
        "dup_radius_m", "dup_window_h", "demo_weight", "urgent",
    )  # fmt: skip
    cats: list[Category] = []
    lines: dict[str, int] = {}
    majors: dict[str, tuple[str, str, int]] = {}  # major_code -> (kind, major_name, line)
    for line, where, code, row in _keyed_rows(folder, filename, columns, lines, "category code"):
        if code == ANY_CATEGORY:
            raise PackError(f"{where}: '*' is reserved for routing and cannot be a category code")
        kind = _choice(where, row, "kind", CATEGORY_KINDS)
        major_code = _need(where, row, "major_code")
        major_name = _need(where, row, "major_name")
        if major_code in majors:
            m_kind, m_name, m_line = majors[major_code]
            if (m_kind, m_name) != (kind, major_name):
                raise PackError(
                    f"{where}: major class {major_code} is {kind}/{major_name} here but "
                    f"{m_kind}/{m_name} on line {m_line}"
                )
        else:
            majors[major_code] = (kind, major_name, line)
        cats.append(
            Category(
                code=code,
                kind=kind,
                major_code=major_code,
                major_name=major_name,
                name=_need(where, row, "name"),
                name_en=row["name_en"],
                time_limit=_number(where, row, "time_limit", positive=True),
                time_unit=_choice(where, row, "time_unit", TIME_UNITS),
                dup_radius_m=_number(where, row, "dup_radius_m"),
                dup_window_h=_number(where, row, "dup_window_h"),
                demo_weight=_number(where, row, "demo_weight"),
                urgent=_boolean(where, row, "urgent"),
            )
        )
    if not cats:
        raise PackError(f"{filename}: has no categories")
    clash = sorted(set(majors) & set(lines))
    if clash:
        raise PackError(f"{filename}: code(s) {', '.join(clash)} used both as a small class and as a major class")
    return tuple(cats)


def _load_routing(
    folder: Path, categories: tuple[Category, ...], area_codes: set[str], dept_codes: set[str]
) -> tuple[RoutingRule, ...]:
    filename = "routing.csv"
    columns = ("id", "category_code", "area_code", "department_code", "note")
    small = {c.code for c in categories}
    major = {c.major_code for c in categories}
    rules: list[RoutingRule] = []
    lines: dict[str, int] = {}
    for line, where, rule_id, row in _keyed_rows(folder, filename, columns, lines, "rule id"):
        category = _need(where, row, "category_code")
        if category != ANY_CATEGORY and category not in small and category not in major:
            raise PackError(
                f"{where}: rule {rule_id} category_code {category} is not a small-class code, "
                "a major-class code or '*'"
            )
        area = _blank(row["area_code"])
        if area is not None and area not in area_codes:
            raise PackError(f"{where}: rule {rule_id} area_code {area} is not an area in areas.geojson")
        dept = _need(where, row, "department_code")
        if dept not in dept_codes:
            raise PackError(f"{where}: rule {rule_id} department_code {dept} is not in departments.csv")
        rules.append(RoutingRule(rule_id, category, area, dept, row["note"]))

    # Every category must reach a department anywhere in the city: a rule without area for it,
    # its major class or '*'. (Area-specific rules only refine that.)
    citywide = {r.category_code for r in rules if r.area_code is None}
    if ANY_CATEGORY not in citywide:
        unrouted = [c for c in categories if c.code not in citywide and c.major_code not in citywide]
        if unrouted:
            listed = ", ".join(f"{c.code} {c.name}" for c in unrouted[:10])
            more = f" and {len(unrouted) - 10} more" if len(unrouted) > 10 else ""
            raise PackError(
                f"{filename}: no city-wide rule (empty area_code) routes categor"
                f"{'y' if len(unrouted) == 1 else 'ies'} {listed}{more}: add a rule for the category, "
                "its major class or '*'"
            )
    return tuple(rules)


def _load_service_items(folder: Path, dept_codes: set[str]) -> tuple[ServiceItem, ...]:
    filename = "service_items.csv"
    items: list[ServiceItem] = []
    seen: dict[tuple[str, str], int] = {}
    for line, row in _read_csv(folder, filename, ("department", "code", "name", "daily", "online_bias"),
                               required=False):
        where = f"{filename} line {line}"
        dept, code, name = _need(where, row, "department"), _need(where, row, "code"), _need(where, row, "name")
        if not dept.startswith("*-") and dept not in dept_codes:
            raise PackError(f"{where}: department {dept} is not in departments.csv (or write *-SUFFIX)")
        try:
            daily, bias = float(_need(where, row, "daily")), float(row.get("online_bias") or 0)
        except ValueError:
            raise PackError(f"{where}: daily and online_bias must be numbers") from None
        if not (daily >= 0 and -1 < bias < 1):
            raise PackError(f"{where}: daily must be >= 0 and online_bias between -1 and 1")
        _once(where, seen, (dept, code), line, f"item {code} of {dept} is listed twice")
        items.append(ServiceItem(dept, code, name, daily, bias))
    return tuple(items)


def _load_calendar(folder: Path) -> dict[dt.date, bool]:
    filename = "calendar.csv"
    out: dict[dt.date, bool] = {}
    lines: dict[dt.date, int] = {}
    for line, row in _read_csv(folder, filename, ("date", "is_workday", "note"), required=False):
        where = f"{filename} line {line}"
        raw = _need(where, row, "date")
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            raise PackError(f"{where}: date {raw!r} is not an ISO date (YYYY-MM-DD)") from None
        _once(where, lines, day, line, f"date {raw} is listed twice")
        out[day] = _boolean(where, row, "is_workday")
    return out


# --------------------------------------------------------------------------- entry point


def load_pack(name_or_path: str | Path) -> Pack:
    """Load and validate a city pack by name (``data_sources/packs/<name>/``) or folder path.

    Raises :class:`PackError` with the file, row and problem on any inconsistency.
    """
    folder = _resolve(name_or_path)
    conf = _read_toml(folder)

    name = _toml_str(conf, "name")
    try:
        crs = normalize_crs(_toml_str(conf, "crs", "WGS84"))
    except ValueError as exc:
        raise PackError(f"pack.toml: crs: {exc}") from None
    to_wgs84 = converter_to_wgs84(crs)

    timezone = _toml_str(conf, "timezone")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise PackError(f"pack.toml: timezone {timezone!r} is not an IANA time zone") from None
    holiday_source = _toml_str(conf, "holiday_source", "none")
    problem = holiday_source_problem(holiday_source)
    if problem:
        raise PackError(f"pack.toml: {problem}")
    zoom = conf.get("zoom")
    if isinstance(zoom, bool) or not isinstance(zoom, (int, float)) or not 0 <= zoom <= 22:
        raise PackError(f"pack.toml: zoom must be a number from 0 to 22 (got {zoom!r})")
    kpi = conf.get("kpi", {})
    if not isinstance(kpi, dict):
        raise PackError("pack.toml: [kpi] must be a table")
    kpi_targets = _toml_numbers(conf, "kpi.targets")
    kpi_weights = _toml_numbers(conf, "kpi.weights")
    priority_factors = _toml_numbers(conf, "priority_factors")
    for key, factor in priority_factors.items():
        if factor <= 0:
            raise PackError(f"pack.toml: [priority_factors] {key} must be > 0 (got {factor:g})")

    areas = _load_areas(folder, to_wgs84)
    district_codes = {a.code for a in areas if a.level == "district"}
    departments = _load_departments(folder, district_codes)
    dept_codes = {d.code for d in departments}
    categories = _load_categories(folder)
    routing = _load_routing(folder, categories, {a.code for a in areas}, dept_codes)

    triage = _toml_str(conf, "triage_department")
    if triage not in dept_codes:
        raise PackError(f"pack.toml: triage_department {triage} is not in departments.csv")

    demo = _demo(conf, to_wgs84)
    for table in ("district_weights", "service_district_scale"):
        weights = demo.get(table, {})
        if not isinstance(weights, dict):
            raise PackError(f"pack.toml: demo.{table} must be a table of district code = number")
        for code, weight in weights.items():
            if code not in district_codes:
                raise PackError(f"pack.toml: demo.{table} {code} is not a district in areas.geojson")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                raise PackError(f"pack.toml: demo.{table} {code} must be a number >= 0 (got {weight!r})")

    return Pack(
        name=name,
        title=_toml_str(conf, "title"),
        title_en=str(conf.get("title_en") or conf.get("title") or name),
        timezone=timezone,
        crs=crs,
        center=_center(conf, to_wgs84),
        zoom=float(zoom),
        office_hours=_office_hours(conf),
        holiday_source=holiday_source,
        calendar_overrides=_load_calendar(folder),
        triage_department=triage,
        kpi_targets=kpi_targets,
        kpi_weights=kpi_weights,
        priority_factors=priority_factors,
        demo=demo,
        departments=departments,
        areas=areas,
        categories=categories,
        routing_rules=routing,
        path=folder,
        service_items=_load_service_items(folder, dept_codes),
        workflow=_workflow(conf),
        wall=_wall(conf),
        repeats=_repeats(conf, categories),
    )


# --------------------------------------------------------------------------- mapping.csv (optional)

MAPPING_KINDS = ("agency", "queue", "complaint_type")


@dataclass(frozen=True)
class MappingRule:
    """One row of a pack's optional ``mapping.csv``: an external value (an agency, a work queue,
    a complaint type or service code) -> a department and/or a category of the pack.
    A value ending in ``*`` matches by prefix (longest wins); ``*`` alone matches anything."""

    kind: str
    value: str
    department_code: str | None
    category_code: str | None
    line: int


@dataclass(frozen=True, eq=False)
class MappingTable:
    rules: tuple[MappingRule, ...]

    @cached_property
    def _exact(self) -> dict[tuple[str, str], MappingRule]:
        return {(r.kind, r.value.casefold()): r for r in self.rules if not r.value.endswith("*")}

    @cached_property
    def _prefixes(self) -> dict[str, list[tuple[str, MappingRule]]]:
        out: dict[str, list[tuple[str, MappingRule]]] = {}
        for r in self.rules:
            if r.value.endswith("*"):
                out.setdefault(r.kind, []).append((r.value[:-1].casefold(), r))
        for rows in out.values():
            rows.sort(key=lambda pr: -len(pr[0]))
        return out

    def lookup(self, kind: str, value: str | None) -> MappingRule | None:
        """The rule for ``value`` of this kind: exact (case-insensitive) first, then the longest prefix."""
        key = (value or "").strip().casefold()
        if not key:
            return None
        hit = self._exact.get((kind, key))
        if hit is not None:
            return hit
        for prefix, rule in self._prefixes.get(kind, ()):
            if key.startswith(prefix):
                return rule
        return None

    def __len__(self) -> int:
        return len(self.rules)


def load_mapping(pack: Pack) -> MappingTable:
    """Read the pack's optional ``mapping.csv`` (kind,value,department_code,category_code) and check
    every code against the pack. A pack without the file has an empty table (Hangzhou)."""
    filename = "mapping.csv"
    dept_codes = {d.code for d in pack.departments}
    cat_codes = {c.code for c in pack.categories}
    rules: list[MappingRule] = []
    seen: dict[tuple[str, str], int] = {}
    columns = ("kind", "value", "department_code", "category_code")
    for line, row in _read_csv(pack.path, filename, columns, required=False):
        where = f"{filename} line {line}"
        kind = _choice(where, row, "kind", MAPPING_KINDS)
        value = _need(where, row, "value")
        key = (kind, value.casefold())
        _once(where, seen, key, line, f"{kind} {value!r} is mapped twice")
        dept, cat = _blank(row["department_code"]), _blank(row["category_code"])
        if dept is None and cat is None:
            raise PackError(f"{where}: {kind} {value!r} maps to nothing: give a department_code or a category_code")
        if kind in ("agency", "queue") and dept is None:
            raise PackError(f"{where}: {kind} {value!r} needs a department_code")
        if kind == "complaint_type" and cat is None:
            raise PackError(f"{where}: complaint_type {value!r} needs a category_code")
        if dept is not None and dept not in dept_codes:
            raise PackError(f"{where}: department_code {dept} is not in departments.csv")
        if cat is not None and cat not in cat_codes:
            raise PackError(f"{where}: category_code {cat} is not in categories.csv")
        rules.append(MappingRule(kind, value, dept, cat, line))
    return MappingTable(tuple(rules))


# --------------------------------------------------------------------------- IoT devices (optional)


@dataclass(frozen=True)
class Device:
    """One row of a pack's ``devices.csv``: where a sensor stands (its alarms carry only its id)."""

    id: str
    lon: float | None            # WGS84 (converted from the pack's CRS)
    lat: float | None
    district_code: str | None    # where the row says so (the location decides otherwise)
    category_code: str | None    # the category of the device's alarms, when its payloads name none
    name: str
    line: int


@dataclass(frozen=True, eq=False)
class IotSettings:
    """The pack's IoT facts: ``devices.csv`` and pack.toml ``[iot]``."""

    devices: dict[str, Device]
    close_on_clear: bool = False   # a device reporting clear closes its open alarm case

    def device(self, device_id: object) -> Device | None:
        return self.devices.get(str(device_id).strip()) if device_id is not None else None


DEVICE_COLUMNS = ("device_id", "lon", "lat")


def load_iot(pack: Pack) -> IotSettings:
    """The pack's optional ``devices.csv`` (device_id,lon,lat[,district_code,category_code,name];
    coordinates in the pack's CRS) and pack.toml ``[iot] close_on_clear``; every code is checked
    against the pack. A pack without them has no devices and keeps alarm cases open on clear."""
    conf = _read_toml(pack.path).get("iot", {})
    if not isinstance(conf, dict):
        raise PackError("pack.toml: [iot] must be a table")
    unknown = sorted(set(conf) - {"close_on_clear"})
    if unknown:
        raise PackError(f"pack.toml: [iot] has unknown setting(s) {', '.join(unknown)}")
    close = conf.get("close_on_clear", False)
    if not isinstance(close, bool):
        raise PackError(f"pack.toml: [iot] close_on_clear must be true or false (got {close!r})")
    filename = "devices.csv"
    to_wgs84 = converter_to_wgs84(pack.crs)
    districts = {a.code for a in pack.districts()}
    categories = {c.code for c in pack.categories}
    devices: dict[str, Device] = {}
    lines: dict[str, int] = {}
    for line, row in _read_csv(pack.path, filename, DEVICE_COLUMNS, required=False):
        where = f"{filename} line {line}"
        key = _need(where, row, "device_id")
        _once(where, lines, key, line, f"duplicate device_id {key}")
        lon = lat = None
        if row.get("lon") or row.get("lat"):
            try:
                x, y = float(_need(where, row, "lon")), float(_need(where, row, "lat"))
            except ValueError:
                raise PackError(f"{where}: lon/lat {row.get('lon')!r}, {row.get('lat')!r} are not numbers") from None
            if not (math.isfinite(x) and math.isfinite(y)):
                raise PackError(f"{where}: lon/lat must be finite numbers")
            lon, lat = (float(v) for v in to_wgs84(x, y))
        district, category = _blank(row.get("district_code")), _blank(row.get("category_code"))
        if district is not None and district not in districts:
            raise PackError(f"{where}: district_code {district} is not a district in areas.geojson")
        if category is not None and category not in categories:
            raise PackError(f"{where}: category_code {category} is not in categories.csv")
        devices[key] = Device(key, lon, lat, district, category, row.get("name") or "", line)
    return IotSettings(devices, close)
