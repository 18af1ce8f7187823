"""Feature maps: what a photo makes a layer's channels do, the strongest channels first.

The photo goes through the recipe's preprocessing (shorter side resized to the input size, centre crop,
the recipe's channel count, mean and std), the model runs up to the layer under `capture`, and the top K
channels by mean activation are tiled, each labelled with its channel index.

>>> digit = torch.zeros(1, 28, 28); digit[:, 6:22, 13:16] = 1   # a photo path, a sample name or a tensor
>>> maps = features("lenet-digits", "conv1", digit, top=4)
>>> maps.maps.shape, maps.channels                              # the 4 strongest channels, strongest first
(torch.Size([4, 28, 28]), [6, 17, 1, 4])
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dreamlab.errors import DreamlabError, DreamlabNote, check_whole, checked_keywords
from dreamlab.io import centre_crop, cover, image_record, read_photo, shape_hint
from dreamlab.inspect.source import check_layer, forward_error, model_and_recipe, provenance
from dreamlab.models.layout import token_maps
from dreamlab.models.prepare import FORWARD_ERRORS
from dreamlab.inspect.tiles import TileGrid, draw_labels, normalize_each, upscale
from dreamlab.models.recipe import Recipe

DEFAULT_TOP = 64  # layers with more channels show their 64 strongest unless --top says otherwise
MIN_TILE_PIXELS = 64  # small maps are enlarged (nearest neighbour) so the labels fit
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights, as PIL's RGB -> L conversion uses


@dataclass
class FeatureMaps:
    """The top channels' activation maps [K, h, w] (raw values), their channels and means, and the grid;
    `channel_means` holds every channel's mean activation [C] in channel order (the photo as a direction in the
    layer's channel space, for `objectives.direction`)."""

    maps: Tensor
    channels: list[int]
    means: Tensor
    input: Tensor  # the preprocessed model input [1, C, S, S]
    grid: TileGrid
    channel_means: Tensor

    def save(self, path: str | Path) -> Path:
        """Write the grid as a PNG with its provenance; returns the path."""
        return self.grid.save(path)


def preprocess(photo: Tensor, recipe: Recipe) -> Tensor:
    """[C, H, W] in [0, 1] -> the model input [1, C', S, S]: shorter side to S, centre crop, channels, mean/std.

    A photo longer than MAX_ASPECT times its shorter side is cut to its centre span of that length first: the
    centre square is all that is kept, and an 8000x1 strip would otherwise be resized to 224 x 1.8M pixels
    (10 GB) before the crop."""
    return normalize(fitted(photo, recipe), recipe)


def fitted(photo: Tensor, recipe: Recipe) -> Tensor:
    """[C, H, W] in [0, 1] -> [1, C', S, S] in [0, 1], as `preprocess` crops it before the mean and std."""
    side = recipe.input_size
    return centre_crop(shorter_side_to(centre_span(to_channels(photo, recipe)), side), (side, side))


MAX_ASPECT = 4  # a span 4x the shorter side keeps the centre square and the few pixels the resize filter reads


def centre_span(photo: Tensor) -> Tensor:
    """[C, H, W] with its longer side cut, about the centre, to at most MAX_ASPECT times its shorter side."""
    h, w = photo.shape[-2:]
    keep_h, keep_w = min(h, MAX_ASPECT * w), min(w, MAX_ASPECT * h)
    keep_h, keep_w = keep_h + (h - keep_h) % 2, keep_w + (w - keep_w) % 2  # cut as much off each end: same centre
    top, left = (h - keep_h) // 2, (w - keep_w) // 2
    return photo[..., top:top + keep_h, left:left + keep_w]


