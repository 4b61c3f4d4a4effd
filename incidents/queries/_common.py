"""SQL pieces every read model shares: the state groups as stored values, the data version the
memo keys carry, time buckets, the traffic light as SQL, and the city handed in (``incidents.city``)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, null

from data_sources.store.db import read_scope
from incidents import city
from incidents.model import Light, State
from incidents.services import data_version
from incidents.tables import Incident

#: states of an open case, as stored (``State.open_states``)
OPEN_STATES = [s.value for s in State.open_states()]
#: states whose deadline clock runs: the case is with a department (``State.running_states``)
RUNNING_STATES = [s.value for s in State.running_states()]


def runtime():
    """The loaded pack, calendar and case rules handed in by the composition root (incidents.city)."""
    return city.current()


def current_version() -> int:
    """The data version as the read models see it (on the read pool, a replica's when there is one)."""
    with read_scope() as s:
        return data_version(s)


def time_bucket(now: datetime, seconds: int = 60) -> int:
    return int(now.timestamp()) // seconds


def light_expr(now: datetime):
    """SQL CASE giving the traffic light of a case with a running clock: its 处置 deadline's — or,
    while it has none (the pack's 处置 clock starts at the 签收 and the department has not signed),
    its 签收 deadline's: red past it, else green (the 80 % yellow of ``sla.sign_for_light`` needs the
    calendar: the screens and the API's ``sign_light`` show it)."""
    return case((Incident.deadline.is_(None), case((Incident.sign_due < now, Light.RED.value),
                                                   else_=Light.GREEN.value)),
                (Incident.deadline < now, Light.RED.value),
                (Incident.warn_at < now, Light.YELLOW.value),
                else_=Light.GREEN.value)




def running_light_expr(now: datetime):
    """The traffic light of a case with a running clock, NULL for every other case."""
    return case((Incident.state.in_(RUNNING_STATES), light_expr(now)), else_=null())
