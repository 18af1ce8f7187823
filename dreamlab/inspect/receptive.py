"""Receptive fields: where each position of a layer's map looks in the input, found from gradients.

A central position's gradient on noise images reaches exactly the input pixels it depends on (noise opens
every ReLU and max-pool path somewhere in a small batch); its diagonal neighbour's gives the stride. That holds
for any padding, stride or pooling, without reading the architecture.

>>> from dreamlab.models.loading import load_model
>>> digits = load_model("lenet-digits")
>>> field = receptive_field(digits.model, "conv2", digits.recipe); field   # hed-vgg16's features.22: side 92, stride 8
Field(side=14, stride=(2.0, 2.0), origin=(1.0, 1.0))
>>> field.box(3, 5)                                         # [top, left, bottom, right) of position y=3, x=5
(0, 4, 14, 18)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dreamlab.inspect.features import normalize
from dreamlab.models.recipe import Recipe


@dataclass(frozen=True)
class Field:
    """Where a layer's map positions look in the input: the receptive field's side, the stride between
    neighbouring positions and the centre of position (0, 0)'s field, all in input pixels."""

    side: int
    stride: tuple[float, float]
    origin: tuple[float, float]

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """[top, left, bottom, right) of position (y, x)'s field (it may reach past the image)."""
        top = round(self.origin[0] + y * self.stride[0] - self.side / 2)
        left = round(self.origin[1] + x * self.stride[1] - self.side / 2)
        return top, left, top + self.side, left + self.side


def receptive_field(model: nn.Module, layer: str, recipe: Recipe, samples: int = 4, seed: int = 0) -> Field | None:
    """The receptive field of `layer`'s positions: every input pixel that the gradient of a central position (and
    of its diagonal neighbour, for the stride) reaches, on `samples` noise images, so that ReLUs and max-pools
    open every path. The noise is twice the recipe's size where the model takes it, so that fields wider than
    the image fit. None for a layer without maps (a logit, a Linear layer): it sees the whole image."""
    try:
        probe = _probe(model, layer, recipe, 2 * recipe.input_size, samples, seed)
    except (RuntimeError, ValueError, AssertionError):  # a model that takes only its own size
        probe = _probe(model, layer, recipe, recipe.input_size, samples, seed)
    if probe is None:
        return None
    side, (h, w), (cy, cx) = probe.side, probe.map_size, probe.centre
    if len(probe.spans) < 2:  # nothing reached: spread the map evenly over the image
        return Field(side, (side / h, side / w), (side / h / 2, side / w / 2))
    (r0, r1, c0, c1), (s0, s1, d0, d1) = probe.spans

    def step(first: int, last: int, first2: int, last2: int, moved: bool, count: int) -> float:
        if moved and first > 0 and first2 > 0:
            return float(first2 - first)
        if moved and last < side - 1 and last2 < side - 1:
            return float(last2 - last)
        return side / count  # a map one position wide, or a field that covers the image both ways

    stride = (step(r0, r1, s0, s1, cy + 1 < h, h), step(c0, c1, d0, d1, cx + 1 < w, w))
    centre = ((r0 + r1 + 1) / 2, (c0 + c1 + 1) / 2)
    extent = min(max(r1 - r0, c1 - c0) + 1, side)
    return Field(extent, stride, (centre[0] - cy * stride[0], centre[1] - cx * stride[1]))


@dataclass(frozen=True)
class _Probe:
    side: int  # of the noise images
    map_size: tuple[int, int]
    centre: tuple[int, int]  # the central position (cy, cx)
    spans: list[tuple[int, int, int, int]]  # per probed position: first and last row and column reached


def _probe(model: nn.Module, layer: str, recipe: Recipe, side: int, samples: int, seed: int) -> _Probe | None:
    """Which input pixels the central position of `layer` and its diagonal neighbour reach (None: no maps)."""
    from dreamlab.models.prepare import raw_size_errors
    from dreamlab.optvis.capture import Capture

    noise = torch.rand(samples, recipe.channels, side, side, generator=torch.Generator().manual_seed(seed))
    x = normalize(noise, recipe).to(next(model.parameters()).device).requires_grad_(True)
    with torch.enable_grad(), raw_size_errors(), Capture(model, [layer]) as cap:  # a size it rejects: its own error
        act = cap.run(x)[layer]
        if act.dim() != 4:
            return None
        h, w = act.shape[-2:]
        spans = []
        for y, x_ in ((h // 2, w // 2), (min(h // 2 + 1, h - 1), min(w // 2 + 1, w - 1))):
            grad, = torch.autograd.grad(act[:, :, y, x_].sum(), x, retain_graph=True)
            reached = (grad.abs().sum((0, 1)) > 0).nonzero()
            if reached.numel() == 0:
                return _Probe(side, (h, w), (h // 2, w // 2), [])
            (r0, r1), (c0, c1) = reached[:, 0].aminmax(), reached[:, 1].aminmax()
            spans.append((int(r0), int(r1), int(c0), int(c1)))
    return _Probe(side, (h, w), (h // 2, w // 2), spans)
