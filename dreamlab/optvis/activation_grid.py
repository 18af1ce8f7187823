"""Activation grids (Olah et al. 2018, "The Building Blocks of Interpretability", Distill): what a layer sees at
each place of a photo.

The photo's map at the layer is split into `cells` x `cells` cells; each cell's mean activation vector becomes a
direction (`objectives.direction`), and one image per cell is rendered to point the layer along it. All cells
render in one batch with a shared parameterization, so that cells whose vectors are alike get alike images, and
the renders are tiled in the photo's layout.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from dreamlab.errors import DreamlabError, check_whole
from dreamlab.inspect.features import (at_photo_size, check_photo_size, note_enlarged, photo_activations, preprocess,
                                       to_channels)
from dreamlab.inspect.source import check_layer, model_and_recipe
from dreamlab.io import check_output_file, image_record, read_photo, save_png
from dreamlab.models.loading import weights_provenance
from dreamlab.models.prepare import model_device, takes_size
from dreamlab.optvis import objectives as o
from dreamlab.optvis.params import FourierParam, ImageParam, Generators
from dreamlab.optvis.result import RenderResult
from dreamlab.optvis.settings import INIT_SD, RenderSettings

# lucid's activation-grid notebook (building-blocks, "render_activation_grid_less_naive"): a cell's image is 0.7
# times its own image plus 0.5 times a weighted sum of shared images, before the colour mapping
OWN_WEIGHT = 0.7
SHARED_WEIGHT = 0.5
DEFAULT_CELL_SIZE = 64
DEFAULT_COSSIM_POWER = 1.0  # the Building Blocks article scores directions by dot product times cosine


@dataclass
class ActivationGrid:
    """The tiled renders (`pixels`; `image` as PIL: cells x cells tiles in the photo's layout), the render of
    every cell (`renders`, row by row), the photo's mean activation vector in each cell (`vectors`
    [cells * cells, C], in the same order) and the PNG text (`text`)."""

    pixels: Tensor  # [C, cells * cell_size, cells * cell_size] in [0, 1]
    renders: RenderResult
    vectors: Tensor
    cells: int
    text: dict[str, str]

    @property
    def image(self) -> Image.Image:
        """The tiled renders as a PIL image."""
        return Image.fromarray((self.pixels.clamp(0, 1).permute(1, 2, 0) * 255).round().byte().squeeze(-1).numpy())

    def save(self, path: str | Path) -> Path:
        """Write the tiled image as a PNG with its provenance; returns the path."""
        return save_png(self.pixels, check_output_file(path), self.text)  # a .jpg name would get PNG bytes

    def _repr_png_(self) -> bytes:  # a notebook shows the grid
        from io import BytesIO

        buffer = BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()


def sharing(vectors: Tensor) -> Tensor:
    """[N, N] weights by which cell i reads the shared image of cell j: the cosine similarity of their vectors
    after the mean over cells is taken away, floored at 0, each row summing to 1. Centred, cells that stand out
    alike (sky beside sky) share, and cells unlike each other (sky and trees) do not; a cell always reads its
    own. (lucid groups the cells by NMF instead; this needs no factorization.)"""
    centred = vectors - vectors.mean(0, keepdim=True)
    unit = centred / (centred.norm(dim=1, keepdim=True) + o.COSSIM_EPS)
    weights = (unit @ unit.T).clamp_min(0).fill_diagonal_(1.0)
    return weights / weights.sum(1, keepdim=True)


class SharedFourierParam(ImageParam):
    """One Fourier image per cell plus shared ones: cell i's raw image is OWN_WEIGHT times its own plus `shared`
    times the `mix[i]`-weighted sum of the shared images (lucid's grid parameterization)."""

    def __init__(self, batch: int, channels: int, height: int, width: int, *, mix: Tensor, shared: float,
                 generator: Generators = None, device: torch.device | str | None = None, **options: Any):
        if batch != mix.shape[0]:  # the mix couples every cell: they render in one batch
            raise DreamlabError(f"an activation grid renders its {mix.shape[0]} cells in one batch, got {batch}; "
                                f"leave batch_size unset")
        start_level = options.pop("start_level", 0.5)
        super().__init__(channels, start_level=start_level, device=device)
        self.own = FourierParam(batch, channels, height, width, generator=generator, device=device, **options)
        # drawn after the own images from the same per-cell generators: the same seed gives the same start
        self.common = FourierParam(batch, channels, height, width, generator=generator, device=device, **options)
        self.register_buffer("mix", mix.to(device), persistent=False)
        self.shared = shared

    def raw(self) -> Tensor:
        """[B, C, H, W]: each cell's own raw image and its share of the others'."""
        common = torch.einsum("ij,jchw->ichw", self.mix, self.common.raw())
        return OWN_WEIGHT * self.own.raw() + self.shared * common


def cell_vectors(act: Tensor, cells: int, layer: str) -> Tensor:
    """The mean activation vector [cells * cells, C] of each cell of the map `act` [C, h, w], row by row."""
    h, w = act.shape[1:]
    if cells > min(h, w):
        raise DreamlabError(f"cells={cells} is more than layer {layer!r} can split its map of the photo into "
                            f"({h} high x {w} wide): give cells from 1 to {min(h, w)}, or an earlier layer with a "
                            f"larger map")
    pooled = F.adaptive_avg_pool2d(act[None].float(), cells)[0]  # [C, cells, cells]
    vectors = pooled.flatten(1).T.contiguous()
    dead = (vectors == 0).all(1).nonzero().flatten().tolist()
    if dead:
        row, col = divmod(dead[0], cells)
        raise DreamlabError(f"cell row {row}, column {col} of layer {layer!r} is 0 in every channel on this photo, "
                            f"which points in no direction; give fewer cells, or another layer")
    return vectors


def activation_grid(model: nn.Module | str | Path, photo: Tensor | str | Path, layer: str, *, cells: int = 6,
                    cell_size: int = DEFAULT_CELL_SIZE, cossim_power: float = DEFAULT_COSSIM_POWER,
                    shared: float = SHARED_WEIGHT, photo_size: int | None = None, recipe: object = None,
                    weights: str | Path | None = "default", **render_options: Any) -> ActivationGrid:
    """Render what `layer` sees in each of `cells` x `cells` cells of `photo` and tile the renders as the photo.

    `photo` is a [C, H, W] tensor in [0, 1], a PNG/JPEG path, or 'china'/'flower'; it goes through the recipe's
    preprocessing (shorter side to the input size, or to `photo_size` for a finer map where the model takes it;
    centre crop; a smaller photo is enlarged, with a DreamlabNote). Each
    cell renders at `cell_size` px along its vector, scored by `objectives.direction` with `cossim_power` (a model
    that takes no other size than its recipe's sees each cell resized to that, `model_size`);
    `shared` (0 to 1; 0: independent cells) weighs the images cells share with cells alike. Other keywords
    (`steps`, `seed`, `device`, `lr`, `transforms`, `progress`, ...) go to `render`; `fourier_decay` and `init_sd`
    to the Fourier images.

    >>> grid = activation_grid("hed-vgg16", "china", "features.22", cells=4, steps=64)  # doctest: +SKIP
    >>> grid.image.size, grid.vectors.shape                                              # doctest: +SKIP
    ((256, 256), torch.Size([16, 512]))
    """
    from dreamlab.optvis.engine import render

    check_layer(layer)
    cells = check_whole("cells", cells, 1, flag="--cells", hint=" (the grid is cells x cells)")
    cell_size = check_whole("cell_size", cell_size, 8, flag="--cell-size", hint=" (each cell's render, in px)")
    photo_size = check_photo_size(photo_size)
    number = o.as_number(shared)
    if number is None or not 0 <= number <= 1:
        raise DreamlabError(f"shared must be a number from 0 (independent cells) to 1, got {shared!r}; lucid uses "
                            f"{SHARED_WEIGHT}"[:200])
    for key in ("param", "size", "batch_size", "units", "diversity", "init_image", "alpha", "alpha_weight"):
        if key in render_options:
            raise DreamlabError(f"activation_grid does not take {key}=: it renders one {cell_size}-px image per "
                                f"cell, all in one batch, from shared random Fourier images; leave it out")
    # the Fourier images' own settings, checked as render checks them, go to the parameterization
    given = RenderSettings(fourier_decay=render_options.pop("fourier_decay", None),
                           init_sd=render_options.pop("init_sd", None))
    image = read_photo(photo, "photo")  # before the model loads
    module, rec, described, _ = model_and_recipe(model, recipe, weights)
    to_channels(image, rec)  # a wrong shape says so, before its last two sides are read as a size
    seen = at_photo_size(module, rec, photo_size)
    note_enlarged(image, seen)
    act = photo_activations(module, seen, layer, preprocess(image, seen))
    vectors = cell_vectors(act, cells, layer)
    objective = o.direction(layer, vectors, cossim_power=cossim_power, name="cell")
    settings = rec.for_layers([layer])
    decay = settings.fourier_decay if given.fourier_decay is None else given.fourier_decay
    factory = _factory(sharing(vectors), float(number), decay, settings.start_level,
                       INIT_SD if given.init_sd is None else given.init_sd)
    if "model_size" not in render_options and cell_size != rec.input_size and \
            not takes_size(module, rec.channels, cell_size, model_device(module)):
        render_options["model_size"] = rec.input_size  # a fixed-size model (lenet-digits, a ViT) sees cells resized
    # a caller's module gets its recipe as given: a shipped recipe's name lent to it is checked as render checks
    # one (its default layers are the shipped model's), where the parsed recipe would be checked as its own
    lent = recipe if module is model else rec
    result = render(module, objective, recipe=lent, param=factory, size=cell_size, **render_options)
    tiles = result.images.reshape(cells, cells, *result.images.shape[1:])  # [row, col, C, s, s]
    pixels = tiles.permute(2, 0, 3, 1, 4).reshape(result.images.shape[1], cells * cell_size, cells * cell_size)
    name = "tensor" if isinstance(photo, Tensor) else Path(photo).name
    # render was handed the loaded module: where its weights came from is known here, not there
    text = {**result.provenance, **weights_provenance(described), **{f"dreamlab:image_{k}" if k != "name" else "dreamlab:image": v
                                   for k, v in image_record(name, photo, image).items()},
            "dreamlab:layer": layer,  # as features and groups record it (the objective names it too)
            "dreamlab:photo_size": str(seen.input_size),  # dreamlab:size is the render's
            "dreamlab:preprocess": f"shorter side to {seen.input_size}, centre crop",
            "dreamlab:activation_grid": f"{cells}x{cells}", "dreamlab:cell_size": str(cell_size),
            "dreamlab:photo_map": f"{act.shape[1]}x{act.shape[2]}", "dreamlab:shared": f"{number:g}",
            "dreamlab:param": f"lucid's grid: {OWN_WEIGHT:g} own + {number:g} shared Fourier images",
            "dreamlab:fourier_decay": f"{decay:g}",
            "dreamlab:scores": ",".join(f"{s:.4g}" for s in result.final_scores.tolist()),
            **result.interruption_text()}
    return ActivationGrid(pixels, result, vectors, cells, text)


def _factory(mix: Tensor, shared: float, decay: float, start_level: float, sd: float):
    """The render's param factory: `SharedFourierParam` over `mix` with the Fourier decay, start level and
    spread of the random start."""
    def make(batch: int, channels: int, height: int, width: int, *, generator: Generators = None,
             device: torch.device | str | None = None) -> SharedFourierParam:
        return SharedFourierParam(batch, channels, height, width, mix=mix, shared=shared, generator=generator,
                                  device=device, sd=sd, decay_power=decay, start_level=start_level)

    make.__name__ = "activation_grid"
    return make
