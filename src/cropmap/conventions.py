"""Values every step agrees on: class codes, no data, and how reflectance is stored."""

NONCROP = 0
CROP = 1
NODATA = 255  # uint8 rasters: labels, maps, recoded products, the reference on the grid

REFLECTANCE_SCALE = 10000  # cubes store int16 = reflectance * 10000
REFLECTANCE_FILL = -9999  # int16 of a value that was never observed

__all__ = ["CROP", "NODATA", "NONCROP", "REFLECTANCE_FILL", "REFLECTANCE_SCALE"]
