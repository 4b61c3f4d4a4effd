"""Run every benchmark with small defaults: ``python -m bench`` (``make bench``).

Bigger runs: ``python -m bench.actions --cases 1000000 --db both``, ``python -m bench.routing``,
``python -m bench.ingest --records 1000000 --db both``, ``python -m bench.queue --cases 1000000 --db both``,
``python -m bench.wall --cases 1000000 --db sqlite``,
``python -m bench.repeats --cases 1000000 --db both``, ``python -m bench.demo_history --days 400``.
"""
from __future__ import annotations

import os
import sys

from bench import actions, demo_history, ingest, queue, repeats, routing, wall


def main() -> int:
    routing.main(["--points", "100000", "--single", "2000", "--routes", "50000"])
    print()
    backends = "both" if os.environ.get("CITYOPS_BENCH_POSTGRESQL", "1") != "0" else "sqlite"
    actions.main(["--cases", "20000", "--actions", "200", "--db", backends])
    print()
    ingest.main(["--records", "5000", "--db", backends])
    print()
    queue.main(["--cases", "20000", "--db", backends, "--repeats", "10"])
    print()
    wall.main(["--cases", "20000", "--db", "sqlite", "--screens", "10", "--seconds", "15"])
    print()
    repeats.main(["--cases", "20000", "--samples", "100", "--db", backends])
    print()
    demo_history.main(["--days", "14"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
