"""Open311 GeoReport v2 at /open311/v2/ (DESIGN.md §8), JSON and XML.

    GET  discovery.{json,xml}                  what this endpoint is and speaks
    GET  services.{json,xml}                   our categories as services (service_code = category code)
    GET  services/<code>.{json,xml}            a service definition (no extra attributes: metadata false)
    GET  requests.{json,xml}                   service requests: service_request_id, service_code, start_date,
                                               end_date, status (+ page, page_size: our extension)
    GET  requests/<id>.{json,xml}              one service request (by its service_request_id, below)
    POST requests.{json,xml}                   create one (form-encoded, api_key required; a photo as
                                               media_url, or as a multipart file field media)

Reading is public (the gate in ``data_sources.web.gate`` lets /open311/v2/ through) and answers never
carry personal data: no reporter name, phone or e-mail; phone and ID-card numbers a citizen typed
into free text are masked by ``incidents.permissions.mask_personal_text`` (the rule the API applies
for viewers); coordinates are rounded to about 100 m. With the setting ``OPEN311_REQUIRE_KEY`` every
GET but discovery needs a valid ``api_key`` too. Creating needs ``api_key`` = an API token of a
user whose role may create cases through the REST API too; the case goes through
``incidents.services.create_case`` (channel ``app``, source ``open311``) like any other door.
Photos: ``media_url`` is kept as a link (the server never fetches it); a ``media`` file is checked,
re-encoded without its EXIF and stored (``incidents.media``). Answers give ``media_url`` (the first
photo or link) and ``media_urls`` (our extension: all of them); a stored photo's URL is the REST API's,
which serves it only to a login that may see the case. Our states collapse to open/closed (closed and voided → closed); ``expected_datetime`` is the
deadline (null until dispatched), ``sign_for_datetime`` (our extension) the department's sign-for
deadline (签收时限) of the current dispatch; ``agency_responsible`` is the lead department (主办) and
``assisting_departments`` (our extension) the assisting ones (协办) of the current dispatch, each with
its state (dispatched / signed / replied), its sign-for and reply deadlines and when it replied (never
its reply text); ``first_contact_datetime`` (先行联系), ``resolution`` (solved 实际解决 / explained
解释说明), ``revisit_result`` and ``revisit_datetime`` (回访 of the current closure: satisfied, basic,
unsatisfied, unreachable) are our extensions too; times are ISO 8601 with the city's offset. Errors follow the
spec: ``[{"code": 400, "description": "…"}]`` or ``<errors><error><code>…``.

Ids: a request's ``service_request_id`` is the id its source gave it (the case's ``external_id``:
``18-00275429`` for a case imported from another city's Open311 server or 311 export, pulled, or
pushed to /api/v1) and our internal case id for a case this server made (our own POST — the id its
answer gave — and the demo feed). ``requests/<id>`` and the ``service_request_id`` filter look an
id up as a source's id first; a number no source uses is an internal id, so the internal ids this
endpoint answered before keep working wherever no source's id shadows them. An id two sources gave
names two requests: the list filter answers both, ``requests/<id>`` answers 400 naming their
internal ids. ``updated_datetime`` is the case's last change (the time of its last event; for an
imported case the source's time), not when the row was last written.

``api_key`` travels in the body (form field or JSON member) or the ``X-Api-Key`` header, never in the
query string: a URL is logged and kept by every proxy on the way, so a key there is refused (400).
"""
from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any, Optional
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy import func, select

from data_sources.feeds.simulator import SOURCE as DEMO_SOURCE
from data_sources.runtime import get_runtime
from data_sources.store.db import RETRY_AFTER_SECONDS, get_db, is_unavailable
from data_sources.store.media import get_media_store
from incidents import auth, bounds, commands, media, permissions, services
from incidents.lifecycle import DomainError
from incidents.queries.cases import parts_of
from incidents.queries.media import attachments_by_case
from incidents.model import ASSIST_ACTIONS, Channel, Role, State, TimeUnit
from incidents.tables import Category, Department, Incident, IncidentEvent

