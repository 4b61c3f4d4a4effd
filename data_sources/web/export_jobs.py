"""Background export jobs for the embedded default: a thread of the app process builds the file in
the instance folder (``EXPORT_DIR``) while the request that asked for it has long returned, so no
export holds a web worker, whatever its size (DESIGN §9: big exports are jobs).

A job is two files beside each other: ``<id>.json`` (who asked, for what, its state, its progress,
written atomically on every change) and the file it makes. Any worker of the same host reads the
state from the folder, so a gunicorn worker can answer the status of a job another one runs.
Same asker and same parameters while a job is queued, running or done: the same job. Finished
files are removed ``EXPORT_KEEP_MINUTES`` after they were made; a job whose thread stopped
writing (its process ended) reads as failed after ``STALE_AFTER``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from flask import Flask

from data_sources.store.db import is_unavailable

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
#: a running job writes its record at least this often (each progress step, or a heartbeat)
STALE_AFTER = 600.0
#: at most this many export threads per process; more wait their turn (state "queued")
CONCURRENT = 2
_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass
class Progress:
    """What a running job hands its work: ``step(done, total)`` as rows are written."""
    jobs: "Jobs"
    job_id: str
    every: int = 2000
    _last: int = -1

    def stage(self, name: str, total: Optional[int] = None) -> None:
        self.jobs._update(self.job_id, stage=name, **({"rows_total": total} if total is not None else {}))

    def step(self, done: int, total: int) -> None:
        if done == total or done - self._last >= self.every:
            self._last = done
            self.jobs._update(self.job_id, rows_done=done, rows_total=total)


class Jobs:
    def __init__(self, folder: Path, keep_seconds: float):
        self.folder = Path(folder)
        self.keep_seconds = keep_seconds
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(CONCURRENT)

    # ------------------------------------------------------------------ records

    def _record_path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def file_path(self, job: dict) -> Path:
        return self.folder / f"{job['id']}.{job['ext']}"

    def get(self, job_id: str) -> Optional[dict]:
        if not job_id or not set(job_id) <= _ID_CHARS or len(job_id) > 64:
            return None
        try:
            job = json.loads(self._record_path(job_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if job["state"] in (QUEUED, RUNNING) and time.time() - job["updated"] > STALE_AFTER:
            job.update(state=FAILED, error="the export stopped (its process ended); start it again")
        return job

    def _write(self, job: dict) -> None:
        job["updated"] = time.time()
        tmp = self._record_path(job["id"]).with_suffix(f".json.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self._record_path(job["id"]))

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            job = json.loads(self._record_path(job_id).read_text(encoding="utf-8"))
            job.update(changes)
            self._write(job)

    # ------------------------------------------------------------------ running

    def start(self, app: Flask, *, owner: str, kind: str, ext: str, params: dict,
              work: Callable[[Path, Progress], None]) -> dict:
        """The job of ``owner`` for ``kind`` with ``params``: the one already queued, running or
        done, else a new one whose ``work(path, progress)`` runs in a thread inside an app context."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(json.dumps([owner, kind, params], sort_keys=True).encode()).hexdigest()[:32]
        with self._lock:
            self._sweep()
            for path in self.folder.glob("*.json"):
                job = self.get(path.stem)
                if job and job.get("key") == key and job["state"] != FAILED and (
                        job["state"] != DONE or self.file_path(job).exists()):
                    return job
            job = {"id": secrets.token_urlsafe(18), "key": key, "owner": owner, "kind": kind, "ext": ext,
                   "params": params, "state": QUEUED, "stage": "", "rows_done": 0, "rows_total": None,
                   "error": None, "created": time.time()}
            self._write(job)
        threading.Thread(target=self._run, args=(app, job["id"], work), name=f"export-{job['id'][:8]}",
                         daemon=True).start()
        return job

    def _run(self, app: Flask, job_id: str, work) -> None:
        with self._slots:
            job = self.get(job_id)
            if job is None:
                return
            self._update(job_id, state=RUNNING)
            part = self.file_path(job).with_suffix(f".{job['ext']}.part")
            try:
                with app.app_context():
                    work(part, Progress(self, job_id))
                os.replace(part, self.file_path(job))
                self._update(job_id, state=DONE, stage="done", finished=time.time())
            except Exception as exc:  # a job's failure is its record's, never the process's
                part.unlink(missing_ok=True)
                if is_unavailable(exc):   # the database away or too slow: worth trying again shortly
                    log.warning("export job %s: database unavailable (%s)", job_id, type(exc).__name__)
                    self._update(job_id, state=FAILED, unavailable=True,
                                 error="the database is not reachable at the moment; try again shortly")
                else:
                    log.exception("export job %s failed", job_id)
                    self._update(job_id, state=FAILED, error=f"{type(exc).__name__}: {exc}"[:500])

    def _sweep(self) -> None:
        """Removes the files of jobs finished (or failed) longer than ``keep_seconds`` ago."""
        now = time.time()
        for path in self.folder.glob("*.json"):
            job = self.get(path.stem)
            if job is None or job["state"] in (QUEUED, RUNNING):
                continue
            if now - job.get("finished", job["updated"]) > self.keep_seconds:
                self.file_path(job).unlink(missing_ok=True)
                path.unlink(missing_ok=True)


def wait(jobs: Jobs, job: dict, seconds: float, *, poll: float = 0.2) -> dict:
    """The job once it is done or failed, or as it stands after ``seconds``."""
    deadline = time.monotonic() + seconds
    while job["state"] in (QUEUED, RUNNING) and time.monotonic() < deadline:
        time.sleep(poll)
        job = jobs.get(job["id"]) or job
    return job
