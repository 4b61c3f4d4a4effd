"""The case page's mini-map is never a blank box: its district and point framed together; a point
outside every district amid the city's district outlines; no location at all: the city and a note."""
from __future__ import annotations

import pytest

from data_sources.runtime import get_runtime


def _figure(server, **case):
    from dashboards import _case
    d = {"district_code": None, "lon": None, "lat": None, "light": "red", "address": "", "title": "t", **case}
    with server.test_request_context():
        return _case.case_map(d).figure


def _points(trace) -> int:
    return sum(1 for x in trace.lon if x is not None)


def test_a_red_case_in_a_district_draws_its_boundary_and_its_red_point(server):
    fig = _figure(server, district_code="330106", lon=120.1293, lat=30.2741)
    boundary, point = fig.data
    assert _points(boundary) > 20 and list(point.lon) == [120.1293] and point.marker.color == "#ff4d4f"
    xs = [x for x in boundary.lon if x is not None]
    assert min(xs) <= fig.layout.map.center.lon <= max(xs) and 8 < fig.layout.map.zoom < 14


def test_a_point_outside_every_district_sits_among_the_citys_district_outlines(server):
    districts = len(get_runtime(server).pack.districts())
    fig = _figure(server, lon=120.95, lat=30.35)        # in Hangzhou Bay, east of 钱塘区
    outlines, point = fig.data
    assert sum(1 for x in outlines.lon if x is None) >= districts    # every district's ring(s)
    # framed with the nearest district: the point and that district both in view, not the sea alone
    c = fig.layout.map.center
    assert 120.4 < c.lon < 120.95 and 30.1 < c.lat < 30.5 and 8 < fig.layout.map.zoom <= 11
    assert not fig.layout.annotations
    near = _figure(server, lon=120.2, lat=30.25, district_code=None)   # just beside a boundary
    assert near.layout.map.zoom <= 11


def test_a_case_without_a_location_shows_the_city_and_says_so(server):
    fig = _figure(server)
    (outlines,) = fig.data
    assert _points(outlines) > 100
    assert [a.text for a in fig.layout.annotations] == ["未标注位置（无坐标）"]
    p = get_runtime(server).pack
    assert (fig.layout.map.center.lat, fig.layout.map.center.lon) == tuple(p.center)
