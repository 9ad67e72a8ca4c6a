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
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from cropmap.conventions import NODATA
from cropmap.learning.dataset import band_index, band_statistics, date_positions, standardise
from cropmap.errors import TrainingError
from cropmap.io import atomic_path
from cropmap.learning.model import ModelConfig, SpatioTemporalNet, autocast, pick_device
from cropmap.learning.patches import BudgetSampler, PatchDataset, PatchStore, SeasonBatches, SeasonPatches, split_validation
from cropmap.settings import PretrainSettings, TrainSettings, to_dict

log = logging.getLogger(__name__)

__all__ = ["balanced_threshold", "best_f1_threshold", "decision_threshold", "label_loss", "learning_rate_factor", "shifted_series", "dropped_dates", "fit_head", "load_checkpoint", "masked_mse", "pretrain", "save_checkpoint", "spatial_aggregation_loss",
           "train", "train_step", "vegetation_mask", "visual_similarity_loss"]

NEIGHBOUR_OFFSETS = [(0, 1), (1, 0), (1, 1), (1, -1), (0, 2), (2, 0), (2, 2), (2, -2)]


def _seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def vegetation_mask(patches: np.ndarray, bands: Sequence[str], *, threshold: float, observed: np.ndarray | None = None,
                    min_vegetated_share: float = 0.1) -> np.ndarray:
    """(B, T, H, W) bool: entries whose NDVI exceeds `threshold`, on dates where at least
    `min_vegetated_share` of the patch is vegetated. patches: (B, T, C, H, W) int16; `observed`
    (B, T, H, W) limits both to clear observations (gap-filled values are interpolations, not data)."""
    red = patches[:, :, band_index(bands, "B04", "red")].astype(np.float32)
    nir = patches[:, :, band_index(bands, "B08", "nir")].astype(np.float32)
    ndvi = (nir - red) / np.maximum(nir + red, 1)
    veg = ndvi > threshold
    if observed is not None:
        veg &= observed
    share = veg.mean(axis=(2, 3), keepdims=True)
    return veg & (share >= min_vegetated_share)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE over masked entries only. pred/target (B, T, C, H, W); mask (B, T, H, W) bool."""
    m = mask[:, :, None].expand_as(pred)
    if not m.any():
        return pred.sum() * 0.0
    return F.mse_loss(pred[m], target[m])


def visual_similarity_loss(prob: torch.Tensor, features: torch.Tensor, *, sigma: float, pairs: int = 0) -> torch.Tensor:
    """Affinity-weighted disagreement of the predictions of pixel pairs: neighbours within 2 px,
    and `pairs` random pairs drawn across the whole batch (other fields, other patches), so that a
    pixel where the products disagree is pulled towards the labelled pixels that look like it.

    prob (B, K, H, W) class probabilities; features (B, F, H, W) standardised time series.
    """
    total = prob.new_zeros(())
    weight = prob.new_zeros(())

    def add(f_a, f_b, p_a, p_b):
        nonlocal total, weight
        affinity = torch.exp(-((f_a - f_b) ** 2).mean(dim=1) / (2 * sigma**2)).detach()
        agreement = (p_a * p_b).sum(dim=1)
        total = total + (affinity * (1 - agreement)).sum()
        weight = weight + affinity.sum()

    h, w = prob.shape[-2:]
    for dy, dx in NEIGHBOUR_OFFSETS:
        if dy >= h or abs(dx) >= w:
            continue
        y0, y1 = slice(0, h - dy), slice(dy, h)
        x0, x1 = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        add(features[..., y0, x0], features[..., y1, x1], prob[..., y0, x0], prob[..., y1, x1])
    if pairs:
        flat_f = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
        flat_p = prob.permute(0, 2, 3, 1).reshape(-1, prob.shape[1])
        a, b = torch.randint(0, flat_p.shape[0], (2, pairs), device=prob.device)
        add(flat_f[a], flat_f[b], flat_p[a], flat_p[b])
    return total / weight.clamp_min(1e-6)


def spatial_aggregation_loss(prob: torch.Tensor, *, kernel: int = 5) -> torch.Tensor:
    """Squared difference between each pixel's probabilities and their local mean."""
    local = F.avg_pool2d(prob, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    return ((prob - local) ** 2).sum(dim=1).mean()


def label_loss(logits: torch.Tensor, labels: torch.Tensor, *, class_weight: torch.Tensor, kind: str = "cross_entropy",
               q: float = 0.7) -> torch.Tensor:
    """Class-weighted loss on the labelled pixels (labels != 255) of logits (B, K, H, W):
    cross-entropy, or the generalised cross-entropy (1 - p_y^q) / q (Zhang and Sabuncu 2018), whose
    cost of a confidently wrong label is bounded by 1 / q instead of growing without limit."""
    if kind == "cross_entropy":
        return F.cross_entropy(logits, labels, weight=class_weight, ignore_index=NODATA)
    labelled = labels != NODATA
    target = labels.clamp_max(logits.shape[1] - 1)
    weight = class_weight[target] * labelled
    p_y = logits.softmax(dim=1).gather(1, target[:, None])[:, 0]
    loss = (1 - p_y.clamp_min(1e-6) ** q) / q
    return (loss * weight).sum() / weight.sum().clamp_min(1e-6)


def supervised_loss(logits: torch.Tensor, labels: torch.Tensor, own: torch.Tensor, *, class_weight: torch.Tensor,
                    own_weight: float, kind: str = "cross_entropy", q: float = 0.7) -> torch.Tensor:
    """The loss on the consensus pixels plus `own_weight` times the mean loss on one's own labels
    (`own`, (B, H, W) bool). Two means, not one: a point of one's own is one pixel among some
    thousand consensus pixels of its patch, so weighed per pixel it would hardly count."""
    consensus = labels.masked_fill(own, NODATA)
    loss = (label_loss(logits, consensus, class_weight=class_weight, kind=kind, q=q)
            if (consensus != NODATA).any() else logits.sum() * 0.0)
    mine = own & (labels != NODATA)
    if mine.any():
        loss = loss + own_weight * label_loss(logits, labels.masked_fill(~mine, NODATA), class_weight=class_weight,
                                              kind=kind, q=q)
    return loss


def shifted_series(x: torch.Tensor, *, max_shift: float) -> torch.Tensor:
    """Each patch's series (B, T, C, H, W) shifted in time by a random number of dates, uniform in
    [-max_shift, max_shift] (torch's generator), read between two dates by linear interpolation and
    the first or last date repeated at the ends: a crop sown a few days earlier or later."""
    b, t = x.shape[:2]
    shift = (torch.rand(b, 1, device=x.device) * 2 - 1) * max_shift
    position = (torch.arange(t, device=x.device, dtype=x.dtype)[None] - shift).clamp(0, t - 1)  # (B, T)
    below = position.floor().long()
    above = (below + 1).clamp_max(t - 1)
    weight = (position - below)[:, :, None, None, None]

    def at(index):
        return torch.gather(x, 1, index[:, :, None, None, None].expand_as(x))

    return at(below) * (1 - weight) + at(above) * weight


def dropped_dates(x: torch.Tensor, *, rate: float) -> torch.Tensor:
    """The standardised series (B, T, C, H, W) with each pixel-date, all its bands together, set to
    the bands' means (0) with probability `rate` (torch's generator)."""
    keep = torch.rand(x.shape[0], x.shape[1], 1, *x.shape[3:], device=x.device) >= rate
    return x * keep


def learning_rate_factor(step: int, steps: int, schedule: str) -> float:
    """The learning rate's factor at `step` (1-based) of `steps`: 1 (constant), or a linear warm-up
    over the first 5 % of the steps then a cosine decay towards 0."""
    if schedule == "constant":
        return 1.0
    warmup = max(1, round(0.05 * steps))
    if step <= warmup:
        return step / warmup
    return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(steps - warmup, 1)))


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
    from cropmap.plotting import pyplot, save_png

    plt = pyplot()

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
    save_png(fig, png_path, tight=False)


