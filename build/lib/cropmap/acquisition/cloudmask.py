"""Cloud maskers: each returns, for a stack of observations on one grid, where they are not clear.

`scl_masked` reads the Scene Classification Layer of the L2A product; `csmask_masked` runs the
ukis-csmask CNN (a U-Net trained on Sentinel-2 L2A, shipped with its weights in the
`ukis-csmask` wheel: nothing is downloaded) on six bands, for users who want more than SCL, which
misses thin cloud edges and part of the shadows. `cropmap.acquisition.sits` masks the union of the two when
`sits.cloud_masker` is `ukis-csmask`, then grows it by `sits.cloud_dilation_px`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import numpy as np

from cropmap.acquisition.bands import SENTINEL2_BANDS
from cropmap.conventions import available_cores
from cropmap.errors import ConfigError, DataError

__all__ = ["CSMASK_BANDS", "check_csmask", "csmask_bands", "csmask_masked", "scl_masked"]

# the model's inputs, by Sentinel-2 common name
CSMASK_BANDS = ("blue", "green", "red", "nir", "swir16", "swir22")


def scl_masked(scl: np.ndarray, *, classes: Sequence[int]) -> np.ndarray:
    """True where the SCL class (any shape, integer or float with NaN) is one of `classes`."""
    if not np.issubdtype(scl.dtype, np.integer):  # loaded as float where the catalog states no data type
        scl = np.nan_to_num(scl, nan=0).astype(np.uint8)
    lookup = np.zeros(max(256, int(scl.max(initial=0)) + 1), bool)
    lookup[np.asarray(classes, dtype=np.intp)] = True
    return lookup[scl]  # a table lookup is much faster than np.isin


def csmask_bands(bands: Sequence[str]) -> list[str]:
    """The configured band names that feed ukis-csmask, in `CSMASK_BANDS` order (S2 ids such as
    "B02" or common names such as "blue"); `ConfigError` naming the missing ones."""
    common = {(SENTINEL2_BANDS[band.upper()][0] if band.upper() in SENTINEL2_BANDS else band.lower()): band
              for band in bands}
    missing = [name for name in CSMASK_BANDS if name not in common]
    if missing:
        raise ConfigError(f"sits.cloud_masker ukis-csmask needs the bands {', '.join(missing)} "
                          f"(B02, B03, B04, B08, B11, B12) in sits.bands")
    return [common[name] for name in CSMASK_BANDS]


def check_csmask(bands: Sequence[str]) -> None:
    """Before any read: the package is installed and the bands it needs are configured."""
    _csmask_class()
    csmask_bands(bands)


def _csmask_class():
    try:
        from ukis_csmask.mask import CSmask
    except ImportError:
        raise DataError("sits.cloud_masker ukis-csmask needs the `ukis-csmask` package: "
                        "pip install -e '.[csmask]'") from None
    return CSmask


@functools.cache
def _csmask_model():
    """A CSmask whose onnxruntime session is reused for every image: CSmask builds one per image,
    0.8 s of the 1.2 s it takes for a 258 px image on 2 cores. Uses its `_csm` (pinned < 1.1)."""
    threads = available_cores()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _csmask_class()(np.zeros((256, 256, len(CSMASK_BANDS)), np.float32), list(CSMASK_BANDS),
                               product_level="l2a", invalid_buffer=0, intra_op_num_threads=threads)


def csmask_masked(reflectance: np.ndarray) -> np.ndarray:
    """True where ukis-csmask sees cloud or cloud shadow.

    reflectance: (obs, 6, y, x) surface reflectance (0-1) of `CSMASK_BANDS`, NaN where no data
    (never masked here: no data is SCL's). The model was trained near 30 m: pass the 20 m grid.
    """
    model = _csmask_model()
    masked = np.zeros((reflectance.shape[0], *reflectance.shape[2:]), bool)
    for k, observation in enumerate(reflectance):
        image = np.ascontiguousarray(np.moveaxis(np.nan_to_num(observation, nan=0.0), 0, -1), dtype=np.float32)
        # CSMASK_BANDS is the model's band order: CSmask's reordering is the identity.
        # No public route: CSmask runs its model only in its constructor, which also builds a new
        # onnxruntime session (0.8 s an image); `_csm` runs the model on `img` (pinned ukis-csmask < 1.1,
        # tests/test_cloudmask.py checks the masks against a fresh CSmask)
        model.img = model.normalize(image, model.band_mean, model.band_std)
        masked[k] = model._csm()[..., 0] > 0  # 1 cloud, 2 cloud shadow
    masked &= ~np.isnan(reflectance).any(axis=1)
    return masked
