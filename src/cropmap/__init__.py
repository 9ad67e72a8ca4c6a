"""cropmap: cropland maps from Sentinel-2 image time series with weak labels from land-cover consensus."""

__version__ = "0.1.0"
