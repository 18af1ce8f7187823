"""Which layers put channels last: outputs laid out [B, H, W, C] instead of PyTorch's usual [B, C, H, W], and
token sequences [B, N, D] (a vision transformer's hidden units are its last axis, its tokens the positions).

ConvNeXt's blocks do (a Permute, then LayerNorm and Linear layers act on the last axis, then a Permute back),
and so does torchvision's Swin throughout. dreamlab reads a unit as channel k of dim 1, so those layers are
read transposed to [B, C, H, W] or [B, D, N] (`to_channels_first`); read as they are, `layer:3` would be row 3
of the map, or token 3. Tokens [.., D, N] that are a square grid of patches are laid out as maps [.., D, k, k]
(`token_maps`): what `features` shows and Grad-CAM weighs.

One shape cannot tell the layouts apart, two can: the axes that grow with the input are the spatial ones. So
a weightless copy of the model runs at two sizes on the meta device, with hooks that only read shapes. A layer
that forward does not reach there (an op without a meta kernel, an `if` on the values) is probed the same way on
a CPU copy, so that data-dependent models get the same answer as the others.

>>> import torchvision
>>> convnext = torchvision.models.convnext_tiny().eval()      # block.0 is a conv, block.3 a Linear after a Permute
>>> channels_last_layers(convnext, ["features.1.0.block.0", "features.1.0.block.3"], torch.rand(1, 3, 64, 64))
frozenset({'features.1.0.block.3'})
"""
from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from dreamlab.errors import DreamlabError
from dreamlab.models.copies import copy_with, weightless_copy
from dreamlab.models.loading import resolve_layer

PROBE_GROWTH = 32  # pixels added to the input's height and width for the second forward
_KNOWN: weakref.WeakKeyDictionary[nn.Module, dict[str, bool]] = weakref.WeakKeyDictionary()
# what a failed forward raises: a model with a fixed input size (ViT, a classifier head on a flatten), an op
# that refuses the size or has no meta kernel, a forward that wants other inputs (two tensors, a dict); the
# layers it reached before still tell their layout
FORWARD_ERRORS = (RuntimeError, ValueError, AssertionError, NotImplementedError, LookupError, TypeError,
                  AttributeError)


class _Stop(BaseException):
    """Raised by the probe's hooks once every layer asked about has shown its shape."""


def channels_last_layers(model: nn.Module, names: Iterable[str], x: Tensor) -> frozenset[str]:
    """The layers among `names` (whose outputs are 3-D or 4-D) that put channels last, found from the shapes of a
    forward of one image of `x`'s size ([B, C, H, W]) and one PROBE_GROWTH pixels larger, on a weightless copy
    of the model on the meta device (or, for the layers that forward does not reach, on a CPU copy): the model
    itself never runs, so its hooks, statistics and memory are left alone. A 4-D output that does not change
    with the size (after global pooling), or that neither probe reaches at the larger size (a fixed input size),
    counts as channels-first; a 3-D one as a token sequence [B, N, D] unless its last axis grows with the image.
    Cached per model and layer."""
    known = _KNOWN.setdefault(model, {})
    todo = [name for name in dict.fromkeys(names) if name not in known]
    if todo:
        height, width = x.shape[2:]
        small, large = _probe(meta_copy(model), todo, x.shape[1], height, width, "meta")
        unreached = [name for name in todo if name not in small]
        if unreached:  # no meta kernel, or control flow on the values (`if y.mean() > 0`): a real forward
            cpu_small, cpu_large = _probe(cpu_probe_copy(model), unreached, x.shape[1], height, width, "cpu")
            small.update(cpu_small)
            large.update(cpu_large)
        for name in todo:
            known[name] = is_channels_last(small.get(name), large.get(name))
    return frozenset(name for name in names if known.get(name))


def _probe(probe: nn.Module, names: list[str], channels: int, height: int, width: int,
           device: str) -> tuple[dict[str, torch.Size], dict[str, torch.Size]]:
    """The output shapes of `names` for one image of height x width and one PROBE_GROWTH pixels larger."""
    small = _shapes(probe, names, torch.zeros(1, channels, height, width, device=device))
    large = _shapes(probe, names, torch.zeros(1, channels, height + PROBE_GROWTH, width + PROBE_GROWTH,
                                              device=device))
    return small, large


def meta_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` on the meta device, without its hooks: no tensor data is copied, and no hook
    of the caller's runs in it."""
    return weightless_copy(model, hooks=False).eval()


def cpu_probe_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` on the CPU with its weights (zeros for weights on the meta device), without
    its hooks: for the forwards that the meta device cannot run. Nothing is copied on the model's own device."""
    return copy_with(model, lambda t: torch.zeros_like(t, device="cpu") if t.is_meta else
                     t.detach().to("cpu", copy=True), hooks=False).eval()


def to_channels_first(acts: dict[str, Tensor], channels_last: frozenset[str]) -> dict[str, Tensor]:
    """`acts` with the channels-last layers' outputs as [B, C, H, W] or [B, D, N] (views: no copy)."""
    return {name: channels_first(act) if name in channels_last else act for name, act in acts.items()}


def channels_first(act: Tensor) -> Tensor:
    """A channels-last output [B, H, W, C] as [B, C, H, W], a token sequence [B, N, D] as [B, D, N] (a view)."""
    if act.dim() == 4:
        return act.permute(0, 3, 1, 2)
    return act.transpose(1, 2) if act.dim() == 3 else act


def patch_grid(count: int) -> tuple[int, int] | None:
    """(leading extra tokens, k) where `count` tokens are k*k patches (k > 1), or a class token first and then k*k
    patches (torchvision's ViT: 197 = 1 + 14*14); None where they are neither."""
    for extra in (0, 1):
        side = math.isqrt(max(count - extra, 0))
        if side > 1 and side * side == count - extra:
            return extra, side
    return None


def token_maps(tokens: Tensor, layer: str, unusable: str = "they cannot be shown as maps; pick a layer with maps"
               ) -> Tensor:
    """A vision transformer's tokens [..., D, N] (channels first) as maps [..., D, k, k] of its patches, the class
    token left out (`patch_grid`). `unusable`: the refusal's end, after "so", for a count that is no such grid."""
    grid = patch_grid(tokens.shape[-1])
    if grid is None:
        raise DreamlabError(f"layer {layer!r} outputs {tokens.shape[-1]} tokens, which are no square grid of patches "
                            f"(with or without a class token first), so {unusable}")
    extra, side = grid
    return tokens[..., extra:].reshape(*tokens.shape[:-1], side, side)


def is_channels_last(small: Sequence[int] | None, large: Sequence[int] | None) -> bool:
    """Whether an output of shape `small`, `large` (with the batch) at two input sizes puts channels last: 4-D
    with its last axis alone kept, or 3-D (tokens) unless only its last axis grows; None: not reached."""
    if small is not None and len(small) == 3:
        grows_last = large is not None and len(large) == 3 and small[2] != large[2] and small[1] == large[1]
        return not grows_last
    if small is None or large is None or len(small) != 4 or len(large) != 4:
        return False
    return small[3] == large[3] and small[1] != large[1] and small[2] != large[2]


def _shapes(model: nn.Module, names: list[str], x: Tensor) -> dict[str, torch.Size]:
    """The output shape of each of `names` in one forward of `x` (stopped once all are seen)."""
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

    handles = []
    try:
        for name in names:
            handles.append(resolve_layer(model, name).register_forward_hook(hook_for(name)))
        with torch.no_grad():
            model(x)
    except (_Stop, *FORWARD_ERRORS):
        pass
    finally:
        for handle in handles:
            handle.remove()
    return found
