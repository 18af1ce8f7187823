"""What `dreamlab graph` writes on and around its nodes: hyperparameters and parameter counts, colours by kind with
a legend, the title's totals, non-square inputs and the provenance comment (DOT, SVG, PNG)."""
from __future__ import annotations

import re
import shutil

import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn

from dreamlab.apps.cli import main
from dreamlab.attribution.photos import versions
from dreamlab.inspect.graph import FAMILY_COLOURS, GraphNode, ModelGraph, graph, hyperparameters, model_graph
from dreamlab.models.loading import load_model
from models_fixtures import SmallNet

pytestmark = pytest.mark.usefixtures("one_thread")
VERSIONS = versions()
MADE = (f"dreamlab {VERSIONS['dreamlab:version']} (torch {VERSIONS['torch:version']}, "
        f"torchvision {VERSIONS['torchvision:version']})")  # how the DOT comment starts
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed (apt-get install graphviz)")


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _fill(dot: str, node_id: str) -> str:
    return re.search(rf'^  "{node_id}" \[.*fillcolor="(#[0-9a-f]{{6}})"', dot, re.M).group(1)


@pytest.mark.parametrize("module, text", [
    (nn.Conv2d(3, 64, 7, stride=2, padding=3), "3→64, 7×7, stride 2, pad 3"),
    (nn.Conv2d(64, 64, 1), "64→64, 1×1"),  # defaults left out
    (nn.Conv2d(32, 32, 3, padding=2, dilation=2, groups=32), "32→32, 3×3, pad 2, dilation 2, groups 32"),
    (nn.Conv2d(8, 16, (3, 1), stride=(2, 1), padding=(1, 0)), "8→16, 3×1, stride 2×1, pad 1×0"),
    (nn.Conv2d(8, 8, 3, padding="same"), "8→8, 3×3, pad same"),
    (nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"), "8→8, 3×3, pad 1 reflect"),
    (nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), "16→8, 4×4, stride 2, pad 1"),
    (nn.Conv1d(4, 6, 5), "4→6, 5"),
    (nn.MaxPool2d(3, stride=2, ceil_mode=True), "3×3, stride 2, ceil"),
    (nn.MaxPool2d(2), "2×2, stride 2"),  # stride defaults to the kernel: shown, as netron does
    (nn.AvgPool2d(3, stride=1, padding=1), "3×3, stride 1, pad 1"),
    (nn.AdaptiveAvgPool2d(1), "to 1×1"),
    (nn.AdaptiveAvgPool2d((7, None)), "to 7×*"),
    (nn.Linear(2450, 500), "2450→500"),
    (nn.BatchNorm2d(64), "64"),
    (nn.LayerNorm(768), "768"),
    (nn.GroupNorm(8, 32), "32, 8 groups"),
    (nn.Dropout(0.4), "p=0.4"),
    (nn.ReLU(), ""),
    (nn.Sequential(nn.Conv2d(3, 4, 1)), ""),  # a block: its total parameters say more than any one setting
])
def test_hyperparameters_are_short_and_leave_defaults_out(module, text):
    assert hyperparameters(module) == text


def test_lenet_labels_give_hyperparameters_and_each_modules_own_parameters():
    model = load_model("lenet-digits", weights="none").model
    g = model_graph("lenet-digits")
    modules = [n for n in g.nodes if n.op == "module"]
    assert len(modules) == 10
    for node in modules:
        assert node.params == _params(model.get_submodule(node.address)), node.address
    assert g.node("conv1").label == "conv1\nConv2d 1→20, 5×5, pad 2\n20×28×28 · 520 params"
    assert g.node("pool1").label == "pool1\nMaxPool2d 2×2, stride 2\n20×14×14"  # no parameters: no count
    assert g.node("fc1").label == f"fc1\nLinear 2450→500\n500 · {_params(model.fc1):,} params"
    assert g.params == _params(model) == 1_256_080
    dot = g.to_dot()
    assert "<B>lenet-digits</B> · 1,256,080 parameters · input 1×28×28" in dot


def test_a_block_kept_whole_shows_its_total_parameters():
    model = torchvision.models.resnet18()
    g = model_graph(model, depth=1)
    for address in ("layer1", "layer4"):
        node = g.node(address)
        assert node.kind == "Sequential" and node.params == _params(getattr(model, address))
        assert node.label.endswith(f" · {node.params:,} params")
    assert g.params == _params(model)


def test_shared_parameters_count_once_in_the_total():
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(12, 12)
            self.b = nn.Linear(12, 12)
            self.b.weight = self.a.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x.flatten(1)))

    model = Tied()
    g = model_graph(model, size=2)  # 3x2x2: 12 features
    assert g.node("a").params == g.node("b").params == 12 * 12 + 12
    assert g.params == _params(model) == 12 * 12 + 2 * 12


