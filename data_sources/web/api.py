"""REST API v1 under /api/v1 (DESIGN.md §8).

One place says what the API is: the ``@route`` table below. Each entry names its method, path,
roles and the pydantic models that validate its query string and body and shape its answer;
the same entries register the Flask views and generate the OpenAPI 3.1 document at
``/api/v1/openapi.json`` (``openapi_document()``), so the document cannot drift from the code.

Auth: the gate in ``data_sources.web.gate`` lets through a session cookie or ``Authorization: Bearer``
token and answers 401 otherwise; every endpoint then checks the role itself, and the case
services check the permission of every action again. Errors are always
``{"error": {"code": …, "message": …}}``. Writes go through ``incidents.services`` inside one
``session_scope``; ``now`` is taken once per request.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import wraps
from typing import Any, Callable, ClassVar, Literal, Optional
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, jsonify, request, send_file
from flask_login import current_user
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.json_schema import models_json_schema
from sqlalchemy import case as sql_case
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from werkzeug.exceptions import HTTPException

from data_sources.runtime import get_runtime
from data_sources.store.db import get_db, is_unavailable
from data_sources.store.media import get_media_store
from data_sources.web.errors import (ErrorResponse, ResponseModel, UtcDateTime, domain_error_response,
                                     error_response, http_error_response, unavailable_response)
from incidents import bounds, commands, lifecycle, media, permissions, services
from incidents.lifecycle import DomainError, ValidationFailed
from incidents.permissions import reporter_view
from incidents.model import Action, Channel, Light, Priority, RequestStatus, ResolveOutcome, RevisitResult, Role, State
from incidents.queries import cases as case_queries
from incidents.queries._common import RUNNING_STATES, light_expr, running_light_expr
from incidents.queries.feeds import feed_health
from incidents.queries import media as media_queries
from incidents.tables import Area, CaseRequest, Category, Department, Incident, IncidentEvent

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
bp = Blueprint("api_v1", __name__, url_prefix=PREFIX)

ALL_ROLES: tuple[Role, ...] = tuple(Role)
CREATORS = tuple(permissions.CREATE_ROLES)
#: roles that see reporters' names and phone numbers unmasked
#: the states whose deadline clock runs, so the traffic light means something
#: how far in the future a reported_at may lie (clock skew of a feed)
FUTURE_SKEW = timedelta(minutes=5)
#: query parameters any endpoint accepts besides its own (the gate reads ?lang=)
COMMON_QUERY = frozenset({"lang"})



# =========================================================================== models


class _In(BaseModel):
    """Requests: unknown fields are an error (a typo must not be silently ignored)."""
    model_config = ConfigDict(extra="forbid")


class CodeName(ResponseModel):
    code: str
    name: Optional[str] = None


SORT_KEYS = ("id", "reported_at", "deadline", "priority", "state")
SortKey = Literal[tuple(k for key in SORT_KEYS for k in (key, "-" + key))]  # type: ignore[valid-type]


class IncidentListQuery(_In):
    """Filters of GET /incidents. List parameters may repeat (?state=a&state=b) or use commas (?state=a,b)."""
    LIST_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"state", "department", "district", "grid", "category", "priority", "light"})

    state: Optional[list[State]] = Field(None, description="case states (any of)")
    open: Optional[bool] = Field(None, description="true: only open cases (not closed or voided); false: only closed or voided")
    department: Optional[list[str]] = Field(None, description="department codes")
    district: Optional[list[str]] = Field(None, description="district codes")
    grid: Optional[list[str]] = Field(None, description="grid codes")
    category: Optional[list[str]] = Field(None, description="category codes (a small class, or a major class for all its small classes)")
    priority: Optional[list[Priority]] = None
    light: Optional[list[Light]] = Field(None, description="traffic light at the time of the request; only cases whose clock runs (dispatched, in_progress) have one")
    q: Optional[str] = Field(None, min_length=1, max_length=bounds.MAX_SEARCH, description="text contained in title, address or description")
    reported_from: Optional[datetime] = Field(None, description="reported at or after (ISO 8601; without an offset: city time)")
    reported_to: Optional[datetime] = Field(None, description="reported before (exclusive; ISO 8601; without an offset: city time)")
    page: int = Field(1, ge=1, le=bounds.MAX_PAGE, description="1-based page number")
    per_page: int = Field(50, ge=1, le=bounds.MAX_PER_PAGE)
    sort: SortKey = Field("-reported_at", description="sort key; a leading '-' sorts descending")


class IncidentSummary(ResponseModel):
    id: int
    version: int
    source: str
    external_id: str
    channel: str
    title: str
    state: State
    priority: str
    category_code: Optional[str]
    category_name: Optional[str]
    department_code: Optional[str]
    department_name: Optional[str]
    district_code: Optional[str]
    district_name: Optional[str]
    grid_code: Optional[str]
    grid_name: Optional[str]
    address: str
    lon: Optional[float]
    lat: Optional[float]
    reported_at: UtcDateTime
    dispatched_at: Optional[UtcDateTime]
    deadline: Optional[UtcDateTime]
    light: Optional[Light] = Field(description="green/yellow/red while the clock runs, else null")
    sign_due: Optional[UtcDateTime] = Field(None, description="签收时限 of the current dispatch (pack setting per "
                                                               "priority, working hours)")
    supervise_level: int


class IncidentPage(ResponseModel):
    items: list[IncidentSummary]
    page: int
    per_page: int
    total: int = Field(description="cases matching the filters, over all pages")


class TimelineEvent(ResponseModel):
    id: int
    at: UtcDateTime
    actor: str
    action: str
    from_state: Optional[str]
    to_state: str
    department: Optional[CodeName]
    note: str
    payload: Optional[dict[str, Any]]


class Counters(ResponseModel):
    rework: int
    returns: int
    reassignments: int
    extensions: int
    extension_hours: float
    suspended_hours: float
    alarms: Optional[int] = Field(None, description="an IoT alarm case: how many alarms of its device it stands "
                                                    "for (repeats are folded into the open case); null otherwise")


class CaseRequestOut(ResponseModel):
    id: int = Field(description="send it as case_request_id with approve / reject")
    kind: Action = Field(description="what the department asks for: extend or suspend")
    status: RequestStatus = Field(description="pending (待审批), approved or rejected; only an approved request "
                                              "moved the deadline or stopped the clock")
    hours: Optional[float] = Field(description="extend: the extra working hours asked for")
    reason: Optional[str]
    note: str
    department: Optional[str] = Field(description="the department that asked (code)")
    requested_by: str
    requested_at: UtcDateTime
    decided_by: Optional[str]
    decided_at: Optional[UtcDateTime]
    decision_note: str


class AttachmentOut(ResponseModel):
    id: int
    stage: Literal["report", "resolve", "verify"] = Field(
        description="report: came with the report; resolve: the department's 反馈 (after); verify: at 核查")
    kind: Literal["photo", "link"] = Field(description="photo: stored here, EXIF (GPS included) removed; "
                                                       "link: a URL the client gave, never fetched by the server")
    mime: Optional[str] = Field(description="photo: image/jpeg or image/webp (re-encoded)")
    name: str = Field(description="the client's file name, as display text")
    url: str = Field(description="photo: this API's file URL (needs the same login as the case); link: the URL given")
    thumbnail_url: Optional[str] = Field(description="photo: its thumbnail's URL")
    width: Optional[int]
    height: Optional[int]
    size: Optional[int] = Field(description="photo: bytes of the stored file")
    event_id: Optional[int] = Field(description="the timeline event it came with")
    created_by: str
    created_at: UtcDateTime


class AssistPartOut(ResponseModel):
    """One assisting department's part (协办) of the current dispatch."""
    department: CodeName
    state: str = Field(description="dispatched (not signed for) | signed | replied")
    dispatched_at: UtcDateTime
    sign_due: UtcDateTime = Field(description="签收时限: as the lead's (the pack's [workflow.sign_for_hours])")
    signed_at: Optional[UtcDateTime]
    signed_by: Optional[str]
    reply_due: UtcDateTime = Field(description="回复时限: the pack's [workflow] assist_reply_share of the case's "
                                                "处置 limit from the dispatch, on the category's clock")
    replied_at: Optional[UtcDateTime]
    replied_by: Optional[str]
    reply_note: str
    light: Optional[Light] = Field(description="the part's own light: sign-for, then reply deadline; null once replied")


