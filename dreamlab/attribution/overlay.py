"""Attribution maps as pictures, with numpy and PIL only: colour maps, overlays on the photo, signed maps.

The heat colour map runs black -> purple -> red -> yellow -> white (monotonic in lightness, so it reads in grey
print too); the signed map runs blue (negative) -> white (zero) -> red (positive), symmetric around zero.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# (position, (r, g, b)) anchors, linearly interpolated; chosen by eye for increasing lightness
HEAT = ((0.0, (0, 0, 4)), (0.25, (87, 16, 110)), (0.5, (188, 55, 84)), (0.75, (249, 142, 9)),
        (1.0, (252, 255, 164)))
SIGNED = ((0.0, (33, 102, 172)), (0.5, (247, 247, 247)), (1.0, (178, 24, 43)))


def colorize(values: np.ndarray, anchors: tuple = HEAT) -> np.ndarray:
    """Values in [0, 1] of any shape -> RGB floats in [0, 1] with one more axis of size 3 at the end."""
    positions = np.array([p for p, _ in anchors])
    colours = np.array([c for _, c in anchors], dtype=np.float64) / 255
    v = np.clip(np.nan_to_num(values.astype(np.float64)), 0, 1)
    return np.stack([np.interp(v, positions, colours[:, k]) for k in range(3)], axis=-1)


def heat(attribution: Tensor, signed: bool = False) -> Tensor:
    """A per-pixel map [H, W] in [0, 1] from attributions [C, H, W] (or a map [1, H, W]).

    `signed`: the channel sum's positive part (additive attributions: IG); otherwise the largest magnitude
    over channels (gradient maps). Scaled by the 99.5th percentile of its non-zero values (`scale`) so a few
    extreme pixels do not blacken the rest (SmoothGrad's paper caps at the 99th percentile for the same reason).
    """
    a = attribution.detach().float().cpu()
    a = a.sum(0).clamp(min=0) if signed else a.abs().amax(0)
    top = scale(a)
    return (a / top).clamp(0, 1) if top > 0 else torch.zeros_like(a)


def scale(magnitudes: Tensor) -> Tensor:
    """The 99.5th percentile of the non-zero values of a map of magnitudes (>= 0); 0 for an all-zero map.

    Over the non-zero values only: a sparse map (a small object, IG against a black baseline on a mostly black
    photo) would otherwise have a percentile of 0 where 0.5% of its pixels or fewer are set, and be drawn blank;
    and the zeros of a black background would decide how much of the rest saturates."""
    values = magnitudes.flatten()
    values = values[values > 0]
    return torch.quantile(values, 0.995) if values.numel() else torch.zeros(())


def signed_map(attribution: Tensor) -> Tensor:
    """The channel sum as an RGB image [3, H, W], blue negative, white zero, red positive."""
    a = attribution.detach().float().cpu().sum(0)
    top = scale(a.abs())  # as `heat`: over the non-zero values, so a sparse map is not drawn blank
    scaled = (a / top).clamp(-1, 1) if top > 0 else torch.zeros_like(a)
    return _rgb(colorize(((scaled + 1) / 2).numpy(), SIGNED))


def overlay(image: Tensor, values: Tensor, opacity: float = 0.5) -> Tensor:
    """The heat colours of `values` [H, W] in [0, 1] over a grey version of `image` [C, H, W]: RGB [3, H, W]."""
    grey = image.detach().float().cpu().mean(0, keepdim=True).expand(3, -1, -1)
    colours = _rgb(colorize(values.detach().cpu().numpy()))
    return ((1 - opacity) * grey + opacity * colours).clamp(0, 1)


def _rgb(array: np.ndarray) -> Tensor:
    return torch.from_numpy(array).float().permute(2, 0, 1).contiguous()
