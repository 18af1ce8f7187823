"""`compile`: the truncated fx forward (dreamlab.optvis.truncate) and compiled renders that match the eager ones."""
from __future__ import annotations

import pytest
import torch
from models_fixtures import random_googlenet
from torch import nn

from dreamlab import load_model, render
from dreamlab.optvis.capture import Capture
from dreamlab.errors import DreamlabError
from dreamlab.optvis.truncate import truncated_forward


@pytest.fixture(scope="module")
def googlenet() -> nn.Module:
    return random_googlenet()


@pytest.mark.parametrize("layers", [["inception4c"], ["inception4c.branch1.bn"], ["inception3a", "logit"]])
def test_truncated_forward_gives_what_the_hooks_capture(googlenet: nn.Module, layers: list[str]) -> None:
    # inception4c.branch1.bn is followed by an in-place ReLU: the graph must return its value before it
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0), requires_grad=True)
    graph_acts = truncated_forward(googlenet, layers)(x)
    with Capture(googlenet, layers) as cap:
        hook_acts = cap.run(x)
    assert set(graph_acts) == set(layers)
    for name in layers:
        torch.testing.assert_close(graph_acts[name], hook_acts[name], rtol=0, atol=0)
    assert hook_acts[layers[0]].min() < 0 or "bn" not in layers[0]  # pre-ReLU values really are there
    grads = [torch.autograd.grad(acts[layers[0]][:, 3].mean(), x)[0] for acts in (graph_acts, hook_acts)]
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_truncated_forward_stops_after_the_deepest_layer_and_is_cached(googlenet: nn.Module) -> None:
    graph = truncated_forward(googlenet, ["inception3a"])
    names = [node.name for node in graph.graph.nodes]
    assert any(n.startswith("inception3a") for n in names)
    assert not any(n.startswith(("inception3b", "inception4", "fc")) for n in names)
    assert truncated_forward(googlenet, ["inception3a"]) is graph


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) if x.sum() > 0 else -self.conv(x)


def test_an_untraceable_model_gets_one_clear_line() -> None:
    with pytest.raises(DreamlabError, match=r"^compile \(--compile\) needs a model that torch.fx can trace, and DataDependent "
                                            r"cannot be traced \(.*\); render without it$"):
        truncated_forward(DataDependent(), ["conv"])


def test_an_unknown_compile_mode_is_named() -> None:
    with pytest.raises(DreamlabError, match="unknown compile mode 'fast'; .*reduce-overhead"):
        render(load_model("lenet-digits"), "logit:0", steps=1, device="cpu", compile="fast")


def test_compiled_renders_match_eager_and_reuse_one_graph() -> None:
    """Real torch.compile (inductor, CPU): about 40 s, most of it the one compile."""
    import logging
    import warnings

    from torch._dynamo.utils import counters

    process_settings = (list(warnings.filters), logging.getLogger("torch.utils.cpp_extension").level)
    digits = load_model("lenet-digits")
    settings = {"steps": 6, "redirect_relu_steps": 2, "device": "cpu"}
    eager = render(digits, "logit:0-9", units=[0, 1, 2], **settings)
    compiled = render(digits, "logit:0-9", units=[0, 1, 2], compile=True, **settings)
    torch.testing.assert_close(compiled.images, eager.images, rtol=0, atol=1e-4)
    torch.testing.assert_close(compiled.history, eager.history, rtol=1e-4, atol=1e-4)
    assert compiled.provenance["dreamlab:compile"] == "default" and eager.provenance["dreamlab:compile"] == "no"
    graphs = counters["stats"]["unique_graphs"]
    again = render(digits, "logit:0-9", units=[5, 6, 7], compile=True, **settings)  # new objective and image
    assert counters["stats"]["unique_graphs"] == graphs  # the warm-up was paid once
    torch.testing.assert_close(again.images, render(digits, "logit:0-9", units=[5, 6, 7], **settings).images,
                               rtol=0, atol=1e-4)
    # compiling silences two messages for the render only
    assert (list(warnings.filters), logging.getLogger("torch.utils.cpp_extension").level) == process_settings


def test_a_replaced_submodule_gets_a_new_graph() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 5, 1)).eval()
    x = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    first = truncated_forward(model, ["2"])
    torch.testing.assert_close(first(x)["2"], model(x))
    model[2] = nn.Conv2d(4, 5, 1)  # e.g. a head swapped after a compiled render
    torch.testing.assert_close(truncated_forward(model, ["2"])(x)["2"], model(x))
    model[2].weight = nn.Parameter(torch.zeros(5, 4, 1, 1))  # a parameter replaced, not changed in place
    torch.testing.assert_close(truncated_forward(model, ["2"])(x)["2"], model(x))
    graph = truncated_forward(model, ["2"])
    assert truncated_forward(model, ["2"]) is graph  # unchanged model: the graph is shared


def test_a_compiled_transparent_render_matches_eager() -> None:
    """--alpha --compile: the compositing over each step's background stays outside the compiled forward, so the
    RGBA images match the eager ones (real inductor on the CPU, a few seconds)."""
    digits = load_model("lenet-digits")
    settings = {"steps": 4, "device": "cpu", "alpha": True}
    eager = render(digits, "logit:0", **settings)
    compiled = render(digits, "logit:0", compile=True, **settings)
    assert compiled.images.shape[1] == 2 and compiled.provenance["dreamlab:alpha_weight"] == "1"  # grey + alpha
    torch.testing.assert_close(compiled.images, eager.images, rtol=0, atol=1e-4)
