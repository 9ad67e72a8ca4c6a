"""Which crops a map misses where the products disagree, by how often the consensus labels their series.

Usage (after `train_variants.py` made the runs; series demo areas only, e.g. real_east_africa):

    python benchmarks/series_misses.py --area real_east_africa \\
        results/real_east_africa/variants/all_tiles_train/seed0 results/real_east_africa/variants/random_forest/seed0

A series demo area (`cropmap.demo.series`) gives each parcel the series of one real sample, drawn with
replacement, so one sample's series usually lies in several parcels. This replays that draw (the same
seeded generator calls as `make_series_demo`) and, for every run's block predictions
(`predict_<block>.tif`), splits the true crop pixels the consensus leaves unlabelled by how many pixels
of the same series the consensus labels crop elsewhere in the area, and whether it labels that series
non-crop anywhere, then prints the share of each group the map calls non-crop, and the map's F1 over
the parcels whose series the consensus labels in no other parcel and over the rest (diagnosis only:
it reads the reference). `--forest-without-rare` first fits the area's fair forest (seed 0) with every pixel of the
series labelled crop on fewer than 1,000 px left unlabelled, predicts the area with it
(`results/<area>/variants/forest_without_rare_series/seed0/`) and scores it too: whether the forest
finds those crops from other series or from their copies.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import from_bounds

from label_diagnosis import f1  # the benchmarks' one F1 (the assessment's)
from train_variants import cpu_seconds, forest_fit_command, forest_predict_command, predict_blocks

from cropmap.config import grid_settings, load_config, typed_settings
from cropmap.conventions import CROP, NODATA, NONCROP
from cropmap.demo.landscape import make_landscape
from cropmap.demo.series import _assign_series  # the generator's own draw, replayed
from cropmap.demo.extractions import load_extraction
from cropmap.grid import AreaGrid, blocks_for_area, tiles_for_area

RARE_PX = 1000  # a series labelled crop on fewer pixels than this, and never non-crop, is a rare one


def parcel_samples(area: str) -> tuple[np.ndarray, np.ndarray]:
    """(parcel id per pixel of the area grid, sample index per parcel) as `make_series_demo` drew them."""
    settings = typed_settings(load_config("config.yaml"), area, "demo")
    series = load_extraction(settings.demo.series)
    rng = np.random.default_rng(settings.demo.seed)
    land = make_landscape(AreaGrid(tuple(tiles_for_area(settings.grid))).shape, rng)
    return land.parcel, _assign_series(len(land.parcel_area), series, settings.demo.crop_share, rng)


def place_on_area(src, transform) -> tuple[slice, slice]:
    """Where block raster `src` (open) lies on the area grid of `transform` (blocks lie within it)."""
    window = from_bounds(*src.bounds, transform=transform).round_offsets().round_lengths()
    r0, c0 = int(window.row_off), int(window.col_off)
    return slice(r0, r0 + src.height), slice(c0, c0 + src.width)


def on_area_grid(paths: list[Path], shape: tuple[int, int], transform) -> np.ndarray:
    """Band 1 of block rasters `paths` pasted onto the area grid (`NODATA` elsewhere)."""
    out = np.full(shape, NODATA, np.uint8)
    for path in paths:
        with rasterio.open(path) as src:
            out[place_on_area(src, transform)] = src.read(1)
    return out


def forest_without(area: str, unlabelled: np.ndarray, transform, out: Path) -> Path:
    """Fit and predict the fair forest (seed 0) on the area's consensus with `unlabelled` (area grid)
    pixels unlabelled; returns the run directory."""
    root = Path("results") / area
    out.mkdir(parents=True, exist_ok=True)
    labels = []
    for path in sorted((root / "labels").glob("b*.tif")):
        with rasterio.open(path) as src:
            bands, profile, descriptions = src.read(), src.profile, src.descriptions
            bands[0][unlabelled[place_on_area(src, transform)]] = NODATA
        with rasterio.open(out / path.name, "w", **profile) as dst:
            dst.write(bands)
            dst.descriptions = descriptions
        labels.append(out / path.name)
    config = load_config("config.yaml")
    grids = blocks_for_area(grid_settings(config, area), config["areas"][area]["block_tiles"])
    cubes = {p.stem: [str(root / "sits" / f"{t.id}.nc") for t in grids[p.stem].tiles] for p in labels}
    log, model = out / "log.txt", out / "model.joblib"
    log.write_text("")
    cpu_seconds(forest_fit_command(config, area, cubes=sum(cubes.values(), []), labels=list(map(str, labels)),
                                   seed=0, model=model), log)
    predict_blocks(forest_predict_command(config, area), cubes, model, out, log)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--area", required=True)
    parser.add_argument("runs", nargs="*", help="run directories holding predict_<block>.tif")
    parser.add_argument("--forest-without-rare", action="store_true")
    args = parser.parse_args()
    root = Path("results") / args.area
    parcel, sample = parcel_samples(args.area)
    with rasterio.open(root / "demo-data" / "reference" / "cropland_truth.tif") as src:
        truth, transform = src.read(1), src.transform
    if truth.shape != parcel.shape:
        raise SystemExit(f"{args.area}: the replayed layout {parcel.shape} is not the reference's {truth.shape}")
    consensus = on_area_grid(sorted((root / "labels").glob("b*.tif")), truth.shape, transform)
    series_of = sample[parcel]
    labelled_crop = np.bincount(series_of[consensus == CROP], minlength=sample.max() + 1)[series_of]
    labelled_noncrop = np.bincount(series_of[consensus == NONCROP], minlength=sample.max() + 1)[series_of]
    groups = {"series labelled nowhere": (labelled_crop == 0) & (labelled_noncrop == 0),
              "labelled crop only, on < 1,000 px": (labelled_crop > 0) & (labelled_crop < RARE_PX) & (labelled_noncrop == 0),
              "labelled crop only, on >= 1,000 px": (labelled_crop >= RARE_PX) & (labelled_noncrop == 0),
              "labelled non-crop somewhere": labelled_noncrop > 0}
    # parcels whose series the consensus labels in no other parcel: no copy to learn it from
    labelled_in_parcel = np.bincount(parcel[consensus != NODATA], minlength=len(sample))
    in_other_parcels = np.bincount(sample, weights=labelled_in_parcel, minlength=sample.max() + 1)[sample] - labelled_in_parcel
    copy_free = (in_other_parcels == 0)[parcel]
    print(f"{args.area}: {len(sample)} parcels carry {len(np.unique(sample))} series; {np.sum(in_other_parcels == 0)} "
          f"parcels ({copy_free.mean():.3f} of the pixels) have no labelled copy")
    runs = list(args.runs)
    if args.forest_without_rare:
        rare = groups["labelled crop only, on < 1,000 px"]
        print(f"the forest without the rare series: {len(np.unique(series_of[rare]))} series, "
              f"{np.sum(rare & (consensus != NODATA))} labelled px left unlabelled")
        runs.append(forest_without(args.area, rare, transform, root / "variants" / "forest_without_rare_series" / "seed0"))
    for run in runs:
        predicted = on_area_grid(sorted(Path(run).glob("predict_b*.tif")), truth.shape, transform)
        disagree_crop = (truth == CROP) & (consensus == NODATA) & (predicted != NODATA)
        missed = disagree_crop & (predicted == NONCROP)
        print(f"{run}: crop where the products disagree {disagree_crop.sum()} px, called non-crop {missed.mean() / disagree_crop.mean():.3f}")
        for name, where in (("no labelled copy", copy_free), ("a labelled copy", ~copy_free)):
            scored = where & (predicted != NODATA) & (truth != NODATA)
            print(f"  F1 over the parcels with {name}: {f1(predicted[scored] == CROP, truth[scored] == CROP):.3f}")
        for name, group in groups.items():
            n = (group & disagree_crop).sum()
            print(f"  {name:36s} {n / disagree_crop.sum():.3f} of them, called non-crop {(group & missed).sum() / max(n, 1):.3f}")


if __name__ == "__main__":
    main()
