"""Coordinate conversion between WGS84, GCJ-02 ("Mars" coordinates) and BD-09.

Inside CityOps every coordinate is WGS84 (EPSG:4326). Chinese map providers publish
GCJ-02 (Amap/Gaode, Tencent, Google China) or BD-09 (Baidu); data in those systems is
converted on the way in with :func:`to_wgs84`, and back with :func:`wgs84_to_gcj02` for a
GCJ-02 tile source.

This is the well-known published algorithm (the Krasovsky-1940 based offset used by
every open implementation: eviltransform, coordtransform, prcoords ...), written with
numpy so the same functions take scalars or arrays. It is implemented here rather than
taken from PyPI because the maintained package (``coordtransform``) only offers the
one-step approximate GCJ-02 -> WGS84 inverse (errors of a metre or two), and the other
candidates are unmaintained or bind a large native library for a 30-line formula.

- WGS84 -> GCJ-02 is the forward formula (exact by definition).
- GCJ-02 -> WGS84 has no closed form: it is solved by fixed-point iteration until the
  forward transform of the result reproduces the input to better than 1e-9 degrees.
- BD-09 <-> GCJ-02 is the published closed form (Baidu's own, itself approximate to
  ~1e-6 degrees in the BD -> GCJ direction).

Points outside China's bounding box are returned unchanged by the GCJ-02 functions
(standard behaviour: the offset is applied only inside China). NaN passes through.

Scalars in -> ``(lon, lat)`` tuple of floats out; arrays in -> tuple of float64 arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import shapely

__all__ = [
    "SUPPORTED_CRS",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "normalize_crs",
    "out_of_china",
    "projected_to_wgs84",
    "to_wgs84",
    "transform_geometry",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 algorithm.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0

# The bounding box used by the common open implementations.
_CHINA_LON = (73.66, 135.05)
_CHINA_LAT = (3.86, 53.55)

_INVERSE_TOL_DEG = 1e-9
_INVERSE_MAX_ITER = 30


def _prepare(lon, lat):
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    x, y = np.broadcast_arrays(x, y)
    return scalar, x, y


def _finish(scalar, x, y):
    if scalar:
        return float(x), float(y)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def _out_of_china(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        inside = (x > _CHINA_LON[0]) & (x < _CHINA_LON[1]) & (y > _CHINA_LAT[0]) & (y < _CHINA_LAT[1])
    return ~inside


def out_of_china(lon, lat):
    """True where the point lies outside China's bounding box (no GCJ-02 offset applies)."""
    scalar, x, y = _prepare(lon, lat)
    out = _out_of_china(x, y)
    return bool(out) if scalar else out


