"""`dreamlab.gradcam` and `dreamlab.attribute`: attributions for a model, an image and a target.

>>> digit = torch.zeros(1, 28, 28); digit[:, 6:22, 13:16] = 1              # a vertical stroke: a 1
>>> cam = dreamlab.gradcam("lenet-digits", digit, "logit:1")
>>> cam.shape, bool((cam >= 0).all())
(torch.Size([1, 28, 28]), True)
>>> dreamlab.attribute("lenet-digits", digit, "logit:1", method="ig").shape   # signed, the image's shape
torch.Size([1, 28, 28])
"""
from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamlab.attribution import gradients as g
from dreamlab.attribution.cam import (CAM_METHODS, ModuleCall, NoSpatialLayer, class_activation_map,
                                     default_cam_layer, enlarging_pool, trace_forward, traced_output_shape)
from dreamlab.attribution.inputs import USED_BY, check_optional_text, reads_seed
from dreamlab.io import check_image
from dreamlab.attribution.photos import predicted_classes
from dreamlab.attribution.target import (ModelLike, Subject, TargetScore, as_batch, evaluating, parse_target,
                                         sized_forward, subject)
from dreamlab.errors import DreamlabError, DreamlabNote, check_seed, checked_keywords, unknown
from dreamlab.models.layout import channels_last_layers
from dreamlab.models.loading import module_names
from dreamlab.models.prepare import size_advice, smallest_side
from dreamlab.models.recipe import Recipe
from dreamlab.optvis.objectives import Objective, logit

METHODS = ("saliency", "input-x-gradient", "smoothgrad", "ig", "deconvnet", "guided", "guided-gradcam", "occlusion")

Target = Objective | str | int | None


def _device(subj: Subject, images: Tensor) -> torch.device:
    tensor = next(subj.model.parameters(), None)
    return images.device if tensor is None else tensor.device


def _check_arguments(image: object, layer: object, seed: object = 0) -> None:
    """What every attribution takes, checked before the model loads."""
    check_image(image)
    check_optional_text("layer", layer, "a layer address, e.g. 'inception4c'")
    check_seed(seed)


def _prepare(subj: Subject, image: Tensor, target: Target) -> tuple[Tensor, TargetScore]:
    images = as_batch(image, subj.recipe.channels)
    images = images.to(_device(subj, images))
    objective = top_classes(subj, images) if target is None else \
        parse_target(target, subj.categories, module_names(subj.model))
    return images, TargetScore(subj, objective, images.shape[0], target if isinstance(target, str) else None)


def top_classes(subj: Subject, images: Tensor) -> Objective:
    """`logit` of each image's top class: image i is attributed to its own prediction."""
    return logit(predicted_classes(subj, images, "give a target"))


def _like_input(result: Tensor, image: Tensor) -> Tensor:
    return result[0] if image.dim() == 3 else result


def cam_layer(subj: Subject, images: Tensor, layer: str | None, target: Target = None, cli: bool = False,
              resize: Callable[[int], Tensor] | None = None, trace: list[ModuleCall] | None = None) -> str:
    """The layer asked for, else the recipe's `cam_layer`, else the last spatial layer (a ViT's: the last attention's
    input); by default never the target's own layer, a later one, or one whose channel the target only passes
    through per-channel ops (see `cam.default_cam_layer`). Where the images are too small for any such layer to have
    a map larger than 1x1, the error names the smallest size that gives one, in the caller's words (`cli`: --size);
    where they are only too small for the usual default layer, a shallower one is used and a DreamlabNote says so.
    `resize`: the model input at another shorter side, as the caller makes it (the CLI's --size rounds the longer
    side from the photo's own aspect); by default `images[:1]` resized with its aspect kept. `trace`: the caller's
    `cam.trace_forward` of `images[:1]` (the command line's `photos.check_model_takes`), so none is run here."""
    traced_at = _traced_sizes(subj, resize or (lambda shorter: _resized(images[:1], shorter)), cli)
    if layer:
        _note_enlarged_map(subj, images[:1], layer, cli, traced_at, trace)
        return layer
    reads = target_layers(subj, target)

    def default(sample: Tensor, trace: list[ModuleCall]) -> str:
        with evaluating(subj.model), sized_forward(subj, sample, cli):
            return default_cam_layer(subj.model, subj.normalize(sample), getattr(subj.recipe, "cam_layer", None),
                                     reads, trace)

    def default_at(shorter: int) -> str:
        return default(*traced_at(shorter))

    if trace is None:
        with evaluating(subj.model), sized_forward(subj, images[:1], cli):  # one forward for the layer and the notes
            trace = trace_forward(subj.model, subj.normalize(images[:1]))
    try:
        chosen = default(images[:1], trace)
    except NoSpatialLayer as exc:
        smallest = _smallest_with_a_map(default_at, images[:1], subj.recipe.input_size)
        if smallest is None:
            raise
        height, width = images.shape[-2:]
        given = f"the model input at this --size, {height}x{width}," if cli else f"an image of {height}x{width}"
        raise DreamlabError(f"{given} is too small for a Grad-CAM: at that size {exc.reason}; the smallest size that "
                            f"gives one (a map larger than 1x1) is {smallest}: {size_advice(smallest, cli)}") from None
    _note_moved_default(subj, default_at, images[:1], chosen, cli, trace)
    _note_enlarged_map(subj, images[:1], chosen, cli, traced_at, trace)
    return chosen


