"""Self-supervised pretraining and weakly supervised training.

Pretraining (after Qin et al. 2025): pixel-date entries are masked independently with probability
`mask_ratio`, all bands of an entry together, only where the pixel is vegetated (NDVI above
`ndvi_threshold`); a date is left unmasked in a patch when fewer than 10 % of its pixels are
vegetated. Masked entries are replaced by a learnable token; the loss is the MSE of the
reconstructed (standardised) bands on masked entries only.

Training (after Wang et al. 2024): partial cross-entropy on consensus-labelled pixels (class
weighted), plus two regularisers on all pixels, whose exact published form is not public, so
cropmap uses the standard CRF-style forms:
- visual similarity: for pixel pairs at offsets within a 5x5 neighbourhood, a Gaussian affinity
  exp(-|f_i - f_j|^2 / (2 sigma^2)) on the standardised time series (mean squared difference over
  dates and bands) weights the disagreement 1 - p_i . p_j of their class probabilities;
- spatial aggregation: the squared difference between each pixel's class probabilities and their
  5x5 local mean, so cropland comes out as contiguous fields rather than speckle.

Before the first step the classifier is fitted to the frozen encoder (`fit_head`, the linear probe
of LP-FT): a random head on pretrained features starts from a higher loss than from scratch, and
its first gradients distort the features it should be reading.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from cropmap.dataset import (TileArrays, band_index, band_statistics, sample_patches, to_batch)
from cropmap.errors import TrainingError
from cropmap.io import atomic_path
from cropmap.model import ModelConfig, SpatioTemporalNet, pick_device

log = logging.getLogger(__name__)

__all__ = ["fit_head", "load_checkpoint", "masked_mse", "pretrain", "save_checkpoint", "spatial_aggregation_loss",
           "train", "vegetation_mask", "visual_similarity_loss"]

NEIGHBOUR_OFFSETS = [(0, 1), (1, 0), (1, 1), (1, -1), (0, 2), (2, 0), (2, 2), (2, -2)]


def _seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def vegetation_mask(patches: np.ndarray, bands: Sequence[str], *, threshold: float,
                    min_vegetated_share: float = 0.1) -> np.ndarray:
    """(B, T, H, W) bool: entries whose NDVI exceeds `threshold`, on dates where at least
    `min_vegetated_share` of the patch is vegetated. patches: (B, T, C, H, W) int16."""
    red = patches[:, :, band_index(bands, "B04", "red")].astype(np.float32)
    nir = patches[:, :, band_index(bands, "B08", "nir")].astype(np.float32)
    ndvi = (nir - red) / np.maximum(nir + red, 1)
    veg = ndvi > threshold
    share = veg.mean(axis=(2, 3), keepdims=True)
    return veg & (share >= min_vegetated_share)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE over masked entries only. pred/target (B, T, C, H, W); mask (B, T, H, W) bool."""
    m = mask[:, :, None].expand_as(pred)
    if not m.any():
        return pred.sum() * 0.0
    return F.mse_loss(pred[m], target[m])


def visual_similarity_loss(prob: torch.Tensor, features: torch.Tensor, *, sigma: float) -> torch.Tensor:
    """Affinity-weighted disagreement of neighbouring pixels' predictions.

    prob (B, K, H, W) class probabilities; features (B, F, H, W) standardised time series.
    """
    total = prob.new_zeros(())
    weight = prob.new_zeros(())
    h, w = prob.shape[-2:]
    for dy, dx in NEIGHBOUR_OFFSETS:
        if dy >= h or abs(dx) >= w:
            continue
        y0, y1 = slice(0, h - dy), slice(dy, h)
        x0, x1 = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        f_a, f_b = features[..., y0, x0], features[..., y1, x1]
        affinity = torch.exp(-((f_a - f_b) ** 2).mean(dim=1) / (2 * sigma**2)).detach()
        agreement = (prob[..., y0, x0] * prob[..., y1, x1]).sum(dim=1)
        total = total + (affinity * (1 - agreement)).sum()
        weight = weight + affinity.sum()
    return total / weight.clamp_min(1e-6)


