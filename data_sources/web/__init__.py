"""The HTTP doors other than the Dash pages, each registering itself with ``init_app``:

    gate.py      sessions, /login and /logout, the login gate in front of everything, /healthz, /readyz
    security.py  login throttling, CSRF, session expiry, security headers and the CSP
    api.py       REST API v1 under /api/v1: models, the route table, OpenAPI
    push.py      push ingestion: POST /api/v1/feeds/<feed>/records
    open311.py   Open311 GeoReport v2 under /open311/v2 (its own error format, as the standard says)
    exports.py   the brief's downloads: /brief/export.pdf and /brief/export.xlsx (rendered by the dashboards)
    metrics.py   /metrics for Prometheus (a token or an allow-list)
    errors.py    the one JSON error builder: {"error": {"code": …, "message": …}}

A door translates HTTP to calls of ``incidents`` (commands, queries, permissions) and back.
"""
