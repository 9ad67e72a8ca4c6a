"""The experiment runner: training variants on areas that have been run, scored against the reference.

Usage (after `snakemake --config area=<areas>` made the areas' cubes, labels, patches and models):

    python experiments/run.py --areas real_corsica,demo_hard --seeds 0,1,2 --forest \
        --variants experiments/variants/shipped.yaml experiments/variants/levers.yaml \
        [--variant gce '{"train": {"label_loss": "gce"}}'] [--configfile my.yaml]

A variant file is YAML, `name: overrides` for each variant it holds; `--variant NAME JSON` gives one
on the command line. A variant overrides the `model`, `pretrain`, `train` and `patches` (training
patches) settings the area's run used (`config.yaml` plus the config files given, as Snakemake merges
them). `"inherit": true` first drops the area's own `model`, `patches` and `train` sections, so a
demo area runs with what an area of one's own inherits (its own pretrained encoder kept). A variant
may add labels of one's own (`"labels": {"path": ..., "weight": 1, "holdout": 0.3}`, as
`areas.<name>.labels`), pretrain with other areas' patches (`"pretrain": {"with_areas": ["demo"]}`),
or clean the consensus labels it trains on (`"consensus": {"erode_px": 2, "min_patch_px": 0}`), fill
it where the area's fair forest is confident (`"consensus": {"forest_fill": 0.9}`, see
`cleaned_labels`), or put the reference in its place (`"consensus": {"truth": true}`, an upper bound
for diagnosis); scores still split agree / disagree by the area's own consensus. One that changes
`pretrain` or the encoder's `model` settings is pretrained again, once per area; one with
`pretrain.from` starts from that checkpoint, the others from the area's `model/pretrained.pt`.
Training and prediction run as the pipeline runs them (`cropmap train`, `cropmap predict`), under
`results/<area>/variants/<variant>/seed<n>/`. For every run it prints the F1 against the area's
reference over all observed pixels, where the products agree (the consensus labels the pixel) and
where they disagree, precision, recall, and the CPU seconds of pretraining, training and prediction
(user + system time of the child processes); then each variant's mean ± sd per area. `--forest`
adds the fair random forest (`cropmap random-forest`, the pipeline's `forest` rule) with the same
seeds, run before the variants. Every run is appended to `results/experiments.jsonl` as one JSON
line, with the commit, the config files and the command that made it.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import rasterio
import yaml
from rasterio.windows import from_bounds

from cropmap.labels.consensus import clean_labels
from cropmap.config import grid_settings, settings_json, shared_pretraining_areas, validate_config
from cropmap.grid import blocks_for_area
from cropmap.conventions import CROP, NODATA, NONCROP


def merged_config(configfiles: list[str]) -> dict:
    config = yaml.safe_load(open("config.yaml"))
    for path in configfiles:
        extra = yaml.safe_load(open(path)) or {}
        for key, value in extra.items():  # Snakemake merges nested mappings of a --configfile
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = _merge(config[key], value)
            else:
                config[key] = value
    return validate_config(config)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def cpu_seconds(cmd: list[str], log: Path) -> float:
    """Run `cmd`; the CPU time (user + system) it and its children used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "a") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd[:2])}; see {log}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def variants_from(files: list[str], inline: list[list[str]]) -> list[tuple[str, dict]]:
    """(name, overrides) of every variant of the variant files, then of `--variant NAME JSON`."""
    variants = []
    for path in files:
        variants += list((yaml.safe_load(open(path)) or {}).items())
    return variants + [(name, json.loads(text)) for name, text in inline]


def variant_config(config: dict, area: str, overrides: dict) -> dict:
    """The config a variant runs with: with `"inherit": true`, the area without its own `model`,
    `patches` and `train` sections (what an area of one's own inherits; its pretraining is kept)."""
    if not overrides.get("inherit"):
        return config
    config = copy.deepcopy(config)
    for section in ("model", "patches", "train"):
        config["areas"][area].pop(section, None)
    return config


def step_settings(config: dict, area: str, step: str, overrides: dict) -> str:
    settings = json.loads(settings_json(config, area, step))
    settings.update(overrides.get(step, {}))
    if "model" in settings:
        settings["model"] = {**settings["model"], **overrides.get("model", {})}
    return json.dumps(settings)


def variant_pretraining(config: dict, area: str, overrides: dict, own: list[str]) -> tuple[str, list[str]]:
    """The settings and patch stores of a variant's pretraining: `"pretrain": {"with_areas": [...]}`
    adds those areas' pretraining patches (made by their runs), as `pretrain.with_areas` does."""
    pretrain = dict(overrides.get("pretrain", {}))
    others = pretrain.pop("with_areas", [])
    if others:
        config = copy.deepcopy(config)
        config["areas"][area]["pretrain"] = {**config["areas"][area].get("pretrain", {}), "with_areas": others}
    settings = step_settings(config, area, "pretrain", {**overrides, "pretrain": pretrain})
    stores = [str(path) for other in shared_pretraining_areas(config, area)
              for path in sorted((Path("results") / other / "patches" / "pretrain").glob("b*.nc"))]
    return settings, own + stores


