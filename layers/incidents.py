"""Open case points coloured by traffic light: always one trace per light in a fixed order
(empty when there is none), so a refresh can patch the coordinates without rebuilding the map."""
from __future__ import annotations

import plotly.graph_objects as go

ORDER = ("none", "green", "yellow", "red")  # red drawn last, on top
SIZES = {"none": 6, "green": 6, "yellow": 9, "red": 11}


def points(rows: list[dict], *, colors: dict[str, str], labels: dict[str, str]) -> list:
    traces = []
    for light in ORDER:
        lon, lat, custom, sizes = point_arrays(rows, light)
        traces.append(go.Scattermap(
            lon=lon, lat=lat, mode="markers", customdata=custom, name=labels.get(light, light),
            marker=dict(size=sizes, color=colors[light], opacity=0.9),
            hovertemplate="#%{customdata}<extra>" + labels.get(light, light) + "</extra>"))
    return traces


def point_arrays(rows: list[dict], light: str) -> tuple[list, list, list, list]:
    """Coordinates, case ids and marker sizes of one light's points (urgent cases drawn larger).
    Titles stay on the server: they would make every refresh several times bigger."""
    sel = [r for r in rows if r["light"] == light]
    return ([r["lon"] for r in sel], [r["lat"] for r in sel], [r["id"] for r in sel],
            [SIZES[light] + (6 if r.get("priority", "normal") != "normal" else 0) for r in sel])
