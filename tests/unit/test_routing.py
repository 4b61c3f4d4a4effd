"""Routing on the Hangzhou pack: point → district and grid, rules → department with a reason."""
from __future__ import annotations

import numpy as np
import pytest

from data_sources.packs import load_pack
from incidents.routing import AreaIndex, Router, Rule, bbox_around, distance_m


@pytest.fixture(scope="module")
def pack():
    return load_pack("hangzhou")


@pytest.fixture(scope="module")
def index(pack):
    return AreaIndex([(a.code, a.geometry) for a in pack.districts()],
                     [(a.code, a.parent_code, a.geometry) for a in pack.grids()])


@pytest.fixture(scope="module")
def router(pack):
    return Router([Rule(int(r.id), r.category_code, r.area_code, r.department_code, r.note) for r in pack.routing_rules],
                  major_of={c.code: c.major_code for c in pack.categories}, triage_department=pack.triage_department,
                  category_names={c.code: c.name for c in pack.categories},
                  area_names={a.code: a.name for a in pack.areas},
                  department_names={d.code: d.name for d in pack.departments})


def test_a_point_inside_each_district_is_located_in_it_and_in_one_of_its_grid_cells(pack, index):
    for d in pack.districts():
        p = d.geometry.representative_point()
        district, grid = index.locate(p.x, p.y)
        assert district == d.code
        assert grid is not None and grid.startswith(d.code)


def test_a_point_outside_the_city_has_no_area(index):
    assert index.locate(116.39, 39.91) == (None, None)  # Beijing
    assert index.locate(None, None) == (None, None)


def test_vectorised_lookup_agrees_with_single_lookups(pack, index):
    rng = np.random.default_rng(1)
    lons, lats = rng.uniform(118.4, 120.7, 300), rng.uniform(29.2, 30.55, 300)
    many = index.locate_many(lons, lats)
    assert list(zip(*many)) == [index.locate(x, y) for x, y in zip(lons, lats)]


def test_each_district_routes_its_district_rules_to_its_own_department(pack, index, router):
    for d in pack.districts():
        rules = [r for r in pack.routing_rules if r.area_code == d.code]
        assert rules, f"no district rule for {d.name}"
        p = d.geometry.representative_point()
        district, grid = index.locate(p.x, p.y)
        for rule in rules:
            s = router.route(rule.category_code, district, grid)
            assert s.department_code == rule.department_code
            assert s.rule_id == int(rule.id) and d.name in s.reason


def test_a_category_without_a_district_rule_uses_the_city_rule(pack, router):
    citywide = {r.category_code: r for r in pack.routing_rules if r.area_code is None and r.category_code != "*"}
    district_rules = {(r.category_code, r.area_code) for r in pack.routing_rules if r.area_code}
    code = next(c for c in citywide if (c, "330106") not in district_rules and c in router.major_of)
    s = router.route(code, "330106", None)
    assert s.department_code == citywide[code].department_code and "全市" in s.reason


def test_an_unknown_category_goes_to_triage_with_a_reason(pack, router):
    s = router.route("X9999", "330106", None)
    assert s.department_code == pack.triage_department and s.rule_id is None
    assert "X9999" in s.reason


def test_distance_and_bounding_box():
    # 0.001° of latitude is about 111 m
    assert distance_m(120.0, 30.0, 120.0, 30.001) == pytest.approx(111.2, abs=0.2)
    min_lon, min_lat, max_lon, max_lat = bbox_around(120.0, 30.0, 100)
    assert distance_m(120.0, 30.0, max_lon, 30.0) == pytest.approx(100, rel=1e-3)
    assert distance_m(120.0, 30.0, 120.0, max_lat) == pytest.approx(100, rel=1e-3)
