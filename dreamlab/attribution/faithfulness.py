"""Deletion faithfulness: do the most attributed pixels matter most to the model?

Delete pixels in order of attribution, most important first, setting them to a background value, and follow
the target class's probability (Petsiuk et al. 2018, "RISE", the deletion metric). A faithful map makes the
probability fall fast, so the area under the curve is small; random orders are the reference. The probability
(softmax) is used rather than the raw logit so that areas are positive and comparable between images.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


def importance(attribution: Tensor, signed: bool) -> Tensor:
    """Per-pixel importance [B, H*W] from attributions [B, C, H, W].

    Additive attributions (IG, gradient x input) are summed over channels, keeping the sign (positive evidence
    first); gradient maps (saliency, guided, SmoothGrad) rank by magnitude, the largest over channels.
    """
    if signed:
        return attribution.sum(1).flatten(1)
    return attribution.abs().amax(1).flatten(1)


@torch.no_grad()
def deletion_curve(model: nn.Module, normalize, images: Tensor, labels: Tensor, order: Tensor, steps: int = 20,
                   background: float = 0.0) -> Tensor:
    """Target probabilities [B, steps + 1] after deleting 0, 1/steps, ..., all pixels in `order` [B, H*W]."""
    b, c, h, w = images.shape
    n = h * w
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(n, device=order.device).expand(b, n))  # rank of each pixel
    curve = []
    for k in range(steps + 1):
        deleted = (ranks < round(k * n / steps)).view(b, 1, h, w)
        x = images.masked_fill(deleted, background)
        probs = model(normalize(x)).softmax(1)
        curve.append(probs.gather(1, labels.view(-1, 1))[:, 0])
    return torch.stack(curve, 1)


def area(curve: Tensor) -> Tensor:
    """Area under each curve [B, K] over deleted fractions 0..1 (trapezoid rule)."""
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


@dataclass(frozen=True)
class DeletionScore:
    """One method's deletion area, the random orders' area, and their ratio (lower is better)."""

    method: str
    area: float  # mean over images
    random_area: float
    ratio: float  # area / random_area: below 1 beats random


def deletion_score(model: nn.Module, normalize, images: Tensor, labels: Tensor, attribution: Tensor, method: str,
                   signed: bool = False, steps: int = 20, random_orders: int = 4, seed: int = 0,
                   background: float = 0.0) -> DeletionScore:
    """Mean deletion area of `attribution`'s order, and of random orders, over a batch of images."""
    order = importance(attribution, signed).argsort(1, descending=True)
    ours = area(deletion_curve(model, normalize, images, labels, order, steps, background)).mean()
    generator = torch.Generator().manual_seed(seed)
    b, n = order.shape
    randoms = [area(deletion_curve(model, normalize, images, labels,
                                   torch.rand(b, n, generator=generator).argsort(1).to(order.device), steps,
                                   background)).mean() for _ in range(random_orders)]
    random_area = torch.stack(randoms).mean()
    return DeletionScore(method, float(ours), float(random_area), float(ours / random_area))