def variant_train_patches(config: dict, area: str, name: str, overrides: dict, cubes: dict[str, list[str]],
                          default: list[str], log: Path) -> list[str]:
    """The training patch stores of a variant: the area's own, or, when the variant overrides
    `patches`, stores drawn with those settings under `results/<area>/variants/patches-<hash>/` (once for
    every variant that draws them alike)."""
    if not {"patches", "labels", "consensus", "inherit"} & set(overrides):
        return default
    settings = json.loads(settings_json(config, area, "train_patches"))
    for key, value in overrides.get("patches", {}).items():
        settings["per_tile" if key == "train_per_tile" else key] = value
    own = overrides.get("labels")
    if own:
        settings["own_holdout"] = own.get("holdout", 0.3)
    text = json.dumps(settings, sort_keys=True)
    cleaning = overrides.get("consensus")
    root = Path("results") / area
    paths = []
    for block in cubes:
        key = text + (own["path"] if own else "") + (json.dumps(cleaning, sort_keys=True) if cleaning else "")
        store = root / "variants" / f"patches-{zlib.crc32(key.encode()):08x}" / f"{block}.nc"
        if not store.exists():
            store.parent.mkdir(parents=True, exist_ok=True)
            labels = root / "labels" / f"{block}.tif"
            if cleaning:
                labels = cleaned_labels(labels, store.parent / f"labels_{block}.tif", cleaning,
                                        reference=config["areas"][area]["reference"]["path"])
            cpu_seconds(["cropmap", "patches", "--kind", "train", "--settings", text, "--cubes",
                         *cubes[block], "--labels", str(labels), "--block", block,
                         *(["--own-labels", own["path"]] if own else []), "--out", str(store)], log)
        paths.append(str(store))
    return paths


def cleaned_labels(path: Path, out: Path, cleaning: dict, *, reference: str) -> Path:
    """A copy of block label file `path` whose consensus band is cleaned as `consensus.erode_px` /
    `min_patch_px` would (applied after the area's own cleaning). `"forest_fill": c` then labels the
    pixels the consensus leaves unlabelled where the area's fair forest (`random_forest/seed0`, made
    by `--forest` in this call or an earlier one) is confident: crop where its probability is at
    least c, non-crop where at most 1 - c (a forest teacher: it sees only the consensus, never the
    reference); with `"confirmed_by": VARIANT` only where that variant's seed-0 map (a first round)
    has the same class.
    `"truth": true` puts the area's `reference` raster in place of the consensus (an upper bound,
    diagnosis only)."""
    with rasterio.open(path) as src:
        bands, profile, descriptions, bounds = src.read(), src.profile, src.descriptions, src.bounds
    if cleaning.get("truth"):
        truth = reference_on_bounds(reference, bounds)
        bands[0] = np.where(truth == NODATA, NODATA, np.where(truth == 1, CROP, NONCROP)).astype(bands.dtype)
    bands[0] = clean_labels(bands[0], erode_px=cleaning.get("erode_px", 0), min_patch_px=cleaning.get("min_patch_px", 0))
    if cleaning.get("forest_fill"):
        confidence = 100 * cleaning["forest_fill"]
        predicted, percent = seed0_prediction(path, "random_forest")
        open_ = (bands[0] == NODATA) & (predicted != NODATA)
        crop, noncrop = open_ & (percent >= confidence), open_ & (percent <= 100 - confidence)
        if cleaning.get("confirmed_by"):  # a first round's network (that variant's seed 0) must agree
            first_class = seed0_prediction(path, cleaning["confirmed_by"])[0]
            crop &= first_class == CROP
            noncrop &= first_class == NONCROP
        bands[0][crop] = CROP
        bands[0][noncrop] = NONCROP
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(bands)
        dst.descriptions = descriptions
    return out


