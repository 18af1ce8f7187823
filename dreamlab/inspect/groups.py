"""Neuron groups: a photo's activations at a layer factored into K groups (lucid's "Building Blocks of
Interpretability", Olah et al., Distill 2018).

The layer's activations [C, h, w] (>= 0, after a ReLU) are read as h*w positions of C channels and factored
with NMF (dreamlab.inspect.nmf) into K groups: a map per group [K, h, w] (where in the photo it is active) and a
direction per group [K, C] (which channels make it up, unit length: its scale is in the map). Each direction is
rendered as a feature visualization (`objectives.direction`, all K in one batch), and the figure shows the
photo with every group's map as a colour over it, then per group its render above its map.

>>> digit = torch.zeros(1, 28, 28); digit[:, 6:22, 13:16] = 1
>>> found = neuron_groups("lenet-digits", digit, "relu2", groups=3, render=False)
>>> found.maps.shape, found.directions.shape, bool((found.maps >= 0).all())
(torch.Size([3, 14, 14]), torch.Size([3, 50]), True)
"""
from __future__ import annotations

import colorsys
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamlab.errors import DreamlabError, check_seed, check_whole, checked_keywords, shown
from dreamlab.io import atomic_write_bytes, check_output_file, read_photo, save_png
from dreamlab.inspect.features import (LUMA, at_photo_size, check_photo_size, fitted, normalize, note_enlarged,
                                       photo_activations, photo_text)
from dreamlab.inspect.nmf import MAX_ITERATIONS, TOLERANCE, Factorization, nmf
from dreamlab.inspect.source import check_layer, model_and_recipe, provenance
from dreamlab.inspect.tiles import draw_labels, upscale
from dreamlab.optvis.objectives import MAX_COSSIM_POWER, as_number
from dreamlab.optvis.settings import RenderSettings

DEFAULT_GROUPS = 6  # lucid's building-blocks notebook factors its layers into 6 groups
COSSIM_POWER = 1.0  # lucid's notebook renders the groups with the plain dot product (0); 1 favours the group's own
                    # mix of channels over whichever of them is largest (README "Directions")
OPACITY = 0.7  # how much of a fully active position's colour covers the photo
MAP_PERCENTILE = 0.99  # the combined overlay's scale; ports of lucid's notebook divide by the 99th percentile
MIN_TILE = 64  # pixels a side of a tile at least, so that its label fits
NO_RENDER_TILE = 128  # the tiles' side when nothing is rendered
PADDING = 4
FRAME = 3  # the coloured border around each tile, pixels


