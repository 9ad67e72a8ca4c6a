"""Training and inference throughput of the model, and what overlap and blending cost.

Usage: python benchmarks/model_throughput.py [--tile 512] [--dates 25] [--width W --heads H --layers L]

Inference: one tile cube (random values; speed does not depend on them) predicted
  (a) raw: the model over non-overlapping windows that cover the tile, no blending;
  (b) as the pipeline does: overlapping windows (predict.window / predict.overlap of the default
      config) blended with the raised-cosine weights.
The ratio of (b)'s throughput to (a)'s is printed (target >= 0.7), with pixels per second per core.
Training: weakly supervised steps (both regularisers on) on patches of a synthetic tile: pixels
per second per core. Peak memory is the max RSS of this process. All measured in this run.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cropmap.config import load_config, typed_settings
from cropmap.learning.model import ModelConfig, SpatioTemporalNet
from cropmap.learning.patches import PatchStore, PatchWriter
from cropmap.mapping.predict import predict_probability, window_starts
from cropmap.settings import ModelSettings
from cropmap.learning.training import train

REPO = Path(__file__).resolve().parents[1]


@torch.no_grad()
def raw_forward(model, x: np.ndarray, doy: np.ndarray, *, window: int, batch_size: int) -> np.ndarray:
    """The model over non-overlapping windows covering the tile (the last ones shifted inside)."""
    _, _, h, w = x.shape
    out = np.zeros((h, w), np.float32)
    positions = [(r, c) for r in window_starts(h, window, window) for c in window_starts(w, window, window)]
    doy_t = torch.from_numpy(doy.astype(np.float32))
    for i in range(0, len(positions), batch_size):
        batch = positions[i:i + batch_size]
        xb = torch.from_numpy(np.stack([x[:, :, r:r + window, c:c + window] for r, c in batch]))
        prob = model(xb, doy_t.expand(len(batch), -1)).softmax(dim=1)[:, 1].numpy()
        for (r, c), p in zip(batch, prob, strict=True):
            out[r:r + window, c:c + window] = p
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--dates", type=int, default=25)
    parser.add_argument("--width", type=int, help="model width (default: the demo config's)")
    parser.add_argument("--heads", type=int)
    parser.add_argument("--layers", type=int, help="temporal layers")
    args = parser.parse_args()
    config = load_config(str(REPO / "config.yaml"))
    predict, model_settings = config["predict"], dict(config["model"])
    for key, value in (("width", args.width), ("heads", args.heads), ("temporal_layers", args.layers)):
        if value:
            model_settings[key] = value
    cores = torch.get_num_threads()
    torch.manual_seed(0)
    bands = config["sits"]["bands"]
    model = SpatioTemporalNet(ModelConfig(in_bands=len(bands), n_dates=args.dates, **model_settings)).eval()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.dates, len(bands), args.tile, args.tile)).astype(np.float32)
    doy = np.linspace(60, 300, args.dates)
    pixels = args.tile * args.tile

    window, overlap, batch = predict["window"], predict["overlap"], predict["batch_size"]
    raw_forward(model, x[:, :, :window, :window], doy, window=window, batch_size=1)  # warm-up
    start = time.perf_counter()
    raw_forward(model, x, doy, window=window, batch_size=batch)
    raw = time.perf_counter() - start
    start = time.perf_counter()
    predict_probability(model, x, doy, window=window, overlap=overlap, batch_size=batch, progress=False)
    blended = time.perf_counter() - start
    print(f"inference, one {args.tile} x {args.tile} px tile, {args.dates} dates, {len(bands)} bands, "
          f"model width {model_settings['width']}, {cores} threads")
    print(f"  {f'raw, non-overlapping {window} px windows':<40}: {raw:6.1f} s  {pixels / raw / cores:8.0f} px/s/core")
    print(f"  {f'overlap {overlap} px + cosine blending':<40}: {blended:6.1f} s  {pixels / blended / cores:8.0f} px/s/core")
    print(f"  {'throughput ratio (blended / raw)':<40}: {raw / blended:6.2f}  (target >= 0.7)")

    size = 48
    crop = np.zeros((size, size), bool)
    crop[:, : size // 2] = True
    refl = (rng.uniform(0.02, 0.4, (args.dates, len(bands), size, size)) * 10000).astype(np.int16)
    times = np.datetime64("2022-12-31") + doy.astype(int)
    # the classifier's one-off fit to the frozen encoder (head_init: probe) is not a training step
    settings = dataclasses.replace(typed_settings(config, "demo", "train"), model=ModelSettings(**model_settings),
                                   steps=20, eval_every=1000, patience=1000, head_init="random",
                                   season_start=str(times[0] - 1))
    patch = settings.patch_size
    with tempfile.TemporaryDirectory() as tmp:
        starts = np.arange(0, size - patch + 1, 4)
        rows, cols = (a.ravel() for a in np.meshgrid(starts, starts, indexing="ij"))
        with PatchWriter(Path(tmp) / "p.nc", kind="train", times=times, bands=bands, size=patch, block="bench") as w:
            w.add(tile="bench", reflectance=refl, observed=np.ones((args.dates, size, size), bool),
                  labels=np.where(crop, 1, 0).astype(np.uint8), rows=rows, cols=cols)
        start = time.perf_counter()
        train(stores=[PatchStore.open(Path(tmp) / "p.nc")], settings=settings, pretrained=None,
              out_path=Path(tmp) / "m.pt", metrics_csv=Path(tmp) / "m.csv", curves_png=Path(tmp) / "m.png")
        seconds = time.perf_counter() - start
    trained = settings.steps * settings.batch_size * settings.patch_size ** 2
    print(f"training, {settings.steps} steps of {settings.batch_size} x {settings.patch_size}^2 px patches, "
          f"{args.dates} dates, both regularisers: {trained / seconds / cores:8.0f} px/s/core")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
