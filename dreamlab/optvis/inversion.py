"""Feature inversion: what a layer keeps of a photo (Mahendran & Vedaldi 2015, "Understanding Deep Image
Representations by Inverting Them"; lucid's caricatures).

An image is optimized, with the render engine's parameterization and random transforms, so that its activations
at a layer match the photo's position by position (`objectives.match`); the photo goes through each step's
transforms beside it. Shallow layers give the photo back; deeper ones keep its parts and textures and lose their
arrangement and colours. Several layers render in one batch, one image each, to compare depths.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from dreamlab.errors import DreamlabError
from dreamlab.inspect.features import (at_photo_size, check_photo_size, fitted, normalize, note_enlarged,
                                       photo_activations, photo_text)
from dreamlab.inspect.source import check_layer, model_and_recipe
from dreamlab.inspect.tiles import draw_labels, upscale
from dreamlab.io import check_output_file, read_photo, save_png
from dreamlab.models.loading import weights_provenance
from dreamlab.optvis import objectives as o
from dreamlab.optvis.result import RenderResult

MIN_TILE = 96  # small renders (lenet-digits' 28 px) are enlarged by a whole factor to at least this, for the labels
PADDING = 4
REFUSED = ("size", "units", "diversity", "init_image", "alpha", "alpha_weight", "compile")


@dataclass
class Inversion:
    """The photo as the model read it (`photo` [C, S, S] in [0, 1]), one render per layer (`renders`, in the
    order of `layers`), and the PNG text (`text`). `scores[i]`: render i's match to the photo at layer i (1 is
    the photo's own activations; see `objectives.match`)."""

    photo: Tensor
    renders: RenderResult
    layers: list[str]
    mode: str
    text: dict[str, str]

    @property
    def scores(self) -> list[float]:
        return self.renders.final_scores.tolist()

    def figure(self) -> Tensor:
        """The photo, then each layer's render, labelled, left to right: [C, H, W] in [0, 1]."""
        tiles = torch.cat([self.photo[None], self.renders.images.float()])
        tiles = upscale(tiles, max(1, -(-MIN_TILE // max(tiles.shape[-2:]))))
        labels = ["photo"] + [f"{layer} {score:.2f}" for layer, score in zip(self.layers, self.scores)]
        tiles = draw_labels(tiles, labels)
        n, channels, height, width = tiles.shape
        canvas = torch.ones(channels, height + 2 * PADDING, n * (width + PADDING) + PADDING)
        for i, tile in enumerate(tiles):
            left = PADDING + i * (width + PADDING)
            canvas[:, PADDING:PADDING + height, left:left + width] = tile
        return canvas

    @property
    def image(self) -> Image.Image:
        """The figure as a PIL image."""
        return Image.fromarray((self.figure().clamp(0, 1).permute(1, 2, 0) * 255).round().byte().squeeze(-1).numpy())

    def save(self, path: str | Path) -> Path:
        """Write the figure as a PNG with its provenance; returns the path."""
        return save_png(self.figure(), check_output_file(path), self.text)  # a .jpg name would get PNG bytes

    def _repr_png_(self) -> bytes:  # a notebook shows the figure
        from io import BytesIO

        buffer = BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()


def layer_list(layers: str | list[str] | tuple[str, ...]) -> list[str]:
    """'features.8,features.22' or a list of addresses -> the addresses, each checked as a layer address."""
    names = layers.split(",") if isinstance(layers, str) else list(layers) if isinstance(layers, (list, tuple)) \
        else None
    if not names:
        raise DreamlabError(f"layers must be a layer address, a comma-separated list of them or a list, like "
                            f"'features.8,features.22', got {layers!r}"[:200])
    for name in names:
        check_layer(name)
    return names


def invert(model: nn.Module | str | Path, photo: Tensor | str | Path, layers: str | list[str], *,
           mode: str = "match", cossim_power: float = 0.0, photo_size: int | None = None, recipe: object = None,
           weights: str | Path | None = "default", **render_options: Any) -> Inversion:
    """Render, for each of `layers`, an image whose activations there match `photo`'s (`mode="match"`), or
    exaggerate them (`mode="caricature"`, lucid's, with `cossim_power`): `objectives.match`.

    The photo is read as `features` reads it (shorter side to the recipe's input size, or `photo_size` where the
    model takes it; centre square), and the renders have its size. Other keywords (`steps`, `seed`, `lr`,
    `device`, `transforms` (a preset), `param`, `progress`, ...) go to `render`.

    >>> found = invert("hed-vgg16", "china", "features.8,features.22", steps=128)  # doctest: +SKIP
    >>> found.scores                                                                # doctest: +SKIP
    [0.93, 0.71]
    """
    from dreamlab.optvis.engine import render

    names = layer_list(layers)
    photo_size = check_photo_size(photo_size)
    for key in REFUSED:
        if key in render_options:
            what = "the photo's size: give photo_size" if key == "size" else "one image per layer"
            raise DreamlabError(f"invert does not take {key}=: it renders {what}; leave {key} out")
    kind = o.match_kind(mode, cossim_power)  # before the work
    pixels = read_photo(photo, "photo")  # before the model loads
    module, rec, described, _ = model_and_recipe(model, recipe, weights)
    seen = at_photo_size(module, rec, photo_size)
    note_enlarged(pixels, seen)
    shown = fitted(pixels, seen)  # [1, C, S, S] in [0, 1]
    for name in names:  # an unknown layer, or one the photo leaves at 0, is told before the renders
        act = photo_activations(module, seen, name, normalize(shown, seen))
        if not act.any():
            raise DreamlabError(f"layer {name!r} is 0 everywhere for this photo: there is nothing to match; try "
                                f"an earlier layer or another photo")
    objective = o.match(names, shown[0], mode, cossim_power)
    lent = recipe if module is model else rec  # as activation_grid lends it
    result = render(module, objective, recipe=lent, size=seen.input_size, **render_options)
    text = {**result.provenance, **weights_provenance(described), **photo_text(photo, pixels),
            "dreamlab:inversion": kind,
            "dreamlab:layers": ",".join(names), "dreamlab:photo_size": str(seen.input_size),
            "dreamlab:preprocess": f"shorter side to {seen.input_size}, centre crop",
            "dreamlab:scores": ",".join(f"{s:.4g}" for s in result.final_scores.tolist()),
            **result.interruption_text()}
    return Inversion(shown[0], result, names, mode, text)
