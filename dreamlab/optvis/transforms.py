"""Random per-sample transforms that make rendered images robust (pad, jitter, scale, rotation).

All of a preset's geometry is folded into one affine warp per sample (kornia's `warp_affine`), with every
random draw taken from an explicit `torch.Generator`: same seed, same transforms.

>>> t = RandomTransforms.preset("standard")
>>> t(torch.rand(8, 3, 224, 224), torch.Generator().manual_seed(0)).shape
torch.Size([8, 3, 236, 236])
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_affine_matrix2d, warp_affine
from torch import Tensor

from dreamlab.errors import unknown


@dataclass(frozen=True)
class RandomTransforms:
    """Pad with grey, then translate, scale and rotate each sample by independent random amounts."""

    pad: int = 0  # pixels of constant grey added on every side
    translate: float = 0.0  # maximum shift in pixels, each axis, uniform in [-translate, translate]
    scale: tuple[float, float] = (1.0, 1.0)  # uniform scale range
    degrees: float = 0.0  # maximum rotation, uniform in [-degrees, degrees]
    crop: int = 0  # pixels dropped from every side after the warp (lucid's jitter crops as it shifts)
    fill: float = 0.5

    @staticmethod
    def preset(name: str) -> RandomTransforms:
        """A named preset: 'standard' (ImageNet-size models), 'small' (28 px digits), 'jitter', 'none'."""
        if name not in PRESETS:
            raise unknown("transforms preset", name, PRESETS)
        return PRESETS[name]

    DRAWS_PER_SAMPLE = 4  # x shift, y shift, scale, angle

    @property
    def is_identity(self) -> bool:
        return self.pad == 0 and self.translate == 0 and self.scale == (1.0, 1.0) and self.degrees == 0

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        grow = 2 * (self.pad - self.crop)
        return height + grow, width + grow

    def __call__(self, images: Tensor, generator: torch.Generator | None = None, draws: Tensor | None = None) -> Tensor:
        """Transform each sample; `draws` [B, 4] of uniforms in [0, 1) replace drawing from `generator`."""
        if self.is_identity:
            return images
        if self.pad:
            images = F.pad(images, [self.pad] * 4, value=self.fill)
        if self.translate == 0 and self.scale == (1.0, 1.0) and self.degrees == 0:
            return images
        b, c, h, w = images.shape
        if draws is None:
            draws = torch.rand(b, 4, generator=generator, device=images.device, dtype=images.dtype)
        draws = draws.to(images.dtype)
        translations = (draws[:, 0:2] * 2 - 1) * self.translate
        lo, hi = self.scale
        scale = (lo + (hi - lo) * draws[:, 2:3]).expand(b, 2)
        angle = (draws[:, 3] * 2 - 1) * self.degrees
        center = torch.tensor([(w - 1) / 2, (h - 1) / 2], device=images.device, dtype=images.dtype).expand(b, 2)
        matrix = get_affine_matrix2d(translations, center, scale, angle)[:, :2]
        fill = torch.full((c,), self.fill, device=images.device, dtype=images.dtype)
        warped = warp_affine(images, matrix, (h, w), padding_mode="fill", fill_value=fill, align_corners=True)
        return warped[..., self.crop:h - self.crop, self.crop:w - self.crop] if self.crop else warped


# 'standard' follows lucid's standard_transforms (pad 12 with grey, jitter 8 then 4, scale 0.9-1.1, rotation
# +-10 degrees; Olah et al., Distill 2017), with both jitters folded into one shift of up to 6 px and their
# crops (8 + 4 px) into one of 6 px a side: a 224 px image reaches the model at 236 px, as in lucid.
PRESETS: dict[str, RandomTransforms] = {
    "standard": RandomTransforms(pad=12, translate=6, scale=(0.9, 1.1), degrees=10, crop=6),
    # for small fixed-size inputs (28 px digits): no padding, so a model ending in a fixed-size FC layer still fits
    "small": RandomTransforms(translate=2, scale=(0.9, 1.1), degrees=8),
    "jitter": RandomTransforms(pad=4, translate=4),
    "none": RandomTransforms(),
}

__all__ = ["RandomTransforms", "PRESETS"]
