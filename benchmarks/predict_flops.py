"""How much of the machine's compute `predict` uses: its FLOP rate against a plain matmul's.

Usage: python benchmarks/predict_flops.py [--area demo] [--tiles 4] [--width W --heads H --layers L]
                                          [--cube results/demo/sits/TILE.nc] [--rounds 3] [--processes N]
                                          [--window PX --overlap PX --batch-size N]

1. The model's cost per pixel: torch's `FlopCounterMode` over one forward pass of a `predict.window`
   px window (convolutions, matmuls and attention; element-wise work is not counted), divided by
   the window's pixels.
2. The machine's rate: a fp32 `torch.mm` of 2048 x 2048 matrices on the same threads, in GFLOP/s.
3. `predict_probability` on `--tiles` tile cubes (the area's settings: window, overlap, batch size),
   timed with the process's user and system CPU seconds and its minor page faults. Three rates are
   printed against the matmul's: the useful one (the cost per pixel x the tiles' pixels / seconds:
   the overlap recomputed by neighbouring windows is not counted), the work done (x the windows'
   pixels: what the hardware executed), and issue 22's (its cost per pixel missed the temporal
   encoder).

Speed does not depend on the weights or the values, so the model is randomly initialised at the
area's model size (or --width/--heads/--layers, e.g. STCLN's 64/8/2 as a larger size), and the cube is
random unless `--cube` names a real one. Rounds interleave the matmul and the prediction (a shared
machine's speed drifts); medians are printed. `--processes N` predicts the tiles in N processes of
one thread each (as N `cropmap predict --threads 1` jobs would run side by side), against the same
matmul (one process on every thread).
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from cropmap.acquisition.compositing import composite_periods
from cropmap.config import load_config, typed_settings
from cropmap.learning.model import ModelConfig, SpatioTemporalNet
from cropmap.mapping.predict import predict_probability, window_starts

REPO = Path(__file__).resolve().parents[1]


def matmul_gflops(*, size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def flops_per_pixel(model: SpatioTemporalNet, *, dates: int, bands: int, window: int, full: bool) -> float:
    """FLOPs per pixel of one window's forward pass. In eval mode torch's fused transformer layer
    hides the temporal encoder from the counter (`full=False`, the count issue 22 quoted); in train
    mode (no dropout: the same maths) it runs op by op and is counted (`full=True`)."""
    x, doy = torch.randn(1, dates, bands, window, window), torch.linspace(0, 300, dates)[None]
    counter = FlopCounterMode(display=False)
    model.train(full)
    # attention in plain matmuls, which the counter sees (it has no formula for the fused CPU kernel)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(x, doy)
    model.eval()
    return counter.get_total_flops() / window**2


def timed(fn) -> tuple[float, float, float, int]:
    """(wall s, user s, system s, minor page faults) of fn()."""
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, after.ru_minflt - before.ru_minflt


_worker: dict = {}


def _random_model(model_settings: dict, *, dates: int, bands: int) -> SpatioTemporalNet:
    """The model at `model_settings`, seeded, so that every process predicts with the same weights."""
    torch.manual_seed(0)
    return SpatioTemporalNet(ModelConfig(in_bands=bands, n_dates=dates, **model_settings)).eval()


def _start_worker(model_settings: dict, x: np.ndarray, doy: np.ndarray, predict) -> None:
    torch.set_num_threads(1)
    dates, bands = x.shape[:2]
    _worker.update(model=_random_model(model_settings, dates=dates, bands=bands), x=x, doy=doy, predict=predict)
    _predict_tile(warm_up=True)


def _predict_tile(_: int = 0, *, warm_up: bool = False) -> tuple[float, float, float, int]:
    w = _worker
    window = w["predict"].window
    x = w["x"][:, :, :window, :window] if warm_up else w["x"]
    return timed(lambda: predict_probability(w["model"], x, w["doy"], window=window, overlap=w["predict"].overlap,
                                             batch_size=w["predict"].batch_size, progress=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--area", default="demo")
    parser.add_argument("--tiles", type=int, default=4, help="tile cubes predicted per round")
    parser.add_argument("--cube", help="a real tile cube (netCDF of `cropmap sits`) instead of random values")
    parser.add_argument("--width", type=int)
    parser.add_argument("--heads", type=int)
    parser.add_argument("--layers", type=int, help="temporal layers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1, help="processes of one thread each (default: one "
                        "process on every thread)")
    parser.add_argument("--window", type=int, help="predict.window (px) instead of the area's")
    parser.add_argument("--overlap", type=int, help="predict.overlap (px) instead of the area's")
    parser.add_argument("--batch-size", type=int, help="predict.batch_size (windows) instead of the area's")
    args = parser.parse_args()

    config = load_config(str(REPO / "config.yaml"))
    predict = typed_settings(config, args.area, "predict")
    predict = dataclasses.replace(predict, **{key: value for key, value in (
        ("window", args.window), ("overlap", args.overlap), ("batch_size", args.batch_size)) if value is not None})
    train = typed_settings(config, args.area, "train")
    model_settings = dict(vars(train.model))
    for key, value in (("width", args.width), ("heads", args.heads), ("temporal_layers", args.layers)):
        if value:
            model_settings[key] = value
    if args.cube:
        from cropmap.acquisition.cube import open_cube

        cube = open_cube(args.cube)
        x = cube["reflectance"].values.astype(np.float32) / 10000
        x = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / (x.std(axis=(0, 2, 3), keepdims=True) + 1e-6)
    else:
        sits = typed_settings(config, args.area, "sits")
        side = sits.grid.tile_size + 2 * sits.halo_px
        dates = len(composite_periods(sits.season, sits.interval_days))
        x = np.random.default_rng(0).standard_normal((dates, len(sits.bands), side, side)).astype(np.float32)
    dates, bands, h, w = x.shape
    doy = np.linspace(5, 5 + 10 * (dates - 1), dates)
    model = _random_model(model_settings, dates=dates, bands=bands)

    seen = flops_per_pixel(model, dates=dates, bands=bands, window=predict.window, full=False)
    per_pixel = flops_per_pixel(model, dates=dates, bands=bands, window=predict.window, full=True)
    window = min(predict.window, h, w)
    stride = max(window - predict.overlap, 1)
    computed = len(window_starts(h, window, stride)) * len(window_starts(w, window, stride)) * window**2
    threads = torch.get_num_threads()

    pool = None
    if args.processes > 1:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(args.processes, initializer=_start_worker,
                                                         initargs=(model_settings, x, doy, predict))

        def run() -> tuple[float, float, float, int]:
            start = time.perf_counter()
            per_tile = pool.map(_predict_tile, range(args.tiles), chunksize=1)
            return (time.perf_counter() - start, *(sum(values) for values in list(zip(*per_tile))[1:]))
    else:
        _worker.update(model=model, x=x, doy=doy, predict=predict)
        _predict_tile(warm_up=True)

        def run() -> tuple[float, float, float, int]:
            return timed(lambda: [_predict_tile() for _ in range(args.tiles)])

    rates, runs = [], []
    for _ in range(args.rounds):
        rates.append(matmul_gflops())
        runs.append(run())
    if pool is not None:
        pool.close()
        pool.join()
    peak = statistics.median(rates)
    wall, user, system, faults = (statistics.median(values) for values in zip(*runs))
    pixels = args.tiles * h * w
    useful = per_pixel * pixels / wall / 1e9
    print(f"model: width {model_settings['width']}, heads {model_settings['heads']}, "
          f"{model_settings['temporal_layers']} temporal layer(s), series_skip {model_settings['series_skip']}; "
          f"{dates} dates x {bands} bands; window {predict.window}, overlap {predict.overlap}, "
          f"batch {predict.batch_size}; "
          + (f"{args.processes} processes of 1 thread" if pool is not None else f"{threads} threads"))
    print(f"cost per pixel (FlopCounterMode, one {predict.window} px window): {per_pixel / 1e6:.3f} MFLOP "
          f"({seen / 1e6:.3f} MFLOP without the temporal encoder, which the fused layer hides from the counter)")
    print(f"fp32 torch.mm 2048^2 on {threads} threads: {peak:.1f} GFLOP/s (median of {args.rounds})")
    print(f"predict {args.tiles} tile(s) of {h} x {w} px ({pixels:,} px; windows cover {computed / (h * w):.2f}x "
          f"that): {wall:.1f} s wall, {user:.1f} s user, {system:.1f} s system, {faults / 1e6:.2f} M minor page "
          f"faults; {pixels / wall:,.0f} px/s")
    for name, rate in (("useful work (full cost x tile pixels)", useful),
                       ("work done (full cost x window pixels)", useful * computed / (h * w)),
                       ("issue 22's count (cost without the encoder x tile pixels)", useful * seen / per_pixel)):
        print(f"  {name:<60}: {rate:5.1f} GFLOP/s = {100 * rate / peak:4.1f} % of the matmul rate")
    who = resource.RUSAGE_CHILDREN if pool is not None else resource.RUSAGE_SELF
    print(f"peak memory (max RSS{' of a process' if pool is not None else ''}): "
          f"{resource.getrusage(who).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
