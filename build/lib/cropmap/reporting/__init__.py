"""What a person looks at and what a catalog reads (`rules/report.smk`).

- `figures`: quick looks of the map, its probability and its uncertainty, data availability,
  confusion matrices.
- `styles`: QGIS styles beside the rasters, and the legend.
- `stac_item`: the map's STAC item with its accuracy and area estimate.
"""

from cropmap._exports import lazy_exports

_EXPORTS = {
    "quicklook": "figures", "uncertainty_quicklook": "figures", "availability": "figures", "confusion_plot": "figures",
    "map_styles": "styles", "uncertainty_style": "styles",
    "map_stac_item": "stac_item", "stac_item_step": "stac_item",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
