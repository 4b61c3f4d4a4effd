"""Areas (districts or grid cells) coloured by a value (open cases by default), and outlines."""
from __future__ import annotations

import plotly.graph_objects as go

SCALE = [[0.0, "#0d2a4a"], [0.35, "#12487a"], [0.7, "#1f6fb2"], [1.0, "#35a7ff"]]
HEAT = [[0.0, "rgba(255,200,60,0.0)"], [0.15, "rgba(255,200,60,0.35)"], [0.5, "rgba(255,120,40,0.65)"],
        [1.0, "rgba(255,60,60,0.9)"]]


def values_for(shapes: dict, values: dict[str, float]) -> list[float]:
    return [float(values.get(f["id"], 0)) for f in shapes["features"]]


def bounds(shapes: dict) -> tuple[float, float, float, float]:
    """(west, south, east, north) of the shapes' outer rings: what a map must show to show them all."""
    xs, ys = [], []
    for f in shapes["features"]:
        g = f["geometry"]
        for poly in (g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]):
            xs += [p[0] for p in poly[0]]
            ys += [p[1] for p in poly[0]]
    return (min(xs), min(ys), max(xs), max(ys)) if xs else (-180.0, -85.0, 180.0, 85.0)


def choropleth(shapes: dict, values: dict[str, float], *, label: str, unit: str, heat: bool = False,
               name: str = "areas", scale_title: str = "", text_size: int = 13) -> list:
    """``scale_title``: show the colour scale (a legend of what the fill means) with this title."""
    codes = [f["id"] for f in shapes["features"]]
    names = [f["properties"]["name"] for f in shapes["features"]]
    z = values_for(shapes, values)
    top = max(z) if z and max(z) > 0 else 1
    return [go.Choroplethmap(
        geojson=shapes, locations=codes, z=z, featureidkey="id", colorscale=HEAT if heat else SCALE,
        zmin=0, zmax=top, text=names, showscale=bool(scale_title), name=name,
        colorbar=dict(title=dict(text=scale_title, side="top", font=dict(size=text_size)), x=0.99, xanchor="right",
                      y=0.03, yanchor="bottom", len=0.35, thickness=max(10, round(text_size * 0.9)),
                      bgcolor="rgba(7,18,31,0.75)", outlinewidth=0, tickfont=dict(size=text_size),
                      tickformat=",d") if scale_title else None,
        marker=dict(opacity=1.0 if heat else 0.75,
                    line=dict(color="rgba(95,180,255,0.25)" if heat else "#5fb4ff", width=0.5 if heat else 1)),
        hovertemplate="<b>%{text}</b><br>" + label + "：%{z:,.0f} " + unit + "<extra></extra>")]


def outlines(shapes: dict, *, color: str = "#5fb4ff", width: float = 1.5) -> list:
    lons, lats = [], []
    for f in shapes["features"]:
        g = f["geometry"]
        polys = g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]
        for poly in polys:
            ring = poly[0]
            lons += [p[0] for p in ring] + [None]
            lats += [p[1] for p in ring] + [None]
    return [go.Scattermap(lon=lons, lat=lats, mode="lines", line=dict(color=color, width=width),
                          hoverinfo="skip", name="outline")]