PREFIX = "/open311/v2"
bp = Blueprint("open311_v2", __name__, url_prefix=PREFIX)

SOURCE = "open311"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-01T00:00:00+08:00"   # when this endpoint's behaviour last changed
DEFAULT_WINDOW = timedelta(days=90)          # spec: without dates, the last 90 days; a range spans ≤ 90 days
MAX_RESULTS = 1000                           # spec: at most 1000 requests per answer
#: the roles whose API token is a valid api_key (the same as POST /api/v1/incidents)
CREATOR_ROLES = permissions.CREATE_ROLES
CLOSED_STATES = (State.CLOSED.value, State.VOIDED.value)
UNIT_ZH = {TimeUnit.WORK_HOURS.value: "工作时", TimeUnit.WORK_DAYS.value: "工作日",
           TimeUnit.NATURAL_HOURS.value: "小时"}
KIND_ZH = {"component": "部件", "event": "事件"}
FMT = "<any(json,xml):fmt>"
#: decimals of the coordinates public answers show: 3 ≈ 110 m north–south (≈ 100 m east–west at 30°N),
#: enough for a map of the city, not enough to find a citizen's door
PUBLIC_COORD_DECIMALS = 3
API_KEY_HEADER = "X-Api-Key"
# characters XML 1.0 cannot carry at all, even escaped: dropped from text
_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Open311Error(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


# =========================================================================== rendering


def _fmt() -> str:
    fmt = (request.view_args or {}).get("fmt")
    if fmt in ("json", "xml"):
        return fmt
    return "xml" if request.path.endswith(".xml") else "json"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _XML_INVALID.sub("", str(value))


def _element(parent: ET.Element, tag: str, value: Any) -> None:
    child = ET.SubElement(parent, tag)
    if isinstance(value, dict):
        for k, v in value.items():
            _element(child, k, v)
    elif isinstance(value, list):
        # a list of scalars repeats the singular tag (formats → format); of dicts, the same
        item_tag = tag[:-1] if tag.endswith("s") else "item"
        for v in value:
            _element(child, item_tag, v)
    else:
        child.text = _text(value)


def _xml(root_tag: str, item_tag: Optional[str], payload: Any) -> str:
    root = ET.Element(root_tag)
    if item_tag is None:
        for k, v in payload.items():
            _element(root, k, v)
    else:
        for item in payload:
            node = ET.SubElement(root, item_tag)
            for k, v in item.items():
                _element(node, k, v)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def _answer(payload: Any, root_tag: str, item_tag: Optional[str], status: int = 200) -> Response:
    if _fmt() == "xml":
        return Response(_xml(root_tag, item_tag, payload), status=status,
                        content_type="text/xml; charset=utf-8")
    return Response(json.dumps(payload, ensure_ascii=False), status=status,
                    content_type="application/json; charset=utf-8")


def _errors(status: int, description: str) -> Response:
    return _answer([{"code": status, "description": description}], "errors", "error", status)


@bp.errorhandler(Open311Error)
def _on_error(exc: Open311Error):
    return _errors(exc.status, exc.description)


#: domain errors answered with their own status (a bad photo); every other one is a 400
_DOMAIN_STATUS = {media.MediaTooLarge.code: 413, media.UnsupportedMedia.code: 415}


@bp.errorhandler(DomainError)
def _on_domain_error(exc: DomainError):
    return _errors(_DOMAIN_STATUS.get(exc.code, 400), exc.message)


@bp.errorhandler(Exception)
def _on_unexpected(exc: Exception):
    from werkzeug.exceptions import HTTPException
    if isinstance(exc, HTTPException):
        return _errors(exc.code or 500, exc.description or exc.name)
    if is_unavailable(exc):   # the database is away: try again shortly
        answer = _errors(503, "the service is unavailable at the moment; try again shortly")
        answer.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return answer
    current_app.logger.exception("Open311 error on %s %s", request.method, request.path)
    return _errors(500, "internal error; it has been logged")


# =========================================================================== helpers


def _tz() -> ZoneInfo:
    return ZoneInfo(get_runtime(current_app).timezone)


def _iso(value: Optional[datetime], tz: ZoneInfo) -> Optional[str]:
    return value.astimezone(tz).isoformat(timespec="seconds") if value is not None else None


def _parse_time(name: str, tz: ZoneInfo) -> Optional[datetime]:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+") if raw.count(" ") == 1 and "T" in raw else raw)
    except ValueError:
        raise Open311Error(400, f"{name} {raw!r} is not an ISO 8601 date-time "
                                f"(e.g. 2026-11-18T10:00:00+08:00)") from None
    if value.tzinfo is None:  # without an offset: city time
        value = value.replace(tzinfo=tz)
    return value.astimezone(timezone.utc)


def _list_arg(name: str) -> list[str]:
    values = [v.strip() for raw in request.args.getlist(name) for v in raw.split(",") if v.strip()]
    for value in values:
        if bounds.text_fault(value):
            raise Open311Error(400, f"{name} {bounds.text_fault(value)}")
    return values


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise Open311Error(400, f"{name} must be an integer from {lo} to {hi}")
    return int(raw)


def _public_text(value: Optional[str]) -> Optional[str]:
    """Free text as the public may see it (role None): phone and ID-card numbers masked."""
    return permissions.mask_personal_text(value, None) if value else None


def _public_coordinate(value: Optional[float]) -> Optional[float]:
    return round(value, PUBLIC_COORD_DECIMALS) if value is not None else None


def _body() -> dict:
    """The POST body's fields: form-encoded (the spec) or a JSON object."""
    if request.is_json:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}
    return request.form


