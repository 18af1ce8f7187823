"""A model whose last weighted layer is all zero: torchvision builds ViT's `heads.head` with zero weight and bias
when it is given no weights, so with `--weights none` every logit is 0 for any image and has no gradient. A flat
render, Grad-CAM or attribution of a logit then says nothing about the image; this names the cause."""
from __future__ import annotations

from collections.abc import Iterable

from torch import nn


def zero_head(model: nn.Module) -> str | None:
    """The address of the model's last layer with a weight matrix (Linear, conv), where its weight and bias are
    all zero; None otherwise (a trained or normally initialised head)."""
    last = None
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter) and weight.dim() >= 2:
            last = (name, module)
    if last is None:
        return None
    name, module = last
    bias = getattr(module, "bias", None)
    if bool(module.weight.any()) or (isinstance(bias, nn.Parameter) and bool(bias.any())):
        return None
    return name or None


def zero_head_note(model: nn.Module, layers: Iterable[str]) -> str | None:
    """One stderr line for a target that reads the model's output (`layers` holds `logit`, the output's name, or
    the head's address) of a model whose head is all zero; None where that is not the case."""
    from dreamlab.optvis.capture import OUTPUT

    head = zero_head(model)
    if head is None or not {OUTPUT, head} & set(layers):
        return None
    return (f"dreamlab: note: {head}'s weights are all zero (as torchvision builds a ViT's head without "
            f"weights), so every logit is 0 for any image and has no gradient: load weights (--weights "
            f"default or a file) or target a layer before {head}")
