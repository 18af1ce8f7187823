"""Planted filters: tiny RGB models whose channels are known colour gratings, and the analysis that checks that
a render recovered them.

Channel k responds to one oriented colour grating: an integer wave vector (a_k, b_k), in cycles per `KERNEL`
pixels, times an RGB direction of hue h_k. Because the wave vector lies on the kernel's lattice, the kernel
tiled periodically is an exact plane wave, so "the best-matching tiling of the planted filter" is that grating
at the best phase. Maximizing a channel's mean activation drives pixels into the sigmoid's flat ends, so a
perfect render is the square-wave version of the grating, whose correlation with the (sine) tiling is about
0.9; the goal asks for 0.8.

>>> planted = planted_model(layers=1)
>>> planted.kernels.shape, planted.layer, planted.recipe.input_size
(torch.Size([8, 3, 16, 16]), 'relu', 16)
>>> round(dominant_orientation(tile(planted.kernels[2], 64)), 1), planted.orientations[2]
(45.0, 45.0)
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dreamlab.models.recipe import Recipe

KERNEL = 16  # kernel size in pixels: the render size (16) is one tile, so a render cannot split into domains

# Integer wave vectors (cycles per kernel along x, y): eight orientations spread over the half circle
# (0, 26.6, 45, 63.4, 90, 116.6, 135, 153.4 degrees), periods of 7.2 to 11.3 pixels.
WAVE_VECTORS: tuple[tuple[int, int], ...] = ((2, 0), (2, 1), (1, 1), (1, 2), (0, 2), (-1, 2), (-1, 1), (-2, 1))
HUE_STEP = 60  # channel k's hue is 60 k degrees, round the colour circle (channels 6 and 7 repeat 0 and 60)

MEAN, STD = 0.5, 0.25  # the recipes' normalization; equal on every channel, so the pixel-space filter keeps its colour
PLANTED_STEPS = 1024  # the green-magenta axis is the slowest to build under the colour decorrelation (~8x)


def orientation_of(wave: tuple[int, int]) -> float:
    """Orientation in degrees [0, 180) of a wave vector (x right, y down): the direction the stripes vary in."""
    return math.degrees(math.atan2(wave[1], wave[0])) % 180.0


def hue_color(hue_degrees: float) -> Tensor:
    """Unit RGB direction of a grating between the saturated colour at this hue and its complement.

    Hues are multiples of 60 degrees: red 0, yellow 60, green 120, cyan 180, blue 240, magenta 300. Every
    channel weighs +-1/sqrt(3), so no channel is left free for the render to fill with anything.
    """
    corners = {0: (1, 0, 0), 60: (1, 1, 0), 120: (0, 1, 0), 180: (0, 1, 1), 240: (0, 0, 1), 300: (1, 0, 1)}
    key = round(hue_degrees) % 360
    if key not in corners:
        raise ValueError(f"hue must be a multiple of 60 degrees, got {hue_degrees}")
    return (2 * torch.tensor(corners[key], dtype=torch.float32) - 1) / math.sqrt(3)


def grating(wave: tuple[int, int], color: Tensor, size: int, period: int = KERNEL, phase: float = 0.0) -> Tensor:
    """[3, size, size]: color * cos(2 pi (a x + b y) / period + phase), x the column, y the row."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                          indexing="ij")
    return color.view(3, 1, 1) * torch.cos(2 * math.pi * (wave[0] * x + wave[1] * y) / period + phase)


@dataclass(frozen=True)
class PlantedModel:
    """A planted model with what it was built from: channel k of `layer` should render as `kernels[k]` tiled."""

    model: nn.Module
    recipe: Recipe
    layer: str  # the layer whose channels are rendered
    kernels: Tensor  # [K, 3, KERNEL, KERNEL] the pixel-space pattern of each channel (unit norm)
    orientations: tuple[float, ...]  # degrees, [0, 180)
    hues: tuple[float, ...]  # degrees

    @property
    def units(self) -> int:
        """How many planted channels (kernels) the model has."""
        return self.kernels.shape[0]


class PlantedConv(nn.Module):
    """One layer: `conv` (3 -> K, KERNEL x KERNEL, no padding, no bias), then `relu`.

    The right answer for `relu` channel k is grating k itself, at any phase.
    """

    def __init__(self, kernels: Tensor):
        super().__init__()
        self.conv = nn.Conv2d(3, kernels.shape[0], KERNEL, bias=False)
        self.relu = nn.ReLU()
        with torch.no_grad():
            self.conv.weight.copy_(kernels)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv(x))


