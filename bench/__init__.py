"""Benchmarks (DESIGN §10): they print figures and ratios with the command, data size and machine
so a run can be reproduced; they are never timed assertions in tests.

    python -m bench                      # all, small defaults
    python -m bench.actions --cases 1000000 --db both
    python -m bench.routing --points 100000
    python -m bench.ingest --records 1000000 --db both
"""
