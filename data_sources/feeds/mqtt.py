"""IoT alarms over MQTT (物联感知): a subscriber (paho-mqtt) and the alarm folder behind it.

Each message is one JSON object, mapped through a mapping file (built in: ``iot_alarm``) whose
external id is the **device id**. Before mapping, the payload gets ``_topic``, ``_received_at`` and —
when the device is in the pack's ``devices.csv`` — ``_device.*`` (lon, lat, district_code,
category_code, name), so a device that sends no coordinates is placed where the pack says it stands.

* an **alarm** of a device with no open case makes a new case (source = the feed, external id
  ``<device>#<n>``, its n-th alarm case, ``alarm_count`` 1) through the ordinary ingest;
* an alarm of a device whose case is still open is **folded** into it: ``alarm_count`` + 1 and an
  ``update`` event "repeated alarm", no second case;
* a **clear** closes the open case where the pack allows it (pack.toml ``[iot] close_on_clear``):
  a case no department has yet is voided (reason ``cleared``: the alarm ended before anyone was sent),
  one with a department is resolved and verified (closed); otherwise it is only counted;
* a payload that is not JSON, not an object, or that the mapping rejects is quarantined with its
  topic and the reason.

Every message counts in the feed run open at the time (one run per ``interval`` of traffic):
received = inserted (new cases) + updated (folded, closed) + unchanged + quarantined.

One subscriber per feed at a time, whatever the number of workers (``data_sources.worker.SubscriptionLease``):
a device's alarms and clears are applied in the order they came, none twice. It connects with a fixed
client id and a persistent session (``client_id``), so the broker keeps the QoS 1 messages that arrive
while the subscription passes from one worker to another and hands them to the next holder.
"""
from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm.exc import StaleDataError

from data_sources.feeds.base import UNREADABLE, FeedContext, IncomingCase, Rejected, blank
from data_sources.ingest import Ingestor
from data_sources.packs import IotSettings, Pack
from incidents import services
from incidents.lifecycle import DomainError
from incidents.model import Action, Role, State
from incidents.tables import FeedRun, Incident, IncidentEvent

log = logging.getLogger(__name__)

MAX_PAYLOAD = 64 * 1024
CASE_SEP = "#"


