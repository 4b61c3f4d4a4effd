"""``pack init`` (data_sources/pack_init.py): a pack built from a boundary file in a projected CRS
and a head of a real 311 export, and the US packs' holiday calendars. No database."""
from __future__ import annotations

import csv
import itertools
from datetime import date, datetime, timezone

import geopandas as gpd
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Polygon

from data_sources.pack_init import PackInitError, init_pack
from data_sources.packs import load_mapping, load_pack
from incidents.sla import WorkCalendar
from tests.conftest import SHARED_DATA

# two neighbouring districts in lower Manhattan / Brooklyn, drawn in WGS84 (lon0, lat0, lon1, lat1)
WEST = (-74.00, 40.70, -73.97, 40.73)
EAST = (-73.97, 40.70, -73.94, 40.73)


def _projected(box, epsg: int) -> Polygon:
    to = Transformer.from_crs(4326, epsg, always_xy=True)
    lon0, lat0, lon1, lat1 = box
    # a few points per edge so the reprojected edges stay close to the WGS84 box
    edge = [(lon0 + (lon1 - lon0) * t / 4, lat0) for t in range(4)] + \
           [(lon1, lat0 + (lat1 - lat0) * t / 4) for t in range(4)] + \
           [(lon1 - (lon1 - lon0) * t / 4, lat1) for t in range(4)] + \
           [(lon0, lat1 - (lat1 - lat0) * t / 4) for t in range(4)]
    return Polygon([to.transform(x, y) for x, y in edge])


def write_shapefile(folder, epsg: int = 32618, **columns):
    path = folder / "districts.shp"
    cols = columns or {"DistName": ["Westside", "Eastside"], "DistCode": [11, 12]}
    gpd.GeoDataFrame(cols, geometry=[_projected(WEST, epsg), _projected(EAST, epsg)],
                     crs=f"EPSG:{epsg}").to_file(path)
    return path


def nyc_head(folder, rows: int = 300):
    path = folder / "nyc_head.csv"
    with (SHARED_DATA / "nyc311_2018-10-21_fullday.csv").open(encoding="utf-8-sig", newline="") as f:
        path.write_text("".join(itertools.islice(f, rows + 1)), encoding="utf-8")
    return path


def test_a_pack_from_a_projected_shapefile_lands_in_wgs84_with_grids_and_loads(tmp_path):
    report = init_pack("riverside", write_shapefile(tmp_path), out=tmp_path / "pack", country="US",
                       subdivision="NY", timezone="America/New_York", grid_m=1000)
    pack = load_pack(tmp_path / "pack")
    assert report.pack is not None and pack.name == "riverside"
    districts = {d.code: d for d in pack.districts()}
    assert {c: d.name for c, d in districts.items()} == {"11": "Westside", "12": "Eastside"}
    # back in longitude/latitude where the polygons were drawn (within ~20 m simplification + 1 m rounding)
    for code, box in (("11", WEST), ("12", EAST)):
        want = shapely.box(*box)
        got = districts[code].geometry
        assert got.symmetric_difference(want).area / want.area < 0.01, code
        assert got.bounds == pytest.approx(box, abs=0.0003)
    # grids: 1 km cells of each district, covering it, codes = district code + 4 digits
    grids = pack.grids()
    assert len(grids) >= 2 * 6
    for code, d in districts.items():
        mine = [g for g in grids if g.parent_code == code]
        assert all(g.code.startswith(code) and len(g.code) == len(code) + 4 for g in mine)
        covered = shapely.union_all([g.geometry for g in mine])
        assert covered.symmetric_difference(d.geometry).area / d.geometry.area < 0.005
    assert report.counts["grids"] == len(grids)
    assert any("EPSG:32618" in line for line in report.review)
    assert pack.holiday_source == "holidays:US-NY" and pack.timezone == "America/New_York"


def test_agencies_and_types_of_a_sample_export_become_departments_and_categories(tmp_path):
    sample = nyc_head(tmp_path)
    with sample.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    # one more record spelling a type in capitals: mapping.csv matches case-insensitively, so one category
    extra = {**rows[0], "Unique Key": "99999999", "Complaint Type": rows[0]["Complaint Type"].upper()}
    assert extra["Complaint Type"] != rows[0]["Complaint Type"]
    with sample.open("a", encoding="utf-8", newline="") as f:
        csv.DictWriter(f, fieldnames=list(rows[0])).writerow(extra)
    rows.append(extra)
    agencies = {r["Agency"] for r in rows}
    types = {r["Complaint Type"] for r in rows if r is not extra}
    report = init_pack("sampled", write_shapefile(tmp_path), out=tmp_path / "pack", sample=sample,
                       mapping="nyc311", country="US", timezone="America/New_York", grid_m=2000,
                       default_limit=3, default_unit="work_days")
    pack = load_pack(tmp_path / "pack")
    table = load_mapping(pack)
    assert report.counts["sample records"] == len(rows) and report.counts["agencies"] == len(agencies)
    # every agency of the sample maps to a department of the pack, every type to a category
    for agency in agencies:
        rule = table.lookup("agency", agency)
        assert rule is not None and pack.department(rule.department_code).name == agency
    for kind in types:
        rule = table.lookup("complaint_type", kind)
        cat = pack.category(rule.category_code)
        assert cat.name == kind and (cat.time_limit, cat.time_unit) == (3, "work_days")
    # an unknown type goes to the catch-all category; a type is routed to the agency handling most of it
    assert table.lookup("complaint_type", "Never Seen Before").category_code == "OTHER"
    heat = table.lookup("complaint_type", "HEAT/HOT WATER")
    if heat is not None:
        major = pack.category(heat.category_code).major_code
        assert any(r.category_code == major and r.department_code == "HPD" for r in pack.routing_rules)
    assert len(pack.categories) == len(types) + 1
    assert any("default time limit 3 work_days" in line for line in report.review)