def _api_key() -> str:
    """The api_key of this request, from the body or the X-Api-Key header; one in the URL is refused."""
    if "api_key" in request.args:
        raise Open311Error(400, "api_key must not be sent in the URL (it would stay in logs and "
                                f"histories): send it in the request body or the {API_KEY_HEADER} header")
    value = request.headers.get(API_KEY_HEADER) or (_body().get("api_key") if request.method == "POST" else None)
    return str(value or "").strip()


def _key_user(api_key: str):
    """(username, role) of a valid api_key, else a 403 in the spec's format."""
    if not api_key:
        raise Open311Error(403, f"api_key is required (request body or {API_KEY_HEADER} header)")
    with get_db().session_scope() as s:
        user = auth.user_for_token(s, api_key)
        if user is None:
            raise Open311Error(403, "api_key is not valid")
        return user.username, Role(user.role)


@bp.before_request
def _reading_may_need_a_key():
    if request.method in ("GET", "HEAD") and current_app.config.get("OPEN311_REQUIRE_KEY") \
            and request.endpoint not in (f"{bp.name}.discovery", f"{bp.name}._root"):
        _key_user(_api_key())


def _service(cat: Category) -> dict:
    unit = UNIT_ZH.get(cat.time_unit, cat.time_unit)
    kind = KIND_ZH.get(cat.kind, cat.kind)
    limit = f"{cat.time_limit:g}"
    return {"service_code": cat.code, "service_name": cat.name,
            "description": f"{cat.major_name} · {cat.name}（{kind}类，处置时限 {limit} {unit}）",
            "metadata": False, "type": "realtime",
            "keywords": ",".join(k for k in (cat.name, cat.major_name, kind, cat.name_en) if k),
            "group": cat.major_name}


# =========================================================================== discovery and services


@bp.get("/")
def _root():
    return discovery("json")


@bp.get(f"/discovery.{FMT}")
def discovery(fmt: str):
    cfg = current_app.config
    url = request.url_root.rstrip("/") + PREFIX
    payload = {
        "changeset": CHANGESET,
        "contact": cfg.get("OPEN311_CONTACT") or "12345 政务服务便民热线",
        "key_service": cfg.get("OPEN311_KEY_SERVICE") or "api_key: an API token issued by the city's "
                                                         "administrator (flask create-token USER)",
        "endpoints": [{"specification": SPECIFICATION, "url": url, "changeset": CHANGESET,
                       "type": "production", "formats": ["application/json", "text/xml"]}],
    }
    return _answer(payload, "discovery", None)


