"""HTTP plumbing: sessions and the gate in front of every request, /login, /logout, ops probes.

Without a session, every page shows the login page and every API or Dash callback
answers 401. Permission per role is then checked by each page, callback and endpoint.
Login attempts are throttled and the login/logout forms carry a CSRF token (data_sources.web.security);
a session ends at logout, after SESSION_IDLE_MINUTES without a request, SESSION_LIFETIME_HOURS after
login, or when its user's session epoch moves on ("log out everywhere", a password reset).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional
from urllib.parse import parse_qsl, quote, urlencode, urlparse

from flask import Flask, abort, jsonify, redirect, request, session
from flask_wtf.csrf import CSRFError, generate_csrf
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, InternalServerError

from data_sources.store.db import get_db, is_unavailable
from data_sources.web import security
from data_sources.web.errors import error_response, unavailable_response
from incidents import auth, bounds
from incidents.model import Role
from incidents.tables import User

log = logging.getLogger(__name__)

PUBLIC_PREFIXES = ("/assets/", "/_dash-component-suites/", "/_favicon.ico", "/healthz", "/readyz", "/map/style.json")
MACHINE_PREFIXES = ("/api/", "/_dash-", "/open311/")
#: open to anyone: the login form, /metrics (it has its own guard), and the citizen's 进度查询 (its form
#: and its JSON door; a case answers only to its phone's last four digits, rate-limited per address)
PUBLIC_PATHS = ("/login", "/metrics", "/progress", "/api/v1/progress")
#: Open311 GeoReport v2 is public: GET answers carry no personal data, and a POST is refused by
#: data_sources.web.open311 itself unless its form field api_key is a valid API token
OPEN311_PREFIX = "/open311/v2/"

#: /readyz waits this long for the database's answer, then says 503
READY_TIMEOUT_SECONDS = 1.5

# where "/" sends each role
LANDING = {Role.VIEWER: "/wall", Role.LEADER: "/brief", Role.DISPATCHER: "/dispatch",
           Role.DEPARTMENT: "/dispatch", Role.INSPECTOR: "/dispatch", Role.ADMIN: "/wall"}


@dataclass
class SessionUser(UserMixin):
    id: int
    username: str
    role: Role
    department_code: Optional[str]
    display_name: str
    token_name: Optional[str] = None      # signed in with an API token: its name and the feeds it is bound to
    token_feeds: Optional[str] = None

    @classmethod
    def of(cls, user: User) -> "SessionUser":
        return cls(user.id, user.username, Role(user.role), user.department_code,
                   user.display_name or user.username)

    def get_id(self) -> str:
        return str(self.id)


def init_app(server: Flask, *, login_page: Callable[..., str]) -> None:
    manager = LoginManager()
    manager.init_app(server)
    server.config["SESSION_COOKIE_SECURE"] = bool(server.config.get("SESSION_COOKIE_SECURE"))
    # the signed cookie is refused once this long has passed since the last request (each answer
    # renews it: SESSION_REFRESH_EACH_REQUEST); sessions are made permanent at login
    server.config["PERMANENT_SESSION_LIFETIME"] = timedelta(
        minutes=float(server.config.get("SESSION_IDLE_MINUTES") or 60 * 24 * 365))
    security.init_proxy(server)
    security.init_csrf(server)

    def _throttled(limit: security.RequestLimit):
        if request.path != "/login":
            return None  # another limited door (the progress query) answers its own 429
        wait = security.retry_after_seconds(limit)
        resp = server.make_response((login_page(next_url=_safe_next(request.form.get("next")),
                                                error="too_many_attempts",
                                                username=(request.form.get("username") or "").strip(),
                                                retry_after=wait), 429))
        resp.headers["Retry-After"] = str(wait)
        return resp

    limiter = security.init_limiter(server, on_breach=_throttled)

    @manager.user_loader
    def _load(user_id: str):
        if security.session_expired(session, server.config):
            return None
        try:
            return _load_from_db(user_id)
        except SQLAlchemyError:
            # the database is away: the signed session still says who this is, so a wall can show
            # its stale banner instead of an error page; every read fails until the database is back
            who = session.get("who")
            if who and str(who[0]) == user_id:
                return SessionUser(int(who[0]), who[1], Role(who[2]), who[3], who[4])
            return None

    def _load_from_db(user_id: str):
        with get_db(server).session_scope() as s:
            user = s.get(User, int(user_id)) if user_id.isdigit() else None
            if user is None or not user.active:
                return None
            if session.get("epoch") != (user.session_epoch or 0):
                return None  # logged out everywhere (or the password was reset) since this login
            if auth.session_ended(s, session.get("sid")):
                return None  # this session logged out: its cookie, set again by a late answer or replayed, is dead
            kiosk = session.get("kiosk")
            if kiosk and not auth.token_active(s, kiosk):
                return None  # the wall PC's token was revoked or expired: its session ends with it
            return SessionUser.of(user)

    @manager.request_loader
    def _bearer(req):
        header = req.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = header[len("Bearer "):].strip()
        with get_db(server).session_scope() as s:
            row, user = auth.token_and_user(s, token)
            if user is None:
                return None
            who = SessionUser.of(user)
            who.token_name, who.token_feeds = row.name or f"token-{row.id}", row.feeds
            return who

    @server.before_request
    def _gate():
        lang = request.args.get("lang")
        if lang in ("zh-CN", "en"):
            session["lang"] = lang
        path = request.path
        if path.startswith(PUBLIC_PREFIXES) or path in PUBLIC_PATHS:
            return None
        if path.startswith(OPEN311_PREFIX) and request.method in ("GET", "HEAD", "POST"):
            return None
        kiosk = request.args.get("kiosk")
        if kiosk and request.method == "GET" and not path.startswith(MACHINE_PREFIXES):
            # the token is exchanged for a session cookie and taken out of the address bar (and the
            # history) at once; an invalid one just leads to the login page
            _kiosk_login(kiosk)
            return redirect(_without_kiosk(request.full_path))
        if current_user.is_authenticated:
            return None
        if path.startswith(MACHINE_PREFIXES):
            return error_response(401, "unauthorized", "login required")
        return redirect("/login?next=" + quote(request.full_path.rstrip("?"), safe="/?=&"))

    @server.get("/login")
    def _login_form():
        return login_page(next_url=_safe_next(request.args.get("next")), error=None)

    @server.post("/login")
    @security.login_limits(limiter)
    def _login_submit():
        username = (request.form.get("username") or "").strip()
        password = request.form.get("password") or ""
        next_url = _safe_next(request.form.get("next"))
        security.check_form_post()  # before Argon2: a forged post costs nothing
        if bounds.text_fault(username) or bounds.text_fault(password) or len(username) > 60 or len(password) > 1024:
            # a NUL or a lone surrogate cannot be a user's name or password (and would not reach the database)
            return login_page(next_url=next_url, error="bad_credentials", username=""), 400
        with get_db(server).session_scope() as s:
            user = auth.authenticate(s, username, password)
            who = SessionUser.of(user) if user is not None else None
            epoch = (user.session_epoch or 0) if user is not None else 0
        if who is None:
            return login_page(next_url=next_url, error="bad_credentials", username=username), 401
        lang = session.get("lang")
        session.clear()  # a fresh session at login (no fixation); the language choice stays
        if lang:
            session["lang"] = lang
        _start_session(who, epoch)
        return redirect(next_url or LANDING[who.role])

    def _end_this_session() -> None:
        """Refuse this session's cookie from now on (server-side: an answer still in flight carries
        it back to the browser after the logout's, and a copied cookie must not outlive it)."""
        sid = session.get("sid")
        if sid:
            with get_db(server).session_scope() as s:
                auth.end_session(s, sid, now=datetime.now(timezone.utc), keep=_longest_session(server.config))
        logout_user()
        session.clear()

    @server.post("/logout")
    def _logout():
        security.check_form_post()
        _end_this_session()
        return redirect("/login")

    @server.post("/logout-everywhere")
    def _logout_everywhere():
        """The logged-in user ends all their sessions, on every browser (this one included)."""
        security.check_form_post()
        if not current_user.is_authenticated:
            return redirect("/login")
        if not session.get("kiosk"):  # a passer-by at one wall must not end every wall of that kiosk
            with get_db(server).session_scope() as s:
                auth.end_all_sessions(s, current_user.username)
        _end_this_session()
        return redirect("/login")

    @server.errorhandler(Exception)
    def _unhandled(exc: Exception):
        """What no door of its own handles (Dash callbacks, pages): a database that is away or too
        slow answers 503 with Retry-After (a wall retries on its own), anything else Flask's 500."""
        if isinstance(exc, HTTPException):
            return exc
        if is_unavailable(exc):
            log.warning("database unavailable on %s: %s", request.path, type(exc).__name__)
            return unavailable_response()
        log.exception("unhandled error on %s", request.path)
        return InternalServerError(original_exception=exc)

    @server.errorhandler(CSRFError)
    def _csrf_refused(exc):
        if request.path == "/login":
            # the form was stale (its session expired) or forged: a fresh form, nobody logged in
            return login_page(next_url=_safe_next(request.form.get("next")), error="form_expired",
                              username=(request.form.get("username") or "").strip()), 400
        return error_response(400, "csrf_failed", exc.description)

    @server.get("/")
    def _root():
        return redirect(LANDING[current_user.role])

    @server.get("/healthz")
    def _healthz():
        return jsonify(status="ok")

    @server.get("/readyz")
    def _readyz():
        try:
            get_db(server).ping(timeout=READY_TIMEOUT_SECONDS)   # answers within 2 s whatever the database does
        except Exception as exc:  # the probe must answer, not crash
            return jsonify(status="unavailable", database="unreachable", error=type(exc).__name__), 503
        return jsonify(status="ok", database="ok")


