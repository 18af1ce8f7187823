"""Deconvnet and guided-backpropagation ReLU rules, for every ReLU a model runs.

Both change only the backward pass of ReLU (the forward values are untouched):

- guided backpropagation (Springenberg et al. 2015): pass the gradient where the input was positive AND the
  gradient is positive, `g * (x > 0) * (g > 0)`;
- deconvnet (Zeiler & Fergus 2014): ignore the forward mask and pass the positive gradient, `max(g, 0)`.

Tools that swap or hook `nn.ReLU` modules miss functional ReLUs (torchvision GoogLeNet has no `nn.ReLU` module at
all; every ReLU there is `F.relu(x, inplace=True)`) and silently return the plain gradient. `ReLURule` is a
TorchFunctionMode, so it sees `nn.ReLU` modules (they call `F.relu`), `F.relu`, `torch.relu`, `Tensor.relu` and
the in-place `relu_` variants alike; an in-place call still modifies its input and returns it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

RULES = ("guided", "deconvnet")


def _save_mask(ctx, rule: str, x: Tensor) -> None:
    """Keep only what the rule's backward needs: where the input was positive (guided), nothing (deconvnet).

    A separate bool mask, not the output, so a later in-place op on the output cannot invalidate it."""
    ctx.rule = rule
    ctx.save_for_backward(x > 0 if rule == "guided" else None)


def _apply_rule(ctx, grad: Tensor) -> tuple[Tensor, None]:
    (positive,) = ctx.saved_tensors
    passed = grad.clamp(min=0)
    return (passed if positive is None else passed * positive), None


class _RuledReLU(torch.autograd.Function):
    """max(x, 0) forward; the rule's backward."""

    @staticmethod
    def forward(ctx, x: Tensor, rule: str) -> Tensor:  # type: ignore[override]
        _save_mask(ctx, rule, x)
        return x.clamp(min=0)

    backward = staticmethod(_apply_rule)


class _RuledReLUInPlace(torch.autograd.Function):
    """The in-place form: modifies `x` and returns it (marked dirty, so autograd versions stay right)."""

    @staticmethod
    def forward(ctx, x: Tensor, rule: str) -> Tensor:  # type: ignore[override]
        _save_mask(ctx, rule, x)
        x.clamp_(min=0)
        ctx.mark_dirty(x)
        return x

    backward = staticmethod(_apply_rule)


_OUT_OF_PLACE = {torch.relu, F.relu, torch.Tensor.relu}
_IN_PLACE = {torch.relu_, torch.Tensor.relu_}


def _is_in_place(func, args: tuple, kwargs: dict) -> bool:
    if func in _IN_PLACE:
        return True
    if func is F.relu:  # F.relu(input, inplace=False)
        return bool(kwargs.get("inplace", args[1] if len(args) > 1 else False))
    return False


class ReLURule(TorchFunctionMode):
    """Within this mode every ReLU that takes part in autograd uses `rule`'s backward ('guided' or 'deconvnet')."""

    def __init__(self, rule: str):
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"unknown ReLU rule {rule!r}; valid: {', '.join(RULES)}")
        self.rule = rule

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (func in _OUT_OF_PLACE or func in _IN_PLACE) and args and isinstance(args[0], Tensor) \
                and args[0].requires_grad and torch.is_grad_enabled():
            if _is_in_place(func, args, kwargs):
                return _RuledReLUInPlace.apply(args[0], self.rule)
            return _RuledReLU.apply(args[0], self.rule)
        return func(*args, **kwargs)
