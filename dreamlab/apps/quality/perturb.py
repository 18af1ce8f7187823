"""Perturbations a render was not optimized for, and the activation it keeps under them.

An adversarial-style render (pixel parameterization, no transforms) reaches a high activation through a pattern
of single-pixel values that the next layer reads exactly; a slight blur or resampling destroys it. A render of
something the unit responds to keeps most of its activation. The perturbations here are outside the render
transforms' range ('standard': scale 0.9-1.1, so 0.85x is outside it; no transform blurs):

- blur: a Gaussian blur of sigma 1 px,
- rescale: 0.85x about the centre, the uncovered border filled with the recipe's fill level,
- rotate: 5 degrees about the centre (inside the 'standard' range of +-10: it only controls the settings
  that render without transforms).

>>> images = torch.rand(2, 3, 32, 32)
>>> sorted(perturbations(images, fill=0.5))
['blur', 'rescale', 'rotate']
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import get_affine_matrix2d, warp_affine
from torch import Tensor

PERTURBATIONS = ("blur", "rescale", "rotate")
BLUR_SIGMA = 1.0  # pixels (issue #12: "a 1-px blur")
RESCALE = 0.85  # below the standard transforms' 0.9
ROTATE_DEGREES = 5.0


def _affine(images: Tensor, scale: float, degrees: float, fill: float) -> Tensor:
    b, c, h, w = images.shape
    centre = torch.tensor([[(w - 1) / 2, (h - 1) / 2]], dtype=images.dtype).expand(b, 2)
    matrix = get_affine_matrix2d(torch.zeros(b, 2, dtype=images.dtype), centre,
                                 torch.full((b, 2), scale, dtype=images.dtype),
                                 torch.full((b,), degrees, dtype=images.dtype))[:, :2]
    return warp_affine(images, matrix, (h, w), padding_mode="fill",
                       fill_value=torch.full((c,), fill, dtype=images.dtype), align_corners=True)


def perturb(images: Tensor, kind: str, fill: float) -> Tensor:
    """One named perturbation of [B, C, H, W] images in [0, 1]."""
    if kind == "blur":
        return gaussian_blur2d(images, (5, 5), (BLUR_SIGMA, BLUR_SIGMA), border_type="replicate")
    if kind == "rescale":
        return _affine(images, RESCALE, 0.0, fill)
    if kind == "rotate":
        return _affine(images, 1.0, ROTATE_DEGREES, fill)
    raise ValueError(f"unknown perturbation {kind!r}; valid: {', '.join(PERTURBATIONS)}")


def perturbations(images: Tensor, fill: float) -> dict[str, Tensor]:
    """Each perturbation (PERTURBATIONS) of `images`, by name."""
    return {kind: perturb(images, kind, fill) for kind in PERTURBATIONS}


def kept_activation(score: Callable[[Tensor], Tensor], images: Tensor, fill: float,
                    clean: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(clean scores [N], worst scores over the perturbations [N]) of `score` (image i scored on its own unit);
    `clean` passes scores of the unperturbed images already at hand."""
    clean = score(images) if clean is None else clean
    worst = torch.stack([score(p) for p in perturbations(images, fill).values()]).min(0).values
    return clean, worst


def rounded_down(value: float, digits: int = 3) -> float:
    """`value` cut (not rounded) to `digits` decimals, so a kept fraction of 0.4996 reads 0.499, below the 0.5 bar
    it missed, not 0.5."""
    scale = 10 ** digits
    return math.floor(value * scale + 1e-9) / scale


def kept_fraction(clean: Tensor, worst: Tensor, baseline: Tensor | float = 0.0) -> Tensor:
    """How much of its lead over `baseline` a render keeps under the worst perturbation (1: all, <= 0: none).

    `baseline` is where "no activation" lies: 0 after a ReLU, the dataset's mean for a pre-activation that is
    negative on typical inputs (lenet-digits' conv2)."""
    lead = clean - baseline
    return torch.where(lead > 0, (worst - baseline) / lead.clamp(min=1e-12), torch.zeros_like(lead))


__all__ = ["PERTURBATIONS", "perturb", "perturbations", "kept_activation", "kept_fraction", "rounded_down"]
