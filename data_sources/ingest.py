"""Nothing lost: parse -> validate -> upsert by (source, external_id) -> quarantine.

``ingest`` takes records from any feed (``(raw, line_no)`` pairs, see
:mod:`data_sources.feeds.base`) and a mapping, and in batches of ``batch_size`` records per
transaction:

* a new record becomes a case whose timeline is rebuilt from the timestamps the source has
  (report and register at created, dispatch if the source has it with a department, sign if in
  progress, resolve and close at the closed date, void for duplicates), through
  ``incidents.services.apply_action`` with actor ``import:<mapping>``;
* a known record whose content changed updates the case and appends events (an ``update`` event
  with the changed fields, then the actions that bring the case to the source's state); an
  unchanged one is only counted, so importing the same file twice changes nothing;
* a rejected record (and a second record with the same external id in one run) goes to the
  quarantine table with the raw record and one reason.

Every run writes a ``feed_runs`` row with received = inserted + updated + unchanged + quarantined,
kept up to date batch by batch; the data version is bumped once per batch.

How it stays fast (the bulk of a first import is new cases): a batch looks its external ids up
with one query (plain rows, compared without ORM objects; only the changed cases are loaded as
ORM objects for the update path), locates all its new points at once (``AreaIndex.locate_many``),
builds each new case and its timeline as plain rows with ``services.transition`` on a draft
object (the very code ``services.apply_action`` runs on an ORM case; checked against that path by
tests/integration/test_ingest_fast_path.py) — and writes them with one bulk statement per table (``COPY`` on PostgreSQL, ``executemany``
elsewhere), values converted by the columns' own SQLAlchemy bind processors. ``fast_path=False``
builds new cases through ``services.apply_action`` on ORM objects instead: the reference.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from sqlalchemy import DateTime, String, any_, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from data_sources.feeds.base import EARLIEST, UNREADABLE, FeedContext, IncomingCase, Rejected
from data_sources.packs import Pack
from incidents import bounds, facts, media, permissions, services
from incidents.lifecycle import DomainError, PermissionDenied
from incidents.model import Action, State
from incidents.services import CaseRules
from incidents.tables import CaseAttachment, FeedRun, Incident, IncidentEvent, Quarantine

BATCH_SIZE = 1000
_EVENT_COLUMNS = ("incident_id", "at", "actor", "action", "from_state", "to_state", "department_code", "note",
                  "payload")
_CASE_COLUMNS = tuple(c.key for c in Incident.__table__.columns if c.key != "id")
_ORDER = [State.REPORTED, State.REGISTERED, State.DISPATCHED, State.IN_PROGRESS, State.RESOLVED, State.CLOSED]
# what _differences reads of a known case: fetched as plain rows, no ORM objects for unchanged cases
_COMPARED = ("id", "external_id", "title", "description", "address", "lon", "lat", "category_code", "channel",
             "priority", "reported_at", "state", "closed_at", "department_code", "source_deadline")
_IN_CHUNK = 500


@dataclass
class Item:
    raw: dict
    line: int
    retry_of: Optional[int] = None      # a quarantine row being retried


@dataclass
class RunSummary:
    """What the CLI prints: the feed run's counts plus the top quarantine reasons."""

    run: FeedRun
    reasons: Counter = field(default_factory=Counter)
    #: records kept despite a fault (location unknown, closed before created, unknown type), by kind
    flags: Counter = field(default_factory=Counter)


def _scope_factory(target) -> Callable[[], contextlib.AbstractContextManager[Session]]:
    if isinstance(target, Session):
        @contextlib.contextmanager
        def same():
            yield target
            target.flush()
        return same
    if hasattr(target, "session_scope"):
        return target.session_scope
    if callable(target):
        return target
    raise TypeError("ingest needs a Session, a Database or a session-scope factory")


def _reason_kind(reason: str) -> str:
    """A reason without its record-specific details, for summaries."""
    head = reason.split(" (")[0]
    for sep in (" '", ' "'):
        if sep in head:
            head = head.split(sep)[0]
    return head[:80]


def _raw_json(item: Item, source: str, mapping: str) -> str:
    env = {"record": item.raw, "line": item.line, "source": source}
    if mapping != source:
        env["mapping"] = mapping   # a feed named otherwise (push, pull, replay): retry needs the mapping
    text = json.dumps(env, ensure_ascii=False, default=str)
    # an unpaired surrogate cannot be stored as UTF-8: then the record is kept \u-escaped
    return json.dumps(env, default=str) if bounds.text_fault(text) else text


# --------------------------------------------------------------------------- timeline

def _plan(inc: IncomingCase) -> list[tuple[Action, datetime, dict]]:
    """The actions that take a new case from reported to the source's state."""
    steps: list[tuple[Action, datetime, dict]] = []
    target = inc.state
    if target == State.VOIDED:
        return [(Action.VOID, inc.closed_at or inc.reported_at, {"reason": inc.void_reason or "invalid",
                                                                  "note": inc.source_status})]
    steps.append((Action.REGISTER, inc.reported_at, {}))
    steps += _forward(State.REGISTERED, inc)
    return steps


