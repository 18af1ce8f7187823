"""Diversity: several images of one unit, pushed apart so that they show different things the unit responds to.

Olah, Mordvintsev & Schubert, "Feature Visualization" (Distill, 2017), section "Diversity": optimize a batch of
images of the same unit together and penalize how alike their styles are at a layer, compared through the
images' Gram matrices (channel-by-channel correlations over positions, which ignore where a pattern sits). A
unit that responds to several unrelated things (a polysemantic unit) then shows them apart.

Two choices differ from lucid's `diversity` objective (the cosine similarity of the Gram matrices, times a fixed
1e2). The images are compared by the distance between their unit-length Gram matrices, sqrt(2 - 2 cos): the
copies start from nearly the same faint noise, where the cosine's gradient vanishes. On lenet-digits `conv2:3`
(3 images, the recipe's 256 steps) the cosine form left the copies alike at weights 1, 3 and 10 (mean Gram
distance 0.001), where this one parts them (0.15 at weight 1); where both work they trade alike (`logit:0-9`,
4 images each: Gram distance 0.79 at a mean logit of 26 here, 0.78 at 25.5 for the cosine at weight 3). And
the penalty is relative: each sample's score `s` becomes `s + weight * |s| * distance`, |s| held constant (no
gradient), so one weight means about the same trade-off on any model's activation scale.

>>> from dreamlab.optvis.objectives import channel
>>> four = repeat_units(channel("conv2", [3, 7]), 4)  # samples 0-3 render conv2:3, samples 4-7 conv2:7
>>> four.labels[:2], four.batch_size
(('conv2:3 #1', 'conv2:3 #2'), 8)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamlab.errors import DreamlabError
from dreamlab.optvis.capture import OUTPUT
from dreamlab.optvis.objectives import IMAGE, Acts, Objective, Offsets


COPY_MARK = " #"  # 'conv2:3 #2': the second image of conv2:3 (a file name reads conv2_3_div2: io.label_name)


def unit_label(label: str) -> str:
    """The unit a label names, without its diversity image's number: 'conv2:3 #2' -> 'conv2:3'."""
    return label.rsplit(COPY_MARK, 1)[0]


def repeat_units(objective: Objective, copies: int) -> Objective:
    """`objective` with each unit repeated `copies` times in a row: sample v renders unit v // copies, and is
    labelled 'LABEL #k' (k from 1)."""
    def scorer(acts: Acts, index: Tensor) -> Tensor:
        return objective(acts, index // copies)

    def shifted(offsets: Offsets) -> Objective:
        return repeat_units(objective.at_offsets(offsets), copies)

    labels = tuple(f"{label}{COPY_MARK}{k + 1}" for label in objective.labels for k in range(copies))
    return Objective(scorer, objective.layers, objective.name, labels, objective.checks, objective.precedence,
                     objective.per_position, shifted if objective.shifted is not None else None,
                     couples=objective.couples, reference=objective.reference)


def unit_grams(features: Tensor) -> Tensor:
    """[b, C*C]: each sample's Gram matrix at `features` ([b, C, H, W] or [b, C]: channel-by-channel sums of
    products over positions), flattened and scaled to unit length."""
    flat = features.float().reshape(features.shape[0], features.shape[1], -1)  # [b, C, positions]
    return F.normalize((flat @ flat.transpose(1, 2)).flatten(1), dim=1)


def gram_distance(features: Tensor, copies: int) -> Tensor:
    """[b]: each sample's mean distance between its Gram matrix at `features` ([b, C, H, W] or [b, C]), scaled
    to unit length, and those of the other samples of its group: the samples come in groups of `copies` in a
    row (a unit's images; the engine keeps them in one batch). The distance (sqrt(2 - 2 cos)) is 0 for alike
    styles and up to sqrt(2) for Gram matrices of ReLU activations that share no channel."""
    b = features.shape[0]
    if b % copies:
        raise ValueError(f"{b} samples do not make groups of {copies}")
    gram = unit_grams(features)
    # the cosine's gradient vanishes where two images are alike (the copies' random starts nearly are), the
    # distance's does not, so the copies part from the first step. Computed from the differences, not as
    # sqrt(2 - 2 cos), which loses nearly alike pairs to float rounding; cdist's gradient is 0 at distance 0.
    # Within each group only: the pairs of different units would cost a batch's square for nothing.
    grouped = gram.view(b // copies, copies, -1)
    distance = torch.cdist(grouped, grouped, compute_mode="donot_use_mm_for_euclid_dist")  # [groups, k, k]
    return (distance.sum(2) / max(copies - 1, 1)).flatten()  # the diagonal is 0


def with_diversity(objective: Objective, copies: int, layer: str, weight: float) -> Objective:
    """What the optimizer maximizes for a `repeat_units` objective: each sample's score plus `weight` times its
    size times its Gram distance at `layer` to the other copies of its unit. The bonus adds its gradient only:
    the value stays the objective's, so the per-step history (and TensorBoard's curves) read the objective."""
    def scorer(acts: Acts, index: Tensor) -> Tensor:
        score = objective(acts, index)
        bonus = weight * score.detach().abs() * gram_distance(acts[layer], copies)
        return score + (bonus - bonus.detach())

    return Objective(scorer, objective.layers | {layer}, objective.name, objective.labels, objective.checks,
                     objective.precedence, False, couples=objective.couples, reference=objective.reference)


def diversity_layer(objective: Objective, default_layer: str | None, requested: str | None) -> str:
    """The layer whose Gram matrices are compared: `requested`, else the objective's own layer when it reads one
    (a logit reads the output, which has no positions: then the recipe's default layer)."""
    if requested is not None:
        if not isinstance(requested, str) or not requested or requested == IMAGE:
            raise DreamlabError(f"diversity_layer (--diversity-layer) must be the address of a layer of the model "
                                f"(`dreamlab layers MODEL` lists them), got {requested!r}")
        return requested
    layers = sorted(objective.layers - {IMAGE, OUTPUT})
    if len(layers) == 1:
        return layers[0]
    if default_layer is None:
        raise DreamlabError(f"diversity needs a layer to compare the images at, and {objective.name!r} reads "
                            f"{'several' if layers else 'none with positions'}: give diversity_layer "
                            f"(--diversity-layer), a conv layer's address (`dreamlab layers MODEL` lists them)")
    return default_layer


def describe(copies: int, layer: str, weight: float) -> str:
    """The provenance text: '4 images per unit, Gram distance at inception4c, weight 1'."""
    return f"{copies} images per unit, Gram distance at {layer}, weight {weight:g}"


__all__ = ["COPY_MARK", "unit_label", "repeat_units", "unit_grams", "gram_distance", "with_diversity",
           "diversity_layer", "describe"]
