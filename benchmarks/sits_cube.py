"""Cost of building one tile's cube, against a plain rasterio windowed read of the same data.

Usage: python benchmarks/sits_cube.py [--scenes 36] [--rounds 5]

1. Time: one 512 x 512 px tile of the demo landscape with N scenes (10 bands + SCL as local COGs).
   The baseline reads, with rasterio, the tile's window of every asset the cube uses (10 m bands at
   10 m, 20 m bands and SCL at 20 m, as stored), one file after another: the decode-bound floor of
   any cube builder. The cube is `build_tile_cube` (odc-stac load with the CRS check, cloud mask,
   composites, gap filling, 20 m bands onto the 10 m grid), which uses every core as it does in a
   tile job; so the plain read is also timed with one thread per core, for an even comparison.
   They are timed in interleaved rounds (a shared machine's speed drifts), after one untimed run of
   each (imports and GDAL set-up, paid once per tile job); the median of the rounds' ratios is printed.
2. Memory: `cropmap sits` for that tile as a child process (max RSS) with the items of a 4-tile,
   a 400-tile and a 10,000-tile area. A Sentinel-2 granule is 110 km across (~450 tiles of 5 km),
   so such areas see about 1, 9 and 36 granules per date: the tile's scenes plus 0, 8 and 35
   copies of them placed elsewhere. A tile job's memory should not grow with the area.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pystac
import rasterio
from rasterio.windows import from_bounds

from cropmap.config import settings_json, typed_settings, validate_config
from cropmap.demo.area import make_demo
from cropmap.grid import tiles_for_area
from cropmap.acquisition.search import save_items, search_items
from cropmap.acquisition.sits import build_tile_cube

SEASON_DAYS = 5  # demo revisit


def _config(root: Path, scenes: int) -> dict:
    from pyproj import Transformer

    x0, y0 = 136 * 5120.0, 850 * 5120.0  # one 512 px tile of the global grid, EPSG:32614
    to_lonlat = Transformer.from_crs("EPSG:32614", "EPSG:4326", always_xy=True)
    xs, ys = to_lonlat.transform([x0 + 50, x0 + 5070, x0 + 50, x0 + 5070], [y0 + 50, y0 + 50, y0 + 5070, y0 + 5070])
    bbox = [max(xs[0], xs[2]), max(ys[0], ys[1]), min(xs[1], xs[3]), min(ys[2], ys[3])]
    import datetime as dt

    start = dt.date(2023, 4, 1)
    end = start + dt.timedelta(days=SEASON_DAYS * scenes - 1)
    return validate_config({
        "areas": {"bench": {
            "aoi": {"bbox": bbox}, "crs": "EPSG:32614", "tile_size": 512,
            "season": {"start": start.isoformat(), "end": end.isoformat()},
            "stac": {"catalog": str(root / "stac/catalog.json"), "max_cloud_cover": 100},
            "demo": {"seed": 1, "revisit_days": SEASON_DAYS},
            "glc": {"w": {"type": "esa-worldcover", "path": str(root / "glc/worldcover.tif")}},
        }},
        "sits": {"interval_days": 10},
        "allow_absolute_paths": True,
    })


def demo_tile(root: Path, scenes: int):
    """(config, items, sits settings, tile) of the benchmark's one-tile demo area, written under `root`."""
    print(f"writing the demo tile with {scenes} scenes ...", flush=True)
    make_demo(settings=typed_settings(_config(root, scenes), "bench", "demo"), out_dir=root)
    return written_demo_tile(root, scenes)


def written_demo_tile(root: Path, scenes: int):
    """`demo_tile` of a demo already written under `root` (for another process that reads it)."""
    config = _config(root, scenes)
    items = list(search_items(settings=typed_settings(config, "bench", "search")))
    settings = typed_settings(config, "bench", "sits")
    return config, items, settings, tiles_for_area(settings.grid)[0]


def _plain_read(items, tile, keys, threads: int = 1) -> None:
    def read(href):
        with rasterio.open(href) as src:
            window = from_bounds(*tile.bounds, transform=src.transform).round_offsets().round_lengths()
            src.read(1, window=window, boundless=True, fill_value=0)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(read, [item.assets[key].get_absolute_href() for item in items for key in keys]))


def _seconds(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def _far_items(items, copies: int) -> list[pystac.Item]:
    """`copies` shifted copies of the items, as the scenes of other tiles of a bigger area."""
    out = []
    for k in range(copies):
        for item in items:
            far = item.clone()
            far.id = f"{item.id}_elsewhere{k}"
            w, s, e, n = item.bbox
            shift = 0.5 * (k + 1)
            far.bbox = [w + shift, s, e + shift, n]
            far.geometry = {"type": "Polygon", "coordinates": [[[w + shift, s], [e + shift, s], [e + shift, n],
                                                                [w + shift, n], [w + shift, s]]]}
            out.append(far)
    return out


def _max_rss_mib(args: list[str]) -> float:
    """Max RSS of the child process running `args` (its own, from wait4)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(err.read().decode()[-3000:])
    return usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=36)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config, items, settings, tile = demo_tile(root, args.scenes)
        keys = [*settings.bands, settings.scl_band]

        cores = len(os.sched_getaffinity(0))
        # interleaved rounds: a shared machine's speed drifts, and a ratio within one round cancels it
        # one untimed run of each first: imports (odc-stac, dask) and GDAL's driver set-up happen once per process
        _plain_read(items, tile, keys)
        build_tile_cube(items=items, tile=tile, settings=settings)
        rounds = []
        for _ in range(args.rounds):
            rounds.append((_seconds(lambda: _plain_read(items, tile, keys)),
                           _seconds(lambda: _plain_read(items, tile, keys, threads=cores)),
                           _seconds(lambda: build_tile_cube(items=items, tile=tile, settings=settings))))
        plain, plain_cores, cube_s = (min(column) for column in zip(*rounds))
        ratio = float(np.median([c / p for p, _, c in rounds]))
        ratio_cores = float(np.median([c / p for _, p, c in rounds]))
        cube = build_tile_cube(items=items, tile=tile, settings=settings)
        print(f"\n1. one tile, 512 x 512 px, {len(items)} scenes x {len(keys)} assets -> "
              f"{cube.sizes['time']} composites x {cube.sizes['band']} bands")
        print(f"   best of {args.rounds} interleaved rounds:")
        print(f"   plain rasterio windowed read, 1 thread  : {plain:6.2f} s")
        print(f"   plain rasterio windowed read, {cores} threads : {plain_cores:6.2f} s")
        print(f"   build_tile_cube                         : {cube_s:6.2f} s")
        print(f"   ratio to the 1-thread read              : {ratio:6.2f} x  (median of the rounds' ratios; "
              f"target <= 1.5)")
        print(f"   ratio to the {cores}-thread read              : {ratio_cores:6.2f} x")

        print("\n2. peak memory of one `cropmap sits` tile job")
        for label, extra in (("4-tile area", 0), ("400-tile area", 8), ("10,000-tile area", 35)):
            path = root / f"items_{extra}.json"
            save_items(pystac.ItemCollection([*items, *_far_items(items, extra)]), path)
            mib = _max_rss_mib([sys.executable, "-m", "cropmap", "sits", "--settings",
                                settings_json(config, "bench", "sits"), "--items", str(path), "--tile", tile.id,
                                "--out", str(root / f"cube_{extra}.nc")])
            print(f"   {label:>16}: {len(items) * (extra + 1):6d} items, max RSS {mib:7.0f} MiB  (target < 2048)")


if __name__ == "__main__":
    main()
