"""Run a model once with temporary forward hooks: every hook is removed after the forward, also on error.

Shared by the optimization core (capture) and attribution (cam), so that neither imports the other for it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

ForwardHook = Callable[[nn.Module, tuple, object], None]
PreHook = Callable[[nn.Module, tuple], None]


def hooked_forward(model: nn.Module, sample: Tensor, hooks: Iterable[tuple[nn.Module, ForwardHook]] = (),
                   pre_hooks: Iterable[tuple[nn.Module, PreHook]] = ()) -> object:
    """`model(sample)` without gradients, with the forward hooks and forward pre-hooks `(module, hook)` attached
    for that one call; every one is removed afterwards, also where registering or the forward fails. Returns the
    model's output."""
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        for module, hook in hooks:  # one at a time: a failure part-way still removes the ones before it
            handles.append(module.register_forward_hook(hook))
        for module, hook in pre_hooks:
            handles.append(module.register_forward_pre_hook(hook))
        with torch.no_grad():
            return model(sample)
    finally:
        for handle in handles:
            handle.remove()
