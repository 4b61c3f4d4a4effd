"""City pack loader (data_sources.packs) and the Hangzhou pack's content."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import pytest
import shapely
from shapely.geometry import Point

from data_sources.coords import gcj02_to_wgs84
from data_sources.packs import Area, Category, Department, Pack, PackError, RoutingRule, ServiceItem, load_pack

HANGZHOU_DISTRICTS = {
    "330102": "上城区",
    "330105": "拱墅区",
    "330106": "西湖区",
    "330108": "滨江区",
    "330109": "萧山区",
    "330110": "余杭区",
    "330111": "富阳区",
    "330112": "临安区",
    "330113": "临平区",
    "330114": "钱塘区",
    "330122": "桐庐县",
    "330127": "淳安县",
    "330182": "建德市",
}
CORE = ("330102", "330105", "330106", "330108")
OUTER = ("330111", "330112", "330122", "330127", "330182")


@pytest.fixture(scope="module")
def hangzhou() -> Pack:
    return load_pack("hangzhou")


# --------------------------------------------------------------------------- the Hangzhou pack


def test_dataclasses_have_exactly_the_agreed_fields():
    names = lambda cls: tuple(f.name for f in dataclasses.fields(cls))  # noqa: E731
    assert names(Department) == ("code", "name", "name_en", "level", "district_code", "parent_code")
    assert names(Area) == ("code", "name", "level", "parent_code", "geometry")
    assert names(Category) == (
        "code", "kind", "major_code", "major_name", "name", "name_en", "time_limit", "time_unit",
        "dup_radius_m", "dup_window_h", "demo_weight", "urgent",
    )  # fmt: skip
    assert names(RoutingRule) == ("id", "category_code", "area_code", "department_code", "note")
    assert names(Pack) == (
        "name", "title", "title_en", "timezone", "crs", "center", "zoom", "office_hours", "holiday_source",
        "calendar_overrides", "triage_department", "kpi_targets", "kpi_weights", "priority_factors", "demo",
        "departments", "areas", "categories", "routing_rules", "path", "service_items", "workflow", "wall", "repeats",
    )  # fmt: skip
    assert names(ServiceItem) == ("department", "code", "name", "daily", "online_bias")


def test_hangzhou_pack_loads_by_name_and_by_path(hangzhou):
    assert hangzhou.name == "hangzhou"
    assert hangzhou.title == "杭州市"
    assert hangzhou.timezone == "Asia/Shanghai"
    assert hangzhou.crs == "WGS84"
    assert hangzhou.holiday_source == "chinese-calendar"
    assert hangzhou.office_hours == [(dt.time(8, 30), dt.time(12)), (dt.time(13, 30), dt.time(17, 30))]
    assert hangzhou.center == pytest.approx((29.9, 119.55))
    assert load_pack(str(hangzhou.path)).name == "hangzhou"


def test_hangzhou_has_the_13_county_level_districts(hangzhou):
    districts = {a.code: a.name for a in hangzhou.districts()}
    assert districts == HANGZHOU_DISTRICTS


def test_hangzhou_districts_form_a_coverage_without_overlaps(hangzhou):
    geoms = [a.geometry for a in hangzhou.districts()]
    assert all(g.is_valid for g in geoms)
    assert shapely.coverage_is_valid(geoms)


def test_every_hangzhou_grid_lies_under_its_district(hangzhou):
    districts = {a.code: a for a in hangzhou.districts()}
    grids = hangzhou.grids()
    assert len(grids) > 500
    for grid in grids:
        assert grid.parent_code in districts
        assert re.fullmatch(rf"{grid.parent_code}\d{{4}}", grid.code)
        outside = grid.geometry.difference(districts[grid.parent_code].geometry).area
        assert outside < 1e-3 * grid.geometry.area


def test_hangzhou_grids_cover_each_district(hangzhou):
    for district in hangzhou.districts():
        cells = [g.geometry for g in hangzhou.grids() if g.parent_code == district.code]
        covered = shapely.union_all(cells).intersection(district.geometry).area
        assert covered / district.geometry.area > 0.999, district.name


def test_hangzhou_grids_are_finer_in_the_urban_core(hangzhou):
    def mean_area(code: str) -> float:
        cells = [g.geometry.area for g in hangzhou.grids() if g.parent_code == code]
        return sum(cells) / len(cells)

    assert mean_area("330102") < mean_area("330127")  # 上城区 < 淳安县
    assert max(mean_area(c) for c in CORE) < min(mean_area(c) for c in OUTER)


@pytest.mark.parametrize(
    ("lon", "lat", "district"),
    [(120.15, 30.25, "330106"), (120.2065, 30.2104, "330108"), (119.0368, 29.6114, "330127")],
    ids=["west-lake-in-xihu", "binjiang-government", "qiandao-lake-town-in-chunan"],
)
def test_a_wgs84_point_falls_in_the_right_district(hangzhou, lon, lat, district):
    found = [a.code for a in hangzhou.districts() if a.geometry.contains(Point(lon, lat))]
    assert found == [district]


def test_hangzhou_has_at_least_40_small_categories_of_both_kinds(hangzhou):
    kinds = {c.kind for c in hangzhou.categories}
    assert len(hangzhou.categories) >= 40
    assert kinds == {"component", "event"}
    majors = {(c.kind, c.major_name) for c in hangzhou.categories}
    for major in ("公用设施", "道路交通", "市容环境", "园林绿化", "房屋土地", "其他设施"):
        assert ("component", major) in majors
    for major in ("市容环境", "宣传广告", "施工管理", "突发事件", "街面秩序", "其他事件"):
        assert ("event", major) in majors


def test_hangzhou_emergencies_run_on_natural_hours(hangzhou):
    urgent = [c for c in hangzhou.categories if c.urgent]
    assert urgent
    assert all(c.time_unit == "natural_hours" for c in urgent)


def test_the_common_city_problems_dominate_the_demo_weights(hangzhou):
    ranked = sorted(hangzhou.categories, key=lambda c: -c.demo_weight)
    top = {c.name for c in ranked[:8]}
    assert {"暴露垃圾", "占道经营", "非机动车乱停放", "机动车乱停放"} <= top


def test_every_hangzhou_category_is_routed_city_wide(hangzhou):
    citywide = {r.category_code for r in hangzhou.routing_rules if r.area_code is None}
    for c in hangzhou.categories:
        assert {c.code, c.major_code, "*"} & citywide, c.code
    assert any(r.category_code == "*" and r.department_code == hangzhou.triage_department for r in hangzhou.routing_rules)


def test_in_every_district_exposed_garbage_has_a_rule_to_that_districts_own_department(hangzhou):
    garbage = next(c for c in hangzhou.categories if c.name == "暴露垃圾")
    for district in hangzhou.districts():
        rules = [r for r in hangzhou.routing_rules if r.category_code == garbage.code and r.area_code == district.code]
        assert len(rules) == 1
        assert hangzhou.department(rules[0].department_code).district_code == district.code


def test_pack_helpers_find_by_code(hangzhou):
    assert hangzhou.department(hangzhou.triage_department).level == "triage"
    first = hangzhou.categories[0]
    assert hangzhou.category(first.code) is first
    with pytest.raises(KeyError):
        hangzhou.category("NOPE")
    with pytest.raises(KeyError):
        hangzhou.department("NOPE")


def test_hangzhou_demo_hotspots_lie_inside_the_city(hangzhou):
    city = shapely.union_all([a.geometry for a in hangzhou.districts()])
    spots = hangzhou.demo["hotspots"]
    assert len(spots) >= 8
    for spot in spots:
        assert city.contains(Point(spot["lon"], spot["lat"])), spot["name"]
    weights = hangzhou.demo["district_weights"]
    assert set(weights) == set(HANGZHOU_DISTRICTS)
    assert sum(weights[c] for c in CORE) > sum(weights[c] for c in OUTER)


def test_hangzhou_pack_folder_stays_small(hangzhou):
    size = sum(p.stat().st_size for p in hangzhou.path.iterdir() if p.is_file())
    assert size < 2 * 1024 * 1024


def test_unknown_pack_name_is_a_pack_error():
    with pytest.raises(PackError, match="unknown pack 'atlantis'"):
        load_pack("atlantis")


# --------------------------------------------------------------------------- a tiny pack in tmp_path

PACK_TOML = """\
name = "tiny"
title = "小城"
title_en = "Tiny"
timezone = "Asia/Shanghai"
crs = "{crs}"
center = [30.05, 120.05]
zoom = 11
holiday_source = "none"
triage_department = "T-TRIAGE"

