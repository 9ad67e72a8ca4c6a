"""Why the network ranks worse than a forest: separate the labels from the network (issue 21).

Usage (after `snakemake --config area=<area>` has made the area's cubes, labels and models):

    python benchmarks/label_diagnosis.py --area real_corsica [--configfile my.yaml] [--true-labels]

On every observed pixel of the area, against its reference raster, it prints the F1 of
- the map (`results/<area>/cropland.tif`) and the consensus (on the pixels it labels);
- a random forest (100 trees) and a linear probe (logistic regression) fitted on the same uniform
  sample of up to 60,000 consensus pixels, once on monthly medians and once on the pretrained
  encoder's per-pixel features (`model/pretrained.pt`);
- with `--true-labels`: the same network trained from the same pretrained encoder on the *true*
  labels instead of the consensus (patches, train and predict run as the pipeline runs them, in
  `results/<area>/diagnosis/`): an upper bound, for diagnosis only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import from_bounds

from cropmap.assessment.metrics import binary_metrics
from cropmap.learning.forest import _halo_cropped, _tile_labels, calendar_months, monthly_medians
from cropmap.config import load_config, settings_json
from cropmap.conventions import NODATA
from cropmap.acquisition.cube import open_cube
from cropmap.learning.dataset import date_positions, standardise
from cropmap.mapping.predict import blend_weights, load_model, window_starts
from cropmap.learning.training import load_checkpoint


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    """F1 of the crop class of boolean arrays, as the assessment computes it."""
    return binary_metrics(pred.astype(np.uint8), truth.astype(np.uint8))["f1"]


def read_on(path, cube) -> np.ndarray:
    """Band 1 of a raster on the (halo-cropped) cube's grid."""
    xs, ys = cube["x"].values, cube["y"].values
    res = abs(float(xs[1] - xs[0]))
    bounds = (xs.min() - res / 2, ys.min() - res / 2, xs.max() + res / 2, ys.max() + res / 2)
    with rasterio.open(path) as src:
        return src.read(1, window=from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths(),
                        boundless=True, fill_value=NODATA)


@torch.no_grad()
def encoder_features(model, cube, checkpoint, season_start: str, window: int = 64, overlap: int = 16) -> np.ndarray:
    """(d, H, W) float32 per-pixel features of the classifier's input, blended over windows."""
    x = standardise(torch.from_numpy(cube["reflectance"].values), checkpoint["band_mean"], checkpoint["band_std"])
    dates = torch.from_numpy(date_positions(cube["time"].values, season_start=season_start,
                                            encoding=model.config.date_encoding))
    _, _, h, w = x.shape
    weights = torch.from_numpy(blend_weights(window, overlap))
    acc = torch.zeros((model.config.width, h, w))
    wsum = torch.zeros((h, w))
    for r in window_starts(h, window, window - overlap):
        for c in window_starts(w, window, window - overlap):
            f = model.features(x[None, :, :, r:r + window, c:c + window], dates[None])[0].permute(2, 0, 1)
            acc[:, r:r + window, c:c + window] += f * weights
            wsum[r:r + window, c:c + window] += weights
    return (acc / wsum).numpy()


def fit_and_score(name, features, consensus, truth, valid, rng, max_samples=60000):
    """Forest and linear probe on a uniform consensus sample of `features` (n, F); F1 on all valid."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labelled = np.flatnonzero((consensus != NODATA) & valid)
    pick = rng.choice(labelled, size=min(max_samples, labelled.size), replace=False)
    x, y = features[pick], consensus[pick]
    results = {}
    for model_name, model in (("forest", RandomForestClassifier(n_estimators=100, n_jobs=2, random_state=0)),
                              ("linear probe", make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)))):
        start = time.time()
        model.fit(x, y)
        pred = model.predict(features[valid]) == 1
        results[f"{model_name} on {name}"] = {"f1": f1(pred, truth[valid]), "seconds": round(time.time() - start, 1)}
    return results


def run(cmd: list[str], log: Path) -> None:
    with open(log, "a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)


def true_label_network(config, area: str, root: Path, out: Path) -> dict:
    """The pipeline's train patches, training (from the same pretrained encoder) and prediction on
    labels rasters whose consensus band holds the truth."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    reference = config["areas"][area]["reference"]["path"]
    blocks = sorted((root / "labels").glob("b*.tif"))
    stores = []
    for block in blocks:
        with rasterio.open(block) as src:
            profile, data = src.profile, src.read()
            window = from_bounds(*src.bounds, transform=rasterio.open(reference).transform)
        with rasterio.open(reference) as ref:
            truth = ref.read(1, window=window.round_offsets().round_lengths(), boundless=True, fill_value=NODATA)
        data[0] = np.where(truth == NODATA, NODATA, (truth == 1).astype(np.uint8))
        labels = out / block.name
        with rasterio.open(labels, "w", **profile) as dst:
            dst.write(data)
        cubes = sorted(str(p) for p in (root / "sits").glob("*.nc"))
        block_cubes = [c for c in cubes if _in_block(c, labels)]
        store = out / f"patches_{block.stem}.nc"
        run(["cropmap", "patches", "--kind", "train", "--settings", settings_json(config, area, "train_patches"),
             "--cubes", *block_cubes, "--labels", str(labels), "--block", block.stem, "--out", str(store)], log)
        stores.append(str(store))
    model = out / "model.pt"
    run(["cropmap", "train", "--settings", settings_json(config, area, "train"), "--patches", *stores, "--threads", "2",
         "--pretrained", str(root / "model" / "pretrained.pt"), "--out", str(model), "--metrics-csv",
         str(out / "train_metrics.csv"), "--curves-png", str(out / "train_curves.png")], log)
    predictions = []
    for block in blocks:
        cubes = [c for c in sorted(str(p) for p in (root / "sits").glob("*.nc")) if _in_block(c, out / block.name)]
        pred = out / f"predict_{block.name}"
        run(["cropmap", "predict", "--settings", settings_json(config, area, "predict"), "--threads", "2", "--cubes",
             *cubes, "--model", str(model), "--block", block.stem, "--out", str(pred)], log)
        predictions.append(pred)
    return {"predictions": predictions}


