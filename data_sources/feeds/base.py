"""The one contract every incident feed follows.

A feed is two things:

* a **record iterator**: ``Iterator[tuple[dict, int]]`` — the raw record as the source has it
  (column -> value) and its line / position number, for messages. A record that cannot even be
  read (a broken NDJSON line) is yielded as ``{UNREADABLE: reason, "text": …}``: ingest
  quarantines it with that reason instead of stopping;
* a **mapping** (:class:`Mapping`): ``to_case(raw, ctx)`` turns one raw record into a validated
  :class:`IncomingCase`, or raises :class:`Rejected` with one clear reason.

Validation (pydantic v2) lives here so that every mapping gets the same rules: required fields,
timestamps (naive ones are in the pack's time zone; Excel-mangled ``10/21/18 0:59``), numbers
with thousands separators, coordinates converted from the feed's CRS to WGS84 and inside the
pack's extent (an unusable location — a placeholder such as ``0,0``, outside the extent, unreadable —
is kept unknown and flagged unless the mapping requires it: :class:`Leniency`), known categories and
departments, closed-before-created (quarantined, or kept flagged), oversized text truncated (or rejected when absurd) and HTML
stripped.
"""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any, Iterator, Optional, Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator

from data_sources.coords import normalize_crs, to_wgs84
from data_sources.packs import MappingTable, Pack, load_mapping
from incidents import bounds, media
from incidents.lifecycle import ValidationFailed
from incidents.model import Channel, Priority, State

UNREADABLE = "__unreadable__"
RecordIterator = Iterator[tuple[dict, int]]

MAX_FIELD_CHARS = 20_000        # any raw value longer than this: the record is rejected
TITLE_MAX, DESCRIPTION_MAX, ADDRESS_MAX, EXTERNAL_ID_MAX = 200, 4000, 300, 128
IMPORT_STATES = (State.REGISTERED, State.DISPATCHED, State.IN_PROGRESS, State.RESOLVED, State.CLOSED,
                 State.VOIDED)


#: dates written day first (dd/mm/yyyy): tried instead of the US order when a mapping declares ``dayfirst``
_DAYFIRST_FORMATS = (
    "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y %I:%M:%S %p", "%d/%m/%Y %I:%M %p", "%d/%m/%Y",
    "%d/%m/%y %H:%M", "%d/%m/%y", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y",
)
#: the earliest timestamp a feed may bring unless configured (INGEST_MIN_DATE): spreadsheet epochs
#: (1899-12-30, 1900-01-00) and zeroed dates are placeholders, not the time something happened
EARLIEST = datetime(1990, 1, 1, tzinfo=timezone.utc)


class Rejected(Exception):
    """A record that cannot become a case; ``reason`` says why in one sentence."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- context

@dataclass(eq=False)
class FeedContext:
    """What validation needs to know about the pack and the feed."""

    pack: Pack
    crs: str = "WGS84"                     # the CRS of the feed's coordinates
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    extent_margin_deg: float = 0.05
    dayfirst: bool = False                 # the mapping declares DD/MM/YYYY dates
    earliest: datetime = EARLIEST          # timestamps before this are refused

    def __post_init__(self):
        self.crs = normalize_crs(self.crs)

    @cached_property
    def mapping_table(self) -> MappingTable:
        return load_mapping(self.pack)

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.pack.timezone)

    @cached_property
    def category_codes(self) -> set[str]:
        return {c.code for c in self.pack.categories}

    @cached_property
    def department_codes(self) -> set[str]:
        return {d.code for d in self.pack.departments}

    @cached_property
    def extent(self) -> tuple[float, float, float, float]:
        """(min_lon, min_lat, max_lon, max_lat) of the pack's districts plus a margin, WGS84."""
        import shapely
        bounds = shapely.union_all([a.geometry for a in self.pack.districts()]).bounds
        m = self.extent_margin_deg
        return (bounds[0] - m, bounds[1] - m, bounds[2] + m, bounds[3] + m)


# --------------------------------------------------------------------------- parsing helpers


_US_FORMATS = (
    "%m/%d/%y %H:%M", "%m/%d/%y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%y %I:%M %p", "%m/%d/%y", "%m/%d/%Y",
)
_YEAR_FIRST_FORMATS = (
    "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d", "%Y.%m.%d %H:%M:%S", "%Y%m%d%H%M%S",
    "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H:%M", "%Y年%m月%d日",
)


def blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, float) and math.isnan(value)


def parse_timestamp(value: Any, tz: ZoneInfo, *, dayfirst: bool = False) -> Optional[datetime]:
    """A timestamp from a feed as an aware UTC datetime; naive values are in ``tz``.
    Accepts ISO 8601 (with or without offset / ``Z``), US ``M/D/YY H:MM`` (what Excel makes of
    dates), ``M/D/YYYY h:mm:ss AM`` and a few Chinese layouts; with ``dayfirst`` (a mapping that
    declares it) ``DD/MM/YYYY`` instead of the US order. Raises ValueError when unreadable."""
    if blank(value):
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        dt = None
        iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
        try:
            dt = datetime.fromisoformat(iso)
        except ValueError:
            for fmt in (_DAYFIRST_FORMATS if dayfirst else _US_FORMATS) + _YEAR_FIRST_FORMATS:
                try:
                    dt = datetime.strptime(text, fmt)
                    break
                except ValueError:
                    continue
        if dt is None:
            raise ValueError(f"unreadable timestamp {text[:60]!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(timezone.utc)


_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


def parse_number(value: Any) -> Optional[float]:
    """A number, tolerating thousands separators (``"1,017,901"``) and blanks. ValueError if not."""
    if blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, (int, float)):
        out = float(value)
    else:
        text = str(value).strip().replace("\u00a0", "").replace(" ", "")
        if _THOUSANDS.match(text):
            text = text.replace(",", "")
        try:
            out = float(text)
        except ValueError:
            raise ValueError(f"{str(value)[:40]!r} is not a number") from None
    if not math.isfinite(out):
        raise ValueError(f"{value!r} is not a finite number")
    return out


_BLOCK = re.compile(r"<(script|style|iframe|object)\b.*?(</\1\s*>|$)", re.I | re.S)
_TAG = re.compile(r"</?[A-Za-z!/][^<>]*>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t]+")
_BAD_CHARS = re.compile(r"[\ufffd\ud800-\udfff]")
# nothing for clean_text to do but strip: no entity, no tag, no control character or line break, no run of blanks
_NEEDS_CLEANING = re.compile(r"[&<\x00-\x1f\x7f]|  ")


def clean_text(value: Any) -> str:
    """Plain text: HTML entities decoded, tags (and script/style blocks) removed, control
    characters dropped, runs of blanks collapsed. Raises ValueError on undecodable bytes."""
    if blank(value):
        return ""
    text = str(value)
    if _BAD_CHARS.search(text):
        raise ValueError("contains undecodable bytes (wrong text encoding?)")
    if not _NEEDS_CLEANING.search(text):
        return text.strip()
    text = html.unescape(text)
    text = _BLOCK.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = _CONTROL.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_sizes(raw: dict) -> None:
    """Reject a record with an absurdly long value (a broken export, an attack)."""
    for key, value in raw.items():
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            raise Rejected(f"field {str(key)[:40]!r} is {len(value):,} characters long (limit {MAX_FIELD_CHARS:,})")
        fault = bounds.text_fault(value) or bounds.text_fault(key)
        if fault:   # the database could not store it (incidents.bounds: the one rule for text)
            raise Rejected(f"field {str(key)[:40]!r} {fault}")


# --------------------------------------------------------------------------- the validated case

