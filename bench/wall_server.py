"""The app as gunicorn serves it (``app:server``) plus one route for the benchmark's floor:
``GET /_bench/static`` answers the bytes of the file named by CITYOPS_BENCH_STATIC (a wall answer
captured by the benchmark, already compressed as CITYOPS_BENCH_STATIC_ENCODING says), behind the
same login gate as the wall: what serving the same bytes costs without rendering anything."""
from __future__ import annotations

import os

from flask import Response

import app as _app

server = _app.server
_body: dict = {}


def _static():
    if "data" not in _body:
        with open(os.environ["CITYOPS_BENCH_STATIC"], "rb") as f:
            _body["data"] = f.read()
    resp = Response(_body["data"], content_type="application/json")
    encoding = os.environ.get("CITYOPS_BENCH_STATIC_ENCODING", "")
    if encoding:
        resp.headers["Content-Encoding"] = encoding
    return resp


server.add_url_rule("/_bench/static", "bench_static", _static)