def _forward(current: State, inc: IncomingCase) -> list[tuple[Action, datetime, dict]]:
    target = inc.state
    if target not in _ORDER or current not in _ORDER or _ORDER.index(target) <= _ORDER.index(current):
        return []
    steps = []
    cur = _ORDER.index(current)
    end = inc.closed_at or inc.resolved_at or inc.reported_at
    dispatched = inc.dispatched_at or inc.reported_at
    if cur < _ORDER.index(State.REGISTERED):
        steps.append((Action.REGISTER, inc.reported_at, {}))
    if cur < _ORDER.index(State.DISPATCHED) <= _ORDER.index(target):
        steps.append((Action.DISPATCH, min(dispatched, end), {"department": inc.department_code}))
    if target == State.IN_PROGRESS and cur < _ORDER.index(State.IN_PROGRESS):
        steps.append((Action.SIGN, inc.signed_at or dispatched, {}))
    if _ORDER.index(target) >= _ORDER.index(State.RESOLVED) and cur < _ORDER.index(State.RESOLVED):
        steps.append((Action.RESOLVE, inc.resolved_at or end, {"note": inc.description[:500]}))
    if target == State.CLOSED and cur < _ORDER.index(State.CLOSED):
        steps.append((Action.VERIFY_PASS, inc.closed_at or end, {}))
    return steps


def _snapshot(inc: IncomingCase) -> dict:
    return {"title": inc.title, "description": inc.description, "address": inc.address, "lon": inc.lon,
            "lat": inc.lat, "category_code": inc.category_code, "channel": inc.channel.value,
            "priority": inc.priority.value, "reported_at": inc.reported_at}


def _differences(case: Incident, inc: IncomingCase) -> dict:
    diff = {k: v for k, v in _snapshot(inc).items() if getattr(case, k) != v}
    if case.state != inc.state.value:
        diff["state"] = inc.state.value
    elif inc.state == State.CLOSED and case.closed_at != inc.closed_at:
        diff["closed_at"] = inc.closed_at
    if case.source_deadline != inc.deadline:
        diff["source_deadline"] = inc.deadline
    if (inc.department_code and case.department_code and case.department_code != inc.department_code
            and inc.state in (State.DISPATCHED, State.IN_PROGRESS, State.RESOLVED, State.CLOSED)):
        diff["department_code"] = inc.department_code
    return diff


def _flagged(payload: dict, inc: IncomingCase) -> None:
    """What was wrong with a record kept anyway, and the source's type the mapping did not know."""
    if inc.flags:
        payload["flags"] = dict(inc.flags)
    if inc.source_type:
        payload["source_type"] = inc.source_type


def _jsonable(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


# --------------------------------------------------------------------------- new cases as plain rows

class _Draft:
    """A new case before it has a row: the columns of ``incidents`` as attributes, so that
    ``services.transition`` works on it as on an ``Incident``; ``vars(draft)`` is the row."""

    def __init__(self, **columns: Any):
        self.__dict__.update(columns)


def _bulk_insert(s: Session, table, columns: Sequence[str], rows: list[dict]) -> None:
    """One bulk write of ``rows`` (dicts with ``columns``) into ``table``, in the session's
    transaction: ``COPY … FROM STDIN`` on PostgreSQL (psycopg), the driver's ``executemany`` on
    SQLite, Core ``insert`` executemany elsewhere. Values go through the columns' SQLAlchemy
    bind processors first, so the stored values are those an ORM or Core insert would write.
    A unique violation is raised as SQLAlchemy's ``IntegrityError`` (the batch retries on it)."""
    if not rows:
        return
    conn = s.connection()
    dialect = conn.dialect
    if dialect.name not in ("postgresql", "sqlite") or (dialect.name == "postgresql" and dialect.driver != "psycopg"):
        s.execute(table.insert(), [{k: r[k] for k in columns} for r in rows])
        return
    values = list(zip(*(_bound(table.c[k], [r[k] for r in rows], dialect) for k in columns)))
    names = ", ".join(columns)
    driver = conn.connection.driver_connection
    if dialect.name == "postgresql":
        sql = f"COPY {table.name} ({names}) FROM STDIN"
    else:
        sql = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))})"
    try:
        if dialect.name == "postgresql":
            with driver.cursor() as cur, cur.copy(sql) as copy:
                for row in values:
                    copy.write_row(row)
        else:
            cur = driver.cursor()
            try:
                cur.executemany(sql, values)
            finally:
                cur.close()
    except dialect.loaded_dbapi.IntegrityError as exc:
        raise IntegrityError(sql, None, exc) from exc


