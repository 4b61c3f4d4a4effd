"""Scheduled jobs and feeds: what ``flask --app app worker`` runs (and, on the embedded default, the
app process itself).

The jobs (:func:`scheduled_jobs`): every ``http`` and ``open311`` feed of ``feeds.toml`` at its
interval, and the demo feed's tick when the demo feed is on. (Alert rules and other periodic work
join the same list.) ``mqtt`` feeds are subscriptions, not jobs (:func:`subscriptions`).

Time is cut into slots of each job's interval, counted from the epoch, so every worker agrees on
them. A :class:`Scheduler` ticks once a second; a job whose slot has come is **claimed** — on Redis
with ``SET <prefix>:job:<name>:<slot> NX`` — and only the worker that got the claim submits it. So a
job runs once per slot however many workers there are.

* with Redis (``WORKER_REDIS_URL``, else a ``redis://`` ``CACHE_URL``): claimed jobs go on an RQ queue
  (``<prefix>-jobs``) with ``Retry`` (waits doubling from the feed's ``retry_backoff``); every worker
  process runs the scheduler and an RQ worker, and holds the mqtt subscriptions whose lease it gets
  (:class:`SubscriptionLease`: one holder per feed, another takes over when it dies);
* without Redis (the embedded default): the scheduler runs inside the app process, in one thread,
  the jobs one after the other with the same retries; a file lock keeps it to one process per
  instance folder (the way the demo feed always ran).

A job function raises to ask for a retry: a feed run that ended in ``error`` does.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional, Protocol

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0


class JobFailed(Exception):
    """A job run that should be tried again (a feed run that ended in error)."""


@dataclass
class Job:
    name: str
    interval: float                    # seconds; its slots are counted from the epoch
    run: Callable[[], object]          # raises to ask for a retry
    retries: int = 0
    backoff: float = 10.0              # first wait before a retry; doubled each time

    def backoffs(self) -> list[int]:
        return [int(min(self.backoff * 2 ** i, max(self.interval, self.backoff))) for i in range(self.retries)]


# --------------------------------------------------------------------------- claims


class Claims(Protocol):
    def claim(self, key: str, ttl: float) -> bool: ...


class RedisClaims:
    """A job-run key set once on Redis: the first worker to set it runs the job."""

    def __init__(self, redis, prefix: str, owner: Optional[str] = None):
        self.redis, self.prefix = redis, prefix
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"

    def claim(self, key: str, ttl: float) -> bool:
        return bool(self.redis.set(f"{self.prefix}:job:{key}", self.owner, nx=True, ex=max(1, int(ttl))))


class LocalClaims:
    """In one process (the embedded default holds a file lock): every claim is granted once."""

    def __init__(self):
        self.seen: set[str] = set()

    def claim(self, key: str, ttl: float) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        if len(self.seen) > 10_000:
            self.seen = {key}
        return True


# --------------------------------------------------------------------------- scheduler


@dataclass
class Scheduler:
    """Claims each job's slots as they come and hands the claimed ones to ``submit(job, slot)``."""

    jobs: list[Job]
    claims: Claims
    submit: Callable[[Job, int], None]
    last: dict[str, int] = field(default_factory=dict)

    def tick(self, now: Optional[float] = None) -> list[tuple[str, int]]:
        now = time.time() if now is None else now
        submitted = []
        for job in self.jobs:
            slot = int(now // job.interval)
            if self.last.get(job.name) == slot:
                continue
            self.last[job.name] = slot
            # the key outlives the slot a little: a worker whose clock runs late must not claim it again
            if self.claims.claim(f"{job.name}:{slot}", job.interval * 2 + 60):
                self.submit(job, slot)
                submitted.append((job.name, slot))
        return submitted

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:    # Redis away for a moment: try again next tick
                log.exception("scheduler tick failed")
            stop.wait(TICK_SECONDS)


def run_with_retries(job: Job, sleep: Callable[[float], None] = time.sleep) -> bool:
    """In-process execution: the job, and its retries after the backoff waits. True when it succeeded."""
    waits = job.backoffs()
    for attempt in range(len(waits) + 1):
        try:
            job.run()
            return True
        except Exception as exc:
            log.warning("job %s failed (try %d of %d): %s", job.name, attempt + 1, len(waits) + 1, exc)
            if attempt < len(waits):
                sleep(waits[attempt])
    return False


# --------------------------------------------------------------------------- the product's jobs


def _feed_job(server, feed) -> Job:
    from data_sources.runtime import get_runtime
    from data_sources.store.db import get_db

    def run():
        from data_sources.feeds import pull
        from data_sources.feeds.open311_client import Open311Client, pull_open311
        rt = get_runtime(server)
        db = get_db(server)
        spec = feed.spec
        now = datetime.now(timezone.utc)
        try:
            if spec.kind == "http":
                token = feed.secret("token_env")
                client = pull.HttpClient(headers={"Authorization": f"Bearer {token}"} if token else {},
                                         max_tries=2)
                result = pull.pull(db, rt.rules, rt.pack, pull.PullSource(
                    url=spec.url, feed=feed.name, mapping=feed.mapping, source_label=feed.source,
                    cursor_param=spec.cursor_param, cursor_field=spec.cursor_field, limit_param=spec.limit_param,
                    page_size=spec.page_size), client=client, now=now, crs=spec.crs)
                error = result.error
            else:
                client = Open311Client(spec.url, jurisdiction_id=spec.jurisdiction_id,
                                       api_key=feed.secret("api_key_env"), http=pull.HttpClient(max_tries=2))
                error = pull_open311(db, rt.rules, rt.pack, client, now - timedelta(hours=spec.lookback_hours), now,
                                     feed=feed.name, source_label=feed.source, now=now).error
        except KeyError as exc:   # a credential's variable is not set: the run says so (no retry helps)
            from data_sources.ingest import Ingestor
            Ingestor(db, rt.rules, rt.pack, feed.mapping, feed.name, feed.source, now=now).finish(
                "error", str(exc.args[0]))
            return
        if error:
            raise JobFailed(f"feed {feed.name}: {error}")

    return Job(f"feed:{feed.name}", feed.spec.interval, run, retries=feed.spec.retries,
               backoff=feed.spec.retry_backoff)


def _demo_job(server) -> Job:
    holder: dict = {}

    def run():
        from data_sources.feeds import simulator
        from data_sources.store.db import session_scope
        if "sim" not in holder:
            holder["sim"] = simulator.build(server)
        with session_scope(server) as s:
            simulator.tick(s, holder["sim"], datetime.now(timezone.utc))

    return Job("demo-tick", float(server.config["DEMO_TICK_SECONDS"]), run)


def declared_feeds(server) -> list:
    """The feeds of the feeds file in force (FEEDS_FILE, instance/feeds.toml, the pack's), enabled ones."""
    from data_sources.feeds.config import feeds_file, read_feeds
    from data_sources.runtime import get_runtime
    path = feeds_file(str(server.config.get("FEEDS_FILE") or ""), server.instance_path, get_runtime(server).pack.path)
    return [f for f in read_feeds(path) if f.spec.enabled] if path else []


def scheduled_jobs(server, feeds: Optional[list] = None) -> list[Job]:
    feeds = declared_feeds(server) if feeds is None else feeds
    jobs = [_feed_job(server, f) for f in feeds if f.spec.kind != "mqtt"]
    if server.config.get("DEMO_FEED"):
        jobs.append(_demo_job(server))
    return jobs


def subscription_factories(server, feeds: Optional[list] = None, *,
                           client_prefix: Optional[str] = None) -> list[tuple[str, Callable[[], object]]]:
    """(feed name, a maker of its unstarted MqttSubscriber) per mqtt feed; ``client_prefix``: the
    subscriber connects as ``<prefix>-<feed>`` with a persistent session (the worker's lease)."""
    from data_sources.feeds.mqtt import AlarmFolder, MqttSubscriber
    from data_sources.packs import load_iot
    from data_sources.runtime import get_runtime
    from data_sources.store.db import get_db
    feeds = declared_feeds(server) if feeds is None else feeds
    rt = get_runtime(server)
    out = []
    for f in feeds:
        if f.spec.kind != "mqtt":
            continue
        iot = load_iot(rt.pack)
        username, password = f.secret("username_env"), f.secret("password_env")   # KeyError: not set

        def make(f=f, iot=iot, username=username, password=password):
            folder = AlarmFolder(get_db(server), rt.rules, rt.pack, iot, f.mapping, f.name, f.source, crs=f.spec.crs)
            return MqttSubscriber(folder, f.spec.url, f.spec.topics, qos=f.spec.qos, username=username,
                                  password=password, window=f.spec.interval, context=server.app_context,
                                  client_id=f"{client_prefix}-{f.name}"[:64] if client_prefix else None)
        out.append((f.name, make))
    return out


def subscriptions(server, feeds: Optional[list] = None) -> list:
    """An (unstarted) MqttSubscriber per mqtt feed, for this process alone."""
    return [make() for _name, make in subscription_factories(server, feeds)]


_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class SubscriptionLease:
    """One worker at a time holds a feed's subscription: a Redis key with a TTL its holder renews
    (every ttl/3). A holder that dies lets it expire and another worker takes the feed over; one that
    stops releases it at once."""

    def __init__(self, redis, key: str, make: Callable[[], object], *, owner: Optional[str] = None,
                 ttl: float = 30.0):
        self.redis, self.key, self.make, self.ttl = redis, key, make, max(1, int(ttl))
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self.sub = None

    def step(self) -> bool:
        """Take, keep or lose the lease once; start or stop the subscriber to match. True when held."""
        try:
            if self.sub is None:
                held = bool(self.redis.set(self.key, self.owner, nx=True, ex=self.ttl))
            else:
                held = bool(self.redis.eval(_RENEW, 1, self.key, self.owner, self.ttl))
        except Exception:    # Redis away for a moment: keep what we have until the key would expire
            log.exception("subscription lease %s: Redis unreachable", self.key)
            held = self.sub is not None
        if held and self.sub is None:
            self.sub = self.make()
            self.sub.start()
            log.info("subscription %s taken by %s", self.key, self.owner)
        elif not held and self.sub is not None:
            log.warning("subscription %s lost by %s", self.key, self.owner)
            self.sub.stop()
            self.sub = None
        return held

    def release(self) -> None:
        if self.sub is not None:
            self.sub.stop()
            self.sub = None
        try:
            self.redis.eval(_RELEASE, 1, self.key, self.owner)
        except Exception:
            log.exception("subscription lease %s: not released (it expires)", self.key)

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(self.ttl / 3)
        self.release()


# --------------------------------------------------------------------------- Redis / RQ


def redis_url(cfg) -> str:
    """The Redis the jobs go through: WORKER_REDIS_URL, else a redis:// CACHE_URL; "" = none."""
    url = str(cfg.get("WORKER_REDIS_URL") or "")
    if not url and str(cfg.get("CACHE_URL") or "").startswith(("redis://", "rediss://", "unix://")):
        url = str(cfg["CACHE_URL"])
    return url


#: the jobs of the worker process, by name, for RQ's job function (RQ stores the name, not the function)
_JOBS: dict[str, Job] = {}


def run_job(name: str) -> None:
    """RQ's job function: run the named job of this worker process."""
    job = _JOBS.get(name)
    if job is None:
        raise JobFailed(f"job {name} is not declared in this worker (feeds.toml changed?)")
    job.run()


def rq_submitter(queue) -> Callable[[Job, int], None]:
    from rq import Retry

    def submit(job: Job, slot: int) -> None:
        _JOBS[job.name] = job
        waits = job.backoffs()
        queue.enqueue(run_job, job.name, job_id=re.sub(r"[^A-Za-z0-9_-]", "-", f"{job.name}-{slot}"),
                      retry=Retry(max=len(waits), interval=waits) if waits else None,
                      job_timeout=max(60, int(job.interval * 4)), result_ttl=3600, failure_ttl=24 * 3600,
                      description=f"{job.name} slot {slot}")
    return submit


def queue_name(cfg) -> str:
    return f"{cfg.get('WORKER_PREFIX') or 'cityops'}-jobs"


# --------------------------------------------------------------------------- in the app process


class InProcess:
    """The scheduler and the mqtt subscriptions in a thread of this process (the embedded default),
    at most one per instance folder on this machine (a file lock: the first process of a gunicorn
    or reloader family gets it)."""

    def __init__(self, server, lock_path: Optional[str] = None):
        self.server = server
        self.lock_path = lock_path or os.path.join(server.instance_path, "jobs.lock")
        self.stop_event = threading.Event()
        self.started = threading.Event()     # jobs and subscriptions set up (or failed: see the log)
        self.thread: Optional[threading.Thread] = None
        self.jobs: list[Job] = []
        self.subs: list = []
        self._lock_file = None

    def start(self) -> bool:
        """True when this process runs the jobs now; False when another process holds the lock."""
        import fcntl
        os.makedirs(os.path.dirname(self.lock_path), exist_ok=True)
        fh = open(self.lock_path, "w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            log.info("scheduled jobs run in another process")
            return False
        self._lock_file = fh
        self.thread = threading.Thread(target=self._run, name="cityops-jobs", daemon=True)
        self.thread.start()
        return True

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _run(self) -> None:
        server = self.server
        with server.app_context():
            from data_sources.feeds.config import FeedsError
            try:
                feeds = declared_feeds(server)
            except FeedsError as exc:   # the other jobs (the demo feed) still run; `worker --check` says more
                log.error("feeds file error, no declared feed runs: %s", exc)
                feeds = []
            try:
                self.jobs = scheduled_jobs(server, feeds)
                self.subs = [s.start() for s in subscriptions(server, feeds)]
            except Exception:
                log.exception("feeds.toml: scheduled jobs not started")
                return
            finally:
                self.started.set()
            log.info("scheduled jobs in the app process: %s; mqtt feeds: %d",
                     ", ".join(j.name for j in self.jobs) or "none", len(self.subs))
            scheduler = Scheduler(self.jobs, LocalClaims(), lambda job, _slot: run_with_retries(job))
            try:
                scheduler.run_forever(self.stop_event)
            finally:
                for sub in self.subs:
                    sub.stop()


_in_process_lock = threading.Lock()
_in_process: dict[str, object] = {}


def ensure_in_process(server) -> None:
    """On the embedded default (no Redis for jobs): the scheduler and the mqtt subscriptions inside
    this process, once (:class:`InProcess`). With Redis the worker runs them."""
    if _in_process or not _in_process_lock.acquire(blocking=False):
        return
    try:
        if not _in_process:
            runner = InProcess(server) if not redis_url(server.config) else None
            _in_process["runner"] = runner if runner is not None and runner.start() else None
    finally:
        _in_process_lock.release()


__all__ = ["InProcess", "Job", "JobFailed", "LocalClaims", "RedisClaims", "Scheduler", "SubscriptionLease", "declared_feeds", "ensure_in_process",
           "queue_name", "redis_url", "rq_submitter", "run_job", "run_with_retries", "scheduled_jobs",
           "subscription_factories", "subscriptions"]
