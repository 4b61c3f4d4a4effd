"""Users, passwords and API tokens. Passwords are hashed with Argon2 (argon2-cffi) and must pass
the password policy (length, and zxcvbn's estimate of how guessable it is)."""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta, timezone
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from incidents.lifecycle import ValidationFailed
from incidents.model import Role
from incidents.tables import ApiToken, Department, EndedSession, User

_hasher = PasswordHasher()
FEED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,32}$")
# verifying against this when the user does not exist (or is inactive) keeps the timing the same:
# it is made by the same hasher, so it carries the same Argon2 time, memory and parallelism cost
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_PASSWORD_LENGTH = 10
#: zxcvbn scores 0–4; 3 means "safely unguessable" online (≥ 10⁸ guesses): refuses "password-123"
MIN_PASSWORD_SCORE = 3
# common Chinese (pinyin / number-pun) passwords that zxcvbn's English-centred lists miss
_COMMON_EXTRA = frozenset({
    "woaini1314", "woaini520", "5201314520", "1314520520", "a123456789", "aa123456789", "qq123456789",
    "abc123456789", "zhang123456", "wang123456", "li123456789", "iloveyou1314", "woaini123456",
    "admin123456", "cityops123", "cityops1234", "1qaz2wsx3edc", "1q2w3e4r5t", "qwe123456789",
})


def password_problem(password: str, *, username: str = "", display_name: str = "") -> Optional[str]:
    """Why ``password`` is refused, or None when it is acceptable.

    Refused: shorter than MIN_PASSWORD_LENGTH, a known common password, the username (or built on
    it), or anything zxcvbn estimates as guessable in under 10⁸ tries."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must be at least {MIN_PASSWORD_LENGTH} characters"
    lowered = password.lower()
    if lowered in _COMMON_EXTRA:
        return "password is a commonly used password"
    for name in (username, display_name):
        if name and len(name) >= 3 and name.lower() in lowered:
            return "password must not contain the username"
    from zxcvbn import zxcvbn  # imported here: its dictionaries take a moment to load
    result = zxcvbn(password, user_inputs=[n for n in (username, display_name, "cityops") if n])
    if result["score"] < MIN_PASSWORD_SCORE:
        warning = result["feedback"].get("warning") or "too easy to guess"
        return f"password is too easy to guess ({warning.rstrip('.')})"
    return None


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
    problem = password_problem(password, username=username, display_name=display_name)
    if problem:
        raise ValidationFailed(problem)
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
    else:
        user.session_epoch = (user.session_epoch or 0) + 1  # a reset password ends the old sessions
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
                 feeds: Optional[list[str]] = None, expires_at: Optional[datetime] = None) -> str:
    """Returns the token once; only its SHA-256 digest is stored. ``feeds``: the push feeds the
    token may write (None = not bound to feeds); ``expires_at``: when it stops working."""
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
                         feeds=bound, expires_at=expires_at))
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


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _live(row: Optional[ApiToken], now: datetime) -> bool:
    return row is not None and (row.expires_at is None or row.expires_at > now)


def token_and_user(session: Session, token: str, *,
                   now: Optional[datetime] = None) -> tuple[Optional[ApiToken], Optional[User]]:
    """The live token row and its active user; (None, None) when the token is unknown, revoked or
    expired, or its user inactive. The row says what the token is bound to (name, feeds)."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_digest(token),
                                                ApiToken.revoked_at.is_(None)))
    if not _live(row, now or _utcnow()):
        return None, None
    user = session.get(User, row.user_id)
    return (row, user) if user is not None and user.active else (None, None)


def user_for_token(session: Session, token: str, *, now: Optional[datetime] = None) -> Optional[User]:
    """The active user a token belongs to; None when the token is unknown, revoked or expired."""
    return token_and_user(session, token, now=now)[1]


def token_digest(token: str) -> str:
    return _token_digest(token)


def token_active(session: Session, digest: str, *, now: Optional[datetime] = None) -> bool:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None)))
    return _live(row, now or _utcnow())


def session_epoch(session: Session, user_id: int) -> Optional[int]:
    return session.scalar(select(User.session_epoch).where(User.id == user_id))


def end_all_sessions(session: Session, username: str) -> int:
    """"Log out everywhere": every session opened before this call is refused from now on.
    Returns the user's new epoch."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise ValidationFailed(f"no user {username!r}")
    user.session_epoch = (user.session_epoch or 0) + 1
    session.flush()
    return user.session_epoch


def new_session_id() -> str:
    """The id a browser session carries in its signed cookie, for :func:`end_session`."""
    return secrets.token_urlsafe(18)


def end_session(session: Session, sid: str, *, now: datetime, keep: timedelta) -> None:
    """A logout: this browser session's id is refused from now on (for ``keep``, the longest a
    session can live; older ends are forgotten here)."""
    session.execute(delete(EndedSession).where(EndedSession.ended_at < now - keep))
    if session.get(EndedSession, sid) is None:
        session.add(EndedSession(sid=sid, ended_at=now))
        session.flush()


def session_ended(session: Session, sid: Optional[str]) -> bool:
    return bool(sid) and session.get(EndedSession, sid) is not None


def create_kiosk(session: Session, name: str, *, now: datetime, days: Optional[float] = None) -> str:
    """A read-only wall PC: a viewer user ``kiosk-<name>`` that nobody types a password for, and a
    token for the wall URL, valid ``days`` days (None = until revoked). Revoking the token
    (revoke-token kiosk-<name>) or its expiry ends its sessions too."""
    if days is not None and not 0 < days <= 3650:
        raise ValidationFailed("--days must be between 0 and 3650")
    username = f"kiosk-{name}"
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        create_user(session, username, Role.VIEWER, password=secrets.token_urlsafe(24), now=now,
                    display_name=f"大屏 {name}")
    elif user.role != Role.VIEWER:
        raise ValidationFailed(f"{username} exists and is not a viewer")
    expires_at = now + timedelta(days=days) if days is not None else None
    return create_token(session, username, now=now, name="kiosk", expires_at=expires_at)
