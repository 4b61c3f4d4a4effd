"""``/metrics``: Prometheus text format (DESIGN §8), with the maintained client ``prometheus_client``.

    cityops_http_requests_total{method,route,status}        requests by Flask url rule (not the raw path)
    cityops_http_request_duration_seconds{method,route}     their latency (histogram)
    cityops_dash_callback_duration_seconds{output}          Dash callback latency by the callback's output id
    cityops_cache_requests_total{function,result}           memoized read models: hit | miss
    cityops_db_pool_connections{state}                      SQLAlchemy pool: size | checked_out | checked_in | overflow
    cityops_open_cases{light}                               cases with a running clock by traffic light
    cityops_feed_runs{feed,status}                          feed runs by status
    cityops_quarantine_records{feed,status}                 quarantined records by status
    cityops_database_up                                     1 when the scrape-time queries answered

The counters and histograms are updated by every request (Flask's request signals, so even a
request the login gate turned away is counted); the database figures are computed at scrape time
by ``incidents.queries.ops`` (a few GROUP BY counts). Reading is guarded: a client in
``METRICS_ALLOW`` (addresses or networks; loopback by default) or one sending ``Authorization:
Bearer <METRICS_TOKEN>``; anyone else gets 403. The login gate lets /metrics through to this guard.

Several gunicorn workers: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory (wiped at each
start) before the workers start; each worker then writes its counters there and a scrape of any
worker sums them all (prometheus_client's multiprocess mode). The pool and database figures are
those of the worker that answers the scrape.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import time
from datetime import datetime, timezone
from typing import Optional

from flask import Flask, Response, current_app, g, request, request_finished, request_started
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram,
                               generate_latest)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.exc import SQLAlchemyError

from data_sources.store.db import get_db

PATH = "/metrics"
DASH_CALLBACK_PATH = "/_dash-update-component"
UNMATCHED = "<unmatched>"          # the route label of a request no url rule matched (a 404)
UNKNOWN_CALLBACK = "<unknown>"     # a callback output this app does not have (crafted requests)
MAX_CALLBACK_BODY = 1_000_000      # a callback body bigger than this is not parsed for its label

REQUESTS = Counter("cityops_http_requests", "HTTP requests by Flask url rule, method and status",
                   ["method", "route", "status"])
LATENCY = Histogram("cityops_http_request_duration_seconds", "HTTP request latency by Flask url rule",
                    ["method", "route"])
CALLBACKS = Histogram("cityops_dash_callback_duration_seconds",
                      "Dash callback latency by the callback's output id", ["output"])
CACHE = Counter("cityops_cache_requests", "Memoized read-model lookups by function and result (hit or miss)",
                ["function", "result"])


# =========================================================================== recording


def _started(sender, **_extra) -> None:
    g.metrics_started = time.perf_counter()


def _finished(sender, response, **_extra) -> None:
    try:
        _record(response)
    except Exception:  # counting must never break the answer it counts
        current_app.logger.exception("metrics: recording %s %s failed", request.method, request.path)


def _record(response) -> None:
    started = g.pop("metrics_started", None)
    rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    REQUESTS.labels(request.method, rule, str(response.status_code)).inc()
    if started is None:
        return
    elapsed = time.perf_counter() - started
    LATENCY.labels(request.method, rule).observe(elapsed)
    if request.path == DASH_CALLBACK_PATH and request.method == "POST":
        CALLBACKS.labels(_callback_output()).observe(elapsed)


def _callback_output() -> str:
    """The callback's output id of a Dash update request, as its key in the app's callback map;
    anything the app does not know is one label, so a crafted body cannot grow the label set."""
    if (request.content_length or 0) > MAX_CALLBACK_BODY:
        return UNKNOWN_CALLBACK
    body = request.get_json(silent=True, cache=True)
    output = body.get("output") if isinstance(body, dict) else None
    if not isinstance(output, str):
        return UNKNOWN_CALLBACK
    return output if output in _known_callbacks() else UNKNOWN_CALLBACK


def _known_callbacks():
    try:
        from dash import get_app
        return get_app().callback_map
    except Exception:  # no Dash app (a bare Flask app in a test): every output is unknown
        return {}


def _cache_hit(sender, f=None, **_extra) -> None:
    CACHE.labels(_function_name(f), "hit").inc()


def _cache_miss(sender, f=None, **_extra) -> None:
    CACHE.labels(_function_name(f), "miss").inc()


def _function_name(f) -> str:
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', '?')}"


# =========================================================================== scrape-time figures


class DatabaseFigures:
    """A collector computing the database-backed gauges when scraped (one short session)."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self):
        db = get_db(self.app)
        pool = GaugeMetricFamily("cityops_db_pool_connections",
                                 "SQLAlchemy connection pool of this worker: size, checked_out, checked_in, overflow",
                                 labels=["state"])
        p = db.engine.pool
        for state, attr in (("size", "size"), ("checked_out", "checkedout"), ("checked_in", "checkedin"),
                            ("overflow", "overflow")):
            if callable(getattr(p, attr, None)):  # a QueuePool; other pools keep no such counts
                # SQLAlchemy's overflow is negative until the pool has opened `size` connections
                pool.add_metric([state], max(getattr(p, attr)(), 0))
        yield pool
        up = GaugeMetricFamily("cityops_database_up", "1 when the scrape-time database queries answered")
        try:
            from incidents.queries.ops import ops_figures
            with db.session_scope() as s:
                figures = ops_figures(s, datetime.now(timezone.utc))
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        lights = GaugeMetricFamily("cityops_open_cases",
                                   "Cases with a running clock (dispatched, in progress) by traffic light",
                                   labels=["light"])
        for light, n in sorted(figures.lights.items()):
            lights.add_metric([light], n)
        yield lights
        runs = GaugeMetricFamily("cityops_feed_runs", "Feed runs by feed and status", labels=["feed", "status"])
        for (feed, status), n in sorted(figures.feed_runs.items()):
            runs.add_metric([feed, status], n)
        yield runs
        quarantine = GaugeMetricFamily("cityops_quarantine_records", "Quarantined records by feed and status",
                                       labels=["feed", "status"])
        for (feed, status), n in sorted(figures.quarantine.items()):
            quarantine.add_metric([feed, status], n)
        yield quarantine


