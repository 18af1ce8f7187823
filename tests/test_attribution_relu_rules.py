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


CLAMPED = {  # a ReLU clamped at the top: (the call, the top)
    "nn.ReLU6": (lambda x: nn.ReLU6()(x), 6.0),
    "nn.ReLU6 in place": (lambda x: nn.ReLU6(inplace=True)(x), 6.0),
    "F.relu6": (F.relu6, 6.0),
    "F.relu6 inplace=True": (lambda x: F.relu6(x, inplace=True), 6.0),
    "F.hardtanh(x, 0, 3)": (lambda x: F.hardtanh(x, 0.0, 3.0), 3.0),
    "nn.Hardtanh(0, 3)": (lambda x: nn.Hardtanh(0.0, 3.0)(x), 3.0),
}


@pytest.mark.parametrize("rule", EXPECTED)
@pytest.mark.parametrize("form", CLAMPED)
def test_relu6_gets_the_rule_where_it_passes_its_input(rule, form):
    call, top = CLAMPED[form]
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0, 3.0, 5.0, 7.0, 9.0, 4.0], requires_grad=True)
    upstream = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0, 1.0])
    with ReLURule(rule) as mode:
        out = call(x * 1)
        (grad,) = torch.autograd.grad(out, x, upstream)
    assert mode.ruled == 1 and not mode.others
    assert torch.equal(out.detach(), x.detach().clamp(0, top))  # the forward is the clamped ReLU's
    inside = (x.detach() > 0) & (x.detach() < top)  # where the forward's derivative is 1
    expected = upstream * inside * (upstream > 0) if rule == "guided" else upstream.clamp(min=0)
    assert torch.equal(grad, expected)


def test_other_activations_are_counted_and_keep_their_backward():
    x = torch.tensor([-2.0, -0.5, 0.5, 2.0], requires_grad=True)
    with ReLURule("guided") as mode:
        h = x * 1
        out = F.hardtanh(nn.SiLU()(h)) + F.gelu(h) + nn.Hardswish()(h) + torch.relu(h)
        (grad,) = torch.autograd.grad(out.sum(), x)
    assert mode.ruled == 1  # only the ReLU; hardtanh(-1, 1) is no rectifier
    assert mode.others == {"SiLU": 1, "GELU": 1, "Hardswish": 1, "Hardtanh": 1}
    with torch.enable_grad():
        h = x * 1
        plain = F.hardtanh(F.silu(h)) + F.gelu(h) + F.hardswish(h)
        (expected,) = torch.autograd.grad(plain.sum(), x)
    torch.testing.assert_close(grad, expected + (x.detach() > 0).float())  # guided ReLU: g = 1 > 0 where x > 0


def _net(activation: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), activation(), nn.Conv2d(8, 8, 3, padding=1), activation(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 5)).eval()


@pytest.mark.parametrize("activation, name", [(nn.SiLU, "SiLU x 2"), (nn.GELU, "GELU x 2"),
                                              (nn.Hardswish, "Hardswish x 2")])
@pytest.mark.parametrize("method", ["guided", "deconvnet", "guided-gradcam"])
def test_a_model_without_rectifiers_is_refused_naming_its_activations(activation, name, method):
    from test_attribution_gradients import IDENTITY

    from dreamlab.errors import DreamlabError

    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with pytest.raises(DreamlabError) as info:
        attribute(_net(activation), x, 3, method, recipe=IDENTITY,
                  **({"layer": "2"} if method == "guided-gradcam" else {}))
    message = str(info.value)
    assert "changes the backward of ReLU and ReLU6 only" in message and f"(its activations: {name})" in message
    assert "would be the plain gradient; use --method saliency" in message and "\n" not in message


def test_a_relu6_model_gets_the_rule_not_the_plain_gradient():
    from test_attribution_gradients import IDENTITY

    model = _net(nn.ReLU6)
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    plain = attribute(model, x, 3, "saliency", recipe=IDENTITY)
    guided = attribute(model, x, 3, "guided", recipe=IDENTITY)
    assert not torch.allclose(guided, plain)
    # the same net with ReLU modules clamped by hand: guided backprop through ReLU, then the top clamp's mask
    pre = []
    hooks = [m.register_forward_hook(lambda mod, i, o: pre.append(i[0].detach())) for m in model
             if isinstance(m, nn.ReLU6)]
    attribute(model, x, 3, "saliency", recipe=IDENTITY)
    for h in hooks:
        h.remove()
    assert all(float(p.max()) < 6 for p in pre)  # this input never reaches the top: the rule is ReLU's
    relu_model = nn.Sequential(*[nn.ReLU() if isinstance(m, nn.ReLU6) else m for m in model]).eval()
    torch.testing.assert_close(guided, attribute(relu_model, x, 3, "guided", recipe=IDENTITY))
