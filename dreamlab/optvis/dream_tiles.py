"""Tiles for dreaming on photos larger than a memory budget, and the zoom step of the endless-zoom animation.

A photo too large for one forward pass is cut into square tiles. Each tile is run with `overlap` pixels of
context on every side, and only its core keeps the gradient, so the gradient of a core pixel sees the same
neighbourhood as in one piece. The dream loop rolls the whole image by a random offset before every step, so the
tile borders land somewhere else each time and no seam accumulates.

>>> [t.core for t in tiles(100, 200, tile=128, overlap=32)][:2]
[(slice(0, 64, None), slice(0, 64, None)), (slice(0, 64, None), slice(64, 128, None))]
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# tile corners on multiples of 32 px keep the pooling grids of GoogLeNet and VGG (total stride 32 at most) where
# they are in one piece, so a tile's activations are the same numbers as the one-piece ones away from its border
ALIGN = 32
AUTO_TILE = 1024  # tile="auto": photos up to this side are dreamed in one piece, larger ones in tiles this wide
MIN_CORE = 4 * ALIGN  # a tile keeps at least this much of its side beside its context, or the pieces multiply


def aligned(overlap: int) -> int:
    """The context a tile gets for `overlap`: rounded up to whole ALIGN steps."""
    return math.ceil(overlap / ALIGN) * ALIGN


def smallest_tile(overlap: int) -> int:
    """The smallest tile that keeps MIN_CORE px of its side beside `overlap` px of context on both sides (any tile
    of 64 px or more without context)."""
    return 2 * aligned(overlap) + MIN_CORE if overlap > 0 else 64


@dataclass(frozen=True)
class Tile:
    """`core`: the rows and columns whose gradient this tile provides; `crop`: core plus context (model input)."""

    core: tuple[slice, slice]
    crop: tuple[slice, slice]

    def core_in_crop(self) -> tuple[slice, slice]:
        """Where the core lies inside the crop (rows and columns relative to the crop)."""
        return tuple(slice(c.start - p.start, c.stop - p.start) for c, p in zip(self.core, self.crop))  # type: ignore


def layout(height: int, width: int, tile: int | None, overlap: int) -> tuple[int, int] | None:
    """How `tiles` cuts a height x width image: (each tile's core side, its context on every side), or None for one
    piece. Two (tile, overlap) settings with the same layout give the same tiles, so the same dream."""
    if tile is None or max(height, width) <= tile:
        return None
    overlap = aligned(overlap)
    return max(ALIGN, (tile - 2 * overlap) // ALIGN * ALIGN), overlap


def tiles(height: int, width: int, tile: int | None, overlap: int) -> list[Tile]:
    """The tiles covering a height x width image: one piece when neither side exceeds `tile` (None: never tile)."""
    cut = layout(height, width, tile, overlap)
    if cut is None:
        whole = (slice(0, height), slice(0, width))
        return [Tile(whole, whole)]
    core, overlap = cut
    found = []
    for y in range(0, height, core):
        for x in range(0, width, core):
            rows, cols = slice(y, min(y + core, height)), slice(x, min(x + core, width))
            crop = (slice(max(0, y - overlap), min(height, rows.stop + overlap)),
                    slice(max(0, x - overlap), min(width, cols.stop + overlap)))
            found.append(Tile((rows, cols), crop))
    return found


Score = Callable[[Tensor], tuple[Tensor, int]]  # crop -> (objective [B], positions the objective averaged over)


def _share(part: Tile, height: int, width: int) -> float:
    return (part.core[0].stop - part.core[0].start) * (part.core[1].stop - part.core[1].start) / (height * width)


def tiled_gradient(score: Score, image: Tensor, parts: list[Tile]) -> tuple[Tensor, Tensor]:
    """(d score / d image up to a positive factor, score) of `image` [1, C, H, W], one tile at a time.

    `score(crop)` returns the objective of a crop, a mean over `positions` (of a layer) for layer and channel
    objectives: times `positions` it is a sum, and the sums of the tiles add up to the one-piece sum (the
    gradient of the whole image times its positions; the dream step divides that factor out). The score
    returned weights each tile by its core's share of the image, a mean over the image.
    """
    height, width = image.shape[-2:]
    if len(parts) == 1:
        crop = image.detach().requires_grad_(True)
        value = score(crop)[0].sum()
        return torch.autograd.grad(value, crop)[0], value.detach()
    grad = torch.zeros_like(image)
    total = image.new_zeros(())
    for part in parts:
        crop = image[..., part.crop[0], part.crop[1]].detach().requires_grad_(True)
        value, positions = score(crop)
        value = value.sum()
        rows, cols = part.core_in_crop()
        grad[..., part.core[0], part.core[1]] = torch.autograd.grad(value * positions, crop)[0][..., rows, cols]
        total = total + value.detach() * _share(part, height, width)
    return grad, total


def tiled_score(score: Score, image: Tensor, parts: list[Tile]) -> Tensor:
    """The score of `image` without gradients, tile by tile, each weighted by its core's share."""
    height, width = image.shape[-2:]
    with torch.no_grad():
        return sum((score(image[..., p.crop[0], p.crop[1]])[0].sum() * _share(p, height, width) for p in parts),
                   image.new_zeros(()))


def zoom_rotate(image: Tensor, zoom: float, degrees: float) -> Tensor:
    """`image` [B, C, H, W] magnified by `zoom` about its centre and turned by `degrees` (counter-clockwise), same size.

    Pixels that come from outside the frame (a rotation's corners, a zoom below 1) mirror the border.
    """
    b, _, height, width = image.shape
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    # affine_grid works in [-1, 1] coordinates per axis: the aspect ratio enters the rotation's off-diagonal
    theta = torch.tensor([[cos, -sin * height / width, 0.0], [sin * width / height, cos, 0.0]],
                         dtype=image.dtype, device=image.device)
    grid = F.affine_grid(theta.expand(b, 2, 3), list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
