"""The one generic mapper: a :class:`MappingSpec` (a mapping file) applied to raw records.

A column name is looked up as written; when the record has no such key and the name contains a
dot or a bracket it is a path into nested JSON / XML: ``extended_attributes.channel`` (a member),
``notes[type=closed].datetime`` (of the list ``notes``, the last item whose ``type`` is
``closed``, its ``datetime``).
"""
from __future__ import annotations

import re
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Optional
from zoneinfo import ZoneInfo

from data_sources.coords import SUPPORTED_CRS, projected_to_wgs84
from data_sources.feeds.base import FeedContext, IncomingCase, Leniency, Rejected, blank, check_sizes, parse_number, \
    parse_timestamp, validate_case
from data_sources.feeds.mappings.spec import MappingSpec, TextSpec, squash
from incidents.model import Channel, Priority, State

_STEP = re.compile(r"^([^.\[\]]+)(?:\[([^=\]]+)=([^\]]*)\])?$")
#: states whose record carries a dispatch (the mapping's dispatched time, if any)
_DISPATCHED_STATES = (State.DISPATCHED, State.IN_PROGRESS, State.RESOLVED, State.CLOSED)


def _path_value(raw: Any, path: str) -> Any:
    value = raw
    for step in path.split("."):
        m = _STEP.match(step.strip())
        if m is None or not isinstance(value, dict):
            return None
        value = value.get(m.group(1))
        if m.group(2) is not None:
            if not isinstance(value, list):
                return None
            key, want = m.group(2).strip(), m.group(3).strip()
            hits = [x for x in value if isinstance(x, dict) and str(x.get(key, "")).strip() == want]
            value = hits[-1] if hits else None
    return value


def column(raw: dict, name: str) -> Any:
    if name in raw:
        return raw[name]
    if "." in name or "[" in name:
        return _path_value(raw, name)
    return None


def first(raw: dict, columns: list[str]) -> Any:
    """The first non-blank value of ``columns``, else None."""
    for name in columns:
        value = column(raw, name)
        if not blank(value):
            return value
    return None


def _blank_text(value: Any, blank_values: list[str]) -> bool:
    if blank(value):
        return True
    text = squash(value)
    for b in blank_values:
        b = squash(b)
        if (b.endswith("*") and text.startswith(b[:-1])) or text == b:
            return True
    return False


def text(raw: dict, spec: Optional[TextSpec]) -> str:
    if spec is None:
        return ""
    values = [str(v).strip() for v in (column(raw, c) for c in spec.columns)
              if not _blank_text(v, spec.blank_values)]
    if spec.join is None:
        out = values[0] if values else ""
    else:
        out = spec.join.join(dict.fromkeys(values) if spec.unique else values)
    if not out and spec.otherwise is not None:
        out = text(raw, spec.otherwise)
    if out and spec.append is not None:
        tail = text(raw, spec.append)
        if tail:
            out = f"{out}{spec.append_sep}{tail}"
    return out