class PlantedTwoLayer(nn.Module):
    """Two layers. `conv1` holds every grating at four phases (0, 90, 180, 270 degrees), then `relu1`; `conv2`
    (3x3, zero padding) adds channel k's four rectified phases over a 3x3 neighbourhood with equal positive
    weights and takes nothing from other channels, then `relu2`.

    The four rectified phases of a grating of amplitude A and phase p add up to A (|cos p| + |sin p|), between A
    and 1.41 A whatever p is, so the right answer for `relu2` channel k is grating k at any phase, and no other
    pattern can excite it: it sees no other layer-1 channel.
    """

    def __init__(self, cos_kernels: Tensor, sin_kernels: Tensor):
        super().__init__()
        k = cos_kernels.shape[0]
        self.conv1 = nn.Conv2d(3, 4 * k, KERNEL, bias=False)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4 * k, k, 3, padding=1, bias=False)
        self.relu2 = nn.ReLU()
        with torch.no_grad():
            self.conv1.weight.copy_(torch.cat([cos_kernels, sin_kernels, -cos_kernels, -sin_kernels]))
            selection = torch.zeros(k, 4 * k, 3, 3)
            for unit in range(k):
                selection[unit, unit::k] = 1.0 / 9
            self.conv2.weight.copy_(selection)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu2(self.conv2(self.relu1(self.conv1(x))))


def planted_model(weights: object = None, layers: int = 1) -> PlantedModel:
    """The planted model with 1 or 2 layers (`weights` is ignored: the weights are planted).

    Its recipe renders 16-pixel images (one kernel tile) for 1024 steps with the Fourier parameterization and the
    'standard' transforms; the quality measure overrides the parameterization and the transforms.
    """
    if layers not in (1, 2):
        raise ValueError(f"planted models have 1 or 2 layers, got {layers}")
    hues = tuple(float(HUE_STEP * k % 360) for k in range(len(WAVE_VECTORS)))
    cos_kernels, sin_kernels = [], []
    for wave, hue in zip(WAVE_VECTORS, hues):
        color = hue_color(hue)
        for phase, out in ((0.0, cos_kernels), (-math.pi / 2, sin_kernels)):
            kernel = grating(wave, color, KERNEL, phase=phase)
            out.append(kernel / kernel.norm())
    kernels = torch.stack(cos_kernels)
    # the engine feeds (x - MEAN) / STD: a weight w sees pixels as w / STD, the same pattern up to scale
    if layers == 1:
        model: nn.Module = PlantedConv(kernels)
        layer = "relu"
    else:
        model = PlantedTwoLayer(kernels, torch.stack(sin_kernels))
        layer = "relu2"
    recipe = Recipe(name=f"planted-{layers}layer", builder="quality:planted", weights="none",
                    builder_kwargs={"layers": layers}, input_size=KERNEL, channels=3, mean=(MEAN,) * 3,
                    std=(STD,) * 3, fill=MEAN, default_layer=layer, param="fourier", transforms="standard",
                    lr=0.05, steps=PLANTED_STEPS)
    return PlantedModel(model.eval().requires_grad_(False), recipe, layer, kernels,
                        tuple(orientation_of(w) for w in WAVE_VECTORS), hues)


def build_planted(weights: object = None, layers: int = 1) -> nn.Module:
    """Recipe builder form, just the module (so `load_model(planted_model().recipe)` works)."""
    return planted_model(weights, layers).model


def grating_images(planted: PlantedModel, phases: int = 8) -> Tensor:
    """[K, phases, 3, S, S]: each channel's own grating at full contrast (pixels 0.5 +- 0.5 along its colour
    direction, S the render size), at `phases` evenly spaced phases."""
    size = planted.recipe.input_size
    out = []
    for wave, hue in zip(WAVE_VECTORS[:planted.units], planted.hues):
        color = hue_color(hue) * math.sqrt(3)  # +-1 per channel: the grating spans [0, 1]
        out.append(torch.stack([0.5 + 0.5 * grating(wave, color, size, phase=2 * math.pi * p / phases)
                                for p in range(phases)]))
    return torch.stack(out)


TRANSFORM_DRAWS = 32  # random transforms averaged over when a render's activation is checked


def channel_activations(planted: PlantedModel, images: Tensor, transforms: str = "none") -> Tensor:
    """[N]: image i's activation of channel i % K of the planted layer, as the render objective saw it: the
    spatial mean, averaged over fixed draws of the transforms preset the render was optimized under.

    The 1-layer model reads one position, so its activation depends on the grating's phase; under random
    translations a render cannot choose its phase, and is judged on the average over them, as it was optimized.
    """
    from dreamlab.optvis.transforms import RandomTransforms

    warp = dataclasses.replace(RandomTransforms.preset(transforms), fill=MEAN)
    n = images.shape[0]
    draws = torch.rand(1 if warp.is_identity else TRANSFORM_DRAWS, warp.DRAWS_PER_SAMPLE,
                       generator=torch.Generator().manual_seed(0))
    total = torch.zeros(n)
    with torch.no_grad():
        for d in draws:
            out = planted.model((warp(images.float(), draws=d.expand(n, -1)) - MEAN) / STD)
            total += out.flatten(2).mean(2)[torch.arange(n), torch.arange(n) % planted.units]
    return total / draws.shape[0]