@bp.get(f"/services.{FMT}")
def list_services(fmt: str):
    with get_db().session_scope() as s:
        items = [_service(c) for c in s.scalars(select(Category).order_by(Category.code))]
    return _answer(items, "services", "service")


@bp.get(f"/services/<code>.{FMT}")
def service_definition(code: str, fmt: str):
    with get_db().session_scope() as s:
        cat = s.get(Category, code)
        if cat is None:
            raise Open311Error(404, f"service_code {code!r} not found")
        # metadata is false for every service: no extra attributes to fill in
        return _answer({"service_code": cat.code, "attributes": []}, "service_definition", None)


# =========================================================================== requests: read

ASSIST_EVENTS = sorted(a.value for a in ASSIST_ACTIONS)

#: an external_id this server minted for a case created by our own POST (uuid4 hex): not a source's id
_MINTED = re.compile(r"^[0-9a-f]{32}$")
#: sources whose cases are made on this server (the demo feed): known by their internal id
OWN_SOURCES = frozenset({DEMO_SOURCE})
MAX_ID_LEN = 128   # Incident.external_id


def public_id(source: str, external_id: str, case_id: int) -> str:
    """The ``service_request_id`` of a case: the id its source gave it (``external_id``) for a case
    that came from another system (an import, an Open311 pull, a push); the internal id for a case
    this server made (our own POST, whose answer gave that id, and the demo feed)."""
    if source in OWN_SOURCES or (source == SOURCE and _MINTED.match(external_id or "")):
        return str(case_id)
    return external_id


def cases_known_as(s, wanted: list[str]) -> dict[str, list[int]]:
    """The internal ids of the cases each ``service_request_id`` in ``wanted`` names: the cases
    publishing it as their source's id (:func:`public_id`); when none does and it is a number, the
    case with that internal id (the ids this endpoint answered before it kept the source's). Two
    sources may give one id: then it names several cases."""
    out: dict[str, list[int]] = {w: [] for w in wanted}
    for case_id, source, external_id in s.execute(
            select(Incident.id, Incident.source, Incident.external_id).where(Incident.external_id.in_(wanted))):
        if public_id(source, external_id, case_id) == external_id:
            out[external_id].append(case_id)
    # (at most 9 digits: a 32-bit id column on PostgreSQL, which refuses a larger literal)
    numbers = {int(w): w for w in wanted if not out[w] and w.isdigit() and len(w) <= 9}
    if numbers:
        for case_id in s.scalars(select(Incident.id).where(Incident.id.in_(list(numbers)))):
            out[numbers[case_id]].append(case_id)
    return out