class IncidentDetail(ResponseModel):
    id: int
    version: int = Field(description="send it back with an action (optimistic locking)")
    source: str
    external_id: str
    channel: str
    title: str
    description: str
    address: str
    lon: Optional[float]
    lat: Optional[float]
    state: State
    state_before_suspend: Optional[State]
    priority: str
    category: Optional[CodeName]
    department: Optional[CodeName]
    district: Optional[CodeName]
    grid: Optional[CodeName]
    reporter_name: str = Field(description="masked unless the caller is a dispatcher, leader or admin")
    reporter_phone: str = Field(description="masked unless the caller is a dispatcher, leader or admin")
    reported_at: UtcDateTime
    registered_at: Optional[UtcDateTime]
    dispatched_at: Optional[UtcDateTime]
    signed_at: Optional[UtcDateTime]
    resolved_at: Optional[UtcDateTime]
    closed_at: Optional[UtcDateTime]
    voided_at: Optional[UtcDateTime]
    suspended_at: Optional[UtcDateTime]
    updated_at: UtcDateTime
    updated_by: str
    allowed_hours: Optional[float]
    warn_at: Optional[UtcDateTime]
    deadline: Optional[UtcDateTime] = Field(None, description=(
        "处置 deadline in force (working time from the clock start, + approved extensions and suspended "
        "time); the clock starts at the dispatch, or — the pack's [workflow] disposal_clock = \"sign\" — at "
        "the department's 签收: null until then"))
    light: Optional[Light] = Field(None, description=(
        "traffic light of a case with a department: of its deadline, or — no deadline yet — of sign_due"))
    sign_due: Optional[UtcDateTime] = Field(None, description="签收时限 of the current dispatch (working hours "
                                                               "by priority, the pack's [workflow.sign_for_hours])")
    sign_light: Optional[Light] = Field(None, description="签收 light while dispatched and not signed for: red past "
                                                          "sign_due, yellow past 80 % of it; else null")
    arbitrated: bool = Field(False, description="dispatched by arbitration (审定) after the pack's max_returns "
                                                "returns: the department can no longer return it")
    lead_department: Optional[CodeName] = Field(None, description="主办: the department that leads the case (the "
                                                                  "same as department; every case KPI counts it)")
    assisting: list[AssistPartOut] = Field(default_factory=list, description=(
        "协办: the assisting departments of the current dispatch with their sign-for, reply and deadlines; the "
        "lead's resolve waits for every reply (or resolve with override and a note)"))
    citizen: bool = Field(False, description="a citizen raised it (its channel is one of the pack's [workflow] "
                                             "citizen_channels): 先行联系, 实际解决 and 回访 apply")
    first_contacted_at: Optional[UtcDateTime] = Field(None, description=(
        "先行联系: when the department first contacted the citizen, before any resolve (action contact)"))
    resolve_outcome: Optional[ResolveOutcome] = Field(None, description=(
        "the final resolve's outcome: solved (实际解决) or explained (解释说明); null while not resolved"))
    revisit_result: Optional[RevisitResult] = Field(None, description=(
        "回访 of the current closure: satisfied 满意, basic 基本满意, unsatisfied 不满意 (the case went back to its "
        "department: 重办), unreachable 未联系上; null: not revisited since the last closure"))
    revisited_at: Optional[UtcDateTime] = Field(None, description="when that 回访 was made")
    first_revisited_at: Optional[UtcDateTime] = Field(None, description="the case's first 回访 ever")
    on_time: Optional[bool]
    void_reason: Optional[str]
    duplicate_of: Optional[int]
    supervise_level: int
    counters: Counters
    actions: list[Action] = Field(description="what the caller may do now (state and role)")
    requests: list[CaseRequestOut] = Field(description="departments' extend / suspend requests, pending first")
    attachments: list[AttachmentOut] = Field(
        default_factory=list, description="photos and links by stage (report, resolve, verify); a photo's url "
                                          "is served only to roles that may see the case (not to viewers)")
    timeline: list[TimelineEvent]


class IncidentCreate(_In):
    source: str = Field("api", min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.:-]+$",
                        description="the sending system; (source, external_id) is unique")
    external_id: str = Field(min_length=1, max_length=128, description="the case's id in the sending system")
    channel: Channel
    title: str = Field(min_length=1, max_length=bounds.MAX_TITLE)
    category_code: Optional[str] = Field(None, max_length=20)
    lon: Optional[float] = Field(None, ge=-180, le=180, description="WGS84 longitude")
    lat: Optional[float] = Field(None, ge=-90, le=90, description="WGS84 latitude")
    reported_at: Optional[datetime] = Field(None, description="ISO 8601; without an offset: city time; default now")
    priority: Priority = Priority.NORMAL
    description: str = Field("", max_length=bounds.MAX_DESCRIPTION)
    address: str = Field("", max_length=300)
    reporter_name: str = Field("", max_length=80)
    reporter_phone: str = Field("", max_length=40)
    media_urls: list[str] = Field(default_factory=list, max_length=media.MAX_PER_ACTION, description=(
        "URL references to photos kept elsewhere (http/https; stored as links, never fetched). With "
        "multipart/form-data, photos go as file fields named photo (JPEG, PNG or WebP)"))

    @model_validator(mode="after")
    def _both_coordinates(self):
        if (self.lon is None) != (self.lat is None):
            raise ValueError("lon and lat go together: give both or neither")
        return self


class ActionRequest(_In):
    action: Action
    version: int = Field(ge=1, le=bounds.MAX_ID, description="the version of the case the caller saw")
    department: Optional[str] = Field(None, max_length=40, description=(
        "dispatch / reassign / arbitrate: target department (default: the routing suggestion); after the pack's "
        "max_returns returns a dispatch must be an arbitrate (审定) with the ruling in note"))
    note: str = Field("", max_length=bounds.MAX_NOTE)
    reason: Optional[str] = Field(None, max_length=40, description=(
        "void, suspend: reason code; return (退单): one of the pack's [workflow.return_reasons] codes "
        "(territory 属地不符, ownership 权属不清, overlap 职能交叉 …), with the free text in note"))
    hours: Optional[float] = Field(None, gt=0, le=bounds.MAX_EXTEND_HOURS, allow_inf_nan=False,
                                   description="extend: extra working hours")
    duplicate_of: Optional[int] = Field(None, ge=1, le=bounds.MAX_ID,
                                        description="merge: id of the case this one duplicates; link_repeat "
                                                    "(重复诉求): id of the case this one repeats, its parent")
    level: Optional[int] = Field(None, ge=bounds.SUPERVISE_LEVEL_MIN, le=bounds.SUPERVISE_LEVEL_MAX,
                                 description="supervise: 督办 level")
    case_request_id: Optional[int] = Field(None, ge=1, le=bounds.MAX_ID,
                                           description="approve / reject: the id of the case's pending "
                                           "request (``requests`` in the case detail)")
    request_id: Optional[str] = Field(None, min_length=1, max_length=80,
                                      description="idempotency key: a retry with the same id is applied once")
    assisting: Optional[list[str]] = Field(None, max_length=bounds.MAX_ASSISTING, description=(
        "dispatch / arbitrate: the assisting departments (协办; codes, not the lead, each once), each with its own "
        "sign-for and reply deadline. assist_sign / assist_reply (reply in note): an assisting department acts on "
        "its own part; a dispatcher acts for one, naming it in department"))
    override: bool = Field(False, description="resolve: resolve although assisting departments have not replied; "
                                              "needs a note (recorded with the missing departments)")
    outcome: Optional[ResolveOutcome] = Field(None, description=(
        "resolve: solved (实际解决, the default when omitted) or explained (解释说明: the department explained "
        "to the citizen instead)"))
    result: Optional[RevisitResult] = Field(None, description=(
        "revisit (回访, dispatcher, a closed citizen case, once per closure that reached the citizen): satisfied "
        "满意, basic 基本满意, unsatisfied 不满意 (needs the complaint in note; the case goes back to the same "
        "department as 重办), unreachable 未联系上 (may be tried again)"))
    media_urls: list[str] = Field(default_factory=list, max_length=media.MAX_PER_ACTION, description=(
        "resolve, verify_pass, verify_fail: URL references to photos kept elsewhere (http/https; stored as links, never fetched). With "
        "multipart/form-data, photos go as file fields named photo (JPEG, PNG or WebP)"))


