"""Which layers put channels last: outputs laid out [B, H, W, C] instead of PyTorch's usual [B, C, H, W].

ConvNeXt's blocks do (a Permute, then LayerNorm and Linear layers act on the last axis, then a Permute back),
and so does torchvision's Swin throughout. dreamlab reads a unit as channel k of dim 1, so those layers are
read transposed to [B, C, H, W] (`to_channels_first`); read as they are, `layer:3` would be row 3 of the map.

One shape cannot tell the layouts apart, two can: the axes that grow with the input are the spatial ones. So
one image is run again at a larger size, with hooks that only read shapes.

>>> channels_last_layers(convnext, ["features.1.0.block.0", "features.1.0.block.3"], x)  # doctest: +SKIP
frozenset({'features.1.0.block.3'})
"""
from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamlab.models.loading import resolve_layer

PROBE_GROWTH = 32  # pixels added to the input's height and width for the second forward
_KNOWN: weakref.WeakKeyDictionary[nn.Module, dict[str, bool]] = weakref.WeakKeyDictionary()
# what a failed forward raises: a model with a fixed input size (ViT, a classifier head on a flatten), an op
# that refuses the size; the layers it reached before still tell their layout
_FORWARD_ERRORS = (RuntimeError, ValueError, AssertionError, NotImplementedError, IndexError, TypeError)


class _Stop(BaseException):
    """Raised by the probe's hooks once every layer asked about has shown its shape."""


def channels_last_layers(model: nn.Module, names: Iterable[str], x: Tensor) -> frozenset[str]:
    """The layers among `names` whose 4-D output is [B, H, W, C], found by forwarding one image of `x` (an input
    the model takes, [B, C, H, W]) and the same image PROBE_GROWTH pixels larger. A layer whose output does
    not change with the size (after global pooling), or that the larger input never reaches, counts as
    channels-first. Cached per model and layer; the model's training flags are restored."""
    known = _KNOWN.setdefault(model, {})
    todo = [name for name in dict.fromkeys(names) if name not in known]
    if todo:
        first = x[:1].detach()
        height, width = first.shape[-2:]
        bigger = F.interpolate(first.float(), size=(height + PROBE_GROWTH, width + PROBE_GROWTH), mode="bilinear",
                               align_corners=False).to(first.dtype)
        small, large = _shapes(model, todo, first), _shapes(model, todo, bigger)
        for name in todo:
            known[name] = is_channels_last(small.get(name), large.get(name))
    return frozenset(name for name in names if known.get(name))


def to_channels_first(acts: dict[str, Tensor], channels_last: frozenset[str]) -> dict[str, Tensor]:
    """`acts` with the channels-last layers' outputs transposed to [B, C, H, W] (views: no copy)."""
    return {name: act.permute(0, 3, 1, 2) if name in channels_last and act.dim() == 4 else act
            for name, act in acts.items()}


def is_channels_last(small: Sequence[int] | None, large: Sequence[int] | None) -> bool:
    """Whether an output of shape `small`, `large` at two input sizes is [B, H, W, C]: its last axis alone kept."""
    if small is None or large is None or len(small) != 4 or len(large) != 4:
        return False
    return small[3] == large[3] and small[1] != large[1] and small[2] != large[2]


def _shapes(model: nn.Module, names: list[str], x: Tensor) -> dict[str, torch.Size]:
    """The output shape of each of `names` in one eval-mode forward of `x` (stopped once all are seen)."""
    found: dict[str, torch.Size] = {}

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            tensor = output if isinstance(output, Tensor) else \
                output[0] if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor) else None
            if tensor is not None and name not in found:
                found[name] = tensor.shape
            if len(found) == len(names):
                raise _Stop
        return hook

    modes = [(module, module.training) for module in model.modules()]
    handles = []
    try:
        for name in names:
            handles.append(resolve_layer(model, name).register_forward_hook(hook_for(name)))
        model.eval()  # a probe must not move BatchNorm's running statistics
        with torch.no_grad():
            model(x)
    except (_Stop, *_FORWARD_ERRORS):
        pass
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes:
            module.training = training
    return found
