"""A tile's cube on disk: CF-1.10 netCDF written atomically, read back as cropmap computes on it.

Kept apart from `cropmap.acquisition.sits` (which builds cubes with odc-stac), so that the steps that only read
cubes (patches, predict, the forest) do not import odc-stac's reader."""

from __future__ import annotations

import numpy as np
import rioxarray  # noqa: F401  (registers .rio: a cube's CRS and transform are read and written through it)
import xarray as xr

from cropmap.conventions import REFLECTANCE_FILL
from cropmap.errors import DataError
from cropmap.io import atomic_path

__all__ = ["open_cube", "write_cube"]


def write_cube(cube: xr.Dataset, path) -> None:
    """Write a cube as CF-1.10 netCDF: int16 reflectance with `scale_factor` and `_FillValue`, so
    `xarray.open_dataset` gives reflectance in [0, 1] with NaN where never observed."""
    # merged with each variable's own encoding: rioxarray keeps `grid_mapping` there
    encoding = {name: {**cube[name].encoding, "zlib": True, "complevel": 4} for name in cube.data_vars}
    encoding["reflectance"]["_FillValue"] = np.int16(REFLECTANCE_FILL)
    with atomic_path(path) as tmp:
        cube.to_netcdf(tmp, engine="netcdf4", encoding=encoding)


def open_cube(path) -> xr.Dataset:
    """Open a tile cube written by `build_tile_cube` (loads it in memory), reflectance as the stored
    int16 (reflectance * 10000, -9999 where never observed), which is what cropmap computes on."""
    try:
        with xr.open_dataset(path, engine="netcdf4", mask_and_scale=False) as ds:
            return ds.load()
    except OSError as err:
        raise DataError(f"cannot read the time-series cube {path}: {err}") from None
