"""Users, passwords and API tokens. Passwords are hashed with Argon2 (argon2-cffi)."""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from incidents.lifecycle import ValidationFailed
from incidents.model import Role
from incidents.tables import ApiToken, Department, User

_hasher = PasswordHasher()
FEED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,32}$")
# verifying against this when the user does not exist keeps the timing the same
_DUMMY_HASH = _hasher.hash("not-a-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def create_user(session: Session, username: str, role: str, *, password: str, now: datetime,
                department_code: Optional[str] = None, display_name: str = "",
                replace: bool = False) -> User:
    try:
        role = Role(role)
    except ValueError:
        raise ValidationFailed(f"unknown role {role!r}; expected one of {', '.join(Role)}") from None
    if not username or len(username) > 60:
        raise ValidationFailed("username must be 1–60 characters")
    if len(password) < 8:
        raise ValidationFailed("password must be at least 8 characters")
    if role == Role.DEPARTMENT and not department_code:
        raise ValidationFailed("a department user needs --department CODE")
    if department_code and session.get(Department, department_code) is None:
        raise ValidationFailed(f"unknown department {department_code!r}")
    user = session.scalar(select(User).where(User.username == username))
    if user is not None and not replace:
        raise ValidationFailed(f"user {username!r} exists already")
    if user is None:
        user = User(username=username, created_at=now)
        session.add(user)
    user.role = role
    user.password_hash = hash_password(password)
    user.department_code = department_code
    user.display_name = display_name or username
    user.active = True
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> Optional[User]:
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, username: str, *, now: datetime, name: str = "",
                 feeds: Optional[list[str]] = None) -> str:
    """Returns the token once; only its SHA-256 digest is stored. ``feeds``: the push feeds the
    token may write (None = not bound to feeds)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise ValidationFailed(f"no user {username!r}")
    bound = None
    if feeds:
        bad = [f for f in feeds if not FEED_NAME.match(f)]
        if bad:
            raise ValidationFailed(f"feed names are 1-33 letters, digits, '_', '-' or '.': {', '.join(bad)}")
        bound = ",".join(sorted(set(feeds)))
        if len(bound) > 400:
            raise ValidationFailed("too many feeds for one token")
    token = "cot_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=_token_digest(token), name=name, created_at=now,
                         feeds=bound))
    session.flush()
    return token


def revoke_tokens(session: Session, username: str, *, now: datetime) -> int:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise ValidationFailed(f"no user {username!r}")
    tokens = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id,
                                                    ApiToken.revoked_at.is_(None))).all()
    for t in tokens:
        t.revoked_at = now
    return len(tokens)


def user_for_token(session: Session, token: str) -> Optional[User]:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_digest(token),
                                                ApiToken.revoked_at.is_(None)))
    if row is None:
        return None
    user = session.get(User, row.user_id)
    return user if user is not None and user.active else None


def token_digest(token: str) -> str:
    return _token_digest(token)


def token_active(session: Session, digest: str) -> bool:
    return session.scalar(select(ApiToken.id).where(ApiToken.token_hash == digest,
                                                    ApiToken.revoked_at.is_(None))) is not None


def create_kiosk(session: Session, name: str, *, now: datetime) -> str:
    """A read-only wall PC: a viewer user ``kiosk-<name>`` that nobody types a password for, and a
    token for the wall URL. Revoking the token (revoke-token kiosk-<name>) ends its sessions too."""
    username = f"kiosk-{name}"
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        create_user(session, username, Role.VIEWER, password=secrets.token_urlsafe(24), now=now,
                    display_name=f"大屏 {name}")
    elif user.role != Role.VIEWER:
        raise ValidationFailed(f"{username} exists and is not a viewer")
    return create_token(session, username, now=now, name="kiosk")
