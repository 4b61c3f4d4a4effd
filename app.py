"""CityOps composition root: configuration, extensions, the Dash shell, CLI commands.

    create_app(overrides=None)   config layering: DEFAULTS → CITYOPS_* environment → overrides
    server = app.server          for gunicorn (gunicorn -w 4 app:server), built on first access
    python app.py                development server on http://127.0.0.1:8050

Importing this module builds nothing: ``app`` and ``server`` are made by ``create_app()`` the first
time someone asks for them (PEP 562 module ``__getattr__``), so tests and tools can import
``load_config`` and ``DEFAULTS`` without a database, a pack or Dash.
"""
from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dash import Dash
    from flask import Flask

ROOT = Path(__file__).resolve().parent
INSTANCE = ROOT / "instance"

DEFAULTS: dict[str, object] = {
    "DATABASE_URL": f"sqlite:///{INSTANCE / 'cityops.db'}",
    "CACHE_URL": "",            # "" = in-process; redis://host:6379/0 in production
    "SECRET_KEY": "",           # "" = a random key kept in instance/secret_key
    "PACK": "hangzhou",         # a pack name under data_sources/packs/ or a path to a pack folder
    "TILE_URL": "",             # "" = offline map (boundaries on a plain background)
    "LANG": "zh-CN",            # zh-CN | en
    "OPEN311_REQUIRE_KEY": False,   # True = Open311 GETs need a valid api_key too
    "METRICS_TOKEN": "",        # /metrics: a scraper sending "Authorization: Bearer <token>" may read it
    "METRICS_ALLOW": "127.0.0.1,::1",  # /metrics: client addresses or networks that may read it without the token
    "DEMO_FEED": None,          # None = on for the embedded default (SQLite), off otherwise
    "DEMO_SEED": 20261122,
    "DEMO_HISTORY_DAYS": 460,   # back to last year's same quarter on any day: 同比 and 环比 on every card, 本季度 too
    "DEMO_TICK_SECONDS": 5.0,
    "FEEDS_FILE": "",           # the feeds the worker runs; "" = instance/feeds.toml, else the pack's feeds.toml
    "WORKER_REDIS_URL": "",     # the jobs' Redis (RQ queue, run claims); "" = CACHE_URL when redis://, else none:
                                # the jobs and feeds run inside the app process (the embedded default)
    "WORKER_PREFIX": "cityops", # names of the job queue and claim keys (several instances on one Redis)
    "DEMO_DAILY_CASES": 0.0,    # demo feed: cases a day, city-wide; 0 = the pack's [demo] daily_cases
    "WALL_REFRESH_SECONDS": 5.0,
    "WALL_ALARM_SOUND": False,
    "UNDO_SECONDS": 5.0,        # workbench: how long a one-click action waits in the browser for 撤销 before it is sent
    "INGEST_MIN_DATE": "1990-01-01",   # feed timestamps before this are placeholders: quarantined
    "DB_CONNECT_TIMEOUT": 5.0,      # seconds to connect to PostgreSQL (also its TCP keepalive/user timeout)
    "DB_STATEMENT_TIMEOUT": 20.0,   # seconds a statement may run (SQLite: also the lock wait); 0 = no limit
    "DB_POOL_TIMEOUT": 10.0,        # seconds to wait for a free pooled connection
    "READ_DATABASE_URL": "",        # the read models (wall, brief, KPIs, feeds) read here: a replica; "" = DATABASE_URL
    "DB_READ_POOL_SIZE": 4,         # connections of the read models' own pool (per worker); 0 = share the write pool
    "ANSWER_CACHE_SECONDS": 60,     # how long a shared rendered answer (the wall's refresh) is kept; 0 = not shared
    # login and session hardening (data_sources.web.security)
    "SESSION_COOKIE_SECURE": False,  # true behind HTTPS: the session cookie is never sent in clear
    "SESSION_IDLE_MINUTES": 240.0,   # a session unused this long ends
    "SESSION_LIFETIME_HOURS": 12.0,  # and any session (kiosk walls aside) ends this long after login
    "LOGIN_RATE_PER_ACCOUNT": "5 per minute",   # failed logins per username (Flask-Limiter notation)
    "LOGIN_RATE_PER_ADDRESS": "20 per minute",  # failed logins per client address
    "PROGRESS_RATE_PER_ADDRESS": "5 per minute;30 per hour",  # public 进度查询 queries per client address
    "RATELIMIT_STORAGE_URL": "",     # "" = the CACHE_URL's Redis when it is redis://…, else in-process
    "TRUSTED_PROXIES": 0,            # reverse proxies in front whose X-Forwarded-For/Proto/Host count
    "FRAME_ANCESTORS": "'self'",     # CSP frame-ancestors: who may embed the pages ('none', 'self', URLs)
    "PUSH_FEEDS": "",           # push ingestion: "feed=mapping,feed2=mapping2" (or a dict in overrides)
    "PUSH_MAX_BYTES": 5 * 1024 * 1024,  # push ingestion: larger bodies are refused with 413
    "OPEN311_CONTACT": "",      # Open311 discovery "contact"; "" = the 12345 hotline
    "OPEN311_KEY_SERVICE": "",  # Open311 discovery "key_service"; "" = how to get a token here
    "PDF_FONT": "",             # a TrueType CJK font for the PDF brief; "" = the usual system paths
    "EXPORT_DIR": "",           # where export jobs write their files; "" = instance/exports
    "MEDIA_DIR": "",            # where case photos are stored; "" = instance/media (shared by every node)
    "MEDIA_MAX_BYTES": 10 * 1024 * 1024,  # a photo upload over this is refused with 413
    "MEDIA_MAX_PIXELS": 50_000_000,       # a photo over this many pixels (a decompression bomb) is refused with 413
    "EXPORT_WAIT_SECONDS": 20.0,    # GET /brief/export.xlsx waits this long for its job, then answers 202
    "EXPORT_KEEP_MINUTES": 60.0,    # a finished export file is removed this long after it was made
    "RATELIMIT_KEY_PREFIX": "cityops",  # prefix of the login counters' keys (several apps on one Redis)
    "HOST": "127.0.0.1",        # python app.py: the address to listen on
    "PORT": 8050,               # python app.py: the port to listen on
    "TESTING": False,
}

