"""Random per-sample transforms that make rendered images robust (pad, jitter, scale, rotation).

All of a preset's geometry is folded into one affine warp per sample (kornia's `warp_affine`), with every
random draw taken from an explicit `torch.Generator`: same seed, same transforms.

User transforms (kornia augmentations, an `nn.Sequential`, plain callables, or a list of them) run in order
through `CallableTransforms`. kornia draws its random parameters from torch's global RNG, so the render runs
them inside `seeded_rng`, which forks that RNG and seeds it from the render's seed and step: same seed, same
images, and the caller's RNG state is left as it was.

>>> t = RandomTransforms.preset("standard")
>>> t(torch.rand(8, 3, 224, 224), torch.Generator().manual_seed(0)).shape
torch.Size([8, 3, 236, 236])
"""
from __future__ import annotations

import dataclasses
import numbers
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_affine_matrix2d, warp_affine
from torch import Tensor, nn

from dreamlab.errors import DreamlabError, check_whole, shown, unknown


@dataclass(frozen=True)
class RandomTransforms:
    """Pad with grey, then translate, scale and rotate each sample by independent random amounts."""

    pad: int = 0  # pixels of constant grey added on every side
    translate: float = 0.0  # maximum shift in pixels, each axis, uniform in [-translate, translate]
    scale: tuple[float, float] = (1.0, 1.0)  # uniform scale range
    degrees: float = 0.0  # maximum rotation, uniform in [-degrees, degrees]
    crop: int = 0  # pixels dropped from every side after the warp (lucid's jitter crops as it shifts)
    fill: float = 0.5

    def __post_init__(self) -> None:
        """Refuse amounts that cannot work, in one line, where the transforms are made (a user's own ones too)."""
        check_whole("RandomTransforms pad", self.pad, 0, 2048)
        check_whole("RandomTransforms crop", self.crop, 0, 2048)
        _amount("translate", self.translate, 0, 2048, "pixels")
        _amount("degrees", self.degrees, 0, 180, "degrees")
        _amount("fill", self.fill, 0, 1, "(a grey level)")
        if not isinstance(self.scale, (tuple, list)) or len(self.scale) != 2:
            raise DreamlabError(f"RandomTransforms scale must be a range (low, high) such as (0.9, 1.1), got "
                                f"{shown(self.scale, kind=False)}")
        for bound in self.scale:
            _amount("scale", bound, 0.05, 20, "(a factor)")
        if self.scale[0] > self.scale[1]:
            raise DreamlabError(f"RandomTransforms scale {tuple(self.scale)} runs from high to low; give (low, high), "
                                f"such as {tuple(sorted(self.scale))}")
        object.__setattr__(self, "scale", (float(self.scale[0]), float(self.scale[1])))  # frozen: hashable, comparable

    @staticmethod
    def preset(name: str) -> RandomTransforms:
        """A named preset: 'standard' (ImageNet-size models), 'small' (28 px digits), 'jitter', 'none'."""
        if name not in PRESETS:
            raise unknown("transforms preset", name, PRESETS)
        return PRESETS[name]

    DRAWS_PER_SAMPLE = 4  # x shift, y shift, scale, angle

    @property
    def is_identity(self) -> bool:
        """Whether the transforms leave every image as it is."""
        return self.pad == 0 and self.translate == 0 and self.scale == (1.0, 1.0) and self.degrees == 0

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The size of an image of `height` x `width` after the padding and the crop."""
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
        # filled on the device: torch.tensor([...], device=cuda) would copy from the host and wait for the GPU
        center = torch.stack([torch.full((b,), (w - 1) / 2, device=images.device, dtype=images.dtype),
                              torch.full((b,), (h - 1) / 2, device=images.device, dtype=images.dtype)], 1)
        matrix = get_affine_matrix2d(translations, center, scale, angle)[:, :2]
        fill = torch.full((c,), self.fill, device=images.device, dtype=images.dtype)
        warped = warp_affine(images, matrix, (h, w), padding_mode="fill", fill_value=fill, align_corners=True)
        return warped[..., self.crop:h - self.crop, self.crop:w - self.crop] if self.crop else warped


def _amount(name: str, value: object, low: float, high: float, unit: str) -> None:
    """Refuse a RandomTransforms amount that is no real number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= float(value) <= high:
        raise DreamlabError(f"RandomTransforms {name} must be a number from {low:g} to {high:g} {unit}, got "
                            f"{shown(value, kind=False)}")


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



