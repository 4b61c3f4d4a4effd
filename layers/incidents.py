"""Open case points coloured by traffic light (one trace per light, so the colours have a legend)."""
from __future__ import annotations

import plotly.graph_objects as go

ORDER = ("none", "green", "yellow", "red")  # red drawn last, on top


def points(rows: list[dict], *, colors: dict[str, str], labels: dict[str, str]) -> list:
    traces = []
    for light in ORDER:
        sel = [r for r in rows if r["light"] == light]
        if not sel:
            continue
        size = 9 if light == "red" else 7 if light == "yellow" else 5
        traces.append(go.Scattermap(
            lon=[r["lon"] for r in sel], lat=[r["lat"] for r in sel], mode="markers",
            marker=dict(size=size, color=colors[light], opacity=0.9),
            customdata=[[r["id"], r["title"]] for r in sel], name=labels.get(light, light),
            hovertemplate="#%{customdata[0]} %{customdata[1]}<extra>" + labels.get(light, light) + "</extra>"))
    return traces
