"""STCLN-style spatio-temporal network (after Qin et al. 2025), sized for CPU by default.

- per-date spatial branch: a 1x1 band embedding, then a residual double 3x3 conv block (shared
  weights over dates, no downsampling);
- temporal branch: a transformer encoder along time at every pixel, with a sinusoidal encoding of
  the composite's date in days since the season started (not its index, so series with gaps line
  up; not the day of the year, which restarts in a season across New Year);
- spatio-temporal attention: queries from the temporal features (max-pooled over time), keys from
  the spatial-branch features, values from the temporal features; keys and values are average-
  pooled by `attention_pool` so memory grows with area / pool**2, not with area**2; the output is
  gamma * attention + value, gamma learnt from 0;
- heads: a per pixel-date linear reconstruction of the bands from the temporal features plus the
  attention's spatial context (masked pretraining, which thus trains the attention too) and a
  per-pixel linear classifier (crop / non-crop); with `series_skip`, the classifier's features
  also get a map of the pixel's whole standardised series, linear or a small perceptron
  (`series_hidden`; added at training time: it is not part of the pretrained encoder).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ModelConfig", "SpatioTemporalNet", "autocast", "doy_encoding", "pick_device"]

# pixel series per call of the temporal encoder at inference: 1,024 x 25 dates x width 16 floats of
# activations fit in a core's L2 cache; whole windows at once ran 2.2x slower (issue 22)
_INFERENCE_CHUNK = 1024


@dataclass(frozen=True)
class ModelConfig:
    in_bands: int
    width: int = 32
    heads: int = 4
    temporal_layers: int = 1
    attention_pool: int = 4
    n_classes: int = 2
    # "season": days since the season started; "day_of_year" restarts on 1 January (kept for the ablation)
    date_encoding: str = "season"
    # pretraining reconstructs from the temporal features plus the attention's spatial context
    attention_in_reconstruction: bool = True
    # the classifier also reads a linear map of each pixel's whole standardised series (n_dates x
    # in_bands values), which max-pooling over time cannot pass on date by date
    series_skip: bool = False
    # hidden units of a two-layer perceptron on the series (0: the linear map)
    series_hidden: int = 0
    n_dates: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def pick_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def doy_encoding(doy: torch.Tensor, width: int) -> torch.Tensor:
    """Sinusoidal encoding of dates in days (since the season started). doy: (B, T) float -> (B, T, width)."""
    half = width // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=doy.device, dtype=torch.float32) / half)
    angles = doy[..., None].float() * freqs
    enc = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if enc.shape[-1] < width:
        enc = F.pad(enc, (0, width - enc.shape[-1]))
    return enc


class SpatioTemporalNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        d = config.width
        self.embed = nn.Conv2d(config.in_bands, d, 1)
        self.mask_token = nn.Parameter(torch.zeros(d))
        groups = math.gcd(8, d)
        self.spatial = nn.Sequential(
            nn.Conv2d(d, d, 3, padding=1, padding_mode="replicate"), nn.GroupNorm(groups, d), nn.GELU(),
            nn.Conv2d(d, d, 3, padding=1, padding_mode="replicate"), nn.GroupNorm(groups, d), nn.GELU(),
        )
        layer = nn.TransformerEncoderLayer(d, config.heads, dim_feedforward=2 * d, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.temporal = nn.TransformerEncoder(layer, config.temporal_layers, enable_nested_tensor=False)
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.reconstruction_head = nn.Linear(d, config.in_bands)
        self.classifier = nn.Linear(d, config.n_classes)
        if config.series_skip:
            if config.n_dates < 1:
                raise ValueError("series_skip needs n_dates")
            inputs = config.n_dates * config.in_bands
            self.series = (nn.Linear(inputs, d) if not config.series_hidden else
                           nn.Sequential(nn.Linear(inputs, config.series_hidden), nn.GELU(),
                                         nn.Linear(config.series_hidden, config.series_hidden), nn.GELU(),
                                         nn.Linear(config.series_hidden, d)))

    def encode(self, x: torch.Tensor, doy: torch.Tensor, mask: torch.Tensor | None = None):
        """x: (B, T, C, H, W) normalised; doy: (B, T); mask: (B, T, H, W) bool of entries to hide.

        Returns temporal features (B, H, W, T, d) and spatial features (B, T, d, H, W).
        """
        b, t, c, h, w = x.shape
        d = self.config.width
        e = self.embed(x.reshape(b * t, c, h, w))
        if mask is not None:
            m = mask.reshape(b * t, 1, h, w)
            e = torch.where(m, self.mask_token.view(1, d, 1, 1).to(e.dtype), e)
        s = e + self.spatial(e)
        seq = s.reshape(b, t, d, h, w).permute(0, 3, 4, 1, 2).reshape(b * h * w, t, d)
        pos = doy_encoding(doy, d)  # (B, T, d)
        seq = seq + pos[:, None, None].expand(b, h, w, t, d).reshape(b * h * w, t, d)
        tfeat = self.temporal(seq).reshape(b, h, w, t, d)
        return tfeat, s.reshape(b, t, d, h, w)

    def reconstruct(self, x: torch.Tensor, doy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Reconstructed bands (B, T, C, H, W) from the input with `mask`ed entries hidden.

        The spatial context of the attention block is added to every date's temporal features, so
        that pretraining trains the query, key and gamma the classifier reads as well."""
        tfeat, s = self.encode(x, doy, mask)
        if self.config.attention_in_reconstruction:
            tfeat = tfeat + self._spatial_context(tfeat.max(dim=3).values, s)[:, :, :, None, :]
        return self.reconstruction_head(tfeat).permute(0, 3, 4, 1, 2)

    def forward(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        """Class logits (B, n_classes, H, W)."""
        return self.classifier(self.features(x, doy)).permute(0, 3, 1, 2)

    def features(self, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
        """The per-pixel features (B, H, W, d) the classifier reads."""
        if torch.is_grad_enabled():
            tfeat, s = self.encode(x, doy)
            value = tfeat.max(dim=3).values
        else:
            value, s = self._encode_pooled(x, doy)
        features = value + self._spatial_context(value, s)
        if self.config.series_skip:
            b, t, c, h, w = x.shape
            if t != self.config.n_dates:
                raise ValueError(f"the model reads series of {self.config.n_dates} dates, not {t}")
            features = features + self.series(x.permute(0, 3, 4, 1, 2).reshape(b, h, w, t * c))
        return features

    def _encode_pooled(self, x: torch.Tensor, doy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`encode`'s temporal features max-pooled over time (B, H, W, d), and its spatial features,
        without holding every pixel-date's features at once: the temporal encoder runs on chunks of
        `_INFERENCE_CHUNK` pixel series, whose activations stay in the CPU's cache (inference only;
        the same numbers as `encode`)."""
        b, t, c, h, w = x.shape
        d = self.config.width
        # channels-last: oneDNN's convolutions run 1.5x faster so, and each pixel's features are
        # then contiguous for the temporal encoder
        e = self.embed(x.reshape(b * t, c, h, w).contiguous(memory_format=torch.channels_last))
        s = (e + self.spatial(e)).permute(0, 2, 3, 1).reshape(b, t, h, w, d)  # no copy
        pos = doy_encoding(doy, d)
        value = torch.empty(b, h * w, d, dtype=s.dtype, device=s.device)
        # a GPU wants whole windows: chunks would only add kernel launches
        chunk = _INFERENCE_CHUNK if s.device.type == "cpu" else h * w
        for i in range(b):
            seq = s[i].permute(1, 2, 0, 3).reshape(h * w, t, d) + pos[i]
            for start in range(0, h * w, chunk):
                value[i, start:start + chunk] = self.temporal(seq[start:start + chunk]).amax(dim=1)
        return value.reshape(b, h, w, d), s.permute(0, 1, 4, 2, 3)

    def _spatial_context(self, value: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """gamma * attention (B, H, W, d): queries from the temporal features max-pooled over time
        (`value`), keys from the spatial branch `s` (B, T, d, H, W), values from `value`, both
        average-pooled by `attention_pool` (memory grows with area / pool**2)."""
        b, h, w, d = value.shape
        pool = min(self.config.attention_pool, h, w)
        keys = F.avg_pool2d(s.mean(dim=1), pool, ceil_mode=True)  # (B, d, h', w')
        vals = F.avg_pool2d(value.permute(0, 3, 1, 2), pool, ceil_mode=True)
        keys = self.key(keys.flatten(2).transpose(1, 2))  # (B, h'w', d)
        vals = vals.flatten(2).transpose(1, 2)
        q = self.query(value.reshape(b, h * w, d))
        # one head: (B, 1, L, d) takes the fused kernel, which never holds the (HW, h'w') scores
        attended = F.scaled_dot_product_attention(q[:, None], keys[:, None], vals[:, None])[:, 0]  # (B, HW, d)
        return (self.gamma * attended).reshape(b, h, w, d)


def autocast(device: torch.device):
    """(context manager, GradScaler) of mixed precision: bf16 on GPUs that have it, else fp16 with an
    enabled scaler (fp16 gradients underflow without it); on the CPU none and a disabled scaler."""
    import contextlib

    if device.type != "cuda":
        return contextlib.nullcontext(), torch.amp.GradScaler("cpu", enabled=False)
    bf16 = torch.cuda.is_bf16_supported()
    return (torch.autocast("cuda", dtype=torch.bfloat16 if bf16 else torch.float16),
            torch.amp.GradScaler("cuda", enabled=not bf16))
