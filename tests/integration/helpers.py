"""Helpers for integration tests: users with known passwords, logged-in clients, clocks."""
from __future__ import annotations

import re
from datetime import datetime, timezone

from data_sources.store.db import get_db
from incidents import auth

PASSWORD = "correct-horse-battery"
NOW = datetime(2026, 11, 18, 2, 0, tzinfo=timezone.utc)  # Wed 10:00 in Hangzhou
WEST_LAKE = (120.1593, 30.2585)


def push_record(external_id: str, *, reported_at: str, label: object = None, **fields) -> dict:
    """A record as a feed pushes it (native mapping): road damage "道路破损 LABEL" (default label: the
    external id) reported at West Lake; ``fields`` replace or add to it."""
    return {"external_id": external_id, "title": f"道路破损 {external_id if label is None else label}",
            "category_code": "C0101", "reported_at": reported_at, "lon": WEST_LAKE[0], "lat": WEST_LAKE[1],
            **fields}


def add_user(server, username: str, role: str, department: str | None = None) -> None:
    with get_db(server).session_scope() as s:
        auth.create_user(s, username, role, password=PASSWORD, now=NOW, department_code=department,
                         replace=True)


def csrf_token(client) -> str:
    """The CSRF token the login page gives this client's session (as a browser would read it)."""
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def post_login(client, username: str, password: str = PASSWORD, *, environ_base: dict | None = None, **form):
    """POST /login the way the login page does: with the form's CSRF token (environ_base: e.g. the
    client's REMOTE_ADDR)."""
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf_token(client), **form},
                       environ_base=environ_base or {})


def login(server, username: str, role: str, department: str | None = None):
    add_user(server, username, role, department)
    client = server.test_client()
    resp = post_login(client, username)
    assert resp.status_code == 302, resp.data
    return client


def count_statements(server) -> dict:
    """SQL statements sent from now on, on the write pool and the read models' pool alike: ``["q"]``."""
    from sqlalchemy import event
    db = get_db(server)
    n = {"q": 0}

    def _count(*_a, **_k):
        n["q"] += 1
    for engine in {id(e): e for e in (db.engine, db.read_engine)}.values():
        event.listen(engine, "before_cursor_execute", _count)
    return n
