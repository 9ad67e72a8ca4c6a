"""The fair forest's recipe with a perceptron instead of the trees: is the gap trees against networks?

Usage: python benchmarks/perceptron_probe.py --area real_east_africa [--seeds 0] [--hidden 64,64]

`cropmap.baseline.fit_random_forest` draws its uniform sample of consensus pixels and their
monthly medians exactly as for the forest; only the classifier is swapped, for scikit-learn's
`MLPClassifier` (ReLU layers of `--hidden` units, Adam, 200 epochs) after mean imputation of
missing months and standardisation. The map of every block goes to
`results/<area>/variants/perceptron_<hidden>/seed<n>/`, scored as `train_variants.py` scores (and
readable by `class_errors.py`). Diagnosis only: nothing in the pipeline uses it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_variants import merged_config, scores  # noqa: E402  (the same scoring as the variants)

from cropmap.learning import forest as baseline  # noqa: E402
from cropmap.config import grid_settings, settings_json  # noqa: E402
from cropmap.grid import blocks_for_area  # noqa: E402
from cropmap.settings import RandomForestSettings, from_dict  # noqa: E402


def perceptron(hidden: tuple[int, ...]):
    """A stand-in for `RandomForestClassifier(n_estimators=, n_jobs=, random_state=)`."""
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def make(*, n_estimators: int = 0, n_jobs: int = 1, random_state: int = 0):
        return make_pipeline(SimpleImputer(), StandardScaler(),
                             MLPClassifier(hidden_layer_sizes=hidden, max_iter=200, random_state=random_state))
    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--area", required=True)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--hidden", default="64,64", help="units of each hidden layer")
    args = parser.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))
    config = merged_config([])
    root = Path("results") / args.area
    blocks = sorted(p.stem for p in (root / "labels").glob("b*.tif"))
    grids = blocks_for_area(grid_settings(config, args.area), config["areas"][args.area]["block_tiles"])
    cubes = {b: [str(root / "sits" / f"{t.id}.nc") for t in grids[b].tiles] for b in blocks}
    for seed in (int(s) for s in args.seeds.split(",")):
        settings = json.loads(settings_json(config, args.area, "random_forest"))
        settings["seed"] = seed
        with mock.patch("sklearn.ensemble.RandomForestClassifier", perceptron(hidden)):
            model = baseline.fit_random_forest(
                cube_paths=[c for b in blocks for c in cubes[b]], settings=from_dict(RandomForestSettings, settings),
                label_paths=[str(root / "labels" / f"{b}.tif") for b in blocks], threads=2)
        out = root / "variants" / f"perceptron_{'x'.join(map(str, hidden))}" / f"seed{seed}"
        out.mkdir(parents=True, exist_ok=True)
        predictions = []
        for block in blocks:
            classes = baseline.random_forest_block(cube_paths=cubes[block], model=model, block=grids[block])
            with rasterio.open(root / "labels" / f"{block}.tif") as src:
                profile = {**src.profile, "count": 2, "dtype": "uint8", "nodata": 255}
            path = out / f"predict_{block}.tif"
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(classes.astype(np.uint8))
            predictions.append(path)
        print(args.area, f"perceptron {args.hidden}", f"seed {seed}:",
              {k: round(v, 3) for k, v in scores(config, args.area, predictions).items()}, flush=True)


if __name__ == "__main__":
    main()
