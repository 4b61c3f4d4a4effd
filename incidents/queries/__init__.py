"""Read models, one per screen: SQL aggregates (GROUP BY in the database), memoized.

    wall.py       the video wall (大屏) and the figures /metrics shares with it
    brief.py      the leaders' brief, its exports and ``/api/v1/kpis`` (the KPI frames and report)
    cases.py      the workbench queue and the case panel (views, scope, search, filters, requests)
    feeds.py      feed health (ops, the wall's feed panel, ``/api/v1/feeds``)
    reference.py  the pack and its reference data: city info, districts, departments, case rules
    ops.py        the operations figures ``/metrics`` reads at scrape time (never memoized)
    _common.py    the SQL pieces they share: state groups as values, data version, time buckets, lights

Public functions take ``now`` and open their own session; the memoized inner functions are keyed
by the data version (and a time bucket where the answer depends on the clock), so many screens
share one computation and a write is seen at the next refresh.
"""
