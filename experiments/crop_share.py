"""A crop share the user knows (an agricultural census), used to set the map's threshold.

Usage (after `python experiments/run.py --areas A --seeds 0,1,2 --variants ...` made a variant's runs):

    python experiments/crop_share.py --areas real_corsica,real_east_africa [--variant shipped] [--seeds 0,1,2] \\
        [--errors 0.9,1,1.1] [--configfile my.yaml]

For every seed, the variant's block predictions (`results/<area>/variants/<variant>/seed<n>/`) are cut at
the probability above which the map's crop share over the observed pixels equals the "census" share,
instead of at the checkpoint's threshold. The census is the reference's own crop share over the same
pixels, times each factor of `--errors` (1.1: a census that says 10 % more cropland than there is), so the
lever is judged with the census errors a user has. Scored as `run.py` scores a run (F1 over all observed
pixels, where the products agree and disagree, precision, recall); prints mean ± sd (n - 1) over the
seeds beside the variant's own maps, and appends every score to `results/experiments.jsonl`.
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
from run import _git_commit, block_rasters, mean_sd, merged_config, scores  # noqa: E402  (the experiments' one way of scoring)

from cropmap.conventions import CROP, NODATA, NONCROP  # noqa: E402


def share_threshold(percents: np.ndarray, share: float) -> int:
    """The smallest probability cut (percent, 0-101) whose crop share `mean(percents >= cut)` is at most
    `share`: the threshold that maps the census' share of cropland."""
    counts = np.bincount(percents.astype(np.int64), minlength=101)[:101]
    at_or_above = np.cumsum(counts[::-1])[::-1] / max(percents.size, 1)  # share with percent >= cut
    cuts = np.flatnonzero(at_or_above <= share)
    return int(cuts[0]) if cuts.size else 101


def census_scores(config: dict, area: str, variant: str, seed: int, error: float) -> dict:
    """Scores of `variant`'s seed-`seed` maps cut at the census threshold (the reference's crop share x `error`)."""
    predictions = sorted((Path("results") / area / "variants" / variant / f"seed{seed}").glob("predict_*.tif"))
    if not predictions:
        raise SystemExit(f"no predictions of {area} / {variant} / seed {seed}: run experiments/run.py first")
    reference = config["areas"][area]["reference"]["path"]
    percents, truths = [], []
    for path in predictions:
        pred, percent, _, truth = block_rasters(area, path, reference)
        valid = (pred != NODATA) & (truth != NODATA)
        percents.append(percent[valid])
        truths.append(truth[valid] == 1)
    share = min(1.0, float(np.mean(np.concatenate(truths))) * error)
    cut = share_threshold(np.concatenate(percents), share)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for path in predictions:
            with rasterio.open(path) as src:
                bands, profile = src.read(), src.profile
            observed = bands[0] != NODATA
            bands[0] = np.where(observed, np.where(bands[1] >= cut, CROP, NONCROP), NODATA)
            # run.py reads the block's consensus from the area's labels by the prediction's name
            out = Path(tmp) / path.name
            with rasterio.open(out, "w", **profile) as dst:
                dst.write(bands)
            paths.append(out)
        return {**scores(config, area, paths), "census_share": share, "threshold_percent": cut}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--areas", required=True)
    parser.add_argument("--variant", default="shipped")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--errors", default="0.9,1,1.1", help="the census' share over the true share")
    parser.add_argument("--configfile", action="append", default=[])
    args = parser.parse_args()
    config = merged_config(args.configfile)
    provenance = {"commit": _git_commit(), "configfiles": args.configfile, "command": " ".join(sys.argv)}
    seeds = [int(s) for s in args.seeds.split(",")]
    print("area | census / true share | F1 | agree | disagree | precision | recall | cut (%)")
    for area in args.areas.split(","):
        own = [scores(config, area, sorted((Path("results") / area / "variants" / args.variant / f"seed{s}")
                                           .glob("predict_*.tif"))) for s in seeds]
        for error in [None, *(float(e) for e in args.errors.split(","))]:
            rows = own if error is None else [census_scores(config, area, args.variant, s, error) for s in seeds]
            if error is not None:
                with open("results/experiments.jsonl", "a") as f:
                    for seed, row in zip(seeds, rows):
                        f.write(json.dumps({"area": area, "variant": f"census:{args.variant}:{error:g}", "seed": seed,
                                            **row, **provenance}) + "\n")
            cell = lambda k: mean_sd(rows, k)
            cuts = "/".join(str(r["threshold_percent"]) for r in rows) if error is not None else "own"
            print(f"{area} | {'map as made' if error is None else f'{error:g}'} | {cell('f1_all')} | {cell('f1_agree')} | "
                  f"{cell('f1_disagree')} | {cell('precision')} | {cell('recall')} | {cuts}", flush=True)


if __name__ == "__main__":
    main()
