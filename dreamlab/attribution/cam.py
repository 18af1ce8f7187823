"""Class activation maps: Grad-CAM, Grad-CAM++, LayerCAM and Score-CAM at a layer, upsampled to the image.

Grad-CAM (Selvaraju et al. 2017): weight each channel of layer activations A by the spatial mean of the
target's gradient d y / d A, sum over channels, ReLU, then upsample bilinearly to the image.
Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the exponential-score closed form): per-position weights
alpha = g^2 / (2 g^2 + sum_ab(A) g^3), channel weight sum_ab(alpha * relu(g)). The paper derives alpha for
activations A >= 0 (after a ReLU), where alpha lies in [0, 1/2] wherever g > 0. At a layer whose outputs can be
negative (a conv before its ReLU, a LayerNorm: ConvNeXt's and Swin's default layers) the literal formula's
denominator changes sign or nears 0, and alpha takes values like -842 or 176 (LeNet's conv1, conv2); so the sum
in alpha is taken over relu(A). That equals the paper's alpha wherever A >= 0 and keeps alpha in [0, 1/2]
elsewhere; the map itself still weights the signed A, as Grad-CAM's does. Its channel weights are >= 0, so at
a layer whose outputs are mostly negative the map is often 0 everywhere (LeNet's conv2, each of the first 100
held-out digits for its own label: 97 all-zero maps, against 44 for Grad-CAM and none at relu2); use the layer
after the ReLU there.

LayerCAM (Jiang et al. 2021, eq. 5-6): no channel weights; each position of each channel is weighted by its own
positive gradient, relu(g) * A, summed over channels, then ReLU. At a shallow layer, where Grad-CAM's spatial mean
of the gradient blurs the map, it keeps the fine detail.

Score-CAM (Wang et al. 2020) uses no gradient for its weights: each channel's map, upsampled to the image and
stretched to [0, 1], masks the image, and the channel's weight is the target's score on that masked image minus
its score on a black one (the paper's increase of confidence; here the target's own value, as a target need not be
a class probability). One forward per channel, SCORECAM_CHUNK at a time.

A vision transformer's token layer [B, N, D] is read as [B, D, k, k], its patches as a grid (`layout.token_maps`,
which `features` shares). After the last attention the head reads only the class token, so a layer there gets no
gradient on its patches; it is refused, naming the last attention's input.

The default layer (`default_cam_layer`) is the recipe's `cam_layer`, else the last spatial layer (for a ViT, whose
last spatial layer is its patch embedding, the last attention's input, where its tokens are a grid), but never the
target's own layer, one after it, or one whose channel the target merely passes through a ReLU (or another
per-channel op): Grad-CAM of a channel's mean there has a gradient on that one channel, uniform where it is
positive, so its "map" would be the channel itself, not a gradient-weighted map of a hidden layer.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamlab.attribution.target import TargetScore, tap
from dreamlab.models.layout import channels_first, channels_last_layers, patch_grid, token_maps
from dreamlab.errors import DreamlabError, unknown
from dreamlab.hooks import hooked_forward
from dreamlab.optvis.capture import children_that_ran, unused_module

CAM_METHODS = ("gradcam", "gradcam++", "layercam", "scorecam")
SCORECAM_CHUNK = 32  # masked copies of an image per forward pass


class NoSpatialLayer(DreamlabError):
    """No layer with a map larger than 1x1 runs (before the target's layer): at too small an image, or in the
    model itself. `reason` is what was found, without the advice."""

    def __init__(self, reason: str, advice: str) -> None:
        super().__init__(reason + advice)
        self.reason = reason


def mixes_channels(module: nn.Module) -> bool:
    """Whether an output channel of `module` reads several input channels: a conv (not depthwise) or linear
    layer, or a block holding one. ReLU, batch norm, pooling, a sigmoid and depthwise convs act per channel."""
    for sub in module.modules():
        if isinstance(sub, nn.modules.conv._ConvNd):
            if sub.groups < sub.in_channels or sub.in_channels == 1:
                return True
        elif any(p.dim() >= 2 for p in sub.parameters(recurse=False)):  # linear, attention projections
            return True
    return False


class ModuleCall(NamedTuple):
    """A named module's start or end in a traced forward; at its end, the shapes of its first input and output."""
    kind: str  # "start" | "end"
    name: str
    given: tuple[int, ...] = ()  # () at a start, or where the first input is no tensor
    out: tuple[int, ...] = ()  # () at a start, or where the output is no tensor


def trace_forward(model: nn.Module, sample: Tensor) -> list[ModuleCall]:
    """Every named module's start and end, in the order they happen in one forward of `sample` without gradients:
    what `default_cam_layer` and `enlarging_pool` read, so that one forward can serve both. The caller sets eval
    mode."""
    return traced_run(model, sample)[1]


def traced_run(model: nn.Module, sample: Tensor) -> tuple[object, list[ModuleCall]]:
    """(the model's output, `trace_forward`'s trace) from one forward of `sample` without gradients: for a caller
    that needs both (the command line's top class and Grad-CAM layer). The caller sets eval mode."""
    names = {module: name for name, module in model.named_modules() if name}
    calls: list[ModuleCall] = []

    def pre_hook(module: nn.Module, inputs: object) -> None:
        calls.append(ModuleCall("start", names[module]))

    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        given = inputs[0].shape if inputs and isinstance(inputs[0], Tensor) else ()
        calls.append(ModuleCall("end", names[module], tuple(given),
                                tuple(output.shape) if isinstance(output, Tensor) else ()))

    output = hooked_forward(model, sample, [(m, hook) for m in names], [(m, pre_hook) for m in names])
    return output, calls


def traced(model: nn.Module, sample: Tensor, trace: list[ModuleCall] | None) -> list[ModuleCall]:
    """`trace` where the caller has one, else `trace_forward(model, sample)`."""
    return trace_forward(model, sample) if trace is None else trace


def spatial_map(out: tuple[int, ...]) -> bool:
    """Whether an output of shape `out` is a spatial map: [B, C, H, W] with more than one channel and H*W > 1."""
    return len(out) == 4 and out[-2] * out[-1] > 1 and out[1] > 1


def default_cam_layer(model: nn.Module, sample: Tensor, recipe_layer: str | None = None,
                      target_layers: Collection[str] = (), trace: list[ModuleCall] | None = None) -> str:
    """The recipe's `cam_layer`, else the last module (in execution order) whose output is a spatial map (more
    than 1x1, more than one channel) and that runs once per forward (a reused module's output is ambiguous).

    For a target that reads a layer (`target_layers`: module addresses; the output `logit` is none), the layer
    must run before the target's value is formed, else its Grad-CAM is the target's channel itself: before the
    target's module, and outside it; and where that module acts per channel (a ReLU, batch norm, pooling, HED's
    sigmoid `edges`), before the last channel-mixing layer that feeds it (LeNet's relu2:3 reads conv2's channel
    3: its map is at pool1). The recipe's layer is kept if it qualifies, else the last one that does. Where an
    attention-based token stack runs after the last spatial layer (a ViT's patch embedding), the last attention's
    input (`attention_input`) is taken instead if its tokens are a grid of patches. `trace`:
    `trace_forward(model, sample)` where the caller has it (no forward then)."""
    modules = {name: module for name, module in model.named_modules() if name}
    calls = traced(model, sample, trace)
    # ("start" | "end", module, its output is a spatial map)
    events = [(kind, name, spatial_map(out)) for kind, name, _, out in calls]
    targets = [t for t in target_layers if t in modules]

    def inside_target(name: str) -> bool:
        return any(name == t or name.startswith(t + ".") for t in targets)

    limit = len(events)
    starts = [i for i, (kind, name, _) in enumerate(events) if kind == "start" and name in targets]
    if starts:
        limit = min(starts)  # before the target's module starts
        if not any(mixes_channels(modules[t]) for t in targets):  # a per-channel target: before its mixing layer
            mixing = [i for i, (kind, name, _) in enumerate(events[:limit]) if kind == "end"
                      and not any(True for _ in modules[name].children()) and mixes_channels(modules[name])]
            if mixing:
                mixer = events[mixing[-1]][1]
                limit = max(i for i, (kind, name, _) in enumerate(events[:mixing[-1]])
                            if kind == "start" and name == mixer)
    runs = Counter(name for kind, name, _ in events if kind == "end")  # a reused module (ResNet's relu) is ambiguous
    ends = [i for i, (kind, name, spatial) in enumerate(events[:limit])
            if kind == "end" and spatial and not inside_target(name) and runs[name] == 1]
    before = [events[i][1] for i in ends]
    if recipe_layer and not starts and any(kind == "end" and name == recipe_layer and not spatial
                                           for kind, name, spatial in events):  # a 1x1 map at this image size
        raise NoSpatialLayer(f"the recipe's cam_layer {recipe_layer} has no map larger than 1x1",
                             "; give an explicit layer (layer, --layer) or a larger image")
    if recipe_layer and (not starts or recipe_layer in before):
        return recipe_layer
    tokens = attention_input(calls[:limit], modules, bool)  # the last tensor before it, tokens or not
    shape = traced_output_shape(calls, tokens) if tokens is not None else None
    if shape is not None and len(shape) == 3 and patch_grid(shape[1]) is not None and runs[tokens] == 1 \
            and not inside_target(tokens):
        end = max(i for i, call in enumerate(calls[:limit]) if call.kind == "end" and call.name == tokens)
        if not ends or ends[-1] < end:  # the token stack runs after the last spatial layer
            return tokens
    if not before:
        if starts:
            raise NoSpatialLayer(f"no layer with a spatial output map runs before the target's layer "
                                 f"{', '.join(sorted(targets))}", ", so there is no layer for its Grad-CAM; give a "
                                 "later target (logit:N) or an explicit layer (layer, --layer)")
        raise NoSpatialLayer("this model has no layer with a spatial output map",
                             "; Grad-CAM needs one (layer, --layer)")
    return before[-1]


def output_shape(model: nn.Module, sample: Tensor, layer: str) -> tuple[int, ...] | None:
    """The shape of `layer`'s output (its first call) in one forward of `sample`, or None where it does not run or
    returns no tensor. Runs without gradients; the caller sets eval mode."""
    module = dict(model.named_modules())[layer]
    shapes: list[tuple[int, ...]] = []

    def hook(module: nn.Module, inputs: object, output: object) -> None:
        if isinstance(output, Tensor) and not shapes:
            shapes.append(tuple(output.shape))

    hooked_forward(model, sample, [(module, hook)])
    return shapes[0] if shapes else None


def traced_output_shape(trace: list[ModuleCall], layer: str) -> tuple[int, ...] | None:
    """`output_shape` read from a `trace_forward` of the same sample: no forward (a 0-dim output reads as None)."""
    return next((call.out for call in trace if call.kind == "end" and call.name == layer and call.out), None)


ADAPTIVE_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def enlarging_pool(model: nn.Module, sample: Tensor, layer: str, trace: list[ModuleCall] | None = None
                   ) -> tuple[str, tuple[int, int], tuple[int, int], str | None, tuple[int, int] | None] | None:
    """Where an adaptive pool that runs before `layer`'s output is formed (or is `layer`) makes its map larger
    than the one it reads (AlexNet's avgpool, AdaptiveAvgPool2d((6, 6)), repeats a 1x1 map below 223 px, VGG's
    (7, 7) below 224): (the pool, the map it reads, the map it gives, the last conv layer before it whose map is
    larger than 1x1 and that map, or None); None where no pool enlarges a map, or `layer` does not run. One
    forward without gradients, none where the caller gives its `trace_forward(model, sample)` as `trace`; the
    caller sets eval mode."""
    modules = {name: module for name, module in model.named_modules() if name}
    sizes = [m.output_size if isinstance(m.output_size, tuple) else (m.output_size,) for m in modules.values()
             if isinstance(m, ADAPTIVE_POOLS)]
    if not any(s is not None and s > 1 for size in sizes for s in size):  # a pool to 1x1 enlarges nothing
        return None  # no forward: most models (ResNet, GoogLeNet) end in a global pool
    events = [(name, modules[name], given, out) for kind, name, given, out in traced(model, sample, trace)
              if kind == "end"]
    ends = [i for i, (name, *_) in enumerate(events) if name == layer]
    if not ends:
        return None
    pools = [i for i, (_, module, given, out) in enumerate(events[:ends[0] + 1])
             if isinstance(module, ADAPTIVE_POOLS) and len(given) >= 3 and len(out) == len(given)
             and (out[-2] > given[-2] or out[-1] > given[-1])]
    if not pools:
        return None
    pool, _, given, out = events[pools[-1]]
    convs = [(name, shape[-2:]) for name, module, _, shape in events[:pools[-1]]
             if isinstance(module, nn.modules.conv._ConvNd) and len(shape) == 4 and shape[-2] * shape[-1] > 1]
    conv, conv_map = convs[-1] if convs else (None, None)
    return pool, tuple(given[-2:]), tuple(out[-2:]), conv, conv_map


def layer_activation_and_gradient(score: TargetScore, images: Tensor, layer: str) -> tuple[Tensor, Tensor]:
    """The layer's output A [B, K, h, w] and d target / d A for each image. A token layer's output [B, N, D] is
    read as its grid of patches [B, D, k, k] (`layout.token_maps`: a class token first is left out)."""
    index = torch.arange(images.shape[0], device=images.device)
    with torch.enable_grad(), tap(score.subject.model, layer) as store:
        values = score(images.detach().requires_grad_(True), index)  # the layer's output joins the graph
        if "out" not in store:
            model = score.subject.model
            inside = children_that_ran(model, layer, images[:1].detach()) if layer else []
            if inside:  # a container the forward loops over (hed-vgg16's features): it never runs as one
                raise unused_module(layer, inside)
            raise DreamlabError(f"layer {layer!r} runs after every layer the target "
                                f"{score.shown!r} reads, so the target does not depend on it; pick an "
                                f"earlier layer or a later target (logit:N)")
        act = store["out"]
        if act.dim() not in (3, 4):
            raise DreamlabError(f"layer {layer!r} has output shape {list(act.shape)}, with no spatial dimensions; "
                                f"Grad-CAM needs a [B, C, H, W] map or [B, N, D] tokens of a grid of patches: pick "
                                f"a conv layer or block (`dreamlab layers MODEL` lists the shapes)")
        (grad,) = torch.autograd.grad(values.sum(), act, allow_unused=True)
    if grad is None:
        raise DreamlabError(f"the target {score.shown!r} does not depend on layer {layer!r}; pick a layer "
                            f"on its path")
    if layer in channels_last_layers(score.subject.model, [layer], images):  # [B, H, W, C], tokens [B, N, D]
        act, grad = channels_first(act), channels_first(grad)
    if act.dim() == 3:  # tokens [B, D, N]
        act, grad = token_grid(score, images, layer, act.detach(), grad)
    if act.shape[-2] * act.shape[-1] == 1:  # a pooled vector: the upsampled "map" would be one value everywhere
        raise DreamlabError(f"layer {layer!r} has output shape {list(act.shape)}, a 1x1 map with no spatial "
                            f"extent, so its Grad-CAM is one value over the whole image; pick a layer before "
                            f"the pooling, a conv layer or block (`dreamlab layers MODEL` lists the shapes)")
    return act.detach(), grad


def token_grid(score: TargetScore, images: Tensor, layer: str, act: Tensor, grad: Tensor) -> tuple[Tensor, Tensor]:
    """A token layer's output and gradient [B, D, N] as the patches' maps [B, D, k, k]. Refused where the target
    reads no patch token there but reads the class token: after a ViT's last attention its head reads only the
    class token, so the patches' gradient, and with it the map, is zero for every image."""
    unusable = ("Grad-CAM cannot lay them out as a map; pick a conv layer or a layer of k*k patch tokens "
                "(`dreamlab layers MODEL` lists the shapes)")
    maps, grads = token_maps(act, layer, unusable), token_maps(grad, layer, unusable)
    extra = act.shape[-1] - maps.shape[-2] * maps.shape[-1]  # the class token, or none
    if extra and not grads.any() and grad[..., :extra].any():
        instead = token_mixer_input(score, images, layer)
        use = f"use {instead}, the input of the last attention" if instead else \
            "use a layer before the last attention (its input)"
        raise DreamlabError(f"the target {score.shown!r} reads only the class token of layer {layer!r}, none of its "
                            f"patch tokens (after the last attention the head reads the class token alone), so its "
                            f"Grad-CAM is zero everywhere; {use}")
    return maps, grads


def token_mixer_input(score: TargetScore, images: Tensor, layer: str) -> str | None:
    """The module that ends last before the last attention module (nn.MultiheadAttention, or a class named
    *Attention) starts and outputs tokens shaped as `layer`'s (torchvision ViT's last `ln_1`, timm's `norm1`): the
    last layer whose patch tokens still reach the class token. None where the model runs no attention."""
    model = score.subject.model
    trace = trace_forward(model, score.subject.normalize(images[:1].detach()))
    shape = traced_output_shape(trace, layer)
    if shape is None:
        return None
    return attention_input(trace, dict(model.named_modules()), lambda out: out == shape, layer)


def attention_input(trace: list[ModuleCall], modules: dict[str, nn.Module], fits: Callable[[tuple[int, ...]], bool],
                    skip: str | None = None) -> str | None:
    """The module in `trace` that ends last before the last attention module (nn.MultiheadAttention, or a class
    named *Attention) starts, among those whose output shape `fits` (and that are not `skip`); None where no
    attention runs or none fits."""
    attentions = [i for i, call in enumerate(trace) if call.kind == "start" and (isinstance(
        modules[call.name], nn.MultiheadAttention) or type(modules[call.name]).__name__.endswith("Attention"))]
    if not attentions:
        return None
    return next((call.name for call in reversed(trace[:attentions[-1]])
                 if call.kind == "end" and fits(call.out) and call.name != skip), None)


def cam_weights(act: Tensor, grad: Tensor, method: str) -> Tensor:
    """Channel weights [B, K, 1, 1] of Grad-CAM or Grad-CAM++ (alpha from relu(A): see the module's docstring)."""
    if method == "gradcam":
        return grad.mean((2, 3), keepdim=True)
    if method == "gradcam++":
        g2, g3 = grad.pow(2), grad.pow(3)
        # relu(A): the paper's A >= 0; at a layer with negative outputs the literal sum flips alpha's sign
        denominator = 2 * g2 + act.clamp(min=0).sum((2, 3), keepdim=True) * g3
        alpha = torch.where(denominator != 0, g2 / denominator.where(denominator != 0, torch.ones_like(g2)),
                            torch.zeros_like(g2))
        return (alpha * grad.clamp(min=0)).sum((2, 3), keepdim=True)
    raise unknown("CAM method", method, CAM_METHODS)


@torch.no_grad()
def score_cam_weights(score: TargetScore, images: Tensor, act: Tensor) -> Tensor:
    """Score-CAM's channel weights [B, K, 1, 1]: the target on the image masked by each channel's map (upsampled,
    min-max stretched to [0, 1]; a constant map masks everything out) minus the target on a black image."""
    b, k = act.shape[:2]
    masks = F.interpolate(act.float(), size=images.shape[-2:], mode="bilinear", align_corners=False)
    low, high = masks.amin((2, 3), keepdim=True), masks.amax((2, 3), keepdim=True)
    masks = torch.where(high > low, (masks - low) / (high - low).clamp_min(1e-12), torch.zeros_like(masks))
    index = torch.arange(b, device=images.device)
    black = score(torch.zeros_like(images), index).float()
    weights = torch.empty(b, k, device=images.device)
    for i in range(b):
        for start in range(0, k, SCORECAM_CHUNK):
            chunk = masks[i, start:start + SCORECAM_CHUNK, None]  # [n, 1, H, W]
            masked = images[i:i + 1] * chunk
            rows = torch.full((len(chunk),), i, device=images.device)
            weights[i, start:start + len(chunk)] = score(masked, rows).float() - black[i]
    return weights[:, :, None, None].to(act.dtype)


def class_activation_map(score: TargetScore, images: Tensor, layer: str, method: str = "gradcam") -> Tensor:
    """The CAM [B, 1, H, W] at the images' size (ReLU on the coarse map, then bilinear upsampling)."""
    if method not in CAM_METHODS:
        raise unknown("CAM method", method, CAM_METHODS)
    act, grad = layer_activation_and_gradient(score, images, layer)
    if method == "scorecam":
        weights = score_cam_weights(score, images, act)
    else:
        weights = grad.clamp(min=0) if method == "layercam" else cam_weights(act, grad, method)
    coarse = (weights * act).sum(1, keepdim=True).clamp(min=0)
    return F.interpolate(coarse, size=images.shape[-2:], mode="bilinear", align_corners=False)