def seed0_prediction(labels: Path, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """(class, probability in percent) of `variant`'s seed-0 prediction of the block whose label file
    is `labels` (`results/<area>/variants/<variant>/seed0/predict_<block>.tif`)."""
    with rasterio.open(labels.parents[1] / "variants" / variant / "seed0" / f"predict_{labels.name}") as src:
        predicted, percent = src.read((1, 2))
    return predicted, percent


def reference_on_bounds(reference: str, bounds) -> np.ndarray:
    """Band 1 of raster `reference` read on a block's `bounds` (its CRS), `NODATA` outside it."""
    with rasterio.open(reference) as src:
        window = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
        return src.read(1, window=window, boundless=True, fill_value=NODATA)


def forest_fit_command(config: dict, area: str, *, cubes: list[str], labels: list[str], seed: int,
                       model: Path) -> list[str]:
    """`cropmap random-forest` with the area's settings and `seed` (the fair forest), on 2 threads."""
    settings = {**json.loads(settings_json(config, area, "random_forest")), "seed": seed}
    return ["cropmap", "random-forest", "--settings", json.dumps(settings), "--cubes", *cubes, "--labels", *labels,
            "--threads", "2", "--out", str(model)]


def forest_predict_command(config: dict, area: str) -> list[str]:
    """`cropmap random-forest-predict` with the area's settings, on 2 threads (`predict_blocks` adds the rest)."""
    return ["cropmap", "random-forest-predict", "--settings", settings_json(config, area, "random_forest_predict"),
            "--threads", "2"]


def predict_blocks(predict_cmd: list[str], cubes: dict[str, list[str]], model: Path, out: Path,
                   log: Path) -> tuple[list[Path], float]:
    """Run `predict_cmd` with `model` on every block of `cubes` ({block: its tile cubes}), writing
    `out/predict_<block>.tif`; (the predictions, their CPU seconds)."""
    predictions, cpu = [], 0.0
    for block, block_cubes in cubes.items():
        pred = out / f"predict_{block}.tif"
        cpu += cpu_seconds([*predict_cmd, "--cubes", *block_cubes, "--model", str(model), "--block", block,
                            "--out", str(pred)], log)
        predictions.append(pred)
    return predictions, cpu


def block_rasters(area: str, prediction: Path, reference) -> tuple[np.ndarray, ...]:
    """(class, probability in percent, consensus labels, reference) of one block prediction
    (`predict_<block>.tif`), the reference read on the block's bounds (`NODATA` outside it)."""
    with rasterio.open(prediction) as src:
        pred, percent, bounds = src.read(1), src.read(2), src.bounds
    with rasterio.open(Path("results") / area / "labels" / prediction.name.replace("predict_", "")) as src:
        consensus = src.read(1)
    return pred, percent, consensus, reference_on_bounds(reference, bounds)


def scores(config: dict, area: str, predictions: list[Path]) -> dict:
    """F1 (all / agree / disagree), precision and recall of block predictions against the reference."""
    reference = config["areas"][area]["reference"]["path"]
    counts = {part: np.zeros(3) for part in ("all", "agree", "disagree", "half")}  # tp, predicted, true
    for path in predictions:
        pred, percent, consensus, truth = block_rasters(area, path, reference)
        valid = (pred != NODATA) & (truth != NODATA)
        for part, sel in (("all", valid), ("agree", valid & (consensus != NODATA)),
                          ("disagree", valid & (consensus == NODATA))):
            p, t = pred[sel] == 1, truth[sel] == 1
            counts[part] += [np.sum(p & t), p.sum(), t.sum()]
        # the same probabilities cut at 0.5 instead of the checkpoint's calibrated threshold
        p, t = percent[valid] >= 50, truth[valid] == 1
        counts["half"] += [np.sum(p & t), p.sum(), t.sum()]
    out = {f"f1_{part}": float(2 * c[0] / max(c[1] + c[2], 1)) for part, c in counts.items()}
    out["f1_at_half"] = out.pop("f1_half")
    tp, predicted, true = counts["all"]
    out.update(precision=float(tp / max(predicted, 1)), recall=float(tp / max(true, 1)))
    return out


def mean_sd(rows: list[dict], key: str) -> str:
    """"mean ± sd" (n - 1; 0 for one row) of `key` over score rows, to 3 decimals."""
    values = [row[key] for row in rows]
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=min(1, len(values) - 1)):.3f}"


