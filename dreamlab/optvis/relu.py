"""Redirected ReLU: lets gradient reach units that start dead, for the first steps of a render.

A ReLU whose input is negative everywhere passes no gradient, so a channel that is off for the starting image
can never be turned on. Lucid's remedy (tensorflow/lucid, misc/redirected_relu_grad.py): when the ordinary ReLU
gradient of a sample is zero everywhere, pass the incoming gradient except where it would push an already
negative input further down. Applied through a TorchFunctionMode, so functional ReLUs (torchvision GoogLeNet
has no nn.ReLU modules) are covered as well as modules, and in-place ReLUs (`relu_`, `F.relu(inplace=True)`,
`nn.ReLU(inplace=True)`) still change their input in place.

Only plain ReLU is redirected: `relu6`, `leaky_relu`, `hardtanh`, `gelu` and the like keep their own gradient
(leaky ReLU and GELU are never fully dead; ReLU6 and hardtanh clip at the top as well, which lucid's rule does
not cover).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode


class _RedirectedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        negative = x < 0
        ctx.save_for_backward(negative)  # the mask, not x: an in-place ReLU overwrites x afterwards
        return x.masked_fill(negative, 0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (negative,) = ctx.saved_tensors
        relu_grad = grad.masked_fill(negative, 0)
        # the loss is minimized, so a positive grad on a negative input would push it lower still
        redirected = grad.masked_fill(negative & (grad > 0), 0)
        if negative.dim() == 0:
            return relu_grad
        alive = relu_grad.flatten(1).abs().amax(1) > 0
        return torch.where(alive.view(-1, *([1] * (negative.dim() - 1))), relu_grad, redirected)


_RELUS = {torch.relu, F.relu, torch.Tensor.relu}
_INPLACE_RELUS = {torch.relu_, torch.Tensor.relu_}


class RedirectedReLU(TorchFunctionMode):
    """Within this mode every ReLU (module or functional, in-place or not) uses the redirected gradient."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (func in _RELUS or func in _INPLACE_RELUS) and args and isinstance(args[0], Tensor) \
                and args[0].requires_grad:
            out = _RedirectedReLU.apply(args[0])
            inplace = func in _INPLACE_RELUS or (func is F.relu and (kwargs.get("inplace") or args[1:2] == (True,)))
            return args[0].copy_(out) if inplace else out
        return func(*args, **kwargs)
