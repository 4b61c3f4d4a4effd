"""Writes for Dash callbacks: one use case of ``incidents.services`` in its own transaction.
Pages open no sessions; they call these, which commit at the boundary (DESIGN §2, §10)."""
from __future__ import annotations

from datetime import datetime

from data_sources.db import session_scope
from incidents import services
from incidents.queries import case_rules


def perform(actor: services.Actor, incident_id: int, action: str, *, now: datetime, **fields) -> tuple[str, int]:
    """One ``services.perform``; answers the case's new (state, version); raises the lifecycle's errors."""
    with session_scope() as s:
        case = services.perform(s, case_rules(), actor, int(incident_id), action, now=now, **fields)
        return case.state, case.version


def acknowledge_alarm(actor: services.Actor, key: str, *, now: datetime) -> bool:
    with session_scope() as s:
        return services.acknowledge_alarm(s, actor, key, now)