class ActionResult(ResponseModel):
    id: int
    state: State
    version: int
    department: Optional[str]
    deadline: Optional[UtcDateTime]
    sign_due: Optional[UtcDateTime] = Field(None, description="签收时限 of the current dispatch")
    case_request: Optional[CaseRequestOut] = Field(None, description=(
        "the request this action filed (a department's extend / suspend: status pending, the case "
        "unchanged until a dispatcher approves) or decided (approve / reject)"))


class DepartmentOut(ResponseModel):
    code: str
    name: str
    name_en: str
    level: str
    district_code: Optional[str]
    parent_code: Optional[str]


class DepartmentList(ResponseModel):
    items: list[DepartmentOut]


class CategoryOut(ResponseModel):
    code: str
    kind: str
    major_code: str
    major_name: str
    name: str
    name_en: str
    time_limit: float
    time_unit: str
    urgent: bool


class CategoryList(ResponseModel):
    items: list[CategoryOut]


class AreasQuery(_In):
    level: Optional[Literal["district", "grid"]] = None
    parent: Optional[str] = Field(None, max_length=20, description="parent area code (a district's grids)")
    geometry: bool = Field(False, description="include the GeoJSON geometry (WGS84)")


class AreaOut(ResponseModel):
    code: str
    name: str
    level: str
    parent_code: Optional[str]
    centroid_lon: float
    centroid_lat: float
    geometry: Optional[dict[str, Any]] = None


class AreaList(ResponseModel):
    items: list[AreaOut]


class FeedHealthOut(ResponseModel):
    feed: str = Field(description="the cases' source (feed runs: their source label, else their feed name)")
    status: Literal["ok", "late", "silent"] = Field(
        description="silent: nothing for 3 usual intervals (when something usually arrives at this hour); "
                    "late: nothing for 2 intervals, or the last hour brought under a third of the usual volume")
    last_record_at: Optional[UtcDateTime] = Field(description="latest case reported_at or feed run finished_at")
    lag_seconds: Optional[float] = Field(description="now − last_record_at")
    last_hour: int = Field(description="cases reported in the last hour")
    usual_hourly: float = Field(description="mean cases in the same hour over the last 7 days")
    usual_interval_seconds: Optional[float] = Field(description="3600 ÷ usual_hourly")
    runs_24h: int = Field(description="feed runs started in the last 24 h")
    received_24h: int
    quarantined_24h: int
    reject_rate: Optional[float] = Field(description="quarantined ÷ received over the runs of the last 24 h")
    last_run_status: Optional[str]
    last_error: Optional[str] = Field(description="the error of the latest failed feed run, if any")
    last_error_at: Optional[UtcDateTime]


class FeedList(ResponseModel):
    as_of: UtcDateTime
    items: list[FeedHealthOut]


# =========================================================================== errors


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def _validation_message(exc: ValidationError) -> tuple[str, list[dict]]:
    details = []
    for e in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = ".".join(str(x) for x in e["loc"]) or "(body)"
        details.append({"field": loc, "message": e["msg"], "type": e["type"]})
    return "; ".join(f"{d['field']}: {d['message']}" for d in details), details


@bp.errorhandler(ApiError)
def _on_api_error(exc: ApiError):
    return error_response(exc.status, exc.code, exc.message, **exc.extra)


@bp.errorhandler(DomainError)
def _on_domain_error(exc: DomainError):
    return domain_error_response(exc)


@bp.errorhandler(Exception)
def _on_unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return http_error_response(exc)
    if is_unavailable(exc):
        log.warning("API %s %s: database unavailable: %s", request.method, request.path, type(exc).__name__)
        return unavailable_response()
    log.exception("API error on %s %s", request.method, request.path)
    return error_response(500, "internal_error", "internal error; it has been logged")


# =========================================================================== the route table


@dataclass(frozen=True)
class Route:
    method: str
    path: str                        # OpenAPI style: /incidents/{incident_id}
    operation_id: str
    summary: str
    roles: tuple[Role, ...]
    query: Optional[type[BaseModel]]
    body: Optional[type[BaseModel]]
    response: Optional[type[BaseModel]]
    status: int
    errors: tuple[int, ...]
    multipart: bool = False          # the body may also come as multipart/form-data with photo files
    content: Optional[dict] = None   # the OpenAPI content of an answer that is not JSON (a file)


ROUTES: list[Route] = []


def route(method: str, path: str, *, summary: str, roles: tuple[Role, ...] = ALL_ROLES,
          query: Optional[type[BaseModel]] = None, body: Optional[type[BaseModel]] = None,
          response: Optional[type[BaseModel]] = None, status: int = 200,
          errors: tuple[int, ...] = (), multipart: bool = False, content: Optional[dict] = None) -> Callable:
    """Register a view under /api/v1 and record it for the OpenAPI document.

    The view is called as ``fn(user, now, [query=…], [body=…], [photos=…], **path_params)`` and
    returns a response model instance (answered with ``status``) or a ready Flask response.
    ``multipart``: the body may also be multipart/form-data, its fields the body model's and its
    ``photo`` files handed to the view as ``photos`` [(file name, bytes)].
    """
    def deco(fn: Callable) -> Callable:
        ROUTES.append(Route(method.upper(), path, fn.__name__, summary, roles, query, body, response,
                            status, errors, multipart, content))
        rule = re.sub(r"\{(\w+)\}", r"<int:\1>", path)

        @wraps(fn)
        def view(**path_params):
            now = datetime.now(timezone.utc)
            user = _require(roles)
            for name, value in path_params.items():
                if bounds.id_fault(value):   # /incidents/99999999999999999999: no such case, not an overflow
                    raise ApiError(404, "not_found", f"no {name.removesuffix('_id')} {value}")
            kwargs: dict[str, Any] = dict(path_params)
            if query is not None:
                kwargs["query"] = _parse_query(query)
            if body is not None and multipart and request.mimetype == "multipart/form-data":
                kwargs["body"], kwargs["photos"] = _parse_multipart(body)
            elif body is not None:
                kwargs["body"] = _parse_body(body)
                if multipart:
                    kwargs["photos"] = []
            result = fn(user, now, **kwargs)
            if isinstance(result, BaseModel):
                return jsonify(result.model_dump(mode="json")), status
            return result

        bp.add_url_rule(rule, endpoint=fn.__name__, view_func=view, methods=[method.upper()])
        return fn
    return deco


