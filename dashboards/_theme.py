"""Colours and figure defaults shared by the pages (dark command-centre theme)."""
from __future__ import annotations

BG = "#07121f"
PANEL = "#0d1d31"
GRID = "#1d3350"
TEXT = "#e6eef8"
MUTED = "#8aa2bf"
ACCENT = "#35a7ff"
GREEN = "#2ecc71"
YELLOW = "#f5c542"
RED = "#ff4d4f"
GREY = "#7f8fa6"
LIGHT_COLORS = {"green": GREEN, "yellow": YELLOW, "red": RED, "none": ACCENT}
STATE_COLORS = {"reported": "#9b8cff", "registered": "#35a7ff", "dispatched": "#22c3c3",
                "in_progress": "#2ecc71", "resolved": "#f5c542", "closed": "#5b6f86",
                "voided": "#3d4b5c", "suspended": "#ff8c42"}
SEQ = ["#0d2a4a", "#12487a", "#1f6fb2", "#35a7ff", "#8fd3ff"]
FONT = "'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',sans-serif"

GRAPH_CONFIG = {"showSendToCloud": False, "displaylogo": False, "displayModeBar": False,
                "responsive": True}
MAP_CONFIG = {**GRAPH_CONFIG, "scrollZoom": True}


def offline_map_style(tile_url: str = "") -> dict | str:
    """A MapLibre style that needs no internet: a plain background, or our own raster tiles."""
    layers = [{"id": "background", "type": "background", "paint": {"background-color": BG}}]
    sources = {}
    if tile_url:
        sources["tiles"] = {"type": "raster", "tiles": [tile_url], "tileSize": 256}
        layers.append({"id": "tiles", "type": "raster", "source": "tiles"})
    return {"version": 8, "sources": sources, "layers": layers}


MAP_STYLE_URL = "/map/style.json"


def base_layout(**kw) -> dict:
    layout = dict(paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
                  font=dict(family=FONT, color=TEXT, size=14), margin=dict(l=8, r=8, t=8, b=8),
                  showlegend=False, uirevision="keep")
    layout.update(kw)
    return layout
