"""The real Snakemake DAG on a tiny demo area: every rule runs, outputs are real, reruns are exact."""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from pyproj import Transformer

from conftest import REPO, headless_browser
from cropmap.learning.training import load_checkpoint

pytestmark = pytest.mark.e2e

TILE = 64  # pixels of 10 m


def tiny_config() -> dict:
    # two tiles of the global 640 m grid, the AOI inset by 50 m so it touches no other tile
    x0, y0 = 1088 * TILE * 10, 6800 * TILE * 10
    to_lonlat = Transformer.from_crs("EPSG:32614", "EPSG:4326", always_xy=True)
    xs, ys = to_lonlat.transform([x0 + 50, x0 + 2 * TILE * 10 - 50, x0 + 50, x0 + 2 * TILE * 10 - 50],
                                 [y0 + 50, y0 + 50, y0 + TILE * 10 - 50, y0 + TILE * 10 - 50])
    bbox = [max(xs[0], xs[2]), max(ys[0], ys[1]), min(xs[1], xs[3]), min(ys[2], ys[3])]
    return {
        "areas": {"demo": {
            "aoi": {"bbox": bbox},
            "tile_size": TILE,
            "season": {"start": "2023-04-01", "end": "2023-08-31"},
            "stac": {"catalog": "results/demo/demo-data/stac/catalog.json", "max_cloud_cover": 95},
            "demo": {"seed": 3, "revisit_days": 10},
            "glc": {
                "worldcover": {"type": "esa-worldcover", "path": "results/demo/demo-data/glc/worldcover.tif"},
                "esri": {"type": "esri-lulc", "path": "results/demo/demo-data/glc/esri_lulc.tif"},
                "glad": {"type": "glad-cropland", "path": "results/demo/demo-data/glc/glad_cropland.tif"},
            },
            "reference": {"path": "results/demo/demo-data/reference/cropland_truth.tif"},
        }},
        "sits": {"interval_days": 20},
        "model": {"width": 8, "heads": 2},
        "pretrain": {"steps": 3, "batch_size": 2, "patch_size": 32},
        "train": {"steps": 6, "batch_size": 2, "patch_size": 32, "eval_every": 3},
        "predict": {"window": 40, "overlap": 8},
    }


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the `cropmap` command
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from the job stats table of a dry run."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", output, re.M)
            if m.group(1) not in ("total", "all")}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    shutil.copy(REPO / "Snakefile", workdir)
    shutil.copytree(REPO / "rules", workdir / "rules")
    shutil.copytree(REPO / "envs", workdir / "envs")
    shutil.copytree(REPO / "report", workdir / "report")
    (workdir / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    run = snakemake(workdir)
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir


def test_every_output_is_written(workflow):
    results = workflow / "results" / "demo"
    for name in ("cropland.tif", "cropland_probability.tif", "assessment/metrics.json", "assessment/metrics.md",
                 "model/pretrained.pt", "model/model.pt", "model/train_curves.png", "model/pretrain_loss.png",
                 "labels/quality.json", "labels/quality.png", "cropland_uncertainty.tif", "cropland_uncertainty.qml",
                 "assessment/suggested.csv", "assessment/suggested.gpkg", "assessment/suggested.json"):
        assert (results / name).stat().st_size > 0, name
    assert len(list((results / "sits").glob("*.nc"))) == 2
    assert len(list((results / "labels").glob("bx*.tif"))) == 1  # both tiles are in one block


def test_map_is_a_cog_with_crs_overviews_and_nodata(workflow):
    with rasterio.open(workflow / "results/demo/cropland.tif") as src:
        assert src.crs.to_epsg() == 32614
        assert src.nodata == 255
        assert src.shape == (TILE, 2 * TILE)
        assert src.overviews(1), "no overviews"
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        values = set(src.read(1).ravel().tolist())
    assert values <= {0, 1, 255} and {0, 1} & values


def test_stac_item_declares_its_extensions_reports_accuracy_and_validates_offline(workflow):
    import pystac.validation
    from pystac.validation import JsonSchemaSTACValidator

    results = workflow / "results/demo"
    payload = json.loads((results / "cropland.stac.json").read_text())
    validator = JsonSchemaSTACValidator()  # pystac's own core schemas, and the extensions' shipped here
    for path in (REPO / "tests/data/stac-schemas").glob("*.json"):
        schema = json.loads(path.read_text())
        validator.schema_cache[schema["$id"].rstrip("#")] = schema
    assert set(payload["stac_extensions"]) <= set(validator.schema_cache)
    pystac.validation.validate_dict(payload, validator=validator)  # as written (from_dict would migrate it)
    accuracy = json.loads((results / "assessment/metrics.json").read_text())["sources"]["map"]
    assert payload["properties"]["cropmap:accuracy"]["f1"] == accuracy["f1"]
    area = json.loads((results / "assessment/area.json").read_text())
    estimate = payload["properties"]["cropmap:area_estimate"]
    assert estimate["cropland_ha"] == area["area"][1] and estimate["cropland_ci95_ha"] == area["area_ci95"][1]
    assert [c["name"] for c in payload["assets"]["cropland"]["classification:classes"]] == ["non-crop", "crop", "no-data"]
    assert payload["assets"]["probability"]["raster:bands"][0]["unit"] == "percent"
    assert {"cropland_style", "probability_style", "legend"} <= set(payload["assets"])


def test_assessment_lists_every_source(workflow):
    metrics = json.loads((workflow / "results/demo/assessment/metrics.json").read_text())["sources"]
    assert set(metrics) == {"map", "network", "forest", "consensus", "worldcover", "esri", "glad"}
    assert metrics["network"] == metrics["map"]  # the network makes the map (predict.method: network)
    for entry in metrics.values():
        for key in ("f1", "precision", "recall", "iou", "oa", "kappa", "confusion_matrix"):
            assert key in entry
        assert 0 <= entry["f1"] <= 1
        assert sum(map(sum, entry["confusion_matrix"])) > 0


def test_consensus_labels_beat_every_product(workflow):
    quality = json.loads((workflow / "results/demo/labels/quality.json").read_text())
    accuracy = quality["accuracy"]
    assert 0 < quality["labelled_fraction"] < 1
    assert accuracy["consensus"] > max(accuracy[p] for p in ("worldcover", "esri", "glad"))


def test_an_area_of_ones_own_runs_alone_from_its_own_config_file(workflow):
    """`--configfile myarea.yaml` merges into config.yaml; its `area:` makes only that area run."""
    config = tiny_config()
    own = config["areas"].pop("demo")
    from conftest import bbox_inside
    from cropmap.grid import Tile

    own["aoi"] = {"bbox": bbox_inside(Tile(1090, 6800, "EPSG:32614", 10.0, TILE))}  # one tile east of the demo's
    for key in ("stac", "reference"):
        own[key] = json.loads(json.dumps(own[key]).replace("results/demo/", "results/mine/"))
    own["glc"] = json.loads(json.dumps(own["glc"]).replace("results/demo/", "results/mine/"))
    (workflow / "myarea.yaml").write_text(yaml.safe_dump({"area": "mine", "areas": {"mine": own}}))
    plan = snakemake(workflow, "-n", "--configfile", "myarea.yaml")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "results/mine/" in plan.stdout and "results/demo/" not in plan.stdout
    # the map and its assessment (the tiny model's map of one tile may hold too few crop pixels for
    # the sample's standard errors)
    run = snakemake(workflow, "results/mine/cropland.tif", "results/mine/assessment/metrics.json",
                    "--configfile", "myarea.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    with rasterio.open(workflow / "results/mine/cropland.tif") as src:
        assert src.shape == (TILE, TILE)
    assert "Nothing to be done" in (r := snakemake(workflow, "-n")).stdout + r.stderr  # the demo untouched


def test_the_ensemble_makes_the_map_from_the_network_and_the_forest_already_made(workflow):
    plan = planned_jobs(snakemake(workflow, "-n", "--config", "predict={method: ensemble}").stdout)
    # the forest's map made for the assessment is reused; only the blocks' ensemble and what follows run
    assert plan["ensemble"] == 1 and plan["mosaic"] == 1 and plan["method_mosaic"] == 1  # the network's own map
    assert not {"train", "predict", "forest", "forest_predict", "sits", "patches"} & set(plan), plan


def test_second_run_does_nothing(workflow):
    run = snakemake(workflow, "-n")
    assert run.returncode == 0
    assert "Nothing to be done" in run.stdout + run.stderr


def dry_run_with(workflow, section: str, key: str, value) -> dict[str, int]:
    """Jobs a dry run plans after one setting changes (nested --config values would be strings)."""
    config = yaml.safe_load((workflow / "config.yaml").read_text())
    config.setdefault(section, {})[key] = value
    (workflow / "changed.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(workflow, "-n", "--configfile", "changed.yaml")
    assert run.returncode == 0, run.stderr[-2000:]
    return planned_jobs(run.stdout + run.stderr)


def test_assessment_setting_reruns_only_assess(workflow):
    # and the map's STAC item, which reports the accuracy
    assert dry_run_with(workflow, "assess", "table_decimals", 5) == {"assess": 1, "stac_item": 1}


def test_composite_interval_reruns_sits_and_downstream_not_search(workflow):
    jobs = dry_run_with(workflow, "sits", "interval_days", 15)
    assert "search" not in jobs and "demo" not in jobs and "labels" not in jobs
    assert jobs["sits"] == 2
    for rule in ("patches", "pretrain", "train", "predict", "mosaic", "assess"):
        assert rule in jobs


def test_sampling_setting_reruns_patches_and_training_not_sits(workflow):
    jobs = dry_run_with(workflow, "patches", "crop_share", 0.3)
    assert jobs.pop("patches") == 1  # the training patches of the one block; pretraining patches are kept
    assert not {"sits", "labels", "pretrain"} & set(jobs), jobs
    assert {"train", "predict", "mosaic", "assess"} <= set(jobs), jobs


def test_an_encoder_pretrained_elsewhere_replaces_the_areas_own_pretraining(workflow):
    """`pretrain.from` (issue 23): training starts from another checkpoint, and the area's own
    pretraining is not part of the plan."""
    (workflow / "elsewhere").mkdir(exist_ok=True)
    shutil.copy(workflow / "results/demo/model/pretrained.pt", workflow / "elsewhere/pretrained.pt")
    config = yaml.safe_load((workflow / "config.yaml").read_text())
    config["areas"]["demo"]["pretrain"] = {"from": "elsewhere/pretrained.pt"}
    (workflow / "transfer.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(workflow, "-n", "-p", "--configfile", "transfer.yaml", "--forceall")
    assert run.returncode == 0, run.stderr[-2000:]
    jobs = planned_jobs(run.stdout + run.stderr)
    assert "pretrain" not in jobs and jobs["train"] == 1, jobs
    assert "--pretrained elsewhere/pretrained.pt" in run.stdout + run.stderr


def test_one_pretraining_for_two_seasons_reads_the_other_seasons_patches(workflow):
    """`pretrain.with_areas` (issue 23): the same place a year earlier is another area; the area's
    pretraining reads its pretraining patches too (after the area's own, with its season start in
    the settings), and the other season is made up to its patches only."""
    config = yaml.safe_load((workflow / "config.yaml").read_text())
    earlier = yaml.safe_load(yaml.safe_dump(config["areas"]["demo"]).replace("results/demo/", "results/demo_2022/"))
    earlier["season"] = {"start": "2022-04-01", "end": "2022-08-31"}
    earlier["demo"]["seed"] = 4
    config["areas"]["demo_2022"] = earlier
    config["areas"]["demo"]["pretrain"] = {"with_areas": ["demo_2022"]}
    config["area"] = "demo"
    (workflow / "seasons.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(workflow, "-n", "-p", "--configfile", "seasons.yaml")
    assert run.returncode == 0, run.stderr[-2000:]
    jobs = planned_jobs(run.stdout + run.stderr)
    assert jobs["sits"] == 2 and jobs["patches"] == 1 and jobs["pretrain"] == 1, jobs  # demo_2022's cubes and patches
    assert "train" in jobs and "labels" not in jobs, jobs  # nothing else of demo_2022
    command = next(line for line in (run.stdout + run.stderr).splitlines() if "cropmap pretrain " in line)
    own, other = command.index("results/demo/patches/pretrain/"), command.index("results/demo_2022/patches/pretrain/")
    assert own < other and '"season_start":"2022-04-01"' in command


def test_a_round_of_labelling_the_suggested_points_reruns_training_not_the_cubes(workflow, tmp_path):
    """Issue 23: the suggested points, labelled (here from the reference raster, as a person would
    from imagery) and named in `areas.<name>.labels`, rerun the training patches, training and what
    follows, never the cubes, the consensus or the pretraining; the held-out ones choose the checkpoint."""
    import csv

    results = workflow / "results/demo"
    with open(results / "assessment/suggested.csv") as f:
        points = list(csv.DictReader(f))
    with rasterio.open(results / "demo-data/reference/cropland_truth.tif") as src:
        truth = [int(v[0] == 1) for v in src.sample([(float(p["x"]), float(p["y"])) for p in points])]
    with open(workflow / "labelled.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(points[0]))
        writer.writeheader()
        writer.writerows({**p, "reference": t} for p, t in zip(points, truth))
    config = yaml.safe_load((workflow / "config.yaml").read_text())
    config["areas"]["demo"]["labels"] = {"path": "labelled.csv", "weight": 5, "holdout": 0.3}
    (workflow / "own.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(workflow, "-n", "-p", "--configfile", "own.yaml")
    assert run.returncode == 0, run.stderr[-2000:]
    jobs = planned_jobs(run.stdout + run.stderr)
    assert jobs.pop("patches") == 1 and not {"demo", "search", "sits", "labels", "pretrain"} & set(jobs), jobs
    assert {"train", "predict", "mosaic", "assess", "suggest"} <= set(jobs), jobs
    assert "--own-labels labelled.csv" in run.stdout + run.stderr
    # and for real, in a copy (the other tests keep the workflow as it was)
    copy = tmp_path / "copy"
    shutil.copytree(workflow, copy, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    run = snakemake(copy, "results/demo/model/model.pt", "--configfile", "own.yaml")  # --configfile takes several
    assert run.returncode == 0, run.stderr[-4000:]
    assert load_checkpoint(copy / "results/demo/model/model.pt")["validation_unit"] == "own label"


def test_bad_config_stops_before_any_job(workflow):
    bad = yaml.safe_load((workflow / "config.yaml").read_text())
    bad["areas"]["demo"]["tile_sise"] = 32
    (workflow / "bad.yaml").write_text(yaml.safe_dump(bad))
    run = snakemake(workflow, "-n", "--configfile", "bad.yaml")
    assert run.returncode != 0
    assert "areas.demo.tile_sise" in run.stderr + run.stdout


def test_report_is_self_contained_and_shows_the_images(workflow):
    import base64
    import time

    from selenium.webdriver.common.by import By

    run = snakemake(workflow, "--report", "report.html")
    assert run.returncode == 0, run.stderr[-2000:]
    html = (workflow / "report.html").read_text()
    assert not re.search(r'src="https?://', html), "the report loads something from the network"
    pngs = re.findall(r"data:image/png[^,\"]*;base64,([A-Za-z0-9+/=]+)", html)
    assert len(pngs) >= 7  # map, probability, availability, labels, confusion, two training curves
    for data in pngs:
        raw = base64.b64decode(data)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 2000

    browser = headless_browser()
    try:
        shown = {}
        for category in ("Map", "Data", "Labels", "Model", "Accuracy"):
            browser.get((workflow / "report.html").as_uri())
            time.sleep(1.5)
            browser.find_element(By.XPATH, f"//*[text()='{category}']").click()
            time.sleep(0.5)
            for eye in browser.find_elements(By.CSS_SELECTOR, "a[iconname=eye]"):
                eye.click()
                time.sleep(0.5)
            widths = [int(img.get_attribute("naturalWidth") or 0) for img in browser.find_elements(By.TAG_NAME, "img")]
            shown[category] = max(widths, default=0)
    finally:
        browser.quit()
    for category in ("Map", "Data", "Labels", "Model"):
        assert shown[category] > 200, f"no image shown for {category}: {shown}"


def test_ablation_reuses_the_chain_and_tables_every_variant(workflow):
    """Three variants (one pretrained again) and the forest, two seeds each; one table of means."""
    config = yaml.safe_load((workflow / "config.yaml").read_text())
    config["ablation"] = {"variants": ["full", "consensus_only", "gap_filled_targets"], "seeds": [0, 1]}
    (workflow / "ablation.yaml").write_text(yaml.safe_dump(config))
    use = ("--configfile", "ablation.yaml")
    plan = planned_jobs((r := snakemake(workflow, "-n", "ablation", *use)).stdout + r.stderr)
    assert plan == {"ablation_pretrain": 1, "ablation_train": 6, "ablation_predict": 6, "ablation_mosaic": 8,
                    "ablation_forest": 2, "ablation_forest_predict": 2, "ablation_assess": 1, "ablation": 1}, plan
    run = snakemake(workflow, "ablation", *use)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((workflow / "results/demo/ablation/metrics.json").read_text())
    metrics, summary = result["sources"], result["summary"]
    assert list(summary)[:5] == ["map", "full", "consensus_only", "gap_filled_targets", "random_forest"]
    assert {"consensus", "worldcover", "esri", "glad"} <= set(summary)
    for name in ("full", "consensus_only", "gap_filled_targets", "random_forest"):
        assert summary[name]["seeds"] == 2
        f1s = [metrics[f"{name}@{seed}"]["f1"] for seed in (0, 1)]
        assert summary[name]["f1"]["mean"] == pytest.approx(np.mean(f1s))
        assert summary[name]["f1"]["sd"] == pytest.approx(np.std(f1s, ddof=1))
        assert metrics[f"{name}@0"]["coverage"] > 0.9
    assert summary["full"]["selection_f1"]["mean"] > 0  # the held-out consensus F1 the checkpoint was chosen by
    assert metrics["map"] == json.loads((workflow / "results/demo/assessment/metrics.json").read_text())["sources"]["map"]
    checkpoint = load_checkpoint(workflow / "results/demo/ablation/consensus_only/seed1/model.pt")
    assert checkpoint["settings"]["similarity_weight"] == 0 and checkpoint["settings"]["seed"] == 1
    assert checkpoint["settings"]["use_pretrained"] is False
    own = load_checkpoint(workflow / "results/demo/ablation/gap_filled_targets/pretrained.pt")
    assert own["settings"]["observed_only"] is False
    assert "± " in (workflow / "results/demo/ablation/metrics.md").read_text()


def _kill_during(workflow: Path, command: str, *args: str, nth: int = 1) -> None:
    """Run snakemake with `args`; SIGKILL it and its jobs while the `nth` `cropmap <command>` job runs."""
    import signal
    import time

    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=workflow, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, f"snakemake ended before {command} job {nth} could be killed"
            assert time.monotonic() < deadline, f"{command} job {nth} did not start"
            # only this run's jobs (its session), not another workflow's on the same machine
            jobs = subprocess.run(["pgrep", "-s", str(proc.pid), "-f", f"bin/cropmap {command} "],
                                  capture_output=True, text=True).stdout.split()
            seen += [pid for pid in jobs if pid not in seen]
            if len(seen) >= nth and seen[nth - 1] in jobs:
                time.sleep(0.5)
                for pid in jobs:  # the job may run in its own process group
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.1)
    finally:
        proc.wait(60)
    # a killed Snakemake leaves its lock on the working directory: the user's first step too
    assert snakemake(workflow, "--unlock").returncode == 0


def test_killed_jobs_and_only_they_are_redone(workflow):
    """A changed cloud mask reruns sits and what follows. SIGKILL the run during the second
    sits job, then during train: nothing half-written is trusted, and each rerun plans exactly the
    killed job, the jobs not yet run and what depends on them."""
    results = workflow / "results" / "demo"
    config = yaml.safe_load((workflow / "config.yaml").read_text())
    config["sits"]["cloud_dilation_px"] = 1
    (workflow / "dilation1.yaml").write_text(yaml.safe_dump(config))
    use = ("--configfile", "dilation1.yaml")
    untouched = {p: p.stat().st_mtime for p in [results / "stac/items.json", *(results / "labels").glob("bx*.tif")]}

    _kill_during(workflow, "sits", *use, nth=2)
    plan = planned(workflow, *use)
    assert plan.get("sits") == 1, plan  # the first tile's cube is done and kept
    assert not {"demo", "search", "labels"} & set(plan), plan

    _kill_during(workflow, "train", *use, "--rerun-incomplete")
    plan = planned(workflow, *use)
    assert plan.get("train") == 1, plan
    assert not {"demo", "search", "sits", "labels", "patches", "pretrain"} & set(plan), plan
    assert {"predict", "mosaic", "assess"} <= set(plan), plan

    run = snakemake(workflow, *use, "--rerun-incomplete")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Nothing to be done" in (r := snakemake(workflow, "-n", *use)).stdout + r.stderr
    assert all(p.stat().st_mtime == t for p, t in untouched.items())
    assert not list(results.rglob("*.partial*")), "a killed job's temporary file was left behind"


def planned(workflow: Path, *args: str) -> dict[str, int]:
    run = snakemake(workflow, "-n", "--rerun-incomplete", *args)
    assert run.returncode == 0, run.stderr[-2000:]
    return planned_jobs(run.stdout + run.stderr)