def _require(roles: tuple[Role, ...]):
    if not current_user.is_authenticated:
        raise ApiError(401, "unauthorized", "login required")
    if current_user.role not in roles:
        raise ApiError(403, "forbidden", f"role '{current_user.role.value}' may not use "
                                         f"{request.method} {request.path}")
    return current_user


def _parse_query(model: type[BaseModel]) -> BaseModel:
    list_fields = getattr(model, "LIST_FIELDS", frozenset())
    # a parameter named like a Python keyword (?from=) is a field with an alias
    params = [f.alias or n for n, f in model.model_fields.items()]
    unknown = sorted(set(request.args) - set(params) - COMMON_QUERY)
    if unknown:
        raise ApiError(400, "bad_request", f"unknown query parameter(s): {', '.join(unknown)}; "
                                           f"expected: {', '.join(params)}")
    data: dict[str, Any] = {}
    for name in params:
        if name not in request.args:
            continue
        if name in list_fields:
            values = [v.strip() for raw in request.args.getlist(name) for v in raw.split(",") if v.strip()]
            if values:
                data[name] = values
        else:
            data[name] = request.args.get(name)
    return _validated(model, data)


def _validated(model: type[BaseModel], data: dict) -> BaseModel:
    """``data`` (query or body) as ``model``: text the database cannot store, or a field that does not
    validate, is a 400 naming the field."""
    _refuse_bad_text(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, details = _validation_message(exc)
        raise ApiError(400, "bad_request", message, details=details) from None


def _parse_body(model: type[BaseModel]) -> BaseModel:
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ApiError(400, "bad_request", "the request needs a JSON object body")
    try:
        data = json.loads(raw, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_request", f"malformed JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "bad_request", "malformed JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the request body must be a JSON object")
    return _validated(model, data)


#: the form fields of a multipart body that may repeat (a list field of the body model)
_MULTI_FIELDS = {"media_urls": "media_urls", "media_url": "media_urls"}
PHOTO_FIELD = "photo"


def _parse_multipart(model: type[BaseModel]) -> tuple[BaseModel, list[tuple[str, bytes]]]:
    """A multipart/form-data body: its text fields as ``model`` (empty ones left out, so their
    defaults apply), its ``photo`` files as (file name, bytes). The whole body is bounded by the
    media limits (a larger one is a 413 before it is read)."""
    store = get_media_store()
    limit = store.max_bytes * media.MAX_PER_ACTION + 1024 * 1024
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"a body of {request.content_length:,} bytes is over the limit of "
                                         f"{limit:,} bytes ({media.MAX_PER_ACTION} photos of at most "
                                         f"{store.max_bytes:,} bytes)")
    request.max_content_length = limit
    form, files = request.form, request.files
    unknown = sorted(set(files) - {PHOTO_FIELD})
    if unknown:
        raise ApiError(400, "bad_request", f"unknown file field(s): {', '.join(unknown)}; photos go in "
                                           f"'{PHOTO_FIELD}'", field=unknown[0])
    data: dict[str, Any] = {}
    for name in form:
        values = [v for v in form.getlist(name) if v.strip()]
        if name in _MULTI_FIELDS:
            data.setdefault(_MULTI_FIELDS[name], []).extend(values)
        elif len(values) > 1:
            raise ApiError(400, "bad_request", f"{name}: given {len(values)} times", field=name)
        elif values:
            data[name] = values[0]
    photos = [(f.filename or "", f.read(store.max_bytes + 1)) for f in files.getlist(PHOTO_FIELD)]
    return _validated(model, data), photos


def _attachments(photos: list[tuple[str, bytes]], urls: list[str]) -> list[media.Attachment]:
    """The photos checked and re-encoded (415, 413, 422 for a bad one) and the links, before any
    transaction opens."""
    media.check_count([*photos, *urls])
    return commands.prepare_photos(photos) + [media.prepare_link(u) for u in urls]


def _not_json(constant: str):
    """Python's json reads NaN, Infinity and -Infinity; JSON has no such numbers."""
    raise ValueError(f"{constant} is not a JSON number")


def _refuse_bad_text(data: dict) -> None:
    """A text the database cannot store (NUL, unpaired surrogates) is a 400 naming the field."""
    for key, value in data.items():
        if bounds.text_fault(key):
            raise ApiError(400, "bad_request", f"a field name {bounds.text_fault(key)}")
        for text in value if isinstance(value, list) else [value]:
            fault = bounds.text_fault(text)
            if fault:
                raise ApiError(400, "bad_request", f"{key}: {fault}", field=key)


# =========================================================================== helpers


def _city_tz() -> ZoneInfo:
    from flask import current_app
    return ZoneInfo(get_runtime(current_app).timezone)


