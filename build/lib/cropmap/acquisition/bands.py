"""Finding a band's asset in a STAC item, whatever the provider calls it.

Sentinel-2 L2A catalogs name the same band differently (`B04` at Planetary Computer and Earth
Search v0, `red` at Earth Search v1; `SCL` or `scl`). A band is found by its asset key, then by the
`eo:bands` name of an asset, then by the physics of the sensor: the band's centre wavelength
against the assets' `eo:bands` centre wavelengths. Nothing here is keyed by provider.
"""

from __future__ import annotations

from collections.abc import Sequence

import pystac

from cropmap.errors import DataError

__all__ = ["SENTINEL2_BANDS", "native_resolution", "resolve_band", "resolve_bands"]

# Sentinel-2 MSI band: (common name, centre wavelength in micrometres)
SENTINEL2_BANDS = {
    "B01": ("coastal", 0.443), "B02": ("blue", 0.490), "B03": ("green", 0.560), "B04": ("red", 0.665),
    "B05": ("rededge", 0.704), "B06": ("rededge", 0.740), "B07": ("rededge", 0.783), "B08": ("nir", 0.842),
    "B8A": ("nir08", 0.865), "B09": ("nir09", 0.945), "B11": ("swir16", 1.610), "B12": ("swir22", 2.190),
}
# the MSI's sampling, for items that do not state it (metres)
_SENTINEL2_RESOLUTION = {"B02": 10.0, "B03": 10.0, "B04": 10.0, "B08": 10.0, "BLUE": 10.0, "GREEN": 10.0, "RED": 10.0,
                         "NIR": 10.0, "B01": 60.0, "B09": 60.0, "B10": 60.0, "COASTAL": 60.0, "NIR09": 60.0}
_WAVELENGTH_TOLERANCE = 0.012  # micrometres; neighbouring S2 bands are >= 0.023 apart


def _eo_bands(asset: pystac.Asset) -> list[dict]:
    return asset.extra_fields.get("eo:bands") or []


def resolve_band(item: pystac.Item, band: str) -> str:
    """The asset key of `band` (an S2 band id such as "B04", or an asset / eo:bands name) in `item`."""
    if band in item.assets:
        return band
    lowered = {key.lower(): key for key in item.assets}
    if band.lower() in lowered:
        return lowered[band.lower()]
    for key, asset in item.assets.items():
        if any(str(b.get("name", "")).lower() == band.lower() for b in _eo_bands(asset)):
            return key
    wanted = SENTINEL2_BANDS.get(band.upper())
    if wanted is not None:
        _, wavelength = wanted
        for key, asset in item.assets.items():
            if any(abs(float(b.get("center_wavelength", -9)) - wavelength) < _WAVELENGTH_TOLERANCE
                   for b in _eo_bands(asset)) and _is_data(asset):
                return key
    raise DataError(f"item {item.id} has no asset for band {band!r} (assets: {', '.join(sorted(item.assets))})")


def _is_data(asset: pystac.Asset) -> bool:
    """Not a JPEG2000 copy or a preview of the same band."""
    media = (asset.media_type or "").lower()
    return "jp2" not in media and "jpeg" not in media and "png" not in media


def resolve_bands(item: pystac.Item, bands: Sequence[str]) -> dict[str, str]:
    """{band: asset key} for every band, raising `DataError` naming the first one missing."""
    return {band: resolve_band(item, band) for band in bands}


def native_resolution(item: pystac.Item, asset_key: str, band: str) -> float:
    """Pixel size of an asset in metres: its `proj:transform`, else its `gsd`, else the sensor's
    sampling of `band` (10 m for B02-B04 and B08, 60 m for B01 and B09, 20 m for the others and SCL)."""
    asset = item.assets[asset_key]
    if asset.extra_fields.get("proj:transform"):
        return abs(float(asset.extra_fields["proj:transform"][0]))
    if asset.extra_fields.get("gsd"):
        return float(asset.extra_fields["gsd"])
    return _SENTINEL2_RESOLUTION.get(band.upper(), 20.0)