def _bound(column, values: list, dialect) -> list:
    """``values`` of ``column`` as SQLAlchemy binds them (its type's bind processor, None included:
    a JSON column stores None as JSON ``null``); a timestamp is converted once per distinct value."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return values
    if not isinstance(getattr(column.type, "impl_instance", column.type), DateTime):
        return [process(v) for v in values]
    done: dict = {}
    out = []
    for v in values:
        try:
            out.append(done[v])
        except KeyError:
            out.append(done.setdefault(v, process(v)))
    return out


def _where_in(s: Session, column, values: Sequence) -> Iterator:
    """``column IN values`` as few clauses as the database likes: one ``= ANY(array)`` on
    PostgreSQL (one short statement however many values), chunks of ``IN (…)`` elsewhere."""
    values = list(values)
    if not values:
        return
    if s.get_bind().dialect.name == "postgresql":
        yield column == any_(bindparam("values", values, type_=ARRAY(column.type)))
        return
    for i in range(0, len(values), _IN_CHUNK):
        yield column.in_(values[i:i + _IN_CHUNK])


def _by_external_id(s: Session, source: str, external_ids: Sequence[str], columns: Sequence[str]) -> Iterator:
    """Rows (``columns`` of ``incidents``) of the cases of ``source`` with these external ids.

    On PostgreSQL one statement probes the unique (source, external_id) index once per id
    (``unnest`` × ``LATERAL … LIMIT 1``): a plain ``external_id = ANY(…)`` lets the planner
    prefer the (source, reported_at) index and filter every case of the source, batch after
    batch, when the table has no statistics yet (a first big import, autovacuum off) or runs a
    generic prepared plan. Elsewhere chunks of ``IN (…)`` (SQLite picks the unique index)."""
    cols = [getattr(Incident, k) for k in columns]
    external_ids = list(external_ids)
    if not external_ids:
        return
    if s.get_bind().dialect.name == "postgresql":
        ids = func.unnest(bindparam("external_ids", external_ids, type_=ARRAY(String()))) \
            .table_valued("ext").render_derived(name="wanted")
        one = select(*cols).where(Incident.source == source, Incident.external_id == ids.c.ext) \
            .limit(1).lateral("found")
        yield from s.execute(select(*[one.c[k] for k in columns]).select_from(ids).join(one, true()))
        return
    for i in range(0, len(external_ids), _IN_CHUNK):
        yield from s.execute(select(*cols).where(Incident.source == source,
                                                 Incident.external_id.in_(external_ids[i:i + _IN_CHUNK])))


# --------------------------------------------------------------------------- ingest

class _Run:
    def __init__(self, scope, rules: CaseRules, pack: Pack, mapping, feed_name: str, source: str,
                 ctx: FeedContext, now: datetime, run_id: int, fast_path: bool = True,
                 principal: Optional[services.Actor] = None, via: Optional[str] = None):
        self.scope, self.rules, self.pack, self.mapping = scope, rules, pack, mapping
        self.feed, self.source, self.ctx, self.now, self.run_id = feed_name, source, ctx, now, run_id
        self.fast_path = fast_path
        # who sends the records: None = the server's own feeds and CLI imports (the operator owns the
        # server); a user (push) = every resulting action is checked against incidents.permissions
        self.principal = principal
        self.actor = principal.username if principal is not None else f"import:{mapping.name}"
        self.via = via
        self.categories = {c.code: c for c in pack.categories}
        # routing is a pure function of the pack's rules: once per (category, district, grid) in a run
        self.route = functools.lru_cache(maxsize=65536)(rules.router.route)
        self.seen: dict[str, int] = {}
        self.counts = Counter()
        self.reasons: Counter = Counter()
        self.flags: Counter = Counter()
        self.last_record_at: Optional[datetime] = None

    # one batch = one transaction
    def batch(self, items: list[Item]) -> None:
        seen_before = dict(self.seen)
        for attempt in (1, 2):
            try:
                with self.scope() as s:
                    counts, reasons, flags = self._batch(s, items)
                    run = s.get(FeedRun, self.run_id)
                    for k, v in counts.items():
                        setattr(run, k, getattr(run, k) + v)
                    run.received += len(items)
                    run.last_record_at = self.last_record_at
                    run.heartbeat_at = datetime.now(timezone.utc)
                    assert run.received == run.inserted + run.updated + run.unchanged + run.quarantined, \
                        "feed run counts do not add up"
                    services.bump_data_version(s)
                self.counts.update(counts)
                self.reasons.update(reasons)
                self.flags.update(flags)
                return
            except IntegrityError:
                # another import inserted one of these external ids meanwhile: once more, as updates
                self.seen = dict(seen_before)
                if attempt == 2:
                    raise

    def _validate(self, items: list[Item]) -> tuple[list[tuple[Item, IncomingCase]], list[tuple[Item, str]]]:
        accepted: list[tuple[Item, IncomingCase]] = []
        rejected: list[tuple[Item, str]] = []
        for item in items:
            try:
                if UNREADABLE in item.raw:
                    raise Rejected(str(item.raw[UNREADABLE]))
                inc = self.mapping.to_case(item.raw, self.ctx)
            except Rejected as exc:
                rejected.append((item, exc.reason))
                continue
            except Exception as exc:  # a mapping bug must not stop the run: quarantine and go on
                rejected.append((item, f"mapping {self.mapping.name} failed: {type(exc).__name__}: {exc}"))
                continue
            first = self.seen.get(inc.external_id)
            if first is not None:
                rejected.append((item, f"duplicate external id {inc.external_id!r} in this feed run "
                                       f"(first on line {first})"))
                continue
            self.seen[inc.external_id] = item.line
            accepted.append((item, inc))
            if self.last_record_at is None or inc.reported_at > self.last_record_at:
                self.last_record_at = inc.reported_at
        return accepted, rejected

    def _known(self, s: Session, external_ids: list[str]) -> dict[str, Any]:
        """The cases of this source among ``external_ids``: plain rows of the compared columns."""
        return {row.external_id: row for row in _by_external_id(s, self.source, external_ids, _COMPARED)}

    def _batch(self, s: Session, items: list[Item]) -> tuple[Counter, Counter, Counter]:
        counts, reasons, flags = Counter(), Counter(), Counter()
        accepted, rejected = self._validate(items)

        known = self._known(s, [inc.external_id for _, inc in accepted])
        # only a case the source changed is loaded as an ORM object (the update path)
        changed_ids = [row.id for item, inc in accepted
                       if (row := known.get(inc.external_id)) is not None
                       and (not self.fast_path or _differences(row, inc))]
        cases: dict[int, Incident] = {}
        for clause in _where_in(s, Incident.id, changed_ids):
            for case in s.scalars(select(Incident).where(clause)):
                cases[case.id] = case
        areas = self._locate([inc for _, inc in accepted if inc.external_id not in known])

        new_cases, new_events = [], []
        for item, inc in accepted:
            row = known.get(inc.external_id)
            try:
                if row is None:
                    if self.fast_path:
                        c, evs = self._new_case(item, inc, *areas.get(inc.external_id, (None, None)))
                    else:
                        c, evs = self._new_case_via_services(item, inc)
                    new_cases.append(c)
                    new_events.append(evs)
                    counts["inserted"] += 1
                elif row.id in cases and self._update(s, cases[row.id], inc, item):
                    counts["updated"] += 1
                else:
                    counts["unchanged"] += 1
            except PermissionDenied as exc:
                rejected.append((item, f"not permitted: {exc.message}; the case was left unchanged"))
                continue
            except DomainError as exc:
                rejected.append((item, f"cannot apply the source's timeline: {exc}"))
                continue
            flags.update(inc.flags.keys())
            if item.retry_of:
                q = s.get(Quarantine, item.retry_of)
                q.status = "retried"
        if new_cases:
            if self.fast_path:
                self._insert_fast(s, new_cases, new_events)
            else:
                self._insert_reference(s, new_cases, new_events)
            links = {inc.external_id: inc.media_urls for _, inc in accepted if inc.media_urls}
            if links:
                self._attach_links(s, {c["external_id"]: links[c["external_id"]]
                                       for c in new_cases if c["external_id"] in links})
        # a record already waiting in quarantine (the same file imported again) keeps its one row
        ref = getattr(self.mapping, "ref", self.mapping.name)
        raws = {id(item): _raw_json(item, self.source, ref) for item, _ in rejected if not item.retry_of}
        waiting: dict[str, Quarantine] = {}
        values = list(set(raws.values()))
        for i in range(0, len(values), 200):
            for q in s.scalars(select(Quarantine).where(Quarantine.feed == self.feed, Quarantine.status == "new",
                                                        Quarantine.raw.in_(values[i:i + 200]))):
                waiting[q.raw] = q
        for item, reason in rejected:
            counts["quarantined"] += 1
            reasons[_reason_kind(reason)] += 1
            q = s.get(Quarantine, item.retry_of) if item.retry_of else waiting.get(raws[id(item)])
            if q is not None:
                q.reason, q.feed_run_id = reason, self.run_id
            else:
                q = Quarantine(feed_run_id=self.run_id, feed=self.feed, raw=raws[id(item)], reason=reason,
                               status="new", created_at=self.now)
                s.add(q)
                waiting[q.raw] = q
        s.flush()
        return counts, reasons, flags

    def _locate(self, incs: list[IncomingCase]) -> dict[str, tuple[Optional[str], Optional[str]]]:
        """District and grid of every new case of a batch, in one vectorised lookup."""
        placed = [inc for inc in incs if inc.lon is not None and inc.lat is not None]
        if not placed or not self.fast_path:
            return {}
        districts, grids = self.rules.areas.locate_many([inc.lon for inc in placed], [inc.lat for inc in placed])
        return {inc.external_id: (d, g) for inc, d, g in zip(placed, districts, grids)}

    def _attach_links(self, s: Session, links: dict[str, tuple[str, ...]]) -> None:
        """The photo URLs of new cases, kept as links (never fetched) with their report event."""
        ids = {ext: cid for cid, ext in _by_external_id(s, self.source, list(links), ("id", "external_id"))}
        reports: dict[int, int] = {}
        for clause in _where_in(s, IncidentEvent.incident_id, list(ids.values())):
            reports.update(s.execute(select(IncidentEvent.incident_id, IncidentEvent.id)
                                     .where(clause, IncidentEvent.action == "report")).all())
        s.add_all(CaseAttachment(incident_id=ids[ext], event_id=reports.get(ids[ext]), stage="report", kind="link",
                                 mime="", name=media.prepare_link(url).name, url=url, size=0,
                                 created_by=self.actor, created_at=self.now)
                  for ext, urls in links.items() if ext in ids for url in urls)
        s.flush()

    def _report(self, item: Item, inc: IncomingCase) -> dict:
        payload = {"channel": inc.channel.value, "source": self.source, "feed_run": self.run_id,
                   "line": item.line, "source_status": inc.source_status}
        if inc.media_urls:
            payload["links"] = len(inc.media_urls)
        if inc.location_note:
            payload["location_note"] = inc.location_note
        _flagged(payload, inc)
        if self.via:
            payload["via"] = self.via
        return dict(incident_id=None, at=inc.reported_at, actor=self.actor, action="report", from_state=None,
                    to_state=State.REPORTED.value, department_code=None, note=inc.title, payload=payload)

    def _new_case(self, item: Item, inc: IncomingCase, district: Optional[str],
                  grid: Optional[str]) -> tuple[dict, list[dict]]:
        """A new case and its timeline as plain rows (``services.transition`` on a draft)."""
        draft = _Draft(source=self.source, external_id=inc.external_id, channel=inc.channel.value,
                       title=inc.title, description=inc.description, address=inc.address, lon=inc.lon,
                       lat=inc.lat, district_code=district, grid_code=grid, category_code=inc.category_code,
                       priority=inc.priority.value, state=State.REPORTED.value, state_before_suspend=None,
                       department_code=None, reporter_name="", reporter_phone="", reported_at=inc.reported_at,
                       registered_at=None, dispatched_at=None, signed_at=None, resolved_at=None, closed_at=None,
                       voided_at=None, suspended_at=None, allowed_hours=None, warn_at=None, deadline=None,
                       source_deadline=inc.deadline,
                       on_time=None, void_reason=None, duplicate_of=None, supervise_level=0, rework_count=0,
                       return_count=0, reassign_count=0, extension_count=0, extension_hours=0.0,
                       suspended_hours=0.0, first_dispatched_at=None, handling_hours=None, dispatch_count=None,
                       close_count=None, first_closed_at=None, last_dispatched_at=None, last_closed_at=None,
                       revised_at=None, sign_due=None, first_sign_due=None, first_signed_at=None,
                       arbitrated=False, first_contacted_at=None, resolve_outcome=None, first_revisited_at=None,
                       revisited_at=None, revisit_result=None, alarm_count=None, repeat_of=None,
                       repeat_linked_at=None,
                       updated_at=self.now,
                       updated_by=self.actor, version=1)
        events = [self._report(item, inc)]
        category = self.categories[inc.category_code]
        for action, at, params in self._plan(inc):
            self._may(action, draft.department_code)
            events.append(self._stamped(services.transition(draft, category, self.rules, self.actor, action, at,
                                                            route=self.route, **params)))
        draft.version = len(events)
        draft.updated_at, draft.updated_by = self.now, self.actor
        return vars(draft), events

    def _insert_fast(self, s: Session, new_cases: list[dict], new_events: list[list[dict]]) -> None:
        """Cases in one bulk write, their ids read back by external id, then all their events."""
        _bulk_insert(s, Incident.__table__, _CASE_COLUMNS, new_cases)
        ids = {ext: cid for cid, ext in _by_external_id(s, self.source, [c["external_id"] for c in new_cases],
                                                         ("id", "external_id"))}
        rows = []
        for case, evs in zip(new_cases, new_events):
            cid = ids[case["external_id"]]
            for ev in evs:
                ev["incident_id"] = cid
                rows.append(ev)
        _bulk_insert(s, IncidentEvent.__table__, _EVENT_COLUMNS, rows)
        facts.refresh(s, ids.values())

    # the reference: every new case built through services.apply_action on an ORM object
    def _new_case_via_services(self, item: Item, inc: IncomingCase) -> tuple[dict, list[dict]]:
        district, grid = self.rules.areas.locate(inc.lon, inc.lat)
        case = Incident(source=self.source, external_id=inc.external_id, channel=inc.channel.value,
                        title=inc.title, description=inc.description, address=inc.address, lon=inc.lon,
                        lat=inc.lat, district_code=district, grid_code=grid, category_code=inc.category_code,
                        priority=inc.priority.value, state=State.REPORTED.value, reporter_name="",
                        reporter_phone="", reported_at=inc.reported_at, updated_at=self.now,
                        updated_by=self.actor, version=1, source_deadline=inc.deadline, rework_count=0,
                        return_count=0, reassign_count=0,
                        extension_count=0, extension_hours=0.0, suspended_hours=0.0, supervise_level=0,
                        state_before_suspend=None, arbitrated=False)
        for name in ("registered_at", "dispatched_at", "signed_at", "resolved_at", "closed_at", "voided_at",
                     "suspended_at", "allowed_hours", "warn_at", "deadline", "on_time", "void_reason",
                     "duplicate_of", "department_code", "first_dispatched_at", "handling_hours", "dispatch_count",
                     "close_count", "first_closed_at", "last_dispatched_at", "last_closed_at", "revised_at",
                     "sign_due", "first_sign_due", "first_signed_at"):
            setattr(case, name, None)
        events = [self._report(item, inc)]
        category = self.categories[inc.category_code]
        for action, at, params in self._plan(inc):
            self._may(action, case.department_code)
            ev = services.apply_action(case, category, self.rules, self.actor, action, at, **params)
            events.append(self._stamped({k: getattr(ev, k) for k in _EVENT_COLUMNS}))
        case.version = len(events)
        case.updated_at, case.updated_by = self.now, self.actor
        return {k: getattr(case, k) for k in _CASE_COLUMNS}, events

    def _insert_reference(self, s: Session, new_cases: list[dict], new_events: list[list[dict]]) -> None:
        table = Incident.__table__
        new_ids = s.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True),
                            new_cases).scalars().all()
        rows = []
        for cid, evs in zip(new_ids, new_events):
            for ev in evs:
                ev["incident_id"] = cid
                rows.append(ev)
        s.execute(IncidentEvent.__table__.insert(), rows)
        facts.refresh(s, new_ids)

    def _update_steps(self, case: Incident, inc: IncomingCase, diff: dict) -> tuple[list, list[str]]:
        """The actions that bring a known case to the source's state, and notes on what is kept."""
        notes: list[str] = []
        current = State(case.state)
        steps: list = []
        if "state" in diff:
            target = inc.state
            if target == State.VOIDED and current != State.VOIDED:
                steps = [(Action.VOID, inc.closed_at or self.now, {"reason": inc.void_reason or "invalid"})] \
                    if current in (State.REPORTED, State.REGISTERED) else \
                    [(Action.MERGE if inc.void_reason == "duplicate" else Action.VOID, inc.closed_at or self.now,
                      {"reason": inc.void_reason or "invalid"})]
                if steps[0][0] == Action.MERGE:  # merge needs the original's id, which the source does not give
                    steps = []
                    notes.append(f"source voided it ({inc.source_status}) after dispatch: state kept")
            elif current == State.VOIDED:
                notes.append(f"source says {inc.source_status!r} but the case is voided: state kept")
            elif current == State.CLOSED and target != State.CLOSED:
                steps = [(Action.REOPEN, self.now, {"note": f"source reopened it ({inc.source_status})"})]
                steps += _forward(State.REGISTERED, inc)
            elif current in _ORDER and _ORDER.index(target) > _ORDER.index(current):
                steps = _forward(current, inc)
            else:
                notes.append(f"source says {inc.source_status!r}; the case is further along ({current}): state kept")
        return steps, notes

    def _check_update(self, s: Session, case: Incident, inc: IncomingCase, diff: dict, steps: list) -> None:
        """The pushing user may make every change this record makes to ``case``: its content (title,
        place, category …) and each action, on the department the case is with at that step."""
        who = self.principal
        if set(diff) - {"state", "department_code"}:
            submitted = s.scalar(select(IncidentEvent.actor).where(IncidentEvent.incident_id == case.id,
                                                                   IncidentEvent.action == "report")) == who.username
            permissions.check_edit(who.role, user_department=who.department_code,
                                   case_department=case.department_code, submitted_by_them=submitted,
                                   case_accepted=case.state != State.REPORTED.value)
        department = case.department_code
        if "department_code" in diff and State(case.state).is_with_department:
            self._may(Action.REASSIGN, department)
            department = inc.department_code
        category = diff.get("category_code", case.category_code)
        for action, _at, params in steps:
            self._may(action, department)
            if action in (Action.DISPATCH, Action.REASSIGN):
                department = params.get("department") or \
                    self.route(category, case.district_code, case.grid_code).department_code
            elif action in (Action.RETURN, Action.REOPEN):
                department = None

    def _plan(self, inc: IncomingCase) -> list[tuple[Action, datetime, dict]]:
        """A new case's timeline. A record that names no state is registered by the mapping's default;
        sent by someone who may not register (a grid inspector's app, a department's system) it
        arrives as 上报 (reported) for the command center to accept."""
        return _plan(inc) if self._states_by_default(inc) else []

    def _states_by_default(self, inc: IncomingCase) -> bool:
        return (self.principal is None or bool(inc.source_status)
                or permissions.may(self.principal.role, Action.REGISTER))

    def _may(self, action: Action, case_department: Optional[str]) -> None:
        if self.principal is not None:
            permissions.check_permission(self.principal.role, action, user_department=self.principal.department_code,
                                         case_department=case_department)

    def _stamped(self, event: dict) -> dict:
        """An event of this run names the channel it came through (``push:<feed>``)."""
        if self.via:
            event["payload"] = {**(event.get("payload") or {}), "via": self.via}
        return event

    def _update(self, s: Session, case: Incident, inc: IncomingCase, item: Item) -> bool:
        diff = _differences(case, inc)
        if not self._states_by_default(inc):
            diff.pop("state", None)   # the mapping's default state is not the sender's word (see _plan)
        if not diff:
            return False
        steps, notes = self._update_steps(case, inc, diff)
        if self.principal is not None:   # everything checked before anything changes
            self._check_update(s, case, inc, diff, steps)
        changed = {k: [_jsonable(getattr(case, k)), _jsonable(v)] for k, v in diff.items()}
        for key in ("title", "description", "address", "category_code", "channel", "priority", "reported_at"):
            if key in diff:
                setattr(case, key, diff[key])
        if "lon" in diff or "lat" in diff:
            case.lon, case.lat = inc.lon, inc.lat
            case.district_code, case.grid_code = self.rules.areas.locate(inc.lon, inc.lat)
        if "closed_at" in diff:
            case.closed_at = inc.closed_at
        if "source_deadline" in diff:
            case.source_deadline = inc.deadline
            category = self.categories.get(case.category_code)
            if category is not None and State(case.state).is_with_department and case.deadline is not None:
                # a running clock: the source's new deadline is the one in force
                services.set_deadline(case, category, self.rules)
        if "department_code" in diff and State(case.state).is_with_department:
            # the source moved it to another department: a reassignment
            s.add(self._event(case, Action.REASSIGN, inc.dispatched_at or self.now,
                              {"department": inc.department_code}))
        payload = {"changed": changed, "feed_run": self.run_id, "line": item.line,
                   "source_status": inc.source_status}
        if inc.location_note:
            payload["location_note"] = inc.location_note
        _flagged(payload, inc)
        if self.via:
            payload["via"] = self.via
        if notes:
            payload["note"] = "; ".join(notes)
        case.updated_at, case.updated_by = self.now, self.actor
        s.add(IncidentEvent(incident_id=case.id, at=self.now, actor=self.actor, action="update",
                            from_state=case.state, to_state=case.state, department_code=case.department_code,
                            note="updated from the source", payload=payload))
        category = self.categories.get(case.category_code)
        for action, at, params in steps:
            try:
                s.add(self._event(case, action, at, params, category=category))
            except DomainError as exc:
                notes.append(f"{action.value} not applied: {exc}")
                payload["note"] = "; ".join(notes)
                break
        case.updated_at, case.updated_by = self.now, self.actor
        s.flush()
        return True

    def _event(self, case: Incident, action: Action, at: datetime, params: dict, category=None) -> IncidentEvent:
        category = category or self.categories.get(case.category_code)
        event = services.apply_action(case, category, self.rules, self.actor, action, at, **params)
        if self.via:
            event.payload = {**(event.payload or {}), "via": self.via}
        return event