def _aware(value: Optional[datetime]) -> Optional[datetime]:
    """Naive datetimes from clients are city time."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_city_tz())
    return value.astimezone(timezone.utc)


def _visibility(user) -> list:
    """Department users see their own department's cases only (the workbench's rule)."""
    return case_queries.scope_conditions(user.role, user.department_code)


_PRIORITY_RANK = sql_case({p.value: i for i, p in enumerate(Priority)}, value=Incident.priority, else_=-1)
_STATE_RANK = sql_case({s.value: i for i, s in enumerate(State)}, value=Incident.state, else_=99)
_SORT_COLUMNS = {"id": Incident.id, "reported_at": Incident.reported_at, "deadline": Incident.deadline,
                 "priority": _PRIORITY_RANK, "state": _STATE_RANK}


def _actor(user) -> services.Actor:
    return services.Actor.of(user)


# =========================================================================== incidents


@route("GET", "/incidents", summary="List cases: filters, paging, sorting (all in SQL)",
       query=IncidentListQuery, response=IncidentPage)
def list_incidents(user, now: datetime, *, query: IncidentListQuery) -> IncidentPage:
    conds = _visibility(user)
    if query.state:
        conds.append(Incident.state.in_([s.value for s in query.state]))
    if query.open is not None:
        opened = [s.value for s in State.open_states()]
        conds.append(Incident.state.in_(opened) if query.open else Incident.state.not_in(opened))
    if query.department:
        conds.append(Incident.department_code.in_(query.department))
    if query.district:
        conds.append(Incident.district_code.in_(query.district))
    if query.grid:
        conds.append(Incident.grid_code.in_(query.grid))
    if query.category:
        conds.append(Incident.category_code.in_(
            select(Category.code).where(or_(Category.code.in_(query.category),
                                            Category.major_code.in_(query.category)))))
    if query.priority:
        conds.append(Incident.priority.in_([p.value for p in query.priority]))
    if query.light:
        conds.append(Incident.state.in_(RUNNING_STATES))
        conds.append(light_expr(now).in_([lt.value for lt in query.light]))
    if query.q:
        conds.append(or_(Incident.title.icontains(query.q, autoescape=True),
                         Incident.address.icontains(query.q, autoescape=True),
                         Incident.description.icontains(query.q, autoescape=True)))
    if query.reported_from is not None:
        conds.append(Incident.reported_at >= _aware(query.reported_from))
    if query.reported_to is not None:
        conds.append(Incident.reported_at < _aware(query.reported_to))

    key = query.sort.lstrip("-")
    desc = query.sort.startswith("-")
    col = _SORT_COLUMNS[key]
    order = [Incident.deadline.is_(None)] if key == "deadline" else []  # no deadline: last either way
    order += [col.desc(), Incident.id.desc()] if desc else [col.asc(), Incident.id.asc()]

    district, grid = aliased(Area), aliased(Area)
    stmt = (select(Incident.id, Incident.version, Incident.source, Incident.external_id, Incident.channel,
                   Incident.title, Incident.state, Incident.priority, Incident.category_code,
                   Category.name.label("category_name"), Incident.department_code,
                   Department.name.label("department_name"), Incident.district_code,
                   district.name.label("district_name"), Incident.grid_code, grid.name.label("grid_name"),
                   Incident.address, Incident.lon, Incident.lat, Incident.reported_at,
                   Incident.dispatched_at, Incident.deadline, running_light_expr(now).label("light"),
                   Incident.sign_due, Incident.supervise_level)
            .outerjoin(Category, Category.code == Incident.category_code)
            .outerjoin(Department, Department.code == Incident.department_code)
            .outerjoin(district, district.code == Incident.district_code)
            .outerjoin(grid, grid.code == Incident.grid_code)
            .where(*conds).order_by(*order)
            .limit(query.per_page).offset((query.page - 1) * query.per_page))
    with get_db().session_scope() as s:
        total = s.scalar(select(func.count()).select_from(Incident).where(*conds)) or 0
        rows = s.execute(stmt).all()
    items = [IncidentSummary.model_validate(dict(r._mapping)) for r in rows]
    return IncidentPage(items=items, page=query.page, per_page=query.per_page, total=total)


def _detail(s, user, incident_id: int, now: datetime, *, created_by_caller: bool = False) -> IncidentDetail:
    row = s.execute(select(Incident, running_light_expr(now)).where(Incident.id == incident_id, *(
        [] if created_by_caller else _visibility(user)))).first()
    if row is None:
        # another department's case answers as if it did not exist
        raise ApiError(404, "not_found", f"case {incident_id} does not exist")
    case, light = row
    events = s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
                       .order_by(IncidentEvent.id)).all()
    parts = case_queries.parts_of(s, [incident_id]).get(incident_id, [])
    dept_codes = {e.department_code for e in events if e.department_code} | (
        {case.department_code} if case.department_code else set()) | {p.department_code for p in parts}
    dept_names = dict(s.execute(select(Department.code, Department.name)
                                .where(Department.code.in_(dept_codes))).all()) if dept_codes else {}

    def code_name(code: Optional[str], model) -> Optional[CodeName]:
        if not code:
            return None
        if model is Department:
            return CodeName(code=code, name=dept_names.get(code))
        obj = s.get(model, code)
        return CodeName(code=code, name=obj.name if obj is not None else None)

    reporter_name, reporter_phone = reporter_view(case.reporter_name, case.reporter_phone, user.role)
    state = State(case.state)
    requests = case_queries.requests_of(s, incident_id)
    actions = permissions.available_actions(
        user.role, state, user_department=user.department_code, case_department=case.department_code,
        pending=[r.kind for r in requests if r.status == RequestStatus.PENDING.value],
        blocked=case_queries.blocked_of(case, get_runtime().rules))
    part_rows = [case_queries.part_row(p, now, get_runtime().calendar) for p in parts]
    if str(user.role) == Role.DEPARTMENT.value:
        actions += case_queries.assist_actions_of(case.state, part_rows, role=str(user.role),
                                                  department_code=user.department_code)
    elif any(p["replied_at"] is None for p in part_rows) and state in lifecycle.ASSIST_STATES:
        actions += permissions.assist_actions(user.role, assisting=[p["department_code"] for p in part_rows])
    return IncidentDetail(
        id=case.id, version=case.version, source=case.source, external_id=case.external_id,
        channel=case.channel, title=case.title, description=case.description or "",
        address=case.address or "", lon=case.lon, lat=case.lat, state=state,
        state_before_suspend=case.state_before_suspend, priority=case.priority,
        category=code_name(case.category_code, Category), department=code_name(case.department_code, Department),
        district=code_name(case.district_code, Area), grid=code_name(case.grid_code, Area),
        reporter_name=reporter_name, reporter_phone=reporter_phone,
        reported_at=case.reported_at, registered_at=case.registered_at, dispatched_at=case.dispatched_at,
        signed_at=case.signed_at, resolved_at=case.resolved_at, closed_at=case.closed_at,
        voided_at=case.voided_at, suspended_at=case.suspended_at, updated_at=case.updated_at,
        updated_by=case.updated_by or "", allowed_hours=case.allowed_hours, warn_at=case.warn_at,
        deadline=case.deadline, light=light, on_time=case.on_time, void_reason=case.void_reason,
        sign_due=case.sign_due, arbitrated=bool(case.arbitrated),
        lead_department=code_name(case.department_code, Department),
        assisting=[AssistPartOut(department=code_name(p["department_code"], Department),
                                 **{k: v for k, v in p.items() if k not in ("department_code", "department",
                                                                             "sign_on_time", "reply_on_time")})
                   for p in part_rows],
        citizen=get_runtime().rules.is_citizen(case.channel), first_contacted_at=case.first_contacted_at,
        resolve_outcome=case.resolve_outcome, revisit_result=case.revisit_result, revisited_at=case.revisited_at,
        first_revisited_at=case.first_revisited_at,
        sign_light=case_queries.sign_light_of(case.state, case.dispatched_at, case.signed_at, case.sign_due, now,
                                              get_runtime().calendar),
        duplicate_of=case.duplicate_of, supervise_level=case.supervise_level or 0,
        counters=Counters(rework=case.rework_count, returns=case.return_count,
                          reassignments=case.reassign_count, extensions=case.extension_count,
                          extension_hours=case.extension_hours, suspended_hours=case.suspended_hours,
                          alarms=case.alarm_count),
        actions=actions,
        requests=[_request_out(r) for r in requests],
        attachments=[AttachmentOut.model_validate(a) for a in media_queries.attachments_of(s, incident_id)],
        timeline=[TimelineEvent(id=e.id, at=e.at, actor=e.actor, action=e.action, from_state=e.from_state,
                                to_state=e.to_state, department=code_name(e.department_code, Department),
                                note=e.note or "", payload=e.payload) for e in events],
    )


def _request_out(r: CaseRequest) -> CaseRequestOut:
    return CaseRequestOut(id=r.id, kind=r.kind, status=r.status, hours=r.hours, reason=r.reason, note=r.note or "",
                          department=r.department_code, requested_by=r.requested_by, requested_at=r.requested_at,
                          decided_by=r.decided_by, decided_at=r.decided_at, decision_note=r.decision_note or "")


@route("GET", "/incidents/{incident_id}", summary="One case with its timeline",
       response=IncidentDetail, errors=(404,))
def get_incident(user, now: datetime, *, incident_id: int) -> IncidentDetail:
    with get_db().session_scope() as s:
        return _detail(s, user, incident_id, now)


@route("POST", "/incidents", summary="Create a case (state reported), with photos (multipart) or photo URLs",
       roles=CREATORS, body=IncidentCreate, response=IncidentDetail, status=201,
       errors=(403, 409, 413, 415, 422), multipart=True)
def create_incident(user, now: datetime, *, body: IncidentCreate, photos: list) -> IncidentDetail:
    reported_at = _aware(body.reported_at) or now
    if reported_at > now + FUTURE_SKEW:
        raise ValidationFailed(f"reported_at {reported_at.isoformat()} lies in the future", field="reported_at")
    rules = get_runtime().rules
    items = _attachments(photos, body.media_urls)
    try:
        with commands.stored(items) as attachments, get_db().session_scope() as s:
            existing = s.scalar(select(Incident.id).where(Incident.source == body.source,
                                                          Incident.external_id == body.external_id))
            if existing is not None:
                raise ApiError(409, "duplicate", f"a case from {body.source!r} with external_id "
                                                 f"{body.external_id!r} exists already", id=existing)
            case = services.create_case(
                s, rules, source=body.source, external_id=body.external_id, channel=body.channel.value,
                title=body.title, reported_at=reported_at, now=now, category_code=body.category_code,
                description=body.description, address=body.address, lon=body.lon, lat=body.lat,
                priority=body.priority.value, reporter_name=body.reporter_name,
                reporter_phone=body.reporter_phone, actor=user.username, attachments=attachments,
                link_repeats=True)
            return _detail(s, user, case.id, now, created_by_caller=True)
    except IntegrityError:
        # a concurrent request with the same (source, external_id) won the race
        raise ApiError(409, "duplicate", f"a case from {body.source!r} with external_id "
                                         f"{body.external_id!r} exists already") from None


@route("POST", "/incidents/{incident_id}/actions", summary="Perform a lifecycle action (DESIGN §3); resolve and "
                                                           "verify_pass / verify_fail may bring photos (multipart) "
                                                           "or photo URLs",
       body=ActionRequest, response=ActionResult, errors=(403, 404, 409, 413, 415, 422), multipart=True)
def act_on_incident(user, now: datetime, *, incident_id: int, body: ActionRequest, photos: list) -> ActionResult:
    rules = get_runtime().rules
    items = _attachments(photos, body.media_urls)
    with commands.stored(items) as attachments, get_db().session_scope() as s:
        done = services.act(s, rules, _actor(user), incident_id, body.action, version=body.version,
                            now=now, department=body.department, note=body.note, reason=body.reason,
                            hours=body.hours, duplicate_of=body.duplicate_of, level=body.level,
                            case_request_id=body.case_request_id, request_id=body.request_id,
                            attachments=attachments, assisting=body.assisting, override=body.override,
                            outcome=body.outcome.value if body.outcome else None,
                            result=body.result.value if body.result else None)
        case = done.case
        return ActionResult(id=case.id, state=State(case.state), version=case.version,
                            department=case.department_code, deadline=case.deadline, sign_due=case.sign_due,
                            case_request=_request_out(done.request) if done.request else None)


_FILE_CONTENT = {"image/jpeg": {"schema": {"type": "string", "contentMediaType": "image/jpeg"}},
                 "image/webp": {"schema": {"type": "string", "contentMediaType": "image/webp"}}}
#: how long a browser may keep a photo (private: never a shared cache; the photo never changes)
FILE_MAX_AGE = 3600


def _send_attachment(user, incident_id: int, attachment_id: int, variant: str):
    """A stored photo or its thumbnail, only after ``incidents.permissions`` says this user may
    open the photos of this case; an attachment id of another case answers 404."""
    with get_db().session_scope() as s:
        found = media_queries.stored_file(s, incident_id, attachment_id)
    if found is None:
        raise ApiError(404, "not_found", f"case {incident_id} has no attachment {attachment_id}")
    att, case_department = found
    if not permissions.may_see_case(user.role, user_department=user.department_code, case_department=case_department):
        # another department's case answers as if it did not exist (as its detail does)
        raise ApiError(404, "not_found", f"case {incident_id} does not exist")
    permissions.check_media(user.role, user_department=user.department_code, case_department=case_department)
    if att.kind != "photo":
        raise ApiError(404, "not_found", f"attachment {attachment_id} is a link, not a stored photo: {att.url}")
    key = att.thumb_key if variant == "thumbnail" else att.storage_key
    store = get_media_store()
    try:
        path = store.path(key)
    except ValueError:
        path = None
    if path is None or not path.is_file():
        log.warning("attachment %s of case %s: its file %s is missing from the media store",
                    attachment_id, incident_id, key)
        raise ApiError(404, "not_found", f"the file of attachment {attachment_id} is missing")
    ext = path.suffix
    resp = send_file(path, mimetype=att.mime, conditional=True, max_age=FILE_MAX_AGE, etag=True,
                     download_name=f"case-{incident_id}-{attachment_id}{'-thumb' if variant == 'thumbnail' else ''}{ext}")
    resp.cache_control.public = False
    resp.cache_control.private = True
    return resp


@route("GET", "/incidents/{incident_id}/attachments/{attachment_id}/file",
       summary="A case's stored photo (re-encoded, without EXIF); only for roles that may see the case",
       errors=(403, 404), content=_FILE_CONTENT)
def get_attachment_file(user, now: datetime, *, incident_id: int, attachment_id: int):
    return _send_attachment(user, incident_id, attachment_id, "file")


@route("GET", "/incidents/{incident_id}/attachments/{attachment_id}/thumbnail",
       summary="The thumbnail of a case's stored photo; only for roles that may see the case",
       errors=(403, 404), content=_FILE_CONTENT)
def get_attachment_thumbnail(user, now: datetime, *, incident_id: int, attachment_id: int):
    return _send_attachment(user, incident_id, attachment_id, "thumbnail")


# =========================================================================== reference data


@route("GET", "/departments", summary="Departments of the loaded city pack", response=DepartmentList)
def list_departments(user, now: datetime) -> DepartmentList:
    with get_db().session_scope() as s:
        rows = s.scalars(select(Department).order_by(Department.code)).all()
        return DepartmentList(items=[DepartmentOut.model_validate(d) for d in rows])


@route("GET", "/categories", summary="Case categories (大类/小类) with their time limits", response=CategoryList)
def list_categories(user, now: datetime) -> CategoryList:
    with get_db().session_scope() as s:
        rows = s.scalars(select(Category).order_by(Category.code)).all()
        return CategoryList(items=[CategoryOut.model_validate(c) for c in rows])


@route("GET", "/areas", summary="Districts and grids; geometry (GeoJSON, WGS84) on request",
       query=AreasQuery, response=AreaList)
def list_areas(user, now: datetime, *, query: AreasQuery) -> AreaList:
    stmt = select(Area).order_by(Area.level, Area.code)
    if query.level:
        stmt = stmt.where(Area.level == query.level)
    if query.parent:
        stmt = stmt.where(Area.parent_code == query.parent)
    with get_db().session_scope() as s:
        items = [AreaOut(code=a.code, name=a.name, level=a.level, parent_code=a.parent_code,
                         centroid_lon=a.centroid_lon, centroid_lat=a.centroid_lat,
                         geometry=a.geojson if query.geometry else None)
                 for a in s.scalars(stmt).all()]
    return AreaList(items=items)


# =========================================================================== 重复诉求 and alerts


class RepeatCaseOut(ResponseModel):
    id: int
    title: str
    state: State
    reported_at: UtcDateTime
    category_code: Optional[str] = None


class RepeatCandidateOut(RepeatCaseOut):
    score: float = Field(description="weighted sum of the parts (weights in RepeatsOut.weights), 0…1")
    parts: dict[str, float] = Field(description="distance, time, text, category: each 0…1")
    distance_m: float
    hours: float = Field(description="hours between the candidate's report and this case's")


class RepeatParentOut(RepeatCaseOut):
    auto: bool = Field(description="linked by the intake rule (score ≥ auto_link_score), not a person")
    score: Optional[float] = None
    linked_by: Optional[str] = None
    linked_at: Optional[UtcDateTime] = None


class RepeatsOut(ResponseModel):
    reach: dict[str, float] = Field(description="the category's radius (m) and window (h) from the city pack")
    weights: dict[str, float]
    auto_link_score: float
    candidates: list[RepeatCandidateOut]
    parent: Optional[RepeatParentOut] = None
    children: list[RepeatCaseOut]
    may_link: bool
    may_close_children: bool


class CloseChildrenRequest(_In):
    note: str = Field(min_length=1, max_length=bounds.MAX_NOTE, description="the one reason, on every child's timeline")


class CloseChildrenOut(ResponseModel):
    closed: list[int]
    skipped: dict[str, str] = Field(description="child id → why it was not closed with its parent")


def _visible_case(s, user, incident_id: int) -> Incident:
    case = s.scalar(select(Incident).where(Incident.id == incident_id, *_visibility(user)))
    if case is None:
        raise ApiError(404, "not_found", f"case {incident_id} does not exist")
    return case


@route("GET", "/incidents/{incident_id}/repeats", summary="重复诉求: a case's candidate parents (score and its "
       "parts: distance, time, text, category), its parent and its children", response=RepeatsOut, errors=(404,))
def get_repeats(user, now: datetime, *, incident_id: int) -> RepeatsOut:
    from incidents.queries.repeats import repeats_view
    with get_db().session_scope() as s:
        view = repeats_view(s, get_runtime().rules, _visible_case(s, user, incident_id), role=user.role,
                            department_code=user.department_code)
    view.pop("open_children", None)
    return RepeatsOut.model_validate(view)


@route("POST", "/incidents/{incident_id}/repeats/close", summary="Close a closed parent's open repeats with one "
       "reason: each child merged into the parent by its own event", body=CloseChildrenRequest,
       response=CloseChildrenOut, errors=(403, 404, 422))
def close_repeats(user, now: datetime, *, incident_id: int, body: CloseChildrenRequest) -> CloseChildrenOut:
    with get_db().session_scope() as s:
        _visible_case(s, user, incident_id)
        closed, skipped = services.close_children(s, get_runtime().rules, _actor(user), incident_id,
                                                  reason=body.note, now=now)
    return CloseChildrenOut(closed=closed, skipped={str(k): v for k, v in skipped.items()})


class AlertOut(ResponseModel):
    key: str
    kind: str = Field(description="repeat (重复诉求: a grid × category that complains again and again)")
    at: UtcDateTime
    title: str
    reason: str = Field(description="the rule that raised it")
    count: int
    place: dict[str, str]
    cases: list[int] = Field(description="the cases behind it")


class AlertList(ResponseModel):
    as_of: UtcDateTime
    items: list[AlertOut]


@route("GET", "/alerts", summary="Alerts with their reasons and cases: 重复诉求 (3+ repeats at one grid × "
       "category within the pack's days)", response=AlertList)
def list_alerts(user, now: datetime) -> AlertList:
    from incidents.queries.repeats import repeat_alarms
    with get_db().read_scope() as s:
        alarms = repeat_alarms(s, now, get_runtime().rules)
    return AlertList(as_of=now, items=[AlertOut(
        key=a.key, kind="repeat", at=a.last_at, title=f"{a.grid} · {a.category}", reason=a.rule, count=a.count,
        place={"grid_code": a.grid_code, "grid": a.grid, "category_code": a.category_code, "category": a.category},
        cases=list(a.cases)) for a in alarms])


# =========================================================================== feeds


@route("GET", "/feeds", summary="Feed health: last record, lag, volume against the usual, reject rate, "
                                "last error, status ok|late|silent", response=FeedList)
def list_feeds(user, now: datetime) -> FeedList:
    return FeedList(as_of=now, items=[FeedHealthOut.model_validate(f) for f in feed_health(now)])


# =========================================================================== OpenAPI


@route("GET", "/openapi.json", summary="This API's OpenAPI 3.1 document")
def openapi_json(user, now: datetime):
    return jsonify(openapi_document())


ERROR_DESCRIPTIONS = {400: "malformed JSON or a field that does not validate (code bad_request)",
                      401: "no session and no valid bearer token",
                      403: "the caller's role may not do this",
                      404: "no such case (or one the caller may not see)",
                      409: "stale version (changed_by, changed_at) or duplicate",
                      413: "a photo (or the whole body) over the size limit, or an image with too many pixels",
                      415: "a photo that is not a JPEG, PNG or WebP image (its bytes are checked, not its name or type)",
                      422: "the case's state does not allow it, or a domain rule refuses it"}


class ProgressQuery(BaseModel):
    """进度查询: a citizen's case number and the last four digits of the phone given at report."""
    case: str = Field(description="the case number (a leading # is allowed)", examples=["1024"])
    phone_last4: str = Field(pattern=r"^\d{4}$", description="the last four digits of the phone given at report")


