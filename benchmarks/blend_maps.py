"""F1 of the network's map, the forest's, and of the mean of their probabilities (issue 21).

Usage (after `train_variants.py --areas A --seeds 0,1,2 --forest --variant shipped '{}'`):

    python benchmarks/blend_maps.py --areas real_corsica,real_east_africa [--variant shipped] [--seeds 0,1,2]

For every seed, the block predictions of `results/<area>/variants/<variant>/seed<n>/` and of
`.../random_forest/seed<n>/` are read (band 2: probability in percent) against the area's reference;
prints mean ± sd (n - 1) of the F1 of the network (p >= 0.5), the forest (p >= 0.5) and their mean
probability (>= 0.5), over all pixels both maps and the reference observe.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import from_bounds

from cropmap.assessment.metrics import binary_metrics
from cropmap.config import load_config
from cropmap.conventions import NODATA


def seed_scores(area: str, variant: str, seed: int, reference: str) -> list[float]:
    network, forest, truth = [], [], []
    for path in sorted((Path("results") / area / "variants" / variant / f"seed{seed}").glob("predict_*.tif")):
        with rasterio.open(path) as src:
            classes, p_network, bounds = src.read(1), src.read(2).astype(np.float32), src.bounds
        with rasterio.open(Path("results") / area / "variants" / "random_forest" / f"seed{seed}" / path.name) as src:
            p_forest = src.read(2).astype(np.float32)
        with rasterio.open(reference) as src:
            window = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
            t = src.read(1, window=window, boundless=True, fill_value=NODATA)
        valid = (classes != NODATA) & (t != NODATA)
        network.append(p_network[valid]), forest.append(p_forest[valid]), truth.append(t[valid])
    if not truth:
        raise SystemExit(f"no predictions of {area} / {variant} / seed {seed}: run train_variants.py first")
    p_network, p_forest, t = map(np.concatenate, (network, forest, truth))
    return [binary_metrics((p >= 50).astype(np.uint8), t)["f1"] for p in (p_network, p_forest, (p_network + p_forest) / 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--areas", required=True)
    parser.add_argument("--variant", default="shipped")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    config = load_config("config.yaml")
    print("area | network | forest | mean of the two probabilities")
    for area in args.areas.split(","):
        scores = np.array([seed_scores(area, args.variant, int(seed), config["areas"][area]["reference"]["path"])
                           for seed in args.seeds.split(",")])
        sd = scores.std(axis=0, ddof=min(1, len(scores) - 1))
        print(f"{area} | " + " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(scores.mean(axis=0), sd)))


if __name__ == "__main__":
    main()
