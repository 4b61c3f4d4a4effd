"""WGS84 / GCJ-02 / BD-09 conversion (data_sources.coords)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import Point, Polygon

from data_sources.coords import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    normalize_crs,
    to_wgs84,
    transform_geometry,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

# Published WGS84 -> GCJ-02 reference pairs (lon, lat), as used by the test suites of the
# open implementations (eviltransform, coordtransform).
WGS_GCJ_REFERENCE = [
    ((116.404, 39.915), (116.41024449916938, 39.91640428150164)),  # Beijing, Tiananmen
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),  # Beijing
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),  # Shanghai
]


@pytest.mark.parametrize(("wgs", "gcj"), WGS_GCJ_REFERENCE)
def test_wgs84_to_gcj02_matches_published_reference(wgs, gcj):
    lon, lat = wgs84_to_gcj02(*wgs)
    assert lon == pytest.approx(gcj[0], abs=1e-9)
    assert lat == pytest.approx(gcj[1], abs=1e-9)


@pytest.mark.parametrize(("wgs", "gcj"), WGS_GCJ_REFERENCE)
def test_gcj02_to_wgs84_inverts_published_reference(wgs, gcj):
    lon, lat = gcj02_to_wgs84(*gcj)
    assert lon == pytest.approx(wgs[0], abs=1e-7)
    assert lat == pytest.approx(wgs[1], abs=1e-7)


def test_gcj02_offset_in_hangzhou_is_a_few_hundred_metres():
    lon, lat = wgs84_to_gcj02(120.15, 30.25)
    assert 0.004 < lon - 120.15 < 0.006
    assert -0.004 < lat - 30.25 < -0.001


def test_round_trip_wgs84_gcj02_is_exact_to_a_micro_degree_across_china():
    rng = np.random.default_rng(7)
    lon = rng.uniform(74.0, 135.0, 20_000)
    lat = rng.uniform(4.0, 53.0, 20_000)
    back_lon, back_lat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert np.abs(back_lon - lon).max() < 1e-7
    assert np.abs(back_lat - lat).max() < 1e-7


def test_round_trip_wgs84_gcj02_scalar_in_hangzhou():
    back = gcj02_to_wgs84(*wgs84_to_gcj02(120.1551, 30.2741))
    assert back[0] == pytest.approx(120.1551, abs=1e-6)
    assert back[1] == pytest.approx(30.2741, abs=1e-6)


@pytest.mark.parametrize("point", [(-73.9857, 40.7484), (2.2945, 48.8584), (151.2093, -33.8688)])
def test_points_outside_china_are_unchanged(point):
    assert wgs84_to_gcj02(*point) == point
    assert gcj02_to_wgs84(*point) == point


def test_arrays_mixing_china_and_abroad_offset_only_the_chinese_points():
    lon = np.array([120.15, -73.9857])
    lat = np.array([30.25, 40.7484])
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert glon[0] != lon[0] and glat[0] != lat[0]
    assert glon[1] == lon[1] and glat[1] == lat[1]


def test_bd09_to_gcj02_matches_published_reference():
    lon, lat = bd09_to_gcj02(116.404, 39.915)
    assert lon == pytest.approx(116.39762729119315, abs=1e-9)
    assert lat == pytest.approx(39.90865673957631, abs=1e-9)


def test_gcj02_to_bd09_matches_published_reference():
    lon, lat = gcj02_to_bd09(116.404, 39.915)
    assert lon == pytest.approx(116.41036949371029, abs=1e-9)
    assert lat == pytest.approx(39.92133699351021, abs=1e-9)


def test_bd09_to_wgs84_goes_through_gcj02():
    bd = (120.1616, 30.2622)  # a Baidu-map point near 湖滨, Hangzhou
    assert bd09_to_wgs84(*bd) == pytest.approx(gcj02_to_wgs84(*bd09_to_gcj02(*bd)), abs=1e-12)


def test_bd09_round_trip_is_within_baidus_own_approximation():
    lon, lat = bd09_to_wgs84(*wgs84_to_bd09(120.15, 30.25))
    assert lon == pytest.approx(120.15, abs=2e-6)
    assert lat == pytest.approx(30.25, abs=2e-6)


def test_scalars_give_float_tuples_and_arrays_give_arrays():
    out = wgs84_to_gcj02(120.0, 30.0)
    assert isinstance(out, tuple) and all(type(v) is float for v in out)
    arr = gcj02_to_wgs84(np.array([[120.0, 121.0]]), np.array([[30.0, 31.0]]))
    assert all(isinstance(a, np.ndarray) and a.shape == (1, 2) for a in arr)


def test_nan_passes_through():
    lon, lat = gcj02_to_wgs84(np.array([np.nan, 120.0]), np.array([np.nan, 30.0]))
    assert np.isnan(lon[0]) and np.isnan(lat[0])
    assert np.isfinite(lon[1]) and np.isfinite(lat[1])


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("WGS84", "WGS84"),
        ("wgs84", "WGS84"),
        ("EPSG:4326", "WGS84"),
        ("GCJ02", "GCJ02"),
        ("gcj-02", "GCJ02"),
        ("BD-09", "BD09"),
        ("bd09", "BD09"),
    ],
)
def test_crs_spellings_are_accepted(spelling, canonical):
    assert normalize_crs(spelling) == canonical


def test_unknown_crs_is_refused():
    with pytest.raises(ValueError, match="unknown CRS"):
        to_wgs84(120.0, 30.0, "EPSG:3857")


def test_to_wgs84_dispatches_on_crs():
    assert to_wgs84(120.0, 30.0, "WGS84") == (120.0, 30.0)
    assert to_wgs84(120.0, 30.0, "GCJ-02") == gcj02_to_wgs84(120.0, 30.0)
    assert to_wgs84(120.0, 30.0, "bd-09") == bd09_to_wgs84(120.0, 30.0)


def test_transform_geometry_converts_every_vertex_and_keeps_the_type():
    poly = Polygon([(120.1, 30.2), (120.2, 30.2), (120.2, 30.3), (120.1, 30.3)], holes=[[(120.14, 30.24), (120.16, 30.24), (120.16, 30.26)]])
    out = transform_geometry(poly, gcj02_to_wgs84)
    assert out.geom_type == "Polygon" and len(out.interiors) == 1
    src = shapely.get_coordinates(poly)
    dst = shapely.get_coordinates(out)
    expected = np.column_stack(gcj02_to_wgs84(src[:, 0], src[:, 1]))
    assert np.allclose(dst, expected, atol=1e-12, rtol=0)


def test_transform_geometry_handles_points_and_empty_geometries():
    assert transform_geometry(Point(120.0, 30.0), wgs84_to_gcj02).equals(Point(*wgs84_to_gcj02(120.0, 30.0)))
    assert transform_geometry(Polygon(), wgs84_to_gcj02).is_empty