def _requests(s, conds: list, tz: ZoneInfo, *, limit: int, offset: int = 0) -> list[dict]:
    stmt = (select(Incident.id, Incident.source, Incident.external_id, Incident.state, Incident.category_code,
                   Category.name.label("service_name"),
                   Incident.description, Incident.title, Department.name.label("agency"), Incident.reported_at,
                   Incident.updated_at, Incident.deadline, Incident.address, Incident.lon, Incident.lat,
                   Incident.sign_due, Incident.first_contacted_at, Incident.resolve_outcome,
                   Incident.revisit_result, Incident.revisited_at)
            .outerjoin(Category, Category.code == Incident.category_code)
            .outerjoin(Department, Department.code == Incident.department_code)
            .where(*conds).order_by(Incident.reported_at.desc(), Incident.id.desc())
            .limit(limit).offset(offset))
    rows = s.execute(stmt).all()
    ids = [r.id for r in rows]
    notes: dict[int, str] = {}
    changed: dict[int, datetime] = {}
    legacy: dict[int, str] = {}
    urls: dict[int, list[str]] = {}
    parts = parts_of(s, ids)
    agencies = dict(s.execute(select(Department.code, Department.name).where(Department.code.in_(
        {p.department_code for ps in parts.values() for p in ps}))).all()) if parts else {}
    if ids:
        latest = (select(func.max(IncidentEvent.id))
                  .where(IncidentEvent.incident_id.in_(ids), IncidentEvent.action != "report",
                         # an assisting department's reply (协办) is between departments, not the case's status
                         IncidentEvent.action.not_in(ASSIST_EVENTS), IncidentEvent.note != "")
                  .group_by(IncidentEvent.incident_id))
        notes = dict(s.execute(select(IncidentEvent.incident_id, IncidentEvent.note)
                               .where(IncidentEvent.id.in_(latest))).all())
        # updated_datetime: the case's last change (its last event, at the time it happened — for an
        # imported case the source's time), not when the row was last written (an import's time)
        changed = dict(s.execute(select(IncidentEvent.incident_id, func.max(IncidentEvent.at))
                                 .where(IncidentEvent.incident_id.in_(ids))
                                 .group_by(IncidentEvent.incident_id)).all())
        root = request.url_root.rstrip("/")
        for incident_id, items in attachments_by_case(s, ids).items():
            # a stored photo: our API's URL (it needs a login that may see the case); a link: as given
            urls[incident_id] = [root + a["url"] if a["kind"] == "photo" else a["url"] for a in items]
        own = [r.id for r in rows if r.source == SOURCE and r.id not in urls]
        if own:   # cases created before attachments existed kept their media_url in the report's payload
            for incident_id, payload in s.execute(select(IncidentEvent.incident_id, IncidentEvent.payload)
                                                  .where(IncidentEvent.incident_id.in_(own),
                                                         IncidentEvent.action == "report")):
                if payload and payload.get("media_url"):
                    legacy[incident_id] = payload["media_url"]
    return [{
        "service_request_id": public_id(r.source, r.external_id, r.id),
        "status": "closed" if r.state in CLOSED_STATES else "open",
        "status_notes": _public_text(notes.get(r.id)),
        "service_name": r.service_name,
        "service_code": r.category_code,
        "description": _public_text(r.description or r.title),
        "agency_responsible": r.agency,
        "service_notice": None,
        "requested_datetime": _iso(r.reported_at, tz),
        "updated_datetime": _iso(changed.get(r.id) or r.updated_at, tz),
        "expected_datetime": _iso(r.deadline, tz),
        # our extension: the department's 签收时限 of the current dispatch (null until dispatched)
        "sign_for_datetime": _iso(r.sign_due, tz),
        # our extensions: 先行联系 (the department's first contact with the citizen), the final resolve's
        # outcome (solved 实际解决 / explained 解释说明) and the 回访 of the current closure (result, time)
        "first_contact_datetime": _iso(r.first_contacted_at, tz),
        "resolution": r.resolve_outcome,
        "revisit_result": r.revisit_result,
        "revisit_datetime": _iso(r.revisited_at, tz),
        "address": _public_text(r.address),
        "address_id": None,
        "zipcode": None,
        "lat": _public_coordinate(r.lat),
        "long": _public_coordinate(r.lon),
        "media_url": (urls.get(r.id) or [legacy.get(r.id)])[0],
        # our extension: every photo and link of the case (report, resolve, verify), oldest first
        "media_urls": urls.get(r.id) or ([legacy[r.id]] if r.id in legacy else []),
        # our extension: the assisting departments (协办) of the current dispatch; the lead is agency_responsible
        "assisting_departments": [{
            "agency": agencies.get(p.department_code, p.department_code),
            "status": "replied" if p.replied_at else "signed" if p.signed_at else "dispatched",
            "sign_for_datetime": _iso(p.sign_due, tz), "expected_datetime": _iso(p.reply_due, tz),
            "replied_datetime": _iso(p.replied_at, tz)} for p in parts.get(r.id, [])],
    } for r in rows]


