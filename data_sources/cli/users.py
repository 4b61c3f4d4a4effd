"""Users and tokens: ``create-user``, ``logout-everywhere``, ``create-token``, ``create-kiosk``,
``revoke-token``."""
from __future__ import annotations

import getpass
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

import click
from flask import Flask
from sqlalchemy.orm import Session

from data_sources.store.db import session_scope
from incidents.lifecycle import DomainError
from incidents.model import Role


def _now() -> datetime:
    return datetime.now(timezone.utc)


@contextmanager
def _command_session(server: Flask) -> Iterator[Session]:
    """The command's one transaction. A refused command (unknown user, weak password …) is a
    one-line error, not a traceback."""
    try:
        with session_scope(server) as s:
            yield s
    except DomainError as exc:
        raise click.ClickException(str(exc))


def register(server: Flask) -> None:
    @server.cli.command("create-user")
    @click.argument("name")
    @click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
    @click.option("--department", default=None, help="Department code (for department users).")
    @click.option("--password-stdin", is_flag=True,
                  help="Read the password from the first line of standard input instead of prompting.")
    @click.option("--password", "password_arg", default=None,
                  help="Insecure (ps and shell history keep it); kept for old scripts: prefer the prompt or "
                       "--password-stdin.")
    @click.option("--replace", is_flag=True, help="Reset an existing user's role and password "
                                                  "(ends the user's open sessions).")
    def create_user_cmd(name, role, department, password_stdin, password_arg, replace):
        """Create a user (or, with --replace, reset one). The password is prompted for (hidden,
        twice) or read from standard input: never on the command line, where ps and shell history
        would keep it."""
        from incidents.auth import create_user, password_problem
        if password_arg is not None:
            # the way `docker login --password` does it: still works, says why not to
            click.echo("WARNING: --password puts the password on the command line (ps, shell history); "
                       "use the prompt or --password-stdin", err=True)
            password = password_arg
        elif password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            for _ in range(3):
                password = getpass.getpass("Password: ")
                problem = password_problem(password, username=name)
                if not problem:
                    break
                click.echo(problem, err=True)  # ask again rather than fail after two entries
            else:
                raise click.ClickException(problem)
            if password != getpass.getpass("Repeat: "):
                raise click.ClickException("the passwords differ")
        with _command_session(server) as s:
            create_user(s, name, role, password=password, now=_now(), department_code=department,
                        replace=replace)
        click.echo(f"user {name} ({role}) saved")

    @server.cli.command("logout-everywhere")
    @click.argument("user")
    def logout_everywhere_cmd(user):
        """End every open session of USER, on every browser (API tokens stay: see revoke-token)."""
        from incidents.auth import end_all_sessions
        with _command_session(server) as s:
            end_all_sessions(s, user)
        click.echo(f"every session of {user} ended")

    @server.cli.command("create-token")
    @click.argument("user")
    @click.option("--name", default="", help="What the token is for.")
    @click.option("--feed", "feeds", multiple=True,
                  help="Bind the token to this push feed (repeatable): it may write only these feeds.")
    def create_token_cmd(user, name, feeds):
        """Print a new API token for USER (shown once; only its hash is kept)."""
        from incidents.auth import create_token
        with _command_session(server) as s:
            token = create_token(s, user, now=_now(), name=name, feeds=list(feeds) or None)
        click.echo(token)

    @server.cli.command("create-kiosk")
    @click.argument("name")
    @click.option("--days", type=float, default=None,
                  help="The URL works this many days (default: until revoked).")
    def create_kiosk_cmd(name, days):
        """Print a wall URL for a kiosk PC (read-only; revoke with revoke-token kiosk-NAME). The wall
        exchanges the token for a session cookie on first load and drops it from the address bar."""
        from incidents.auth import create_kiosk
        with _command_session(server) as s:
            token = create_kiosk(s, name, now=_now(), days=days)
        click.echo(f"http://{server.config['HOST']}:{server.config['PORT']}/wall?kiosk={token}")

    @server.cli.command("revoke-token")
    @click.argument("user")
    def revoke_token_cmd(user):
        """Revoke every API token of USER."""
        from incidents.auth import revoke_tokens
        with _command_session(server) as s:
            n = revoke_tokens(s, user, now=_now())
        click.echo(f"{n} token(s) revoked")
