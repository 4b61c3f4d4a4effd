"""``pack init``: a city pack folder built from data (DESIGN §7), not from a hand-written script.

Inputs:

* a boundary file of the city's districts in any format and CRS GDAL reads (GeoJSON, Shapefile,
  GeoPackage, …; geopandas + pyogrio): reprojected to WGS84, simplified as one coverage (shared
  borders stay shared) with a tolerance in metres, rounded to 5 decimals (~1 m);
* the management grid (网格): one square lattice in metres (the boundary's UTM zone), anchored at
  the zone's origin, clipped to each district; slivers (< 25 % of a cell) merged into the
  neighbouring cell of the same district with the longest shared border — the layout of
  ``build_hangzhou.py``: grid code = district code + a 4-digit sequence (north-west first);
* optionally a sample export read through a mapping file (``data_sources/feeds/mappings``): its
  agencies become departments, its types categories with a default time limit, grouped (major
  class) and routed by the agency that handles each type most; ``mapping.csv`` maps both back;
  a catch-all category ``OTHER`` (routed to the triage department) takes types nobody mapped;
* the country's holiday calendar (``chinese-calendar`` for CN, ``holidays:CC[-SUBDIV]`` else) and
  the time zone.

The files written are the ones :func:`data_sources.packs.load_pack` reads (``pack.toml``,
``areas.geojson``, ``departments.csv``, ``categories.csv``, ``routing.csv``, ``mapping.csv``);
the result is loaded with it before :func:`init_pack` returns, so a pack that does not load is
never reported as built. What was guessed is listed in the report for the user to review.
"""
from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import shapely
from shapely.geometry import mapping as geojson_of

from data_sources.packs import PACKS_DIR, Pack, PackError, load_pack, load_mapping
from incidents.sla import HOLIDAYS_PREFIX, holiday_source_problem

DEFAULT_TOLERANCE_M = 20.0
SLIVER_FRACTION = 0.25
PRECISION_DEG = 1e-5
MAX_GRIDS_PER_DISTRICT = 9999
TARGET_GRIDS = 1000                 # the automatic cell size aims at about this many grids in all
NICE_CELLS_M = (250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000)
CATCH_ALL = "OTHER"
# column widths of the tables the pack is installed into (incidents/tables.py)
AREA_CODE_LEN, DISTRICT_CODE_LEN, AREA_NAME_LEN = 20, 16, 100    # a grid code is its district's + 4 digits
DEPT_CODE_LEN, DEPT_NAME_LEN = 40, 120
CAT_CODE_LEN, CAT_NAME_LEN, MAJOR_NAME_LEN = 20, 80, 60
TIME_UNITS = ("work_hours", "work_days", "natural_hours")

_NAME_HINTS = ("name", "district_name", "districtname", "boro_name", "boroname", "borough", "district",
               "namelsad", "name_en", "name_1", "name_2", "label", "nom", "名称", "区县", "name_zh")
_CODE_HINTS = ("code", "district_code", "adcode", "boro_code", "borocode", "district_id", "dist_id", "geoid",
               "fips", "id", "number", "district", "objectid", "fid")
_CODE_RE = re.compile(r"[^A-Za-z0-9]+")


class PackInitError(ValueError):
    """The inputs cannot make a pack; the message says which and why."""


@dataclass
class PackReport:
    """What ``pack init`` did, and what the user should look at before using the pack."""

    folder: Path
    pack: Optional[Pack] = None
    review: list[str] = field(default_factory=list)     # guesses and defaults to check
    counts: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"pack {self.pack.name if self.pack else '?'} written to {self.folder}"]
        out += [f"  {k:<22} {v:>7,}" for k, v in self.counts.items()]
        if self.review:
            out.append("review:")
            out += [f"  - {r}" for r in self.review]
        return out


# --------------------------------------------------------------------------- helpers

def _code(text: str, limit: int = 30) -> str:
    return _CODE_RE.sub("-", str(text).strip()).strip("-").upper()[:limit].strip("-") or "X"