def spatial_aggregation_loss(prob: torch.Tensor, *, kernel: int = 5) -> torch.Tensor:
    """Squared difference between each pixel's probabilities and their local mean."""
    local = F.avg_pool2d(prob, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    return ((prob - local) ** 2).sum(dim=1).mean()


def save_checkpoint(path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path) -> dict[str, Any]:
    """Load a checkpoint; `weights_only=True`, so a checkpoint file can never run code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise TrainingError(f"cannot load checkpoint {path}: {err}") from None


def _write_curve(csv_path, rows: list[dict[str, float]], png_path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["step"])
        writer.writeheader()
        writer.writerows(rows)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    keys = [k for k in (rows[0] if rows else {}) if k not in ("step", "seconds")]
    for key in keys:
        pts = [(r["step"], r[key]) for r in rows if r.get(key) not in (None, "")]
        if pts:
            ax.plot(*zip(*pts), label=key, marker="." if len(pts) < 50 else None)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _check_finite(loss: torch.Tensor, step: int, name: str, last_good: str | None) -> None:
    if not torch.isfinite(loss):
        raise TrainingError(
            f"{name}: loss became {loss.item()} at step {step}; last good checkpoint: {last_good or 'none'}"
        )


def pretrain(*, tiles: Sequence[TileArrays], settings: dict[str, Any], out_path, curve_csv, curve_png) -> dict:
    """Masked reconstruction pretraining; writes the checkpoint and the loss curve."""
    rng = _seed_everything(settings["seed"])
    device = pick_device()
    bands = tiles[0].bands
    mean, std = band_statistics(tiles, seed=settings["seed"])
    config = ModelConfig(in_bands=len(bands), **settings["model"])
    model = SpatioTemporalNet(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings["learning_rate"])
    rows: list[dict[str, float]] = []
    start = time.time()
    steps = settings["steps"]
    progress = tqdm(range(1, steps + 1), desc="pretrain", unit="step")
    for step in progress:
        patches, doys, _ = sample_patches(tiles, size=settings["patch_size"], count=settings["batch_size"], rng=rng)
        patches = np.stack(patches)
        veg = vegetation_mask(patches, bands, threshold=settings["ndvi_threshold"])
        mask_np = veg & (rng.uniform(size=veg.shape) < settings["mask_ratio"])
        x, doy = to_batch(patches, doys, mean, std, device)
        mask = torch.from_numpy(mask_np).to(device)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            recon = model.reconstruct(x, doy, mask)
            loss = masked_mse(recon.float(), x, mask)
            # the reference a model must beat: predicting each band's mean (0 once standardised)
            baseline = masked_mse(torch.zeros_like(x), x, mask)
        _check_finite(loss, step, "pretrain", None)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        rows.append({"step": step, "masked_mse": loss.item(), "mean_value_mse": baseline.item(),
                     "seconds": round(time.time() - start, 2)})
        progress.set_postfix(mse=f"{loss.item():.3f}", baseline=f"{baseline.item():.3f}")
    payload = {"kind": "pretrained", "model_config": config.to_dict(), "state_dict": model.state_dict(),
               "band_mean": torch.from_numpy(mean), "band_std": torch.from_numpy(std), "bands": list(bands),
               "settings": _plain(settings)}
    save_checkpoint(out_path, payload)
    if rows:
        _write_curve(curve_csv, rows, curve_png, "masked reconstruction (standardised MSE)")
    return {"final_mse": rows[-1]["masked_mse"] if rows else None}


def _plain(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings reduced to str/int/float/bool/list/dict so that weights_only loading accepts them."""
    import json

    return json.loads(json.dumps(settings))


def _f1(pred: np.ndarray, labels: np.ndarray) -> float:
    sel = labels != 255
    tp = np.sum((pred == 1) & (labels == 1) & sel)
    fp = np.sum((pred == 1) & (labels == 0) & sel)
    fn = np.sum((pred == 0) & (labels == 1) & sel)
    return float(2 * tp / max(2 * tp + fp + fn, 1))


def train(*, tiles: Sequence[TileArrays], settings: dict[str, Any], pretrained: dict[str, Any] | None,
          out_path, metrics_csv, curves_png) -> dict[str, Any]:
    """Weakly supervised training on consensus labels; keeps the best checkpoint on validation F1."""
    rng = _seed_everything(settings["seed"])
    device = pick_device()
    bands = tiles[0].bands
    n_labelled = [int(np.isin(t.labels, (0, 1)).sum()) for t in tiles]
    if sum(n_labelled) == 0:
        raise TrainingError(
            "train: no consensus-labelled pixel in the area; relax the consensus (consensus.min_voters, "
            "or drop the product that disagrees most) or check the products' crop classes"
        )
    if pretrained is not None:
        mean, std = pretrained["band_mean"].numpy(), pretrained["band_std"].numpy()
        config = ModelConfig(**pretrained["model_config"])
    else:
        mean, std = band_statistics(tiles, seed=settings["seed"])
        config = ModelConfig(in_bands=len(bands), **settings["model"])
    model = SpatioTemporalNet(config).to(device)
    if pretrained is not None:
        missing = model.load_state_dict(pretrained["state_dict"], strict=False)
        log.info("started from the pretrained encoder (missing: %s)", missing.missing_keys)
    val_frac = settings["validation_fraction"]
    train_rows = (0.0, 1.0 - val_frac)
    probe_loss = None
    if settings.get("head_init", "probe") == "probe":
        probe_loss = fit_head(model, tiles, settings=settings, mean=mean, std=std, device=device, rng=rng,
                              rows=train_rows)
    opt = torch.optim.Adam(model.parameters(), lr=settings["learning_rate"])
    counts = np.zeros(2)
    for t in tiles:
        h = t.labels.shape[0]
        part = t.labels[: int(train_rows[1] * h)]
        counts += [np.sum(part == 0), np.sum(part == 1)]
    class_weight = torch.tensor(counts.sum() / (2 * np.maximum(counts, 1)), dtype=torch.float32, device=device)
    val_batches = _validation_batches(tiles, settings, val_frac)
    size, bs = settings["patch_size"], settings["batch_size"]
    rows: list[dict[str, Any]] = []
    best = {"f1": -1.0, "step": 0, "state": None}
    since_best = 0
    start = time.time()
    progress = tqdm(range(1, settings["steps"] + 1), desc="train", unit="step")
    for step in progress:
        model.train()
        patches, doys, labels = sample_patches(tiles, size=size, count=bs, rng=rng, rows=train_rows)
        x, doy = to_batch(patches, doys, mean, std, device)
        y = torch.from_numpy(np.stack(labels).astype(np.int64)).to(device)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            logits = model(x, doy).float()
        prob = logits.softmax(dim=1)
        labelled = y != 255
        ce = (F.cross_entropy(logits, y, weight=class_weight, ignore_index=255)
              if labelled.any() else logits.sum() * 0.0)
        loss = ce
        sim = agg = torch.zeros((), device=device)
        if settings["similarity_weight"] > 0:
            feats = x.flatten(1, 2)  # (B, T*C, H, W)
            sim = visual_similarity_loss(prob, feats, sigma=settings["similarity_sigma"])
            loss = loss + settings["similarity_weight"] * sim
        if settings["aggregation_weight"] > 0:
            agg = spatial_aggregation_loss(prob)
            loss = loss + settings["aggregation_weight"] * agg
        _check_finite(loss, step, "train", f"best so far at step {best['step']}" if best["state"] else None)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        row = {"step": step, "loss": loss.item(), "cross_entropy": ce.item(), "similarity": sim.item(),
               "aggregation": agg.item(), "val_f1": "", "seconds": round(time.time() - start, 2)}
        if step % settings["eval_every"] == 0 or step == settings["steps"]:
            f1 = _validate(model, val_batches, mean, std, device)
            row["val_f1"] = f1
            if f1 > best["f1"]:
                best = {"f1": f1, "step": step, "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
                since_best = 0
            else:
                since_best += 1
            progress.set_postfix(loss=f"{loss.item():.3f}", val_f1=f"{f1:.3f}")
        rows.append(row)
        if since_best >= settings["patience"]:
            log.info("early stop at step %d: no better validation F1 for %d evaluations", step, since_best)
            break
    payload = {"kind": "classifier", "model_config": config.to_dict(), "state_dict": best["state"],
               "band_mean": torch.from_numpy(mean), "band_std": torch.from_numpy(std), "bands": list(bands),
               "best_step": best["step"], "val_f1": best["f1"], "probe_loss": probe_loss, "settings": _plain(settings)}
    save_checkpoint(out_path, payload)
    _write_curve(metrics_csv, rows, curves_png, "weakly supervised training")
    return {"best_step": best["step"], "val_f1": best["f1"], "steps_run": len(rows), "probe_loss": probe_loss}


@torch.no_grad()
def fit_head(model: SpatioTemporalNet, tiles: Sequence[TileArrays], *, settings: dict[str, Any], mean: np.ndarray,
             std: np.ndarray, device: torch.device, rng: np.random.Generator, rows: tuple[float, float],
             batches: int = 8, max_pixels: int = 20000) -> float | None:
    """Fit the classifier to the frozen encoder: a class-balanced logistic regression on the features
    of consensus-labelled pixels from `batches` training batches (the linear probe of LP-FT, Kumar et
    al. 2022). A random head on pretrained features starts with large, wrong logits, and its first
    gradients distort the features it should be reading. Returns the probe's weighted log loss, or
    None (head left as it is) without both classes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    model.eval()
    features, labels = [], []
    for _ in range(batches):
        patches, doys, patch_labels = sample_patches(tiles, size=settings["patch_size"], count=settings["batch_size"],
                                                     rng=rng, rows=rows)
        x, doy = to_batch(patches, doys, mean, std, device)
        y = np.stack(patch_labels).reshape(-1)
        f = model.features(x, doy).float().reshape(y.size, -1).cpu().numpy()
        features.append(f[y != 255])
        labels.append(y[y != 255])
    X, y = np.concatenate(features), np.concatenate(labels).astype(int)
    if X.shape[0] > max_pixels:
        keep = rng.choice(X.shape[0], max_pixels, replace=False)
        X, y = X[keep], y[keep]
    if len(np.unique(y)) < 2 or not np.isfinite(X).all():
        # a non-finite encoder is reported by the first training step, which names the step
        log.warning("head left random: the probe batches hold %s",
                    "a single class" if np.isfinite(X).all() else "non-finite features")
        return None
    centre, scale = X.mean(axis=0), X.std(axis=0) + 1e-6
    probe = LogisticRegression(class_weight="balanced", max_iter=1000).fit((X - centre) / scale, y)
    # back to raw features: w . (f - c) / s + b
    coef = probe.coef_ / scale
    intercept = probe.intercept_ - coef @ centre
    if coef.shape[0] == 1:  # binary: the two logits differ by w . f + b
        coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    model.classifier.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
    model.classifier.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))
    weights = len(y) / (2 * np.bincount(y, minlength=2)[y])
    loss = float(log_loss(y, probe.predict_proba((X - centre) / scale), sample_weight=weights))
    log.info("classifier fitted on frozen features of %d labelled pixels: log loss %.3f", len(y), loss)
    return loss


def _validation_batches(tiles, settings, val_frac, max_patches: int = 64) -> list[tuple]:
    """Fixed patches tiling the held-out block (the bottom rows of every tile), at most
    `max_patches` of them spread evenly, so validation stays a small share of training time."""
    size = settings["patch_size"]
    batches = []
    for t in tiles:
        _, _, h, w = t.reflectance.shape
        y0 = int((1 - val_frac) * h)
        for y in range(y0, h - size + 1, size):
            for x in range(0, w - size + 1, size):
                lab = t.labels[y:y + size, x:x + size]
                if np.any(lab != 255):
                    batches.append((t.reflectance[:, :, y:y + size, x:x + size], t.doy, lab))
    if not batches:
        log.warning("no consensus label in the validation block: validation F1 is taken on training patches")
        for t in tiles:
            _, _, h, w = t.reflectance.shape
            batches.append((t.reflectance[:, :, :size, :size], t.doy, t.labels[:size, :size]))
    if len(batches) > max_patches:
        keep = np.linspace(0, len(batches) - 1, max_patches).round().astype(int)
        batches = [batches[i] for i in keep]
    return batches


@torch.no_grad()
def _validate(model, batches, mean, std, device, batch_size: int = 16) -> float:
    model.eval()
    preds, labels = [], []
    for i in range(0, len(batches), batch_size):
        chunk = batches[i:i + batch_size]
        x, doy = to_batch([c[0] for c in chunk], [c[1] for c in chunk], mean, std, device)
        preds.append(model(x, doy).argmax(dim=1).cpu().numpy())
        labels.append(np.stack([c[2] for c in chunk]))
    return _f1(np.concatenate(preds), np.concatenate(labels))
