"""Regenerate ``areas.geojson`` of the US packs (``nyc``, ``sf``) from the real 311 records.

Run from the repository root, with the project's ``shared/data`` folder beside it::

    .venv/bin/python data_sources/packs/build_us_packs.py [DATA_DIR]

No boundary data package is available offline for NYC boroughs or SF supervisor districts, so
the areas are *coarse* and derived from the records themselves: a square lattice (NYC ~1.7 km,
SF ~550 m) over the records' extent; each cell goes to the borough / supervisor district most of
the records inside it name, cells without records take the label of the nearest labelled cell
when it is close (else they are water or out of town and left out). A district is the union of
its cells; each cell is a grid (网格) of that district. Good enough for the map, the per-district
KPIs and the pack loader's checks; not a legal boundary. Coordinates are WGS84, rounded to 5
decimals. Deterministic: the same input gives the same file.
"""
from __future__ import annotations

import json
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import shapely
from shapely.geometry import box, mapping

ROOT = Path(__file__).resolve().parent


def _round(geom, nd=5):
    return shapely.set_precision(geom, 10 ** -nd)


def build(points: pd.DataFrame, cell: float, names: dict[str, str], codes: dict[str, str],
          reach: int = 1) -> dict:
    """points: columns lon, lat, label (district key)."""
    lon0 = math.floor(points.lon.min() / cell) * cell
    lat0 = math.floor(points.lat.min() / cell) * cell
    votes: dict[tuple[int, int], Counter] = defaultdict(Counter)
    for lon, lat, label in points[["lon", "lat", "label"]].itertuples(index=False):
        votes[(int((lon - lon0) // cell), int((lat - lat0) // cell))][label] += 1
    labelled = {k: c.most_common(1)[0][0] for k, c in votes.items()}
    # fill empty cells next to labelled ones (streets without a record that day), one ring
    filled = dict(labelled)
    for _ in range(reach):
        add = {}
        for (i, j) in list(filled):
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    k = (i + di, j + dj)
                    if k in filled or k in add:
                        continue
                    near = Counter(filled[(k[0] + a, k[1] + b)] for a in (-1, 0, 1) for b in (-1, 0, 1)
                                   if (k[0] + a, k[1] + b) in filled)
                    if sum(near.values()) >= 4:  # mostly surrounded: inside the city, not open water
                        add[k] = near.most_common(1)[0][0]
        filled.update(add)
    cells: dict[str, list] = defaultdict(list)
    for (i, j), label in sorted(filled.items(), key=lambda kv: (-kv[0][1], kv[0][0])):
        cells[label].append(box(lon0 + i * cell, lat0 + j * cell, lon0 + (i + 1) * cell, lat0 + (j + 1) * cell))
    features = []
    for label in sorted(cells, key=lambda lb: codes[lb]):
        code = codes[label]
        district = _round(shapely.union_all(cells[label]))
        features.append({"type": "Feature", "properties": {"code": code, "name": names[label], "level": "district",
                                                           "parent_code": None},
                         "geometry": mapping(district)})
        for n, c in enumerate(cells[label], start=1):
            features.append({"type": "Feature",
                             "properties": {"code": f"{code}{n:03d}", "name": f"{names[label]} grid {n:03d}",
                                            "level": "grid", "parent_code": code},
                             "geometry": mapping(_round(c))})
    return {"type": "FeatureCollection", "features": features}


def nyc(data: Path) -> dict:
    df = pd.read_csv(data / "nyc311_2018-10-21_fullday.csv", dtype=str, usecols=["Borough", "Latitude", "Longitude"])
    df = df.dropna()
    df = df[df.Borough != "Unspecified"]
    pts = pd.DataFrame({"lon": df.Longitude.astype(float), "lat": df.Latitude.astype(float), "label": df.Borough})
    names = {"MANHATTAN": "Manhattan", "BRONX": "Bronx", "BROOKLYN": "Brooklyn", "QUEENS": "Queens",
             "STATEN ISLAND": "Staten Island"}
    codes = {"MANHATTAN": "MN", "BRONX": "BX", "BROOKLYN": "BK", "QUEENS": "QN", "STATEN ISLAND": "SI"}
    return build(pts, 0.02, names, codes)


def sf(data: Path) -> dict:
    df = pd.read_csv(data / "sf311_sample_2008-2018.csv", dtype=str,
                     usecols=["supervisor_district", "latitude", "longitude"]).dropna()
    df = df[(df.latitude.astype(float) != 0) & df.supervisor_district.isin([str(i) for i in range(1, 12)])]
    pts = pd.DataFrame({"lon": df.longitude.astype(float), "lat": df.latitude.astype(float),
                        "label": df.supervisor_district})
    names = {str(i): f"Supervisor District {i}" for i in range(1, 12)}
    codes = {str(i): f"D{i:02d}" for i in range(1, 12)}
    return build(pts, 0.006, names, codes, reach=2)


def main(argv: list[str]) -> None:
    data = Path(argv[1]) if len(argv) > 1 else ROOT.parents[2].parent / "shared" / "data"
    for name, fn in (("nyc", nyc), ("sf", sf)):
        out = ROOT / name / "areas.geojson"
        out.write_text(json.dumps(fn(data), ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
        print(f"{out}: {out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(sys.argv)