def _unique_code(base: str, taken: set[str], limit: int = 20) -> str:
    base = base[:limit]
    code, n = base, 2
    while code in taken:
        suffix = f"-{n}"
        code = base[:limit - len(suffix)] + suffix
        n += 1
    taken.add(code)
    return code


def _polygonal(geom):
    """Only the polygon parts of a geometry (a clip or a repair may leave lines or points)."""
    if geom is None or geom.is_empty:
        return shapely.Polygon()
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _clean(geom):
    return _polygonal(shapely.make_valid(geom))


def round_coords(obj):
    """Coordinates to 5 decimals (about 1 m): the pack files' precision."""
    if isinstance(obj, float):
        return round(obj, 5)
    if isinstance(obj, (list, tuple)):
        return [round_coords(o) for o in obj]
    return obj


def _feature(code: str, name: str, level: str, parent: Optional[str], geom) -> dict:
    gj = geojson_of(geom)
    return {"type": "Feature", "properties": {"code": code, "name": name, "level": level, "parent_code": parent},
            "geometry": {"type": gj["type"], "coordinates": round_coords(gj["coordinates"])}}


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)    # a JSON string is a valid TOML basic string


# --------------------------------------------------------------------------- boundary

_NAME_PARTS = ("name", "nom", "名")
_CODE_PARTS = ("code", "_id", "id_", "num", "编码", "代码")


def _guess_field(frame, wanted: Optional[str], hints: tuple[str, ...], what: str, review: list[str],
                 *, avoid: Optional[str] = None) -> Optional[str]:
    """The column ``wanted``, else the first column named like one of ``hints``, else one whose
    name contains a name/code word, else a column with a distinct value per feature (for a name the
    longest texts, for a code the shortest); the guess is added to ``review``."""
    columns = [c for c in frame.columns if c != frame.geometry.name]
    if wanted:
        if wanted not in columns:
            raise PackInitError(f"boundary file has no column {wanted!r} for the {what} "
                                f"(columns: {', '.join(map(str, columns)) or 'none'})")
        return wanted
    candidates = [c for c in columns if c != avoid and frame[c].notna().all()]
    lower = {str(c).lower(): c for c in candidates}
    parts = _NAME_PARTS if what == "name" else _CODE_PARTS
    found = next((lower[h] for h in hints if h in lower), None)
    if found is None:
        found = next((c for c in candidates if any(p in str(c).lower() for p in parts)), None)
    if found is None:
        distinct = [c for c in candidates if frame[c].astype(str).nunique() == len(frame)
                    and (what == "code" or frame[c].dtype.kind not in "iuf")]
        if distinct:
            length = {c: frame[c].astype(str).str.len().mean() for c in distinct}
            found = (max if what == "name" else min)(distinct, key=lambda c: (length[c], -distinct.index(c)))
    if found is not None:
        review.append(f"district {what}s guessed from column {found!r} (give --{what}-field to choose)")
    return found


