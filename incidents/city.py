"""The city the domain works for — the loaded pack, its working calendar and its case rules —
handed in by the composition root (``app.py``), as cosmicpython's ``bootstrap.py`` hands handlers
their dependencies: the domain never looks them up in a web framework.

Several apps (cities, databases) may live in one process — the tests build many, two at a time in
some — so the city is a context variable: the root hands in its app's city whenever that app's
context is entered and takes it back when it is left. The object handed in has ``pack``,
``calendar`` (:class:`incidents.sla.WorkCalendar`) and ``rules`` (:class:`incidents.services.CaseRules`).
"""
from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

_current: ContextVar[Any] = ContextVar("cityops_city")


def hand_in(city: Any) -> Token:
    """Make ``city`` the current one; give the token back to :func:`take_back`."""
    return _current.set(city)


def take_back(token: Token) -> None:
    """The city before :func:`hand_in` is current again."""
    try:
        _current.reset(token)
    except (ValueError, RuntimeError):
        pass   # left in another context than it was entered in: nothing of this one to restore


def current() -> Any:
    """The city handed in for this context (an app context of ``create_app()``)."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("no city handed to the domain: call this inside an app context of "
                           "app.create_app() (which hands in the pack, calendar and case rules)") from None
