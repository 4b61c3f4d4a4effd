"""The mapping file format: a TOML document, validated by the pydantic models below before any
record is read. A mistake is a :class:`MappingError` naming the file, the line and the key.

The format is documented in the README ("Mapping files"); the built-in files beside this module
(``nyc311.toml``, ``sf311.toml``, ``open311.toml``, ``native.toml``) are worked examples.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from data_sources.coords import normalize_crs, projected_to_wgs84
from data_sources.packs import MAPPING_KINDS
from incidents.model import Channel, State

#: the states a record may arrive in (ingest builds the timeline up to them)
IMPORT_STATE_NAMES = ("registered", "dispatched", "in_progress", "resolved", "closed")


class MappingError(ValueError):
    """A mapping file that cannot be used: ``where`` is ``FILE line N, key a.b``."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


def _columns(value: Any) -> Any:
    """``"Col"`` is shorthand for ``["Col"]``."""
    return [value] if isinstance(value, str) else value


def _at(key: str, message: str) -> PydanticCustomError:
    """A validator's error about one key of the table it checks (the error's line is that key's)."""
    return PydanticCustomError("mapping", "{message}", {"message": message, "key": key})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Columns = list[str]


class TextSpec(_Strict):
    """A text made of source columns: the first non-blank one, or all non-blank ones joined."""

    columns: Columns = Field(min_length=1)
    join: Optional[str] = None             # None: the first non-blank column; else join them all
    unique: bool = False                   # join: drop repeated parts
    blank_values: list[str] = []           # values read as blank (case-insensitive; 'x*' = prefix)
    otherwise: Optional["TextSpec"] = None  # used when this one comes out blank
    append: Optional["TextSpec"] = None     # appended when both are non-blank …
    append_sep: str = ", "                  # … with this separator

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value):
        if isinstance(value, (str, list)):
            return {"columns": _columns(value)}
        return value


class FieldsSpec(_Strict):
    external_id: Columns = Field(min_length=1)
    title: TextSpec
    description: Optional[TextSpec] = None
    address: Optional[TextSpec] = None
    priority: Columns = []                 # our priority names; blank -> normal
    media_urls: Columns = []               # a URL or a list of URLs (kept as links)
    void_reason: Columns = []              # overrides the status table's void reason

    @field_validator("external_id", "priority", "media_urls", "void_reason", mode="before")
    @classmethod
    def columns_shorthand(cls, v):
        return _columns(v)


class TimestampsSpec(_Strict):
    reported: Columns = Field(min_length=1)
    dispatched: Columns = []
    closed: Columns = []                   # the close (or resolve / void) time, used for such states
    deadline: Columns = []                 # the source's own deadline (Due Date, expected_datetime)
    formats: list[str] = []                # strptime formats tried before the built-in ones
    timezone: Optional[str] = None         # of zone-less times; default: the pack's
    dayfirst: bool = False                 # built-in formats read DD/MM/YYYY instead of MM/DD/YYYY
    #: a closed (resolved) time before the created time: the record is quarantined with that reason, or
    #: kept closed at its creation and flagged with the source's time
    closed_before_created: Literal["quarantine", "keep"] = "quarantine"

    @field_validator("reported", "dispatched", "closed", "deadline", mode="before")
    @classmethod
    def columns_shorthand(cls, v):
        return _columns(v)

    @field_validator("formats")
    @classmethod
    def _formats(cls, v):
        for fmt in v:
            if "%" not in fmt:
                raise ValueError(f"format {fmt!r} has no % directive (strptime format expected)")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v):
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r} (an IANA name such as 'America/New_York')") from None
        return v


class CoordinatesSpec(_Strict):
    lon: Columns = []
    lat: Columns = []
    crs: Optional[str] = None              # WGS84, GCJ02, BD09 (default: --crs, else the pack's) or any
                                           # code PROJ knows, e.g. EPSG:2263: lon/lat are then x/y
    crs_column: Columns = []               # a per-record CRS column
    placeholders: list[tuple[float, float]] = []   # (lon, lat) points that mean "no location"; 0,0 always does
    missing_note: Optional[str] = None     # the case's location note when the source gives no coordinates
    #: an unusable location (placeholder, outside the pack, unreadable) rejects the record; by default
    #: the case is kept with its location unknown, flagged and counted
    required: bool = False

    @field_validator("lon", "lat", "crs_column", mode="before")
    @classmethod
    def columns_shorthand(cls, v):
        return _columns(v)

    @field_validator("crs")
    @classmethod
    def _crs(cls, v):
        if v is None:
            return None
        try:
            return normalize_crs(v)
        except ValueError:
            projected_to_wgs84(v)          # raises "unknown CRS" for a code PROJ does not know
            return v.strip()


class StatusSpec(_Strict):
    columns: Columns = Field(min_length=1)
    notes: Columns = []                    # the status notes (a closed record noted 'Duplicate' is one)
    default: Optional[str] = None          # the status when the column is blank; None: rejected
    states: dict[str, list[str]]           # our state -> the source's status texts
    void: dict[str, str] = {}              # a source status -> void reason (the case is voided)
    duplicate_words: list[str] = []        # a status containing one of these is a duplicate (voided)
    duplicate_notes: list[str] = []        # a closed status whose notes are exactly one of these, too
    duplicate_of: Columns = []             # the source's id of the original, where it gives one
    match_before_parenthesis: bool = True  # 'Closed (Resolved)' also matches 'closed'

    @field_validator("columns", "notes", "duplicate_of", mode="before")
    @classmethod
    def columns_shorthand(cls, v):
        return _columns(v)

    @field_validator("states")
    @classmethod
    def _states(cls, v):
        seen: dict[str, str] = {}
        for state, texts in v.items():
            if state not in IMPORT_STATE_NAMES:
                raise _at(state, f"{state!r} is not a state a record may arrive in "
                                 f"(one of {', '.join(IMPORT_STATE_NAMES)}; voided ones go in [status.void])")
            for text in texts:
                key = squash(text)
                if key in seen and seen[key] != state:
                    raise _at(state, f"status {text!r} is listed under both {seen[key]} and {state}")
                seen[key] = state
        return v


