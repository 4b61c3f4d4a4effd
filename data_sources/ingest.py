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
"""
from __future__ import annotations

import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from data_sources.feeds.base import UNREADABLE, FeedContext, IncomingCase, Rejected
from data_sources.packs import Pack
from incidents import services
from incidents.lifecycle import DomainError
from incidents.model import Action, State
from incidents.services import CaseRules
from incidents.tables import FeedRun, Incident, IncidentEvent, Quarantine

BATCH_SIZE = 1000
_EVENT_COLUMNS = ("incident_id", "at", "actor", "action", "from_state", "to_state", "department_code", "note",
                  "payload")
_CASE_COLUMNS = tuple(c.key for c in Incident.__table__.columns if c.key != "id")
_ORDER = [State.REPORTED, State.REGISTERED, State.DISPATCHED, State.IN_PROGRESS, State.RESOLVED, State.CLOSED]


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
    return json.dumps(env, ensure_ascii=False, default=str)


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
    if cur < _ORDER.index(State.DISPATCHED):
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
    if (inc.department_code and case.department_code and case.department_code != inc.department_code
            and inc.state in (State.DISPATCHED, State.IN_PROGRESS, State.RESOLVED, State.CLOSED)):
        diff["department_code"] = inc.department_code
    return diff


def _jsonable(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


# --------------------------------------------------------------------------- ingest

class _Run:
    def __init__(self, scope, rules: CaseRules, pack: Pack, mapping, feed_name: str, source: str,
                 ctx: FeedContext, now: datetime, run_id: int):
        self.scope, self.rules, self.pack, self.mapping = scope, rules, pack, mapping
        self.feed, self.source, self.ctx, self.now, self.run_id = feed_name, source, ctx, now, run_id
        self.actor = f"import:{mapping.name}"
        self.categories = {c.code: c for c in pack.categories}
        self.seen: dict[str, int] = {}
        self.counts = Counter()
        self.reasons: Counter = Counter()
        self.last_record_at: Optional[datetime] = None

    # one batch = one transaction
    def batch(self, items: list[Item]) -> None:
        seen_before = dict(self.seen)
        for attempt in (1, 2):
            try:
                with self.scope() as s:
                    counts, reasons = self._batch(s, items)
                    run = s.get(FeedRun, self.run_id)
                    for k, v in counts.items():
                        setattr(run, k, getattr(run, k) + v)
                    run.received += len(items)
                    run.last_record_at = self.last_record_at
                    assert run.received == run.inserted + run.updated + run.unchanged + run.quarantined, \
                        "feed run counts do not add up"
                    services.bump_data_version(s)
                self.counts.update(counts)
                self.reasons.update(reasons)
                return
            except IntegrityError:
                # another import inserted one of these external ids meanwhile: once more, as updates
                self.seen = dict(seen_before)
                if attempt == 2:
                    raise

    def _batch(self, s: Session, items: list[Item]) -> tuple[Counter, Counter]:
        counts, reasons = Counter(), Counter()
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

        existing: dict[str, Incident] = {}
        ids = [inc.external_id for _, inc in accepted]
        for i in range(0, len(ids), 500):
            for case in s.scalars(select(Incident).where(Incident.source == self.source,
                                                         Incident.external_id.in_(ids[i:i + 500]))):
                existing[case.external_id] = case

        new_cases, new_events = [], []
        for item, inc in accepted:
            case = existing.get(inc.external_id)
            try:
                if case is None:
                    c, evs = self._new_case(item, inc)
                    new_cases.append(c)
                    new_events.append(evs)
                    counts["inserted"] += 1
                elif self._update(s, case, inc, item):
                    counts["updated"] += 1
                else:
                    counts["unchanged"] += 1
            except DomainError as exc:
                rejected.append((item, f"cannot apply the source's timeline: {exc}"))
                continue
            if item.retry_of:
                q = s.get(Quarantine, item.retry_of)
                q.status = "retried"
        if new_cases:
            table = Incident.__table__
            new_ids = s.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True),
                                new_cases).scalars().all()
            rows = []
            for cid, evs in zip(new_ids, new_events):
                for ev in evs:
                    ev["incident_id"] = cid
                    rows.append(ev)
            s.execute(IncidentEvent.__table__.insert(), rows)
        # a record already waiting in quarantine (the same file imported again) keeps its one row
        raws = {id(item): _raw_json(item, self.source, self.mapping.name) for item, _ in rejected if not item.retry_of}
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
        return counts, reasons

    def _new_case(self, item: Item, inc: IncomingCase) -> tuple[dict, list[dict]]:
        district, grid = self.rules.areas.locate(inc.lon, inc.lat)
        case = Incident(source=self.source, external_id=inc.external_id, channel=inc.channel.value,
                        title=inc.title, description=inc.description, address=inc.address, lon=inc.lon,
                        lat=inc.lat, district_code=district, grid_code=grid, category_code=inc.category_code,
                        priority=inc.priority.value, state=State.REPORTED.value, reporter_name="",
                        reporter_phone="", reported_at=inc.reported_at, updated_at=self.now,
                        updated_by=self.actor, version=1, rework_count=0, return_count=0, reassign_count=0,
                        extension_count=0, extension_hours=0.0, suspended_hours=0.0, supervise_level=0,
                        state_before_suspend=None)
        for name in ("registered_at", "dispatched_at", "signed_at", "resolved_at", "closed_at", "voided_at",
                     "suspended_at", "allowed_hours", "warn_at", "deadline", "on_time", "void_reason",
                     "duplicate_of", "department_code"):
            setattr(case, name, None)
        payload = {"channel": inc.channel.value, "source": self.source, "feed_run": self.run_id,
                   "line": item.line, "source_status": inc.source_status}
        if inc.location_note:
            payload["location_note"] = inc.location_note
        events = [dict(incident_id=None, at=inc.reported_at, actor=self.actor, action="report", from_state=None,
                       to_state=State.REPORTED.value, department_code=None, note=inc.title, payload=payload)]
        category = self.categories[inc.category_code]
        for action, at, params in _plan(inc):
            ev = services.apply_action(case, category, self.rules, self.actor, action, at, **params)
            events.append({k: getattr(ev, k) for k in _EVENT_COLUMNS})
        case.version = len(events)
        case.updated_at, case.updated_by = self.now, self.actor
        return {k: getattr(case, k) for k in _CASE_COLUMNS}, events

    def _update(self, s: Session, case: Incident, inc: IncomingCase, item: Item) -> bool:
        diff = _differences(case, inc)
        if not diff:
            return False
        changed = {k: [_jsonable(getattr(case, k)), _jsonable(v)] for k, v in diff.items()}
        notes = []
        for key in ("title", "description", "address", "category_code", "channel", "priority", "reported_at"):
            if key in diff:
                setattr(case, key, diff[key])
        if "lon" in diff or "lat" in diff:
            case.lon, case.lat = inc.lon, inc.lat
            case.district_code, case.grid_code = self.rules.areas.locate(inc.lon, inc.lat)
        if "closed_at" in diff:
            case.closed_at = inc.closed_at
        if "department_code" in diff and State(case.state).is_with_department:
            # the source moved it to another department: a reassignment
            s.add(self._event(case, Action.REASSIGN, inc.dispatched_at or self.now,
                              {"department": inc.department_code}))
        payload = {"changed": changed, "feed_run": self.run_id, "line": item.line,
                   "source_status": inc.source_status}
        if inc.location_note:
            payload["location_note"] = inc.location_note
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
        return services.apply_action(case, category, self.rules, self.actor, action, at, **params)


class Ingestor:
    """One feed run fed piece by piece: ``feed(records)`` ingests and commits them in batches
    (pull pages, push bodies, replay releases all land in the same ``feed_runs`` row);
    ``finish(status, error)`` closes the run and returns its summary."""

    def __init__(self, db, rules: CaseRules, pack: Pack, mapping, feed_name: Optional[str] = None,
                 source_label: Optional[str] = None, *, crs: Optional[str] = None, now: Optional[datetime] = None,
                 batch_size: int = BATCH_SIZE, progress: Optional[Callable[[int], None]] = None):
        if isinstance(mapping, str):
            from data_sources.feeds.mappings import get_mapping
            mapping = get_mapping(mapping)
        self.scope = _scope_factory(db)
        self.now = now or datetime.now(timezone.utc)
        self.mapping = mapping
        self.feed_name = (feed_name or mapping.name)[:60]
        self.source = (source_label or mapping.name)[:40]
        self.batch_size, self.progress = batch_size, progress
        ctx = FeedContext(pack, crs=crs or pack.crs, now=self.now)
        with self.scope() as s:
            run = FeedRun(feed=self.feed_name, source=self.source, started_at=self.now, status="running",
                          received=0, inserted=0, updated=0, unchanged=0, quarantined=0, error="")
            s.add(run)
            s.flush()
            self.run_id = run.id
        self.worker = _Run(self.scope, rules, pack, mapping, self.feed_name, self.source, ctx, self.now, self.run_id)

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
        return RunSummary(run=run, reasons=self.worker.reasons)


def ingest(db, rules: CaseRules, pack: Pack, records: Iterable[tuple[dict, int]], mapping,
           feed_name: Optional[str] = None, source_label: Optional[str] = None, *, crs: Optional[str] = None,
           now: Optional[datetime] = None, batch_size: int = BATCH_SIZE,
           progress: Optional[Callable[[int], None]] = None, _items: Optional[Iterable[Item]] = None) -> RunSummary:
    """Import ``records`` through ``mapping``; returns the summary with the finished FeedRun.

    ``db`` is a Session (everything in the caller's transaction), a Database or a factory of
    session scopes (one transaction per batch). ``source_label`` is the ``source`` of the cases
    (the namespace of external ids; default: the mapping's name)."""
    run = Ingestor(db, rules, pack, mapping, feed_name, source_label, crs=crs, now=now, batch_size=batch_size,
                   progress=progress)
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
    from data_sources.feeds.mappings import MAPPINGS
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
            if mapping not in MAPPINGS:
                continue
            groups.setdefault((row.feed, source, mapping), []).append(Item(raw, line, retry_of=row.id))
    out = []
    for (feed, source, mapping), items in groups.items():
        out.append(ingest(db, rules, pack, [], MAPPINGS[mapping], feed_name=feed, source_label=source, now=now,
                          crs=crs, _items=items))
    return out


__all__ = ["BATCH_SIZE", "Ingestor", "Item", "RunSummary", "ingest", "retry_quarantined"]
