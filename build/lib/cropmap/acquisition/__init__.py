"""Stage 1-2, acquisition: from a STAC source to a tile's cube of composites (`rules/search.smk`,
`rules/sits.smk`).

- `search`: the STAC search (an API through pystac-client, or a local static catalog).
- `credentials`: signing asset URLs (Planetary Computer) and redacting secrets from logs.
- `bands`: the providers' band names (`red` or `B04`) and native resolutions.
- `scenes`: which scenes can be read (odc-loader's reader with a CRS check), retries, skipped scenes.
- `cloudmask`: the SCL mask and the optional ukis-csmask CNN.
- `compositing`: clear masks, period medians and gap filling (pure numpy).
- `resampling`: from a band's native grid to the tile's.
- `sits`: a tile's cube, built in phases over odc-stac's lazy loads; `cube`: its CF-1.10 netCDF.
"""

from cropmap._exports import lazy_exports

_EXPORTS = {
    "search_items": "search", "find_items": "search", "search_to_file": "search",
    "sign_items": "credentials", "redact": "credentials", "RedactingFilter": "credentials",
    "resolve_bands": "bands", "native_resolution": "bands",
    "with_retries": "scenes", "SkippedScene": "scenes",
    "scl_masked": "cloudmask", "csmask_masked": "cloudmask",
    "composite": "compositing", "composite_periods": "compositing", "fill_gaps": "compositing",
    "resample_bilinear": "resampling",
    "build_tile_cube": "sits", "tile_cube_step": "sits",
    "open_cube": "cube", "write_cube": "cube",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
