"""Login, roles and the gate: no session → login page and 401; a session → the role's page."""
from __future__ import annotations

import json

import pytest

from data_sources.store.db import get_db
from incidents.tables import User
from tests.integration.helpers import PASSWORD, add_user, login, post_login, csrf_token

ROLE_LANDING = {"viewer": "/wall", "leader": "/brief", "dispatcher": "/dispatch",
                "department": "/dispatch", "inspector": "/dispatch", "admin": "/wall"}


@pytest.mark.parametrize("path", ["/wall", "/brief", "/dispatch", "/incidents/1", "/"])
def test_without_a_session_every_page_shows_the_login_page(server, path):
    client = server.test_client()
    resp = client.get(path, follow_redirects=True)
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert 'name="username"' in body and 'name="password"' in body and 'action="/login"' in body


@pytest.mark.parametrize("path,method", [("/api/v1/incidents", "get"), ("/api/v1/incidents", "post"),
                                         ("/_dash-update-component", "post"), ("/_dash-layout", "get")])
def test_without_a_session_apis_answer_401_json(server, path, method):
    resp = getattr(server.test_client(), method)(path, json={})
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "unauthorized"


def test_health_probes_answer_without_a_session(server):
    client = server.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["database"] == "ok"


def test_readyz_reports_an_unreachable_database(tmp_path):
    from tests.conftest import build_app
    app = build_app(f"sqlite:///{tmp_path / 'r.db'}")
    get_db(app.server).engine.dispose()
    # point the app at a database server that is not there (nothing listens on port 9)
    from data_sources.store.db import Database, EXTENSION_KEY
    app.server.extensions[EXTENSION_KEY] = Database("postgresql://postgres@127.0.0.1:9/none?connect_timeout=2")
    resp = app.server.test_client().get("/readyz")
    assert resp.status_code == 503 and resp.get_json()["status"] == "unavailable"


@pytest.mark.parametrize("role", sorted(ROLE_LANDING))
def test_each_role_logs_in_and_lands_on_its_page(server, role):
    dept = "330106-CGJ" if role == "department" else None
    add_user(server, f"u-{role}", role, dept)
    client = server.test_client()
    resp = post_login(client, f"u-{role}")
    assert resp.status_code == 302 and resp.headers["Location"] == ROLE_LANDING[role]
    assert client.get("/").headers["Location"] == ROLE_LANDING[role]
    assert client.get("/wall").status_code == 200  # the Dash index, not a redirect


def test_a_wrong_password_is_refused_with_a_clear_message(server):
    add_user(server, "alice", "dispatcher")
    resp = post_login(server.test_client(), "alice", "nope-nope")
    assert resp.status_code == 401
    assert "用户名或密码不正确" in resp.get_data(as_text=True)
    resp = post_login(server.test_client(), "nobody")
    assert resp.status_code == 401


def test_login_never_redirects_to_another_site(server):
    add_user(server, "bob", "leader")
    resp = post_login(server.test_client(), "bob", next="//evil.example/x")
    assert resp.headers["Location"] == "/brief"
    resp = post_login(server.test_client(), "bob", next="/dispatch?view=red")
    assert resp.headers["Location"] == "/dispatch?view=red"


def test_logout_ends_the_session(server):
    client = login(server, "carol", "viewer")
    assert client.get("/_dash-layout").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf_token(client)}).headers["Location"] == "/login"
    assert client.get("/_dash-layout").status_code == 401


def test_a_session_cookie_set_again_after_its_logout_is_refused_and_other_sessions_live_on(server):
    """An answer still in flight at the logout sets the old cookie again (each answer renews it), or
    someone replays a copied cookie: the logged-out session stays dead; the user's other browser
    is not logged out."""
    client = login(server, "erin", "dispatcher")
    other = server.test_client()
    post_login(other, "erin")
    before = client.get_cookie("session").value
    assert client.post("/logout", data={"csrf_token": csrf_token(client)}).headers["Location"] == "/login"
    client.set_cookie("session", before)
    assert client.get("/_dash-layout").status_code == 401
    assert other.get("/_dash-layout").status_code == 200


