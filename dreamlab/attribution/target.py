"""What every attribution method shares: a model with its preprocessing, and a target score per image.

A target is any objective (`logit:281`, `logit:tabby`, `inception4c:97`, sums of them), evaluated through
`dreamlab.optvis.capture` on the normalized image. Images are in [0, 1], [B, C, H, W]; attributions are taken
with respect to those pixels, so the normalization is part of the differentiated function.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dreamlab.devices import out_of_memory
from dreamlab.errors import DreamlabError, first_line, shown
from dreamlab.io import shape_hint
from dreamlab.models.loading import LoadedModel, resolve_layer
from dreamlab.models.prepare import (FORWARD_ERRORS, minimum_side, raw_size_errors, size_advice, takes_size,
                                     unsized_module_error)
from dreamlab.models.recipe import Recipe
from dreamlab.optvis.capture import capture, reused_module
from dreamlab.optvis.grammar import parse_objective
from dreamlab.optvis.objectives import Objective, OutsideMap, logit


@dataclass(frozen=True)
class Subject:
    """A model in eval mode with the recipe that says how to normalize its input, and its class names."""

    model: nn.Module
    recipe: Recipe
    categories: tuple[str, ...] | None

    def normalize(self, images: Tensor) -> Tensor:
        """Images in [0, 1] normalized with the recipe's mean and std, as the model takes them."""
        mean = torch.tensor(self.recipe.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.recipe.std, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std


ModelLike = nn.Module | str | LoadedModel | Subject


def subject(model: ModelLike, recipe: Recipe | str | None = None, weights: str | Path | None = "default") -> Subject:
    """A Subject from a recipe name, a LoadedModel, or a module (with `recipe`, else ImageNet-style settings)."""
    from dreamlab.models.prepare import resolve_model

    if isinstance(model, Subject):
        return model
    module, recipe_obj, _, categories, _ = resolve_model(model, recipe, weights)
    return Subject(module, recipe_obj, categories)


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode for the duration; a caller's training flags are restored afterwards."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes.items():
            m.training = training


@contextmanager
def sized_forward(subj: Subject, images: Tensor, cli: bool = False) -> Iterator[None]:
    """Work that runs the model on `images`; where it fails and the model takes its recipe's input size instead,
    the error is one line saying which size the model needs, in the caller's words (`cli`: --size; else the
    image to pass, as the Python API has no size argument)."""
    try:
        with raw_size_errors():  # cap.run's own size advice would not be in the caller's words
            yield
    except FORWARD_ERRORS as exc:
        size = subj.recipe.input_size
        if isinstance(exc, DreamlabError) or out_of_memory(exc):
            raise  # the user's own error, or memory: not a size the model rejects
        own_size = tuple(images.shape[-2:]) == (size, size)
        if not own_size and accepts_side(subj, tuple(images.shape[-2:]), images.device):
            raise  # the model takes this size: something else failed
        if own_size or not accepts_side(subj, size, images.device):
            # the model fails at its recipe's size: a recipe whose input_size is wrong, or the model's own error
            wrong = unsized_module_error(subj.recipe, images.shape, exc,
                                         lambda s: accepts_side(subj, s, images.device), rendering=False)
            if wrong is not None:
                raise wrong from None
            raise
        side = "x".join(map(str, images.shape[1:]))
        smallest = minimum_side(lambda s: accepts_side(subj, s, images.device), min(images.shape[-2:]), size)
        if smallest is not None and smallest < size:
            needs = f"the smallest size it takes is {smallest}: {size_advice(smallest, cli)}"
        else:
            needs = f"it runs at its recipe's size, {size}: {size_advice(size, cli, exact=True)}"
        raise DreamlabError(f"{subj.recipe.name} rejected a {side} input ({first_line(exc)}); {needs}") from None


def accepts_side(subj: Subject, size: int | tuple[int, int], device: torch.device | None = None) -> bool:
    """Whether the model runs on a grey input of `size` (a side, or height and width)."""
    def forward(x: Tensor) -> None:
        with torch.no_grad():
            subj.model(subj.normalize(x))

    return takes_size(forward, subj.recipe.channels, size, device)


def as_batch(image: Tensor, channels: int) -> Tensor:
    """[C, H, W] or [B, C, H, W] in [0, 1] as a float batch; a channel count the model does not take is refused."""
    shape = image.shape
    if image.dim() == 3:
        image = image[None]
    if image.dim() != 4:
        raise DreamlabError(f"expected an image [C, H, W] or a batch [B, C, H, W], got shape {list(image.shape)}")
    if image.shape[1] != channels:
        hint = layout_hint(list(shape))
        if not hint and {image.shape[1], channels} == {1, 3}:  # what the command line converts by itself
            kind = "grey (the mean of R, G and B)" if channels == 1 else "RGB (its grey repeated)"
            hint = f"; dreamlab.io.match_channels(image, {channels}) makes it {kind}"
        raise DreamlabError(f"the image has {image.shape[1]} channels; this model takes {channels}{hint}")
    return image.float()


def layout_hint(shape: list[int]) -> str:
    """What to pass instead for an image or batch of one that is channels last (NumPy/PIL's layout) or RGBA
    (`io.shape_hint`), and for a channels-last batch ('' for other shapes)."""
    if len(shape) == 4 and shape[0] > 1:  # dream's hint takes one photo of a batch; attributions take them all
        last = shape[1] not in (1, 3, 4) and shape[3] in (1, 3)
        return "; channels last (NumPy/PIL's layout): pass image.permute(0, 3, 1, 2)" if last else ""
    return shape_hint(shape, "image")


def parse_target(target: Objective | str | int, categories: tuple[str, ...] | None,
                 layers: Sequence[str] | None = None) -> Objective:
    """An objective from a string (`logit:281`, `logit:tabby`, `inception4c:97`), a class index (an int, numpy's
    or torch's integer scalar; an integer tensor of one class per image), or as is."""
    if isinstance(target, Objective):
        return target
    if isinstance(target, Tensor) and not target.is_floating_point() and not target.is_complex() \
            and target.dtype != torch.bool and target.numel() > 0:
        return logit(target) if target.numel() > 1 else parse_target(int(target.flatten()[0]), categories, layers)
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        if target < 0:
            raise DreamlabError(f"class index {target} is negative; give a class index >= 0 (logit:N)")
        target = f"logit:{int(target)}"
    if not isinstance(target, str):
        labels = isinstance(target, (list, tuple)) and target and all(
            isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in target)
        fix = f"; for one class per image pass torch.tensor({list(map(int, target))})" if labels else ""
        raise DreamlabError(f"target must be an objective string (logit:281, logit:tabby, inception4c:97), an "
                            f"Objective, a class index (int), an integer tensor of one class per image or None "
                            f"(each image's top class), got {shown(target)}{fix}")
    return parse_objective(target, categories, layers)


class TargetScore:
    """`scores(images, index)`: the target for each image, differentiable w.r.t. the pixels.

    A target with one unit scores every image on it; a batched target (`logit:0-9`, or `o.logit(labels)`)
    scores image i on unit i, so a batch of images can each have their own class. `index[k]` says which image
    (hence unit) row k of an expanded batch (IG steps, SmoothGrad samples) belongs to.
    """

    def __init__(self, subj: Subject, target: Objective, n_images: int, written: str | None = None):
        """`written`: the target as the caller wrote it (`conv2:3,4`), which messages echo; the objective's own
        name (`conv2:3-4`) where it was not a string."""
        self.shown = written if written is not None else target.name
        if target.batch_size not in (1, n_images):
            raise DreamlabError(f"target {self.shown!r} has {target.batch_size} units for {n_images} image(s); "
                                f"give one unit (logit:3) or one per image")
        self.subject = subj
        self.objective = target
        self.checked = False

    def __call__(self, images: Tensor, index: Tensor) -> Tensor:
        if not self.objective.layers:
            raise DreamlabError(f"target {self.shown!r} reads no layer; give a logit or a layer unit")
        with capture(self.subject.model, self.objective.layers) as cap:
            acts = cap.run(self.subject.normalize(images))
        if not self.checked:
            try:
                self.objective.check({k: v.shape for k, v in acts.items()})
            except OutsideMap as exc:  # render's words (render size, model_size) say nothing to cam's users
                raise self._outside(exc, images) from None
            self.checked = True
        values = self.objective(acts, index)
        if images.requires_grad and torch.is_grad_enabled() and not values.requires_grad:  # else torch's RuntimeError
            raise no_image_gradient(self.shown)
        if not bool(torch.isfinite(values).all()):  # NaN maps otherwise, with no word of why
            raise DreamlabError(f"target {self.shown!r} became NaN or infinite on the model input, so there is "
                                f"nothing to attribute; check the target (a division by ~0?) and the weights")
        return values

    def _outside(self, exc: OutsideMap, images: Tensor) -> DreamlabError:
        """The error for a neuron position outside its layer's map, in the words of an attribution: the map's size
        for this model input, the valid positions, and the target with @centre to try."""
        (h, w), (height, width) = exc.size, images.shape[-2:]
        at = "@" + exc.where.split(" ", 1)[1]
        example = f": {self.shown.replace(at, '@centre', 1)!r}" if exc.where.startswith("position ") and \
            at in self.shown else ""
        return DreamlabError(f"target {self.shown!r}: {exc.where} is outside the map of layer {exc.layer!r}, which is "
                             f"{h} high x {w} wide for this {height}x{width} model input ({exc.valid}); give a "
                             f"position in that range, or @centre for the map's centre{example}")


@contextmanager
def tap(model: nn.Module, layer: str) -> Iterator[dict[str, Tensor]]:
    """Record `layer`'s output tensor (autograd-connected) under key "out" during the one forward in this block.

    The rest of the network gets a clone, so an in-place op after the layer (GoogLeNet's `F.relu(inplace=True)`,
    VGG's in-place ReLU modules) cannot overwrite the recorded tensor, and gradients w.r.t. it are the layer's.
    """
    module = resolve_layer(model, layer)
    store: dict[str, Tensor] = {}

    def hook(mod: nn.Module, inputs: object, output: object):
        if not isinstance(output, Tensor):
            raise DreamlabError(f"layer {layer!r} returns a {type(output).__name__}, not a tensor; pick another")
        if "out" in store:
            raise reused_module(layer)
        store["out"] = output
        return output.clone()

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def no_image_gradient(shown: str) -> DreamlabError:
    """The one line for a target whose value does not depend on the image's pixels."""
    return DreamlabError(f"target {shown!r} does not depend on the image (it has no gradient): the objective or the "
                         f"model's forward cuts the gradient with .detach(), .item(), torch.no_grad() or an integer "
                         f"op; remove that cut")


def input_gradient(score: TargetScore, images: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """(d score / d pixels, scores) for a batch of images whose rows belong to images `index`."""
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        values = score(x, index)
        # the value can need a gradient through the model's own parameters and still not reach the pixels (a
        # forward that detaches its input)
        (grad,) = torch.autograd.grad(values.sum(), x, allow_unused=True)
    if grad is None:
        raise no_image_gradient(score.shown)
    return grad, values.detach()