#: the process running a feed run, as recorded on its row
RUN_OWNER = f"{socket.gethostname()}:{os.getpid()}"[:120]
#: a run on another host that made no progress for this long is taken as dead
STALE_RUN = timedelta(minutes=15)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_interrupted_runs(s: Session, now: Optional[datetime] = None) -> int:
    """Runs still ``running`` whose process is gone (a killed import, a crashed worker) are closed as
    ``failed``: on this host when the process no longer exists, elsewhere when they made no progress
    for ``STALE_RUN``. Called when a run starts, so the feed's health never shows a run forever."""
    now = now or datetime.now(timezone.utc)
    host = RUN_OWNER.rpartition(":")[0]
    closed = 0
    for run in s.scalars(select(FeedRun).where(FeedRun.status == "running")):
        owner_host, _, pid = (run.owner or "").rpartition(":")
        last = run.heartbeat_at or run.started_at
        if owner_host == host and pid.isdigit():
            dead = int(pid) != os.getpid() and not _process_alive(int(pid))
        else:
            dead = last < now - STALE_RUN
        if dead:
            run.status, run.finished_at = "failed", now
            run.error = (f"interrupted: its process ({run.owner or 'unknown'}) stopped; last progress "
                         f"{last:%Y-%m-%d %H:%M:%S}Z; closed when the next run started")
            closed += 1
    return closed


