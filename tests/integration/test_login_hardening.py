"""Login and session hardening: throttling (on a real Redis), CSRF on the login/logout forms,
session epoch / lifetime / idle timeout, kiosk URL exchange and expiry, security headers."""
from __future__ import annotations

import json
import re
import time
import uuid
from datetime import timedelta

import pytest

from data_sources.store.db import get_db
from incidents import auth
from tests.conftest import REDIS_URL, build_app
from tests.integration.helpers import NOW, PASSWORD, add_user, csrf_token, login, post_login

A = {"REMOTE_ADDR": "10.0.0.1"}
B = {"REMOTE_ADDR": "10.0.0.2"}


def _session_of(server, client) -> dict:
    """The signed session cookie a client holds, decoded with the app's own serializer."""
    cookie = client.get_cookie(server.config.get("SESSION_COOKIE_NAME", "session"))
    if cookie is None:
        return {}
    return server.session_interface.get_signing_serializer(server).loads(cookie.value)


def _logged_in(client) -> bool:
    return client.get("/_dash-layout").status_code == 200


# --- throttling -------------------------------------------------------------------------------------

@pytest.fixture(params=["memory", "redis"])
def limited(request, tmp_path):
    """An app whose login limits live in process memory or on the test Redis (a key prefix of its
    own, so parallel runs never share counters)."""
    overrides = {"RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex[:12]}",
                 "LOGIN_RATE_PER_ACCOUNT": "5 per minute", "LOGIN_RATE_PER_ADDRESS": "20 per minute"}
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("Redis: set CITYOPS_TEST_REDIS_URL (CI does)")
        import redis
        redis.Redis.from_url(REDIS_URL).ping()  # a Redis that is set but down fails here, never falls back
        overrides["RATELIMIT_STORAGE_URL"] = REDIS_URL
    app = build_app(f"sqlite:///{tmp_path / 'l.db'}", **overrides)
    app.server.limiter_backend = request.param
    yield app.server
    if request.param == "redis":
        import redis
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(f"*{overrides['RATELIMIT_KEY_PREFIX']}*"))
        app.server.limiter_keys = keys
        if keys:
            r.delete(*keys)
    get_db(app.server).dispose()


def test_the_sixth_wrong_password_for_an_account_is_answered_429_with_retry_after(limited):
    add_user(limited, "alice", "dispatcher")
    add_user(limited, "bob", "dispatcher")
    client = limited.test_client()
    for _ in range(5):
        assert post_login(client, "alice", "wrong-password-1", environ_base=A).status_code == 401
    resp = post_login(client, "alice", "wrong-password-1", environ_base=A)
    assert resp.status_code == 429
    assert 0 < int(resp.headers["Retry-After"]) <= 61   # the one-minute window, rounded up to whole seconds
    body = resp.get_data(as_text=True)
    assert "登录失败次数过多" in body and 'name="csrf_token"' in body and 'value="alice"' in body
    # throttled per account by design: the right password from another address waits too …
    other = limited.test_client()
    assert post_login(other, "Alice ", PASSWORD, environ_base=B).status_code == 429
    assert not _logged_in(other)
    # … while another account logs in from the same address
    assert post_login(limited.test_client(), "bob", PASSWORD, environ_base=A).status_code == 302
    if limited.limiter_backend == "redis":
        import redis
        prefix = limited.config["RATELIMIT_KEY_PREFIX"]
        assert any(b"account:alice" in k for k in redis.Redis.from_url(REDIS_URL).scan_iter(f"*{prefix}*")), \
            "the counters must live in Redis, shared by every worker"


def test_an_address_that_guesses_across_accounts_is_throttled(limited):
    limited.config["LOGIN_RATE_PER_ADDRESS"] = "3 per minute"
    add_user(limited, "carol", "leader")
    client = limited.test_client()
    for name in ("x1", "x2", "x3"):
        assert post_login(client, name, "wrong-password-1", environ_base=A).status_code == 401
    resp = post_login(client, "carol", PASSWORD, environ_base=A)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    assert post_login(limited.test_client(), "carol", PASSWORD, environ_base=B).status_code == 302


