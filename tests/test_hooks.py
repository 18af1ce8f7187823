"""hooked_forward: one forward with temporary hooks, every one removed afterwards, also on error."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dreamlab.hooks import hooked_forward


def hook_counts(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_the_hooks_see_one_forward_without_gradients_and_are_removed():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    seen: list[tuple[str, bool]] = []
    end = (model[0], lambda m, i, o: seen.append(("end", o.requires_grad)))
    start = (model[1], lambda m, i: seen.append(("start", torch.is_grad_enabled())))
    output = hooked_forward(model, torch.ones(2, 3), [end], [start])
    assert seen == [("end", False), ("start", False)] and output.shape == (2, 4) and not output.requires_grad
    assert hook_counts(model) == 0


def test_the_hooks_are_removed_when_the_forward_or_a_registration_fails():
    model = nn.Sequential(nn.Linear(3, 4))
    with pytest.raises(RuntimeError):  # 5 features where the layer reads 3
        hooked_forward(model, torch.ones(2, 5), [(model[0], lambda *_: None)], [(model, lambda *_: None)])
    assert hook_counts(model) == 0
    with pytest.raises(AttributeError):  # not a module: registering the second hook fails
        hooked_forward(model, torch.ones(2, 3), [(model[0], lambda *_: None), (object(), lambda *_: None)])
    assert hook_counts(model) == 0