class Ingestor:
    """One feed run fed piece by piece: ``feed(records)`` ingests and commits them in batches
    (pull pages, push bodies, replay releases all land in the same ``feed_runs`` row);
    ``finish(status, error)`` closes the run and returns its summary."""

    def __init__(self, db, rules: CaseRules, pack: Pack, mapping, feed_name: Optional[str] = None,
                 source_label: Optional[str] = None, *, crs: Optional[str] = None, now: Optional[datetime] = None,
                 batch_size: int = BATCH_SIZE, progress: Optional[Callable[[int], None]] = None,
                 fast_path: bool = True, principal: Optional[services.Actor] = None, via: Optional[str] = None,
                 earliest: Optional[datetime] = None):
        if isinstance(mapping, str):
            from data_sources.feeds.mappings import get_mapping
            mapping = get_mapping(mapping)
        self.scope = _scope_factory(db)
        self.now = now or datetime.now(timezone.utc)
        self.mapping = mapping
        self.feed_name = (feed_name or mapping.name)[:60]
        self.source = (source_label or mapping.name)[:40]
        self.batch_size, self.progress = batch_size, progress
        ctx = FeedContext(pack, crs=crs or getattr(mapping, "crs", None) or pack.crs, now=self.now,
                          dayfirst=bool(getattr(mapping, "dayfirst", False)),
                          earliest=earliest or EARLIEST)
        with self.scope() as s:
            close_interrupted_runs(s)
            run = FeedRun(feed=self.feed_name, source=self.source, started_at=self.now, status="running",
                          received=0, inserted=0, updated=0, unchanged=0, quarantined=0, error="",
                          owner=RUN_OWNER, heartbeat_at=datetime.now(timezone.utc))
            s.add(run)
            s.flush()
            self.run_id = run.id
        self.worker = _Run(self.scope, rules, pack, mapping, self.feed_name, self.source, ctx, self.now, self.run_id,
                           fast_path=fast_path, principal=principal, via=via)

    def feed(self, records: Iterable[tuple[dict, int]] = (), *, _items: Optional[Iterable[Item]] = None) -> None:
        items: Iterator[Item] = iter(_items) if _items is not None else (Item(raw, line) for raw, line in records)
        batch: list[Item] = []
        for item in items:
            batch.append(item)
            if len(batch) >= self.batch_size:
                self._flush(batch)
                batch = []
        if batch:
            self._flush(batch)

    def _flush(self, batch: list[Item]) -> None:
        self.worker.batch(batch)
        if self.progress:
            self.progress(len(batch))

    def finish(self, status: str = "ok", error: str = "") -> RunSummary:
        with self.scope() as s:
            run = s.get(FeedRun, self.run_id)
            run.status, run.error = status, error[:2000]
            run.finished_at = datetime.now(timezone.utc)
            s.flush()
            s.expunge(run)
        assert run.received == run.inserted + run.updated + run.unchanged + run.quarantined
        return RunSummary(run=run, reasons=self.worker.reasons, flags=self.worker.flags)