def test_successful_logins_are_not_counted(limited):
    add_user(limited, "dora", "viewer")
    for _ in range(8):
        assert post_login(limited.test_client(), "dora", PASSWORD, environ_base=A).status_code == 302


def test_limiter_storage_follows_the_settings():
    from data_sources.web.security import limiter_storage_uri
    assert limiter_storage_uri({"CACHE_URL": "", "RATELIMIT_STORAGE_URL": ""}) == "memory://"
    assert limiter_storage_uri({"CACHE_URL": "redis://r:6379/0", "RATELIMIT_STORAGE_URL": ""}) == "redis://r:6379/0"
    assert limiter_storage_uri({"CACHE_URL": "simple", "RATELIMIT_STORAGE_URL": ""}) == "memory://"
    assert limiter_storage_uri({"CACHE_URL": "redis://r/0", "RATELIMIT_STORAGE_URL": "redis://q/3"}) == "redis://q/3"


def test_an_unknown_user_costs_a_full_argon2_verification(server):
    """The dummy hash an unknown user is checked against has the real hashes' Argon2 cost."""
    from argon2 import extract_parameters
    add_user(server, "erin", "viewer")
    with get_db(server).session_scope() as s:
        from sqlalchemy import select
        from incidents.tables import User
        real = s.scalar(select(User.password_hash).where(User.username == "erin"))
    assert extract_parameters(auth._DUMMY_HASH) == extract_parameters(real)
    verified = []

    class Recording:
        def __init__(self, hasher):
            self.hasher = hasher

        def verify(self, hash_, password):
            verified.append(hash_)
            return self.hasher.verify(hash_, password)

        def __getattr__(self, name):
            return getattr(self.hasher, name)

    original = auth._hasher
    auth._hasher = Recording(original)
    try:
        with get_db(server).session_scope() as s:
            assert auth.authenticate(s, "nobody-here", PASSWORD) is None
            assert auth.authenticate(s, "erin", PASSWORD) is not None
    finally:
        auth._hasher = original
    assert verified == [auth._DUMMY_HASH, real]


# --- CSRF -------------------------------------------------------------------------------------------

def test_a_browser_login_post_without_the_form_token_is_refused_and_logs_nobody_in(server):
    add_user(server, "fay", "dispatcher")
    client = server.test_client()
    for header in ("Origin", "Referer"):   # a browser always says where a POST comes from
        resp = client.post("/login", data={"username": "fay", "password": PASSWORD},
                           headers={header: "http://localhost/login"})
        assert resp.status_code == 400
        assert "_user_id" not in _session_of(server, client) and not _logged_in(client)
        assert 'name="csrf_token"' in resp.get_data(as_text=True)  # a fresh form to try again


def test_a_script_logs_in_with_username_and_password_alone(server):
    # DESIGN §8: POST /login takes the form fields username and password. A client that sends no
    # Origin or Referer is no browser, so no forged cross-site post: it needs no CSRF token
    add_user(server, "fred", "dispatcher")
    client = server.test_client()
    resp = client.post("/login", data={"username": "fred", "password": PASSWORD})
    assert resp.status_code == 302 and _logged_in(client)


@pytest.mark.parametrize("header", ["Origin", "Referer"])
def test_a_login_post_from_another_site_is_refused(server, header):
    add_user(server, "gus", "dispatcher")
    client = server.test_client()
    token = csrf_token(client)
    resp = client.post("/login", data={"username": "gus", "password": PASSWORD, "csrf_token": token},
                       headers={header: "http://evil.example/login-csrf"})
    assert resp.status_code == 400
    assert "_user_id" not in _session_of(server, client) and not _logged_in(client)
    # the same post from this site's own page works
    resp = client.post("/login", data={"username": "gus", "password": PASSWORD, "csrf_token": token},
                       headers={header: "http://localhost/login"})
    assert resp.status_code == 302 and _logged_in(client)