def read_boundary(path: str | Path, *, name_field: Optional[str] = None, code_field: Optional[str] = None,
                  source_crs: Optional[str] = None, review: list[str]) -> tuple[list[tuple[str, str, Any]], Any]:
    """[(code, name, geometry in the boundary's metric UTM CRS)] of the districts, and that CRS."""
    import geopandas as gpd
    try:
        frame = gpd.read_file(path)
    except Exception as exc:   # pyogrio raises DataSourceError, DataLayerError, … for unreadable files
        raise PackInitError(f"boundary file {path} cannot be read: {exc}") from None
    if frame.empty:
        raise PackInitError(f"boundary file {path} has no features")
    if source_crs:
        frame = frame.set_crs(source_crs, allow_override=True)
    elif frame.crs is None:
        minx, miny, maxx, maxy = frame.total_bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise PackInitError(f"boundary file {path} names no CRS and its coordinates are not longitude/latitude: "
                                "give --source-crs (e.g. EPSG:2263)")
        frame = frame.set_crs("EPSG:4326")
        review.append("the boundary file names no CRS: taken as WGS84 longitude/latitude")
    else:
        minx, miny, maxx, maxy = frame.total_bounds
        if frame.crs.is_geographic and not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            # GeoJSON is WGS84 by definition, so readers say so even of a file written in metres
            raise PackInitError(f"boundary file {path} says CRS {frame.crs.to_string()} but its coordinates are "
                                "not longitude/latitude: give --source-crs (e.g. EPSG:2263)")
        review.append(f"boundary CRS {frame.crs.to_string()} ({frame.crs.name})"
                      + (" reprojected to WGS84 (EPSG:4326)" if frame.crs.to_epsg() != 4326 else ": already WGS84"))
    frame = frame[frame.geometry.notna() & ~frame.geometry.is_empty]
    frame = frame[frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if frame.empty:
        raise PackInitError(f"boundary file {path} has no polygons (districts must be areas)")
    # names first: a file with one text column has names in it, and codes are then made up
    name_col = _guess_field(frame, name_field, _NAME_HINTS, "name", review, avoid=code_field)
    code_col = _guess_field(frame, code_field, _CODE_HINTS, "code", review, avoid=name_col)
    if code_col is None:
        review.append("no code column found: districts coded D01, D02, … in file order")
    if name_col is None:
        review.append("no name column found: districts named by their codes")
    wgs = frame.to_crs("EPSG:4326")
    try:
        metric = wgs.estimate_utm_crs()
    except RuntimeError:       # outside every UTM zone's area (polar): a world-wide metric CRS
        metric = "EPSG:3857"
    frame = wgs.to_crs(metric)

    groups: dict[str, list] = defaultdict(list)
    names: dict[str, str] = {}
    taken: set[str] = set()
    keys: dict[str, str] = {}
    for n, row in enumerate(frame.itertuples(index=False), start=1):
        raw_code = getattr(row, code_col) if code_col else None
        raw_name = getattr(row, name_col) if name_col else None
        raw_code = None if raw_code is None or str(raw_code).strip() in ("", "nan", "None") else raw_code
        if isinstance(raw_code, float) and raw_code.is_integer():
            raw_code = int(raw_code)
        key = str(raw_code).strip() if raw_code is not None else (str(raw_name).strip() if raw_name else f"#{n}")
        if key not in keys:       # several features of one district (islands) become one MultiPolygon
            keys[key] = _unique_code(_code(raw_code, DISTRICT_CODE_LEN) if raw_code is not None
                                     else f"D{len(keys) + 1:02d}", taken, DISTRICT_CODE_LEN)
            names[keys[key]] = (str(raw_name).strip() if raw_name not in (None, "") else keys[key])[:AREA_NAME_LEN]
        groups[keys[key]].append(row.geometry)
    districts = [(code, names[code], _clean(shapely.union_all(geoms))) for code, geoms in groups.items()]
    return districts, metric


def simplify(districts: list[tuple[str, str, Any]], tolerance_m: float) -> list[tuple[str, str, Any]]:
    """Simplified as one coverage when the districts form one (shared borders stay shared), else each alone."""
    if tolerance_m <= 0:
        return districts
    geoms = [g for _, _, g in districts]
    try:
        coverage = bool(shapely.coverage_is_valid(geoms))
    except Exception:   # older GEOS: no coverage check
        coverage = False
    simple = (shapely.coverage_simplify(geoms, tolerance_m) if coverage
              else [shapely.simplify(g, tolerance_m, preserve_topology=True) for g in geoms])
    out = []
    for (code, name, original), geom in zip(districts, simple):
        geom = _clean(geom)
        out.append((code, name, geom if not geom.is_empty else original))
    return out


def auto_cell_m(districts: list[tuple[str, str, Any]]) -> int:
    """A nice cell size (m) giving about :data:`TARGET_GRIDS` grids for the whole city, at least 500 m."""
    area = sum(g.area for _, _, g in districts)
    want = math.sqrt(area / TARGET_GRIDS)
    return next((c for c in NICE_CELLS_M if c >= max(want, 500)), NICE_CELLS_M[-1])


def grid_cells(district, cell_m: float) -> list:
    """The grid cells of one district (metric CRS), north-west first: a lattice anchored at the
    CRS origin clipped to the district, slivers merged into a neighbour of the same district."""
    minx, miny, maxx, maxy = district.bounds
    i0, i1 = math.floor(minx / cell_m), math.ceil(maxx / cell_m)
    j0, j1 = math.floor(miny / cell_m), math.ceil(maxy / cell_m)
    full = cell_m * cell_m
    shapely.prepare(district)
    pieces: list[list] = []   # [row from the north, column, geometry]
    for j in range(j1 - 1, j0 - 1, -1):
        for i in range(i0, i1):
            cell = shapely.box(i * cell_m, j * cell_m, (i + 1) * cell_m, (j + 1) * cell_m)
            if not district.intersects(cell):
                continue
            piece = cell if district.contains(cell) else _polygonal(shapely.intersection(district, cell))
            if not piece.is_empty and piece.area > 0:
                pieces.append([-j, i, piece])
    return [geom for _, _, geom in merge_slivers(pieces, full)]


def merge_slivers(pieces: list[list], full_area: float, clean=None) -> list[list]:
    """Cells ``[row, column, geometry]`` of one district, a clipped lattice: each sliver (< 25 % of a
    full cell) goes into the neighbouring cell sharing the longest border with it (else the nearest
    cell), so the grids still cover the district; the cells kept, sorted by row then column."""
    clean = clean or _clean
    big = [p for p in pieces if p[2].area >= SLIVER_FRACTION * full_area]
    small = sorted((p for p in pieces if p[2].area < SLIVER_FRACTION * full_area), key=lambda p: -p[2].area)
    if not big:   # a tiny district: keep whatever there is
        big, small = pieces, []
    for sliver in small:
        best, best_len = None, 0.0
        for p in big:
            if abs(p[0] - sliver[0]) > 1 or abs(p[1] - sliver[1]) > 1:
                continue
            shared = shapely.intersection(p[2].boundary, sliver[2].boundary).length
            if shared > best_len:
                best, best_len = p, shared
        if best is None:   # not touching a full cell (an island or a narrow strip): the nearest takes it
            best = min(big, key=lambda p: p[2].distance(sliver[2]))
        best[2] = clean(shapely.union(best[2], sliver[2]))
    big.sort(key=lambda p: (p[0], p[1]))
    return big


def _to_wgs84(geoms: list, metric) -> list:
    import geopandas as gpd
    out = gpd.GeoSeries(geoms, crs=metric).to_crs("EPSG:4326")
    return [_clean(shapely.set_precision(g, PRECISION_DEG)) for g in out]


# --------------------------------------------------------------------------- sample export

@dataclass
class SampleFacts:
    agencies: Counter                     # agency / queue text -> records
    types: Counter                        # type text -> records
    handled_by: dict[str, Counter]        # type -> agency -> records
    labels: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))   # type -> other type columns' texts
    records: int = 0
    without_agency: int = 0               # records naming a type but no agency
    agency_kind: str = "agency"           # the mapping.csv kind the mapping looks agencies up in


