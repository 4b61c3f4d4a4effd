"""The brief's download door: ``/brief/export.pdf`` and ``/brief/export.xlsx`` for ``from``/``to``
(ISO dates or datetimes; without an offset: city time) and ``as_of`` (default: now, to the minute)
— the page's export links carry the page's own three values, so a file shows exactly what the page
showed. Who may: ``incidents.permissions.KPI_ROLES``. The files are rendered by the dashboards
(``dashboards._exports``), whose renderers the composition root hands in at start-up."""
from __future__ import annotations

import io
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from flask import Flask, current_app, request, send_file
from flask_login import current_user

from data_sources.web.errors import error_response
from incidents import permissions
from incidents.queries import brief as qb
from incidents.queries.reference import city_info

PDF = "application/pdf"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RENDERERS_KEY = "cityops_export_renderers"


class BadRequest(Exception):
    def __init__(self, code: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = code, kind, message


def init_app(server: Flask, *, render_pdf: Callable, render_xlsx: Callable,
             font_missing: type[Exception]) -> None:
    """``render_pdf(brief) -> bytes``, ``render_xlsx(brief, rows, flags) -> bytes``; ``font_missing``:
    the renderers' setup error, answered 503 font_missing."""
    server.extensions[RENDERERS_KEY] = (render_pdf, render_xlsx)
    server.add_url_rule("/brief/export.pdf", "brief_export_pdf", export_pdf)
    server.add_url_rule("/brief/export.xlsx", "brief_export_xlsx", export_xlsx)
    server.register_error_handler(BadRequest, lambda e: error_response(e.status, e.kind, e.message))
    server.register_error_handler(font_missing, lambda e: error_response(503, "font_missing", str(e)))


def _check_role() -> None:
    if not current_user.is_authenticated:
        raise BadRequest(401, "unauthorized", "login required")
    if current_user.role not in permissions.KPI_ROLES:
        raise BadRequest(403, "forbidden", "your role may not export the brief")


def _city_tz() -> str:
    return city_info().timezone


def _instant(value: str, name: str, tz: str, *, end: bool = False) -> datetime:
    """An ISO date (the whole day: its midnight, or the next one for an inclusive end) or datetime."""
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime.combine(d + timedelta(days=1) if end else d, time(0), ZoneInfo(tz))
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(400, "bad_request", f"'{name}' is not an ISO date or datetime: {value!r}")
    return dt if dt.tzinfo else dt.replace(tzinfo=ZoneInfo(tz))


def params() -> tuple[datetime, datetime, datetime]:
    """(from, to, as_of) of an export request. A date ``to`` is inclusive (``to=2026-11-30`` ends
    at 12-01 00:00); a datetime ``to`` is the exclusive end, as the page's links give it."""
    tz = _city_tz()
    args = request.args
    missing = [k for k in ("from", "to") if not args.get(k)]
    if missing:
        raise BadRequest(400, "bad_request", f"missing query parameter(s): {', '.join(missing)} (ISO dates)")
    start = _instant(args["from"], "from", tz)
    end = _instant(args["to"], "to", tz, end=True)
    if not start < end:
        raise BadRequest(400, "bad_request", f"'from' ({start.isoformat()}) must be before 'to' ({end.isoformat()})")
    if end - start > timedelta(days=366 * 3):
        raise BadRequest(400, "bad_request", "a brief covers at most 3 years")
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    as_of = _instant(args["as_of"], "as_of", tz) if args.get("as_of") else now
    return start, end, as_of


def _day(dt: datetime, tz: str) -> str:
    return dt.astimezone(ZoneInfo(tz)).strftime("%Y%m%d")


def _filename(start: datetime, end: datetime, ext: str) -> str:
    tz = _city_tz()
    return f"cityops-brief-{_day(start, tz)}-{_day(end - timedelta(seconds=1), tz)}.{ext}"


def export_pdf():
    _check_role()
    start, end, as_of = params()
    render_pdf, _ = current_app.extensions[RENDERERS_KEY]
    data = render_pdf(qb.brief(start, end, as_of))
    return send_file(io.BytesIO(data), mimetype=PDF, download_name=_filename(start, end, "pdf"))


def export_xlsx():
    _check_role()
    start, end, as_of = params()
    b = qb.brief(start, end, as_of)
    rows, flags = qb.case_table(start, end, as_of)
    _, render_xlsx = current_app.extensions[RENDERERS_KEY]
    data = render_xlsx(b, rows, flags)
    return send_file(io.BytesIO(data), mimetype=XLSX, as_attachment=True, download_name=_filename(start, end, "xlsx"))