def test_a_forged_logout_is_refused(server):
    client = login(server, "hal", "viewer")
    assert client.post("/logout", headers={"Origin": "http://localhost"}).status_code == 400
    assert client.post("/logout", data={"csrf_token": csrf_token(client)},
                       headers={"Origin": "http://evil.example"}).status_code == 400
    assert _logged_in(client)
    assert client.post("/logout", data={"csrf_token": csrf_token(client)}).status_code == 302
    assert not _logged_in(client)


def test_the_shell_logout_form_carries_the_csrf_token(server):
    client = login(server, "ivy", "dispatcher")
    layout = json.dumps(client.get("/_dash-layout").get_json(), ensure_ascii=False)
    assert '"name": "csrf_token"' in layout and '"/logout"' in layout and '"/logout-everywhere"' in layout


# --- session epoch, lifetime, idle ------------------------------------------------------------------

def test_log_out_everywhere_ends_the_users_other_sessions(server):
    office = login(server, "jon", "dispatcher")
    home = server.test_client()
    assert post_login(home, "jon").status_code == 302
    other_user = login(server, "kim", "dispatcher")
    resp = home.post("/logout-everywhere", data={"csrf_token": csrf_token(home)})
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"
    assert not _logged_in(office) and not _logged_in(home)
    assert _logged_in(other_user)
    # logging in again works
    assert post_login(office, "jon").status_code == 302 and _logged_in(office)


def test_the_logout_everywhere_command_ends_an_existing_session(server):
    client = login(server, "lin", "leader")
    out = server.test_cli_runner().invoke(args=["logout-everywhere", "lin"])
    assert out.exit_code == 0, out.output
    assert not _logged_in(client)
    assert server.test_cli_runner().invoke(args=["logout-everywhere", "nobody"]).exit_code != 0


def test_a_password_reset_ends_the_old_sessions(server):
    client = login(server, "max", "dispatcher")
    add_user(server, "max", "dispatcher")  # --replace
    assert not _logged_in(client)


def test_a_session_ends_after_its_lifetime(server):
    client = login(server, "ned", "dispatcher")
    with client.session_transaction() as sess:
        sess["login_at"] = time.time() - float(server.config["SESSION_LIFETIME_HOURS"]) * 3600 - 60
    assert not _logged_in(client)


def test_an_idle_session_ends(tmp_path):
    app = build_app(f"sqlite:///{tmp_path / 'i.db'}", SESSION_IDLE_MINUTES=1 / 60)  # one second
    client = login(app.server, "ola", "dispatcher")
    assert _logged_in(client)
    time.sleep(2.2)
    assert not _logged_in(client)
    get_db(app.server).dispose()


