"""Peak memory and wall time of every step as the study area grows: is each job bounded?

Usage: python benchmarks/scale.py [--tiles 4 16 64] [--area-tiles 1024] [--work DIR] [--steps 30]

Needs the demo's results (`snakemake --cores all` first): its four real cubes, label block,
prediction block and reference are repeated over square areas of N tiles of 512 px (cube files are
copied and re-georeferenced, rasters are tiled), on the demo's grid, in blocks of 4 x 4 tiles.
Every step runs as its own `cropmap <step>` process, as Snakemake runs it; its peak RSS is the
process's own (`wait4`), its time the wall time:
- per-block jobs (patches, predict): the first block of the area;
- pretrain and train: a fixed budget of `--steps` batches over all the area's patch stores;
- area-wide jobs (mosaic, assess, label-quality, sample, area) over the whole area; for
  `--area-tiles` (1,024 by default) these alone, from synthetic block rasters (no cubes).
Ratios are against the smallest area measured in the same run. Not a test: nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "results" / "demo"
TILE = 512
RES = 10.0
X0, Y0 = 136, 848  # the first tile of every benchmark area (a multiple of 4: blocks are whole)


def area_config(side: int, work: Path) -> dict:
    """A validated config of a square area of side x side tiles, its sources under `work`; its AOI
    is the square inset by 50 m, densified (a lon/lat bbox inside a large UTM square loses corners)."""
    import shapely

    from cropmap.config import validate_config
    from cropmap.grid import reproject_geometry

    e = TILE * RES
    left, bottom = X0 * e, Y0 * e
    square = shapely.box(left + 50, bottom + 50, left + side * e - 50, bottom + side * e - 50).segmentize(500)
    aoi = work / "aoi.geojson"
    aoi.write_text(json.dumps(shapely.geometry.mapping(reproject_geometry(square, "EPSG:32614", "EPSG:4326"))))
    products = {name: {"type": "esa-worldcover", "path": str(work / "unused.tif")} for name in ("esri", "glad", "worldcover")}
    return validate_config({
        "areas": {"bench": {"aoi": {"file": str(aoi)}, "crs": "EPSG:32614", "tile_size": TILE,
                            "season": {"start": "2023-03-01", "end": "2023-10-31"}, "stac": {"catalog": "unused.json"},
                            "glc": products, "reference": {"path": str(work / "reference.tif")}}},
        "model": {"width": 16, "heads": 2, "temporal_layers": 1},
        "allow_absolute_paths": True,
    })


def run(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one `cropmap` command in its own process."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "TQDM_DISABLE": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status:
        raise SystemExit(f"{' '.join(command[:2])} failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def clone_cube(source: Path, tile, dest: Path) -> None:
    """A copy of a demo cube, re-georeferenced to `tile` (same pixels, its own id and coordinates)."""
    import netCDF4

    shutil.copyfile(source, dest)
    with netCDF4.Dataset(dest, "a") as ds:
        left, _, _, top = tile.bounds
        ds["x"][:] = left + RES * (np.arange(TILE) + 0.5)
        ds["y"][:] = top - RES * (np.arange(TILE) + 0.5)
        ds["spatial_ref"].GeoTransform = f"{left} {RES} 0.0 {top} 0.0 {-RES}"
        ds.tile = tile.id


def demo_window(path: Path, tile, band: int | None = None) -> np.ndarray:
    """The demo raster's tile that `tile` repeats (tiles alternate over the demo's 2 x 2)."""
    with rasterio.open(path) as src:
        r, c = (1 - tile.iy % 2) * TILE, (tile.ix % 2) * TILE
        window = rasterio.windows.Window(c, r, TILE, TILE)
        return src.read(band, window=window) if band else src.read(window=window)


def write_blocks(blocks: dict, source: Path, folder: Path) -> list[str]:
    """Block rasters made of the demo block's tiles (all bands, descriptions kept)."""
    from cropmap.io import write_geotiff

    with rasterio.open(source) as src:
        descriptions = list(src.descriptions)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for block_id, block in blocks.items():
        out = np.full((len(descriptions), *block.shape), 255, np.uint8)
        for tile in block.tiles:
            r, c = block.offset(tile)
            out[:, r:r + TILE, c:c + TILE] = demo_window(source, tile)
        path = folder / f"{block_id}.tif"
        write_geotiff(path, out, transform=block.transform, crs=block.crs, nodata=255, descriptions=descriptions)
        paths.append(str(path))
    return paths


def write_reference(grid, tiles, path: Path) -> None:
    """The demo's truth repeated over the area, written window by window."""
    profile = {"driver": "GTiff", "height": grid.shape[0], "width": grid.shape[1], "count": 1, "dtype": "uint8",
               "crs": grid.crs, "transform": grid.transform, "nodata": 255, "tiled": True, "compress": "deflate",
               "blockxsize": 256, "blockysize": 256, "bigtiff": "IF_SAFER"}
    with rasterio.open(path, "w", **profile) as dst:
        for tile in tiles:
            r, c = grid.offset(tile)
            dst.write(demo_window(DEMO / "demo-data/reference/cropland_truth.tif", tile, 1),
                      1, window=rasterio.windows.Window(c, r, TILE, TILE))