def reference_activations(planted: PlantedModel, transforms: str = "none") -> Tensor:
    """[K]: what each channel's planted grating itself reaches (best phase), the yardstick for a render."""
    images = grating_images(planted)
    p = images.shape[1]
    flat = images.flatten(0, 1)  # channel-major: flat[j::p] is every channel's grating at phase j
    acts = torch.stack([channel_activations(planted, flat[j::p], transforms) for j in range(p)], 1)
    return acts.max(1).values


# --- analysis ------------------------------------------------------------------------------------------------

def tile(kernel: Tensor, size: int) -> Tensor:
    """[C, size, size]: `kernel` [C, S, S] repeated periodically from the top-left corner."""
    reps = -(-size // kernel.shape[-1])
    return kernel.repeat(1, reps, reps)[:, :size, :size]


def dominant_orientation(image: Tensor) -> float:
    """Orientation in degrees [0, 180) of the strongest non-constant frequency of [C, H, W] (x right, y down).

    The power spectrum is summed over channels (a colour grating counts as much as a luminance one) after
    removing each channel's mean. The doubled angles of every frequency with at least half the peak power are
    averaged, weighted by power: doubling makes f and -f, the same orientation, agree, and the average refines
    the angular steps of the frequency grid.
    """
    x = image.float()
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().pow(2).sum(0)
    h, w = power.shape
    fy = torch.fft.fftfreq(h)[:, None].expand(h, w)
    fx = torch.fft.fftfreq(w)[None, :].expand(h, w)
    if power.max() <= 1e-12 * max(1.0, x.numel()):
        raise ValueError("a constant image has no orientation")
    strong = power >= 0.5 * power.max()
    angle2 = 2 * torch.atan2(fy[strong], fx[strong])
    weights = power[strong]
    mean2 = torch.atan2((weights * angle2.sin()).sum(), (weights * angle2.cos()).sum())
    return math.degrees(mean2.item() / 2) % 180.0


def orientation_error(a: float, b: float) -> float:
    """Absolute difference of two orientations in degrees, on the 180-degree circle."""
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def tiling_correlation(image: Tensor, kernel: Tensor) -> tuple[float, tuple[int, int]]:
    """Pearson correlation of [C, H, W] with the best-matching periodic tiling of `kernel` [C, S, S], and the
    (dy, dx) offset of that tiling (the tiling at pixel (y, x) is kernel[:, (y + dy) % S, (x + dx) % S]).

    Each channel's mean is removed from the image and from the kernel (a tiling is blind to a colour cast). The
    image is cropped, centred, to whole tiles, so that every offset's tiling has the same norm; the dot products
    at all S x S offsets are then one circular cross-correlation of the kernel with the image folded onto a
    single tile (the sum of its tiles).
    """
    s = kernel.shape[-1]
    h, w = image.shape[-2:]
    hh, ww = h // s * s, w // s * s
    if hh == 0 or ww == 0:
        raise ValueError(f"image {h}x{w} is smaller than one {s}-pixel tile")
    top, left = (h - hh) // 2, (w - ww) // 2
    x = image.float()[:, top:top + hh, left:left + ww]
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    k = kernel.float() - kernel.float().mean(dim=(-2, -1), keepdim=True)
    c = x.shape[0]
    folded = x.reshape(c, hh // s, s, ww // s, s).sum(dim=(1, 3))  # [C, S, S]
    # dot[dy, dx] = sum over c, a, b of folded[c, a, b] * k[c, (a + dy) % s, (b + dx) % s]
    dot = torch.fft.ifft2(torch.fft.fft2(k) * torch.fft.fft2(folded).conj()).real.sum(0)
    denom = x.norm() * k.norm() * math.sqrt((hh // s) * (ww // s))
    if denom <= 0:
        return 0.0, (0, 0)
    best = int(dot.argmax())
    return (dot.flatten()[best] / denom).item(), (best // s, best % s)


__all__ = ["KERNEL", "WAVE_VECTORS", "PlantedModel", "grating_images", "channel_activations",
           "reference_activations", "PlantedConv", "PlantedTwoLayer", "planted_model",
           "build_planted", "grating", "hue_color", "orientation_of", "tile", "dominant_orientation",
           "orientation_error", "tiling_correlation"]