class ProgressOut(BaseModel):
    """What 进度查询 shows: never the title, description, address, point, reporter, photos or notes."""
    case: int
    state: State
    state_label: str = Field(description="the state in Chinese (办理状态)")
    category: Optional[str] = Field(None, description="the category's name")
    district: Optional[str] = Field(None, description="the district's name")
    department: Optional[str] = Field(None, description="the department in charge (承办部门)")
    reported_at: Optional[str] = Field(None, description="ISO 8601 with the city's offset")
    dispatched_at: Optional[str] = Field(None, description="the current dispatch (null after a return)")
    resolved_at: Optional[str] = Field(None, description="the current resolve (null after a rework or 重办)")
    closed_at: Optional[str] = None


#: the public doors under this prefix (no login; data_sources/web/progress.py): their OpenAPI entries
PROGRESS_PATH = "/progress"


def _public_paths(ref, error_ref) -> dict:
    err = {"content": {"application/json": {"schema": error_ref}}}
    return {PREFIX + PROGRESS_PATH: {"post": {
        "operationId": "post_progress", "summary": "进度查询: a case's state, department and dates, for its citizen",
        "description": ("Public (no login). The same answer (404) for a wrong number, wrong digits and a case "
                        "reported without a phone; every query, right or wrong, counts against "
                        "CITYOPS_PROGRESS_RATE_PER_ADDRESS (429 with Retry-After over it)."),
        "tags": ["progress"], "security": [],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": ref(ProgressQuery, "validation")},
            "application/x-www-form-urlencoded": {"schema": ref(ProgressQuery, "validation")}}},
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": ref(ProgressOut, "serialization")}}},
            "400": {"description": "a malformed case number or not four digits", **err},
            "404": {"description": "no case with this number and these digits (the same answer for every miss)", **err},
            "429": {"description": "too many queries from this address (Retry-After says when to try again)", **err}}}}}