def earliest_from(setting: Any) -> datetime:
    """The ``INGEST_MIN_DATE`` setting (``YYYY-MM-DD``, UTC) as the earliest timestamp a feed may bring."""
    try:
        return datetime.fromisoformat(str(setting)).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"INGEST_MIN_DATE={setting!r}: expected a date YYYY-MM-DD") from None


def ingest(db, rules: CaseRules, pack: Pack, records: Iterable[tuple[dict, int]], mapping,
           feed_name: Optional[str] = None, source_label: Optional[str] = None, *, crs: Optional[str] = None,
           now: Optional[datetime] = None, batch_size: int = BATCH_SIZE,
           progress: Optional[Callable[[int], None]] = None, _items: Optional[Iterable[Item]] = None,
           fast_path: bool = True, earliest: Optional[datetime] = None) -> RunSummary:
    """Import ``records`` through ``mapping``; returns the summary with the finished FeedRun.

    ``db`` is a Session (everything in the caller's transaction), a Database or a factory of
    session scopes (one transaction per batch). ``source_label`` is the ``source`` of the cases
    (the namespace of external ids; default: the mapping's name). ``fast_path=False`` builds every
    new case through ``services.apply_action`` on an ORM object, one by one (slow: the reference the
    fast path is tested against)."""
    run = Ingestor(db, rules, pack, mapping, feed_name, source_label, crs=crs, now=now, batch_size=batch_size,
                   progress=progress, fast_path=fast_path, earliest=earliest)
    try:
        run.feed(records, _items=_items)
    except Exception as exc:
        run.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    return run.finish("ok")