@bp.get(f"/requests.{FMT}")
def list_requests(fmt: str):
    tz = _tz()
    now = datetime.now(timezone.utc)
    page = _int_arg("page", 1, 1, 1_000_000)
    page_size = _int_arg("page_size", MAX_RESULTS, 1, MAX_RESULTS)
    ids = _list_arg("service_request_id")
    conds: list = []
    if ids:
        # the spec: a list of ids overrides every other filter
        if len(ids) > MAX_RESULTS or not all(len(i) <= MAX_ID_LEN for i in ids):
            raise Open311Error(400, f"service_request_id must be a comma-separated list of at most {MAX_RESULTS} "
                                    f"ids of at most {MAX_ID_LEN} characters")
        fault = next((bounds.text_fault(i) for i in ids if bounds.text_fault(i)), None)
        if fault:
            raise Open311Error(400, f"service_request_id {fault}")
        with get_db().session_scope() as s:
            known = cases_known_as(s, ids)
        conds.append(Incident.id.in_(sorted({i for found in known.values() for i in found})))
    else:
        codes = _list_arg("service_code")
        if codes:
            conds.append(Incident.category_code.in_(codes))
        statuses = {v.lower() for v in _list_arg("status")}
        if statuses - {"open", "closed"}:
            raise Open311Error(400, "status must be open, closed or both (comma-separated)")
        if statuses == {"open"}:
            conds.append(Incident.state.not_in(CLOSED_STATES))
        elif statuses == {"closed"}:
            conds.append(Incident.state.in_(CLOSED_STATES))
        start, end = _parse_time("start_date", tz), _parse_time("end_date", tz)
        if start is None and end is None:
            start = now - DEFAULT_WINDOW
        elif start is None:
            start = end - DEFAULT_WINDOW
        elif end is None:
            end = start + DEFAULT_WINDOW
        if end is not None:
            if end < start:
                raise Open311Error(400, "end_date lies before start_date")
            if end - start > DEFAULT_WINDOW:
                raise Open311Error(400, "start_date and end_date may not span more than 90 days")
            conds.append(Incident.reported_at <= end)
        conds.append(Incident.reported_at >= start)
    with get_db().session_scope() as s:
        items = _requests(s, conds, tz, limit=page_size, offset=(page - 1) * page_size)
    return _answer(items, "service_requests", "request")


@bp.get(f"/requests/<request_id>.{FMT}")
def get_request(request_id: str, fmt: str):
    """One request by its ``service_request_id`` (:func:`cases_known_as`): the source's id, or the
    internal id no source's id shadows. An id two sources gave answers 400 naming the internal ids."""
    if not request_id or len(request_id) > MAX_ID_LEN or bounds.text_fault(request_id):
        raise Open311Error(404, f"service_request_id {request_id[:MAX_ID_LEN]!r} not found")
    with get_db().session_scope() as s:
        found = cases_known_as(s, [request_id])[request_id]
        if len(found) > 1:
            raise Open311Error(400, f"service_request_id {request_id!r} names {len(found)} requests from different "
                                    f"sources: ask for one by its internal id ({', '.join(map(str, sorted(found)))})")
        items = _requests(s, [Incident.id == found[0]], _tz(), limit=1) if found else []
    if not items:
        raise Open311Error(404, f"service_request_id {request_id!r} not found")
    return _answer(items, "service_requests", "request")


# =========================================================================== requests: create


def _form(name: str, max_len: int) -> str:
    value = _body().get(name)
    value = ("" if value is None else str(value)).strip()
    if bounds.text_fault(value):
        raise Open311Error(400, f"{name} {bounds.text_fault(value)}")
    if len(value) > max_len:
        raise Open311Error(400, f"{name} is longer than {max_len} characters")
    return value


def _coordinate(name: str, lo: float, hi: float) -> Optional[float]:
    raw = _form(name, 40)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise Open311Error(400, f"{name} {raw!r} is not a number") from None
    if not lo <= value <= hi:  # also refuses nan and inf
        raise Open311Error(400, f"{name} {raw!r} is out of range ({lo} to {hi}, WGS84)")
    return value


