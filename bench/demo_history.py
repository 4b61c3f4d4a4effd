"""The first start's demo history: ``init-db`` on a fresh SQLite file with ``--days`` of history
(cases, their events, fact rows and planned steps; the 一网通办 service rates and KPI feed; the
demo users), timed as a whole and by part.

    python -m bench.demo_history --days 460          # the default first start (≈ 520,000 cases)
    python -m bench.demo_history --days 30 --keep /tmp/demo.db

Prints the counts, cases/s and seconds, and ends with
``RESULT demo_days=… demo_cases=… demo_events=… demo_seconds=… history_seconds=… cases_per_s=…``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timezone

from bench._common import header


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=460)
    ap.add_argument("--pack", default="hangzhou")
    ap.add_argument("--seed", type=int, default=None, help="DEMO_SEED (default: the app's)")
    ap.add_argument("--keep", default="", help="write the database here and keep it (default: a temporary file)")
    args = ap.parse_args(argv)
    header("demo history: init-db on a fresh SQLite file", argv)

    from app import create_app
    from data_sources.feeds import simulator
    from data_sources.seed import ConsoleProgress, init_db
    from data_sources.store.db import get_db

    folder = "" if args.keep else tempfile.mkdtemp(prefix="cityops-demo-")
    path = args.keep or os.path.join(folder, "cityops.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    overrides = {"DATABASE_URL": f"sqlite:///{path}", "PACK": args.pack, "DEMO_FEED": False, "TESTING": True,
                 "SECRET_KEY": "bench", "DEMO_HISTORY_DAYS": args.days}
    if args.seed is not None:
        overrides["DEMO_SEED"] = args.seed
    server = create_app(overrides).server
    marks: dict[str, float] = {}
    progress = ConsoleProgress()

    def on_progress(p: simulator.HistoryProgress) -> None:
        marks.setdefault("history_start", p.started)
        progress(p)

    lines: list[str] = []

    def echo(line: str = "") -> None:
        if line.startswith("demo history:"):      # seed_history has returned (indexes built)
            marks["history_end"] = time.monotonic()
        lines.append(f"{time.monotonic() - t0:6.1f} s  {line}")

    t0 = time.monotonic()
    result = init_db(server, echo=echo, seed_demo=True, now=datetime.now(timezone.utc), progress=on_progress)
    returned = time.monotonic() - t0
    get_db(server).dispose()        # the last connection closes: SQLite checkpoints the WAL into the file
    total = time.monotonic() - t0
    for line in lines:          # what init-db said, at the second it said it (not the demo passwords)
        if line[10:].strip() and not line[10:].startswith("  "):
            print(line)
    print(f"{returned:6.1f} s  init-db returned (after the demo users and ANALYZE)")
    print(f"{total:6.1f} s  connections closed (the WAL checkpointed into the database file)")
    h = result.get("history", {"cases": 0, "events": 0, "planned_steps": 0})
    history = marks.get("history_end", t0) - marks.get("history_start", t0)
    size = sum(os.path.getsize(path + x) for x in ("", "-wal") if os.path.exists(path + x)) / 1e6
    print(f"cases {h['cases']:,}, events {h['events']:,}, planned steps {h['planned_steps']:,}, "
          f"service rates {result['service_rates']['service_rates']:,}, KPI values {result['service_rates']['kpi_values']:,}")
    print(f"history (generate + write + facts + indexes) {history:.1f} s = {h['cases'] / max(history, 1e-9):,.0f} cases/s; "
          f"init-db as a whole, connections closed {total:.1f} s; database {size:,.0f} MB ({path})")
    print(f"RESULT demo_days={args.days} demo_cases={h['cases']} demo_events={h['events']} "
          f"demo_seconds={total:.1f} history_seconds={history:.1f} cases_per_s={h['cases'] / max(history, 1e-9):.0f}")
    if not args.keep:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        os.rmdir(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
