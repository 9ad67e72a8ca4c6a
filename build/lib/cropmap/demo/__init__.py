"""The demo study areas, written offline by `cropmap demo` (`rules/demo.smk`): not part of a real
area's chain.

- `area`: a demo area from its settings, and the config of a larger one (`cropmap demo-config`).
- `landscape`: the synthetic fields, their crop calendars, clouds, and the reference.
- `products`: the three land-cover products, each with its own grid and errors.
- `catalog`: the scenes as Sentinel-2 L2A-like COGs in a local static STAC catalog.
- `synthetic`: the generator's area; `series`: areas whose fields carry real parcels' series,
  from WorldCereal's extractions (`extractions`).
"""

from cropmap._exports import lazy_exports

_EXPORTS = {
    "make_demo": "area", "demo_area_config": "area", "write_demo_area_config": "area",
    "make_landscape": "landscape", "write_reference": "landscape",
    "write_products": "products",
    "write_scene": "catalog", "save_catalog": "catalog",
    "make_synthetic_demo": "synthetic",
    "make_series_demo": "series", "vary_series": "series",
    "load_extraction": "extractions",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
