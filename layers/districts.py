"""District polygons coloured by a value (open cases by default), and their outlines."""
from __future__ import annotations

import plotly.graph_objects as go

SCALE = [[0.0, "#0d2a4a"], [0.35, "#12487a"], [0.7, "#1f6fb2"], [1.0, "#35a7ff"]]


def choropleth(shapes: dict, values: dict[str, float], *, label: str, unit: str) -> list:
    codes = [f["id"] for f in shapes["features"]]
    names = {f["id"]: f["properties"]["name"] for f in shapes["features"]}
    z = [float(values.get(c, 0)) for c in codes]
    return [go.Choroplethmap(
        geojson=shapes, locations=codes, z=z, featureidkey="id", colorscale=SCALE,
        zmin=0, zmax=max(z) if z and max(z) > 0 else 1, marker=dict(opacity=0.75, line=dict(color="#5fb4ff", width=1)),
        text=[names[c] for c in codes], showscale=False, name=label,
        hovertemplate="<b>%{text}</b><br>" + label + "：%{z:,.0f} " + unit + "<extra></extra>")]


def outlines(shapes: dict) -> list:
    lons, lats = [], []
    for f in shapes["features"]:
        g = f["geometry"]
        polys = g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]
        for poly in polys:
            ring = poly[0]
            lons += [p[0] for p in ring] + [None]
            lats += [p[1] for p in ring] + [None]
    return [go.Scattermap(lon=lons, lat=lats, mode="lines", line=dict(color="#5fb4ff", width=1),
                          hoverinfo="skip", name="outline")]