def openapi_document() -> dict:
    """OpenAPI 3.1, generated from ROUTES and the pydantic models they validate with (and the public
    progress door's models)."""
    wanted: list[tuple[type[BaseModel], str]] = [(ErrorResponse, "serialization"), (ProgressQuery, "validation"),
                                                 (ProgressOut, "serialization")]
    for r in ROUTES:
        for model, mode in ((r.query, "validation"), (r.body, "validation"), (r.response, "serialization")):
            if model is not None and (model, mode) not in wanted:
                wanted.append((model, mode))
    refs, top = models_json_schema(wanted, ref_template="#/components/schemas/{model}")
    schemas = top.get("$defs", {})

    def ref(model, mode):
        return refs[(model, mode)]

    error_ref = ref(ErrorResponse, "serialization")
    paths: dict[str, dict] = {}
    for r in ROUTES:
        op: dict[str, Any] = {
            "operationId": r.operation_id, "summary": r.summary,
            "description": "Roles: " + ", ".join(role.value for role in r.roles),
            "tags": [r.path.strip("/").split("/")[0].split(".")[0]],
            "parameters": [], "responses": {},
        }
        for name in re.findall(r"\{(\w+)\}", r.path):
            op["parameters"].append({"name": name, "in": "path", "required": True,
                                     "schema": {"type": "integer"}})
        if r.query is not None:
            qs = schemas[ref(r.query, "validation")["$ref"].rsplit("/", 1)[1]]
            list_fields = getattr(r.query, "LIST_FIELDS", frozenset())
            for name, prop in qs.get("properties", {}).items():
                param = {"name": name, "in": "query", "required": name in qs.get("required", []),
                         "schema": prop}
                if prop.get("description"):
                    param["description"] = prop["description"]
                if name in list_fields:
                    param.update(style="form", explode=True)
                op["parameters"].append(param)
        if r.body is not None:
            op["requestBody"] = {"required": True,
                                 "content": {"application/json": {"schema": ref(r.body, "validation")}}}
            if r.multipart:
                fields = schemas[ref(r.body, "validation")["$ref"].rsplit("/", 1)[1]]
                op["requestBody"]["content"]["multipart/form-data"] = {"schema": {
                    "type": "object", "required": fields.get("required", []),
                    "properties": {**fields.get("properties", {}), PHOTO_FIELD: {
                        "type": "array", "maxItems": media.MAX_PER_ACTION,
                        "description": "photos (JPEG, PNG or WebP; the bytes are checked): re-encoded, EXIF "
                                       "(GPS included) removed, a thumbnail made",
                        "items": {"type": "string", "contentMediaType": "application/octet-stream"}}}},
                    "encoding": {PHOTO_FIELD: {"contentType": "image/jpeg, image/png, image/webp"}}}
        ok: dict[str, Any] = {"description": "OK" if r.status == 200 else "Created"}
        ok["content"] = r.content or {"application/json": {"schema": ref(r.response, "serialization")
                                                           if r.response else {"type": "object"}}}
        op["responses"][str(r.status)] = ok
        codes = set(r.errors) | {401}
        if r.query is not None or r.body is not None:
            codes.add(400)
        if set(r.roles) != set(ALL_ROLES):
            codes.add(403)
        for code in sorted(codes):
            op["responses"][str(code)] = {"description": ERROR_DESCRIPTIONS[code],
                                          "content": {"application/json": {"schema": error_ref}}}
        if not op["parameters"]:
            del op["parameters"]
        paths.setdefault(PREFIX + r.path, {})[r.method.lower()] = op
    paths.update(_public_paths(ref, error_ref))

    return {
        "openapi": "3.1.0",
        "info": {"title": "CityOps API", "version": "1.0.0",
                 "description": "一网统管 case handling. Errors: {\"error\": {\"code\", \"message\"}}."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "token from `flask create-token USER`"},
                                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "session"}},
        },
        "security": [{"bearerAuth": []}, {"sessionCookie": []}],
    }


