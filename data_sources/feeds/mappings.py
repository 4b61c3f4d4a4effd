"""Named mappings from real feeds' records to :class:`IncomingCase`: ``nyc311``, ``sf311``,
``open311`` (GeoReport v2) and ``native`` (our own column names).

What maps to which department and category is data, in the pack's ``mapping.csv``
(kind ``agency`` / ``queue`` -> department, ``complaint_type`` -> category; a trailing ``*``
matches by prefix, ``*`` alone is the catch-all, e.g. to a triage category). A complaint type
the table does not know is rejected ("unknown complaint type") and quarantined.
"""
from __future__ import annotations

from typing import Any, Optional

from data_sources.feeds.base import FeedContext, IncomingCase, Rejected, blank, check_sizes, validate_case
from incidents.model import Channel, Priority, State


# --------------------------------------------------------------------------- shared rules

_STATUS = {
    State.REGISTERED: ("open", "new", "unassigned", "email sent", "submitted", "received", "registered",
                       "reported", "acknowledged", "not started"),
    State.DISPATCHED: ("assigned", "pending", "dispatched", "in queue", "referred"),
    State.IN_PROGRESS: ("in progress", "in_progress", "started", "working", "on site", "in process"),
    State.RESOLVED: ("resolved",),
    State.CLOSED: ("closed", "completed", "complete", "done", "fixed", "closed - resolved"),
}
_STATUS_LOOKUP = {text: state for state, texts in _STATUS.items() for text in texts}
_VOID = {"cancelled": "invalid", "canceled": "invalid", "void": "invalid", "voided": "invalid",
         "invalid": "invalid", "rejected": "invalid", "withdrawn": "invalid"}


def normalise_status(status: Any, notes: Any = None) -> tuple[State, Optional[str]]:
    """A source's status -> (our state, void reason). ``Closed (Duplicate)`` and closed records
    whose notes say ``Duplicate`` are voided as duplicates."""
    if blank(status):
        raise Rejected("status: is missing")
    text = " ".join(str(status).strip().lower().split())
    if "duplicate" in text or (text.startswith("closed") and str(notes or "").strip().lower() == "duplicate"):
        return State.VOIDED, "duplicate"
    if text in _VOID:
        return State.VOIDED, _VOID[text]
    if text in _STATUS_LOOKUP:
        return _STATUS_LOOKUP[text], None
    base = text.split("(")[0].strip()
    if base in _STATUS_LOOKUP:
        return _STATUS_LOOKUP[base], None
    raise Rejected(f"status: unknown status {str(status)[:60]!r}")


_CHANNELS = {"phone": Channel.HOTLINE, "call": Channel.HOTLINE, "12345": Channel.HOTLINE,
             "online": Channel.APP, "web": Channel.APP, "mobile": Channel.APP, "mobile/open311": Channel.APP,
             "open311": Channel.APP, "twitter": Channel.APP, "email": Channel.APP, "app": Channel.APP,
             "iframe": Channel.APP, "integrated agency": Channel.GRID, "other department": Channel.GRID,
             "grid": Channel.GRID, "iot": Channel.IOT, "video": Channel.VIDEO}


def channel_of(value: Any) -> Channel:
    text = str(value or "").strip().lower()
    try:
        return Channel(text)
    except ValueError:
        return _CHANNELS.get(text, Channel.HOTLINE)


def category_of(ctx: FeedContext, *values: Any) -> tuple[str, Optional[str]]:
    """(category code, department override) from the pack's complaint_type rows: the first of
    ``values`` that an exact row knows wins, else the first prefix / catch-all match."""
    table = ctx.mapping_table
    given = [str(v).strip() for v in values if not blank(v)]
    if not given:
        raise Rejected("complaint type: is missing")
    exact = [table.lookup("complaint_type", v) for v in given]
    for rule in exact:
        if rule is not None and not rule.value.endswith("*"):
            return rule.category_code, rule.department_code
    for rule in exact:
        if rule is not None:
            return rule.category_code, rule.department_code
    raise Rejected(f"unknown complaint type {given[0][:80]!r}: not in pack {ctx.pack.name}'s mapping.csv "
                   "(add a complaint_type row, or a '*' row to send unknown types to triage)")


def department_of(ctx: FeedContext, kind: str, value: Any) -> Optional[str]:
    rule = ctx.mapping_table.lookup(kind, None if blank(value) else str(value))
    return rule.department_code if rule else None


def _get(raw: dict, *keys: str) -> Any:
    for key in keys:
        if key in raw and not blank(raw[key]):
            return raw[key]
    return None


