"""Map layers: pure "frame in, traces out". The registry names every layer a map may show."""
from layers import districts, incidents

LAYERS = {
    "districts": districts.choropleth,
    "district_outlines": districts.outlines,
    "incidents": incidents.points,
}