@dataclass
class NeuronGroups:
    """K groups of a layer for one photo: maps [K, h, w] (>= 0, activation units), directions [K, C] (>= 0, unit
    length), ordered left to right by where each map peaks (as lucid's notebook), the NMF's relative
    reconstruction error and sweeps, and, when rendered, one image per direction [K, C, H, W] with its score."""

    maps: Tensor
    directions: Tensor
    error: float
    iterations: int
    layer: str
    photo: Tensor  # [3, S, S] in [0, 1]: the photo as the model saw it, before the recipe's mean and std
    colours: list[tuple[float, float, float]]
    renders: Tensor | None = None
    render_scores: Tensor | None = None
    interrupted: bool = False  # Ctrl-C stopped the renders; the maps and directions are whole
    text: dict[str, str] = field(default_factory=dict)  # provenance written into the PNG

    @property
    def shares(self) -> Tensor:
        """Each group's part of the photo's activation along the directions [K]: its map's sum over all maps'."""
        sums = self.maps.flatten(1).sum(1)
        return sums / sums.sum().clamp_min(1e-30)

    def figure(self) -> Tensor:
        """The photo with every group's map in its colour, then per group its render (when rendered, labelled with
        the group's number) above its map over the photo, each framed in its colour: RGB [3, H, W]."""
        k = len(self.maps)
        rows = 1 if self.renders is None else 2
        side = NO_RENDER_TILE if self.renders is None else max(MIN_TILE, *self.renders.shape[-2:])
        cell = side + 2 * FRAME  # the frame goes around a tile: it hides none of a map's border positions
        big = rows * cell + (rows - 1) * PADDING
        canvas = torch.ones(3, big + 2 * PADDING, big + 2 * PADDING + k * (cell + PADDING))
        canvas[:, PADDING:PADDING + big, PADDING:PADDING + big] = self._combined(big)
        maps = torch.stack([self._map_tile(i, side) for i in range(k)])
        top_row = maps if self.renders is None else torch.stack([_fitted_tile(r, side) for r in self.renders])
        # only the top row is numbered: a label on a map would hide the corner where it may peak
        rows_of_tiles = [draw_labels(top_row, [str(i) for i in range(k)])] + ([maps] if rows == 2 else [])
        for row, tiles in enumerate(rows_of_tiles):
            for col, tile in enumerate(tiles):
                top, at = PADDING + row * (cell + PADDING), big + 2 * PADDING + col * (cell + PADDING)
                canvas[:, top:top + cell, at:at + cell] = _framed(tile, self.colours[col])
        return canvas

    def _grey(self, side: int) -> Tensor:
        """The photo in grey at `side` pixels, a little darkened so that the colours stand out: [3, side, side]."""
        grey = (self.photo * torch.tensor(LUMA).view(3, 1, 1)).sum(0, keepdim=True)
        return (0.1 + 0.6 * _resized(grey, side)).expand(3, -1, -1)

    def _combined(self, side: int) -> Tensor:
        """Every group's map over the photo: each position tinted by the groups active there, in proportion."""
        scale = torch.quantile(self.maps.flatten(), MAP_PERCENTILE).clamp_min(1e-30)
        amounts = _resized((self.maps / scale).clamp(0, 1), side)  # [K, side, side]
        colours = torch.tensor(self.colours).T[:, :, None, None]  # [3, K, 1, 1]
        tint = (colours * amounts).sum(1) / amounts.sum(0).clamp_min(1e-12)
        strength = OPACITY * amounts.amax(0)
        return self._grey(side) * (1 - strength) + tint * strength

    def _map_tile(self, i: int, side: int) -> Tensor:
        """Group i's map over the photo in its colour, scaled to its own peak."""
        peak = self.maps[i].max().clamp_min(1e-30)
        amount = OPACITY * _resized((self.maps[i] / peak)[None], side)
        colour = torch.tensor(self.colours[i]).view(3, 1, 1)
        return self._grey(side) * (1 - amount) + colour * amount

    def save(self, path: str | Path) -> Path:
        """Write the figure as a PNG with its provenance; returns the path."""
        path = check_output_file(path)  # a .jpg name would get PNG bytes
        figure = self.figure()
        height, width = figure.shape[1:]
        return save_png(figure, path, {**self.text, "dreamlab:figure_size": f"{height}x{width}"})

    def save_directions(self, path: str | Path) -> Path:
        """Write the directions [K, C] as a .npy file, which `dreamlab render LAYER --direction FILE` renders."""
        path = check_output_file(path, suffixes=(".npy",), what="directions' file")
        buffer = io.BytesIO()
        np.save(buffer, self.directions.numpy().astype(np.float32))
        return atomic_write_bytes(path, buffer.getvalue())


def _resized(maps: Tensor, side: int) -> Tensor:
    """Maps [N, h, w] resized (bilinear) to [N, side, side]."""
    return F.interpolate(maps[None].float(), size=(side, side), mode="bilinear", align_corners=False)[0]