#: a photo sent with the request (multipart/form-data), beside the spec's media_url
MEDIA_FILE_FIELD = "media"


def _media(media_url: str) -> list[media.Attachment]:
    """The request's photo: ``media_url`` kept as a link (never fetched), and a ``media`` file of a
    multipart body checked and re-encoded without its EXIF (415 / 413 when it is no photo or too large)."""
    items = [media.prepare_link(media_url)] if media_url else []
    if request.mimetype == "multipart/form-data":
        files = request.files.getlist(MEDIA_FILE_FIELD)
        store = get_media_store()
        items += commands.prepare_photos([(f.filename or "", f.read(store.max_bytes + 1)) for f in files])
    return items


@bp.post(f"/requests.{FMT}")
def create_request(fmt: str):
    now = datetime.now(timezone.utc)
    if request.mimetype == "multipart/form-data":   # bounded before the form is read
        store = get_media_store()
        request.max_content_length = store.max_bytes * media.MAX_PER_ACTION + 1024 * 1024
    username, role = _key_user(_api_key())
    if role not in CREATOR_ROLES:
        raise Open311Error(403, "this api_key may not create service requests")
    code = _form("service_code", 20)
    if not code:
        raise Open311Error(400, "service_code is required")
    lat, lon = _coordinate("lat", -90, 90), _coordinate("long", -180, 180)
    if (lat is None) != (lon is None):
        raise Open311Error(400, "lat and long go together: give both, or address_string")
    address = _form("address_string", 300)
    if lat is None and not address:
        raise Open311Error(400, "a location is required: lat and long, or address_string")
    description = _form("description", 4000)
    media_url = _form("media_url", 500)
    if media_url and urlparse(media_url).scheme not in ("http", "https"):
        raise Open311Error(400, "media_url must be an http(s) URL")
    items = _media(media_url)
    name = (_form("last_name", 40) + _form("first_name", 40)).strip()
    phone = _form("phone", 40)
    _form("email", 200)  # accepted per the spec; we keep no e-mail addresses
    rules = get_runtime().rules
    with commands.stored(items) as attachments, get_db().session_scope() as s:
        cat = s.get(Category, code)
        if cat is None:
            raise Open311Error(400, f"service_code {code!r} not found")
        title = f"{cat.name}：{description}" if description else cat.name
        case = services.create_case(
            s, rules, source=SOURCE, external_id=uuid.uuid4().hex, channel=Channel.APP.value,
            title=title[:200], reported_at=now, now=now, category_code=cat.code, description=description,
            address=address, lon=lon, lat=lat, reporter_name=name, reporter_phone=phone,
            actor=f"open311:{username}", attachments=attachments, link_repeats=True)
        notice = (f"已受理（{cat.name}）：派遣后 {cat.time_limit:g} "
                  f"{UNIT_ZH.get(cat.time_unit, cat.time_unit)}内处置")
        answer = [{"service_request_id": str(case.id), "service_notice": notice, "account_id": None}]
    return _answer(answer, "service_requests", "request", status=201)


# =========================================================================== wiring

_KNOWN = [(re.compile(r"/discovery\.(json|xml)"), {"GET"}), (re.compile(r"/services\.(json|xml)"), {"GET"}),
          (re.compile(r"/services/[^/]+\.(json|xml)"), {"GET"}),
          (re.compile(r"/requests\.(json|xml)"), {"GET", "POST"}),
          (re.compile(r"/requests/[^/]+\.(json|xml)"), {"GET"})]


@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def _no_such_endpoint(rest: str):
    """Without this, Dash's catch-all page route would answer unknown paths here with HTML."""
    methods: set[str] = set()
    for pattern, allowed in _KNOWN:
        if pattern.fullmatch("/" + rest):
            methods |= allowed
    if methods and request.method not in methods:
        return _errors(405, f"{request.method} is not allowed here; use {', '.join(sorted(methods))}")
    return _errors(404, f"no endpoint {request.method} {request.path} (formats: .json, .xml)")


def init_app(server: Flask) -> None:
    server.register_blueprint(bp)