def measure(side: int, work: Path, *, steps: int, with_cubes: bool) -> dict[str, tuple[float, float]]:
    from cropmap.config import grid_settings, settings_json
    from cropmap.grid import AreaGrid, blocks_for_area, tiles_for_area

    work.mkdir(parents=True, exist_ok=True)
    config = area_config(side, work)
    grid = grid_settings(config, "bench")
    tiles = tiles_for_area(grid)
    assert len(tiles) == side * side, (len(tiles), side)
    blocks = blocks_for_area(grid, config["areas"]["bench"]["block_tiles"])
    grid = AreaGrid(tuple(tiles))

    def settings(step: str) -> str:
        return settings_json(config, "bench", step)

    labels = write_blocks(blocks, DEMO / "labels/bx0034y0212.tif", work / "labels")
    predictions = write_blocks(blocks, DEMO / "predict/bx0034y0212.tif", work / "predict")
    write_reference(grid, tiles, work / "reference.tif")
    cropmap = [str(Path(sys.executable).parent / "cropmap")]
    out: dict[str, tuple[float, float]] = {}
    first_block, first = next(iter(blocks.items()))
    if with_cubes:
        cubes = {}
        for tile in tiles:
            cubes[tile.id] = work / "sits" / f"{tile.id}.nc"
            cubes[tile.id].parent.mkdir(exist_ok=True)
            clone_cube(DEMO / "sits" / f"x{136 + tile.ix % 2:04d}y{850 + tile.iy % 2:04d}.nc", tile, cubes[tile.id])
        stores = {"pretrain": [], "train": []}
        for block_id, block in blocks.items():
            for kind in stores:
                path = work / "patches" / kind / f"{block_id}.nc"
                command = [*cropmap, "patches", "--kind", kind, "--settings", settings(f"{kind}_patches"), "--cubes",
                           *(str(cubes[t.id]) for t in block.tiles), "--block", block_id, "--out", str(path)]
                if kind == "train":
                    command += ["--labels", str(work / "labels" / f"{block_id}.tif")]
                measured = run(command)
                if block_id == first_block:
                    out[f"patches ({kind}), per block"] = measured
                stores[kind].append(str(path))
        budget = json.loads(settings("pretrain")) | {"steps": steps}
        out["pretrain"] = run([*cropmap, "pretrain", "--settings", json.dumps(budget), "--patches", *stores["pretrain"],
                               "--threads", "2", "--out", str(work / "pretrained.pt"),
                               "--curve-csv", str(work / "p.csv"), "--curve-png", str(work / "p.png")])
        budget = json.loads(settings("train")) | {"steps": steps, "eval_every": max(1, steps // 3)}
        out["train"] = run([*cropmap, "train", "--settings", json.dumps(budget), "--patches", *stores["train"],
                            "--threads", "2", "--pretrained", str(work / "pretrained.pt"), "--out", str(work / "model.pt"),
                            "--metrics-csv", str(work / "t.csv"), "--curves-png", str(work / "t.png")])
        out["predict, per block"] = run([*cropmap, "predict", "--settings", settings("predict"), "--cubes",
                                         *(str(cubes[t.id]) for t in first.tiles), "--model", str(work / "model.pt"),
                                         "--block", first_block, "--out", str(work / "first_block.tif")])
    out["mosaic"] = run([*cropmap, "mosaic", "--settings", settings("mosaic"), "--tiles", *predictions,
                         "--map", str(work / "cropland.tif"), "--probability", str(work / "probability.tif")])
    out["assess"] = run([*cropmap, "assess", "--settings", settings("assess"), "--map", str(work / "cropland.tif"),
                         "--labels", *labels, "--out", str(work / "m.json"), "--table", str(work / "m.md"),
                         "--csv", str(work / "m.csv"), "--per-tile", str(work / "per_tile.csv"),
                         "--confusion-png", str(work / "c.png")])
    out["label-quality"] = run([*cropmap, "label-quality", "--settings", settings("label_quality"), "--labels", *labels,
                                "--out", str(work / "q.json"), "--plot", str(work / "q.png")])
    out["sample"] = run([*cropmap, "sample", "--settings", settings("sample"), "--map", str(work / "cropland.tif"),
                         "--csv", str(work / "sample.csv"), "--gpkg", str(work / "sample.gpkg")])
    out["area"] = run([*cropmap, "area", "--settings", settings("area"), "--map", str(work / "cropland.tif"),
                       "--sample", str(work / "sample.csv"), "--labelled-out", str(work / "labelled.csv"),
                       "--out", str(work / "area.json"), "--csv", str(work / "area.csv")])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, nargs="*", default=[4, 16, 64])
    parser.add_argument("--area-tiles", type=int, nargs="*", default=[1024])
    parser.add_argument("--steps", type=int, default=30, help="pretrain and train batches (a fixed budget)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cropmap-scale"))
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if not (DEMO / "sits").is_dir():
        raise SystemExit("run the demo first (snakemake --cores all): its cubes and rasters are the benchmark's data")
    results: dict[int, dict[str, tuple[float, float]]] = {}
    for n in [*args.tiles, *args.area_tiles]:
        side = math.isqrt(n)
        if side * side != n:
            raise SystemExit(f"{n} is not a square number of tiles")
        work = args.work / f"{n}"
        shutil.rmtree(work, ignore_errors=True)
        print(f"{n} tiles ...", flush=True)
        results[n] = measure(side, work, steps=args.steps, with_cubes=n in args.tiles)
        for step, (seconds, mib) in results[n].items():
            print(f"  {step:28s} {seconds:8.1f} s {mib:8.0f} MiB", flush=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    sizes = list(results)
    steps = list(results[sizes[0]])
    print("\n| step | " + " | ".join(f"{n:,} tiles: s / MiB" for n in sizes) + " | MiB ratio to the smallest |")
    print("|---" * (len(sizes) + 2) + "|")
    for step in steps:
        cells = [f"{results[n][step][0]:.1f} / {results[n][step][1]:.0f}" if step in results[n] else "" for n in sizes]
        base = results[sizes[0]][step][1]
        ratios = " / ".join(f"{results[n][step][1] / base:.2f}" for n in sizes[1:] if step in results[n])
        print(f"| {step} | " + " | ".join(cells) + f" | {ratios} |")


if __name__ == "__main__":
    main()
