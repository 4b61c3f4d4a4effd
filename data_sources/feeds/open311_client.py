"""Open311 GeoReport v2 client: read another city's (or our own) ``requests.json`` into the
``open311`` mapping.

* ``services.json`` is read first: its ``service_name`` fills records that only carry a
  ``service_code`` (several servers leave the name out of requests), so the pack's
  ``mapping.csv`` can match either.
* ``requests.json`` is read in ``start_date``/``end_date`` windows (the spec caps a range at 90
  days, and many servers at fewer records than a window holds), each window page by page with
  ``page`` / ``page_size`` (an extension several servers, ours included, support; a server that
  ignores it answers the same page again, which ends the window). A request seen in two
  windows (on the boundary) is ingested once.
* ``fmt`` says which of the spec's two formats the server is asked for: ``json`` (default) or
  ``xml`` (``services.xml``, ``requests.xml``, read like an XML file: ``xsi:nil`` as null, lists
  such as ``<notes>`` as lists — :func:`data_sources.feeds.files.xml_records`).
* ``jurisdiction_id`` and ``api_key`` are passed when given. HTTP goes through
  :class:`data_sources.feeds.pull.HttpClient` (timeouts, bounded retries with backoff); a
  failure ends the feed run with status ``error`` and what was read before it stays.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Optional

from xml.etree import ElementTree

from data_sources.feeds.base import UNREADABLE
from data_sources.feeds.files import xml_records
from data_sources.feeds.pull import HttpClient, PullError
from data_sources.ingest import Ingestor, RunSummary

WINDOW = timedelta(days=90)
PAGE_SIZE = 1000


def _check_list(data: Any) -> None:
    if isinstance(data, dict) and isinstance(data.get("service_requests"), list):
        return
    if not isinstance(data, list):
        raise ValueError(f"a JSON {type(data).__name__}, expected an array")


def _as_list(data: Any) -> list:
    return data["service_requests"] if isinstance(data, dict) else data


FORMATS = ("json", "xml")
_XML_ROOTS = {"services", "service_requests"}


def _xml_list(body: bytes) -> list:
    """The records of an Open311 XML answer (``<services>`` or ``<service_requests>``); ValueError
    for a body that is not such a document (retried like any garbage)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ValueError(f"not XML ({exc})") from None
    if root.tag not in _XML_ROOTS:
        raise ValueError(f"XML root <{root.tag}>, expected <services> or <service_requests>")
    return [raw for raw, _ in xml_records(body)]


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Open311Client:
    base_url: str                               # e.g. https://city.example/open311/v2
    jurisdiction_id: Optional[str] = None
    api_key: Optional[str] = None
    http: Optional[HttpClient] = None
    page_size: int = PAGE_SIZE
    window: timedelta = WINDOW
    max_pages: int = 1000                       # per window
    fmt: str = "json"                           # the format asked for: json or xml

    def __post_init__(self):
        self.base_url = self.base_url.rstrip("/")
        self.http = self.http or HttpClient()
        if self.fmt not in FORMATS:
            raise ValueError(f"Open311 format {self.fmt!r}: expected one of {', '.join(FORMATS)}")

    def _params(self, **extra) -> dict:
        return {"jurisdiction_id": self.jurisdiction_id, "api_key": self.api_key, **extra}

    def _get(self, name: str, params: dict) -> list:
        url = f"{self.base_url}/{name}.{self.fmt}"
        if self.fmt == "xml":
            return self.http.get(url, params, decode=_xml_list, accept="text/xml, application/xml")
        return _as_list(self.http.get_json(url, params, check=_check_list))

    def services(self) -> list[dict]:
        return [s for s in self._get("services", self._params()) if isinstance(s, dict)]

    def requests(self, start: datetime, end: datetime, *, status: Optional[str] = None) -> Iterator[tuple[Any, int]]:
        """(raw request, position) for every request reported in [start, end]."""
        seen: set[str] = set()
        position = 0
        w_start = start
        while w_start < end:
            w_end = min(end, w_start + self.window)
            previous_ids: Optional[list] = None
            for page in range(1, self.max_pages + 1):
                params = self._params(start_date=_iso(w_start), end_date=_iso(w_end), status=status, page=page,
                                      page_size=self.page_size)
                items = self._get("requests", params)
                ids = [i.get("service_request_id") if isinstance(i, dict) else None for i in items]
                if not items or ids == previous_ids:
                    break                        # the end, or a server that does not page
                previous_ids = ids
                for item in items:
                    position += 1
                    key = str(item.get("service_request_id") or item.get("token") or "") if isinstance(item, dict) else ""
                    if key and key in seen:
                        continue
                    if key:
                        seen.add(key)
                    yield item, position
                if len(items) < self.page_size:
                    break
            w_start = w_end


@dataclass
class Open311Result:
    summary: RunSummary
    services: int
    error: str = ""


def pull_open311(db, rules, pack, client: Open311Client, start: datetime, end: Optional[datetime] = None, *,
                 feed: str = "open311", source_label: Optional[str] = None, now: Optional[datetime] = None,
                 batch_size: int = 500, log: Callable[[str], None] = lambda _m: None) -> Open311Result:
    """Read ``services.json`` and ``requests.json`` for [start, end] into one feed run through the
    ``open311`` mapping; a failing server ends the run with status ``error`` (not an exception)."""
    now = now or datetime.now(timezone.utc)
    end = end or now
    run = Ingestor(db, rules, pack, "open311", feed_name=feed, source_label=source_label or feed, now=now,
                   batch_size=batch_size)
    error, n_services = "", 0
    try:
        names = {}
        try:
            services = client.services()
            n_services = len(services)
            names = {str(s.get("service_code")): s.get("service_name") for s in services}
        except PullError as exc:          # the requests may still carry names: go on, say so
            log(f"services.json unavailable: {exc}")

        def records():
            for item, pos in client.requests(start, end):
                if not isinstance(item, dict):
                    yield {UNREADABLE: f"request #{pos} is a JSON {type(item).__name__}, not an object",
                           "text": str(item)[:2000]}, pos
                    continue
                if not item.get("service_name") and names.get(str(item.get("service_code"))):
                    item = {**item, "service_name": names[str(item.get("service_code"))]}
                yield item, pos
        run.feed(records())
    except PullError as exc:
        error = str(exc)
    except Exception as exc:
        run.finish("error", f"{type(exc).__name__}: {exc}")
        raise
    return Open311Result(run.finish("error" if error else "ok", error), n_services, error)


__all__ = ["FORMATS", "Open311Client", "Open311Result", "pull_open311"]
