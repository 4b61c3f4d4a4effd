"""The brief's download door: ``/brief/export.pdf`` and ``/brief/export.xlsx`` for ``from``/``to``
(ISO dates or datetimes; without an offset: city time) and ``as_of`` (default: now, to the minute)
— the page's export links carry the page's own three values, so a file shows exactly what the page
showed. Who may: ``incidents.permissions.KPI_ROLES``, asked on every route below. The files are
rendered by the dashboards (``dashboards._exports``), whose renderers the composition root hands
in at start-up.

The Excel file (one row per case behind the KPIs: 100k rows for a quarter) is built by a
background job (``export_jobs``), streamed to a file in the instance folder, never held by a web
worker:

    POST /brief/exports?from=…&to=…&as_of=…   202: the job (state, rows done of total, status and download URLs)
    GET  /brief/exports/<id>                   the job as it stands
    GET  /brief/exports/<id>/file              the file, once done (streamed from disk)
    GET  /brief/export.xlsx?from=…&to=…        for scripts: the file when the job finishes within
                                               EXPORT_WAIT_SECONDS, else 202 with the job and a Location
"""
from __future__ import annotations

import io
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from flask import Flask, current_app, jsonify, request, send_file, url_for
from flask_login import current_user

from data_sources.web import export_jobs
from data_sources.web.errors import error_response, unavailable_response
from incidents import permissions
from incidents.queries import brief as qb
from incidents.queries.reference import city_info

PDF = "application/pdf"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RENDERERS_KEY = "cityops_export_renderers"
JOBS_KEY = "cityops_export_jobs"


class BadRequest(Exception):
    def __init__(self, code: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = code, kind, message


def init_app(server: Flask, *, render_pdf: Callable, render_xlsx: Callable,
             font_missing: type[Exception]) -> None:
    """``render_pdf(brief) -> bytes``; ``render_xlsx(brief, rows, flags, path, progress)`` writes the
    file at ``path``, calling ``progress(done, total)`` as case rows are written; ``font_missing``:
    the renderers' setup error, answered 503 font_missing."""
    server.extensions[RENDERERS_KEY] = (render_pdf, render_xlsx)
    folder = server.config["EXPORT_DIR"] or str(Path(server.instance_path) / "exports")
    server.extensions[JOBS_KEY] = export_jobs.Jobs(Path(folder), float(server.config["EXPORT_KEEP_MINUTES"]) * 60)
    server.add_url_rule("/brief/export.pdf", "brief_export_pdf", export_pdf)
    server.add_url_rule("/brief/export.xlsx", "brief_export_xlsx", export_xlsx)
    server.add_url_rule("/brief/exports", "brief_export_start", start_export, methods=["POST"])
    server.add_url_rule("/brief/exports/<job_id>", "brief_export_status", export_status)
    server.add_url_rule("/brief/exports/<job_id>/file", "brief_export_file", export_file)
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


def _jobs() -> export_jobs.Jobs:
    return current_app.extensions[JOBS_KEY]


def _start_xlsx_job() -> dict:
    """The asker's Excel job for the request's period: the running or finished one, else a new one."""
    start, end, as_of = params()
    _, render_xlsx = current_app.extensions[RENDERERS_KEY]

    def work(path: Path, progress: export_jobs.Progress) -> None:
        progress.stage("brief")
        b = qb.brief(start, end, as_of)
        progress.stage("cases")
        rows, flags = qb.case_table(start, end, as_of)
        progress.stage("writing", total=len(rows))
        render_xlsx(b, rows, flags, path, progress.step)
    return _jobs().start(current_app._get_current_object(), owner=current_user.get_id(), kind="brief-xlsx",
                         ext="xlsx", params={"from": start.isoformat(), "to": end.isoformat(),
                                             "as_of": as_of.isoformat(), "name": _filename(start, end, "xlsx")},
                         work=work)


def _job_view(job: dict) -> dict:
    total, done = job.get("rows_total"), job.get("rows_done") or 0
    return {"id": job["id"], "state": job["state"], "stage": job.get("stage") or "", "rows_done": done,
            "rows_total": total, "progress": 1.0 if job["state"] == export_jobs.DONE else
            (round(done / total, 3) if total else 0.0), "error": job.get("error"),
            "status_url": url_for("brief_export_status", job_id=job["id"]),
            "download_url": url_for("brief_export_file", job_id=job["id"])}


def _own_job(job_id: str) -> dict:
    job = _jobs().get(job_id)
    if job is None or job.get("owner") != current_user.get_id():
        raise BadRequest(404, "not_found", "no such export (they are kept for a limited time)")
    return job


def start_export():
    _check_role()
    job = _start_xlsx_job()
    view = _job_view(job)
    return jsonify(job=view, **view), 202, {"Location": view["status_url"]}


def export_status(job_id: str):
    _check_role()
    view = _job_view(_own_job(job_id))
    return jsonify(job=view, **view)


def export_file(job_id: str):
    _check_role()
    job = _own_job(job_id)
    if job["state"] != export_jobs.DONE:
        raise BadRequest(409, "not_ready", f"the export is {job['state']}" + (f": {job['error']}" if job.get("error") else ""))
    path = _jobs().file_path(job)
    if not path.exists():
        raise BadRequest(404, "not_found", "the file is no longer kept; start the export again")
    # send_file streams the file from disk in blocks: the file never sits in a worker's memory
    return send_file(path, mimetype=XLSX, as_attachment=True, download_name=job["params"]["name"], max_age=0)


def export_xlsx():
    """Kept for scripts: starts (or joins) the job and answers the file if it is done in time."""
    _check_role()
    job = export_jobs.wait(_jobs(), _start_xlsx_job(), float(current_app.config["EXPORT_WAIT_SECONDS"]))
    if job["state"] == export_jobs.DONE:
        return export_file(job["id"])
    if job["state"] == export_jobs.FAILED:
        if job.get("unavailable"):
            return unavailable_response()
        raise BadRequest(503, "export_failed", job.get("error") or "the export failed")
    view = _job_view(job)
    return jsonify(job=view, **view), 202, {"Location": view["status_url"], "Retry-After": "5"}