def to_channels(photo: Tensor, recipe: Recipe) -> Tensor:
    """A photo [1 or 3, H, W] with the recipe's channels: RGB greyed for a 1-channel model, grey repeated for RGB."""
    if photo.dim() != 3 or photo.shape[0] not in (1, 3):
        raise DreamlabError(f"expected an image [1 or 3, H, W], got shape {list(photo.shape)}"
                            f"{shape_hint(list(photo.shape), 'image')}")
    if photo.shape[0] == 3 and recipe.channels == 1:
        return (photo * torch.tensor(LUMA).view(3, 1, 1)).sum(0, keepdim=True)
    if photo.shape[0] == 1 and recipe.channels == 3:
        return photo.expand(3, -1, -1)
    if photo.shape[0] != recipe.channels:
        raise DreamlabError(f"the photo has {photo.shape[0]} channels; {recipe.name} takes {recipe.channels}")
    return photo


def shorter_side_to(photo: Tensor, side: int) -> Tensor:
    """[C, H, W] resized (antialiased) so that its shorter side is `side`, whole: [1, C, h, w]."""
    return cover(photo[None], (side, side)).clamp(0, 1)


def normalize(x: Tensor, recipe: Recipe) -> Tensor:
    """Images [B, C, H, W] in [0, 1] as the model reads them: minus the recipe's mean, over its std."""
    return (x - torch.tensor(recipe.mean).view(1, -1, 1, 1)) / torch.tensor(recipe.std).view(1, -1, 1, 1)


def check_photo_size(photo_size: int | None) -> int | None:
    """`photo_size` (--photo-size: the photo's shorter side as the model sees it), a whole number of pixels from
    the smallest render size to the largest input; None is the recipe's input size."""
    from dreamlab.models.summary import MAX_INPUT_SIZE
    from dreamlab.optvis.settings import MIN_SIZE

    if photo_size is None:
        return None
    return check_whole("photo_size (--photo-size)", photo_size, MIN_SIZE, MAX_INPUT_SIZE,
                       hint=" (pixels: the photo's shorter side as the model sees it)")


def at_photo_size(model: nn.Module, recipe: Recipe, photo_size: int | None) -> Recipe:
    """`recipe` with `photo_size` as the side the photo is read at (None: the recipe's own), refused in one line
    where the model takes no input of that size (a fixed-size model: lenet-digits, a ViT)."""
    from dreamlab.models.prepare import model_device, takes_size

    if photo_size is None or photo_size == recipe.input_size:
        return recipe
    if not takes_size(model, recipe.channels, photo_size, model_device(model)):
        raise DreamlabError(f"photo_size (--photo-size) {photo_size}: {recipe.name} takes no input of that size (its "
                            f"recipe's is {recipe.input_size} px); leave it out, or give a size the model takes")
    return dataclasses.replace(recipe, input_size=photo_size)


def note_enlarged(photo: Tensor, recipe: Recipe) -> None:
    """A DreamlabNote where the photo's shorter side is under the side `recipe` reads it at: it is enlarged to
    that, as features, groups and grid all do, and what the layer sees of it is blurred."""
    # read as the model will read it first: a photo in another layout (H, W, C) is refused, not noted as small
    (h, w), side = to_channels(photo, recipe).shape[-2:], recipe.input_size
    if min(h, w) < side:
        warnings.warn(DreamlabNote(f"the photo is {w}x{h} px, smaller than the {side} px (shorter side) that "
                                   f"{recipe.name} reads it at: it is enlarged, so the layer sees its blur; give a "
                                   f"photo at least {side} px on each side for a sharper one"), stacklevel=3)


def photo_activations(model: nn.Module, recipe: Recipe, layer: str, x: Tensor) -> Tensor:
    """`activations` of a preprocessed photo `x`, a size the model rejects told in one line (`forward_error`)."""
    try:
        return activations(model, layer, x)
    except FORWARD_ERRORS as exc:
        error = forward_error(model, recipe, x.shape, exc)
        if error is None:
            raise
        raise error from None


