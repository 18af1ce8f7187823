"""Gradient attributions w.r.t. the pixels: saliency, SmoothGrad, integrated gradients, deconvnet, guided backprop.

Each returns a tensor with the images' shape [B, C, H, W], signed; `dreamlab.attribution.overlay` turns it into
a heat map. Expanded batches (IG steps, SmoothGrad samples) are run in chunks of `batch_size` rows.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dreamlab.io import check_image
from dreamlab.attribution.relu_rules import ReLURule, describe
from dreamlab.attribution.target import TargetScore, input_gradient
from dreamlab.errors import DreamlabError, check_whole, shown, unknown

BASELINES = ("black", "blurred", "noise")
# IG steps and SmoothGrad samples: the papers use 20-300 steps and 50 samples; each is one more copy of the
# images in memory, and Gauss-Legendre's nodes for n steps cost an n x n eigenproblem (1024: 0.1 s)
MAX_EXPANSION = 1024
MAX_NOISE = 1.0  # SmoothGrad's noise std as a fraction of the value range (Smilkov et al. 2017 use 0.1 to 0.2)


def check_smoothgrad(samples: int, noise: float) -> None:
    """SmoothGrad's arguments, each refused in one line naming it and its valid range."""
    check_whole("samples", samples, 1, MAX_EXPANSION, "--samples", " (SmoothGrad's noisy copies; the paper uses 50)")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise < 0:
        raise DreamlabError(f"noise must be a finite number >= 0 (--noise: SmoothGrad's noise, a fraction of the "
                            f"image's value range; 0.1 to 0.2 works best), got {noise!r}")
    if noise > MAX_NOISE:
        raise DreamlabError(f"noise {noise:g} is out of range; valid: 0 to {MAX_NOISE:g} (a fraction of the image's "
                            f"value range: beyond 1 the noise drowns the image); 0.1 to 0.2 works best")


def check_ig_steps(steps: int) -> None:
    """Refuse integrated gradients' steps outside 1 to MAX_EXPANSION, in one line."""
    check_whole("steps", steps, 1, MAX_EXPANSION, "--steps", " (integrated gradients' steps; 20 to 300 is usual)")


def check_batch_size(batch_size: int) -> None:
    """Refuse a batch size that is not a whole number >= 1, in one line."""
    check_whole("batch_size", batch_size, 1, flag="--batch-size",
                hint=" (images per forward pass for IG steps and SmoothGrad samples)")


def check_baseline(baseline: object) -> None:
    """A baseline name or an image tensor in [0, 1]; its shape is checked against the images by
    `check_baseline_shape`."""
    if isinstance(baseline, str):
        if baseline not in BASELINES:
            raise unknown("baseline", baseline, BASELINES, hint="or give an image tensor in [0, 1]")
        return
    if not isinstance(baseline, Tensor):
        raise DreamlabError(f"baseline must be one of {', '.join(BASELINES)} (--baseline) or an image tensor "
                            f"[C, H, W] in [0, 1], got {shown(baseline)}")
    check_image(baseline, "baseline")


def check_baseline_shape(baseline: Tensor, images: Tensor) -> None:
    """A baseline tensor must be one image like the images [C, H, W], or a batch of 1 or B of them."""
    c, h, w = images.shape[1:]
    b = images.shape[0]
    shape = tuple(baseline.shape)
    if shape == (c, h, w) or (len(shape) == 4 and shape[0] in (1, b) and shape[1:] == (c, h, w)):
        return
    batches = "1" if b == 1 else f"1 or {b}"
    raise DreamlabError(f"baseline has shape {list(shape)}; valid: the image's [{c}, {h}, {w}] or a batch "
                        f"[{batches}, {c}, {h}, {w}] (resize the baseline to the image)")


def _chunked_gradient(score: TargetScore, inputs: Tensor, index: Tensor, batch_size: int) -> Tensor:
    """d target / d pixels for every row of `inputs`, `batch_size` rows per forward."""
    return torch.cat([input_gradient(score, inputs[i:i + batch_size], index[i:i + batch_size])[0]
                      for i in range(0, inputs.shape[0], batch_size)])


def saliency(score: TargetScore, images: Tensor) -> Tensor:
    """The plain gradient (Simonyan et al. 2014), signed; its heat map is the absolute value."""
    return input_gradient(score, images, torch.arange(images.shape[0], device=images.device))[0]


def input_x_gradient(score: TargetScore, images: Tensor) -> Tensor:
    """Each pixel's value (in [0, 1]) times its gradient (Shrikumar et al. 2016; captum's InputXGradient): the
    first-order share of the target that each pixel carries against black, signed. For a model linear in its
    pixels it is integrated gradients with the black baseline."""
    return images * saliency(score, images)


