"""The model-randomization sanity check of Adebayo et al. (2018), "Sanity Checks for Saliency Maps".

Re-initialize the model's blocks from the top (the classifier) down, cumulatively, one block per step, and
compare each step's attribution map with the trained model's by Spearman rank correlation of the magnitudes.
A method that explains the model must change as its weights are destroyed; one that stays highly correlated
(guided backpropagation, in the paper and here) shows the input's edges rather than what the model learned.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dreamlab.attribution.faithfulness import importance
from dreamlab.optvis.transforms import seeded_rng

Attribute = Callable[[nn.Module], Tensor]  # model -> attributions [B, C, H, W]


@dataclass(frozen=True)
class SanityStep:
    """`correlation` is NaN where no image has one: a map that is all zero (or constant) has no ranks to
    correlate, as for a Grad-CAM whose weighted sum is 0 or negative everywhere. It is not a low correlation."""

    randomized: str  # the block re-initialized at this step (every block above it is random too)
    correlation: float  # mean over the images whose correlation is defined (both maps non-constant), else NaN


def blocks_top_down(model: nn.Module) -> list[str]:
    """The model's top-level children that hold parameters, last (the classifier) first."""
    return [name for name, child in model.named_children() if any(True for _ in child.parameters())][::-1]


def average_ranks(values: Tensor) -> Tensor:
    """Ranks of a 1-D tensor, tied values sharing their mean rank (the many exact zeros of a map are ties)."""
    unique, inverse, counts = torch.unique(values, return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()
    return (last - (counts.double() - 1) / 2)[inverse]


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rank correlation per row of [B, N]; NaN for a row where either map is constant (all zero),
    whose correlation is undefined."""
    ranks_a = torch.stack([average_ranks(row) for row in a])
    ranks_b = torch.stack([average_ranks(row) for row in b])
    ranks_a = ranks_a - ranks_a.mean(1, keepdim=True)
    ranks_b = ranks_b - ranks_b.mean(1, keepdim=True)
    norms = ranks_a.norm(dim=1) * ranks_b.norm(dim=1)
    return torch.where(norms > 0, (ranks_a * ranks_b).sum(1) / norms.clamp(min=1e-12), torch.nan)


def reinitialize(module: nn.Module, seed: int) -> None:
    """Fresh default initialization for every submodule that has one (conv, linear, batch norm)."""
    device = next(module.parameters(), torch.empty(0)).device  # the initializers draw on the weights' device
    with seeded_rng(seed, device):
        for sub in module.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()


def cascading_randomization(model: nn.Module, attribute: Attribute, blocks: list[str] | None = None,
                            seed: int = 0) -> list[SanityStep]:
    """Rank correlations between the trained model's map and maps with ever more blocks re-initialized.

    The caller's model is not changed (a copy is randomized). `attribute(model)` computes the map. A step's
    correlation is NaN where every image's trained or randomized map is all zero (see SanityStep).
    """
    reference = importance(attribute(model), signed=False)
    randomized = copy.deepcopy(model)
    steps = []
    for i, name in enumerate(blocks if blocks is not None else blocks_top_down(model)):
        reinitialize(randomized.get_submodule(name), seed + i)
        current = importance(attribute(randomized), signed=False)
        steps.append(SanityStep(name, float(rank_correlation(reference, current).nanmean())))
    return steps