_BOOL = {"1": True, "true": True, "yes": True, "on": True,
         "0": False, "false": False, "no": False, "off": False}


def load_config(overrides: dict | None = None, environ: dict | None = None) -> dict:
    """DEFAULTS, then CITYOPS_<KEY> environment variables (typed like the default), then overrides."""
    environ = os.environ if environ is None else environ
    cfg = dict(DEFAULTS)
    for key, default in DEFAULTS.items():
        raw = environ.get(f"CITYOPS_{key}")
        if raw is None:
            continue
        if isinstance(default, bool) or default is None and key == "DEMO_FEED":
            if raw.strip().lower() not in _BOOL:
                raise ValueError(f"CITYOPS_{key}={raw!r}: expected true/false")
            cfg[key] = _BOOL[raw.strip().lower()]
        elif isinstance(default, int):
            cfg[key] = int(raw)
        elif isinstance(default, float):
            cfg[key] = float(raw)
        else:
            cfg[key] = raw
    cfg.update(overrides or {})
    if cfg["DEMO_FEED"] is None:
        cfg["DEMO_FEED"] = is_embedded_default(cfg)
    if not cfg["SECRET_KEY"]:
        cfg["SECRET_KEY"] = _instance_secret()
    return cfg


def is_embedded_default(cfg: dict) -> bool:
    """The embedded default: the SQLite file in the instance folder that ``make run`` builds — not any
    SQLite database (a city's own SQLite file gets no demo feed and no demo history without --demo)."""
    return str(cfg["DATABASE_URL"]) == DEFAULTS["DATABASE_URL"]


def _instance_secret() -> str:
    path = INSTANCE / "secret_key"
    if path.exists():
        return path.read_text().strip()
    INSTANCE.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


