"""Copies of a caller's model that leave it untouched: on the meta device (shapes only, no memory) or on the
CPU, made without first copying anything on the model's own device."""
from __future__ import annotations

import copy
import itertools
from collections.abc import Callable

import torch
from torch import nn


def copy_with(model: nn.Module, make: Callable[[torch.Tensor], torch.Tensor], hooks: bool = True) -> nn.Module:
    """A deep copy of `model` whose every parameter and buffer is `make(tensor)`; without `hooks` the copy gets
    empty hook tables, so none of the caller's hooks runs in it (nor is what they hold copied)."""
    memo: dict[int, object] = {}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        new = make(tensor)
        memo[id(tensor)] = nn.Parameter(new, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else new
    if not hooks:
        for module in model.modules():
            for key, value in vars(module).items():
                if key.endswith(("hooks", "hooks_with_kwargs", "hooks_always_called")):
                    memo[id(value)] = type(value)()
    return copy.deepcopy(model, memo)


def weightless_copy(model: nn.Module, hooks: bool = True) -> nn.Module:
    """A deep copy whose parameters and buffers live on the meta device (no memory, no data copied)."""
    return copy_with(model, lambda t: torch.empty_like(t, device="meta"), hooks)


def cpu_copy(model: nn.Module) -> nn.Module:
    """A deep copy on the CPU with the model's weights (zeros for weights that are on the meta device)."""
    return copy_with(model, lambda t: torch.zeros_like(t, device="cpu") if t.is_meta else
                     t.detach().to("cpu", copy=True))