def read_sample(path: str | Path, mapping_ref: str, *, limit: Optional[int] = None) -> SampleFacts:
    """The agencies and types of a sample export, read with the columns a mapping file names."""
    from data_sources.feeds.files import read_records
    from data_sources.feeds.mappings import MappingError, get_mapping
    from data_sources.feeds.base import blank
    from data_sources.feeds.mappings.mapper import column, first
    try:
        mapping = get_mapping(mapping_ref)
    except (KeyError, MappingError) as exc:
        raise PackInitError(f"--mapping: {exc.args[0] if isinstance(exc, KeyError) else exc}") from None
    spec = mapping.spec
    dept_cols = spec.department.columns if spec.department is not None else []
    type_cols = spec.category.columns
    facts = SampleFacts(Counter(), Counter(), defaultdict(Counter),
                        agency_kind=(spec.department.table if spec.department is not None and spec.department.table
                                     else "agency"))
    try:
        for raw, _ in read_records(path):
            if limit is not None and facts.records >= limit:
                break
            facts.records += 1
            agency = first(raw, dept_cols) if dept_cols else None
            values = [str(v).strip() for v in (column(raw, c) for c in type_cols) if not blank(v)]
            kind = values[0] if values else ""
            agency = str(agency).strip() if agency is not None else ""
            if agency:
                facts.agencies[agency] += 1
            if kind:
                facts.types[kind] += 1
                for label in values[1:]:
                    if label != kind:
                        facts.labels[kind][label] += 1
                if agency:
                    facts.handled_by[kind][agency] += 1
                else:
                    facts.without_agency += 1
    except ValueError as exc:
        raise PackInitError(f"--sample: {exc}") from None
    return _merge_spellings(facts)


