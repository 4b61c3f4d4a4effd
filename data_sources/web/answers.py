"""Shared answers: the rendered answer of a Dash callback that many screens ask for alike (the
wall's refresh), computed once and served as bytes to every screen that asks for the same thing.

A page marks such a callback with a *key function* (``dashboards._answers.shared``): called with
the callback's own arguments, it answers the key of the answer — everything the answer depends on
— as ``(asked, moment)``: what is asked (layers, language, the caller's role where it shows …) and
the data clock (data version, refresh bucket); or None when this request must not share (the
caller may not see the page, an input out of bounds, the database away). The key function runs on every request, so the page's permission check does too:
a cached answer is only ever served to a caller whose own key function said yes.

In front of Dash's ``/_dash-update-component`` view: a request for a marked callback whose key
is in the cache (flask-caching: in-process, or Redis shared by every worker and node) gets the
stored bytes, already compressed (brotli or gzip, as the client accepts), without running the
callback; on a miss one request computes (single flight across workers: a short lock entry in
the same cache) and stores the identity, gzip and brotli bodies; meanwhile the others asking the
same get the latest answer to the same question (a refresh older: the next poll brings the new
one) or, when there is none, wait for it. Anything else goes to Dash untouched.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import time
from typing import Callable, NamedTuple, Optional

import brotli
from flask import Flask, Response, request

from data_sources.store.cache import cache
from data_sources.web import compression

log = logging.getLogger(__name__)

DASH_CALLBACK_PATH = "/_dash-update-component"
ENCODINGS = ("br", "gzip")
#: a body larger than this is not parsed here (Dash refuses it or handles it as usual)
MAX_BODY = 1_000_000
#: a lock entry lives at most this long: a computing worker that died frees the key by then
LOCK_SECONDS = 30
#: how often a waiting request looks for the answer another one is computing
POLL_SECONDS = 0.02

KeyOf = Callable[..., Optional[tuple]]


def init_app(server: Flask, dash_app, *, key_of: Callable[[Callable], Optional[KeyOf]],
             is_private: Callable[[], bool]) -> None:
    """Put the shared-answer cache in front of ``dash_app``'s callback view; ``key_of(callback)``
    gives a callback's key function, or None for a callback whose answer is not shared;
    ``is_private()``, asked after the callback ran, says it answered for this caller alone."""
    endpoint = dash_app.config.routes_pathname_prefix + DASH_CALLBACK_PATH.lstrip("/")
    dispatch = server.view_functions[endpoint]
    ttl = max(int(server.config.get("ANSWER_CACHE_SECONDS") or 0), 0)

    def view():
        key = _answer_key(dash_app, key_of) if ttl else None
        if key is None:
            return dispatch()
        return _answer(key, dispatch, ttl, is_private)

    view.__name__ = dispatch.__name__     # "dispatch" (Flask-WTF exemptions key on the view's name)
    view.__qualname__ = dispatch.__qualname__
    view.__module__ = dispatch.__module__
    server.view_functions[endpoint] = view


def _answer_key(dash_app, key_of) -> Optional["Key"]:
    if (request.content_length or 0) > MAX_BODY:
        return None
    body = request.get_json(silent=True, cache=True)
    if not isinstance(body, dict) or not isinstance(body.get("output"), str):
        return None
    entry = dash_app.callback_map.get(body["output"])
    fn = key_of(entry["callback"]) if entry else None
    if fn is None:
        return None
    items = list(body.get("inputs") or []) + list(body.get("state") or [])
    if not all(isinstance(x, dict) for x in items):   # pattern-matching inputs (lists): not shared
        return None
    key = fn(*[x.get("value") for x in items])
    if key is None:
        return None
    asked, moment = key
    # what Dash builds the answer from besides the values: the ids it answers for (a crafted list
    # of outputs must get an answer of its own, never replace the one every screen gets)
    shape = (body["output"], repr(body.get("outputs")), [(x.get("id"), x.get("property")) for x in items])
    digest = hashlib.sha1(repr((shape, asked)).encode()).hexdigest()
    return Key(f"answer:{digest}:{hashlib.sha1(repr(moment).encode()).hexdigest()}", f"answer-latest:{digest}")


class Key(NamedTuple):
    answer: str     # this question at this moment
    latest: str     # the latest moment answered for this question: the key of its answer


def _encoding() -> str:
    best = request.accept_encodings.best_match(ENCODINGS)
    return best if best in ENCODINGS else "identity"


def _respond(body: bytes, encoding: str) -> Response:
    resp = Response(body, content_type="application/json")
    if encoding != "identity":
        resp.headers["Content-Encoding"] = encoding
    resp.vary.add("Accept-Encoding")
    return resp


def _answer(key: Key, dispatch, ttl: int, is_private: Callable[[], bool]) -> Response:
    encoding = _encoding()
    hit = cache.get(f"{key.answer}:{encoding}")
    if hit is not None:
        return _respond(hit, encoding)
    lock = f"{key.answer}:computing"
    deadline = time.monotonic() + LOCK_SECONDS
    owner = cache.add(lock, 1, timeout=LOCK_SECONDS)
    if not owner:   # another request is computing it: the latest answer to the same question meanwhile
        latest = cache.get(key.latest)
        hit = cache.get(f"{latest}:{encoding}") if latest else None
        if hit is not None:
            return _respond(hit, encoding)
    while not owner and time.monotonic() < deadline:   # none yet: wait for the one being computed
        time.sleep(POLL_SECONDS)
        hit = cache.get(f"{key.answer}:{encoding}")
        if hit is not None:
            return _respond(hit, encoding)
        owner = cache.add(lock, 1, timeout=LOCK_SECONDS)  # it gave up (an error, no update): our turn
    try:
        hit = cache.get(f"{key.answer}:{encoding}")   # stored between our first look and taking the lock
        if hit is not None:
            return _respond(hit, encoding)
        resp = dispatch()
        if is_private() or not _shareable(resp):
            return resp
        plain = resp.get_data()
        bodies = {"identity": plain, "gzip": gzip.compress(plain, compression.GZIP_LEVEL),
                  "br": brotli.compress(plain, quality=compression.BR_QUALITY)}
        cache.set_many({f"{key.answer}:{enc}": b for enc, b in bodies.items()}, timeout=ttl)
        cache.set(key.latest, key.answer, timeout=ttl)
        return _respond(bodies[encoding], encoding)
    finally:
        if owner:
            cache.delete(lock)


def _shareable(resp) -> bool:
    """Only a plain 200 JSON answer is stored: nothing the callback set for one caller (a cookie,
    a header of its own) may reach another."""
    if not isinstance(resp, Response) or resp.status_code != 200 or resp.is_streamed:
        return False
    return resp.mimetype == "application/json" and set(resp.headers.keys()) <= {"Content-Type", "Content-Length"}
