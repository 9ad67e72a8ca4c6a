"""cropmap: cropland maps from Sentinel-2 image time series with weak labels from land-cover consensus.

One subpackage per stage of the pipeline (as `rules/` has one file per stage), the shared core at
the top:

- `acquisition`: STAC search, scenes, cloud masks, compositing, a tile's cube;
- `labels`: land-cover products, their consensus, one's own labels, label quality;
- `learning`: training patches, the network, pretraining and training, the random forest;
- `mapping`: tiled inference, the mosaic, uncertainty;
- `assessment`: accuracy against a reference, the sample and the area estimate;
- `reporting`: quick looks, QGIS styles, the map's STAC item;
- `demo`: the offline demo areas (not part of a real area's chain);
- the core: `config` (the schema check and what each step depends on), `settings` (the typed
  settings of each step), `conventions`, `errors`, `io`, `grid`, `plotting` and `cli`.
"""

__version__ = "0.5.0"