def _merge_spellings(facts: SampleFacts) -> SampleFacts:
    """mapping.csv matches values case-insensitively: 'PLUMBING' and 'Plumbing' are one type (and
    one agency), under the spelling most records use."""
    def canon(counter: Counter) -> dict[str, str]:
        groups: dict[str, Counter] = defaultdict(Counter)
        for value, n in counter.items():
            groups[value.casefold()][value] = n
        return {v: g.most_common(1)[0][0] for g in groups.values() for v in g}
    agency, kind = canon(facts.agencies), canon(facts.types)
    merged = SampleFacts(Counter(), Counter(), defaultdict(Counter), records=facts.records,
                         without_agency=facts.without_agency, agency_kind=facts.agency_kind)
    for a, n in facts.agencies.items():
        merged.agencies[agency[a]] += n
    for k, n in facts.types.items():
        merged.types[kind[k]] += n
    for k, by in facts.handled_by.items():
        for a, n in by.items():
            merged.handled_by[kind[k]][agency[a]] += n
    for k, labels in facts.labels.items():
        merged.labels[kind[k]].update(labels)
    return merged


# --------------------------------------------------------------------------- the pack

def _label(kind: str, labels: Optional[Counter]) -> str:
    """The name of a type: the type itself, unless it is an opaque code (one word with a digit, as
    Open311 ``service_code``s are) and another type column names it (``service_name``)."""
    if labels and not re.search(r"\s", kind) and re.search(r"\d", kind):
        return labels.most_common(1)[0][0]
    return kind


def holiday_source_for(country: Optional[str], subdivision: Optional[str]) -> str:
    if not country:
        return "none"
    country = country.strip().upper()
    if country == "CN":
        return "chinese-calendar"
    source = f"{HOLIDAYS_PREFIX}{country}" + (f"-{subdivision.strip().upper()}" if subdivision else "")
    problem = holiday_source_problem(source)
    if problem:
        raise PackInitError(f"--country/--subdivision: {problem}")
    return source


def _zoom(bounds: tuple[float, float, float, float]) -> float:
    """A zoom that shows the whole city on a 1920×1080 wall (web-mercator tiles of 256 px)."""
    minx, miny, maxx, maxy = bounds
    lat = math.radians((miny + maxy) / 2)
    span_x = max(maxx - minx, 1e-4)
    span_y = max(maxy - miny, 1e-4) / max(math.cos(lat), 0.1)
    z = min(math.log2(1920 * 360 / (256 * span_x)), math.log2(1080 * 360 / (256 * span_y))) - 0.3
    return round(min(max(z, 0.0), 22.0), 1)