def test_passwords_are_stored_as_argon2_hashes(server):
    add_user(server, "dave", "inspector")
    with get_db(server).session_scope() as s:
        from sqlalchemy import select
        user = s.scalar(select(User).where(User.username == "dave"))
        assert user.password_hash.startswith("$argon2") and PASSWORD not in user.password_hash


def test_create_user_cli_creates_a_department_user(server):
    runner = server.test_cli_runner()
    out = runner.invoke(args=["create-user", "xihu", "--role", "department", "--department", "330106-CGJ",
                              "--password-stdin"], input="a-long-password\n")
    assert out.exit_code == 0, out.output
    resp = post_login(server.test_client(), "xihu", "a-long-password")
    assert resp.headers["Location"] == "/dispatch"
    bad = runner.invoke(args=["create-user", "x2", "--role", "department", "--password-stdin"],
                        input="a-long-password\n")
    assert bad.exit_code != 0 and "department" in bad.output
    unknown = runner.invoke(args=["create-user", "x3", "--role", "department", "--department", "NOPE",
                                  "--password-stdin"], input="a-long-password\n")
    assert unknown.exit_code != 0 and "NOPE" in unknown.output


def test_create_user_cli_prompts_twice_and_warns_about_a_password_argument(server, monkeypatch):
    runner = server.test_cli_runner()
    # DESIGN §8 keeps --password for old scripts; it works, with a warning, and the policy still applies
    old = runner.invoke(args=["create-user", "yan0", "--role", "viewer", "--password", "Plum-tree-harbour-42"])
    assert old.exit_code == 0 and "WARNING: --password puts the password on the command line" in old.output
    weak = runner.invoke(args=["create-user", "yan1", "--role", "viewer", "--password", "12345678"])
    assert weak.exit_code != 0
    answers = iter(["a-long-password", "a-long-password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    out = runner.invoke(args=["create-user", "yan", "--role", "viewer"])
    assert out.exit_code == 0, out.output
    answers = iter(["a-long-password", "another-long-one"])
    differ = runner.invoke(args=["create-user", "yan2", "--role", "viewer"])
    assert differ.exit_code != 0 and "differ" in differ.output


def test_create_user_cli_refuses_a_common_password(server):
    out = server.test_cli_runner().invoke(args=["create-user", "zed", "--role", "viewer", "--password-stdin"],
                                          input="qwertyuiop\n")
    assert out.exit_code != 0 and "password" in out.output


def test_api_tokens_are_shown_once_and_can_be_revoked(server):
    add_user(server, "system-x", "department", "330106-CGJ")
    runner = server.test_cli_runner()
    out = runner.invoke(args=["create-token", "system-x"])
    assert out.exit_code == 0
    token = out.output.strip().splitlines()[-1]
    client = server.test_client()
    # a valid bearer token passes the gate (the layout answers), a revoked one does not
    assert client.get("/_dash-layout", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert runner.invoke(args=["revoke-token", "system-x"]).output.startswith("1 token")
    assert client.get("/_dash-layout", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def _dash_post(client, output: str, inputs: list, state: list | None = None):
    body = {"output": output, "outputs": [{"id": o.split(".")[0].lstrip("."), "property": o.split(".")[1]}
                                          for o in output.strip(".").split("...")],
            "inputs": inputs, "state": state or [], "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]}
    return client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")


def test_a_viewer_cannot_pull_the_brief_through_a_crafted_callback(server):
    store = {"from": "2026-11-01T00:00:00+08:00", "to": "2026-12-01T00:00:00+08:00",
             "as_of": "2026-11-18T10:00:00+08:00", "preset": "month"}
    output = "..brief-body.children...brief-period-text.children...brief-pdf.href...brief-xlsx.href.."
    viewer = login(server, "vic", "viewer")
    viewer.get("/_dash-layout")
    resp = _dash_post(viewer, output, [{"id": "brief-period", "property": "data", "value": store}])
    assert resp.status_code == 204  # PreventUpdate: nothing sent
    leader = login(server, "lea", "leader")
    resp = _dash_post(leader, output, [{"id": "brief-period", "property": "data", "value": store}])
    assert resp.status_code == 200 and "brief-case-cards" in resp.get_data(as_text=True)