class DeclarativeMapping:
    """A mapping read from a file. ``name`` is the feed name and default source label; ``ref`` is
    what finds it again (a built-in's name, else the file's absolute path) for quarantine retries."""

    def __init__(self, spec: MappingSpec, ref: str, path: Optional[Path] = None):
        self.spec, self.ref, self.path = spec, ref, path
        self.name = spec.name or (path.stem if path else ref)
        self.dayfirst = spec.timestamps.dayfirst
        crs = spec.coordinates.crs
        # WGS84 / GCJ02 / BD09 are the feed's CRS (validation converts); any other the mapper projects
        self.crs = crs if crs in SUPPORTED_CRS or crs is None else None
        self._project = projected_to_wgs84(crs) if self.crs is None and crs is not None else None
        st = spec.status
        self._states = {squash(t): State(state) for state, texts in st.states.items() for t in texts}
        self._void = {squash(t): reason for t, reason in st.void.items()}
        self._dup_words = [squash(w) for w in st.duplicate_words]
        self._dup_notes = {squash(w) for w in st.duplicate_notes}
        self._channels = {squash(t): ch for t, ch in spec.channel.map.items()}
        self._leniency = Leniency(location_required=spec.coordinates.required,
                                  closed_before_created=spec.timestamps.closed_before_created)

    def __repr__(self) -> str:
        return f"<mapping {self.name} ({self.ref})>"

    @cached_property
    def _tz(self) -> Optional[ZoneInfo]:
        tz = self.spec.timestamps.timezone
        return ZoneInfo(tz) if tz else None

    # ------------------------------------------------------------------ rules

    def status(self, raw: dict) -> tuple[State, Optional[str], str]:
        """(our state, void reason, the status as the source said it)."""
        st = self.spec.status
        value = first(raw, st.columns)
        said = "" if value is None else str(value)
        if value is None:
            if st.default is None:
                raise Rejected("status: is missing")
            value = st.default
        key = squash(value)
        notes = squash(first(raw, st.notes) or "")
        if any(w in key for w in self._dup_words) or (
                self._dup_notes and notes in self._dup_notes and self._state_of(key) == State.CLOSED):
            return State.VOIDED, "duplicate", said
        if key in self._void:
            return State.VOIDED, self._void[key], said
        state = self._state_of(key)
        if state is None:
            raise Rejected(f"status: unknown status {str(value)[:60]!r}")
        return state, None, said

    def _state_of(self, key: str) -> Optional[State]:
        if key in self._states:
            return self._states[key]
        if self.spec.status.match_before_parenthesis:
            return self._states.get(key.split("(")[0].strip())
        return None

    def category(self, raw: dict, ctx: FeedContext) -> tuple[str, Optional[str], Optional[str]]:
        """(category code, the department a complaint_type row names, the source's type when the
        mapping does not know it): per value an exact row or a pack code, then per value a prefix row;
        a type nothing maps goes to the catch-all category (the mapping's ``catch_all``, else the
        pack's ``*`` row) unless the mapping rejects unknown types."""
        spec = self.spec.category
        given = [str(v).strip() for v in (column(raw, c) for c in spec.columns) if not blank(v)]
        if not given:
            raise Rejected(f"{spec.label}: is missing")
        table = ctx.mapping_table if spec.table else None
        rules = [table.lookup(spec.table, v) if table is not None else None for v in given]
        for value, rule in zip(given, rules):
            if rule is not None and not rule.value.endswith("*"):
                return rule.category_code, rule.department_code, None
            if spec.pack_codes and value in ctx.category_codes:
                return value, None, None
        for rule in rules:
            if rule is not None and rule.value.strip() != "*":
                return rule.category_code, rule.department_code, None
        catch_all = next((r for r in rules if r is not None), None)
        if spec.unknown == "catch_all" and spec.catch_all:
            return spec.catch_all, None, given[0]
        if spec.unknown == "catch_all" and catch_all is not None:
            return catch_all.category_code, catch_all.department_code, given[0]
        raise Rejected(f"unknown complaint type {given[0][:80]!r}: not in pack {ctx.pack.name}'s mapping.csv "
                       + ("(the mapping rejects unknown types)" if spec.unknown == "reject" else
                          "(add a complaint_type row, or a '*' row or the mapping's [category] catch_all "
                          "to keep unknown types in a catch-all category)"))

    def department(self, raw: dict, ctx: FeedContext, from_category: Optional[str]) -> Optional[str]:
        spec = self.spec.department
        if spec is None:
            return None
        if spec.from_category and from_category:
            return from_category
        value = first(raw, spec.columns)
        if value is None:
            return None
        text_value = str(value).strip()
        if spec.table:
            rule = ctx.mapping_table.lookup(spec.table, text_value)
            if rule is not None:
                return rule.department_code
        if spec.pack_codes:
            if text_value in ctx.department_codes:
                return text_value
            hit = next((d.code for d in ctx.pack.departments
                        if text_value in (d.name, getattr(d, "name_en", None))), None)
            if hit:
                return hit
        return text_value if spec.unknown == "reject" else None   # validation names the bad code

    def channel(self, raw: dict) -> Channel:
        spec = self.spec.channel
        value = first(raw, spec.columns) if spec.columns else None
        if value is None:
            value = spec.default
        key = squash(value or "")
        try:
            return Channel(key)
        except ValueError:
            return self._channels.get(key, spec.unknown)

    def timestamp(self, raw: dict, columns: list[str], ctx: FeedContext) -> Any:
        """The first non-blank of ``columns`` as an aware datetime: the mapping's formats first, then
        the built-in ones. An unreadable value is returned as it is: validation rejects it with the
        reason ("unreadable timestamp"), in the same order as every other field's."""
        value = first(raw, columns)
        if value is None:
            return None
        tz = self._tz or ctx.tz
        if isinstance(value, str):
            raw_text = value.strip()
            for fmt in self.spec.timestamps.formats:
                try:
                    return parse_timestamp(datetime.strptime(raw_text, fmt), tz)
                except ValueError:
                    continue
        try:
            return parse_timestamp(value, tz, dayfirst=self.dayfirst)
        except (ValueError, TypeError, OverflowError):
            return value

    def source_deadline(self, raw: dict, ctx: FeedContext) -> Optional[datetime]:
        """The source's own deadline (``[timestamps] deadline``), or None; Rejected when unreadable.
        Ingest makes it the case's deadline in force (``Incident.source_deadline``)."""
        value = self.timestamp(raw, self.spec.timestamps.deadline, ctx)
        if value is not None and not isinstance(value, datetime):
            raise Rejected(f"deadline: unreadable timestamp {str(value)[:60]!r}")
        return value

    def duplicate_of(self, raw: dict) -> Optional[str]:
        """The source's id of the case a duplicate repeats, where the mapping names that column."""
        value = first(raw, self.spec.status.duplicate_of)
        return None if value is None else str(value).strip()

    def _location(self, raw: dict) -> dict:
        spec = self.spec.coordinates
        lon = first(raw, spec.lon) if spec.lon else None
        lat = first(raw, spec.lat) if spec.lat else None
        out: dict[str, Any] = {"lon": lon, "lat": lat, "crs": first(raw, spec.crs_column) if spec.crs_column else None}
        if lon is None and lat is None:
            if spec.missing_note:
                out["location_note"] = spec.missing_note
            return out
        try:
            x, y = parse_number(lon), parse_number(lat)
        except ValueError:
            return out          # validation names the unreadable one
        for px, py in spec.placeholders:       # in the source's own CRS and units
            if x is not None and y is not None and abs(x - px) < 1e-9 and abs(y - py) < 1e-9:
                said = f"placeholder coordinates {px:g},{py:g}"
                out.update(lon=None, lat=None, location_note=f"{said}: not plotted", flags={"location unknown": said})
                return out
        if self._project is not None and x is not None and y is not None and (x, y) != (0, 0):
            lon, lat = self._project(x, y)
            out.update(lon=lon, lat=lat, crs="WGS84")
        return out

    # ------------------------------------------------------------------ the contract

    def to_case(self, raw: dict, ctx: FeedContext) -> IncomingCase:
        check_sizes(raw)
        spec = self.spec
        category, category_dept, unknown_type = self.category(raw, ctx)
        state, void_reason, said = self.status(raw)
        f = spec.fields
        fields: dict[str, Any] = dict(
            external_id=first(raw, f.external_id), title=text(raw, f.title),
            description=text(raw, f.description), address=text(raw, f.address), category_code=category,
            department_code=self.department(raw, ctx, category_dept), channel=self.channel(raw),
            priority=(first(raw, f.priority) if f.priority else None) or Priority.NORMAL,
            reported_at=self.timestamp(raw, spec.timestamps.reported, ctx),
            source_status=said, media_urls=first(raw, f.media_urls) if f.media_urls else None,
            **self._location(raw))
        if unknown_type is not None:
            fields["source_type"] = unknown_type[:200]
            fields["flags"] = {**fields.get("flags", {}), "unknown type": unknown_type[:200]}
        given_reason = first(raw, f.void_reason) if f.void_reason else None
        fields["state"], fields["void_reason"] = state, given_reason or void_reason
        closed = self.timestamp(raw, spec.timestamps.closed, ctx) \
            if state in (State.CLOSED, State.RESOLVED, State.VOIDED) else None
        if state == State.CLOSED:
            fields["closed_at"] = fields["resolved_at"] = closed
        elif state == State.RESOLVED:
            fields["resolved_at"] = closed
        elif state == State.VOIDED:
            fields["closed_at"] = closed
        if spec.timestamps.deadline:
            fields["deadline"] = self.source_deadline(raw, ctx)
        if (state == State.REGISTERED and fields["department_code"] and spec.department.dispatch_open
                and first(raw, spec.department.columns) is not None):
            # the source names the agency handling it: dispatched there at the source's time
            state = fields["state"] = State.DISPATCHED
        if state in _DISPATCHED_STATES and spec.timestamps.dispatched:
            fields["dispatched_at"] = self.timestamp(raw, spec.timestamps.dispatched, ctx)
        return validate_case(fields, ctx, self._leniency)


__all__ = ["DeclarativeMapping", "column", "first", "text"]