Traced = Callable[[int], tuple[Tensor, list[ModuleCall]]]  # a shorter side -> (the model input, its trace)


def _traced_sizes(subj: Subject, resize: Callable[[int], Tensor], cli: bool) -> Traced:
    """The model input at a shorter side (`resize`) and its `cam.trace_forward`, each side made and run once, so
    the notes, which both look at the recipe's size and search the sizes below it, share their forwards."""
    done: dict[int, tuple[Tensor, list[ModuleCall]]] = {}

    def traced_at(shorter: int) -> tuple[Tensor, list[ModuleCall]]:
        if shorter not in done:
            sample = resize(shorter)
            with evaluating(subj.model), sized_forward(subj, sample, cli):
                done[shorter] = sample, trace_forward(subj.model, subj.normalize(sample))
        return done[shorter]

    return traced_at


def _resized(image: Tensor, shorter: int) -> Tensor:
    """`image` [1, C, H, W] with its shorter side at `shorter` pixels, its aspect kept."""
    scale = shorter / min(image.shape[-2:])
    return F.interpolate(image, size=(max(1, round(image.shape[-2] * scale)), max(1, round(image.shape[-1] * scale))),
                         mode="bilinear")


def _note_moved_default(subj: Subject, default_at: Callable[[int], str], image: Tensor, chosen: str, cli: bool,
                        trace: list[ModuleCall]) -> None:
    """A DreamlabNote where the image is smaller than the recipe's input size and the default layer is not the
    one it is at that size (the layer whose map it shrank to 1x1 gave way to a shallower one: hed-vgg16 at
    --size 2 moves from features.29 to features.8), saying from which, why and what keeps it. Nothing is said
    where the layer at the recipe's size cannot be found (the model does not take that size). `default_at`: the
    default layer at a shorter side; `trace`: `cam.trace_forward` of `image`."""
    size, side = subj.recipe.input_size, min(image.shape[-2:])
    if side >= size:
        return

    def at(shorter: int) -> str | None:
        try:
            return default_at(shorter)
        except Exception:  # noqa: BLE001 - a note is only said where the usual layer is known
            return None

    usual = at(size)
    if usual is None or usual == chosen:
        return
    smallest = smallest_side(lambda shorter: at(shorter) == usual, side, size)
    shape = traced_output_shape(trace, usual)
    height, width = image.shape[-2:]
    if shape is None:
        its = f"{usual} does not run"
    elif len(shape) == 4:
        last = usual in channels_last_layers(subj.model, [usual], image)  # [B, H, W, C]: ConvNeXt, Swin
        its = f"{usual}'s map is {shape[1]}x{shape[2]}" if last else f"{usual}'s map is {shape[-2]}x{shape[-1]}"
    else:
        its = f"{usual}'s output is {list(shape)}"
    given = f"at --size {side} (model input {height}x{width})" if cli else f"on this {height}x{width} image"
    keep = f"{size_advice(smallest, cli)} to keep {usual}, or choose a layer with " + ("--layer" if cli else "layer=")
    warnings.warn(DreamlabNote(f"the default Grad-CAM layer moved from {usual} to {chosen}: {given} {its}, too "
                               f"small for a Grad-CAM, so the map is at the last layer whose map is larger; {keep}"),
                  stacklevel=5)  # the caller of gradcam or attribute (through checked_keywords)


class EnlargedMapNote(DreamlabNote):
    """The note that the Grad-CAM layer's map is an adaptive pool's enlargement of a smaller map."""


# set inside enlarged_map_noted(): the EnlargedMapNote is neither said nor worked out (its forwards)
_ENLARGED_MAP_NOTED: ContextVar[bool] = ContextVar("enlarged_map_noted", default=False)


