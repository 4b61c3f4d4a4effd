"""Flask CLI commands (``flask --app app …``), one module per subject, registered by app.py:

    database.py  init-db, facts rebuild
    users.py     create-user, logout-everywhere, create-token, create-kiosk, revoke-token
    feeds.py     import incidents|service-rates|kpis, replay, quarantine list|show|retry, simulate
    packs.py     pack init
    worker.py    worker (the feeds of feeds.toml and the scheduled jobs)
"""
from __future__ import annotations

from flask import Flask

from data_sources.cli import database, feeds, packs, users, worker


def register(server: Flask) -> None:
    database.register(server)
    users.register(server)
    feeds.register(server)
    packs.register(server)
    worker.register(server)
