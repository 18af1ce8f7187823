"""Redirected ReLU: lets gradient reach units that start dead, for the first steps of a render.

A ReLU whose input is negative everywhere passes no gradient, so a channel that is off for the starting image
can never be turned on. Lucid's remedy (tensorflow/lucid, misc/redirected_relu_grad.py): when the ordinary ReLU
gradient of a sample is zero everywhere, pass the incoming gradient except where it would push an already
negative input further down. Applied through a TorchFunctionMode, so functional ReLUs (torchvision GoogLeNet
has no nn.ReLU modules) are covered as well as modules.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode


class _RedirectedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        negative = x < 0
        relu_grad = grad.masked_fill(negative, 0)
        # the loss is minimized, so a positive grad on a negative input would push it lower still
        redirected = grad.masked_fill(negative & (grad > 0), 0)
        if x.dim() == 0:
            return relu_grad
        alive = relu_grad.flatten(1).abs().amax(1) > 0
        return torch.where(alive.view(-1, *([1] * (x.dim() - 1))), relu_grad, redirected)


_RELUS = {torch.relu, torch.relu_, F.relu, torch.Tensor.relu, torch.Tensor.relu_}


class RedirectedReLU(TorchFunctionMode):
    """Within this mode every ReLU (module or functional, in-place or not) uses the redirected gradient."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELUS and args and isinstance(args[0], Tensor) and args[0].requires_grad:
            return _RedirectedReLU.apply(args[0])
        return func(*args, **kwargs)