class _Mixed(nn.Module):
    """One op of each kind: a functional activation, a join of two tensors, a product with a number, a reshape,
    a functional pool and a concat."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv(x)
        b = F.relu(a)
        c = a * b  # two tensors: a join
        d = c * 2  # a tensor and a number: not a join
        e = F.adaptive_avg_pool2d(torch.cat([d, b], 1), 1)
        return self.fc(e.view(1, -1))


def test_functional_ops_are_coloured_by_kind_with_a_legend():
    g = model_graph(_Mixed(), size=8)
    families = {n.kind + ("*2" if n.kind == "mul" and len(g.inputs_of(n.id)) == 1 else ""): n.family
                for n in g.nodes if n.op == "function"}
    assert families == {"relu": "activation", "mul": "join", "mul*2": "other", "cat": "join",
                        "adaptive_avg_pool2d": "pool", "view": "reshape"}
    dot = g.to_dot()
    by_kind = {n.kind: n.id for n in g.nodes}
    assert _fill(dot, by_kind["relu"]) == FAMILY_COLOURS["activation"]
    assert _fill(dot, by_kind["cat"]) == FAMILY_COLOURS["join"]
    assert _fill(dot, by_kind["view"]) == FAMILY_COLOURS["reshape"]
    assert _fill(dot, by_kind["adaptive_avg_pool2d"]) == FAMILY_COLOURS["pool"]
    assert _fill(dot, "conv") == FAMILY_COLOURS["conv"] and _fill(dot, "fc") == FAMILY_COLOURS["linear"]
    scaled = next(n.id for n in g.nodes if n.kind == "mul" and len(g.inputs_of(n.id)) == 1)
    assert _fill(dot, scaled) == "#ffffff"
    # the legend names exactly the colours in use, in a fixed order
    legend = re.findall(r'<TD BGCOLOR="(#[0-9a-f]{6})" BORDER="1">(\w+)</TD>', dot)
    assert legend == [(FAMILY_COLOURS[f], f) for f in ("conv", "activation", "pool", "linear", "reshape", "join")]
    assert '<TD BGCOLOR="#ffffff" BORDER="1">other (a block kept whole, another op)</TD>' in dot  # mul*2's white


def test_torchvisions_permute_and_stochastic_depth_are_coloured_as_their_functions():
    from torchvision.ops import Permute, StochasticDepth

    from dreamlab.inspect.graph import module_family

    assert module_family(Permute([0, 2, 3, 1])) == "reshape"  # as the function permute is
    assert module_family(StochasticDepth(0.1, "row")) == "dropout"  # drop path: a dropout of whole samples
    plain = model_graph(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), size=8).to_dot()
    assert "other (a block" not in plain  # the legend has no white entry where nothing is white


def test_resnet_and_googlenet_colours():
    resnet = graph(torchvision.models.resnet18(), depth=3)
    assert _fill(resnet, "layer1_0_relu") == FAMILY_COLOURS["activation"]  # the nn.ReLU module
    assert _fill(resnet, "add") == FAMILY_COLOURS["join"]  # the residual add
    assert _fill(resnet, "flatten") == FAMILY_COLOURS["reshape"]  # torch.flatten before fc
    assert _fill(resnet, "layer1_0_bn1") == FAMILY_COLOURS["norm"]
    assert _fill(resnet, "maxpool") == FAMILY_COLOURS["pool"]
    googlenet = model_graph("googlenet", depth=2)
    relu = googlenet.node("conv1", "relu")  # BasicConv2d's F.relu: GoogLeNet has no nn.ReLU
    assert relu.family == "activation"
    assert googlenet.node("inception3a", "cat").family == "join"
    assert googlenet.node("inception3a.branch2").family == "block"  # a Sequential kept whole


def test_non_square_input_from_python_and_the_command_line(capsys):
    g = model_graph(SmallNet(), size=(24, 40))
    assert g.input_shape == (3, 24, 40) and g.node("conv2").shape == (8, 24, 40)
    assert "input 3×24×40" in g.to_dot()
    assert main(["graph", "googlenet", "--depth", "1", "--size", "96x128"]) == 0
    dot = capsys.readouterr().out
    assert '"x" [label="input\\n3×96×128"' in dot and "inception5b\\nInception\\n1024×3×4" in dot
    assert dot.splitlines()[0].endswith("input: 3x96x128; depth: 1")
    with pytest.raises(SystemExit) as refused:
        main(["graph", "googlenet", "--size", "96x"])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "HEIGHTxWIDTH (224, 96x128), got '96x'" in err


def test_dot_starts_with_what_drew_it():
    dot = graph("lenet-digits", depth=1)
    assert dot.splitlines()[0] == (f"// {MADE}; model: lenet-digits; weights: none; "
                                   f"input: 1x28x28; depth: 1")
    assert dot.splitlines()[1] == 'digraph "lenet-digits" {'
    assert graph(SmallNet(), size=16).splitlines()[0] == (
        f"// {MADE}; model: SmallNet; weights: caller's module; input: 3x16x16; depth: 2")


def test_the_comment_stays_one_line_and_the_title_escapes_html():
    node = GraphNode("x", "", "input", (3, 8, 8), "input")
    g = ModelGraph("a<b>&c", (node,), (), weights="runs/\nnew.pt", depth=1)
    dot = g.to_dot()
    assert dot.splitlines()[0] == f"// {MADE}; model: a<b>&c; weights: runs/?new.pt; input: 3x8x8; depth: 1"
    assert "<B>a&lt;b&gt;&amp;c</B>" in dot


@needs_dot
def test_svg_and_png_keep_the_provenance(tmp_path):
    svg = tmp_path / "g.svg"
    graph("lenet-digits", out=svg)
    text = svg.read_text()
    # Graphviz writes the graph's comment attribute into the SVG, with '-' as an entity
    assert f"<!-- {MADE}; model: lenet&#45;digits; weights: none; input: 1x28x28; depth: 2 -->" in text
    assert "1,256,080 parameters" in text
    png = tmp_path / "g.png"
    graph("lenet-digits", out=png)
    with Image.open(png) as img:
        assert img.text == {
            **VERSIONS, "dreamlab:model": "lenet-digits", "dreamlab:weights": "none",
            "dreamlab:input": "1x28x28", "dreamlab:depth": "2"}
