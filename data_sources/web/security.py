"""Web hardening: login throttling (Flask-Limiter), CSRF on the login/logout forms (Flask-WTF),
session lifetime, and the security headers on every response (CSP, nosniff, framing, referrer).

The rules themselves (password policy, tokens, session epochs) live in incidents.auth; this module
only wires them to HTTP.
"""
from __future__ import annotations

import math
import time
from typing import Optional
from urllib.parse import urlparse

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect

LIMITER_KEY = "cityops_limiter"
csrf = CSRFProtect()


# --- login throttling -----------------------------------------------------------------------------

def limiter_storage_uri(cfg) -> str:
    """RATELIMIT_STORAGE_URL, else the cache's Redis (several workers must share the counters),
    else in-process memory (one worker)."""
    url = str(cfg.get("RATELIMIT_STORAGE_URL") or "")
    if not url:
        cache = str(cfg.get("CACHE_URL") or "")
        url = cache if cache.startswith(("redis://", "rediss://", "redis+unix://")) else ""
    return url or "memory://"


def account_key() -> str:
    """The account a login attempt names, normalised so that 'Alice ' and 'alice' count together."""
    return "account:" + (request.form.get("username") or "").strip().lower()[:60]


def _failed_login(response: Response) -> bool:
    # only wrong credentials count: a success or a refused CSRF token (which costs no Argon2) does not
    return response.status_code == 401


def init_limiter(server: Flask, *, on_breach) -> Limiter:
    """A limiter with no default limits: only the views decorated with login_limits() are limited."""
    limiter = Limiter(
        get_remote_address, app=server, storage_uri=limiter_storage_uri(server.config),
        # no X-RateLimit-* headers on every answer (they tell a guesser how many tries are left);
        # the 429 itself carries Retry-After (set by on_breach)
        strategy="moving-window", headers_enabled=False,
        in_memory_fallback_enabled=True,  # Redis away: keep throttling per process rather than fail logins
        key_prefix=str(server.config.get("RATELIMIT_KEY_PREFIX") or "cityops"), on_breach=on_breach)
    server.extensions[LIMITER_KEY] = limiter
    return limiter


def login_limits(limiter: Limiter):
    """Decorator for POST /login: failed attempts are limited per account (whatever the address:
    a distributed guess at one password is throttled too) and per client address."""
    per_account = limiter.limit(lambda: current_app.config["LOGIN_RATE_PER_ACCOUNT"], key_func=account_key,
                                methods=["POST"], deduct_when=_failed_login, scope="login-account")
    per_address = limiter.limit(lambda: current_app.config["LOGIN_RATE_PER_ADDRESS"], methods=["POST"],
                                deduct_when=_failed_login, scope="login-address")
    return lambda view: per_address(per_account(view))


def retry_after_seconds(limit: RequestLimit) -> int:
    return max(1, math.ceil(limit.reset_at - time.time()))


# --- CSRF: Flask-WTF's token, checked only where a form posts (login, logout) ----------------------

def init_csrf(server: Flask) -> None:
    server.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # the API and Dash callbacks are JSON + cookie
    server.config.setdefault("WTF_CSRF_TIME_LIMIT", None)      # valid as long as the session: a wall left
    csrf.init_app(server)                                      # open for days can still log out


def check_form_post() -> None:
    """Raises CSRFError unless a browser's post comes from this site with this session's CSRF token.

    A browser says where every POST comes from (Origin; ``null`` when hidden; else Referer): from
    another site it is refused outright, from this site it must carry the form's token. A client
    that sends neither header is no browser (a script, a monitoring check: DESIGN §8's "POST /login
    takes username and password"): cross-site request forgery needs a victim's browser, so it needs
    no token, and the login throttle still applies."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin is None:
        return
    if urlparse(origin).netloc != request.host:
        raise CSRFError("the form was posted from another site")
    csrf.protect()


# --- session lifetime ------------------------------------------------------------------------------

def session_expired(sess, cfg, now: Optional[float] = None) -> bool:
    """Absolute lifetime since login (kiosk sessions live as long as their token instead)."""
    if sess.get("kiosk"):
        return False
    hours = float(cfg.get("SESSION_LIFETIME_HOURS") or 0)
    login_at = sess.get("login_at")
    if hours <= 0:
        return False
    return login_at is None or (now or time.time()) - float(login_at) > hours * 3600


# --- security headers ------------------------------------------------------------------------------

def _source_of(url: str) -> Optional[str]:
    """The CSP source for a tile URL template: its origin, placeholders in the host widened to *."""
    parsed = urlparse(url)
    if not parsed.scheme or not parsed.netloc:
        return None  # a path on this site: 'self' covers it
    host = parsed.netloc
    if "{" in host:
        # https://{s}.tile.example/{z}/{x}/{y}.png → https://*.tile.example
        head, _, rest = host.partition("}")
        host = "*" + rest if head.startswith("{") else host
    return f"{parsed.scheme}://{host}"


class SecurityHeaders:
    """After every response: Content-Security-Policy (inline Dash scripts allowed by their hashes,
    never 'unsafe-eval'), X-Content-Type-Options, framing rules, Referrer-Policy."""

    def __init__(self, server: Flask, dash_app) -> None:
        self.server = server
        self.dash_app = dash_app
        self._hashes: list[str] = []
        self._seen = -1
        server.after_request(self.apply)

    def _script_hashes(self) -> list[str]:
        from dash import _callback
        # recomputed only when Dash has gained inline scripts (clientside callbacks) since last time
        count = len(self.dash_app._inline_scripts) + len(_callback.GLOBAL_INLINE_SCRIPTS)
        if count != self._seen:
            self._hashes = list(dict.fromkeys(self.dash_app.csp_hashes()))  # unique, in order
            self._seen = len(self.dash_app._inline_scripts)
        return self._hashes

    def policy(self) -> str:
        cfg = self.server.config
        tiles = _source_of(str(cfg.get("TILE_URL") or ""))
        extra = f" {tiles}" if tiles else ""
        directives = [
            "default-src 'self'",
            "script-src 'self' " + " ".join(self._script_hashes()),
            # React sets style attributes and plotly injects <style> elements
            "style-src 'self' 'unsafe-inline'",
            f"img-src 'self' data: blob:{extra}",
            f"connect-src 'self'{extra}",
            "font-src 'self' data:",
            # MapLibre runs its tile workers from blob: URLs
            "worker-src 'self' blob:",
            "child-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            f"frame-ancestors {cfg.get('FRAME_ANCESTORS') or chr(39) + 'self' + chr(39)}",
        ]
        return "; ".join(directives)

    def apply(self, response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", self.policy())
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        ancestors = str(self.server.config.get("FRAME_ANCESTORS") or "'self'").strip()
        legacy = {"'none'": "DENY", "'self'": "SAMEORIGIN"}.get(ancestors)
        if legacy:
            headers.setdefault("X-Frame-Options", legacy)
        return response


def init_proxy(server: Flask) -> None:
    """Behind TRUSTED_PROXIES reverse proxies, take the client address, scheme and host from their
    X-Forwarded-* headers (the throttle counts per client, the Origin check compares hosts)."""
    hops = int(server.config.get("TRUSTED_PROXIES") or 0)
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
