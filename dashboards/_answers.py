"""Callbacks whose rendered answer many screens share (data_sources.web.answers serves it).

    @dash.callback(...)
    @shared(refresh_key)
    def refresh(n, layers, ...): ...

``refresh_key`` takes the callback's arguments and answers the key of its answer — everything the
answer depends on — as a pair ``(asked, moment)``: what is asked (inputs, language, what the
caller's role shows) and the data clock it is answered at (data version, refresh bucket); or None
when this request must not share one (the caller may not see the page, an input is out of
bounds). It runs on every request, before any cached answer is served. While one request
computes the answer of a new moment, others asking the same get the latest answer to the same
question (one refresh older) instead of waiting.
"""
from __future__ import annotations

from typing import Callable, Optional

from flask import g

_ATTRIBUTE = "shared_answer_key"


def shared(key_fn: Callable[..., Optional[tuple[tuple, tuple]]]):
    def mark(callback):
        setattr(callback, _ATTRIBUTE, key_fn)   # dash.callback's wrapper keeps it (functools.wraps)
        return callback
    return mark


def key_of(callback) -> Optional[Callable[..., Optional[tuple]]]:
    """The key function of a registered Dash callback, None when its answer is not shared."""
    return getattr(callback, _ATTRIBUTE, None)


def keep_private() -> None:
    """This request's answer is for this caller alone (e.g. a stale banner naming the time its own
    screen last had data): it is not stored for others."""
    g.cityops_answer_private = True


def is_private() -> bool:
    return bool(g.get("cityops_answer_private"))