@contextmanager
def enlarged_map_noted() -> Iterator[None]:
    """Quiets the EnlargedMapNote of the API calls inside, and skips the forwards that work it out: for the
    command line, whose `cam_layer(cli=True)` has said it already in its own words (--size, --layer)."""
    token = _ENLARGED_MAP_NOTED.set(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EnlargedMapNote)
            yield
    finally:
        _ENLARGED_MAP_NOTED.reset(token)


def _note_enlarged_map(subj: Subject, image: Tensor, layer: str, cli: bool, traced_at: Traced,
                       trace: list[ModuleCall] | None = None) -> None:
    """An EnlargedMapNote where `layer` is, or runs after, an adaptive pool that enlarges a smaller map at this
    image size (`cam.enlarging_pool`: alexnet's avgpool repeats a 1x1 map to 6x6 at 63 to 64 px, a 2x2 one at
    100): its map, and so its Grad-CAM, has no more location information than the smaller map (none where it is
    1x1), and the picture does not show it. Says what to try: the smallest size where the pool does not enlarge
    (up to the recipe's), or the last conv layer before the pool. Nothing is said where the model fails to run.
    `trace`: `cam.trace_forward` of `image`, where the caller has it (no forward at the image's size then);
    `traced_at`: the model input at another shorter side and its trace (`_traced_sizes`). Inside
    `enlarged_map_noted()` nothing is worked out, as nothing would be said."""
    if _ENLARGED_MAP_NOTED.get():
        return

    def at(sample: Tensor, trace: list[ModuleCall] | None = None):
        try:
            with evaluating(subj.model):
                return enlarging_pool(subj.model, subj.normalize(sample), layer, trace)
        except Exception:  # noqa: BLE001 - the Grad-CAM itself tells a model or layer that fails
            return None

    def at_side(shorter: int):
        try:
            sample, trace = traced_at(shorter)
        except Exception:  # noqa: BLE001 - as at(): a size the model fails at gives no note
            return None
        return at(sample, trace)

    found = at(image, trace)
    if found is None:
        return
    pool, (h, w), (out_h, out_w), conv, conv_map = found
    height, width = image.shape[-2:]
    side, size = min(height, width), subj.recipe.input_size
    given = f"at --size {side} (model input {height}x{width})" if cli else f"on this {height}x{width} image"
    verb, does = "enlarges", "enlarge"
    if out_h < h or out_w < w:  # one side enlarged, the other shrunk (alexnet's 5x9 at --size 222)
        verb, does = "stretches", "stretch"
    head = (f"the Grad-CAM layer {layer} is an adaptive pool that {verb}" if layer == pool else
            f"the Grad-CAM layer {layer} runs after the adaptive pool {pool}, which {verb}")
    what = ("so the map is flat (one value over the whole image), with no location information" if h * w == 1 else
            f"so the map has no more location information than those {h}x{w} cells")
    if side < size and at_side(size) is None:
        larger = size_advice(smallest_side(lambda shorter: at_side(shorter) is None, side, size), cli)
    else:
        larger = "use a larger --size" if cli else "pass a larger image"
    named = f"--layer {conv}" if cli else f"layer={conv!r}"
    earlier = "" if conv_map is None else \
        f", or an earlier layer such as the last conv layer, {named} ({conv_map[0]}x{conv_map[1]} here)"
    warnings.warn(EnlargedMapNote(f"{head} a {h}x{w} map to {out_h}x{out_w} {given}, {what}; {larger} for a map "
                                  f"it does not {does}{earlier}"), stacklevel=5)  # gradcam's or attribute's caller


def _smallest_with_a_map(default_at: Callable[[int], str], image: Tensor, size: int) -> int | None:
    """The smallest shorter side (the aspect kept) at which `default` finds a CAM layer, up to the recipe's `size`
    (where larger, the image's own), or None where the image is not smaller than that or no size up to it gives
    one: the model or the target, not the size, is to blame."""
    side = min(image.shape[-2:])
    top = max(size, side)

    def finds(shorter: int) -> bool:
        try:
            default_at(shorter)
        except DreamlabError:
            return False
        return True

    if side >= top or not finds(top):
        return None
    return smallest_side(finds, side, top)


def target_layers(subj: Subject, target: Target) -> frozenset[str]:
    """The layers the target reads (`logit`, the model's output, among them); none for None."""
    if target is None:
        return frozenset()
    return frozenset(parse_target(target, subj.categories, module_names(subj.model)).layers)