def _process_registry():
    """This process's counters, or (multiprocess mode) every worker's, summed."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def exposition(app: Flask) -> bytes:
    figures = CollectorRegistry(auto_describe=False)
    figures.register(DatabaseFigures(app))
    return generate_latest(_process_registry()) + generate_latest(figures)


# =========================================================================== the guard and the door


def _allowed_networks(raw: str) -> list:
    networks = []
    for part in (p.strip() for p in raw.split(",")):
        if part:
            networks.append(ipaddress.ip_network(part, strict=False))  # a typo fails at start-up
    return networks


def _bearer() -> Optional[str]:
    header = request.headers.get("Authorization", "")
    return header[len("Bearer "):].strip() if header.startswith("Bearer ") else None


def may_scrape() -> bool:
    token = str(current_app.config.get("METRICS_TOKEN") or "")
    sent = _bearer()
    if token and sent is not None and hmac.compare_digest(sent.encode(), token.encode()):
        return True
    try:
        client = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    if getattr(client, "ipv4_mapped", None):
        client = client.ipv4_mapped
    return any(client in net for net in current_app.extensions["cityops_metrics_allow"])


def metrics_view():
    if not may_scrape():
        return Response("forbidden: /metrics is for the configured scrapers (CITYOPS_METRICS_ALLOW, "
                        "CITYOPS_METRICS_TOKEN)\n", status=403, mimetype="text/plain")
    return Response(exposition(current_app), content_type=CONTENT_TYPE_LATEST)


def init_app(server: Flask) -> None:
    server.extensions["cityops_metrics_allow"] = _allowed_networks(str(server.config.get("METRICS_ALLOW") or ""))
    server.add_url_rule(PATH, "metrics", metrics_view)
    request_started.connect(_started, server)
    request_finished.connect(_finished, server)
    from flask_caching.signals import cache_memoize_hit, cache_memoize_miss
    cache_memoize_hit.connect(_cache_hit)
    cache_memoize_miss.connect(_cache_miss)


__all__ = ["DatabaseFigures", "exposition", "init_app", "may_scrape"]
