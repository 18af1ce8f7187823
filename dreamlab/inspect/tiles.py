"""Tile grids for the inspection views: per-tile normalization, integer upscaling, channel labels, geometry.

The layout is the one `torchvision.utils.make_grid` gives (`columns` tiles a row, `padding` pixels around
and between them), so a grid's geometry can be checked against it.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dreamlab.io import check_output_file, grid, save_png


def normalize_each(tiles: Tensor) -> Tensor:
    """Each tile [N, ...] stretched on its own to [0, 1]; a constant tile becomes mid-grey."""
    flat = tiles.flatten(1).float()
    low, high = flat.min(1).values, flat.max(1).values
    span = (high - low).clamp_min(1e-12)
    out = (flat - low[:, None]) / span[:, None]
    out[high - low <= 1e-12] = 0.5
    return out.view_as(tiles)


def normalize_shared(tiles: Tensor) -> Tensor:
    """All tiles on one scale centred on zero: 0 is mid-grey, the largest |value| is black or white."""
    peak = tiles.abs().max().clamp_min(1e-12)
    return (0.5 + tiles.float() / (2 * peak)).clamp(0, 1)


def upscale(tiles: Tensor, scale: int) -> Tensor:
    """Nearest-neighbour enlargement of [N, C, h, w] by an integer factor (each value stays one block)."""
    if scale == 1:
        return tiles
    return tiles.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)


def draw_labels(tiles: Tensor, labels: Sequence[str], *, bottom: bool = False) -> Tensor:
    """Write each label in the top-left (or `bottom`-left) corner of its tile ([N, C, h, w] in [0, 1]), white on a
    black box; a label wider than its tile loses its middle to '...'."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    out = []
    for tile, label in zip(tiles, labels):
        array = (tile.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        image = Image.fromarray(array[..., 0] if tile.shape[0] == 1 else array, mode="L" if tile.shape[0] == 1
                                else "RGB")
        draw = ImageDraw.Draw(image)
        label = _fitted(label, lambda text: draw.textlength(text, font=font), tile.shape[-1] - 4)
        _, top, right, low = draw.textbbox((2, 1), label, font=font)
        shift = tile.shape[-2] - low - 2 if bottom else 0  # the box's bottom edge on the tile's
        draw.rectangle((0, top - 1 + shift if bottom else 0, right + 1, low + 1 + shift), fill=0)
        draw.text((2, 1 + shift), label, fill=255 if tile.shape[0] == 1 else (255, 255, 255), font=font)
        labelled = torch.from_numpy(np.asarray(image).copy()).float() / 255
        out.append(labelled[None] if labelled.dim() == 2 else labelled.permute(2, 0, 1))
    return torch.stack(out)


def _fitted(label: str, width_of: Callable[[str], float], width: float) -> str:
    """`label`, or its start and end around '...' where it is wider than `width` (a file name keeps its suffix)."""
    if width_of(label) <= width:
        return label
    head, tail = label[:len(label) // 2], label[len(label) // 2:]
    while (head or tail) and width_of(f"{head}...{tail}") > width:
        head, tail = (head[:-1], tail) if len(head) > len(tail) else (head, tail[1:])
    return f"{head}...{tail}"


@dataclass
class TileGrid:
    """Tiles [N, C, h, w] in [0, 1] laid out `columns` to a row, the grid image [C, H, W], and what they show."""

    tiles: Tensor
    columns: int
    padding: int = 2
    fill: float | tuple[float, float, float] = 1.0  # the padding: a grey level, or a colour
    text: dict[str, str] = field(default_factory=dict)  # provenance written into the PNG

    @property
    def rows(self) -> int:
        """How many rows the tiles fill."""
        return math.ceil(self.tiles.shape[0] / self.columns)

    @property
    def image(self) -> Tensor:
        """The tiles as one image [C, H, W], `columns` to a row."""
        return grid(self.tiles, columns=self.columns, padding=self.padding, fill=self.fill)

    def geometry(self) -> dict[str, str]:
        """Tile size, counts and padding, as the PNG's provenance records them."""
        n, _, h, w = self.tiles.shape
        height, width = self.image.shape[1:]
        return {"dreamlab:tiles": str(n), "dreamlab:columns": str(self.columns), "dreamlab:rows": str(self.rows),
                "dreamlab:tile_size": f"{h}x{w}", "dreamlab:padding": str(self.padding),
                "dreamlab:grid_size": f"{height}x{width}"}

    def save(self, path: str | Path, extra: Mapping[str, str] | None = None) -> Path:
        """The grid as a PNG with its provenance and geometry in text chunks."""
        path = check_output_file(path)  # a .jpg name would get PNG bytes
        return save_png(self.image, path, {**self.text, **self.geometry(), **(extra or {})})