def create_app(overrides: dict | None = None) -> Dash:
    from dash import Dash
    from flask import Flask

    from dashboards import _answers, _exports, _login, _progress, _shell
    from data_sources import runtime
    from data_sources.store import cache, media
    from data_sources.web import answers, api, compression, exports, gate, metrics, open311, progress, push, security

    cfg = load_config(overrides)
    server = Flask(__name__, instance_path=str(INSTANCE))
    server.config.update(cfg)
    server.config["SESSION_COOKIE_HTTPONLY"] = True
    server.config["SESSION_COOKIE_SAMESITE"] = "Lax"

    runtime.init_app(server)       # database, pack, case rules
    hand_city_to_domain(server)    # the domain gets this app's pack, calendar and case rules
    cache.init_app(server)
    media.init_app(server, cfg["MEDIA_DIR"] or str(INSTANCE / "media"),   # case photos (incidents.media)
                   max_bytes=int(cfg["MEDIA_MAX_BYTES"]), max_pixels=int(cfg["MEDIA_MAX_PIXELS"]))
    gate.init_app(server, login_page=_login.render)  # sessions, /login, /logout, the gate, /healthz
    progress.init_app(server, page=_progress.render)  # the citizen's 进度查询 (public, rate-limited)
    api.init_app(server)           # REST API v1 under /api/v1
    push.init_app(server)          # POST /api/v1/feeds/<feed>/records (push ingestion)
    open311.init_app(server)       # Open311 GeoReport v2 under /open311/v2 (public GET, POST with api_key)
    exports.init_app(server, render_pdf=_exports.brief_pdf, render_xlsx=_exports.brief_xlsx,
                     font_missing=_exports.FontMissing)   # /brief/export.pdf and /brief/export.xlsx
    metrics.init_app(server)       # /metrics (Prometheus text; a token or an allow-list)

    app = Dash(__name__, server=server, use_pages=True, pages_folder=str(ROOT / "dashboards"),
               use_async=False, title="CityOps 城市运行一网统管", update_title=None,
               suppress_callback_exceptions=True, assets_folder=str(ROOT / "assets"))
    # the offline map style, served as a URL: a style given as a URL is compared by its string, so a
    # figure update never makes MapLibre diff (and fail on) an inline style object
    from dashboards import _theme
    server.add_url_rule("/map/style.json", "map_style",
                        lambda: _theme.offline_map_style(server.config["TILE_URL"]))
    app.layout = _shell.layout
    _shell.register_callbacks(app)
    security.SecurityHeaders(server, app)  # CSP (with the hashes of Dash's inline scripts) and co.
    compression.init_app(server)   # br/gzip for JSON answers, pages and assets (Flask-Compress)
    answers.init_app(server, app, key_of=_answers.key_of, is_private=_answers.is_private)  # the wall's refresh: one rendered answer for many screens
    register_cli(server)
    if not cfg["TESTING"]:
        # started by the first request, so CLI commands that import the app don't run it: without Redis
        # for jobs, the demo feed's tick and the feeds of feeds.toml run in this process (else: the worker)
        from data_sources import worker
        server.before_request(lambda: worker.ensure_in_process(server))
    return app


def hand_city_to_domain(server: Flask) -> None:
    """Whenever an app context of ``server`` is entered, the domain gets this app's city (pack,
    calendar, case rules: ``incidents.city``) until the context is left, so that several apps can
    live in one process (the tests build many, two at a time in some)."""
    from flask import appcontext_pushed
    appcontext_pushed.connect(_hand_in_city, server)
    server.teardown_appcontext(_take_back_city)


def _hand_in_city(server: Flask, **_kw) -> None:
    from flask import g

    from data_sources.runtime import get_runtime
    from incidents import city
    g.cityops_city_token = city.hand_in(get_runtime(server))


def _take_back_city(_exc) -> None:
    from flask import g

    from incidents import city
    token = g.pop("cityops_city_token", None)
    if token is not None:
        city.take_back(token)


def register_cli(server: Flask) -> None:
    from data_sources import cli
    cli.register(server)


def _make_default_app():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app()


_default_lock = threading.Lock()


def __getattr__(name: str):
    """``app`` and ``server`` are built on first access (``gunicorn app:server``, ``flask --app app``)."""
    if name not in ("app", "server"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _default_lock:
        if "app" not in globals():
            built = _make_default_app()
            # both at once: `flask --app app` looks for a Flask instance among the module's globals
            globals().update(app=built, server=built.server)
    return globals()[name]


if __name__ == "__main__":
    app = _make_default_app()
    app.run(host=app.server.config["HOST"], port=int(app.server.config["PORT"]), debug=False)
