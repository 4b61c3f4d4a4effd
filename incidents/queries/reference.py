"""The loaded pack and its reference data, for every screen: the city's name, timezone and map
view, the district shapes, the departments, the case rules."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from data_sources.store.cache import cache
from data_sources.store.db import read_scope
from incidents.queries._common import runtime
from incidents.tables import Area, Department


@cache.memoize(timeout=3600)
def district_shapes(version_of_pack: str) -> dict:
    """GeoJSON FeatureCollection of the districts (for choropleth and outlines)."""
    import json
    with read_scope() as s:
        rows = s.execute(select(Area.code, Area.name, Area.geometry, Area.centroid_lon, Area.centroid_lat)
                         .where(Area.level == "district").order_by(Area.code)).all()
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "id": c, "properties": {"code": c, "name": n, "lon": lo, "lat": la},
                          "geometry": json.loads(g)} for c, n, g, lo, la in rows]}


@cache.memoize(timeout=3600)
def department_names(version_of_pack: str) -> dict[str, str]:
    with read_scope() as s:
        return dict(s.execute(select(Department.code, Department.name)).all())


@dataclass(frozen=True)
class CityInfo:
    name: str
    title: str
    title_en: str
    timezone: str
    center: tuple[float, float]
    zoom: float
    escalate_after_minutes: int = 10      # [wall]: an urgent alarm unacknowledged this long escalates


def city_info() -> CityInfo:
    """The loaded pack's name, timezone, map view and wall rules (for page headers and maps)."""
    p = runtime().pack
    return CityInfo(p.name, p.title, p.title_en, p.timezone, tuple(p.center), float(p.zoom),
                    p.wall.escalate_after_minutes)


def department_options() -> list[tuple[str, str]]:
    """(code, name) of every department, by code (the dispatch dropdown)."""
    with read_scope() as s:
        return [(c, n) for c, n in s.execute(select(Department.code, Department.name).order_by(Department.code))]


def case_rules():
    """The loaded pack's case rules (calendar, routing, areas) for the screens."""
    return runtime().rules