def refuse_unread(method: str, given: dict[str, object]) -> None:
    """Refuse an option the caller gave that `method` does not read (`USED_BY`), which it would silently ignore:
    the rule `dreamlab attribute` applies to its flags."""
    for name in given:
        users = [user for user in USED_BY.get(name, ()) if user in METHODS]
        if name in USED_BY and method not in users:
            flag = f"--{name.replace('_', '-')}"
            raise DreamlabError(f"{name} ({flag}) applies to {' or '.join(f'method={u!r}' for u in users)} only, "
                                f"not method={method!r}; leave it out")
    if "seed" in given and not reads_seed([method], given.get("baseline")):
        asked = f"method={method!r}"
        if method in ("ig", "occlusion"):
            base = given.get("baseline", "black")
            asked += f" with baseline={base!r}" if isinstance(base, str) else " with an image baseline"
        raise DreamlabError(f"seed (--seed) applies to method='smoothgrad', and method='ig' or 'occlusion' with "
                            f"baseline='noise', only (the others draw no noise), not {asked}; leave it out")


@checked_keywords
def gradcam(model: ModelLike, image: Tensor, target: Target = None, layer: str | None = None, *,
            method: str = "gradcam", recipe: Recipe | str | None = None,
            weights: str | Path | None = "default") -> Tensor:
    """The class activation map of `target` at `layer`, upsampled to the image: [1, H, W] or [B, 1, H, W], >= 0.

    `image` is in [0, 1] ([C, H, W] or a batch); it is normalized with the recipe's mean and std. `target` is an
    objective string (`logit:281`, `logit:tabby`, `inception4c:97`), an Objective, a class index, or None: each
    image's top class. `method` is gradcam, gradcam++, layercam or scorecam. `layer`: by default the recipe's `cam_layer`,
    else the last spatial layer (a ViT's: the last attention's input), and never the target's own layer or one it
    merely passes through a ReLU (then the last spatial layer before the channel-mixing layer that forms the target:
    `cam.default_cam_layer`); a layer with a 1x1 output (a global pool) is refused, and a token layer [B, N, D] is
    read as its grid of patches (`layout.token_maps`); where the image is so small that the default layer's map is
    1x1, the last layer whose map is larger is used, with a DreamlabNote warning. A map can be all zero: where the
    gradient-weighted sum of the layer's channels is 0 or negative at every position (`dreamlab cam` notes it).
    """
    _check_arguments(image, layer)
    if not isinstance(method, str) or method not in CAM_METHODS:
        raise unknown("CAM method", str(method), CAM_METHODS)
    subj = subject(model, recipe, weights)
    images, score = _prepare(subj, image, target)
    with evaluating(subj.model), sized_forward(subj, images):
        return _like_input(class_activation_map(score, images, cam_layer(subj, images, layer, score.objective),
                                                method), image)


