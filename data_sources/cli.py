"""Flask CLI commands (`flask --app app …`), registered by app.py."""
from __future__ import annotations

import getpass
import time
from datetime import datetime, timezone

import click
from flask import Flask

from data_sources.db import session_scope
from incidents.lifecycle import DomainError


def _now() -> datetime:
    return datetime.now(timezone.utc)


def register(server: Flask) -> None:
    @server.cli.command("init-db")
    @click.option("--demo/--no-demo", default=None,
                  help="Seed demo history and demo users (default: only on the embedded SQLite default).")
    def init_db_cmd(demo):
        """Apply migrations and load the configured city pack."""
        from data_sources.seed import init_db
        init_db(server, echo=click.echo, seed_demo=demo)

    @server.cli.command("create-user")
    @click.argument("name")
    @click.option("--role", required=True, type=click.Choice(["viewer", "leader", "dispatcher", "department",
                                                             "inspector", "admin"]))
    @click.option("--department", default=None, help="Department code (for department users).")
    @click.option("--password", default=None, help="Prompted for when not given.")
    @click.option("--replace", is_flag=True, help="Reset an existing user's role and password.")
    def create_user_cmd(name, role, department, password, replace):
        """Create a user (or, with --replace, reset one)."""
        from incidents.auth import create_user
        if password is None:
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Repeat: "):
                raise click.ClickException("the passwords differ")
        try:
            with session_scope(server) as s:
                create_user(s, name, role, password=password, now=_now(), department_code=department,
                            replace=replace)
        except DomainError as exc:
            raise click.ClickException(str(exc))
        click.echo(f"user {name} ({role}) saved")

    @server.cli.command("create-token")
    @click.argument("user")
    @click.option("--name", default="", help="What the token is for.")
    @click.option("--feed", "feeds", multiple=True,
                  help="Bind the token to this push feed (repeatable): it may write only these feeds.")
    def create_token_cmd(user, name, feeds):
        """Print a new API token for USER (shown once; only its hash is kept)."""
        from incidents.auth import create_token
        try:
            with session_scope(server) as s:
                token = create_token(s, user, now=_now(), name=name, feeds=list(feeds) or None)
        except DomainError as exc:
            raise click.ClickException(str(exc))
        click.echo(token)

    @server.cli.command("create-kiosk")
    @click.argument("name")
    def create_kiosk_cmd(name):
        """Print a wall URL for a kiosk PC (read-only; revoke with revoke-token kiosk-NAME)."""
        from incidents.auth import create_kiosk
        try:
            with session_scope(server) as s:
                token = create_kiosk(s, name, now=_now())
        except DomainError as exc:
            raise click.ClickException(str(exc))
        click.echo(f"http://{server.config['HOST']}:{server.config['PORT']}/wall?kiosk={token}")

    @server.cli.command("revoke-token")
    @click.argument("user")
    def revoke_token_cmd(user):
        """Revoke every API token of USER."""
        from incidents.auth import revoke_tokens
        try:
            with session_scope(server) as s:
                n = revoke_tokens(s, user, now=_now())
        except DomainError as exc:
            raise click.ClickException(str(exc))
        click.echo(f"{n} token(s) revoked")

    @server.cli.command("simulate")
    @click.option("--once", is_flag=True, help="One tick, then exit.")
    def simulate_cmd(once):
        """Run the demo feed in the foreground."""
        from data_sources.feeds import simulator
        sim = simulator.build(server)
        while True:
            with session_scope(server) as s:
                out = simulator.tick(s, sim, _now())
            click.echo(f"{_now():%H:%M:%S} {out}")
            if once:
                return
            time.sleep(float(server.config["DEMO_TICK_SECONDS"]))

    from data_sources import cli_feeds
    cli_feeds.register(server)