class IncomingCase(BaseModel):
    """A record after mapping and validation: what ingest upserts."""

    model_config = ConfigDict(str_strip_whitespace=True, arbitrary_types_allowed=True)

    external_id: str
    title: str
    description: str = ""
    address: str = ""
    category_code: str
    department_code: Optional[str] = None
    state: State = State.REGISTERED
    void_reason: Optional[str] = None
    channel: Channel = Channel.HOTLINE
    priority: Priority = Priority.NORMAL
    reported_at: datetime
    dispatched_at: Optional[datetime] = None
    signed_at: Optional[datetime] = None
    resolved_at: Optional[datetime] = None
    closed_at: Optional[datetime] = None
    lon: Optional[float] = None
    lat: Optional[float] = None
    crs: Optional[str] = None              # per-record CRS; else the feed's
    location_note: Optional[str] = None    # why a record has no location (placeholder, missing)
    source_status: str = ""                # the status as the source said it
    media_urls: tuple[str, ...] = ()       # photos the source keeps elsewhere: kept as links, never fetched
    #: what was wrong with a record that is kept anyway: kind ("location unknown", "closed before
    #: created", "unknown type") -> the detail; counted in the import summary, kept on the report event
    flags: dict[str, str] = {}
    source_type: Optional[str] = None      # the source's type, when the mapping did not know it (catch-all)
    deadline: Optional[datetime] = None    # the source's own deadline: the deadline in force when dispatched

    @field_validator("media_urls", mode="before")
    @classmethod
    def _media_urls(cls, v):
        values = [] if blank(v) else [v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple)) else None
        if values is None:
            raise ValueError("must be a URL or a list of URLs")
        values = [str(x).strip() for x in values if not blank(x)]
        try:
            media.check_count(values)
            return tuple(media.prepare_link(u).url for u in values)
        except ValidationFailed as exc:
            raise ValueError(exc.message) from None

    @field_validator("external_id", mode="before")
    @classmethod
    def _external_id(cls, v):
        if blank(v):
            raise ValueError("is missing")
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        text = str(v).strip()
        if _BAD_CHARS.search(text):
            raise ValueError("contains undecodable bytes (wrong text encoding?)")
        if len(text) > EXTERNAL_ID_MAX:
            raise ValueError(f"is {len(text)} characters long (limit {EXTERNAL_ID_MAX})")
        return text

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, v):
        text = clean_text(v)
        if not text:
            raise ValueError("is missing")
        return truncate(text.replace("\n", " "), TITLE_MAX)

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, v):
        return truncate(clean_text(v), DESCRIPTION_MAX)

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, v):
        return truncate(clean_text(v).replace("\n", " "), ADDRESS_MAX)

    @field_validator("reported_at", "dispatched_at", "signed_at", "resolved_at", "closed_at", mode="before")
    @classmethod
    def _timestamp(cls, v, info: ValidationInfo):
        ctx: FeedContext = info.context["feed"]
        if blank(v):
            if info.field_name == "reported_at":
                raise ValueError("is missing")
            return None
        return parse_timestamp(v, ctx.tz, dayfirst=ctx.dayfirst)

    @field_validator("lon", "lat", mode="before")
    @classmethod
    def _coordinate(cls, v):
        return parse_number(v)

    @model_validator(mode="before")
    @classmethod
    def _unreadable_location(cls, data, info: ValidationInfo):
        """Unreadable coordinates: the location is unknown (flagged), unless the mapping requires it."""
        if not isinstance(data, dict) or _policy(info).location_required:
            return data
        bad = []
        for name in ("lon", "lat"):
            try:
                parse_number(data.get(name))
            except ValueError as exc:
                bad.append(f"{name} {exc}")
        if bad:
            data = {**data, "lon": None, "lat": None}
            _flag_location(data, f"unreadable coordinates ({'; '.join(bad)})")
        return data

    @field_validator("category_code")
    @classmethod
    def _category(cls, v, info: ValidationInfo):
        ctx: FeedContext = info.context["feed"]
        if v not in ctx.category_codes:
            raise ValueError(f"{v!r} is not a category of pack {ctx.pack.name}")
        return v

    @field_validator("department_code")
    @classmethod
    def _department(cls, v, info: ValidationInfo):
        ctx: FeedContext = info.context["feed"]
        if v is not None and v not in ctx.department_codes:
            raise ValueError(f"{v!r} is not a department of pack {ctx.pack.name}")
        return v

    @field_validator("state")
    @classmethod
    def _state(cls, v):
        if v not in IMPORT_STATES:
            raise ValueError(f"{v.value!r} cannot be imported (expected one of {', '.join(IMPORT_STATES)})")
        return v

    @model_validator(mode="after")
    def _whole(self, info: ValidationInfo):
        ctx: FeedContext = info.context["feed"]
        if self.reported_at > ctx.now + timedelta(minutes=10):
            raise ValueError(f"reported_at {self.reported_at:%Y-%m-%d %H:%M}Z is in the future")
        for name in ("reported_at", "dispatched_at", "signed_at", "resolved_at", "closed_at"):
            value = getattr(self, name)
            if value is not None and value < ctx.earliest:
                raise ValueError(f"{name} {value:%Y-%m-%d} is before {ctx.earliest:%Y-%m-%d}, the earliest date "
                                 f"accepted (a placeholder, not a real time; setting INGEST_MIN_DATE)")
        policy = _policy(info)
        for name in ("closed_at", "resolved_at", "signed_at", "dispatched_at"):
            value = getattr(self, name)
            if value is not None and value < self.reported_at:
                label = name.removesuffix("_at")
                said = (f"{label} before created ({label} {value:%Y-%m-%d %H:%M}Z, "
                        f"created {self.reported_at:%Y-%m-%d %H:%M}Z)")
                if name not in ("closed_at", "resolved_at") or policy.closed_before_created != "keep":
                    raise ValueError(said)
                # the mapping keeps such records: closed at its creation, flagged with the source's time
                setattr(self, name, self.reported_at)
                self.flags = {"closed before created": said, **self.flags}
        if self.state in (State.RESOLVED, State.CLOSED) and self.closed_at is None and self.resolved_at is None:
            self.resolved_at = self.reported_at
        if (self.lon is None) != (self.lat is None):
            self._unusable("only one of longitude/latitude given", policy)
        if self.lon is not None and self.lat is not None:
            if self.lon == 0 and self.lat == 0:
                self._unusable("placeholder coordinates 0,0", policy)
            elif not (-180 <= self.lon <= 180 and -90 <= self.lat <= 90):
                self._unusable(f"location ({self.lon}, {self.lat}) is not a longitude/latitude pair", policy)
            else:
                crs = normalize_crs(self.crs) if self.crs else ctx.crs
                lon, lat = (self.lon, self.lat) if crs == "WGS84" else to_wgs84(self.lon, self.lat, crs)
                lon, lat = round(float(lon), 7), round(float(lat), 7)
                x0, y0, x1, y1 = ctx.extent
                if not (x0 <= lon <= x1 and y0 <= lat <= y1):
                    self._unusable(f"location ({lon:.5f}, {lat:.5f}) is outside the area of pack {ctx.pack.name}",
                                   policy)
                else:
                    self.lon, self.lat = lon, lat
        if policy.location_required and self.lon is None and self.flags.get("location unknown"):
            raise ValueError(self.flags["location unknown"])    # a placeholder the mapper recognised
        self.crs = None
        if self.state == State.VOIDED and not self.void_reason:
            self.void_reason = "invalid"
        return self

    def _unusable(self, reason: str, policy: "Leniency") -> None:
        """A location that cannot be used: rejected when the mapping requires one, else unknown and flagged."""
        if policy.location_required:
            raise ValueError(reason)
        self.lon = self.lat = None
        self.location_note = f"{reason}: not plotted"
        self.flags = {**self.flags, "location unknown": reason}