def _finish(ctx: FeedContext, fields: dict, state: State, void_reason: Optional[str],
            closed: Any, dispatched: Any = None) -> IncomingCase:
    fields["state"], fields["void_reason"] = state, void_reason
    if state == State.CLOSED:
        fields["closed_at"] = closed
        fields["resolved_at"] = closed
    elif state == State.RESOLVED:
        fields["resolved_at"] = closed
    elif state == State.VOIDED:
        fields["closed_at"] = closed
    if state in (State.DISPATCHED, State.IN_PROGRESS, State.RESOLVED, State.CLOSED):
        fields["dispatched_at"] = dispatched
    return validate_case(fields, ctx)


# --------------------------------------------------------------------------- the mappings

class Nyc311:
    """NYC Open Data 311 (erm2-nwe9), the 41-column export."""

    name = "nyc311"

    def to_case(self, raw: dict, ctx: FeedContext) -> IncomingCase:
        check_sizes(raw)
        complaint, descriptor = _get(raw, "Complaint Type"), _get(raw, "Descriptor")
        category, dept = category_of(ctx, complaint)
        state, void_reason = normalise_status(_get(raw, "Status"), _get(raw, "Resolution Description"))
        title = f"{complaint} - {descriptor}" if complaint and descriptor else complaint
        address = _get(raw, "Incident Address") or " / ".join(
            str(v) for v in (_get(raw, "Intersection Street 1"), _get(raw, "Intersection Street 2")) if v) or ""
        if address and not blank(raw.get("Borough")) and raw.get("Borough") != "Unspecified":
            address = f"{address}, {raw['Borough']}"
        fields = dict(external_id=_get(raw, "Unique Key"), title=title,
                      description=_get(raw, "Resolution Description") or "", address=address,
                      category_code=category,
                      department_code=dept or department_of(ctx, "agency", _get(raw, "Agency")),
                      channel=channel_of(_get(raw, "Open Data Channel Type")),
                      reported_at=_get(raw, "Created Date"), lon=_get(raw, "Longitude"), lat=_get(raw, "Latitude"),
                      source_status=str(_get(raw, "Status") or ""))
        if blank(fields["lon"]) and blank(fields["lat"]):
            fields["location_note"] = "no coordinates in the source"
        closed = _get(raw, "Closed Date") or (
            _get(raw, "Resolution Action Updated Date") if state in (State.CLOSED, State.VOIDED) else None)
        return _finish(ctx, fields, state, void_reason, closed)


class Sf311:
    """DataSF 311 cases (the BigQuery san_francisco.311_service_requests layout): ``agency_name``
    is a work queue, mapped to a department by the pack's ``queue`` rows."""

    name = "sf311"

    def to_case(self, raw: dict, ctx: FeedContext) -> IncomingCase:
        check_sizes(raw)
        category_text = _get(raw, "category")
        category, dept = category_of(ctx, category_text, _get(raw, "complaint_type"))
        state, void_reason = normalise_status(_get(raw, "status"), _get(raw, "status_notes"))
        parts = [str(p).strip() for p in (category_text, _get(raw, "complaint_type"), _get(raw, "descriptor"))
                 if not blank(p) and str(p).strip().lower() != "other"]
        address = _get(raw, "incident_address") or ""
        if str(address).strip().lower().startswith("not associated"):
            address = ""
        fields = dict(external_id=_get(raw, "unique_key"), title=" - ".join(dict.fromkeys(parts)) or category_text,
                      description=_get(raw, "status_notes") or "", address=address, category_code=category,
                      department_code=dept or department_of(ctx, "queue", _get(raw, "agency_name")),
                      channel=channel_of(_get(raw, "source")), reported_at=_get(raw, "created_date"),
                      lon=_get(raw, "longitude"), lat=_get(raw, "latitude"),
                      source_status=str(_get(raw, "status") or ""))
        closed = _get(raw, "closed_date", "resolution_action_updated_date")
        return _finish(ctx, fields, state, void_reason, closed)