def _check_finite(loss: torch.Tensor, step: int, name: str, last_good: str | None) -> None:
    if not torch.isfinite(loss):
        raise TrainingError(
            f"{name}: loss became {loss.item()} at step {step}; last good checkpoint: {last_good or 'none'}"
        )


def _loader(dataset: PatchDataset, *, batch_size: int, draws: int, seed: int, workers: int, device: torch.device):
    """Batches of `draws` patches drawn with replacement (a fixed budget), read by `workers` processes."""
    sampler = BudgetSampler(len(dataset), draws, max_offset=dataset.size - dataset.crop, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=device.type == "cuda")


class _WeightAverage:
    """An exponential moving average of a model's weights (Polyak averaging): with weak labels and a
    few patches per batch, the weights of any single step carry that step's noise; their average
    over the last ~1 / (1 - decay) steps does not. Its decay ramps up as (1 + n) / (10 + n) over the
    first steps, so the average does not keep the random start. `model` is what to validate and
    save: the average, or the trained model itself when `decay` is 0."""

    def __init__(self, model: torch.nn.Module, decay: float):
        import copy

        self.decay, self.updates = decay, 0
        self.model = copy.deepcopy(model) if decay > 0 else model
        self._trained = model

    @torch.no_grad()
    def update(self) -> None:
        if self.model is self._trained:
            return
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for averaged, current in zip(self.model.state_dict().values(), self._trained.state_dict().values()):
            if averaged.dtype.is_floating_point:
                averaged.lerp_(current, 1 - decay)
            else:
                averaged.copy_(current)


