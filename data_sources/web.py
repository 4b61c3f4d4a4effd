"""HTTP plumbing: sessions and the gate in front of every request, /login, /logout, ops probes.

Without a session, every page shows the login page and every API or Dash callback
answers 401. Permission per role is then checked by each page, callback and endpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import quote, urlparse

from flask import Flask, abort, jsonify, redirect, request, session
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from data_sources.db import get_db
from incidents import auth
from incidents.model import Role
from incidents.tables import User

PUBLIC_PREFIXES = ("/assets/", "/_dash-component-suites/", "/_favicon.ico", "/healthz", "/readyz")
MACHINE_PREFIXES = ("/api/", "/_dash-", "/open311/")
#: Open311 GeoReport v2 is public: GET answers carry no personal data, and a POST is refused by
#: data_sources.open311 itself unless its form field api_key is a valid API token
OPEN311_PREFIX = "/open311/v2/"

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

    @classmethod
    def of(cls, user: User) -> "SessionUser":
        return cls(user.id, user.username, Role(user.role), user.department_code,
                   user.display_name or user.username)

    def get_id(self) -> str:
        return str(self.id)


def init_app(server: Flask, *, login_page: Callable[..., str]) -> None:
    manager = LoginManager()
    manager.init_app(server)

    @manager.user_loader
    def _load(user_id: str):
        with get_db(server).session_scope() as s:
            user = s.get(User, int(user_id)) if user_id.isdigit() else None
            return SessionUser.of(user) if user is not None and user.active else None

    @manager.request_loader
    def _bearer(req):
        header = req.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        with get_db(server).session_scope() as s:
            user = auth.user_for_token(s, header[len("Bearer "):].strip())
            return SessionUser.of(user) if user is not None else None

    @server.before_request
    def _gate():
        lang = request.args.get("lang")
        if lang in ("zh-CN", "en"):
            session["lang"] = lang
        path = request.path
        if path.startswith(PUBLIC_PREFIXES) or path == "/login":
            return None
        if path.startswith(OPEN311_PREFIX) and request.method in ("GET", "HEAD", "POST"):
            return None
        if current_user.is_authenticated:
            return None
        if path.startswith(MACHINE_PREFIXES):
            return jsonify(error={"code": "unauthorized", "message": "login required"}), 401
        return redirect("/login?next=" + quote(request.full_path.rstrip("?"), safe="/?=&"))

    @server.get("/login")
    def _login_form():
        return login_page(next_url=_safe_next(request.args.get("next")), error=None)

    @server.post("/login")
    def _login_submit():
        username = (request.form.get("username") or "").strip()
        password = request.form.get("password") or ""
        next_url = _safe_next(request.form.get("next"))
        with get_db(server).session_scope() as s:
            user = auth.authenticate(s, username, password)
            who = SessionUser.of(user) if user is not None else None
        if who is None:
            return login_page(next_url=next_url, error="bad_credentials", username=username), 401
        lang = session.get("lang")
        session.clear()  # a fresh session at login (no fixation); the language choice stays
        if lang:
            session["lang"] = lang
        login_user(who)
        return redirect(next_url or LANDING[who.role])

    @server.post("/logout")
    def _logout():
        logout_user()
        session.clear()
        return redirect("/login")

    @server.get("/")
    def _root():
        return redirect(LANDING[current_user.role])

    @server.get("/healthz")
    def _healthz():
        return jsonify(status="ok")

    @server.get("/readyz")
    def _readyz():
        try:
            get_db(server).ping()
        except Exception as exc:  # the probe must answer, not crash
            return jsonify(status="unavailable", database="unreachable", error=type(exc).__name__), 503
        return jsonify(status="ok", database="ok")


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
