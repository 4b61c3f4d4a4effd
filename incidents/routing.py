"""Routing: rules → department suggestion with a human-readable reason, and location → area.

Rules are pack data: (category, optional area) → department. Most specific first:
small class + area, major class + area, small class, major class, '*' + area, '*'.
Never branch on a department's or city's name here: add a rule row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
import shapely
from shapely import STRtree


@dataclass(frozen=True)
class Rule:
    id: int
    category_code: str
    area_code: Optional[str]
    department_code: str
    note: str = ""


@dataclass(frozen=True)
class Suggestion:
    department_code: str
    rule_id: Optional[int]
    reason: str


class Router:
    def __init__(self, rules: Iterable[Rule], *, major_of: Mapping[str, str], triage_department: str,
                 category_names: Mapping[str, str] | None = None,
                 area_names: Mapping[str, str] | None = None,
                 department_names: Mapping[str, str] | None = None):
        self._index: dict[tuple[str, Optional[str]], Rule] = {}
        for r in sorted(rules, key=lambda r: r.id):  # lowest id wins on a tie
            self._index.setdefault((r.category_code, r.area_code or None), r)
        self.major_of = dict(major_of)
        self.triage = triage_department
        self.category_names = dict(category_names or {})
        self.area_names = dict(area_names or {})
        self.department_names = dict(department_names or {})

    def route(self, category_code: Optional[str], district_code: Optional[str] = None,
              grid_code: Optional[str] = None) -> Suggestion:
        if not category_code or category_code not in self.major_of:
            return Suggestion(self.triage, None,
                              f"未知类别 {category_code or '（空）'} → 分拨中心人工研判 "
                              f"({self.department_names.get(self.triage, self.triage)})")
        major = self.major_of[category_code]
        areas = [a for a in (grid_code, district_code) if a]
        candidates = ([(category_code, a) for a in areas] + [(major, a) for a in areas]
                      + [(category_code, None), (major, None)]
                      + [("*", a) for a in areas] + [("*", None)])
        for key in candidates:
            rule = self._index.get(key)
            if rule is not None:
                return Suggestion(rule.department_code, rule.id, self._reason(rule, category_code, key[1]))
        return Suggestion(self.triage, None,
                          f"无匹配规则：{self.category_names.get(category_code, category_code)} → 分拨中心")

    def _reason(self, rule: Rule, category_code: str, area_code: Optional[str]) -> str:
        cat = self.category_names.get(category_code, category_code)
        where = f" · {self.area_names.get(area_code, area_code)}" if area_code else " · 全市"
        dept = self.department_names.get(rule.department_code, rule.department_code)
        return f"规则 {rule.id}：{cat}{where} → {dept}"


class AreaIndex:
    """Point-in-polygon lookup of district and grid codes over an STRtree."""

    def __init__(self, districts: Sequence[tuple[str, object]], grids: Sequence[tuple[str, str, object]]):
        self.district_codes = np.array([c for c, _ in districts], dtype=object)
        self.district_tree = STRtree([g for _, g in districts])
        self.grid_codes = np.array([c for c, _, _ in grids], dtype=object)
        self.grid_parent = np.array([p for _, p, _ in grids], dtype=object)
        self.grid_tree = STRtree([g for _, _, g in grids]) if grids else None

    def locate(self, lon: Optional[float], lat: Optional[float]) -> tuple[Optional[str], Optional[str]]:
        if lon is None or lat is None:
            return None, None
        d, g = self.locate_many(np.array([lon]), np.array([lat]))
        return d[0], g[0]

    def locate_many(self, lons, lats) -> tuple[list[Optional[str]], list[Optional[str]]]:
        pts = shapely.points(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        n = len(pts)
        districts: list[Optional[str]] = [None] * n
        grids: list[Optional[str]] = [None] * n
        if self.grid_tree is not None:
            p_idx, g_idx = self.grid_tree.query(pts, predicate="intersects")
            for p, g in zip(p_idx, g_idx):
                if grids[p] is None:
                    grids[p] = self.grid_codes[g]
                    districts[p] = self.grid_parent[g]
        missing = [i for i in range(n) if districts[i] is None]
        if missing:
            p_idx, d_idx = self.district_tree.query(pts[missing], predicate="intersects")
            for p, d in zip(p_idx, d_idx):
                i = missing[p]
                if districts[i] is None:
                    districts[i] = self.district_codes[d]
        return districts, grids


EARTH_RADIUS_M = 6_371_008.8


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (haversine), enough for duplicate radii of a few hundred metres."""
    import math
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bbox_around(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) that contains every point within ``radius_m``."""
    import math
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
    return lon - dlon, lat - dlat, lon + dlon, lat + dlat