def guided_backprop(score: TargetScore, images: Tensor) -> Tensor:
    """The gradient with every ReLU's (and ReLU6's) backward replaced by the guided rule (see relu_rules).

    A model that runs no ReLU or ReLU6 on the target's path (SiLU, GELU, Hardswish nets) is refused: the
    result would be the plain gradient."""
    return _ruled_gradient(score, images, "guided")


def deconvnet(score: TargetScore, images: Tensor) -> Tensor:
    """The gradient with every ReLU's (and ReLU6's) backward replaced by the deconvnet rule (see relu_rules);
    refused, as `guided_backprop`, for a model that runs no rectifier."""
    return _ruled_gradient(score, images, "deconvnet")


RULE_NAMES = {"guided": "guided backprop", "deconvnet": "deconvnet"}


def _ruled_gradient(score: TargetScore, images: Tensor, rule: str) -> Tensor:
    with ReLURule(rule) as mode:
        result = saliency(score, images)
    if mode.ruled == 0:
        raise DreamlabError(f"{RULE_NAMES[rule]} changes the backward of ReLU and ReLU6 only, and "
                            f"{score.subject.recipe.name} ran none on the way to {score.shown!r} "
                            f"(its activations: {describe(mode.others)}), so the result would be the plain "
                            f"gradient; use --method saliency (method='saliency') for that, or another method")
    return result


