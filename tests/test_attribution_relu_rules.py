"""Deconvnet / guided-backprop rules: every ReLU form, in-place semantics, and GoogLeNet (no nn.ReLU module)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from models_fixtures import random_googlenet
from torch import Tensor, nn
from torchvision.models.googlenet import BasicConv2d

from dreamlab import attribute
from dreamlab.attribution.relu_rules import ReLURule

pytestmark = pytest.mark.usefixtures("one_thread")

FORMS = {
    "module": lambda x: nn.ReLU()(x),
    "module in place": lambda x: nn.ReLU(inplace=True)(x),
    "F.relu": lambda x: F.relu(x),
    "F.relu inplace=True": lambda x: F.relu(x, inplace=True),
    "F.relu positional inplace": lambda x: F.relu(x, True),
    "torch.relu": torch.relu,
    "torch.relu_": torch.relu_,
    "Tensor.relu": lambda x: x.relu(),
    "Tensor.relu_": lambda x: x.relu_(),
}
IN_PLACE = {"module in place", "F.relu inplace=True", "F.relu positional inplace", "torch.relu_", "Tensor.relu_"}
EXPECTED = {  # input, upstream gradient -> gradient under each rule
    "guided": lambda x, g: g * (x > 0) * (g > 0),
    "deconvnet": lambda x, g: g.clamp(min=0),
}


@pytest.mark.parametrize("rule", EXPECTED)
@pytest.mark.parametrize("form", FORMS)
def test_every_relu_form_gets_the_rule_and_keeps_its_forward(rule, form):
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0, 3.0], requires_grad=True)
    upstream = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    with ReLURule(rule):
        h = x * 1  # a non-leaf, as inside a network
        out = FORMS[form](h)
        (grad,) = torch.autograd.grad(out, x, upstream)
    assert torch.equal(out.detach(), x.detach().clamp(min=0))
    assert torch.equal(grad, EXPECTED[rule](x.detach(), upstream))
    if form in IN_PLACE:
        assert out is h and torch.equal(h.detach(), x.detach().clamp(min=0))  # the input itself was modified
    else:
        assert out is not h and torch.equal(h.detach(), x.detach())


def test_relu_without_grad_is_left_alone():
    x = torch.randn(4)
    with ReLURule("guided"):
        assert torch.equal(torch.relu(x), x.clamp(min=0))
        y = x.clone()
        assert F.relu(y, inplace=True) is y


def test_a_second_in_place_op_after_the_relu_does_not_break_its_backward():
    x = torch.tensor([-1.0, 1.0, 2.0], requires_grad=True)
    with ReLURule("guided"):
        h = x * 1
        F.relu(h, inplace=True)
        h.relu_()
        h.mul_(2)
        (grad,) = torch.autograd.grad(h.sum(), x)
    assert torch.equal(grad, torch.tensor([0.0, 2.0, 2.0]))


@pytest.fixture(scope="module")
def googlenet():
    return random_googlenet()


def _bn_output_gradients(model: nn.Module, method: str, x: Tensor) -> list[tuple[Tensor, Tensor]]:
    """(pre-activation, gradient reaching it through the ReLU) for every BasicConv2d of GoogLeNet."""
    seen = []

    def hook(module, inputs, output):
        pre = output.detach().clone()  # F.relu(inplace=True) overwrites `output` next
        output.register_hook(lambda g: seen.append((pre, g)))

    handles = [m.bn.register_forward_hook(hook) for m in model.modules() if isinstance(m, BasicConv2d)]
    try:
        attribute(model, x, "logit:3", method, recipe="googlenet")
    finally:
        for h in handles:
            h.remove()
    return seen



def test_guided_backprop_on_googlenet_reaches_every_functional_relu(googlenet):
    assert not any(isinstance(m, nn.ReLU) for m in googlenet.modules())  # why module-swapping tools fail here
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    relus = sum(isinstance(m, BasicConv2d) for m in googlenet.modules())
    guided = _bn_output_gradients(googlenet, "guided", x)
    assert len(guided) == relus == 57
    for pre, grad in guided:
        assert grad.min() >= 0  # no negative gradient passes any ReLU
        assert (grad[pre <= 0] == 0).all()  # nor any gradient where the ReLU was off
    assert sum(int((g > 0).sum()) for _, g in guided) > 0
    plain = _bn_output_gradients(googlenet, "saliency", x)
    assert any(g.min() < 0 for _, g in plain)  # the hook does see negative gradients without the rule


def test_guided_backprop_differs_from_the_gradient_and_leaves_outputs_unchanged(googlenet):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    plain = attribute(googlenet, x, "logit:3", "saliency", recipe="googlenet")
    guided = attribute(googlenet, x, "logit:3", "guided", recipe="googlenet")
    deconv = attribute(googlenet, x, "logit:3", "deconvnet", recipe="googlenet")
    assert guided.shape == deconv.shape == x.shape
    assert not torch.allclose(guided, plain) and not torch.allclose(deconv, plain)
    with torch.no_grad():
        before = googlenet(x)
        with ReLURule("guided"):
            during = googlenet(x)
    with ReLURule("deconvnet"):
        during_grad = googlenet(x.clone().requires_grad_(True))
    assert torch.equal(before, during) and torch.equal(before, during_grad.detach())
    assert torch.equal(before, googlenet(x))  # nothing stays behind
