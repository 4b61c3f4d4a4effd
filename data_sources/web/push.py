"""Push ingestion: ``POST /api/v1/feeds/<feed>/records`` (DESIGN.md §8).

Another system sends a batch of records in a feed's mapping, as a JSON array (or an object
with a ``records`` list, or one record object) or as NDJSON (``Content-Type:
application/x-ndjson``); the answer is the feed run's counts and the quarantine reasons, per
record too, so the sender can fix and resend. Pushing the same records again changes nothing
(upsert by (source, external_id); the feed name is the source).

Which mapping a feed's records are in: the ``PUSH_FEEDS`` config (``{"feed": "mapping"}`` or
``"feed=mapping,feed2=mapping2"``), else the feed's own name when it is a mapping
(``nyc311``, ``sf311``, ``open311``, ``native``), else ``native``; ``?mapping=NAME`` chooses
a built-in one for an unconfigured feed (only the operator's ``PUSH_FEEDS`` may name a mapping file
by path: a pusher never picks a file of the server). Auth as the rest of /api/v1 (the gate in ``data_sources.web.gate``);
viewers and leaders may not push (403), and a token bound to feeds (``create-token --feed``) writes
only those (403). Each record is applied only if the pushing user may make every change it brings
to that case (``incidents.permissions``: a department on its own cases, an inspector verification
…); otherwise it is quarantined with the missing permission as its reason and the case is left as
it was. Events name the user as actor and ``push:<feed> token:<name>`` as the channel. Bodies over ``PUSH_MAX_BYTES`` (default 5 MB) → 413,
unreadable JSON → 400, always as ``{"error": {"code": …, "message": …}}``.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timezone
from typing import Optional

from flask import Blueprint, Flask, current_app, jsonify, request
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from data_sources.feeds.files import json_records, ndjson_records
from data_sources.feeds.mappings import MAPPINGS, get_mapping
from data_sources.ingest import Ingestor, earliest_from
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db, is_unavailable
from data_sources.web.errors import error_response, http_error_response, unavailable_response
from incidents import permissions
from incidents.auth import FEED_NAME   # also a cursor / source key
from incidents.lifecycle import PermissionDenied
from incidents.services import Actor
from incidents.tables import Quarantine

log = logging.getLogger(__name__)

bp = Blueprint("feeds_push", __name__, url_prefix="/api/v1/feeds")

MAX_BYTES = 5 * 1024 * 1024
PUSH_ROLES = permissions.PUSH_ROLES
DEFAULT_MAPPING = "native"
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
                "application/jsonlines")
MAX_LISTED = 100      # quarantined records listed one by one in the answer


class PushError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


#: push answers these HTTP errors by name, any other as http_error (as it always did)
_HTTP_CODES = {413: "too_large", 405: "method_not_allowed", 404: "not_found"}


@bp.errorhandler(PushError)
def _on_push_error(exc: PushError):
    return error_response(exc.status, exc.code, exc.message)


@bp.errorhandler(Exception)
def _on_unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return http_error_response(exc, _HTTP_CODES)
    if is_unavailable(exc):
        log.warning("push ingestion on %s: database unavailable: %s", request.path, type(exc).__name__)
        return unavailable_response()
    log.exception("push ingestion failed on %s", request.path)
    return error_response(500, "internal_error", "internal error; it has been logged")


def configured_feeds(config) -> dict[str, str]:
    raw = config.get("PUSH_FEEDS") or {}
    if isinstance(raw, str):
        raw = dict(part.split("=", 1) for part in raw.replace(";", ",").split(",") if "=" in part)
    return {str(k).strip(): str(v).strip() for k, v in raw.items()}


def mapping_for(feed: str, requested: Optional[str], config) -> str:
    configured = configured_feeds(config)
    if requested is not None and requested not in MAPPINGS:
        raise PushError(400, "bad_request", f"unknown mapping {requested!r}; expected one of {', '.join(MAPPINGS)}")
    if feed in configured:
        if requested and requested != configured[feed]:
            raise PushError(400, "bad_request", f"feed {feed!r} is configured with mapping {configured[feed]!r}")
        return configured[feed]
    if requested:
        return requested
    return feed if feed in MAPPINGS else DEFAULT_MAPPING


def _body(limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PushError(413, "too_large", f"body of {request.content_length:,} bytes is over the limit of "
                                          f"{limit:,} bytes; send smaller batches")
    data = request.stream.read(limit + 1)   # also bounds chunked bodies, which have no length
    if len(data) > limit:
        raise PushError(413, "too_large", f"body is over the limit of {limit:,} bytes; send smaller batches")
    return data


def parse_records(data: bytes, content_type: str) -> list[tuple[dict, int]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PushError(400, "bad_request", f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if content_type.split(";")[0].strip().lower() in NDJSON_TYPES:
        return list(ndjson_records(text))   # a broken line is quarantined, not the whole body refused
    if not text.strip():
        raise PushError(400, "bad_request", "empty body; send a JSON array of records or NDJSON")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise PushError(400, "bad_request", "body is not valid JSON (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise PushError(400, "bad_request", f"body is not valid JSON ({exc.msg} at line {exc.lineno} column "
                                            f"{exc.colno}); send a JSON array or NDJSON "
                                            f"(Content-Type: application/x-ndjson)") from None
    if not isinstance(doc, (list, dict)):
        raise PushError(400, "bad_request", f"body is a JSON {type(doc).__name__}; expected an array of records")
    return list(json_records(doc))


def _quarantined(run_id: int) -> list[dict]:
    out = []
    with get_db().session_scope() as s:
        for q in s.scalars(select(Quarantine).where(Quarantine.feed_run_id == run_id).order_by(Quarantine.id)
                           .limit(MAX_LISTED)):
            try:
                env = json.loads(q.raw)
                record = env.get("record") or {}
                ext = record.get("external_id", record.get("id", record.get("service_request_id")))
                line = env.get("line")
            except (ValueError, AttributeError):
                ext, line = None, None
            out.append({"line": line, "external_id": None if ext is None else str(ext), "reason": q.reason})
    return out


@bp.post("/<feed>/records")
def push_records(feed: str):
    if not current_user.is_authenticated:   # the gate answers 401 first; this is a second lock
        raise PushError(401, "unauthorized", "login required")
    if not FEED_NAME.match(feed):
        raise PushError(400, "bad_request", "feed name: 1-33 letters, digits, '_', '-' or '.'")
    try:
        permissions.require(current_user.role, PUSH_ROLES, "push feed records")
        permissions.require_feed(getattr(current_user, "token_feeds", None), feed)
    except PermissionDenied as exc:
        raise PushError(403, "forbidden", exc.message) from None
    unknown = sorted(set(request.args) - {"mapping", "lang"})
    if unknown:
        raise PushError(400, "bad_request", f"unknown query parameter(s): {', '.join(unknown)}")
    mapping = mapping_for(feed, request.args.get("mapping"), current_app.config)
    records = parse_records(_body(int(current_app.config.get("PUSH_MAX_BYTES") or MAX_BYTES)),
                            request.content_type or "")
    rt = get_runtime()
    # every record is applied only as far as this user may act on that case (incidents.permissions);
    # the events name the user as actor and the feed (and token) as the channel
    principal = Actor.of(current_user)
    token = getattr(current_user, "token_name", None)
    run = Ingestor(get_db(), rt.rules, rt.pack, get_mapping(mapping), feed_name=feed, source_label=feed,
                   now=datetime.now(timezone.utc), principal=principal,
                   earliest=earliest_from(current_app.config["INGEST_MIN_DATE"]),
                   via=f"push:{feed}" + (f" token:{token}" if token else ""))
    try:
        run.feed(records)
    except Exception as exc:
        run.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    summary = run.finish("ok")
    r = summary.run
    reasons: Counter = summary.reasons
    return jsonify(feed=feed, source=r.source, mapping=mapping, feed_run=r.id, status=r.status,
                   received=r.received, inserted=r.inserted, updated=r.updated, unchanged=r.unchanged,
                   quarantined=r.quarantined,
                   quarantine_reasons=[{"reason": k, "count": n} for k, n in reasons.most_common()],
                   quarantined_records=_quarantined(r.id) if r.quarantined else []), 200


def init_app(server: Flask) -> None:
    server.register_blueprint(bp)


__all__ = ["MAX_BYTES", "PUSH_ROLES", "bp", "configured_feeds", "init_app", "mapping_for", "parse_records"]