def _fitted_tile(image: Tensor, side: int) -> Tensor:
    """An image [3, H, W] centred on a white square of `side` pixels (it is at most that large), enlarged by the
    largest whole factor that fits (nearest neighbour: lenet-digits' 28 px renders fill a 64 px tile as 56)."""
    tile = torch.ones(3, side, side)
    image = upscale(image[None], side // max(image.shape[-2:]))[0]
    h, w = image.shape[-2:]
    top, left = (side - h) // 2, (side - w) // 2
    tile[:, top:top + h, left:left + w] = image
    return tile


def _framed(tile: Tensor, colour: tuple[float, float, float]) -> Tensor:
    """`tile` [3, H, W] inside a border of `colour`, FRAME pixels wide: [3, H + 2 FRAME, W + 2 FRAME]."""
    out = torch.tensor(colour).view(3, 1, 1).repeat(1, tile.shape[1] + 2 * FRAME, tile.shape[2] + 2 * FRAME)
    out[:, FRAME:-FRAME, FRAME:-FRAME] = tile
    return out


def group_colours(count: int) -> list[tuple[float, float, float]]:
    """`count` colours of evenly spaced hues, saturated and bright, red first."""
    return [colorsys.hsv_to_rgb(i / count, 0.85, 1.0) for i in range(count)]


def _hex(colour: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in colour)


def left_to_right(fit: Factorization, height: int, width: int) -> tuple[Tensor, Tensor]:
    """The maps [K, h, w] and directions [K, C] ordered by the column where each map peaks, as lucid's
    building-blocks notebook orders its groups (ties keep the factorization's order)."""
    maps = fit.spatial.T.reshape(-1, height, width)
    columns = maps.amax(1).argmax(1)
    order = torch.sort(columns, stable=True).indices
    return maps[order], fit.components[order]


def _layer_after(model: nn.Module, layer: str) -> str | None:
    """The module registered next after `layer` and its children, where it is a ReLU (features.22 after a VGG's
    features.21), else None."""
    names = [name for name, _ in model.named_modules()]
    if layer not in names:
        return None
    later = [name for name in names[names.index(layer) + 1:] if not name.startswith(f"{layer}.")]
    if later and isinstance(model.get_submodule(later[0]), (nn.ReLU, nn.ReLU6)):
        return later[0]
    return None


def check_groups_fit(act: Tensor, groups: int, layer: str, model: nn.Module) -> None:
    """The activations [C, h, w] can be factored into `groups`: all >= 0, not all 0, and groups at most the
    channels and the positions."""
    low = float(act.min())
    if low < 0:
        after = _layer_after(model, layer)
        where = f"{after!r} (the ReLU after it)" if after else "a layer after a ReLU"
        raise DreamlabError(f"layer {layer!r} has negative activations for this photo (down to {low:.4g}), and NMF "
                            f"needs values >= 0; use {where}; `dreamlab layers MODEL` lists the layers")
    if not act.any():
        raise DreamlabError(f"layer {layer!r} is 0 everywhere for this photo: no groups to find; try an earlier "
                            f"layer or another photo")
    channels, positions = act.shape[0], act.shape[1] * act.shape[2]
    if groups > min(channels, positions):
        raise DreamlabError(f"groups (--groups) must be from 1 to {min(channels, positions)} at {layer!r}, which "
                            f"has {channels} channels at {act.shape[1]}x{act.shape[2]} = {positions} positions; "
                            f"got {groups}" + ("; a larger --photo-size (photo_size=), where the model takes one, "
                                               "gives more positions" if positions < channels else ""))


def _check_number(name: str, value: object, high: float, hint: str) -> None:
    """`value` is a real number from 0 to `high`; else one line naming it."""
    number = as_number(value)
    if number is None or not 0 <= number <= high:
        raise DreamlabError(f"{name} must be a number from 0 to {high:g}{hint}, got {shown(value, kind=False)}")


@checked_keywords
def neuron_groups(model: nn.Module | str | Path, photo: Tensor | str | Path, layer: str | None = None, *,
                  groups: int = DEFAULT_GROUPS, seed: int = 0, render: bool = True, steps: int | None = None,
                  lr: float | None = None, size: int | tuple[int, int] | None = None, cossim_power: float = COSSIM_POWER,
                  photo_size: int | None = None, device: str | None = None, recipe: object = None,
                  weights: str | Path | None = "default",
                  max_iterations: int = MAX_ITERATIONS, tolerance: float = TOLERANCE, progress: bool = False,
                  out: str | Path | None = None) -> NeuronGroups:
    """Factor `photo`'s activations at `layer` (default: the recipe's default layer) into `groups` neuron groups
    with NMF (seeded by `seed`) and, with `render`, render each group's direction (`steps`, `lr`, `size`, `device`: the
    recipe's where left out; `cossim_power` as `objectives.direction`'s). The photo is read as `features` reads
    it: shorter side to `photo_size` (default: the recipe's input size), centre square. `out`: save the figure.
    """
    from dreamlab.models.loading import load_model

    groups = check_whole("groups", groups, 1, flag="--groups", hint=" (how many neuron groups)")
    check_seed(seed)
    if not isinstance(render, bool):
        raise DreamlabError(f"render must be True or False, got {shown(render)}")
    _check_number("cossim_power", cossim_power, MAX_COSSIM_POWER, " (--cossim-power; 0: the plain dot product)")
    max_iterations = check_whole("max_iterations", max_iterations, 1)
    _check_number("tolerance", tolerance, 1.0, " (the NMF's stopping threshold; 0: run every sweep)")
    photo_size = check_photo_size(photo_size)
    if layer is not None:
        check_layer(layer)
    given = {k: v for k, v in {"steps": steps, "lr": lr, "size": size, "device": device}.items() if v is not None}
    if not render and set(given) - {"device"}:
        raise DreamlabError(f"{' and '.join(f'{k}=' for k in given if k != 'device')} set the renders, which "
                            f"render=False leaves out: drop one of them")
    settings = RenderSettings(seed=seed, **given) if render else None  # its values checked before the work
    if out is not None:
        check_output_file(out, reads=[photo])
    pixels = read_photo(photo)  # before the model loads
    subject = load_model(model, weights) if isinstance(model, (str, Path)) else model
    module, rec, described, _ = model_and_recipe(subject, recipe, "default" if subject is not model else weights)
    layer = layer if layer is not None else rec.default_layer
    if layer is None:
        raise DreamlabError(f"recipe {rec.name!r} names no default layer: give one (`dreamlab layers "
                            f"MODEL` lists them)")
    seen = at_photo_size(module, rec, photo_size)
    note_enlarged(pixels, seen)
    shown_photo = fitted(pixels, seen)
    act = photo_activations(module, seen, layer, normalize(shown_photo, seen))
    check_groups_fit(act, groups, layer, module)
    fit = nmf(act.flatten(1).T, groups, seed=seed, max_iterations=max_iterations, tolerance=tolerance)
    maps, directions = left_to_right(fit, *act.shape[1:])
    colours = group_colours(groups)
    found = NeuronGroups(maps=maps, directions=directions, error=fit.error, iterations=fit.iterations, layer=layer,
                         photo=shown_photo[0].expand(3, -1, -1), colours=colours)
    found.text = {**provenance(module, rec, described, layer), **photo_text(photo, pixels),
                  "dreamlab:photo_size": str(seen.input_size),
                  "dreamlab:preprocess": f"shorter side to {seen.input_size}, centre crop",
                  "dreamlab:groups": str(groups), "dreamlab:map_size": f"{act.shape[1]}x{act.shape[2]}",
                  "dreamlab:nmf": f"HALS, seed {seed}, at most {max_iterations} sweeps, tolerance {tolerance:g}",
                  "dreamlab:nmf_iterations": str(fit.iterations),
                  "dreamlab:reconstruction_error": f"{fit.error:.6g}",
                  "dreamlab:group_order": "left to right by the column of each map's peak",
                  "dreamlab:group_colours": ",".join(_hex(c) for c in colours),
                  "dreamlab:group_shares": ",".join(f"{s:.4g}" for s in found.shares.tolist())}
    if settings is not None:
        _render_groups(found, subject, recipe, cossim_power, settings, progress)
    else:
        found.text["dreamlab:render"] = "none"
    if out is not None:
        found.save(out)
    return found


def _render_groups(found: NeuronGroups, subject: object, recipe: object, cossim_power: float,
                   settings: RenderSettings, progress: bool) -> None:
    """Render each group's direction into `found` (all in one batch); a Ctrl-C keeps what exists."""
    from dreamlab.optvis import objectives as o
    from dreamlab.optvis.engine import render

    objective = o.direction(found.layer, found.directions, cossim_power=cossim_power, name="group")
    try:
        result = render(subject, objective, settings, recipe=recipe, progress=progress)
    except KeyboardInterrupt:  # before the first step: the figure keeps the maps
        found.interrupted = True
        found.text["dreamlab:render"] = "none (interrupted before it started)"
        return
    found.renders, found.render_scores = result.images, result.final_scores
    found.interrupted = result.interrupted
    # the render's settings beside the figure's own (its size is not the photo's): those the figure's differ from
    found.text.update({f"dreamlab:render_{key.removeprefix('dreamlab:')}": value
                       for key, value in result.provenance.items() if found.text.get(key) != value})
    found.text["dreamlab:render_scores"] = ",".join(f"{s:.6g}" for s in result.final_scores.tolist())
    found.text.update(result.interruption_text())