def seeded_generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on `device` seeded with any whole number `seed`, reduced modulo 2**64: every seed torch takes
    (-2**63 to 2**64 - 1, a negative one as its two's complement) draws the same noise as before, and a larger one
    is accepted, as render accepts it."""
    return torch.Generator(device=device).manual_seed(int(seed) % 2**64)


def noise_spread(images: Tensor) -> Tensor:
    """Each image's value range max - min [B, 1, 1, 1], SmoothGrad's noise unit; 1 (the input range [0, 1]) for
    an image whose range is 0 (a constant image), whose noise would otherwise be 0."""
    flat = images.flatten(1)
    spread = flat.amax(1) - flat.amin(1)
    return torch.where(spread > 0, spread, torch.ones_like(spread)).view(-1, 1, 1, 1)


def smoothgrad(score: TargetScore, images: Tensor, samples: int = 32, noise: float = 0.15, seed: int = 0,
               batch_size: int = 32) -> Tensor:
    """The mean gradient over `samples` noisy copies (Smilkov et al. 2017).

    The noise's standard deviation is `noise` times each image's value range (max - min; the input range [0, 1]
    for a constant image); the paper finds 10-20% best. Every image of the batch gets the same standard normal
    draws (one generator seeded with `seed`, scaled by its own range), so an image's SmoothGrad does not depend
    on the other images of the batch or its place among them: a batch gives what each image gives alone.
    """
    check_smoothgrad(samples, noise)
    check_batch_size(batch_size)
    b = images.shape[0]
    generator = seeded_generator(images.device, seed)
    draws = torch.randn((samples, 1, *images.shape[1:]), generator=generator, device=images.device)
    noisy = images + draws * noise * noise_spread(images)  # [samples, B, C, H, W], sample-major
    index = torch.arange(b, device=images.device).repeat(samples)
    grads = _chunked_gradient(score, noisy.flatten(0, 1), index, batch_size)
    return grads.view(samples, *images.shape).mean(0)


def baseline_for(images: Tensor, kind: str, seed: int = 0) -> Tensor:
    """The IG reference image: black (all zeros), blurred (a wide Gaussian blur), or uniform noise."""
    if kind == "black":
        return torch.zeros_like(images)
    if kind == "blurred":
        sigma = max(images.shape[-2:]) / 16  # blurred enough that edges are gone, colours and layout stay
        radius = int(3 * sigma)
        t = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
        kernel = torch.exp(-0.5 * (t / sigma) ** 2)
        kernel = kernel / kernel.sum()
        c = images.shape[1]
        padded = F.pad(images, (radius, radius, radius, radius), mode="replicate")
        out = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    if kind == "noise":
        generator = seeded_generator(images.device, seed)
        return torch.rand(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    raise unknown("baseline", kind, BASELINES)


def window_corners(side: int, window: int, stride: int) -> list[int]:
    """The first pixel of each occlusion window along a side: every `stride`, and the last window flush with
    the far edge, so that every pixel is covered."""
    corners = list(range(0, side - window + 1, stride))
    return corners if corners[-1] == side - window else corners + [side - window]


def occlusion_window(images: Tensor, window: int | None, stride: int | None) -> tuple[int, int]:
    """Occlusion's window and stride where left out (None): an eighth of the images' shorter side, and half the
    window (captum leaves both to the caller; these give 15 x 15 windows on any input)."""
    window = max(1, min(images.shape[-2:]) // 8) if window is None else window
    return window, (max(1, window // 2) if stride is None else stride)


def check_occlusion(window: int, stride: int, images: Tensor) -> None:
    """Occlusion's window and stride: whole numbers >= 1, the window no larger than the images' shorter side."""
    side = min(images.shape[-2:])
    check_whole("window", window, 1, side, "--window", f" (--window: the occluding square's side in pixels, at "
                                                       f"most the model input's shorter side, {side})")
    check_whole("stride", stride, 1, flag="--stride", hint=" (pixels between occlusion windows)")


@torch.no_grad()
def occlusion(score: TargetScore, images: Tensor, window: int, stride: int, baseline: str = "black",
              batch_size: int = 32, seed: int = 0) -> Tensor:
    """Occlusion (Zeiler & Fergus 2014; captum's Occlusion): a `window` x `window` square slid over each image
    every `stride` pixels is replaced by the baseline's pixels there (black, blurred or noise, as IG's), and each
    pixel gets the mean drop of the target over the windows that cover it (positive: the region supports the
    target). Forward passes only, `batch_size` occluded copies each; the same value in every colour channel."""
    check_occlusion(window, stride, images)
    check_batch_size(batch_size)
    b, _, height, width = images.shape
    reference = baseline_for(images, baseline, seed)
    index = torch.arange(b, device=images.device)
    clean = score(images, index).float()
    corners = [(top, left) for top in window_corners(height, window, stride)
               for left in window_corners(width, window, stride)]
    drops = torch.zeros(b, 1, height, width, device=images.device)
    cover = torch.zeros(1, 1, height, width, device=images.device)
    per_pass = max(1, batch_size // b)  # windows per forward, each for all the images
    for start in range(0, len(corners), per_pass):
        chunk = corners[start:start + per_pass]
        occluded = images.repeat(len(chunk), 1, 1, 1)  # window-major: copy k of image i is row k * b + i
        for k, (top, left) in enumerate(chunk):
            rows = slice(k * b, (k + 1) * b)
            occluded[rows, :, top:top + window, left:left + window] = \
                reference[:, :, top:top + window, left:left + window]
        dropped = clean.repeat(len(chunk)) - score(occluded, index.repeat(len(chunk))).float()
        for k, (top, left) in enumerate(chunk):
            drops[:, :, top:top + window, left:left + window] += dropped[k * b:(k + 1) * b].view(b, 1, 1, 1)
            cover[:, :, top:top + window, left:left + window] += 1
    return (drops / cover).expand_as(images).to(images.dtype).contiguous()


def gauss_legendre(steps: int) -> tuple[Tensor, Tensor]:
    """Points in (0, 1) and weights summing to 1 for integrating over [0, 1] (captum's default rule too)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return torch.tensor((nodes + 1) / 2, dtype=torch.float64), torch.tensor(weights / 2, dtype=torch.float64)


def ig_reference(images: Tensor, baseline: str | Tensor = "black", seed: int = 0) -> Tensor:
    """The IG baseline x' for `images` [B, C, H, W], as `integrated_gradients` uses it."""
    check_baseline(baseline)
    if isinstance(baseline, Tensor):
        check_baseline_shape(baseline, images)
    reference = baseline if isinstance(baseline, Tensor) else baseline_for(images, baseline, seed)
    return reference.to(images).expand_as(images)


def integrated_gradients(score: TargetScore, images: Tensor, baseline: str | Tensor = "black", steps: int = 64,
                         batch_size: int = 32, seed: int = 0) -> Tensor:
    """(x - x') times the path integral of the gradient from x' to x (Sundararajan et al. 2017).

    The integral is taken by Gauss-Legendre quadrature with `steps` nodes (captum's default rule; the paper
    uses a Riemann sum, which at the same number of steps is much less exact). Completeness: the attributions
    of each image sum to f(x) - f(x'), up to the quadrature error, which `completeness_gap` measures.
    """
    check_ig_steps(steps)
    check_batch_size(batch_size)
    reference = ig_reference(images, baseline, seed)
    alphas, weights = gauss_legendre(steps)
    alphas = alphas.to(images).view(-1, 1, 1, 1, 1)
    path = (reference + alphas * (images - reference)).flatten(0, 1)  # [steps * B, C, H, W], step-major
    index = torch.arange(images.shape[0], device=images.device).repeat(steps)
    grads = _chunked_gradient(score, path, index, batch_size).view(steps, *images.shape)
    mean_grad = (grads * weights.to(images).view(-1, 1, 1, 1, 1)).sum(0)
    return (images - reference) * mean_grad


def completeness_gap(score: TargetScore, images: Tensor, attributions: Tensor, baseline: str | Tensor = "black",
                     seed: int = 0) -> tuple[Tensor, Tensor]:
    """(sum of each image's attributions minus (f(x) - f(x')), f(x) - f(x')), each [B]: IG's completeness
    gap (captum's convergence delta), which shrinks towards 0 with more steps, and the difference it is
    measured against. Two forward passes, in float64 sums."""
    index = torch.arange(images.shape[0], device=images.device)
    with torch.no_grad():
        difference = score(images, index).double() - score(ig_reference(images, baseline, seed), index).double()
    return attributions.double().flatten(1).sum(1) - difference, difference