def size_keeping_presets() -> list[str]:
    """The presets that hand the model an image of the size they were given: those a fixed-size model takes."""
    return [name for name, preset in PRESETS.items() if preset.output_size(64, 64) == (64, 64)]


class CallableTransforms:
    """User transforms applied in order; their randomness comes from torch's global RNG (see `seeded_rng`)."""

    def __init__(self, functions: Sequence[Callable[[Tensor], Tensor]]):
        self.functions = tuple(functions)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None,
                 draws: Tensor | None = None) -> Tensor:
        for function in self.functions:
            given = images
            images = function(given)
            _check_output(function, given, images)
        return images


def _check_output(function: Callable[[Tensor], Tensor], given: Tensor, images: object) -> None:
    """A user transform must give a batch of as many images, with their channels, that the gradient flows through
    (otherwise the error would surface later as the objective's)."""
    name = getattr(function, "__name__", type(function).__name__)
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[:2] != given.shape[:2]:
        got = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise DreamlabError(f"the transform {name} turned images {list(given.shape)} into {got}; a transform keeps "
                            f"the batch and the channels, [{given.shape[0]}, {given.shape[1]}, H, W] (kornia "
                            f"augmentations: keepdim=False)")
    if given.requires_grad and not images.requires_grad:
        raise DreamlabError(f"the transform {name} cut the gradient (its output does not depend on the image): "
                            f"compute it with differentiable torch ops, without .detach(), .numpy() or "
                            f"torch.no_grad()")


TransformSpec = str | RandomTransforms | Callable[[Tensor], Tensor] | Sequence[Callable[[Tensor], Tensor]]


def make_transforms(spec: TransformSpec, fill: float = 0.5) -> RandomTransforms | CallableTransforms:
    """A preset name (uncovered canvas shown at `fill`), a RandomTransforms, or user callables (one, a list, an
    `nn.Sequential`), e.g. `[kornia.augmentation.RandomAffine(10, p=1.0), lambda x: x.flip(-1)]`."""
    if isinstance(spec, str):
        return dataclasses.replace(RandomTransforms.preset(spec), fill=fill)
    if isinstance(spec, RandomTransforms):
        return spec
    functions = list(spec) if isinstance(spec, (list, tuple, nn.Sequential)) else [spec]
    for function in functions:
        if not callable(function):
            raise DreamlabError(f"transforms must be a preset name ({', '.join(PRESETS)}), or callables from images "
                                f"[B,C,H,W] to images (kornia augmentations, functions), got "
                                f"{type(function).__name__}")
    return CallableTransforms(functions)


@contextmanager
def seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's global RNG (CPU and `device`) seeded with `seed` inside, restored to the caller's state after;
    NumPy's and Python's global RNGs too, which ported transforms (lucent's jitter, random_scale) draw from."""
    devices = [device.index or 0] if device.type == "cuda" else []
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=devices, device_type="cuda"):
            torch.default_generator.manual_seed(seed)  # not torch.manual_seed, which reseeds every GPU
            for index in devices:
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(seed)
            np.random.seed(seed % 2 ** 32)  # NumPy's legacy seed takes 32 bits
            random.seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


__all__ = ["PRESETS", "CallableTransforms", "RandomTransforms", "TransformSpec", "make_transforms", "seeded_rng",
           "size_keeping_presets"]