def init_pack(name: str, boundary: str | Path, *, out: Optional[str | Path] = None,
              name_field: Optional[str] = None, code_field: Optional[str] = None, source_crs: Optional[str] = None,
              tolerance_m: float = DEFAULT_TOLERANCE_M, grid_m: Optional[float] = None,
              sample: Optional[str | Path] = None, mapping: Optional[str] = None, sample_limit: Optional[int] = None,
              country: Optional[str] = None, subdivision: Optional[str] = None, timezone: Optional[str] = None,
              title: Optional[str] = None, office_hours: str = "09:00-17:00",
              default_limit: float = 5, default_unit: str = "work_days", overwrite: bool = False) -> PackReport:
    """Write a pack folder and load it; PackInitError for bad inputs, PackError if the result does not load."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name or ""):
        raise PackInitError(f"invalid pack name {name!r}: use letters, digits, '-' or '_'")
    folder = Path(out) if out else PACKS_DIR / name
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise PackInitError(f"{folder} exists and is not empty (give --force to overwrite its pack files)")
    if (sample is None) != (mapping is None):
        raise PackInitError("--sample and --mapping go together")
    if default_unit not in TIME_UNITS:
        raise PackInitError(f"--default-unit must be one of {', '.join(TIME_UNITS)}")
    if not (default_limit > 0 and math.isfinite(default_limit)):
        raise PackInitError("--default-limit must be a number > 0")
    if tolerance_m < 0:
        raise PackInitError("--tolerance must be >= 0 metres")
    if grid_m is not None and grid_m < 50:
        raise PackInitError("--grid-size must be at least 50 metres")
    country = (country or "").strip().upper() or None
    if timezone is None and country == "CN":
        timezone = "Asia/Shanghai"
    if not timezone:
        raise PackInitError("give --timezone (an IANA zone such as America/Chicago)")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise PackInitError(f"--timezone {timezone!r} is not an IANA time zone") from None
    holiday_source = holiday_source_for(country, subdivision)
    try:
        periods = [[p.split("-")[0].strip(), p.split("-")[1].strip()] for p in office_hours.split(",")]
    except IndexError:
        raise PackInitError(f"--office-hours {office_hours!r}: write periods like 08:30-12:00,13:30-17:30") from None

    report = PackReport(folder)
    review = report.review
    districts, metric = read_boundary(boundary, name_field=name_field, code_field=code_field,
                                      source_crs=source_crs, review=review)
    districts = simplify(districts, tolerance_m)
    review.append(f"district borders simplified with a tolerance of {tolerance_m:g} m (--tolerance)")
    cell = grid_m or auto_cell_m(districts)
    if not grid_m:
        review.append(f"grid cells of {cell:g} m (chosen for about {TARGET_GRIDS} grids; --grid-size to change)")

    features, district_areas, n_grids = [], {}, 0
    wgs_districts = _to_wgs84([g for _, _, g in districts], metric)
    for (code, dname, _), geom in zip(districts, wgs_districts):
        features.append(_feature(code, dname, "district", None, geom))
    for (code, dname, geom) in districts:
        cells = grid_cells(geom, cell)
        if len(cells) > MAX_GRIDS_PER_DISTRICT:
            raise PackInitError(f"district {code} would get {len(cells)} grids (> {MAX_GRIDS_PER_DISTRICT}): "
                                "give a larger --grid-size")
        for seq, g in enumerate(_to_wgs84(cells, metric), start=1):
            features.append(_feature(f"{code}{seq:04d}", f"{dname} grid {seq:04d}", "grid", code, g))
        n_grids += len(cells)
        district_areas[code] = geom.area
    bounds = shapely.union_all(wgs_districts).bounds
    center_geom = shapely.union_all(wgs_districts)
    center = center_geom.representative_point() if not center_geom.centroid.within(center_geom) else center_geom.centroid

    # departments, categories, routing and mapping.csv from the sample
    triage = f"{_code(name, 20)}-TRIAGE"
    taken_depts: set[str] = {triage}
    triage_name = f"{title or name} 311 (triage)"[:DEPT_NAME_LEN]
    departments = [[triage, triage_name, triage_name, "triage", "", ""]]
    categories, routing, mapping_rows = [], [], []
    majors: dict[str, tuple[str, str]] = {}   # department code -> (major code, major name)
    taken_cats: set[str] = {CATCH_ALL, "G-OTHER"}   # small and major codes never clash
    if sample is not None:
        facts = read_sample(sample, mapping, limit=sample_limit)
        dept_of: dict[str, str] = {}
        for agency, _n in sorted(facts.agencies.items(), key=lambda kv: (-kv[1], kv[0])):
            code = _unique_code(_code(agency), taken_depts, DEPT_CODE_LEN)
            dept_of[agency] = code
            departments.append([code, agency[:DEPT_NAME_LEN], agency[:DEPT_NAME_LEN], "city", "", ""])
            mapping_rows.append([facts.agency_kind, agency, code, ""])
        other_major = ("G-OTHER", "Other / unassigned")
        for kind, n in sorted(facts.types.items(), key=lambda kv: (-kv[1], kv[0])):
            lead = facts.handled_by.get(kind)
            dept = dept_of[lead.most_common(1)[0][0]] if lead else None
            if dept is not None and dept not in majors:
                majors[dept] = (_unique_code(f"G-{dept}", taken_cats, CAT_CODE_LEN),
                                next(d[1] for d in departments if d[0] == dept)[:MAJOR_NAME_LEN])
            major_code, major_name = majors[dept] if dept else other_major
            label = _label(kind, facts.labels.get(kind))
            code = _unique_code(_code(label, CAT_CODE_LEN), taken_cats, CAT_CODE_LEN)
            categories.append([code, "event", major_code, major_name, label[:CAT_NAME_LEN], label[:CAT_NAME_LEN],
                               f"{default_limit:g}", default_unit,
                               "50", "72", str(n), "false"])
            mapping_rows.append(["complaint_type", kind, "", code])
        report.counts.update({"sample records": facts.records, "agencies": len(facts.agencies),
                              "types": len(facts.types)})
        no_agency = [k for k in facts.types if k not in facts.handled_by]
        if no_agency:
            review.append(f"{len(no_agency)} type(s) seen without an agency, routed to the triage department "
                          f"{triage}: {', '.join(sorted(no_agency)[:5])}{' …' if len(no_agency) > 5 else ''}")
        if facts.without_agency:
            review.append(f"{facts.without_agency:,} sample record(s) name no agency: they will come in "
                          "without a department (registered, for the dispatchers)")
        named = [(k, _label(k, facts.labels.get(k))) for k in facts.types]
        named = [(k, n) for k, n in named if k != n]
        if named:
            review.append(f"{len(named)} type code(s) named from the other type column(s), e.g. "
                          + ", ".join(f"{k!r} → {n!r}" for k, n in named[:3]))
        if not facts.agencies:
            review.append("the sample names no agency (the mapping's [department] columns are empty or absent): "
                          "add departments.csv rows and mapping.csv agency rows by hand")
        review.append(f"department codes made from the agency names ({facts.agency_kind} rows of mapping.csv): "
                      "check departments.csv (names, levels) — e.g. "
                      + ", ".join(f"{a!r} → {c}" for a, c in list(dept_of.items())[:3]))
        review.append(f"every category has the default time limit {default_limit:g} {default_unit} "
                      "(--default-limit/--default-unit): set the city's real limits in categories.csv")
        review.append("each type is routed to the agency that handled most of it in the sample (routing.csv)")
    categories.append([CATCH_ALL, "event", "G-OTHER", "Other / unassigned", "Other (type not mapped)",
                       "Other (type not mapped)", f"{default_limit:g}", default_unit, "50", "72", "0", "false"])
    mapping_rows.append(["complaint_type", "*", "", CATCH_ALL])
    for n, (dept, (major_code, major_name)) in enumerate(sorted(majors.items(), key=lambda kv: kv[1][0]), start=1):
        routing.append([str(n), major_code, "", dept, f"{major_name}: most of these types in the sample"])
    routing.append([str(len(routing) + 1), "*", "", triage, "anything else: the triage queue"])
    review.append(f"holiday calendar: {holiday_source}; office hours {office_hours}; time zone {timezone}")

    total_area = sum(district_areas.values()) or 1.0
    weights = {code: round(a / total_area, 4) for code, a in district_areas.items()}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "areas.geojson").write_text(json.dumps(
        {"type": "FeatureCollection", "name": f"{name}_areas",
         "crs_note": f"WGS84 (EPSG:4326), from {Path(boundary).name} by `flask pack init`",
         "features": features}, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    _write_csv(folder / "departments.csv", ["code", "name", "name_en", "level", "district_code", "parent_code"],
               departments)
    _write_csv(folder / "categories.csv", ["code", "kind", "major_code", "major_name", "name", "name_en",
                                           "time_limit", "time_unit", "dup_radius_m", "dup_window_h", "demo_weight",
                                           "urgent"], categories)
    _write_csv(folder / "routing.csv", ["id", "category_code", "area_code", "department_code", "note"], routing)
    _write_csv(folder / "mapping.csv", ["kind", "value", "department_code", "category_code"], mapping_rows)
    (folder / "pack.toml").write_text(_pack_toml(
        name=name, title=title or name, timezone=timezone, center=(center.y, center.x), zoom=_zoom(bounds),
        holiday_source=holiday_source, periods=periods, triage=triage, weights=weights,
        note=f"built by `flask --app app pack init` from {Path(boundary).name}"
             + (f" and {Path(sample).name} ({mapping})" if sample else "")), encoding="utf-8")

    report.counts.update({"districts": len(districts), "grids": n_grids, "departments": len(departments),
                          "categories": len(categories), "routing rules": len(routing)})
    try:
        pack = load_pack(folder)
        load_mapping(pack)
    except PackError as exc:
        raise PackError(f"the pack written to {folder} does not load: {exc}") from None
    report.pack = pack
    return report


_KPI_DEFAULTS = """[kpi.targets]
closure_rate = 0.90
on_time_closure_rate = 0.85
on_time_disposal_rate = 0.85
rework_rate = 0.05
accurate_dispatch_rate = 0.95
extension_rate = 0.05

