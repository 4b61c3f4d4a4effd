"""The one JSON error builder of the HTTP doors: every door but Open311 (whose GeoReport v2
standard has its own error list) answers an error as ``{"error": {"code": …, "message": …}}``,
with the status code the error's kind maps to here (domain errors included)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Optional

from flask import jsonify
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from werkzeug.exceptions import HTTPException

from data_sources.store.db import RETRY_AFTER_SECONDS
from incidents.lifecycle import DomainError, StaleVersion, TransitionError, ValidationFailed

#: the status of each domain error's code (incidents.lifecycle)
DOMAIN_STATUS = {"forbidden": 403, "stale_version": 409, "invalid_transition": 422,
                 "not_found": 404, "invalid": 422, "too_large": 413, "unsupported_media_type": 415}
#: the error code of each HTTP status the doors answer
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
              422: "invalid", 500: "internal_error"}


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


#: answers carry every time in UTC ("…Z"), whatever the zone of the value they were built from
UtcDateTime = Annotated[datetime, AfterValidator(_to_utc)]


class ResponseModel(BaseModel):
    """The base of every JSON answer's model (the REST API's and the error envelope)."""
    model_config = ConfigDict(from_attributes=True)


class ErrorBody(ResponseModel):
    code: str = Field(description="machine-readable: bad_request, unauthorized, forbidden, not_found, "
                                  "duplicate, stale_version, invalid_transition, invalid, …")
    message: str
    field: Optional[str] = Field(None, description="the request field at fault, when there is one")
    details: Optional[list[dict[str, Any]]] = Field(None, description="bad_request: one entry per field error")
    changed_by: Optional[str] = Field(None, description="stale_version: who changed the case")
    changed_at: Optional[UtcDateTime] = Field(None, description="stale_version: when (UTC)")
    allowed: Optional[list[str]] = Field(None, description="invalid_transition: actions allowed in the current state")
    id: Optional[int] = Field(None, description="duplicate: the id of the existing case")


class ErrorResponse(ResponseModel):
    error: ErrorBody


def error_response(status: int, code: str, message: str, *, headers: Optional[dict] = None, **extra: Any):
    """``{"error": {"code": …, "message": …, <extra>}}`` with ``status`` (and ``headers``)."""
    body = ErrorBody(code=code, message=message, **extra)
    return jsonify(error=body.model_dump(mode="json", exclude_none=True)), status, headers or {}


def unavailable_response():
    """The database is away (refused, timed out, pool exhausted): 503, try again shortly."""
    return error_response(503, "unavailable", "the database is not reachable at the moment; try again shortly",
                          headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def domain_error_response(exc: DomainError):
    """A domain error (stale version, refused transition, invalid input, …) with what it knows."""
    extra: dict[str, Any] = {}
    if isinstance(exc, StaleVersion):
        extra["changed_by"] = exc.changed_by
        extra["changed_at"] = exc.changed_at if isinstance(exc.changed_at, datetime) else None
    elif isinstance(exc, TransitionError):
        extra["allowed"] = [a.value for a in exc.allowed]
    elif isinstance(exc, ValidationFailed) and exc.field:
        extra["field"] = exc.field
    return error_response(DOMAIN_STATUS.get(exc.code, 422), exc.code, exc.message, **extra)


def http_error_response(exc: HTTPException, codes: Optional[dict[int, str]] = None):
    """An HTTP error (404, 405, 413 …) raised by Flask or a door, its code from ``codes``."""
    status = exc.code or 500
    return error_response(status, (HTTP_CODES if codes is None else codes).get(status, "http_error"),
                          exc.description or exc.name)
