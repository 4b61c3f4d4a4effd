"""HTTP pull: a JSON endpoint read page by page from a persisted since-cursor.

    GET <url>?<cursor_param>=<cursor>[&<limit_param>=<page_size>]

An answer is a JSON array of records, or an object with the records under ``records`` (or
``items``, ``data``, ``requests``), optionally an opaque ``next`` token (the cursor to send
next) and ``has_more``. The cursor sent next is that token when the answer has one, else the
largest ``cursor_field`` (e.g. ``updated_at``) of the page's records; an empty page,
``has_more: false`` or a cursor that does not move ends the pull.

Nothing lost, nothing doubled: a page's records are ingested (committed) first, then its cursor
is saved in the ``meta`` table under ``cursor:<feed>``, so a failure at any point resumes from
the last page that is in the database. (A crash between the two re-reads that one page, which
the upsert by (source, external_id) counts as unchanged, never as new cases.)

Every request has a timeout; timeouts, connection errors, 5xx / 408 / 429 answers and garbage
(not JSON, or JSON of the wrong shape) are retried with exponential backoff up to ``max_tries``;
then the pull stops, its feed run gets status ``error`` and the error text, and the cursor stays
where the last good page left it. Other 4xx answers are not retried. ``sleep`` is injectable so
that tests do not wait.
"""
from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from sqlalchemy import select

from data_sources.feeds.base import UNREADABLE
from data_sources.ingest import Ingestor, RunSummary
from incidents.tables import Meta

CURSOR_PREFIX = "cursor:"
RECORD_KEYS = ("records", "items", "data", "requests", "service_requests")
USER_AGENT = "CityOps-feed/1"


class PullError(Exception):
    """A request that failed for good (after its retries, or not worth retrying)."""


class _Retryable(Exception):
    pass


# --------------------------------------------------------------------------- the cursor

def cursor_key(feed: str) -> str:
    key = CURSOR_PREFIX + feed
    if len(key) > 40:
        raise ValueError(f"feed name {feed!r} is too long for a cursor key (at most {40 - len(CURSOR_PREFIX)})")
    return key


def load_cursor(db, feed: str) -> Optional[str]:
    with db.session_scope() as s:
        return s.scalar(select(Meta.value).where(Meta.key == cursor_key(feed)))


def save_cursor(db, feed: str, value: Optional[str]) -> None:
    if value is not None and len(value) > 200:
        raise PullError(f"cursor of {len(value)} characters does not fit the meta table (200)")
    with db.session_scope() as s:
        row = s.get(Meta, cursor_key(feed))
        if value is None:
            if row is not None:
                s.delete(row)
        elif row is None:
            s.add(Meta(key=cursor_key(feed), value=value))
        else:
            row.value = value


# --------------------------------------------------------------------------- HTTP with retries

@dataclass
class HttpClient:
    """GET JSON with a timeout and bounded retries with exponential backoff."""

    timeout: float = 10.0
    max_tries: int = 5
    backoff: float = 0.5           # first wait; doubled after each failed try
    max_backoff: float = 30.0
    headers: dict = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    log: Callable[[str], None] = lambda _msg: None
    attempts: int = 0              # requests sent (for tests and reports)

    def get_json(self, url: str, params: Optional[dict] = None, *, check: Optional[Callable[[Any], None]] = None):
        """The decoded JSON of ``url`` (with ``params``); ``check(data)`` raises ValueError for a
        wrong shape, which is retried like garbage. Raises PullError when every try failed."""
        return self.get(url, params, check=check)

    def get(self, url: str, params: Optional[dict] = None, *, check: Optional[Callable[[Any], None]] = None,
            decode: Callable[[bytes], Any] = None, accept: str = "application/json"):
        """:meth:`get_json` for any format: ``decode(body)`` (default JSON) raises ValueError for a body
        that is not the format, retried like garbage."""
        decode = decode or _json_body
        if params:
            query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
            url = url + ("&" if "?" in url else "?") + query if query else url
        last = ""
        for attempt in range(1, self.max_tries + 1):
            try:
                body = self._once(url, accept)
                try:
                    data = decode(body)
                except ValueError as exc:
                    raise _Retryable(f"{exc}; body starts {body[:60]!r}") from None
                if check is not None:
                    try:
                        check(data)
                    except ValueError as exc:
                        raise _Retryable(f"wrong shape: {exc}") from None
                return data
            except _Retryable as exc:
                last = str(exc)
            self.log(f"try {attempt}/{self.max_tries} of {url} failed: {last}")
            if attempt < self.max_tries:
                self.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
        raise PullError(f"GET {url} failed {self.max_tries} times; last: {last}")

    def _once(self, url: str, accept: str = "application/json") -> bytes:
        self.attempts += 1
        req = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": USER_AGENT, **self.headers})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code in (408, 429):
                raise _Retryable(f"HTTP {exc.code} {exc.reason}") from None
            raise PullError(f"GET {url}: HTTP {exc.code} {exc.reason} (not retried)") from None
        except (socket.timeout, TimeoutError) as exc:
            raise _Retryable(f"timed out after {self.timeout:g} s ({exc})") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise _Retryable(f"timed out after {self.timeout:g} s") from None
            raise _Retryable(f"connection failed: {reason}") from None
        except (ConnectionError, OSError) as exc:
            raise _Retryable(f"connection failed: {exc}") from None
        return body


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc.__class__.__name__}: {str(exc)[:80]})") from None