[kpi.weights]
closure_rate = 0.3
on_time_disposal_rate = 0.3
rework = 0.3
volume = 0.1

[priority_factors]
normal = 1.0
urgent = 0.5
emergency = 0.25
"""


def _pack_toml(*, name, title, timezone, center, zoom, holiday_source, periods, triage, weights, note) -> str:
    lines = [f"# {note}. Review it (README \"Packs\"): time limits, departments, routing.",
             f"name = {_toml_str(name)}", f"title = {_toml_str(title)}", f"title_en = {_toml_str(title)}",
             f"timezone = {_toml_str(timezone)}", 'crs = "WGS84"',
             f"center = [{center[0]:.5f}, {center[1]:.5f}]", f"zoom = {zoom}",
             f"holiday_source = {_toml_str(holiday_source)}", f"triage_department = {_toml_str(triage)}", "",
             "[office_hours]",
             "periods = [" + ", ".join(f"[{_toml_str(a)}, {_toml_str(b)}]" for a, b in periods) + "]", "",
             _KPI_DEFAULTS, "[demo]", "daily_cases = 600", "hotspot_share = 0.0", "",
             "[demo.district_weights]          # by area"]
    lines += [f"{_toml_str(code)} = {w}" for code, w in weights.items()]
    return "\n".join(lines) + "\n"


__all__ = ["DEFAULT_TOLERANCE_M", "PackInitError", "PackReport", "SampleFacts", "auto_cell_m", "grid_cells",
           "holiday_source_for", "init_pack", "merge_slivers", "read_boundary", "read_sample", "simplify"]
