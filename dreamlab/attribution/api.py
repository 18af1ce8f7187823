"""`dreamlab.gradcam` and `dreamlab.attribute`: attributions for a model, an image and a target.

>>> cam = dreamlab.gradcam("lenet-digits", digit, "logit:3")                 # [1, 28, 28], >= 0
>>> ig = dreamlab.attribute("lenet-digits", digit, "logit:3", method="ig")   # [1, 28, 28], signed
"""
from __future__ import annotations

import numbers
from pathlib import Path

import torch
from torch import Tensor

from dreamlab.attribution import gradients as g
from dreamlab.attribution.cam import CAM_METHODS, class_activation_map, default_cam_layer
from dreamlab.attribution.inputs import check_optional_text, shown
from dreamlab.io import check_image
from dreamlab.attribution.photos import predicted_classes
from dreamlab.attribution.target import (ModelLike, Subject, TargetScore, as_batch, evaluating, parse_target,
                                         sized_forward, subject)
from dreamlab.errors import DreamlabError, unknown
from dreamlab.models.loading import module_names
from dreamlab.models.recipe import Recipe
from dreamlab.optvis.objectives import Objective, logit

METHODS = ("saliency", "smoothgrad", "ig", "deconvnet", "guided", "guided-gradcam")

Target = Objective | str | int | None


def _device(subj: Subject, images: Tensor) -> torch.device:
    tensor = next(subj.model.parameters(), None)
    return images.device if tensor is None else tensor.device


def _check_arguments(image: object, layer: object, seed: object = 0) -> None:
    """What every attribution takes, checked before the model loads."""
    check_image(image)
    check_optional_text("layer", layer, "a layer address, e.g. 'inception4c'")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise DreamlabError(f"seed must be a whole number (an int), got {shown(seed, kind=False)}")


def _prepare(subj: Subject, image: Tensor, target: Target) -> tuple[Tensor, TargetScore]:
    images = as_batch(image, subj.recipe.channels)
    images = images.to(_device(subj, images))
    objective = top_classes(subj, images) if target is None else \
        parse_target(target, subj.categories, module_names(subj.model))
    return images, TargetScore(subj, objective, images.shape[0])


def top_classes(subj: Subject, images: Tensor) -> Objective:
    """`logit` of each image's top class: image i is attributed to its own prediction."""
    return logit(predicted_classes(subj, images, "give a target"))


def _like_input(result: Tensor, image: Tensor) -> Tensor:
    return result[0] if image.dim() == 3 else result


def cam_layer(subj: Subject, images: Tensor, layer: str | None) -> str:
    """The layer asked for, else the recipe's `cam_layer`, else the last spatial layer."""
    if layer:
        return layer
    with evaluating(subj.model), sized_forward(subj, images):
        return default_cam_layer(subj.model, subj.normalize(images[:1]), getattr(subj.recipe, "cam_layer", None))


def gradcam(model: ModelLike, image: Tensor, target: Target = None, layer: str | None = None, *,
            method: str = "gradcam", recipe: Recipe | str | None = None,
            weights: str | Path | None = "default") -> Tensor:
    """The class activation map of `target` at `layer`, upsampled to the image: [1, H, W] or [B, 1, H, W], >= 0.

    `image` is in [0, 1] ([C, H, W] or a batch); it is normalized with the recipe's mean and std. `target` is an
    objective string (`logit:281`, `logit:tabby`, `inception4c:97`), an Objective, a class index, or None: each
    image's top class. `method` is gradcam or gradcam++. A map can be all zero: where the gradient-weighted sum
    of the layer's channels is 0 or negative at every position (`dreamlab cam` notes it).
    """
    _check_arguments(image, layer)
    if not isinstance(method, str) or method not in CAM_METHODS:
        raise unknown("CAM method", str(method), CAM_METHODS)
    subj = subject(model, recipe, weights)
    images, score = _prepare(subj, image, target)
    with evaluating(subj.model), sized_forward(subj, images):
        return _like_input(class_activation_map(score, images, cam_layer(subj, images, layer), method), image)


def attribute(model: ModelLike, image: Tensor, target: Target = None, method: str = "saliency", *,
              recipe: Recipe | str | None = None, weights: str | Path | None = "default",
              baseline: str | Tensor = "black", steps: int = 64, samples: int = 32, noise: float = 0.15,
              layer: str | None = None, batch_size: int = 32, seed: int = 0) -> Tensor:
    """Per-pixel attributions of `target` (as for `gradcam`; None: each image's top class) with the image's
    shape, signed.

    `method`: saliency, smoothgrad (`samples`, `noise`), ig (`baseline` black|blurred|noise or an image,
    `steps`), deconvnet, guided, guided-gradcam (guided backprop times the Grad-CAM at `layer`). Expanded
    batches (IG steps, SmoothGrad samples) run `batch_size` images per forward pass.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise unknown("attribution method", str(method), METHODS)
    _check_arguments(image, layer, seed)  # before the model loads
    if method == "smoothgrad":
        g.check_smoothgrad(samples, noise)
        g.check_batch_size(batch_size)
    elif method == "ig":
        g.check_ig_steps(steps)
        g.check_batch_size(batch_size)
        g.check_baseline(baseline)
    subj = subject(model, recipe, weights)
    images, score = _prepare(subj, image, target)
    if method == "ig" and isinstance(baseline, Tensor):
        g.check_baseline_shape(baseline, images)
    with evaluating(subj.model), sized_forward(subj, images):
        if method == "saliency":
            result = g.saliency(score, images)
        elif method == "smoothgrad":
            result = g.smoothgrad(score, images, samples, noise, seed, batch_size)
        elif method == "ig":
            result = g.integrated_gradients(score, images, baseline, steps, batch_size, seed)
        elif method == "deconvnet":
            result = g.deconvnet(score, images)
        elif method == "guided":
            result = g.guided_backprop(score, images)
        else:
            cam = class_activation_map(score, images, cam_layer(subj, images, layer), CAM_METHODS[0])
            result = g.guided_backprop(score, images) * cam
    return _like_input(result, image)