class _AlarmMapping:
    """The feed's mapping, with the case's external id (``_case``, decided by the folder) in place of
    the device id, and the topic in every rejection."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.ref = getattr(inner, "ref", inner.name)
        self.crs = getattr(inner, "crs", None)
        self.dayfirst = getattr(inner, "dayfirst", False)

    def to_case(self, raw: dict, ctx: FeedContext) -> IncomingCase:
        try:
            inc = self.inner.to_case(raw, ctx)
        except Rejected as exc:
            raise Rejected(f"topic {raw.get('_topic', '?')}: {exc.reason}") from None
        if raw.get("_case"):
            inc = inc.model_copy(update={"external_id": str(raw["_case"])})
        return inc


class AlarmFolder:
    """Turns alarm messages into cases (see the module's docstring). Not thread-safe: one per
    subscriber, fed from its processing thread."""

    def __init__(self, db, rules: services.CaseRules, pack: Pack, iot: IotSettings, mapping, feed: str,
                 source: Optional[str] = None, *, crs: Optional[str] = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        if isinstance(mapping, str):
            from data_sources.feeds.mappings import get_mapping
            mapping = get_mapping(mapping)
        self.db, self.rules, self.pack, self.iot = db, rules, pack, iot
        self.mapping = _AlarmMapping(mapping)
        self.feed, self.source = feed[:60], (source or feed)[:40]
        self.crs, self.clock = crs, clock
        self.actor_name = f"iot:{self.feed}"[:60]
        self.run: Optional[Ingestor] = None
        self.line = 0

    # ------------------------------------------------------------------ runs

    def _ingestor(self) -> Ingestor:
        if self.run is None:
            self.run = Ingestor(self.db, self.rules, self.pack, self.mapping, self.feed, self.source,
                                crs=self.crs, now=self.clock(), batch_size=1)
        return self.run

    def finish(self, status: str = "ok", error: str = ""):
        """Close the open feed run (if any); the next message opens a new one."""
        run, self.run = self.run, None
        return run.finish(status, error) if run is not None else None

    def record_error(self, error: str) -> None:
        """A broker the feed cannot reach: a feed run with status error, for the feed's health."""
        self.finish()
        Ingestor(self.db, self.rules, self.pack, self.mapping, self.feed, self.source, now=self.clock()).finish(
            "error", error)

    # ------------------------------------------------------------------ one message

    def handle(self, topic: str, payload: bytes, received_at: Optional[datetime] = None) -> str:
        """Apply one message; returns what it did: inserted, updated, unchanged or quarantined."""
        run = self._ingestor()
        self.line += 1
        received_at = received_at or self.clock()
        raw = self._decode(topic, payload)
        if UNREADABLE not in raw:
            raw.update(_topic=topic, _received_at=received_at.isoformat())
            device = self.iot.device(self._device_id(raw))
            if device is not None:
                raw["_device"] = {"lon": device.lon, "lat": device.lat, "district_code": device.district_code,
                                  "category_code": device.category_code, "name": device.name}
            try:
                inc = self.mapping.to_case(raw, run.worker.ctx)
            except Rejected:
                inc = None       # the ingest rejects it again, with the reason, into the quarantine …
                device = self._clear_of(raw)
                if device is not None:   # … unless it is a clear: it needs a device, not a category or a place
                    return self._apply(raw, device, True, received_at, received_at)
            except Exception as exc:  # a mapping bug: quarantined like the ingest would
                raw = {UNREADABLE: f"topic {topic}: mapping {self.mapping.name} failed: {type(exc).__name__}: {exc}",
                       "text": json.dumps(raw, ensure_ascii=False, default=str)[:2000], "_topic": topic}
                inc = None
            if inc is not None:
                for attempt in (1, 2):
                    try:
                        return self._apply(raw, inc.external_id, inc.state in (State.CLOSED, State.RESOLVED),
                                           inc.reported_at, received_at)
                    except StaleDataError:   # another worker changed the case meanwhile: once more
                        if attempt == 2:
                            raise
        return self._through_ingest(raw)

    def _decode(self, topic: str, payload: bytes) -> dict:
        def bad(reason: str) -> dict:
            return {UNREADABLE: f"topic {topic}: {reason}", "text": payload[:2000].decode("utf-8", "replace"),
                    "_topic": topic}
        if len(payload) > MAX_PAYLOAD:
            return bad(f"payload of {len(payload):,} bytes (limit {MAX_PAYLOAD:,})")
        try:
            data = json.loads(payload.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as exc:
            return bad(f"payload is not JSON ({type(exc).__name__}: {str(exc)[:80]})")
        if not isinstance(data, dict):
            return bad(f"payload is a JSON {type(data).__name__}, not an object")
        return data

    def _device_id(self, raw: dict) -> Any:
        from data_sources.feeds.mappings.mapper import first
        return first(raw, self.mapping.inner.spec.fields.external_id)

    def _through_ingest(self, raw: dict) -> str:
        run = self._ingestor()
        before = dict(run.worker.counts)
        run.feed([(raw, self.line)])
        after = run.worker.counts
        return next((k for k in ("inserted", "updated", "unchanged", "quarantined")
                     if after.get(k, 0) > before.get(k, 0)), "unchanged")

    def _open_case(self, s, device: str) -> tuple[Optional[int], int]:
        """The id of the device's open case (the latest), and how many alarm cases it has had."""
        prefix = device.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + CASE_SEP
        rows = s.execute(select(Incident.id, Incident.state).where(
            Incident.source == self.source, Incident.external_id.like(prefix + "%", escape="\\"))
            .order_by(Incident.id.desc())).all()
        open_ids = [r.id for r in rows if State(r.state).is_open]
        return (open_ids[0] if open_ids else None), len(rows)

    def _clear_of(self, raw: dict) -> Optional[str]:
        """The device of a clear message the mapping could not make a case of, else None."""
        status = getattr(self.mapping.inner, "status", None)
        try:
            state = status(raw)[0] if status is not None else None
        except Rejected:
            return None
        device = self._device_id(raw)
        if state not in (State.CLOSED, State.RESOLVED) or blank(device):
            return None
        return str(device).strip()

    def _apply(self, raw: dict, device: str, clear: bool, record_at: datetime, received_at: datetime) -> str:
        with self.db.session_scope() as s:
            case, n_cases = self._open_case(s, device)
            if case is None and not clear:
                new_id = f"{device}{CASE_SEP}{n_cases + 1}"
            else:
                outcome = (self._fold(s, case, raw, received_at) if not clear
                           else self._clear(s, case and s.get(Incident, case), raw, received_at))
                self._count(s, outcome, record_at)
                return outcome
        raw["_case"] = new_id
        outcome = self._through_ingest(raw)
        if outcome == "inserted":
            # only where no other worker has folded a repeat into it meanwhile (a fold counts None as 1)
            with self.db.session_scope() as s:
                s.execute(update(Incident).where(Incident.source == self.source, Incident.external_id == new_id,
                                                 Incident.alarm_count.is_(None)).values(alarm_count=1))
        return outcome

    def _fold(self, s, case_id: int, raw: dict, at: datetime) -> str:
        """One more alarm on the open case: the counter incremented in the database (two workers'
        increments both count), the version moved (a person's open form sees the case changed) and an
        ``update`` event; nothing the KPIs read changes, so no fact row is rewritten."""
        count, state, department = s.execute(
            update(Incident).where(Incident.id == case_id)
            .values(alarm_count=func.coalesce(Incident.alarm_count, 1) + 1, version=Incident.version + 1,
                    updated_at=at, updated_by=self.actor_name)
            .returning(Incident.alarm_count, Incident.state, Incident.department_code)).one()
        s.execute(insert(IncidentEvent).values(
            incident_id=case_id, at=at, actor=self.actor_name, action="update", from_state=state, to_state=state,
            department_code=department, note=f"repeated alarm (×{count})",
            payload={"alarm_count": count, "topic": raw.get("_topic"),
                     "feed_run": self.run.run_id if self.run else None, "line": self.line}))
        return "updated"

    def _clear(self, s, case: Optional[Incident], raw: dict, at: datetime) -> str:
        if case is None or not self.iot.close_on_clear:
            return "unchanged"
        note = f"device reported clear (topic {raw.get('_topic')})"
        state = State(case.state)
        if state in (State.REPORTED, State.REGISTERED):
            steps = [(Action.VOID, Role.DISPATCHER, {"reason": "cleared", "note": note})]
        elif state.is_with_department:
            steps = [(Action.RESOLVE, Role.DEPARTMENT, {"note": note}), (Action.VERIFY_PASS, Role.INSPECTOR, {})]
        elif state == State.RESOLVED:
            steps = [(Action.VERIFY_PASS, Role.INSPECTOR, {"note": note})]
        else:   # suspended: the approval that stopped the clock is a person's; the clear does not undo it
            return "unchanged"
        at = max(at, case.updated_at)
        try:
            with s.begin_nested():
                for action, role, params in steps:
                    actor = services.Actor(self.actor_name, role,
                                           case.department_code if role == Role.DEPARTMENT else None)
                    case = services.perform(s, self.rules, actor, case.id, action, version=case.version, now=at,
                                            **params)
        except DomainError as exc:
            log.info("feed %s: clear of case %s not applied: %s", self.feed, case.id, exc)
            return "unchanged"
        return "updated"

    def _count(self, s, outcome: str, record_at: datetime) -> None:
        """A message the folder applied itself counts in the open feed run like an ingested one."""
        run = s.get(FeedRun, self._ingestor().run_id)
        run.received += 1
        setattr(run, outcome, getattr(run, outcome) + 1)
        run.last_record_at = max(filter(None, (run.last_record_at, record_at)))
        run.heartbeat_at = datetime.now(timezone.utc)
        self.run.worker.counts[outcome] += 1
        services.bump_data_version(s)


# --------------------------------------------------------------------------- the subscriber


class MqttSubscriber:
    """Subscribes a feed's topics and applies each message through an :class:`AlarmFolder`.

    ``client_id`` given: a persistent session under that id (the broker queues QoS 1 messages while no
    one is connected); none: a clean session of its own.
    ``start()`` connects (paho's network thread) and starts the processing thread; ``subscribed``
    is set once the broker has granted the subscriptions; ``stop()`` disconnects and closes the
    open feed run. A feed run is closed every ``window`` seconds of traffic. The broker unreachable:
    paho reconnects with backoff (1 s doubling to 60 s) and the feed records a run with status error."""

    def __init__(self, folder: AlarmFolder, url: str, topics: list[str], *, qos: int = 1,
                 username: Optional[str] = None, password: Optional[str] = None, window: float = 60.0,
                 client_id: Optional[str] = None,
                 context: Callable[[], Any] = contextlib.nullcontext):
        import paho.mqtt.client as mqtt
        parts = urlsplit(url)
        self.folder, self.topics, self.qos, self.window = folder, list(topics), qos, float(window)
        self.host, self.port = parts.hostname, parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.context = context           # entered by the processing thread (the app's context)
        self.messages: queue.Queue = queue.Queue()
        self.subscribed = threading.Event()
        self.processed = 0
        self._stop = threading.Event()
        self._error_reported = False
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"cityops-{folder.feed}-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311, clean_session=client_id is None,
                                  manual_ack=client_id is not None)
        # a persistent session acknowledges a QoS 1 message once it is applied (committed), not on
        # receipt: what a worker received but had not applied when it died is delivered again to the next
        self.manual_ack = client_id is not None
        if username is not None:
            self.client.username_pw_set(username, password)
        if parts.scheme == "mqtts":
            self.client.tls_set()
        self.client.reconnect_delay_set(1, 60)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_connect_fail = self._on_connect_fail
        self._thread: Optional[threading.Thread] = None

    def filters(self) -> list[str]:
        return self.topics

    # paho callbacks (its network thread): nothing but queueing
    def _on_connect(self, client, _userdata, _flags, reason_code, _props=None):
        if reason_code.is_failure:
            self._report(f"MQTT broker {self.host}:{self.port} refused the connection: {reason_code}")
            return
        self._error_reported = False
        client.subscribe([(f, self.qos) for f in self.filters()])

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _props=None):
        if any(rc.is_failure for rc in reason_codes):
            self._report(f"MQTT broker {self.host}:{self.port} refused the subscription to "
                         f"{', '.join(self.filters())}")
            return
        self.subscribed.set()

    def _on_message(self, _client, _userdata, msg):
        if self._stop.is_set():    # stopping: not taken (nor acknowledged): the next holder gets it
            return
        self.messages.put((msg.topic, bytes(msg.payload), datetime.now(timezone.utc), msg.mid, msg.qos))

    def _on_connect_fail(self, _client, _userdata):
        self._report(f"MQTT broker {self.host}:{self.port} unreachable")

    def _report(self, error: str) -> None:
        log.warning("feed %s: %s", self.folder.feed, error)
        if not self._error_reported:
            self._error_reported = True
            self.messages.put(("", b"", error, 0, 0))      # recorded by the processing thread

    # ------------------------------------------------------------------ life

    def start(self) -> "MqttSubscriber":
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._process, name=f"mqtt-{self.folder.feed}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Take no more messages, apply (and acknowledge) those taken, close the feed run, disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.client.disconnect()
        self.client.loop_stop()

    def _process(self) -> None:
        with self.context():
            self._loop()

    def _loop(self) -> None:
        opened = None
        while not self._stop.is_set() or not self.messages.empty():
            try:
                topic, payload, at, mid, qos = self.messages.get(timeout=0.2)
            except queue.Empty:
                if opened is not None and time.monotonic() - opened >= self.window:
                    self._safely(self.folder.finish)
                    opened = None
                continue
            if not topic:                     # a connection error to record
                self._safely(self.folder.record_error, at)
                continue
            if opened is None:
                opened = time.monotonic()
            if self._safely(self.folder.handle, topic, payload, at) and self.manual_ack and qos > 0:
                self.client.ack(mid, qos)
            self.processed += 1
        self._safely(self.folder.finish)

    def _safely(self, fn, *args) -> bool:
        try:
            fn(*args)
            return True
        except Exception:     # a database hiccup must not end the subscription; the error is in the log
            log.exception("feed %s: message processing failed", self.folder.feed)
            try:
                self.folder.finish("error", "message processing failed (see the worker's log)")
            except Exception:
                log.exception("feed %s: closing its run failed", self.folder.feed)
            return False


__all__ = ["AlarmFolder", "MqttSubscriber"]