class TableSpec(_Strict):
    columns: Columns = Field(min_length=1)
    table: Optional[str] = None            # the kind of rows in the pack's mapping.csv
    pack_codes: bool = False               # a value that is a code (or name) of the pack is taken as is

    @field_validator("columns", mode="before")
    @classmethod
    def columns_shorthand(cls, v):
        return _columns(v)

    @field_validator("table")
    @classmethod
    def _table(cls, v):
        if v is not None and v not in MAPPING_KINDS:
            raise ValueError(f"unknown mapping.csv kind {v!r} (one of {', '.join(MAPPING_KINDS)})")
        return v


class CategorySpec(TableSpec):
    label: str = "complaint type"          # how a missing value is named in the reason
    #: a type nothing maps: kept in the catch-all category with the source's type recorded, or rejected
    unknown: Literal["catch_all", "reject"] = "catch_all"
    catch_all: Optional[str] = None        # the catch-all category; default: the pack's '*' row of ``table``


class DepartmentSpec(TableSpec):
    from_category: bool = True             # a complaint_type row's department wins over the agency's
    unknown: Literal["none", "reject"] = "none"   # a value nothing maps: no department, or rejected
    #: an open (registered) record whose agency maps to a department is dispatched to it at the source's
    #: dispatched time (else its created time), so it counts in 派遣数 and the department's denominators
    dispatch_open: bool = True


class ChannelSpec(_Strict):
    columns: Columns = []
    default: Optional[str] = None          # the source text used when the column is blank
    unknown: Channel = Channel.HOTLINE     # the channel of a text the map does not know
    map: dict[str, Channel] = {}           # the source's text -> our channel

    @field_validator("columns", mode="before")
    @classmethod
    def columns_shorthand(cls, v):
        return _columns(v)


class MappingSpec(_Strict):
    name: Optional[str] = None             # default: the file's name without .toml
    description: str = ""
    fields: FieldsSpec
    timestamps: TimestampsSpec
    coordinates: CoordinatesSpec = CoordinatesSpec()
    status: StatusSpec
    category: CategorySpec
    department: Optional[DepartmentSpec] = None
    channel: ChannelSpec = ChannelSpec()

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}", v):
            raise ValueError("must be 1-40 letters, digits, '_', '.' or '-'")
        return v


TextSpec.model_rebuild()


def squash(text: Any) -> str:
    """Status texts compare case-insensitively with runs of blanks as one."""
    return " ".join(str(text).strip().lower().split())


# --------------------------------------------------------------------------- loading with line numbers

_KEY = r'(?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+)'
_HEADER = re.compile(rf"^\s*\[\[?\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*=")


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = re.findall(_KEY, dotted)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Where each table and key of a TOML text is written: dotted path -> line number (1-based).
    Keys inside inline tables and arrays are not indexed: their error points at the enclosing key."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    depth = 0     # open brackets/braces of a value spanning several lines
    for n, line in enumerate(text.splitlines(), start=1):
        code = line.split("#", 1)[0] if '"' not in line and "'" not in line else line
        if depth == 0:
            m = _HEADER.match(code)
            if m and "=" not in code.split("]", 1)[0]:
                table = _split_key(m.group(1))
                lines.setdefault(table, n)
                continue
            m = _ASSIGN.match(code)
            if m:
                lines.setdefault(table + _split_key(m.group(1)), n)
                code = code[m.end():]
        depth = max(0, depth + _bracket_balance(code))
    return lines


def _bracket_balance(code: str) -> int:
    balance, quote = 0, None
    for ch in code:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            balance += 1
        elif ch in "]}":
            balance -= 1
    return balance


def _where(label: str, loc: tuple, lines: dict[tuple[str, ...], int]) -> str:
    keys = tuple(str(p) for p in loc)
    for i in range(len(keys), 0, -1):
        if keys[:i] in lines:
            return f"{label} line {lines[keys[:i]]}, key {'.'.join(keys)}"
    return f"{label}, key {'.'.join(keys)}" if keys else label


def parse_spec(text: str, label: str) -> MappingSpec:
    """The validated spec of a mapping file's text; MappingError names the line and key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        where = f"{label} line {m.group(1)}" if m else label
        raise MappingError(where, f"not valid TOML: {str(exc).split(' (at line')[0]}") from None
    try:
        return MappingSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # a misspelt key first: the "required" error of the key it was meant to be follows from it
        err = next((e for e in errors if e.get("type") == "extra_forbidden"), errors[0])
        loc = tuple(p for p in err.get("loc", ()) if not str(p).startswith("function-"))
        if "key" in (err.get("ctx") or {}):
            loc += (err["ctx"]["key"],)
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key (a typo? see the README's 'Mapping files')"
        elif err.get("type") == "missing":
            msg = "is required"
        raise MappingError(_where(label, loc, key_lines(text)), msg) from None


def read_spec(path: Path) -> MappingSpec:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(str(path), f"cannot be read ({exc})") from None
    return parse_spec(text, Path(path).name)


__all__ = ["MappingError", "MappingSpec", "key_lines", "parse_spec", "read_spec", "squash"]