@pytest.mark.filterwarnings("ignore:'crs' was not provided")   # writing the file without one is the point
def test_a_boundary_file_without_a_crs_in_projected_units_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "nocrs.geojson"
    gpd.GeoDataFrame({"name": ["A"]}, geometry=[_projected(WEST, 32618)]).to_file(path, driver="GeoJSON")
    with pytest.raises(PackInitError, match="--source-crs"):
        init_pack("nocrs", path, out=tmp_path / "pack", timezone="UTC")
    report = init_pack("nocrs", path, out=tmp_path / "pack", timezone="UTC", source_crs="EPSG:32618",
                       grid_m=2000)
    assert report.pack.districts()[0].geometry.bounds == pytest.approx(WEST, abs=0.0003)


def test_names_and_codes_are_guessed_and_said_so_or_taken_as_given(tmp_path):
    shp = write_shapefile(tmp_path, BoroName=["Westside", "Eastside"], BoroCode=["W", "E"], Pop=[5, 7])
    report = init_pack("guess", shp, out=tmp_path / "a", timezone="UTC", grid_m=2000)
    assert {d.code: d.name for d in report.pack.districts()} == {"W": "Westside", "E": "Eastside"}
    assert any("guessed from column 'BoroCode'" in line for line in report.review)
    report = init_pack("given", shp, out=tmp_path / "b", timezone="UTC", grid_m=2000,
                       code_field="Pop", name_field="BoroCode")
    assert {d.code: d.name for d in report.pack.districts()} == {"5": "W", "7": "E"}
    with pytest.raises(PackInitError, match="no column 'Nope'"):
        init_pack("bad", shp, out=tmp_path / "c", timezone="UTC", name_field="Nope")


def test_the_us_packs_count_christmas_and_their_states_holidays_as_days_off():
    nyc, sf = load_pack("nyc"), load_pack("sf")
    cal_ny = WorkCalendar(nyc.office_hours, nyc.timezone, holiday_source=nyc.holiday_source)
    cal_ca = WorkCalendar(sf.office_hours, sf.timezone, holiday_source=sf.holiday_source)
    for cal in (cal_ny, cal_ca):
        assert not cal.is_workday(date(2025, 12, 25))          # Christmas, a Thursday
        assert not cal.is_workday(date(2026, 7, 3))            # Independence Day observed (4 July is a Saturday)
        assert cal.is_workday(date(2025, 12, 24))
    assert not cal_ny.is_workday(date(2025, 2, 12))            # Lincoln's Birthday: New York only
    assert cal_ca.is_workday(date(2025, 2, 12))
    assert not cal_ca.is_workday(date(2025, 11, 28))           # Day after Thanksgiving: California
    # a deadline of 8 working hours from Christmas Eve morning ends on the 26th
    start = datetime(2025, 12, 24, 14, 0, tzinfo=timezone.utc)    # 09:00 New York
    assert cal_ny.add_working_hours(start, 16) == datetime(2025, 12, 26, 22, 0, tzinfo=timezone.utc)


def test_an_unknown_country_or_subdivision_is_refused():
    with pytest.raises(PackInitError, match="ZZ"):
        init_pack("x", "/nonexistent.shp", timezone="UTC", country="US", subdivision="ZZ")
    with pytest.raises(ValueError, match="holidays:"):
        WorkCalendar(["09:00-17:00"], "UTC", holiday_source="hand-typed")


def test_an_open311_sample_names_its_coded_services_and_a_geopackage_reads_like_a_shapefile(tmp_path):
    gpkg = tmp_path / "districts.gpkg"
    gpd.GeoDataFrame({"name": ["Westside", "Eastside"]},
                     geometry=[_projected(WEST, 3857), _projected(EAST, 3857)], crs="EPSG:3857").to_file(
        gpkg, layer="districts", driver="GPKG")
    report = init_pack("chi", gpkg, out=tmp_path / "pack", sample=SHARED_DATA /
                       "open311_chicago_requests_2014_extended.json", mapping="open311", country="US",
                       subdivision="IL", timezone="America/Chicago", grid_m=2000)
    pack = load_pack(tmp_path / "pack")
    assert sorted(d.name for d in pack.districts()) == ["Eastside", "Westside"]
    assert pack.districts()[0].geometry.bounds == pytest.approx(WEST, abs=0.0003)
    # Open311 service_codes are opaque: the category takes the service_name, mapping.csv keeps the code
    rule = load_mapping(pack).lookup("complaint_type", "4fd3b656e750846c53000004")
    assert pack.category(rule.category_code).name == "Pothole in Street"
    assert any("named from the other type column" in line for line in report.review)