def activations(model: nn.Module, layer: str, x: Tensor) -> Tensor:
    """The output [C, h, w] of `layer` for one input, with the model in eval mode and left as it was found."""
    from dreamlab.optvis.capture import Capture
    from dreamlab.models.prepare import model_device, prepared_model, raw_size_errors

    device = model_device(model) or torch.device("cpu")
    with prepared_model(model, device, channels_last=False, owned=False) as ready, torch.no_grad(), \
            raw_size_errors(), Capture(ready, [layer]) as cap:  # a rejected size: told by features(), forward_error
        act = cap.run(x.to(device))[layer][0].float().cpu()
    if act.dim() == 2:  # tokens, read as [D, N]
        act = token_maps(act, layer)
    if act.dim() != 3:
        raise DreamlabError(f"layer {layer!r} outputs shape {list(act.shape)}, not feature maps [C, H, W]; "
                            f"pick a convolutional layer (`dreamlab layers MODEL` lists shapes)")
    if act.shape[1] * act.shape[2] == 1:
        raise DreamlabError(f"layer {layer!r} outputs 1x1 maps (one value per channel), which show no pattern; "
                            f"pick an earlier layer with larger maps (`dreamlab layers MODEL` lists shapes)")
    return act


def photo_text(image: Tensor | str | Path, photo: Tensor) -> dict[str, str]:
    """The PNG text that names the input photo: `dreamlab:image`, and its sha256 (`io.image_record`)."""
    name = "tensor" if isinstance(image, Tensor) else Path(image).name
    return {f"dreamlab:image_{key}" if key != "name" else "dreamlab:image": value
            for key, value in image_record(name, image, photo).items()}


@checked_keywords
def features(model: nn.Module | str | Path, layer: str, image: Tensor | str | Path, *, top: int | None = None,
             out: str | Path | None = None, recipe: object = None, weights: str | Path | None = "default",
             padding: int = 2) -> FeatureMaps:
    """The activation maps `image` produces at `layer`: the `top` channels by mean activation (default: all
    for layers of up to 64 channels, else the 64 strongest), as raw maps and as a labelled grid (saved to `out`).

    `image` is a [C, H, W] tensor in [0, 1], a PNG/JPEG path, or 'china'/'flower' (scikit-learn's photos).
    """
    check_layer(layer)
    if top is not None:
        top = check_whole("top", top, 1, flag="--top", hint=" (how many channels to show)")
    photo = read_photo(image)  # before the model loads
    module, rec, described, _ = model_and_recipe(model, recipe, weights)
    note_enlarged(photo, rec)
    x = preprocess(photo, rec)
    act = photo_activations(module, rec, layer, x)
    count = act.shape[0]
    k = min(count, top if top is not None else DEFAULT_TOP)
    means = act.mean((1, 2))
    order = torch.sort(means, descending=True, stable=True).indices[:k]
    maps = act[order]
    h, w = maps.shape[1:]
    scale = max(1, math.ceil(MIN_TILE_PIXELS / max(h, w)))
    stretched = normalize_each(maps)
    # a channel that is off everywhere is black, not the mid-grey that other constant maps get
    stretched[(maps == 0).flatten(1).all(1)] = 0.0
    tiles = upscale(stretched[:, None], scale)
    channels = order.tolist()
    tiles = draw_labels(tiles, [str(c) for c in channels])
    text = {**provenance(module, rec, described, layer), **photo_text(image, photo),
            "dreamlab:photo_size": str(rec.input_size),
            "dreamlab:preprocess": f"shorter side to {rec.input_size}, centre crop",
            "dreamlab:channels": ",".join(map(str, channels)),
            "dreamlab:means": ",".join(f"{m:.6g}" for m in means[order].tolist()),
            "dreamlab:order": "mean activation, descending",
            "dreamlab:normalization": "each tile (a channel 0 everywhere is black)", "dreamlab:scale": str(scale)}
    grid = TileGrid(tiles, columns=min(k, math.ceil(math.sqrt(k))), padding=padding, text=text)
    result = FeatureMaps(maps=maps, channels=channels, means=means[order], input=x, grid=grid,
                         channel_means=means)
    if out is not None:
        result.save(out)
    return result
