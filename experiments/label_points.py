"""Labelled points for a demo area, as a person would label them (issue 23): their class read from the
area's reference raster.

Usage (after `snakemake --config area=<area>` made the map and its suggested points):

    python experiments/label_points.py --area demo_hard --random 200 --seed 0 --out own/random200.csv
    python experiments/label_points.py --area demo_hard --suggested 100 --out own/suggested100.csv

`--random N`: N pixel centres drawn uniformly among the map's observed pixels (seeded);
`--suggested N`: the first N of `results/<area>/assessment/suggested.csv` (the least certain
pixels, at least `min_distance_px` apart). The CSV has `lon`, `lat`, `x`, `y` (the map's CRS) and
`class` (1 crop, 0 non-crop): what `areas.<name>.labels.path` takes, and what
`experiments/run.py` takes as a variant's `labels`.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer

from cropmap.config import load_config
from cropmap.conventions import NODATA


def random_points(map_path: Path, count: int, seed: int) -> list[tuple[float, float]]:
    with rasterio.open(map_path) as src:
        observed = src.read(1) != NODATA
        rows, cols = np.nonzero(observed)
        pick = np.random.default_rng(seed).choice(rows.size, count, replace=False)
        return [src.xy(int(r), int(c)) for r, c in zip(rows[pick], cols[pick])]


def suggested_points(csv_path: Path, count: int) -> list[tuple[float, float]]:
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))[:count]
    return [(float(r["x"]), float(r["y"])) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--area", required=True)
    parser.add_argument("--random", type=int)
    parser.add_argument("--suggested", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configfile", default="config.yaml")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    root = Path("results") / args.area
    reference = load_config(args.configfile)["areas"][args.area]["reference"]
    map_path = root / "cropland.tif"
    points = (random_points(map_path, args.random, args.seed) if args.random
              else suggested_points(root / "assessment" / "suggested.csv", args.suggested))
    with rasterio.open(map_path) as src:
        crs = src.crs
    with rasterio.open(reference["path"]) as src:
        to_ref = Transformer.from_crs(crs, src.crs, always_xy=True)
        classes = [int(v[0] in reference["crop_classes"]) for v in src.sample([to_ref.transform(x, y) for x, y in points])]
    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["lon", "lat", "x", "y", "class"])
        for (x, y), cls in zip(points, classes):
            writer.writerow([*to_lonlat.transform(x, y), x, y, cls])
    print(f"{len(points)} points ({sum(classes)} crop) -> {out}")


if __name__ == "__main__":
    main()
