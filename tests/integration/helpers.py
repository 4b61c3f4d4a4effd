"""Helpers for integration tests: users with known passwords, logged-in clients, clocks."""
from __future__ import annotations

from datetime import datetime, timezone

from data_sources.db import get_db
from incidents import auth

PASSWORD = "correct-horse-battery"
NOW = datetime(2026, 11, 18, 2, 0, tzinfo=timezone.utc)  # Wed 10:00 in Hangzhou


def add_user(server, username: str, role: str, department: str | None = None) -> None:
    with get_db(server).session_scope() as s:
        auth.create_user(s, username, role, password=PASSWORD, now=NOW, department_code=department,
                         replace=True)


def login(server, username: str, role: str, department: str | None = None):
    add_user(server, username, role, department)
    client = server.test_client()
    resp = client.post("/login", data={"username": username, "password": PASSWORD})
    assert resp.status_code == 302, resp.data
    return client
