"""Class activation maps: Grad-CAM and Grad-CAM++ at a layer, upsampled to the image.

Grad-CAM (Selvaraju et al. 2017): weight each channel of layer activations A by the spatial mean of the
target's gradient d y / d A, sum over channels, ReLU, then upsample bilinearly to the image.
Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the exponential-score closed form): per-position weights
alpha = g^2 / (2 g^2 + sum_ab(A) g^3), channel weight sum_ab(alpha * relu(g)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamlab.attribution.target import TargetScore, tap
from dreamlab.models.layout import channels_last_layers
from dreamlab.errors import DreamlabError, unknown

CAM_METHODS = ("gradcam", "gradcam++")


def default_cam_layer(model: nn.Module, sample: Tensor, recipe_layer: str | None = None) -> str:
    """The recipe's `cam_layer`, else the last module (in execution order) whose output is a spatial map."""
    if recipe_layer:
        return recipe_layer
    names = {module: name for name, module in model.named_modules() if name}
    order: list[str] = []

    def hook(module: nn.Module, inputs: object, output: object) -> None:
        if isinstance(output, Tensor) and output.dim() == 4 and output.shape[-2] * output.shape[-1] > 1:
            order.append(names[module])

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise DreamlabError("this model has no layer with a spatial output map; Grad-CAM needs one (layer, --layer)")
    return order[-1]


def layer_activation_and_gradient(score: TargetScore, images: Tensor, layer: str) -> tuple[Tensor, Tensor]:
    """The layer's output A [B, K, h, w] and d target / d A for each image."""
    index = torch.arange(images.shape[0], device=images.device)
    with torch.enable_grad(), tap(score.subject.model, layer) as store:
        values = score(images.detach().requires_grad_(True), index)  # the layer's output joins the graph
        if "out" not in store:
            raise DreamlabError(f"layer {layer!r} runs after every layer the target "
                                f"{score.objective.name!r} reads, so the target does not depend on it; pick an "
                                f"earlier layer or a later target (logit:N)")
        act = store["out"]
        if act.dim() != 4:
            raise DreamlabError(f"layer {layer!r} has output shape {list(act.shape)}, with no spatial dimensions; "
                                f"Grad-CAM needs a [B, C, H, W] map: pick a conv layer or block "
                                f"(`dreamlab layers MODEL` lists the shapes)")
        (grad,) = torch.autograd.grad(values.sum(), act, allow_unused=True)
    if grad is None:
        raise DreamlabError(f"the target {score.objective.name!r} does not depend on layer {layer!r}; pick a layer "
                            f"on its path")
    if layer in channels_last_layers(score.subject.model, [layer], images):  # [B, H, W, C]: ConvNeXt, Swin
        act, grad = act.permute(0, 3, 1, 2), grad.permute(0, 3, 1, 2)
    return act.detach(), grad


def cam_weights(act: Tensor, grad: Tensor, method: str) -> Tensor:
    """Channel weights [B, K, 1, 1] of Grad-CAM or Grad-CAM++."""
    if method == "gradcam":
        return grad.mean((2, 3), keepdim=True)
    if method == "gradcam++":
        g2, g3 = grad.pow(2), grad.pow(3)
        denominator = 2 * g2 + act.sum((2, 3), keepdim=True) * g3
        alpha = torch.where(denominator != 0, g2 / denominator.where(denominator != 0, torch.ones_like(g2)),
                            torch.zeros_like(g2))
        return (alpha * grad.clamp(min=0)).sum((2, 3), keepdim=True)
    raise unknown("CAM method", method, CAM_METHODS)


def class_activation_map(score: TargetScore, images: Tensor, layer: str, method: str = "gradcam") -> Tensor:
    """The CAM [B, 1, H, W] at the images' size (ReLU on the coarse map, then bilinear upsampling)."""
    if method not in CAM_METHODS:
        raise unknown("CAM method", method, CAM_METHODS)
    act, grad = layer_activation_and_gradient(score, images, layer)
    coarse = (cam_weights(act, grad, method) * act).sum(1, keepdim=True).clamp(min=0)
    return F.interpolate(coarse, size=images.shape[-2:], mode="bilinear", align_corners=False)