def _kiosk_login(token: str) -> None:
    """A wall PC opens /wall?kiosk=<token>: a read-only (viewer) session tied to that token."""
    from flask import current_app
    with get_db(current_app).session_scope() as s:
        user = auth.user_for_token(s, token)
        if user is None or Role(user.role) != Role.VIEWER:
            return
        who = SessionUser.of(user)
        epoch = user.session_epoch or 0
    session.clear()
    session["kiosk"] = auth.token_digest(token)
    _start_session(who, epoch)


def _without_kiosk(full_path: str) -> str:
    parsed = urlparse(full_path)
    query = urlencode([(k, v) for k, v in parse_qsl(parsed.query, keep_blank_values=True) if k != "kiosk"])
    return parsed.path + ("?" + query if query else "")


def _longest_session(config) -> timedelta:
    """The longest any session cookie can stay valid: the absolute lifetime, or the idle timeout
    when that is longer (kiosk walls live by their token), with a day to spare."""
    hours = max(float(config.get("SESSION_LIFETIME_HOURS") or 0), float(config.get("SESSION_IDLE_MINUTES") or 0) / 60)
    return timedelta(hours=hours or 24 * 365) + timedelta(days=1)


def _start_session(who: "SessionUser", epoch: int) -> None:
    session.permanent = True  # PERMANENT_SESSION_LIFETIME is the idle timeout
    session["sid"] = auth.new_session_id()
    session["epoch"] = epoch
    session["login_at"] = time.time()
    # the session's CSRF secret is made now, in the login response, not by whichever page first
    # renders a form: the page's own concurrent callbacks write the cookie back too, and one that
    # read the session before the secret existed would drop it (logout then fails with 400)
    generate_csrf()
    _remember(who)
    login_user(who)


def _remember(who: "SessionUser") -> None:
    session["who"] = [who.id, who.username, who.role.value, who.department_code, who.display_name]


def _safe_next(url: Optional[str]) -> Optional[str]:
    """Only local paths: never redirect a fresh login to another site."""
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme or parsed.netloc or not url.startswith("/") or url.startswith("//"):
        return None
    if url.startswith(("/login", "/logout")):
        return None
    return url


def require_role(*roles: Role) -> SessionUser:
    """For callbacks and endpoints: the current user, or 403 when their role is not allowed."""
    if not current_user.is_authenticated:
        abort(401)
    if roles and current_user.role not in roles:
        abort(403)
    return current_user