class Open311:
    """Open311 GeoReport v2 ``requests.json`` records. The category comes from the pack's
    complaint_type rows by ``service_code`` (exact) or else ``service_name``; the department from
    ``agency_responsible`` (agency rows), else the pack's routing."""

    name = "open311"

    def to_case(self, raw: dict, ctx: FeedContext) -> IncomingCase:
        check_sizes({k: v for k, v in raw.items() if isinstance(v, str)})
        code = _get(raw, "service_code")
        rule = None if blank(code) else ctx.mapping_table.lookup("complaint_type", str(code).strip())
        if not blank(code) and str(code).strip() in ctx.category_codes and (rule is None or rule.value.endswith("*")):
            category, dept = str(code).strip(), None   # a server of the same pack (ours): codes are categories
        else:
            category, dept = category_of(ctx, code, _get(raw, "service_name"))
        state, void_reason = normalise_status(_get(raw, "status"), _get(raw, "status_notes"))
        closed = None
        if state in (State.CLOSED, State.VOIDED, State.RESOLVED):
            closed = _closing_note_time(raw) or _get(raw, "updated_datetime")
        ext = raw.get("extended_attributes") if isinstance(raw.get("extended_attributes"), dict) else {}
        fields = dict(external_id=_get(raw, "service_request_id", "token"),
                      title=_get(raw, "service_name") or _get(raw, "service_code"),
                      description=_get(raw, "description", "status_notes") or "",
                      address=_get(raw, "address") or "", category_code=category,
                      department_code=dept or department_of(ctx, "agency", _get(raw, "agency_responsible"))
                      or _pack_department(ctx, _get(raw, "agency_responsible")),
                      channel=channel_of(ext.get("channel") or "open311"),
                      reported_at=_get(raw, "requested_datetime"), lon=_get(raw, "long", "lon"),
                      lat=_get(raw, "lat"), source_status=str(_get(raw, "status") or ""),
                      media_urls=_get(raw, "media_url"))
        if blank(fields["lon"]) and blank(fields["lat"]):
            fields["location_note"] = "no coordinates in the source"
        return _finish(ctx, fields, state, void_reason, closed)


def _pack_department(ctx: FeedContext, agency: Any) -> Optional[str]:
    """A department of the pack named by its code or its name (a server of the same pack)."""
    if blank(agency):
        return None
    text = str(agency).strip()
    if text in ctx.department_codes:
        return text
    return next((d.code for d in ctx.pack.departments if text in (d.name, getattr(d, "name_en", None))), None)


def _closing_note_time(raw: dict) -> Any:
    notes = raw.get("notes")
    if isinstance(notes, list):
        times = [n.get("datetime") for n in notes if isinstance(n, dict) and n.get("type") == "closed"]
        times = [t for t in times if not blank(t)]
        if times:
            return times[-1]
    return None


class Native:
    """Our own layout (exports, partner systems, the push API): external_id, title, description,
    address, category_code, department_code, state (our state names or common words), reported_at,
    dispatched_at, closed_at, lon, lat, crs (per record, else the feed's), channel, priority,
    media_urls (or media_url: photo URLs, kept as links with a new case's report)."""

    name = "native"

    def to_case(self, raw: dict, ctx: FeedContext) -> IncomingCase:
        check_sizes({k: v for k, v in raw.items() if isinstance(v, str)})
        code = _get(raw, "category_code", "category")
        if blank(code):
            raise Rejected("category_code: is missing")
        code = str(code).strip()
        if code not in ctx.category_codes:
            code, _ = category_of(ctx, code)  # a pack may map foreign codes; else "unknown complaint type"
        state, void_reason = normalise_status(_get(raw, "state", "status") or "registered")
        fields = dict(external_id=_get(raw, "external_id", "id"), title=_get(raw, "title"),
                      description=_get(raw, "description") or "", address=_get(raw, "address") or "",
                      category_code=code, department_code=_get(raw, "department_code", "department"),
                      channel=channel_of(_get(raw, "channel") or "12345"),
                      priority=_get(raw, "priority") or Priority.NORMAL,
                      reported_at=_get(raw, "reported_at", "created_at"),
                      lon=_get(raw, "lon", "longitude"), lat=_get(raw, "lat", "latitude"),
                      crs=_get(raw, "crs"), source_status=str(_get(raw, "state", "status") or ""),
                      void_reason=_get(raw, "void_reason") or void_reason,
                      media_urls=_get(raw, "media_urls", "media_url"))
        return _finish(ctx, fields, state, fields["void_reason"], _get(raw, "closed_at", "resolved_at"),
                       _get(raw, "dispatched_at"))


MAPPINGS: dict[str, Any] = {m.name: m for m in (Nyc311(), Sf311(), Open311(), Native())}


def get_mapping(name: str):
    try:
        return MAPPINGS[name]
    except KeyError:
        raise KeyError(f"unknown mapping {name!r}; expected one of {', '.join(MAPPINGS)}") from None


__all__ = ["MAPPINGS", "Native", "Nyc311", "Open311", "Sf311", "category_of", "channel_of", "get_mapping",
           "normalise_status"]
