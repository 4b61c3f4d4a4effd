"""Writes for Dash callbacks: one use case of ``incidents.services`` in its own transaction.
Pages open no sessions; they call these, which commit at the boundary (DESIGN §2, §10)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from data_sources.store.db import session_scope
from incidents import services
from incidents.queries.reference import case_rules


@dataclass(frozen=True)
class Done:
    """What an action did, as plain values (the session is gone when the page reads it)."""

    state: str
    version: int
    request_id: Optional[int] = None       # the request filed (pending) or decided, if any
    request_kind: Optional[str] = None     # extend | suspend
    request_status: Optional[str] = None   # pending | approved | rejected


def act(actor: services.Actor, incident_id: int, action: str, *, now: datetime, **fields) -> Done:
    """One ``services.act``: the case's new state and version, and the request it filed or decided."""
    with session_scope() as s:
        out = services.act(s, case_rules(), actor, int(incident_id), action, now=now, **fields)
        req = out.request
        return Done(out.case.state, out.case.version, req.id if req else None, req.kind if req else None,
                    req.status if req else None)


def acknowledge_alarm(actor: services.Actor, key: str, *, now: datetime) -> bool:
    with session_scope() as s:
        return services.acknowledge_alarm(s, actor, key, now)
