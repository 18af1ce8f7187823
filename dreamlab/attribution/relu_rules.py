"""Deconvnet and guided-backpropagation rules, for every ReLU (and clamped ReLU: ReLU6) a model runs.

Both change only the backward pass of the rectifier (the forward values are untouched):

- guided backpropagation (Springenberg et al. 2015): pass the gradient where the input was positive AND the
  gradient is positive, `g * (x > 0) * (g > 0)`;
- deconvnet (Zeiler & Fergus 2014): ignore the forward mask and pass the positive gradient, `max(g, 0)`.

Tools that swap or hook `nn.ReLU` modules miss functional ReLUs (torchvision GoogLeNet has no `nn.ReLU` module at
all; every ReLU there is `F.relu(x, inplace=True)`) and silently return the plain gradient. `ReLURule` is a
TorchFunctionMode, so it sees `nn.ReLU` modules (they call `F.relu`), `F.relu`, `torch.relu`, `Tensor.relu` and
the in-place `relu_` variants alike; an in-place call still modifies its input and returns it.

ReLU6 (`nn.ReLU6`, `F.relu6`, and `F.hardtanh(x, 0, m)`: MobileNetV2's activation) is a ReLU clamped at the top,
min(max(x, 0), m); its forward derivative is 1 where 0 < x < m, so the guided rule passes the positive gradient
there, `g * (0 < x < m) * (g > 0)`, and deconvnet passes `max(g, 0)` as for a ReLU. Other activations (SiLU,
GELU, Hardswish, ...) are no rectifiers and keep their own backward; the mode counts them (`ReLURule.others`)
and counts the rectifier calls it ruled (`ReLURule.ruled`), so a caller can tell that a model ran no rectifier,
where the result would be the plain gradient.
"""
from __future__ import annotations

import math
from collections import Counter

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

RULES = ("guided", "deconvnet")


def _save_mask(ctx, rule: str, x: Tensor, top: float = math.inf) -> None:
    """Keep only what the rule's backward needs: where the rectifier passes its input, 0 < x (< top for a
    clamped one), for guided; nothing for deconvnet.

    A separate bool mask, not the output, so a later in-place op on the output cannot invalidate it."""
    ctx.rule = rule
    if rule != "guided":
        ctx.save_for_backward(None)
    else:
        ctx.save_for_backward((x > 0) & (x < top) if math.isfinite(top) else x > 0)


def _apply_rule(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
    (positive,) = ctx.saved_tensors
    passed = grad.clamp(min=0)
    return (passed if positive is None else passed * positive), None, None


class _RuledReLU(torch.autograd.Function):
    """min(max(x, 0), top) forward (top = inf: a ReLU); the rule's backward."""

    @staticmethod
    def forward(ctx, x: Tensor, rule: str, top: float) -> Tensor:  # type: ignore[override]
        _save_mask(ctx, rule, x, top)
        return x.clamp(min=0) if math.isinf(top) else x.clamp(0, top)

    backward = staticmethod(_apply_rule)


class _RuledReLUInPlace(torch.autograd.Function):
    """The in-place form: modifies `x` and returns it (marked dirty, so autograd versions stay right)."""

    @staticmethod
    def forward(ctx, x: Tensor, rule: str, top: float) -> Tensor:  # type: ignore[override]
        _save_mask(ctx, rule, x, top)
        if math.isinf(top):
            x.clamp_(min=0)
        else:
            x.clamp_(0, top)
        ctx.mark_dirty(x)
        return x

    backward = staticmethod(_apply_rule)


_OUT_OF_PLACE = {torch.relu, F.relu, torch.Tensor.relu}
_IN_PLACE = {torch.relu_, torch.Tensor.relu_}

# activations that are no rectifier, by the name a user knows them by: counted, never ruled
_OTHERS = {F.silu: "SiLU", F.gelu: "GELU", F.hardswish: "Hardswish", F.mish: "Mish", F.elu: "ELU", F.selu: "SELU",
           F.celu: "CELU", F.leaky_relu: "LeakyReLU", F.prelu: "PReLU", F.rrelu: "RReLU", F.softplus: "Softplus",
           F.hardsigmoid: "Hardsigmoid", F.hardtanh: "Hardtanh", torch.sigmoid: "Sigmoid",
           torch.Tensor.sigmoid: "Sigmoid", F.sigmoid: "Sigmoid", torch.tanh: "Tanh", torch.Tensor.tanh: "Tanh",
           F.tanh: "Tanh"}


def _argument(args: tuple, kwargs: dict, name: str, position: int, default: object) -> object:
    return kwargs.get(name, args[position] if len(args) > position else default)


def _rectifier(func, args: tuple, kwargs: dict) -> tuple[float, bool] | None:
    """(top, in place) of a ReLU (top = inf) or clamped ReLU call; None for anything else."""
    if func in _IN_PLACE:
        return math.inf, True
    if func in _OUT_OF_PLACE:  # F.relu(input, inplace=False)
        return math.inf, func is F.relu and bool(_argument(args, kwargs, "inplace", 1, False))
    if func is F.relu6:
        return 6.0, bool(_argument(args, kwargs, "inplace", 1, False))
    if func is F.hardtanh:  # hardtanh(input, min_val=-1., max_val=1., inplace=False)
        low, top = _argument(args, kwargs, "min_val", 1, -1.0), _argument(args, kwargs, "max_val", 2, 1.0)
        if low == 0 and top > 0:
            return float(top), bool(_argument(args, kwargs, "inplace", 3, False))
    return None


def describe(others: Counter) -> str:
    """'SiLU x 49, Sigmoid x 16', most frequent first; 'none that dreamlab knows' for an empty count."""
    return ", ".join(f"{name} x {n}" for name, n in others.most_common()) or "none that dreamlab knows"


class ReLURule(TorchFunctionMode):
    """Within this mode every ReLU and ReLU6 that takes part in autograd uses `rule`'s backward ('guided' or
    'deconvnet'). `ruled` counts those calls; `others` counts the calls of other activations (by name) that took
    part in autograd and kept their own backward."""

    def __init__(self, rule: str):
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"unknown ReLU rule {rule!r}; valid: {', '.join(RULES)}")
        self.rule = rule
        self.ruled = 0
        self.others: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if args and isinstance(args[0], Tensor) and args[0].requires_grad and torch.is_grad_enabled():
            rectifier = _rectifier(func, args, kwargs)
            if rectifier is not None:
                top, in_place = rectifier
                self.ruled += 1
                return (_RuledReLUInPlace if in_place else _RuledReLU).apply(args[0], self.rule, top)
            if func in _OTHERS:
                self.others[_OTHERS[func]] += 1
        return func(*args, **kwargs)
