"""How far label noise, not the learner, limits a map of a demo area with a reference (issue 21).

Usage (after `snakemake --config area=<area>` made the area's cubes, labels and map):

    python benchmarks/label_noise.py --area real_corsica [--map results/real_corsica/cropland.tif] [--seeds 0,1]

On every observed pixel of the area, against its reference raster, F1 (all / where the products
agree / where they disagree) of:
- the consensus, where it labels;
- a random forest on monthly medians (100 trees, 60,000 pixels, as `cropmap random-forest` fits it)
  trained on the consensus, on the *true* labels of the consensus' pixels, and on the consensus with
  its wrong labels left out (an oracle cleaning: what the labels cost, for diagnosis only);
- a per-pixel perceptron (two hidden layers of 64) on the standardised monthly medians of the same
  60,000 consensus pixels, after 1 and 4 passes over them: the early-learning effect, a network
  learns the clean majority before it memorises the wrong labels;
- and, for a map, the share of pixels it gets right where the consensus is wrong and where it is
  right: whether a learner fails by following wrong labels or by not fitting the right ones.
Needs the whole area in memory (about 0.6 GB for 4 tiles of 12 monthly composites).
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import from_bounds
from sklearn.ensemble import RandomForestClassifier

from label_diagnosis import f1  # the benchmarks' one F1 (the assessment's)

from cropmap.learning.forest import _halo_cropped, calendar_months, monthly_medians
from cropmap.config import load_config
from cropmap.conventions import NODATA
from cropmap.acquisition.cube import open_cube


def area_arrays(area: str, reference: str):
    """(features (n_px, F), consensus, truth, observed) over the reference raster's grid."""
    ref = rasterio.open(reference)
    shape = ref.shape
    truth = ref.read(1)
    consensus = np.full(shape, NODATA, np.uint8)
    for path in glob.glob(f"results/{area}/labels/b*.tif"):
        with rasterio.open(path) as src:
            win = from_bounds(*src.bounds, transform=ref.transform).round_offsets().round_lengths()
            consensus[win.row_off:win.row_off + win.height, win.col_off:win.col_off + win.width] = src.read(1)
    features, observed = None, np.zeros(shape, bool)
    for path in sorted(glob.glob(f"results/{area}/sits/*.nc")):
        cube = _halo_cropped(open_cube(path))
        xs, ys = cube.x.values, cube.y.values
        res = abs(float(xs[1] - xs[0]))
        win = from_bounds(xs.min() - res / 2, ys.min() - res / 2, xs.max() + res / 2, ys.max() + res / 2,
                          transform=ref.transform).round_offsets().round_lengths()
        cells = (slice(win.row_off, win.row_off + win.height), slice(win.col_off, win.col_off + win.width))
        medians = monthly_medians(cube.reflectance.values, calendar_months(cube.time.values))
        if features is None:
            features = np.zeros((medians.shape[0], *shape), np.float32)
        features[(slice(None), *cells)] = medians
        observed[cells] = cube.never_observed.values == 0
    return (features.reshape(features.shape[0], -1).T, consensus.ravel(), truth.ravel(),
            observed.ravel() & (truth.ravel() != NODATA), ref)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--area", required=True)
    parser.add_argument("--map", help="a map (class raster) of the area to split by consensus right / wrong")
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()
    reference = load_config("config.yaml")["areas"][args.area]["reference"]
    x, consensus, truth_codes, observed, ref = area_arrays(args.area, reference["path"])
    truth = np.isin(truth_codes, reference["crop_classes"])
    agree = consensus != NODATA

    def line(name: str, crop: np.ndarray) -> None:
        parts = [f1(crop[observed & sel], truth[observed & sel]) for sel in (np.ones_like(agree), agree, ~agree)]
        print(f"{name:66s} F1 {parts[0]:.3f}  agree {parts[1]:.3f}  disagree {parts[2]:.3f}", flush=True)

    labelled = observed & agree
    print(f"{args.area}: consensus F1 {f1(consensus[labelled] == 1, truth[labelled]):.3f} on "
          f"{labelled.sum() / observed.sum():.1%} of the observed pixels; its labels wrong on "
          f"{np.mean((consensus == 1)[labelled] != truth[labelled]):.1%} of them")
    mean, std = x[observed].mean(axis=0), x[observed].std(axis=0) + 1e-6
    standardised = torch.from_numpy((x - mean) / std)
    for seed in (int(s) for s in args.seeds.split(",")):
        rng = np.random.default_rng(seed)

        def forest(name: str, pool: np.ndarray, labels: np.ndarray) -> np.ndarray:
            pick = rng.choice(np.flatnonzero(pool), min(60_000, int(pool.sum())), replace=False)
            model = RandomForestClassifier(100, n_jobs=2, random_state=seed).fit(x[pick], labels[pick])
            crop = np.zeros(len(x), bool)
            crop[observed] = model.predict(x[observed]) == 1
            line(f"seed {seed}: forest on {name}", crop)
            return crop

        forest("the consensus", labelled, consensus)
        forest("the true labels of the consensus' pixels", labelled, truth.astype(np.uint8))
        forest("the consensus without its wrong labels (oracle)", labelled & ((consensus == 1) == truth), consensus)
        torch.manual_seed(seed)
        pick = rng.choice(np.flatnonzero(labelled), 60_000, replace=False)
        xs, ys = standardised[pick], torch.from_numpy(consensus[pick].astype(np.int64))
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 64), torch.nn.GELU(), torch.nn.Linear(64, 64),
                                  torch.nn.GELU(), torch.nn.Linear(64, 2))
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        weight = torch.tensor(len(ys) / (2 * np.bincount(ys.numpy(), minlength=2)), dtype=torch.float32)
        for epoch in range(1, 5):
            for batch in torch.randperm(len(ys)).split(256):
                loss = torch.nn.functional.cross_entropy(net(xs[batch]), ys[batch], weight=weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if epoch in (1, 4):
                with torch.no_grad():
                    crop = np.zeros(len(x), bool)
                    crop[observed] = net(standardised[observed]).argmax(dim=1).numpy() == 1
                line(f"seed {seed}: perceptron on the consensus, {epoch} pass{'es' if epoch > 1 else ''}", crop)
    if args.map:
        with rasterio.open(args.map) as src:
            window = from_bounds(*ref.bounds, transform=src.transform).round_offsets().round_lengths()
            mapped = src.read(1, window=window, boundless=True, fill_value=NODATA).ravel()
        right = (mapped == 1) == truth
        line(f"map {Path(args.map).name}", mapped == 1)
        wrong_label = labelled & ((consensus == 1) != truth)
        print(f"map right where the consensus is wrong: {np.mean(right[wrong_label]):.3f} "
              f"({wrong_label.sum()} px); where it is right: {np.mean(right[labelled & ~wrong_label]):.3f}")


if __name__ == "__main__":
    main()