def test_the_session_cookie_can_be_made_secure(tmp_path):
    app = build_app(f"sqlite:///{tmp_path / 's.db'}", SESSION_COOKIE_SECURE=True)
    add_user(app.server, "pia", "viewer")
    client = app.server.test_client()
    form = client.get("/login", base_url="https://localhost").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    resp = client.post("/login", data={"username": "pia", "password": PASSWORD, "csrf_token": token},
                       base_url="https://localhost", headers={"Referer": "https://localhost/login"})
    assert resp.status_code == 302
    cookie = next(c for c in resp.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    get_db(app.server).dispose()


# --- kiosk ------------------------------------------------------------------------------------------

def test_the_kiosk_url_is_exchanged_for_a_cookie_and_leaves_the_address_bar(server):
    out = server.test_cli_runner().invoke(args=["create-kiosk", "hall-2", "--days", "30"])
    assert out.exit_code == 0, out.output
    token = out.output.strip().splitlines()[-1].split("kiosk=")[1]
    client = server.test_client()
    resp = client.get(f"/wall?lang=en&kiosk={token}")
    assert resp.status_code == 302 and resp.headers["Location"] == "/wall?lang=en"
    assert token not in resp.headers["Location"]
    assert client.get("/wall?lang=en").status_code == 200 and _logged_in(client)
    with get_db(server).session_scope() as s:
        from sqlalchemy import select
        from incidents.tables import ApiToken
        expires = s.scalar(select(ApiToken.expires_at).where(ApiToken.token_hash == auth.token_digest(token)))
    from datetime import datetime, timezone
    assert timedelta(days=29.9) < expires - datetime.now(timezone.utc) <= timedelta(days=30)


def test_an_unknown_kiosk_token_leads_to_the_login_page_without_the_token(server):
    client = server.test_client()
    resp = client.get("/wall?kiosk=cot_not-a-token")
    assert resp.status_code == 302 and resp.headers["Location"] == "/wall"
    assert client.get("/wall").headers["Location"].startswith("/login")


def test_an_expired_kiosk_token_is_refused_and_ends_its_sessions(server):
    with get_db(server).session_scope() as s:
        token = auth.create_kiosk(s, "hall-3", now=NOW, days=1)
    with get_db(server).session_scope() as s:
        assert auth.user_for_token(s, token, now=NOW + timedelta(hours=23)) is not None
        assert auth.user_for_token(s, token, now=NOW + timedelta(days=1, seconds=1)) is None
        assert not auth.token_active(s, auth.token_digest(token), now=NOW + timedelta(days=2))
    client = server.test_client()  # NOW is in the past: the token has expired already
    client.get(f"/wall?kiosk={token}")
    assert not _logged_in(client)
    assert client.get("/_dash-layout", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_live_kiosk_session_ends_when_its_token_expires(server):
    from datetime import datetime, timezone
    with get_db(server).session_scope() as s:
        token = auth.create_kiosk(s, "hall-4", now=datetime.now(timezone.utc), days=1)
    client = server.test_client()
    client.get(f"/wall?kiosk={token}")
    assert _logged_in(client)
    with get_db(server).session_scope() as s:
        from sqlalchemy import select
        from incidents.tables import ApiToken
        row = s.scalar(select(ApiToken).where(ApiToken.token_hash == auth.token_digest(token)))
        row.expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    assert not _logged_in(client)


# --- security headers -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/login", "/api/v1/incidents", "/assets/cityops.css", "/healthz",
                                  "/_dash-layout", "/wall"])
def test_every_response_carries_the_security_headers(server, path):
    client = login(server, "quinn", "dispatcher") if path in ("/wall", "/_dash-layout") else server.test_client()
    resp = client.get(path)
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "object-src 'none'" in csp and "frame-ancestors 'self'" in csp
    assert "unsafe-eval" not in csp and "script-src 'self' 'sha256-" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_the_csp_allows_each_inline_script_dash_renders(server):
    import base64
    import hashlib
    page = login(server, "rex", "viewer").get("/wall")
    html, csp = page.get_data(as_text=True), page.headers["Content-Security-Policy"]
    html = re.sub(r"<!--.*?-->", "", html, flags=re.S)  # e.g. the IE-only script in a conditional comment
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>(.*?)</script>", html, re.S)
    assert inline, "Dash renders inline scripts"
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp, script[:80]


def test_framing_and_tiles_follow_the_settings(tmp_path):
    app = build_app(f"sqlite:///{tmp_path / 'f.db'}", FRAME_ANCESTORS="'none'",
                    TILE_URL="https://{s}.tiles.example.org/{z}/{x}/{y}.png")
    resp = app.server.test_client().get("/login")
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and resp.headers["X-Frame-Options"] == "DENY"
    assert "img-src 'self' data: blob: https://*.tiles.example.org" in csp
    assert "connect-src 'self' https://*.tiles.example.org" in csp
    app.server.config["FRAME_ANCESTORS"] = "'self' https://wall.example.org"
    resp = app.server.test_client().get("/login")
    assert "frame-ancestors 'self' https://wall.example.org" in resp.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in resp.headers  # it cannot say "these sites": CSP alone decides
    get_db(app.server).dispose()
