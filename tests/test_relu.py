"""The redirected ReLU: gradient for dead units, the same forward as plain ReLU (in place included)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dreamlab.optvis.relu import RedirectedReLU


class InPlaceUser(nn.Module):
    """Calls each in-place ReLU form and ignores its return value, as model code may."""

    def __init__(self, form: str):
        super().__init__()
        self.a, self.b, self.form = nn.Linear(6, 6), nn.Linear(6, 3), form
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        h = self.a(x)
        if self.form == "Tensor.relu_":
            h.relu_()
        elif self.form == "torch.relu_":
            torch.relu_(h)
        elif self.form == "F.relu(inplace=True)":
            F.relu(h, inplace=True)
        else:
            self.relu(h)
        return self.b(h)


@pytest.mark.parametrize("form", ["Tensor.relu_", "torch.relu_", "F.relu(inplace=True)", "nn.ReLU(inplace=True)"])
def test_in_place_relus_keep_their_forward(form):
    torch.manual_seed(0)
    model = InPlaceUser(form)
    x = torch.randn(4, 6, requires_grad=True)
    expected = model(x)
    with RedirectedReLU():
        got = model(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    got.sum().backward()  # the mask is saved, not the overwritten input
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_a_dead_sample_gets_gradient_that_pushes_it_up():
    x = torch.tensor([[-1.0, -2.0], [1.0, -3.0]], requires_grad=True)  # sample 0 dead, sample 1 alive
    with RedirectedReLU():
        y = torch.relu(x)
    (-y.sum()).backward()  # maximize: the incoming gradient is negative
    assert torch.equal(y, torch.relu(x.detach()))
    assert torch.equal(x.grad, torch.tensor([[-1.0, -1.0], [-1.0, 0.0]]))  # dead: redirected; alive: plain


def test_other_relu_shapes_keep_their_own_gradient():
    x = torch.full((1, 3), -1.0, requires_grad=True)
    with RedirectedReLU():
        F.relu6(x).sum().backward()
    assert torch.equal(x.grad, torch.zeros(1, 3))  # relu6 is left alone, as relu.py says