# --------------------------------------------------------------------------- pages

def page_records(data: Any) -> tuple[list, Optional[str], bool, Optional[bool]]:
    """(records, next token, whether the answer carries a next key, has_more) of a page;
    ValueError on a wrong shape."""
    if isinstance(data, list):
        return data, None, False, None
    if isinstance(data, dict):
        for key in RECORD_KEYS:
            if isinstance(data.get(key), list):
                tokened = "next" in data or "next_cursor" in data
                token = data.get("next", data.get("next_cursor"))
                if token is not None and not isinstance(token, (str, int)):
                    raise ValueError(f"'next' is a JSON {type(token).__name__}, expected a string")
                more = data.get("has_more")
                if more is not None and not isinstance(more, bool):
                    raise ValueError(f"'has_more' is a JSON {type(more).__name__}, expected true or false")
                return data[key], (None if token in (None, "") else str(token)), tokened, more
        raise ValueError(f"an object without a records list (keys: {', '.join(list(data)[:8]) or 'none'})")
    raise ValueError(f"a JSON {type(data).__name__}, expected an array or an object with records")


@dataclass
class PullSource:
    """Where and how to pull."""

    url: str
    feed: str                                  # feed runs, quarantine and the cursor key
    mapping: Any = "native"
    source_label: Optional[str] = None         # cases' source (default: the feed name)
    cursor_param: str = "since"
    cursor_field: str = "updated_at"           # without next tokens: the largest value is the cursor
    limit_param: Optional[str] = "limit"
    page_size: int = 500
    max_pages: int = 10_000
    initial_cursor: Optional[str] = None       # the first pull's, when nothing is stored


@dataclass
class PullResult:
    summary: RunSummary
    pages: int
    cursor: Optional[str]
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def _max_field(records: list, name: str, current: Optional[str]) -> Optional[str]:
    values = [r.get(name) for r in records if isinstance(r, dict) and r.get(name) not in (None, "")]
    if not values:
        return current
    # ISO 8601 in one zone and plain numbers both order correctly as their own type
    best = max(values, key=lambda v: (isinstance(v, (int, float)), v if isinstance(v, (int, float)) else str(v)))
    return str(best)


def pull(db, rules, pack, src: PullSource, *, client: Optional[HttpClient] = None, now: Optional[datetime] = None,
         crs: Optional[str] = None, log: Callable[[str], None] = lambda _m: None) -> PullResult:
    """One pull run: pages from the stored cursor until the source has nothing newer. Never
    raises for the source's failures: they end the run with status ``error``."""
    client = client or HttpClient()
    now = now or datetime.now(timezone.utc)
    cursor = load_cursor(db, src.feed) or src.initial_cursor
    run = Ingestor(db, rules, pack, src.mapping, src.feed, src.source_label or src.feed, crs=crs, now=now)
    pages, line, error = 0, 0, ""
    try:
        while pages < src.max_pages:
            params = {src.cursor_param: cursor}
            if src.limit_param:
                params[src.limit_param] = src.page_size
            data = client.get_json(src.url, params, check=page_records)
            records, token, tokened, more = page_records(data)
            pages += 1
            batch = []
            for item in records:
                line += 1
                if isinstance(item, dict):
                    batch.append((item, line))
                else:
                    batch.append(({UNREADABLE: f"record is a JSON {type(item).__name__}, not an object",
                                   "text": json.dumps(item, ensure_ascii=False)[:2000]}, line))
            run.feed(batch)
            if tokened:   # a null next: the source has no cursor to give; keep ours (re-read, never skip)
                new_cursor = token if token is not None else cursor
            else:
                new_cursor = _max_field(records, src.cursor_field, cursor)
            if new_cursor != cursor:
                save_cursor(db, src.feed, new_cursor)   # only after the page is committed
            log(f"page {pages}: {len(records)} records, cursor {new_cursor!r}")
            done = (not records) or more is False or new_cursor == cursor
            cursor = new_cursor
            if done:
                break
    except PullError as exc:
        error = str(exc)
    except Exception as exc:  # a database error, a bug: recorded on the run, then raised
        run.finish("error", f"{type(exc).__name__}: {exc}")
        raise
    summary = run.finish("error" if error else "ok", error)
    return PullResult(summary, pages, cursor, error)


__all__ = ["HttpClient", "PullError", "PullResult", "PullSource", "load_cursor", "page_records", "pull",
           "save_cursor"]