[office_hours]
periods = [["09:00", "12:00"], ["13:00", "17:00"]]

[kpi.targets]
closure_rate = 0.95

[kpi.weights]
closure_rate = 1.0

[priority_factors]
normal = 1.0
urgent = 0.5

[demo]
[[demo.hotspots]]
name = "centre"
lon = 120.05
lat = 30.05
weight = 1
radius_km = 0.5
"""

DEPARTMENTS = """\
code,name,name_en,level,district_code,parent_code
T-TRIAGE,分拨中心,Triage,triage,,
T-CITY,城管局,City bureau,city,,
T-D1,一区城管,D1 bureau,district,D1,T-CITY
T-D2,二区城管,D2 bureau,district,D2,T-CITY
"""

CATEGORIES = """\
code,kind,major_code,major_name,name,name_en,time_limit,time_unit,dup_radius_m,dup_window_h,demo_weight,urgent
C0101,component,C01,公用设施,上水井盖,Water cover,1,work_days,30,72,1,false
E0101,event,E01,市容环境,暴露垃圾,Garbage,2,work_hours,50,24,5,false
E0102,event,E01,市容环境,乱堆物堆料,Stacking,4,work_hours,50,24,3,false
E0401,event,E04,突发事件,路面塌陷,Road collapse,2,natural_hours,100,24,0.1,true
"""

ROUTING = """\
id,category_code,area_code,department_code,note
1,C0101,,T-CITY,water
2,E01,,T-CITY,city
3,E0101,D1,T-D1,district one
4,*,,T-TRIAGE,fallback
"""


def _square(x0: float, y0: float, size: float) -> list:
    return [[[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]]


def _feature(code, name, level, parent, coords, gtype="Polygon") -> dict:
    return {
        "type": "Feature",
        "properties": {"code": code, "name": name, "level": level, "parent_code": parent},
        "geometry": {"type": gtype, "coordinates": coords},
    }


def _areas() -> dict:
    return {
        "type": "FeatureCollection",
        "features": [
            _feature("D1", "一区", "district", None, _square(120.0, 30.0, 0.1)),
            _feature("D2", "二区", "district", None, _square(120.1, 30.0, 0.1)),
            _feature("D10001", "一区网格0001", "grid", "D1", _square(120.0, 30.0, 0.05)),
            _feature("D20001", "二区网格0001", "grid", "D2", _square(120.1, 30.0, 0.05)),
        ],
    }


def write_pack(folder: Path, *, crs="WGS84", toml=None, areas=None, departments=DEPARTMENTS,
               categories=CATEGORIES, routing=ROUTING, calendar=None) -> Path:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pack.toml").write_text(toml if toml is not None else PACK_TOML.format(crs=crs), encoding="utf-8")
    (folder / "areas.geojson").write_text(json.dumps(areas or _areas(), ensure_ascii=False), encoding="utf-8")
    for name, text in (("departments.csv", departments), ("categories.csv", categories), ("routing.csv", routing)):
        if text is not None:
            (folder / name).write_text(text, encoding="utf-8")
    if calendar is not None:
        (folder / "calendar.csv").write_text(calendar, encoding="utf-8")
    return folder


def test_a_valid_tiny_pack_loads(tmp_path):
    pack = load_pack(str(write_pack(tmp_path / "tiny")))
    assert [a.code for a in pack.districts()] == ["D1", "D2"]
    assert [a.code for a in pack.grids()] == ["D10001", "D20001"]
    assert pack.category("E0401").urgent is True
    assert pack.category("E0401").time_limit == 2.0
    assert pack.department("T-D1").district_code == "D1"
    assert pack.routing_rules[2] == RoutingRule("3", "E0101", "D1", "T-D1", "district one")
    assert pack.calendar_overrides == {}
    assert pack.path == (tmp_path / "tiny").resolve()


def test_the_workflow_rules_are_pack_data_with_defaults(hangzhou, tmp_path):
    wf = hangzhou.workflow
    assert wf.sign_for_hours == {"normal": 2.0, "urgent": 1.0, "emergency": 0.5}
    assert wf.max_returns == 2
    assert wf.return_reasons["territory"] == "属地不符" and wf.return_reasons["ownership"] == "权属不清"
    assert wf.return_reasons["overlap"] == "职能交叉"
    # a pack without [workflow] takes the defaults
    tiny = load_pack(str(write_pack(tmp_path / "tiny")))
    assert tiny.workflow.max_returns == 2 and tiny.workflow.sign_for_hours["normal"] == 2.0
    assert "territory" in tiny.workflow.return_reasons
    # the 处置 clock runs from the dispatch unless the pack starts it at the 签收
    assert hangzhou.workflow.disposal_clock == tiny.workflow.disposal_clock == "dispatch"


def test_a_pack_may_start_the_disposal_clock_at_the_sign_for(tmp_path):
    folder = write_pack(tmp_path / "tiny")
    toml = folder / "pack.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        "[priority_factors]", '[workflow]\ndisposal_clock = "sign"\n\n[priority_factors]', 1), encoding="utf-8")
    assert load_pack(str(folder)).workflow.disposal_clock == "sign"


def test_service_items_are_pack_data_and_checked(tmp_path):
    folder = write_pack(tmp_path / "tiny")
    (folder / "service_items.csv").write_text("department,code,name,daily,online_bias\n"
                                              "T-D1,QYKB,企业开办,12,0.03\n*-CG,LSZY,临时占道,3,\n", encoding="utf-8")
    pack = load_pack(str(folder))
    assert pack.service_items == (ServiceItem("T-D1", "QYKB", "企业开办", 12.0, 0.03),
                                  ServiceItem("*-CG", "LSZY", "临时占道", 3.0, 0.0))
    assert load_pack(str(write_pack(tmp_path / "none"))).service_items == ()   # the file is optional
    for bad, says in (("NOPE,QYKB,企业开办,12,0\n", "NOPE is not in departments.csv"),
                      ("T-D1,QYKB,企业开办,many,0\n", "must be numbers"),
                      ("T-D1,QYKB,企业开办,12,0\nT-D1,QYKB,again,1,0\n", "listed twice")):
        (folder / "service_items.csv").write_text("department,code,name,daily,online_bias\n" + bad, encoding="utf-8")
        with pytest.raises(PackError, match=says):
            load_pack(str(folder))


def test_hangzhou_service_items_come_from_its_pack(hangzhou):
    city = [i for i in hangzhou.service_items if not i.department.startswith("*-")]
    assert {i.department for i in city} <= {d.code for d in hangzhou.departments} and len(city) >= 30
    assert any(i.department == "*-SCJG" for i in hangzhou.service_items)
    assert set(hangzhou.demo["service_district_scale"]) <= {a.code for a in hangzhou.districts()}


def test_calendar_overrides_are_read(tmp_path):
    calendar = "date,is_workday,note\n2026-10-10,true,调休上班\n2026-12-31,false,停工\n"
    pack = load_pack(str(write_pack(tmp_path / "tiny", calendar=calendar)))
    assert pack.calendar_overrides == {dt.date(2026, 10, 10): True, dt.date(2026, 12, 31): False}


def test_a_gcj02_pack_is_converted_to_wgs84_on_load(tmp_path):
    pack = load_pack(str(write_pack(tmp_path / "gcj", crs="GCJ-02")))
    assert pack.crs == "GCJ02"
    d1 = next(a for a in pack.districts() if a.code == "D1")
    x, y = gcj02_to_wgs84(120.0, 30.0)
    corners = shapely.get_coordinates(d1.geometry)
    assert corners[0] == pytest.approx((x, y), abs=1e-9)
    assert abs(x - 120.0) > 0.004  # really moved (about 450 m in Zhejiang)
    lat, lon = pack.center
    assert (lon, lat) == pytest.approx(gcj02_to_wgs84(120.05, 30.05), abs=1e-9)
    spot = pack.demo["hotspots"][0]
    assert (spot["lon"], spot["lat"]) == pytest.approx(gcj02_to_wgs84(120.05, 30.05), abs=1e-9)


def test_a_self_intersecting_polygon_is_repaired(tmp_path):
    areas = _areas()
    bowtie = [[[120.0, 30.0], [120.1, 30.1], [120.1, 30.0], [120.0, 30.1], [120.0, 30.0]]]
    areas["features"][0]["geometry"]["coordinates"] = bowtie
    pack = load_pack(str(write_pack(tmp_path / "tiny", areas=areas)))
    d1 = pack.districts()[0].geometry
    assert d1.is_valid and d1.area > 0


def _areas_with(change) -> dict:
    areas = _areas()
    change(areas["features"])
    return areas


def _toml_with(old: str, new: str) -> dict:
    return dict(toml=PACK_TOML.format(crs="WGS84").replace(old, new))


#: routing.csv routing only C0101 and the E01 major class, city-wide
ROUTING_C0101_E01 = "id,category_code,area_code,department_code,note\n1,C0101,,T-CITY,x\n2,E01,,T-CITY,x\n"


BROKEN = {
    "duplicate-area-code": (
        dict(areas=_areas_with(lambda f: f[3]["properties"].update(code="D10001"))),
        r"areas\.geojson feature #4 .*duplicate code D10001",
    ),
    "grid-parent-not-a-district": (
        dict(areas=_areas_with(lambda f: f[2]["properties"].update(parent_code="D9"))),
        r"areas\.geojson .*D10001.*parent_code D9 is not a district",
    ),
    "grid-parent-is-a-grid": (
        dict(areas=_areas_with(lambda f: f[3]["properties"].update(parent_code="D10001"))),
        r"D20001.*parent_code D10001 is not a district",
    ),
    "area-level-unknown": (
        dict(areas=_areas_with(lambda f: f[2]["properties"].update(level="block"))),
        r"areas\.geojson feature #3 .*level 'block'",
    ),
    "geometry-not-a-polygon": (
        dict(areas=_areas_with(lambda f: f[2].update(geometry={"type": "Point", "coordinates": [120.0, 30.0]}))),
        r"areas\.geojson feature #3 .*Point, expected Polygon",
    ),
    "geometry-without-area": (
        dict(areas=_areas_with(lambda f: f[2]["geometry"].update(coordinates=[[[120, 30], [120.1, 30], [120, 30], [120, 30]]]))),
        r"areas\.geojson feature #3 .*no area",
    ),
    "duplicate-department-code": (
        dict(departments=DEPARTMENTS + "T-D1,重复,Dup,district,D1,\n"),
        r"departments\.csv line 6: duplicate department code T-D1 \(also line 4\)",
    ),
    "department-district-unknown": (
        dict(departments=DEPARTMENTS.replace("T-D2,二区城管,D2 bureau,district,D2", "T-D2,二区城管,D2 bureau,district,D7")),
        r"departments\.csv line 5: department T-D2 district_code D7 is not a district",
    ),
    "department-district-is-a-grid": (
        dict(departments=DEPARTMENTS.replace("district,D2,", "district,D20001,")),
        r"departments\.csv line 5: .*district_code D20001 is not a district",
    ),
    "department-parent-unknown": (
        dict(departments=DEPARTMENTS.replace("D2,T-CITY", "D2,T-NOPE")),
        r"departments\.csv line 5: department T-D2 parent_code T-NOPE",
    ),
    "department-level-unknown": (
        dict(departments=DEPARTMENTS.replace("T-CITY,城管局,City bureau,city", "T-CITY,城管局,City bureau,province")),
        r"departments\.csv line 3: level 'province'",
    ),
    "duplicate-category-code": (
        dict(categories=CATEGORIES + "E0101,event,E01,市容环境,重复,Dup,2,work_hours,50,24,1,false\n"),
        r"categories\.csv line 6: duplicate category code E0101 \(also line 3\)",
    ),
    "category-time-unit-unknown": (
        dict(categories=CATEGORIES.replace("2,work_hours,50,24,5", "2,fortnights,50,24,5")),
        r"categories\.csv line 3: time_unit 'fortnights'",
    ),
    "category-time-limit-not-a-number": (
        dict(categories=CATEGORIES.replace("E0101,event,E01,市容环境,暴露垃圾,Garbage,2,", "E0101,event,E01,市容环境,暴露垃圾,Garbage,two,")),
        r"categories\.csv line 3: time_limit 'two' is not a number",
    ),
    "category-urgent-not-a-boolean": (
        dict(categories=CATEGORIES.replace("0.1,true", "0.1,maybe")),
        r"categories\.csv line 5: urgent 'maybe'",
    ),
    "category-major-inconsistent": (
        dict(categories=CATEGORIES.replace("E0102,event,E01,市容环境", "E0102,event,E01,市容卫生")),
        r"categories\.csv line 4: major class E01",
    ),
    "rule-department-unknown": (
        dict(routing=ROUTING.replace("3,E0101,D1,T-D1", "3,E0101,D1,T-GHOST")),
        r"routing\.csv line 4: rule 3 department_code T-GHOST is not in departments\.csv",
    ),
    "rule-category-unknown": (
        dict(routing=ROUTING.replace("3,E0101,D1", "3,E0999,D1")),
        r"routing\.csv line 4: rule 3 category_code E0999 is not a small-class code",
    ),
    "rule-area-unknown": (
        dict(routing=ROUTING.replace("3,E0101,D1", "3,E0101,D9")),
        r"routing\.csv line 4: rule 3 area_code D9 is not an area",
    ),
    "duplicate-rule-id": (
        dict(routing=ROUTING.replace("4,*", "3,*")),
        r"routing\.csv line 5: duplicate rule id 3",
    ),
    "category-not-routed": (
        dict(routing=ROUTING_C0101_E01),
        r"routing\.csv: no city-wide rule .* routes category E0401 路面塌陷",
    ),
    "category-routed-only-in-one-area": (
        dict(routing=ROUTING_C0101_E01 + "3,E04,D1,T-D1,x\n"),
        r"routing\.csv: no city-wide rule .* E0401",
    ),
    "workflow-sign-for-zero": (
        _toml_with("[priority_factors]", "[workflow.sign_for_hours]\nurgent = 0\n\n[priority_factors]"),
        r"pack\.toml: \[workflow\.sign_for_hours\] urgent must be > 0",
    ),
    "workflow-max-returns-zero": (
        _toml_with("[priority_factors]", "[workflow]\nmax_returns = 0\n\n[priority_factors]"),
        r"pack\.toml: \[workflow\] max_returns must be an integer >= 1",
    ),
    "workflow-unknown-setting": (
        _toml_with("[priority_factors]", "[workflow]\nclock_from = \"sign\"\n\n[priority_factors]"),
        r"pack\.toml: \[workflow\] has unknown setting\(s\) clock_from",
    ),
    "workflow-disposal-clock-unknown": (
        _toml_with("[priority_factors]", "[workflow]\ndisposal_clock = \"resolve\"\n\n[priority_factors]"),
        r"pack\.toml: \[workflow\] disposal_clock must be one of 'dispatch', 'sign' .*not 'resolve'",
    ),
    "wall-escalation-zero": (
        _toml_with("[priority_factors]", "[wall]\nescalate_after_minutes = 0\n\n[priority_factors]"),
        r"pack\.toml: \[wall\] escalate_after_minutes must be an integer >= 1",
    ),
    "triage-department-unknown": (
        _toml_with('"T-TRIAGE"', '"T-NOBODY"'),
        r"pack\.toml: triage_department T-NOBODY is not in departments\.csv",
    ),
    "crs-unknown": (
        dict(crs="EPSG:3857"),
        r"pack\.toml: crs: unknown CRS 'EPSG:3857'",
    ),
    "timezone-unknown": (
        _toml_with("Asia/Shanghai", "Mars/Olympus"),
        r"pack\.toml: timezone 'Mars/Olympus'",
    ),
    "office-hours-reversed": (
        _toml_with('["13:00", "17:00"]', '["17:00", "13:00"]'),
        r"pack\.toml: \[office_hours\] period 2: start 17:00 is not before end 13:00",
    ),
    "toml-syntax-error": (
        dict(toml="name = \n"),
        r"pack\.toml: invalid TOML",
    ),
    "missing-routing-file": (
        dict(routing=None),
        r"routing\.csv: missing",
    ),
    "csv-missing-column": (
        dict(categories=CATEGORIES.replace(",urgent\n", "\n", 1)),
        r"categories\.csv: header is missing column\(s\) urgent",
    ),
    "calendar-bad-date": (
        dict(calendar="date,is_workday,note\n2026-02-30,true,x\n"),
        r"calendar\.csv line 2: date '2026-02-30'",
    ),
    "calendar-duplicate-date": (
        dict(calendar="date,is_workday,note\n2026-10-10,true,x\n2026-10-10,false,y\n"),
        r"calendar\.csv line 3: date 2026-10-10 is listed twice",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_a_broken_pack_raises_pack_error_naming_the_problem(tmp_path, case):
    changes, message = BROKEN[case]
    folder = write_pack(tmp_path / case, **changes)
    with pytest.raises(PackError, match=message):
        load_pack(str(folder))
