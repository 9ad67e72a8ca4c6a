"""How long `snakemake -n` takes, and how much memory, for areas of 100, 1,000 and 10,000 tiles.

Usage: python benchmarks/dry_run_scaling.py [N ...]
Each area is a square of N tiles of 512 px at 10 m (a 10,000-tile area is 512 km across, a US
state); the dry run builds the whole DAG (search, sits per tile, labels and predict per block of
4 x 4 tiles, and the area-wide jobs). Time and peak memory (max RSS of the snakemake process) are
printed, with ratios to a 1-tile area measured in the same run (Snakemake's start-up alone).
"""

from __future__ import annotations

import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def area_config(n_tiles: int) -> dict:
    side = max(math.isqrt(n_tiles), 1)
    extent = side * 5120.0  # metres
    x0, y0 = 136 * 5120.0, 850 * 5120.0
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs("EPSG:32614", "EPSG:4326", always_xy=True)
    # a lon/lat box strictly inside the square of tiles
    xs, ys = to_lonlat.transform([x0 + 1000, x0 + extent - 1000, x0 + 1000, x0 + extent - 1000],
                                 [y0 + 1000, y0 + 1000, y0 + extent - 1000, y0 + extent - 1000])
    bbox = [max(xs[0], xs[2]), max(ys[0], ys[1]), min(xs[1], xs[3]), min(ys[2], ys[3])]
    products = {name: {"type": "esa-worldcover", "path": f"glc/{name}.tif"} for name in ("a", "b", "c")}
    return {"areas": {"state": {"aoi": {"bbox": bbox}, "crs": "EPSG:32614", "season": {"start": "2023-03-01", "end": "2023-10-31"},
                                "stac": {"api": "https://earth-search.aws.element84.com/v1"}, "glc": products}}}


def dry_run(n_tiles: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy(REPO / "Snakefile", work)
        for folder in ("rules", "envs", "report"):
            shutil.copytree(REPO / folder, work / folder)
        (work / "glc").mkdir()
        for name in ("a", "b", "c"):
            (work / "glc" / f"{name}.tif").touch()
        (work / "config.yaml").write_text(yaml.safe_dump(area_config(n_tiles)))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "1"],
                             cwd=work, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        peak_mib = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
        if run.returncode != 0:
            raise SystemExit(run.stderr[-3000:])
        jobs = next(int(line.split()[-1]) for line in run.stdout.splitlines()
                    if line.split() and line.split()[0] == "total")
        return seconds, peak_mib, jobs


def main(sizes: list[int]) -> None:
    base, _, _ = dry_run(1)
    print(f"start-up (1 tile): {base:.1f} s")
    print(f"{'tiles':>7} {'jobs':>7} {'seconds':>8} {'peak MiB':>9} {'x start-up':>10} {'ms per tile':>11}")
    for n in sizes:
        seconds, peak, jobs = dry_run(n)
        print(f"{n:>7} {jobs:>7} {seconds:>8.1f} {peak:>9.0f} {seconds / base:>10.1f} "
              f"{1000 * (seconds - base) / n:>11.2f}", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000, 10000])
