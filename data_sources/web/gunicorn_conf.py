"""gunicorn settings for production (``gunicorn -c python:data_sources.web.gunicorn_conf …``, README).

With threads (``-k gthread``) the first concurrent requests to a fresh worker can fail with
"Callback function not found" (dash issue #3971: Dash finishes its set-up on the first request,
and several threads race through it); one request through ``test_client()`` before the worker
serves does that set-up alone (DESIGN §11).
"""
from __future__ import annotations


def post_worker_init(worker) -> None:
    server = worker.wsgi   # the loaded application: app:server, a Flask app
    with server.test_client() as client:
        client.get("/healthz")