@checked_keywords
def attribute(model: ModelLike, image: Tensor, target: Target = None, method: str = "saliency", *,
              recipe: Recipe | str | None = None, weights: str | Path | None = "default",
              baseline: str | Tensor | None = None, steps: int | None = None, samples: int | None = None,
              noise: float | None = None, layer: str | None = None, batch_size: int | None = None,
              seed: int | None = None, window: int | None = None, stride: int | None = None) -> Tensor:
    """Per-pixel attributions of `target` (as for `gradcam`; None: each image's top class) with the image's
    shape, signed.

    `method`: saliency, input-x-gradient (the pixels in [0, 1] times their gradient), smoothgrad (`samples`,
    `noise`: a fraction of each image's value range, of [0, 1] for a constant image; every image draws the same
    noise from `seed`, so a batch gives what each image gives alone), ig (`baseline` black|blurred|noise or an
    image, `steps`: Gauss-Legendre nodes; `ig_completeness` gives the completeness gap), deconvnet, guided (both
    refused for a model that runs no ReLU or ReLU6: the result would be the plain gradient), guided-gradcam (guided
    backprop times the Grad-CAM at `layer`), occlusion (the target's mean drop when a `window`-pixel square around
    each pixel, slid every `stride`, shows `baseline`; forward passes only). Expanded batches (IG steps, SmoothGrad
    samples, occluded copies) run `batch_size` images per forward pass. Left out (None): baseline black, steps 64,
    samples 32, noise 0.15, batch_size 32, seed 0, window an eighth of the input's shorter side, stride half the
    window. An option given to a method that does not read it is refused (`seed` is read by smoothgrad, and ig or
    occlusion with baseline="noise"), as `dreamlab attribute` refuses it.
    """
    if not isinstance(method, str) or method not in METHODS:
        hint = f"for Grad-CAM call dreamlab.gradcam(..., method={method!r})" if method in CAM_METHODS else ""
        raise unknown("attribution method", str(method), METHODS, hint=hint)
    given = {name: value for name, value in dict(baseline=baseline, steps=steps, samples=samples, noise=noise,
                                                  layer=layer, batch_size=batch_size, seed=seed, window=window,
                                                  stride=stride).items()
             if value is not None}
    baseline = "black" if baseline is None else baseline
    steps = 64 if steps is None else steps
    samples = 32 if samples is None else samples
    noise = 0.15 if noise is None else noise
    batch_size = 32 if batch_size is None else batch_size
    seed = 0 if seed is None else seed
    _check_arguments(image, layer, seed)  # before the model loads
    refuse_unread(method, given)
    if method == "smoothgrad":
        g.check_smoothgrad(samples, noise)
        g.check_batch_size(batch_size)
    elif method in ("ig", "occlusion"):
        if method == "ig":
            g.check_ig_steps(steps)
        g.check_batch_size(batch_size)
        g.check_baseline(baseline)
        if method == "occlusion" and not isinstance(baseline, str):
            raise DreamlabError("occlusion takes baseline black, blurred or noise (--baseline), not an image")
    subj = subject(model, recipe, weights)
    images, score = _prepare(subj, image, target)
    if method == "ig" and isinstance(baseline, Tensor):
        g.check_baseline_shape(baseline, images)
    with evaluating(subj.model), sized_forward(subj, images):
        if method == "saliency":
            result = g.saliency(score, images)
        elif method == "input-x-gradient":
            result = g.input_x_gradient(score, images)
        elif method == "smoothgrad":
            result = g.smoothgrad(score, images, samples, noise, seed, batch_size)
        elif method == "ig":
            result = g.integrated_gradients(score, images, baseline, steps, batch_size, seed)
        elif method == "deconvnet":
            result = g.deconvnet(score, images)
        elif method == "guided":
            result = g.guided_backprop(score, images)
        elif method == "occlusion":
            result = g.occlusion(score, images, *g.occlusion_window(images, window, stride), baseline, batch_size,
                                 seed)
        else:
            at = cam_layer(subj, images, layer, score.objective)
            cam = class_activation_map(score, images, at, CAM_METHODS[0])
            result = g.guided_backprop(score, images) * cam
    return _like_input(result, image)


def ig_completeness(model: ModelLike, image: Tensor, target: Target, attributions: Tensor,
                    baseline: str | Tensor = "black", seed: int = 0, *, recipe: Recipe | str | None = None,
                    weights: str | Path | None = "default") -> tuple[Tensor, Tensor]:
    """(completeness gap, f(x) - f(x')) of integrated-gradients `attributions` of `image` (as `attribute`
    returned them, with the same target, baseline and seed): the gap is the attributions' sum minus
    f(x) - f(x'), 0 for an exact integral ([B], or 0-d for one image [C, H, W])."""
    subj = subject(model, recipe, weights)
    images, score = _prepare(subj, image, target)
    with evaluating(subj.model), sized_forward(subj, images):
        gap, difference = g.completeness_gap(score, images, as_batch(attributions, images.shape[1]).to(images),
                                             baseline, seed)
    return (gap[0], difference[0]) if image.dim() == 3 else (gap, difference)


def rectifier_census(model: ModelLike, image: Tensor, target: Target = None, *, recipe: Recipe | str | None = None,
                     weights: str | Path | None = "default") -> tuple[int, Counter]:
    """(ReLU and ReLU6 calls that guided backprop and deconvnet rule, other activation calls by name) on the way
    from `image` to `target`: where both are non-zero the rules reach only part of the model."""
    from dreamlab.attribution.relu_rules import ReLURule

    subj = subject(model, recipe, weights)
    images, score = _prepare(subj, image, target)
    with evaluating(subj.model), sized_forward(subj, images), ReLURule("guided") as mode:
        g.saliency(score, images)
    return mode.ruled, mode.others


def sanity_blocks(model: ModelLike, image: Tensor, target: Target = None, *, recipe: Recipe | str | None = None,
                  weights: str | Path | None = "default") -> list[str]:
    """The blocks the sanity cascade re-initializes for `target`, top down (`sanity.blocks_top_down`): those
    that run on the way from `image` to the target (up to the target's layers, for a target that reads no
    logit)."""
    from dreamlab.attribution.sanity import blocks_top_down

    from dreamlab.optvis.capture import OUTPUT

    subj = subject(model, recipe, weights)
    images, score = _prepare(subj, image, target)
    layers = set(score.objective.layers)
    with evaluating(subj.model), sized_forward(subj, images), torch.no_grad():
        return blocks_top_down(subj.model, lambda: subj.model(subj.normalize(images)),
                               () if OUTPUT in layers else layers)
