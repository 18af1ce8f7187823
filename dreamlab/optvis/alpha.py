"""Transparent renders (Mordvintsev et al., "Differentiable Image Parameterizations", Distill 2018, section
"Transparent"; lucid's notebooks/differentiable-parameterizations/transparency.ipynb): the image gets an alpha
channel, each step shows the model its colours composited over a fresh random background, and a penalty on the
mean alpha leaves opaque only what the unit needs.

>>> g = [torch.Generator().manual_seed(0)]
>>> random_backgrounds(g, 3, 16, 24, None).shape
torch.Size([1, 3, 16, 24])
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dreamlab.optvis.params import FourierParam, fourier_scale, normalized_color_matrix, seeded_randn

# lucid's notebook draws each step's background as a fresh sample of its Fourier image with sd 0.2 and a
# 1/f^1.5 spectrum, in decorrelated colour through a sigmoid: smooth coloured noise, never the same twice
BACKGROUND_SD = 0.2
BACKGROUND_DECAY = 1.5
# the penalty's weight relative to the unit's score: lucid's (its notebook maximizes score x (1 - mean alpha)),
# kept after measuring on hed-vgg16's features.22:0-3 (64 px, 64 steps; README, "Transparent renders"): at 0.5
# half the pixels stay opaque, at 2 two of the four units fade to a mean alpha of 0.05
ALPHA_WEIGHT = 1.0
MAX_ALPHA_WEIGHT = 100.0  # the penalty relative to the score: far beyond 1 the score hardly counts


def random_backgrounds(generators: Sequence[torch.Generator], channels: int, height: int, width: int,
                       device: torch.device | str | None) -> Tensor:
    """[B, channels, H, W] in (0, 1): one random background per image, image i's from `generators[i]` alone (so
    it does not depend on the batch)."""
    spectrum = seeded_randn((len(generators), channels, height, width // 2 + 1, 2), generators, device)
    scale = fourier_scale(height, width, BACKGROUND_DECAY).to(spectrum.device)
    spectrum = torch.view_as_complex(spectrum * (BACKGROUND_SD * scale[..., None]))
    raw = torch.fft.irfft2(spectrum, s=(height, width), norm="ortho") / FourierParam.SPATIAL_DIVISOR
    if channels == 3:
        raw = torch.einsum("bchw,dc->bdhw", raw, normalized_color_matrix().to(raw.device))
    return torch.sigmoid(raw)


def seeded_backgrounds(seeds: Sequence[int], channels: int, size: tuple[int, int],
                       device: torch.device | str | None) -> Tensor:
    """`random_backgrounds`, image i's drawn from a generator seeded with `seeds[i]` (the render derives each from
    its seed, the step and the image's unit: a new background every step, the same in every run)."""
    generators = [torch.Generator(device if device is not None else "cpu").manual_seed(seed) for seed in seeds]
    return random_backgrounds(generators, channels, size[0], size[1], device)


def composite(images: Tensor, background: Tensor | float) -> Tensor:
    """The colour channels of RGBA (or grey + alpha) `images` [B, C+1, H, W] laid over `background` (an image
    batch [B, C, H, W], or one grey level): [B, C, H, W]."""
    colour, alpha = images[:, :-1], images[:, -1:]
    return colour * alpha + background * (1 - alpha)


def transparency_penalty(score: Tensor, images: Tensor, weight: float) -> Tensor:
    """`score` [B] less `weight` x each image's mean alpha x |its score|. lucid maximizes score x (1 - mean
    alpha); with |score| held constant the alpha's gradient is the same for a positive score, and a negative one
    (a unit not yet on) is still pushed towards transparency rather than towards opacity."""
    return score - weight * score.detach().abs() * images[:, -1].float().mean((1, 2))


def checkerboard(images: Tensor, squares: int = 8, light: float = 0.95, dark: float = 0.6) -> Tensor:
    """RGBA `images` [B, C+1, H, W] composited over a grey checkerboard of `squares` squares a side (lucid's
    notebook's greys), as image viewers show transparency: [B, C, H, W]."""
    height, width = images.shape[-2:]
    ys = torch.arange(height) * squares // max(height, 1)
    xs = torch.arange(width) * squares // max(width, 1)
    board = torch.where((ys[:, None] + xs[None, :]) % 2 == 0, light, dark).to(images.device, images.dtype)
    return composite(images, board)


__all__ = ["ALPHA_WEIGHT", "BACKGROUND_DECAY", "BACKGROUND_SD", "MAX_ALPHA_WEIGHT", "checkerboard", "composite",
           "random_backgrounds", "seeded_backgrounds", "transparency_penalty"]