def retry_quarantined(db, rules: CaseRules, pack: Pack, ids: Optional[list[int]] = None, *,
                      now: Optional[datetime] = None, crs: Optional[str] = None) -> list[RunSummary]:
    """Run the mapping again on quarantined raw records (``ids``, or every ``new`` row): a record
    that is valid now is ingested and its row marked ``retried``; one still rejected keeps its row
    with the new reason. One feed run per (feed, source)."""
    from data_sources.feeds.mappings import MAPPINGS, MappingError, get_mapping
    scope = _scope_factory(db)
    groups: dict[tuple[str, str], list[Item]] = {}
    with scope() as s:
        q = select(Quarantine).where(Quarantine.status == "new").order_by(Quarantine.id)
        if ids:
            q = select(Quarantine).where(Quarantine.id.in_(ids)).order_by(Quarantine.id)
        for row in s.scalars(q):
            if row.status == "retried":
                continue
            try:
                env = json.loads(row.raw)
                raw, line, source = env["record"], int(env.get("line") or 0), env.get("source") or row.feed
                mapping = env.get("mapping") or (row.feed if row.feed in MAPPINGS else source)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            groups.setdefault((row.feed, source, mapping), []).append(Item(raw, line, retry_of=row.id))
    out = []
    for (feed, source, ref), items in groups.items():
        try:   # a built-in's name, or the path of the mapping file the records came through
            mapping = get_mapping(ref)
        except (KeyError, MappingError):
            continue
        out.append(ingest(db, rules, pack, [], mapping, feed_name=feed, source_label=source, now=now,
                          crs=crs, _items=items))
    return out


__all__ = ["BATCH_SIZE", "Ingestor", "Item", "RunSummary", "earliest_from", "ingest", "retry_quarantined"]