def _gcj_offset(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 offset (dlon, dlat) in degrees at WGS84 position (x, y), ignoring the China box."""
    dx = x - 105.0
    dy = y - 35.0
    sqrt_abs_dx = np.sqrt(np.abs(dx))
    common = (20.0 * np.sin(6.0 * dx * math.pi) + 20.0 * np.sin(2.0 * dx * math.pi)) * 2.0 / 3.0

    dlat = -100.0 + 2.0 * dx + 3.0 * dy + 0.2 * dy * dy + 0.1 * dx * dy + 0.2 * sqrt_abs_dx
    dlat = dlat + common
    dlat = dlat + (20.0 * np.sin(dy * math.pi) + 40.0 * np.sin(dy / 3.0 * math.pi)) * 2.0 / 3.0
    dlat = dlat + (160.0 * np.sin(dy / 12.0 * math.pi) + 320.0 * np.sin(dy * math.pi / 30.0)) * 2.0 / 3.0

    dlon = 300.0 + dx + 2.0 * dy + 0.1 * dx * dx + 0.1 * dx * dy + 0.1 * sqrt_abs_dx
    dlon = dlon + common
    dlon = dlon + (20.0 * np.sin(dx * math.pi) + 40.0 * np.sin(dx / 3.0 * math.pi)) * 2.0 / 3.0
    dlon = dlon + (150.0 * np.sin(dx / 12.0 * math.pi) + 300.0 * np.sin(dx / 30.0 * math.pi)) * 2.0 / 3.0

    radlat = y / 180.0 * math.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(radlat) * math.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon, lat):
    """WGS84 -> GCJ-02. Points outside China are returned unchanged."""
    scalar, x, y = _prepare(lon, lat)
    dlon, dlat = _gcj_offset(x, y)
    outside = _out_of_china(x, y)
    gx = np.where(outside, x, x + dlon)
    gy = np.where(outside, y, y + dlat)
    return _finish(scalar, gx, gy)


def gcj02_to_wgs84(lon, lat):
    """GCJ-02 -> WGS84, the exact inverse of :func:`wgs84_to_gcj02` (iterated to < 1e-9 deg).

    Points outside China are returned unchanged.
    """
    scalar, gx, gy = _prepare(lon, lat)
    outside = _out_of_china(gx, gy)
    # Start from the classic one-step approximation, then correct by the residual.
    dlon, dlat = _gcj_offset(gx, gy)
    x = gx - dlon
    y = gy - dlat
    for _ in range(_INVERSE_MAX_ITER):
        dlon, dlat = _gcj_offset(x, y)
        rx = (x + dlon) - gx
        ry = (y + dlat) - gy
        x = x - rx
        y = y - ry
        with np.errstate(invalid="ignore"):
            err = np.nanmax(np.abs(np.concatenate([rx.ravel(), ry.ravel()]))) if rx.size else 0.0
        if not np.isfinite(err) or err < _INVERSE_TOL_DEG:
            break
    x = np.where(outside, gx, x)
    y = np.where(outside, gy, y)
    return _finish(scalar, x, y)


def bd09_to_gcj02(lon, lat):
    """BD-09 (Baidu) -> GCJ-02."""
    scalar, bx, by = _prepare(lon, lat)
    x = bx - 0.0065
    y = by - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return _finish(scalar, z * np.cos(theta), z * np.sin(theta))


def gcj02_to_bd09(lon, lat):
    """GCJ-02 -> BD-09 (Baidu)."""
    scalar, x, y = _prepare(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return _finish(scalar, z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006)


def bd09_to_wgs84(lon, lat):
    """BD-09 (Baidu) -> WGS84 (via GCJ-02)."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def wgs84_to_bd09(lon, lat):
    """WGS84 -> BD-09 (Baidu) (via GCJ-02)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


_CRS_ALIASES = {
    "WGS84": "WGS84",
    "EPSG4326": "WGS84",
    "CRS84": "WGS84",
    "OGCCRS84": "WGS84",
    "GCJ02": "GCJ02",
    "BD09": "BD09",
    "BD09LL": "BD09",
}
SUPPORTED_CRS = ("WGS84", "GCJ02", "BD09")


def normalize_crs(crs: str) -> str:
    """Canonical name ('WGS84', 'GCJ02' or 'BD09') of a CRS spelling; ValueError if unknown.

    Accepts any case and separators: 'wgs84', 'EPSG:4326', 'GCJ-02', 'gcj_02', 'BD-09' ...
    """
    if not isinstance(crs, str):
        raise ValueError(f"unknown CRS {crs!r}: expected one of {', '.join(SUPPORTED_CRS)}")
    key = "".join(ch for ch in crs.upper() if ch.isalnum())
    try:
        return _CRS_ALIASES[key]
    except KeyError:
        raise ValueError(
            f"unknown CRS {crs!r}: expected one of {', '.join(SUPPORTED_CRS)} (or EPSG:4326, GCJ-02, BD-09)"
        ) from None


def _identity(lon, lat):
    scalar, x, y = _prepare(lon, lat)
    return _finish(scalar, x.copy(), y.copy())


_TO_WGS84 = {"WGS84": _identity, "GCJ02": gcj02_to_wgs84, "BD09": bd09_to_wgs84}


def to_wgs84(lon, lat, crs: str):
    """Convert coordinates in ``crs`` ('WGS84', 'GCJ02', 'BD09' and spellings) to WGS84."""
    return _TO_WGS84[normalize_crs(crs)](lon, lat)


def converter_to_wgs84(crs: str) -> Callable:
    """The ``(lon, lat) -> (lon, lat)`` function that converts ``crs`` to WGS84."""
    return _TO_WGS84[normalize_crs(crs)]


def projected_to_wgs84(crs: str) -> Callable:
    """The ``(x, y) -> (lon, lat)`` function from any CRS PROJ knows (``EPSG:2263``, New York State
    Plane in US feet, as 311 exports carry it) to WGS84. ValueError for a CRS it does not know.
    pyproj is imported here only: the app starts without it. Its transformers are thread-safe."""
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError
    try:
        source = CRS.from_user_input(crs)
    except CRSError:
        raise ValueError(f"unknown CRS {crs!r}: expected WGS84, GCJ02, BD09 or a code PROJ knows "
                         "(e.g. EPSG:2263)") from None
    return Transformer.from_crs(source, "EPSG:4326", always_xy=True).transform


def transform_geometry(geom, func: Callable):
    """Apply a ``(lon, lat) -> (lon, lat)`` array function to every vertex of a shapely geometry.

    ``func`` is one of this module's converters (or any function of the same shape).
    Returns a new geometry of the same type; Z values are dropped.
    """

    def _xy(coords: np.ndarray) -> np.ndarray:
        if coords.size == 0:
            return coords
        x, y = func(coords[:, 0], coords[:, 1])
        return np.column_stack([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])

    return shapely.transform(geom, _xy)