class _Optimiser:
    """Adam with gradient clipping at 5, through the GradScaler mixed precision needs (fp16 only;
    a disabled scaler passes everything through)."""

    def __init__(self, model: torch.nn.Module, lr: float, scaler: torch.amp.GradScaler):
        self.model, self.scaler = model, scaler
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)

    def set_learning_rate(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad()
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.scaler.step(self.opt)
        self.scaler.update()


def _dates(dataset: PatchDataset, season_start: str, config: ModelConfig, device: torch.device) -> torch.Tensor:
    """(1, T) the composites' dates as the model reads them (days since the season started)."""
    positions = date_positions(dataset.times, season_start=season_start, encoding=config.date_encoding)
    return torch.from_numpy(positions).to(device)[None]


def _inputs(batch: dict[str, torch.Tensor], mean: torch.Tensor, std: torch.Tensor, doy: torch.Tensor,
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised reflectance (B, T, C, H, W) and the dates (B, T) of a batch, on `device`."""
    x = standardise(batch["reflectance"].to(device, non_blocking=True), mean, std)
    return x, doy.expand(x.shape[0], -1)


def pretrain(*, stores: Sequence[PatchStore], settings: PretrainSettings, out_path, curve_csv, curve_png,
             workers: int = 0, other_seasons: Sequence[tuple[str, Sequence[PatchStore]]] = ()) -> dict:
    """Masked reconstruction pretraining on pretraining patches; writes the checkpoint and the loss curve.

    `settings.steps` batches of `batch_size` patches, drawn with replacement: the cost does not
    grow with the area. `other_seasons` adds the patches of other areas or seasons, each as (its
    season's first day, its stores); a batch is drawn from one of them, in proportion to their patches."""
    rng = _seed_everything(settings.seed)
    device = pick_device()
    season_starts = [settings.season_start, *(start for start, _ in other_seasons)]
    dataset = SeasonPatches([PatchDataset(season, crop=settings.patch_size)
                             for season in (stores, *(more for _, more in other_seasons))])
    bands = dataset.bands
    mean, std = band_statistics(dataset, seed=settings.seed)
    mean_t, std_t = torch.from_numpy(mean).to(device), torch.from_numpy(std).to(device)
    config = ModelConfig(in_bands=len(bands), **{**dataclasses.asdict(settings.model), "series_skip": False,
                                                   "series_hidden": 0})
    season_dates = [_dates(group, start, config, device) for group, start in zip(dataset.groups, season_starts)]
    model = SpatioTemporalNet(config).to(device)
    mixed_precision, scaler = autocast(device)
    opt = _Optimiser(model, settings.learning_rate, scaler)
    rows: list[dict[str, float]] = []
    start = time.time()
    steps = settings.steps
    loader = DataLoader(dataset, batch_sampler=SeasonBatches(dataset, steps=steps, batch_size=settings.batch_size,
                                                             seed=settings.seed),
                        num_workers=workers, pin_memory=device.type == "cuda")
    progress = tqdm(loader, total=steps, desc="pretrain", unit="step")
    for step, batch in enumerate(progress, start=1):
        # only clear observations are masked and scored: gap-filled values are straight lines
        observed = batch["observed"].numpy() if settings.observed_only else None
        veg = vegetation_mask(batch["reflectance"].numpy(), bands, threshold=settings.ndvi_threshold, observed=observed)
        mask_np = veg & (rng.uniform(size=veg.shape) < settings.mask_ratio)
        x, doys = _inputs(batch, mean_t, std_t, season_dates[int(batch["group"][0])], device)
        mask = torch.from_numpy(mask_np).to(device)
        with mixed_precision:
            recon = model.reconstruct(x, doys, mask)
        loss = masked_mse(recon.float(), x, mask)
        # the reference a model must beat: predicting each band's mean (0 once standardised)
        baseline = masked_mse(torch.zeros_like(x), x, mask)
        _check_finite(loss, step, "pretrain", None)
        opt.step(loss)
        rows.append({"step": step, "masked_mse": loss.item(), "mean_value_mse": baseline.item(),
                     "seconds": round(time.time() - start, 2)})
        progress.set_postfix(mse=f"{loss.item():.3f}", baseline=f"{baseline.item():.3f}")
    payload = {"kind": "pretrained", "model_config": config.to_dict(), "state_dict": model.state_dict(),
               "band_mean": torch.from_numpy(mean), "band_std": torch.from_numpy(std), "bands": list(bands),
               "settings": to_dict(settings), "season_starts": season_starts}
    save_checkpoint(out_path, payload)
    if rows:
        _write_curve(curve_csv, rows, curve_png, "masked reconstruction (standardised MSE)")
    return {"final_mse": rows[-1]["masked_mse"] if rows else None, "patches": len(dataset), "seasons": len(dataset.groups)}


def _f1(pred: np.ndarray, labels: np.ndarray) -> float:
    sel = labels != NODATA
    tp = np.sum((pred == 1) & (labels == 1) & sel)
    fp = np.sum((pred == 1) & (labels == 0) & sel)
    fn = np.sum((pred == 0) & (labels == 1) & sel)
    return float(2 * tp / max(2 * tp + fp + fn, 1))


def train(*, stores: Sequence[PatchStore], settings: TrainSettings, pretrained: dict[str, Any] | None,
          out_path, metrics_csv, curves_png, workers: int = 0) -> dict[str, Any]:
    """Weakly supervised training on the consensus labels of training patches; keeps the best
    checkpoint on the F1 of held-out blocks (`patches.split_validation`).

    `settings.steps` batches of `batch_size` patches, drawn with replacement from the training
    blocks: the cost does not grow with the area."""
    rng = _seed_everything(settings.seed)
    device = pick_device()
    dataset = PatchDataset(stores, crop=settings.patch_size) if sum(map(len, stores)) else None
    if dataset is None or dataset.class_pixels().sum() == 0:
        raise TrainingError(
            "train: no consensus-labelled pixel in the area; relax the consensus (consensus.min_voters, "
            "or drop the product that disagrees most) or check the products' crop classes"
        )
    bands = dataset.bands
    own_checks = dataset.with_check()
    if len(own_checks):
        # held-out labels of one's own choose the checkpoint: no consensus needs holding out
        train_at, val_at, unit = np.arange(len(dataset)), own_checks, "own label"
    else:
        train_at, val_at, unit = split_validation(dataset, fraction=settings.validation_fraction, seed=settings.seed)
    training, validation = dataset.subset(train_at), dataset.subset(val_at)
    log.info("%d training patches; %s", len(training),
             f"validation on {len(validation)} patches of held-out {unit}s" if len(validation) else "none held out")
    # the series skip is the classifier's, not the encoder's: training decides it
    skip = {"series_skip": settings.model.series_skip, "series_hidden": settings.model.series_hidden,
            "n_dates": len(dataset.times) if settings.model.series_skip else 0}
    if pretrained is not None:
        check_pretrained_fits(pretrained, bands=bands, model=settings.model)
        mean, std = pretrained["band_mean"].numpy(), pretrained["band_std"].numpy()
        config = ModelConfig(**{**pretrained["model_config"], **skip})
    else:
        mean, std = band_statistics(training, seed=settings.seed)
        config = ModelConfig(in_bands=len(bands), **{**dataclasses.asdict(settings.model), **skip})
    mean_t, std_t = torch.from_numpy(mean).to(device), torch.from_numpy(std).to(device)
    doy = _dates(dataset, settings.season_start, config, device)
    days = np.asarray(dataset.times, dtype="datetime64[D]").astype(np.int64)
    date_spacing = float(np.median(np.diff(days))) if len(days) > 1 else 1.0  # days between composites
    model = SpatioTemporalNet(config).to(device)
    if pretrained is not None:
        missing = model.load_state_dict(pretrained["state_dict"], strict=False)
        log.info("started from the pretrained encoder (missing: %s)", missing.missing_keys)
    bs = settings.batch_size
    probe_loss = None
    if settings.head_init == "probe":
        probe_batches = _loader(training, batch_size=bs, draws=8 * bs, seed=settings.seed + 1, workers=workers,
                                device=device)
        probe_loss = fit_head(model, probe_batches, mean=mean_t, std=std_t, doy=doy, device=device, rng=rng)
    mixed_precision, scaler = autocast(device)
    opt = _Optimiser(model, settings.learning_rate, scaler)
    average = _WeightAverage(model, settings.weight_averaging)
    counts = training.class_pixels()
    class_weight = torch.tensor(counts.sum() / (2 * np.maximum(counts, 1)), dtype=torch.float32, device=device)
    if not len(validation):
        (log.warning if settings.validation_fraction > 0 else log.info)(
            "no held-out patch: validation F1 is taken on training patches")
        validation = training
    val_items = _validation_items(validation, labels="check" if unit == "own label" else "labels",
                                  max_patches=1024 if unit == "own label" else 64)
    rows: list[dict[str, Any]] = []
    best = {"f1": -1.0, "step": 0, "state": None}
    since_best = 0
    start = time.time()
    loader = _loader(training, batch_size=bs, draws=settings.steps * bs, seed=settings.seed, workers=workers,
                     device=device)
    progress = tqdm(loader, total=settings.steps, desc="train", unit="step")
    for step, batch in enumerate(progress, start=1):
        model.train()
        x, doys = _inputs(batch, mean_t, std_t, doy, device)
        if settings.time_shift_days:
            x = shifted_series(x, max_shift=settings.time_shift_days / date_spacing)
        if settings.date_dropout:
            x = dropped_dates(x, rate=settings.date_dropout)
        y = batch["labels"].to(device)
        with mixed_precision:
            logits = model(x, doys).float()
        prob = logits.softmax(dim=1)
        ce = supervised_loss(logits, y, batch["own"].to(device), class_weight=class_weight,
                             own_weight=settings.own_label_weight, kind=settings.label_loss, q=settings.gce_q)
        loss = ce
        sim = agg = torch.zeros((), device=device)
        if settings.similarity_weight > 0:
            feats = x.flatten(1, 2)  # (B, T*C, H, W)
            sim = visual_similarity_loss(prob, feats, sigma=settings.similarity_sigma,
                                         pairs=settings.similarity_pairs)
            loss = loss + settings.similarity_weight * sim
        if settings.aggregation_weight > 0:
            agg = spatial_aggregation_loss(prob)
            loss = loss + settings.aggregation_weight * agg
        _check_finite(loss, step, "train", f"best so far at step {best['step']}" if best["state"] else None)
        opt.set_learning_rate(settings.learning_rate * learning_rate_factor(step, settings.steps, settings.lr_schedule))
        opt.step(loss)
        average.update()
        row = {"step": step, "loss": loss.item(), "cross_entropy": ce.item(), "similarity": sim.item(),
               "aggregation": agg.item(), "val_f1": "", "seconds": round(time.time() - start, 2)}
        if step % settings.eval_every == 0 or step == settings.steps:
            f1 = _validate(average.model, val_items, mean_t, std_t, doy, device)
            row["val_f1"] = f1
            if f1 > best["f1"]:
                best = {"f1": f1, "step": step,
                        "state": {k: v.detach().clone() for k, v in average.model.state_dict().items()}}
                since_best = 0
            else:
                since_best += 1
            progress.set_postfix(loss=f"{loss.item():.3f}", val_f1=f"{f1:.3f}")
        rows.append(row)
        if settings.keep == "best" and since_best >= settings.patience:
            log.info("early stop at step %d: no better validation F1 for %d evaluations", step, since_best)
            break
    if settings.keep == "last":
        # the schedule's end, not the evaluation the held-out consensus liked best: those pixels are
        # the easy ones, and a single held-out tile makes their F1 noisy (README: real labels)
        best = {"f1": rows[-1]["val_f1"] if rows[-1]["val_f1"] != "" else best["f1"], "step": len(rows),
                "state": {k: v.detach().clone() for k, v in average.model.state_dict().items()}}
    model.load_state_dict(best["state"])
    threshold = decision_threshold(settings.calibration, model=model, items=val_items, mean=mean_t, std=std_t,
                                   doy=doy, device=device, crop_share=float(counts[1] / max(counts.sum(), 1)))
    log.info("decision threshold %.3f (%s)", threshold, settings.calibration)
    payload = {"kind": "classifier", "model_config": config.to_dict(), "state_dict": best["state"],
               "band_mean": torch.from_numpy(mean), "band_std": torch.from_numpy(std), "bands": list(bands),
               "best_step": best["step"], "val_f1": best["f1"], "probe_loss": probe_loss, "threshold": threshold,
               "validation_unit": unit, "settings": to_dict(settings)}
    save_checkpoint(out_path, payload)
    _write_curve(metrics_csv, rows, curves_png, "weakly supervised training")
    return {"best_step": best["step"], "val_f1": best["f1"], "steps_run": len(rows), "probe_loss": probe_loss,
            "threshold": threshold, "training_patches": len(training), "validation_patches": len(val_items),
            "validation_unit": unit}


def decision_threshold(method: str, *, model: SpatioTemporalNet, items, mean, std, doy, device,
                       crop_share: float) -> float:
    """The crop probability above which a pixel is mapped as crop.

    The cross-entropy weights the classes equally, which moves the model's 0.5 away from the area's
    own balance of classes:
    - `none`: 0.5;
    - `prior`: undo the weighting with the labels' crop share (Bayes' rule: a probability p under
      equal priors is p * s / (p * s + (1 - p) * (1 - s)) under the crop share s, which is 0.5 at
      p = 1 - s);
    - `threshold`: the threshold of best F1 on the held-out consensus pixels (the middle of the
      range that reaches it: the easy pixels leave a plateau);
    - `balanced`: the threshold of best Youden's J there (independent of the labels' crop share)."""
    if method == "none":
        return 0.5
    if method == "prior":
        return float(np.clip(1 - crop_share, 0.05, 0.95))
    probability, labels = _validation_probabilities(model, items, mean, std, doy, device)
    if method == "balanced":
        return balanced_threshold(probability, labels)
    return best_f1_threshold(probability, labels)


def _best_threshold(probability: np.ndarray, labels: np.ndarray, score) -> float:
    """The threshold (0.05 ... 0.95) of best `score(predicted, crop)` on the labelled pixels (1 / 0;
    255 ignored): the middle of the thresholds within 0.001 of the best, since easy pixels leave a
    plateau; 0.5 when the labels hold one class."""
    labelled = labels != NODATA
    p, y = probability[labelled], labels[labelled] == 1
    if not y.any() or y.all():
        return 0.5
    candidates = np.round(np.arange(0.05, 0.951, 0.01), 2)
    scores = np.array([score(p >= t, y) for t in candidates])
    return float(np.median(candidates[scores >= scores.max() - 1e-3]))


def best_f1_threshold(probability: np.ndarray, labels: np.ndarray) -> float:
    """The threshold of best crop F1 on the labelled pixels (`_best_threshold`)."""
    return _best_threshold(probability, labels, lambda pred, y: 2 * np.sum(pred & y) / max(np.sum(pred) + np.sum(y), 1))


def balanced_threshold(probability: np.ndarray, labels: np.ndarray) -> float:
    """The threshold of best Youden's J, true-positive rate minus false-positive rate, on the
    labelled pixels (`_best_threshold`): unlike F1 it does not move with the labels' share of crop,
    so a consensus that leans towards crop does not pull the map further that way."""
    return _best_threshold(probability, labels, lambda pred, y: np.mean(pred[y]) - np.mean(pred[~y]))


@torch.no_grad()
def fit_head(model: SpatioTemporalNet, batches, *, mean: torch.Tensor, std: torch.Tensor, doy: torch.Tensor,
             device: torch.device, rng: np.random.Generator, max_pixels: int = 20000) -> float | None:
    """Fit the classifier to the frozen encoder: a class-balanced logistic regression on the features
    of consensus-labelled pixels of `batches` (the linear probe of LP-FT, Kumar et al. 2022). A
    random head on pretrained features starts with large, wrong logits, and its first gradients
    distort the features it should be reading. Returns the probe's weighted log loss, or None (head
    left as it is) without both classes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    model.eval()
    features, labels = [], []
    for batch in batches:
        x, doys = _inputs(batch, mean, std, doy, device)
        y = batch["labels"].numpy().reshape(-1)
        f = model.features(x, doys).float().reshape(y.size, -1).cpu().numpy()
        features.append(f[y != NODATA])
        labels.append(y[y != NODATA])
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


def _validation_items(dataset: PatchDataset, *, labels: str = "labels", max_patches: int = 64) -> list[dict[str, np.ndarray]]:
    """Centred windows of at most `max_patches` held-out patches spread evenly over them, read once,
    so validation stays a small share of training time whatever the area; their `labels` are the
    item's `labels` (held-out consensus) or `check` (held-out labels of one's own)."""
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(max_patches, len(dataset))).round().astype(int))
    return [{**item, "labels": item[labels]} for item in (dataset[int(p)] for p in picks)]


@torch.no_grad()
def _validation_probabilities(model, items, mean, std, doy, device, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Crop probability and consensus label of every pixel of the validation `items`."""
    model.eval()
    probability, labels = [], []
    for i in range(0, len(items), batch_size):
        chunk = items[i:i + batch_size]
        batch = {"reflectance": torch.from_numpy(np.stack([c["reflectance"] for c in chunk]))}
        x, doys = _inputs(batch, mean, std, doy, device)
        probability.append(model(x, doys).float().softmax(dim=1)[:, 1].cpu().numpy())
        labels.append(np.stack([c["labels"] for c in chunk]))
    return np.concatenate(probability), np.concatenate(labels)


def _validate(model, items, mean, std, doy, device) -> float:
    """F1 of the crop class on the held-out consensus pixels (at probability 0.5)."""
    probability, labels = _validation_probabilities(model, items, mean, std, doy, device)
    return _f1((probability >= 0.5).astype(np.uint8), labels)


# what an encoder pretrained elsewhere must share with the area it is fine-tuned on
_ENCODER_KEYS = ("width", "heads", "temporal_layers", "attention_pool", "date_encoding")


def check_pretrained_fits(pretrained: dict[str, Any], *, bands: Sequence[str], model) -> None:
    """Refuse, in one line, a pretrained checkpoint whose bands, model size or date encoding are not
    the area's (`model`: its ModelSettings)."""
    differences = []
    if list(pretrained["bands"]) != list(bands):
        differences.append(f"bands {list(pretrained['bands'])} (the area's: {list(bands)})")
    for key in _ENCODER_KEYS:
        theirs, ours = pretrained["model_config"].get(key), getattr(model, key)
        if theirs != ours:
            differences.append(f"{key} {theirs} (model.{key}: {ours})")
    if differences:
        raise TrainingError("the pretrained checkpoint does not fit this area: it has " + "; ".join(differences))


def train_step(*, settings: TrainSettings, stores: Sequence[PatchStore], pretrained_path, out_path, metrics_csv,
               curves_png, workers: int = 0) -> dict[str, Any]:
    """The `train` step: `train`, from the pretrained checkpoint at `pretrained_path` when
    `settings.use_pretrained` (else from scratch)."""
    pretrained = load_checkpoint(pretrained_path) if pretrained_path and settings.use_pretrained else None
    return train(stores=stores, settings=settings, pretrained=pretrained, out_path=out_path, metrics_csv=metrics_csv,
                 curves_png=curves_png, workers=workers)
