"""The network, the forest and their ensemble (`predict.method`), from runs already made.

Usage (after `python experiments/run.py --areas A --seeds 0,1,2 --forest --variants experiments/variants/shipped.yaml`):

    python experiments/ensemble.py --areas real_corsica,real_east_africa [--variant shipped] [--seeds 0,1,2] \\
        [--weights 0.3,0.5,0.7] [--configfile my.yaml]

For every seed, the variant's block predictions (`results/<area>/variants/<variant>/seed<n>/`) and the
fair forest's of the same seed (`.../random_forest/seed<n>/`) are combined exactly as the pipeline's
`ensemble` rule combines them (`cropmap.mapping.ensemble.combine_predictions`, at each network weight),
and scored as `run.py` scores a run: F1 over all observed pixels, where the products agree and
disagree, precision and recall. Prints mean ± sd (n - 1) over the seeds, and appends every score to
`results/experiments.jsonl` with the commit and the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import _git_commit, mean_sd, merged_config, scores  # noqa: E402  (the experiments' one way of scoring)

from cropmap.mapping.ensemble import combine_predictions  # noqa: E402


def ensemble_scores(config: dict, area: str, variant: str, seed: int, weight: float) -> dict:
    """Scores of the ensemble of `variant` and the forest of `seed`, at network `weight`."""
    root = Path("results") / area / "variants"
    networks = sorted((root / variant / f"seed{seed}").glob("predict_*.tif"))
    if not networks:
        raise SystemExit(f"no predictions of {area} / {variant} / seed {seed}: run experiments/run.py first")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for path in networks:
            with rasterio.open(path) as src:
                network, profile = src.read((1, 2)), src.profile
            with rasterio.open(root / "random_forest" / f"seed{seed}" / path.name) as src:
                forest = src.read((1, 2))
            out = Path(tmp) / path.name
            with rasterio.open(out, "w", **profile) as dst:
                dst.write(combine_predictions(network, forest, network_weight=weight))
            paths.append(out)
        return scores(config, area, paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--areas", required=True)
    parser.add_argument("--variant", default="shipped")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--weights", default="0.5", help="the network's weights to try (1: the network alone, 0: the forest)")
    parser.add_argument("--configfile", action="append", default=[])
    args = parser.parse_args()
    config = merged_config(args.configfile)
    provenance = {"commit": _git_commit(), "configfiles": args.configfile, "command": " ".join(sys.argv)}
    print("area | network weight | F1 | agree | disagree | precision | recall")
    for area in args.areas.split(","):
        for weight in (float(w) for w in args.weights.split(",")):
            rows = []
            for seed in (int(s) for s in args.seeds.split(",")):
                row = ensemble_scores(config, area, args.variant, seed, weight)
                rows.append(row)
                with open("results/experiments.jsonl", "a") as f:
                    f.write(json.dumps({"area": area, "variant": f"ensemble:{args.variant}:{weight:g}", "seed": seed,
                                        **row, **provenance}) + "\n")
            cell = lambda k: mean_sd(rows, k)
            print(f"{area} | {weight:g} | {cell('f1_all')} | {cell('f1_agree')} | {cell('f1_disagree')} | "
                  f"{cell('precision')} | {cell('recall')}", flush=True)


if __name__ == "__main__":
    main()
