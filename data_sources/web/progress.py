"""The citizen's 进度查询, public (no login; the gate lets these paths through):

    GET  /progress           the form (server-rendered HTML, works on a phone, no script)
    POST /progress           form fields ``case`` and ``digits`` → the answer on the same page
    POST /api/v1/progress    JSON ``{"case": "123", "phone_last4": "5678"}`` → the answer as JSON

What is shown is decided in incidents.queries.progress (nothing personal). A wrong case number and
wrong digits give the same answer with the same words (JSON: 404), and every query — right or wrong — counts
against a per-address limit (PROGRESS_RATE_PER_ADDRESS, Flask-Limiter, shared by the form and the
JSON door): guessing 10 000 digit combinations is not a way in. Over the limit: 429 in Chinese with
Retry-After.

CSRF: the query writes nothing and reads nothing of a session, and the browser does not let another
site read the answer; a forged cross-site post could only spend the victim's own queries. So the form
carries no CSRF token and no session cookie is set for a citizen (the login form needs one; this does not).
The digits travel in a POST body only, never in a URL that stays in histories and access logs.
"""
from __future__ import annotations

import re
from typing import Callable, Optional
from zoneinfo import ZoneInfo

from flask import Flask, current_app, jsonify, request
from flask_limiter import RateLimitExceeded

from data_sources.web import security
from data_sources.web.api import PREFIX, PROGRESS_PATH
from data_sources.web.errors import error_response, http_error_response
from incidents.model import STATE_LABELS_ZH, State
from incidents.queries import progress, reference

PAGE_PATH = "/progress"
API_PATH = PREFIX + PROGRESS_PATH              # documented in the API's OpenAPI (api._public_paths)
PUBLIC_PATHS = (PAGE_PATH, API_PATH)

_CASE = re.compile(r"^#?\s*(\d{1,%d})$" % progress.MAX_CASE_DIGITS)
_DIGITS = re.compile(r"^\d{4}$")

NOT_FOUND = "未查到匹配的案件：请核对案件编号和报案手机号后四位（报案时未留手机号的案件无法在此查询）"
BAD_CASE = "案件编号应为数字（例如 1024），最多 %d 位" % progress.MAX_CASE_DIGITS
BAD_DIGITS = "请填写报案时所留手机号的后四位数字"


def too_many_text(seconds: int) -> str:
    wait = f"{seconds} 秒" if seconds <= 90 else f"{-(-seconds // 60)} 分钟"
    return f"查询过于频繁，请 {wait}后再试"


def parse(case: Optional[str], digits: Optional[str]) -> tuple[Optional[int], Optional[str], Optional[str]]:
    """(case number, digits, None) or (None, None, what is wrong) — the input's shape only, which
    says nothing about any case."""
    m = _CASE.match(str(case or "").strip())
    if not m:
        return None, None, "bad_case"
    d = str(digits or "").strip()
    if not _DIGITS.match(d):
        return None, None, "bad_digits"
    return int(m.group(1)), d, None


def as_json(answer: dict) -> dict:
    """The answer as the JSON door gives it: dates in the city's timezone (ISO 8601 with offset)."""
    tz = ZoneInfo(reference.city_info().timezone)
    out = {k: v for k, v in answer.items() if not k.endswith("_at")}
    out["state_label"] = STATE_LABELS_ZH[State(answer["state"])]
    out.update({k: v.astimezone(tz).isoformat(timespec="minutes") if v else None
                for k, v in answer.items() if k.endswith("_at")})
    return out


def init_app(server: Flask, *, page: Callable[..., str]) -> None:
    """``page(case=…, digits=…, answer=…, error=…, retry_after=…)`` renders the HTML page
    (dashboards._progress.render); the limiter is the gate's (security.init_limiter)."""
    limiter = server.extensions[security.LIMITER_KEY]

    def _breach(limit):
        wait = security.retry_after_seconds(limit)
        if request.path == API_PATH:
            body, status, _ = error_response(429, "too_many_requests", too_many_text(wait))
            resp = server.make_response((body, status))
        else:
            resp = server.make_response((page(case=request.form.get("case", ""), error="too_many", retry_after=wait), 429))
        resp.headers["Retry-After"] = str(wait)
        return resp

    limited = limiter.shared_limit(lambda: current_app.config["PROGRESS_RATE_PER_ADDRESS"], scope="progress",
                                   methods=["POST"], on_breach=_breach)

    @server.errorhandler(RateLimitExceeded)
    def _over_limit(exc: RateLimitExceeded):
        """A limit's own answer (this page's, the login page's) wins over the API's generic JSON
        for HTTP errors under /api/."""
        if exc.response is not None:
            return exc.response
        return http_error_response(exc) if request.path.startswith("/api/") else exc

    @server.get(PAGE_PATH)
    def _progress_form():
        return page()

    @server.post(PAGE_PATH)
    @limited
    def _progress_page():
        case, digits, bad = parse(request.form.get("case"), request.form.get("digits"))
        raw_case = (request.form.get("case") or "").strip()[:20]
        if bad:
            return page(case=raw_case, error=bad), 400
        answer = progress.case_progress(case, digits)
        if answer is None:
            # the page itself answers (200), as for any form whose query found nothing; the JSON door says 404
            return page(case=raw_case, error="not_found")
        return page(case=raw_case, answer=answer)

    @server.post(API_PATH)
    @limited
    def _progress_api():
        body = request.get_json(silent=True) if request.is_json else request.form
        if not isinstance(body, dict) and not hasattr(body, "get"):
            return error_response(400, "invalid_input", "expected a JSON object with case and phone_last4")
        case, digits, bad = parse(body.get("case"), body.get("phone_last4"))
        if bad:
            return error_response(400, "invalid_input", BAD_CASE if bad == "bad_case" else BAD_DIGITS)
        answer = progress.case_progress(case, digits)
        if answer is None:
            return error_response(404, "not_found", NOT_FOUND)
        return jsonify(as_json(answer))
