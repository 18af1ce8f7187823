"""A convolution layer's weights as a grid of tiles.

A layer that reads RGB (the first layer) shows one colour tile per filter. Deeper layers show one grey
tile per (output, input) pair, a row per output channel, or with ``sum_inputs`` one tile per filter with its
input channels summed. Each tile is stretched to [0, 1] on its own unless ``shared_scale``, which puts every
tile on one scale with zero at mid-grey (signs and relative strengths stay comparable); grey 1x1 tiles, one value
each, always share the scale (stretched alone, each would be mid-grey).

>>> kernels("googlenet", "conv1.conv", weights="none").image.shape   # 64 RGB filters 7x7 (scaled up), 8 a row
torch.Size([3, 242, 242])
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path

import torch
from torch import Tensor, nn

from dreamlab.errors import DreamlabError, check_whole, checked_keywords, close_matches
from dreamlab.inspect.source import check_layer, model_and_recipe, provenance
from dreamlab.inspect.tiles import TileGrid, normalize_each, normalize_shared, upscale
from dreamlab.io import MAX_IMAGE_PIXELS
from dreamlab.models.loading import resolve_layer

MIN_TILE_PIXELS = 28  # default upscaling makes tiles at least this wide, so 3x3 kernels stay visible
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, *_TRANSPOSED)


SHARED_PADDING = (0.45, 0.6, 0.85)  # a blue no grey tile has


def conv_layers(model: nn.Module) -> list[str]:
    """Addresses of the modules with a 4-D `weight` (2-D convolutions)."""
    return [name for name, m in model.named_modules()
            if name and isinstance(getattr(m, "weight", None), Tensor) and m.weight.dim() == 4]


def _conv_before(model: nn.Module, layer: str, convs: list[str]) -> str | None:
    """The last conv layer registered before `layer` (the conv a ReLU or pool follows: features.28 for VGG's
    features.29), or None when none is."""
    names = [name for name, _ in model.named_modules()]
    if layer not in names:
        return None
    earlier = set(names[:names.index(layer)])
    return next((name for name in reversed(convs) if name in earlier), None)


def conv_weight(model: nn.Module, layer: str) -> Tensor:
    """The [out, in, kh, kw] weight of the conv layer at `layer`; other layers get one line naming conv layers.

    A transposed convolution stores [in, out / groups, kh, kw]; it is returned as [out, in / groups, kh, kw], like a
    convolution's, so each row of the grid is still one output channel.
    """
    module = resolve_layer(model, layer)
    weight = getattr(module, "weight", None)
    if isinstance(module, _TRANSPOSED) and isinstance(weight, Tensor) and weight.dim() == 4:
        groups = module.groups
        w = weight.detach()
        return w.unflatten(0, (groups, -1)).transpose(1, 2).flatten(0, 1)
    if isinstance(weight, Tensor) and weight.dim() == 4:
        return weight.detach()
    convs = conv_layers(model)
    inside = [name for name in convs if name.startswith(layer + ".")]
    before = _conv_before(model, layer, convs)
    near = list(dict.fromkeys(([before] if before else []) + close_matches(layer, convs)))
    suggestions = inside[:3] or near[:3] or convs[:3]
    alternatives = f"try {' or '.join(suggestions) or 'another model'} (`dreamlab layers MODEL` lists the layers)"
    if isinstance(module, _CONVOLUTIONS):
        raise DreamlabError(f"only 2-D convolutions (Conv2d, ConvTranspose2d) are shown; {layer!r} is "
                            f"{type(module).__name__}; {alternatives}")
    raise DreamlabError(f"layer {layer!r} ({type(module).__name__}) has no convolution weights; {alternatives}")


def kernel_grid(weight: Tensor, *, shared_scale: bool = False, sum_inputs: bool = False, limit: int = 64,
                scale: int | None = None, padding: int = 2, groups: int = 1) -> TileGrid:
    """Tiles for a conv weight [out, in, kh, kw]; at most `limit` output (and input) channels are shown. Three
    inputs are drawn as colour only for an ungrouped conv (a grouped one's three are not an image's colours)."""
    limit = check_whole("limit", limit, 1, flag="--limit", hint=" (output and input channels shown)")
    w = weight.detach().float().cpu()
    n_out, n_in, kh, kw = w.shape
    w = w[:limit]
    if sum_inputs:
        tiles, mode, columns = w.sum(1, keepdim=True), "inputs summed", None
    elif n_in == 3 and groups == 1:
        tiles, mode, columns = w, "rgb", None
    elif n_in == 1:
        tiles, mode, columns = w, "grey", None
    else:  # one row per output channel, one column per input channel
        w = w[:, :limit]
        tiles, mode, columns = w.reshape(-1, 1, kh, kw), "pairs", w.shape[1]
    # a grey 1x1 tile holds one value, which stretching it on its own would turn into mid-grey: share the scale
    one_value = kh * kw == 1 and tiles.shape[1] == 1
    shared = shared_scale or one_value
    low, high = (float(v) for v in torch.aminmax(tiles))  # what the grey levels stand for
    tiles = normalize_shared(tiles) if shared else normalize_each(tiles)
    columns = columns or min(tiles.shape[0], math.ceil(math.sqrt(tiles.shape[0])))
    scale = scale or max(1, math.ceil(MIN_TILE_PIXELS / max(kh, kw)))
    _check_scale(scale, tiles.shape[0], columns, (kh, kw), padding)
    normalization = ("shared (1x1 kernels: one value a tile)" if one_value and not shared_scale
                     else "shared (0 is mid-grey)" if shared
                     else "each tile")
    text = {"dreamlab:mode": mode, "dreamlab:normalization": normalization,
            "dreamlab:values": f"{low:.6g} to {high:.6g}",
            "dreamlab:kernel": f"{kh}x{kw}", "dreamlab:scale": str(scale),
            "dreamlab:outputs": f"{min(n_out, limit)} of {n_out}",
            "dreamlab:inputs": f"{w.shape[1] if mode == 'pairs' else n_in} of {n_in}"}
    # on a shared scale the largest weights are white: a grey grid's padding is coloured so that they show
    fill = SHARED_PADDING if shared and tiles.shape[1] == 1 else 1.0
    return TileGrid(upscale(tiles, scale), columns=columns, padding=padding, fill=fill, text=text)


def _grid_pixels(scale: int, n: int, columns: int, kernel: tuple[int, int], padding: int) -> int:
    rows = math.ceil(n / columns)
    return (rows * (kernel[0] * scale + padding) + padding) * (columns * (kernel[1] * scale + padding) + padding)


def _check_scale(scale: int, n: int, columns: int, kernel: tuple[int, int], padding: int) -> None:
    """Refuse a scale whose grid would be larger than the largest image dreamlab reads (io.MAX_IMAGE_PIXELS)."""
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise DreamlabError(f"scale must be a whole number >= 1 (pixels per weight), got {scale!r}")
    if _grid_pixels(scale, n, columns, kernel, padding) <= MAX_IMAGE_PIXELS:
        return
    largest = 1
    while _grid_pixels(largest + 1, n, columns, kernel, padding) <= MAX_IMAGE_PIXELS:
        largest += 1
    raise DreamlabError(f"scale {scale} is out of range for {n} tiles of {kernel[0]}x{kernel[1]} weights; valid: 1 "
                        f"to {largest} (the grid must stay within {MAX_IMAGE_PIXELS // 2 ** 20} Mpixels)")


@checked_keywords
def kernels(model: nn.Module | str | Path, layer: str, *, shared_scale: bool = False, sum_inputs: bool = False,
            limit: int = 64, scale: int | None = None, padding: int = 2, out: str | Path | None = None,
            recipe: object = None, weights: str | Path | None = "default") -> TileGrid:
    """The weights of conv `layer` as a TileGrid (`.image` [C, H, W], `.tiles`, `.geometry()`); saved to `out`.

    `model` is a recipe or torchvision name, a recipe path or an nn.Module (not changed). `scale` enlarges each
    weight to a block of scale x scale pixels (default: tiles at least 28 px wide).
    """
    check_layer(layer)
    check_whole("limit", limit, 1, flag="--limit", hint=" (output and input channels shown)")  # before loading
    module, rec, described, _ = model_and_recipe(model, recipe, weights)
    conv = resolve_layer(module, layer)
    transposed = isinstance(conv, _TRANSPOSED)
    result = kernel_grid(conv_weight(module, layer), shared_scale=shared_scale, sum_inputs=sum_inputs,
                         limit=limit, scale=scale, padding=padding, groups=getattr(conv, "groups", 1))
    result.text = {**provenance(module, rec, described, layer), **result.text}
    if transposed:
        result.text["dreamlab:weight"] = "transposed conv [in, out, kh, kw], shown as [out, in, kh, kw]"
    if out is not None:
        result.save(out)
    return result