@dataclass(frozen=True)
class Leniency:
    """What a mapping keeps (flagged) instead of quarantining: see the README's "Mapping files"."""

    location_required: bool = False                   # an unusable location rejects the record
    closed_before_created: str = "quarantine"         # or "keep": closed at its creation, flagged


def _policy(info: ValidationInfo) -> Leniency:
    return (info.context or {}).get("leniency") or Leniency()


def _flag_location(data: dict, reason: str) -> None:
    data["location_note"] = f"{reason}: not plotted"
    data["flags"] = {**(data.get("flags") or {}), "location unknown": reason}


def validate_case(fields: dict, ctx: FeedContext, leniency: Optional[Leniency] = None) -> IncomingCase:
    """pydantic validation with the first problem as the one reason."""
    try:
        return IncomingCase.model_validate(fields, context={"feed": ctx, "leniency": leniency or Leniency()})
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        raise Rejected(f"{loc}: {msg}" if loc else msg) from None
    except ValueError as exc:  # conversion errors outside pydantic's wrapping
        raise Rejected(str(exc)) from None


# --------------------------------------------------------------------------- the mapping contract

class Mapping(Protocol):
    name: str            # e.g. "nyc311": also the feed name and the default source label
    # a mapping may declare ``dayfirst = True``: its dates are DD/MM/YYYY (read by the Ingestor)

    def to_case(self, raw: dict, ctx: FeedContext) -> IncomingCase:
        """One raw record -> a validated case, or raise Rejected(reason)."""
        ...