# =========================================================================== wiring

_ANY = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@bp.route("/", defaults={"rest": ""}, methods=_ANY)
@bp.route("/<path:rest>", methods=_ANY)
def _no_such_endpoint(rest: str):
    """Without this, Dash's catch-all page route would answer unknown /api/v1 paths with HTML."""
    known = [r for r in ROUTES if re.fullmatch(re.sub(r"\{\w+\}", r"[^/]+", r.path), "/" + rest)]
    if known and request.method not in {r.method for r in known}:
        allowed = ", ".join(sorted({r.method for r in known}))
        return error_response(405, "method_not_allowed", f"{request.method} is not allowed here; use {allowed}")
    return error_response(404, "not_found", f"no endpoint {request.method} {request.path}")


def init_app(server: Flask) -> None:
    server.register_blueprint(bp)

    @server.errorhandler(HTTPException)
    def _api_http_errors(exc: HTTPException):
        """Unknown paths and wrong methods under /api/ answer JSON too; elsewhere Flask's default."""
        if request.path.startswith("/api/"):
            return http_error_response(exc)
        return exc


# =========================================================================== KPIs (DESIGN §6)

KPI_ROLES = tuple(permissions.KPI_ROLES)


class KpiQuery(_In):
    from_: datetime = Field(alias="from", description="period start, inclusive (ISO date or datetime; "
                                                      "without an offset: city time)")
    to: datetime = Field(description="period end, exclusive (ISO date or datetime; without an offset: city time)")
    group_by: Optional[Literal["department", "district"]] = Field(
        None, description="also give the KPIs per department or district, with the 综合指标值 ranking")
    as_of: Optional[datetime] = Field(None, description="the instant the KPIs describe (default: now); "
                                                        "later events are ignored")


class KpiOut(ResponseModel):
    code: str
    name: str
    name_en: str
    value: Optional[float] = Field(description="null when the denominator is 0; rates are fractions (0.95 = 95 %)")
    numerator: float
    denominator: Optional[float] = Field(description="null for counts")
    unit: str
    target: Optional[float]
    direction: Literal["up", "down"] = Field(description="up: higher is better")
    met: Optional[bool] = Field(description="value meets the target (null when either is missing)")
    formula: str = Field(description="口径")
    drill: dict[str, Any] = Field(description="the filter that identifies the cases behind the number")


class KpiGroupOut(ResponseModel):
    code: str
    name: Optional[str]
    kpis: list[KpiOut]


class RankRowOut(ResponseModel):
    rank: Optional[int]
    code: str
    name: str
    volume: int = Field(description="the group's 立案 cohort (cases registered in the period, not voided)")
    closure_rate: Optional[float]
    on_time_disposal_rate: Optional[float]
    rework_rate: Optional[float]
    volume_score: Optional[float]
    score: Optional[float] = Field(description="综合指标值, 0–100")
    grade: Optional[Literal["A", "B", "C", "D", "E"]]
    reason: str = Field(description="why a group is unranked")
    assist_reply_rate: Optional[float] = Field(None, description=(
        "by department: its 协办按时回复率 (its assisting parts replied on time; not a weight of the score)"))


class RankingOut(ResponseModel):
    by: str
    min_volume: int
    weights: dict[str, float]
    formula: str
    ranked: list[RankRowOut]
    unranked: list[RankRowOut] = Field(description="below the minimum volume (or without a 按期处置率)")
    red: list[RankRowOut] = Field(description="红榜: best")
    black: list[RankRowOut] = Field(description="黑榜: worst")


class KpiReportOut(ResponseModel):
    start: UtcDateTime
    end: UtcDateTime
    as_of: UtcDateTime
    group_by: Optional[str]
    kpis: list[KpiOut]
    groups: Optional[list[KpiGroupOut]] = None
    ranking: Optional[RankingOut] = None


def _kpi_out(k) -> KpiOut:
    return KpiOut(code=k.code, name=k.name, name_en=k.name_en, value=k.value, numerator=k.numerator,
                  denominator=k.denominator, unit=k.unit, target=k.target, direction=k.direction, met=k.met,
                  formula=k.formula, drill=k.drill)


def kpi_report_out(report) -> KpiReportOut:
    """The API's shape of an ``incidents.kpis.KpiReport`` (exports can reuse it)."""
    out = KpiReportOut(start=report.start, end=report.end, as_of=report.as_of, group_by=report.group_by,
                       kpis=[_kpi_out(k) for k in report.kpis.values()])
    if report.group_by:
        r = report.ranking
        names = {row.code: row.name for row in r.ranked + r.unranked}
        out.groups = [KpiGroupOut(code=code, name=names.get(code), kpis=[_kpi_out(k) for k in ks.values()])
                      for code, ks in report.groups.items()]
        rows = lambda xs: [RankRowOut.model_validate(x) for x in xs]  # noqa: E731
        out.ranking = RankingOut(by=r.by, min_volume=r.min_volume, weights=r.weights, formula=r.formula,
                                 ranked=rows(r.ranked), unranked=rows(r.unranked), red=rows(r.red),
                                 black=rows(r.black))
    return out


@route("GET", "/kpis", summary="KPIs of a period (DESIGN §6): value, numerator, denominator, target, 口径 and "
                               "drill filter; per department or district with the 综合指标值 ranking",
       roles=KPI_ROLES, query=KpiQuery, response=KpiReportOut)
def get_kpis(user, now: datetime, *, query: KpiQuery) -> KpiReportOut:
    from incidents.queries.brief import kpi_report
    start, end = _aware(query.from_), _aware(query.to)
    if not start < end:
        raise ApiError(400, "bad_request", f"'from' ({start.isoformat()}) must be before 'to' ({end.isoformat()})",
                       field="from")
    # default as_of: now to the minute, so that screens polling within a minute share one computation
    as_of = _aware(query.as_of) or now.replace(second=0, microsecond=0)
    return kpi_report_out(kpi_report(start, end, as_of, query.group_by))