def _in_block(cube_path: str, block_raster: Path) -> bool:
    cube = _halo_cropped(open_cube(cube_path))
    with rasterio.open(block_raster) as src:
        left, bottom, right, top = src.bounds
    x, y = float(cube["x"].values.mean()), float(cube["y"].values.mean())
    return left <= x <= right and bottom <= y <= top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--area", required=True)
    parser.add_argument("--configfile", action="append", default=[])
    parser.add_argument("--true-labels", action="store_true")
    args = parser.parse_args()
    import yaml

    config = yaml.safe_load(open("config.yaml"))
    for extra in args.configfile:
        config.update(yaml.safe_load(open(extra)))  # as Snakemake merges a --configfile (top-level keys)
    from cropmap.config import validate_config

    config = validate_config(config)
    area = args.area
    root = Path("results") / area
    reference = config["areas"][area]["reference"]["path"]
    season_start = config["areas"][area]["season"]["start"]
    pretrained = load_checkpoint(root / "model" / "pretrained.pt")
    encoder = load_model(pretrained, torch.device("cpu"))
    labels = sorted(str(p) for p in (root / "labels").glob("b*.tif"))
    medians, encoded, consensus, truth, valid, mapped = [], [], [], [], [], []
    for path in sorted((root / "sits").glob("*.nc")):
        cube = _halo_cropped(open_cube(path))
        observed = cube["never_observed"].values == 0
        feat = monthly_medians(cube["reflectance"].values, calendar_months(cube["time"].values))
        medians.append(feat.reshape(feat.shape[0], -1).T)
        encoded.append(encoder_features(encoder, cube, pretrained, season_start).reshape(encoder.config.width, -1).T)
        consensus.append(_tile_labels(cube, labels).ravel())
        ref = read_on(reference, cube).ravel()
        truth.append(ref == 1)
        valid.append(observed.ravel() & (ref != NODATA))
        mapped.append(read_on(root / "cropland.tif", cube).ravel())
    medians, encoded = np.concatenate(medians), np.concatenate(encoded)
    consensus, truth, valid, mapped = map(np.concatenate, (consensus, truth, valid, mapped))
    results = {"map": {"f1": f1(mapped[valid] == 1, truth[valid])}}
    labelled = valid & (consensus != NODATA)
    results["consensus (where it labels)"] = {"f1": f1(consensus[labelled] == 1, truth[labelled]),
                                              "share": float(labelled.sum() / valid.sum())}
    rng = np.random.default_rng(0)
    results.update(fit_and_score("monthly medians", medians, consensus, truth, valid, rng))
    results.update(fit_and_score("pretrained features", encoded, consensus, truth, valid, rng))
    if args.true_labels:
        out = true_label_network(config, area, root, root / "diagnosis" / "true_labels")
        pred = []
        for path in sorted((root / "sits").glob("*.nc")):
            cube = _halo_cropped(open_cube(path))
            for p in out["predictions"]:
                values = read_on(p, cube)
                if (values != NODATA).any():
                    pred.append(values.ravel())
                    break
        results["network on true labels"] = {"f1": f1(np.concatenate(pred)[valid] == 1, truth[valid])}
    for name, values in results.items():
        print(f"{area:18s} {name:34s} " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in values.items()))
    (root / "diagnosis").mkdir(exist_ok=True)
    (root / "diagnosis" / "diagnosis.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