def _git_commit() -> str:
    """HEAD's commit, with "+dirty" when the work tree has changes ("" outside a git checkout)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return commit + ("+dirty" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--areas", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", nargs="+", default=[], metavar="FILE", help="variant files (YAML: name: overrides)")
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), default=[])
    parser.add_argument("--configfile", action="append", default=[])
    parser.add_argument("--forest", action="store_true")
    args = parser.parse_args()
    config = merged_config(args.configfile)
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = variants_from(args.variants, args.variant)
    # which code, config files and command made each record (results/experiments.jsonl outlives the run)
    provenance = {"commit": _git_commit(), "configfiles": args.configfile, "command": " ".join(sys.argv)}
    records = []
    for area in args.areas.split(","):
        root = Path("results") / area
        blocks = sorted(p.stem for p in (root / "labels").glob("b*.tif"))
        grids = blocks_for_area(grid_settings(config, area), config["areas"][area]["block_tiles"])
        cubes = {b: [str(root / "sits" / f"{t.id}.nc") for t in grids[b].tiles] for b in blocks}
        train_patches = [str(root / "patches" / "train" / f"{b}.nc") for b in blocks]
        pretrain_patches = [str(root / "patches" / "pretrain" / f"{b}.nc") for b in blocks]
        # the forest first: a `forest_fill` variant of the same call reads its seed-0 map
        runs = [("random_forest", None, seed) for seed in seeds] if args.forest else []
        runs += [(name, overrides, seed) for name, overrides in variants for seed in seeds]
        pretrained_of: dict[str, tuple[Path, float]] = {}
        for name, overrides, seed in runs:
            out = root / "variants" / name / f"seed{seed}"
            out.mkdir(parents=True, exist_ok=True)
            log = out / "log.txt"
            log.write_text("")
            run_config = variant_config(config, area, overrides or {})
            record = {"area": area, "variant": name, "seed": seed, "overrides": overrides, **provenance}
            start = time.time()
            if overrides is None:
                model = out / "model.joblib"
                record["train_cpu_s"] = cpu_seconds(forest_fit_command(
                    run_config, area, cubes=[c for b in blocks for c in cubes[b]],
                    labels=[str(root / "labels" / f"{b}.tif") for b in blocks], seed=seed, model=model), log)
                predict_cmd = forest_predict_command(run_config, area)
            else:
                # the series skip is added at training time: it needs no pretraining of its own
                if overrides.get("pretrain", {}).get("from"):  # another area's encoder (pretrain.from)
                    pretrained = Path(overrides["pretrain"]["from"])
                elif "pretrain" in overrides or set(overrides.get("model", {})) - {"series_skip", "series_hidden"}:
                    if name not in pretrained_of:
                        pretrained = root / "variants" / name / "pretrained.pt"
                        settings, patches = variant_pretraining(run_config, area, overrides, pretrain_patches)
                        cpu = cpu_seconds(["cropmap", "pretrain", "--settings", settings,
                                           "--patches", *patches, "--threads", "2", "--out", str(pretrained),
                                           "--curve-csv", str(pretrained.with_suffix(".csv")),
                                           "--curve-png", str(pretrained.with_suffix(".png"))], log)
                        pretrained_of[name] = (pretrained, cpu)
                    pretrained, record["pretrain_cpu_s"] = pretrained_of[name]
                else:
                    pretrained = root / "model" / "pretrained.pt"
                train = json.loads(step_settings(run_config, area, "train", overrides))
                train["seed"] = seed
                if overrides.get("labels"):
                    train["own_label_weight"] = float(overrides["labels"].get("weight", 1))
                model = out / "model.pt"
                record["train_cpu_s"] = cpu_seconds(
                    ["cropmap", "train", "--settings", json.dumps(train), "--patches",
                     *variant_train_patches(run_config, area, name, overrides, cubes, train_patches, log), "--threads", "2",
                     "--pretrained", str(pretrained), "--out", str(model), "--metrics-csv", str(out / "train_metrics.csv"),
                     "--curves-png", str(out / "train_curves.png")], log)
                predict_cmd = ["cropmap", "predict", "--settings", step_settings(run_config, area, "predict", overrides),
                               "--threads", "2"]
            predictions, predict_cpu = predict_blocks(predict_cmd, cubes, model, out, log)
            record.update(predict_cpu_s=predict_cpu, wall_s=time.time() - start, **scores(run_config, area, predictions))
            records.append(record)
            print(f"{area:17s} {name:22s} seed {seed}: F1 {record['f1_all']:.3f} (agree {record['f1_agree']:.3f} / "
                  f"disagree {record['f1_disagree']:.3f}; P {record['precision']:.3f} R {record['recall']:.3f}; "
                  f"at p = 0.5: {record['f1_at_half']:.3f}) "
                  f"CPU s: pretrain {record.get('pretrain_cpu_s', 0):.0f} train {record['train_cpu_s']:.0f} "
                  f"predict {record['predict_cpu_s']:.0f}", flush=True)
            with open("results/experiments.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
    print("\narea | variant | F1 | agree | disagree | precision | recall | F1 at p = 0.5 | train CPU s")
    keys = sorted({(r["area"], r["variant"]) for r in records}, key=lambda k: [r["area"] for r in records].index(k[0]))
    for area, name in keys:
        rs = [r for r in records if r["area"] == area and r["variant"] == name]
        cell = lambda k: mean_sd(rs, k)
        print(f"{area} | {name} | {cell('f1_all')} | {cell('f1_agree')} | {cell('f1_disagree')} | {cell('precision')} | "
              f"{cell('recall')} | {cell('f1_at_half')} | {np.mean([r['train_cpu_s'] + r.get('pretrain_cpu_s', 0) for r in rs]):.0f}")


if __name__ == "__main__":
    main()
