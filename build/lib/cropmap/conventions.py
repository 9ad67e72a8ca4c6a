"""Values every step agrees on: class codes, no data, and how reflectance is stored."""

NONCROP = 0
CROP = 1
NODATA = 255  # uint8 rasters: labels, maps, recoded products, the reference on the grid

# how the map shows its classes: name, colour (hex RGB), description
MAP_CLASSES = {NONCROP: ("non-crop", "8C6D31", "other land"), CROP: ("crop", "F2C72E", "cropland")}
CLASS_NAMES = tuple(name for name, _, _ in MAP_CLASSES.values())  # by class value
CLASS_COLOURS = tuple(f"#{colour.lower()}" for _, colour, _ in MAP_CLASSES.values())  # matplotlib colours, by value
CLASSES_TAG = ", ".join([*(f"{value} {name}" for value, (name, _, _) in MAP_CLASSES.items()), f"{NODATA} no data"])

REFLECTANCE_SCALE = 10000  # cubes store int16 = reflectance * 10000
REFLECTANCE_FILL = -9999  # int16 of a value that was never observed

__all__ = ["CLASSES_TAG", "DECISION_THRESHOLD_TAG", "CLASS_COLOURS", "CLASS_NAMES", "CROP", "MAP_CLASSES", "NODATA", "NONCROP", "REFLECTANCE_FILL", "REFLECTANCE_SCALE", "available_cores"]


def available_cores() -> int:
    """Cores a job may use: `CROPMAP_THREADS` (what `cropmap <step> --threads` and Snakemake's
    `threads:` give it), else the cores this process may run on (a SLURM allocation, a cgroup)."""
    import os

    if os.environ.get("CROPMAP_THREADS", "").isdigit():
        return max(1, int(os.environ["CROPMAP_THREADS"]))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# the crop probability (0-1) at and above which a pixel is mapped crop, in the tags of the block
# predictions and of the probability COG
DECISION_THRESHOLD_TAG = "decision_threshold"
