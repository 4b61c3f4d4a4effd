"""Map layers: pure "frame in, traces out". The registry names every layer a map may show."""
from layers import districts, incidents

LAYERS = {
    "districts": districts.choropleth,      # areas coloured by open cases
    "grid": districts.choropleth,           # grid cells as a heat layer (heat=True)
    "outlines": districts.outlines,
    "incidents": incidents.points,          # case points by traffic light
}
