"""`python same_rasters.py DIR_A DIR_B NAME...`: exit 1 unless each NAME is the same raster in both
folders: pixel for pixel, with the same CRS, transform, data type and nodata. Used by
.ci/container-check."""

import sys

import numpy as np
import rasterio


def main() -> int:
    first, second, *names = sys.argv[1:]
    differing = 0
    for name in names:
        with rasterio.open(f"{first}/{name}") as a, rasterio.open(f"{second}/{name}") as b:
            same_grid = (a.crs, a.transform, a.dtypes, a.nodata, a.shape) == (b.crs, b.transform, b.dtypes, b.nodata, b.shape)
            pixels_a, pixels_b = a.read(), b.read()
            same_pixels = same_grid and np.array_equal(pixels_a, pixels_b)
            changed = int((pixels_a != pixels_b).sum()) if same_grid else pixels_a.size
            print(f"{name}: {'identical' if same_pixels else 'DIFFERENT'} ({pixels_a.size} pixels, {changed} differ)")
            differing += not same_pixels
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
