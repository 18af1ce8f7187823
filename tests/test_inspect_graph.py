"""dreamlab.inspect.graph and `dreamlab graph`: data flow, shapes, rankdir, Graphviz output, the caller's model."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.inspect import graph as graph_module
from dreamlab.inspect.graph import graph, model_graph
from dreamlab.models.copies import weightless_copy
from dreamlab.inspect.runtrace import run_graph
from dreamlab.models.loading import load_model
from dreamlab.models.recipe import load_recipe, shipped_recipe_names

pytestmark = pytest.mark.usefixtures("one_thread")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed (apt-get install graphviz)")


@pytest.fixture(scope="module")
def googlenet_graph():
    return model_graph("googlenet", depth=2)


def test_googlenet_inception4c_branches_meet_in_one_concat(googlenet_graph):
    cat = googlenet_graph.node("inception4c", "cat")
    assert cat.shape == (512, 14, 14)
    assert sorted(n.address for n in googlenet_graph.inputs_of(cat.id)) == [
        f"inception4c.branch{i}" for i in range(1, 5)]
    # every branch reads the previous block's output
    previous = googlenet_graph.node("inception4b", "cat")
    for branch in googlenet_graph.inputs_of(cat.id):
        assert [n.id for n in googlenet_graph.inputs_of(branch.id)] == [previous.id]


def test_googlenet_depth_one_keeps_blocks_whole():
    g = model_graph("googlenet", depth=1)
    block = g.node("inception4c")
    assert block.kind == "Inception" and block.shape == (512, 14, 14)
    assert not any(n.address.startswith("inception4c.") for n in g.nodes)


def test_resnet18_has_its_residual_adds():
    model = torchvision.models.resnet18()
    g = model_graph(model, depth=3)
    adds = [n for n in g.nodes if n.kind == "add"]
    assert len(adds) == 8  # one per BasicBlock
    first = adds[0]
    assert first.address == "layer1.0" and first.shape == (64, 56, 56)
    assert sorted(n.address for n in g.inputs_of(first.id)) == ["layer1.0.bn2", "maxpool"]
    downsampled = g.node("layer2.0", "add")
    assert sorted(n.address for n in g.inputs_of(downsampled.id)) == ["layer2.0.bn2", "layer2.0.downsample"]
    # the reused relu module is one node per call, each with its own id
    relus = [n for n in g.nodes if n.address == "layer1.0.relu"]
    assert len(relus) == 2 and relus[0].id != relus[1].id


def test_rankdir_changes_the_dot_text():
    tb = graph("lenet-digits")
    lr = graph("lenet-digits", rankdir="LR")
    assert "rankdir=TB" in tb and "rankdir=LR" in lr
    assert tb.replace("rankdir=TB", "rankdir=LR") == lr
    assert '"conv1" [label="conv1\\nConv2d 1→20, 5×5, pad 2\\n20×28×28 · 520 params"' in tb
    assert '"conv1" -> "relu1";' in tb


def test_callers_model_is_unchanged():
    model = torchvision.models.resnet18().train()
    model.layer1.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    graph(model, depth=3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(v.device.type == "cpu" for v in model.state_dict().values())
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == grads
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_bad_input_is_one_line(capsys):
    assert main(["graph", "lenet-digits", "--rankdir", "XY"]) == 2
    assert capsys.readouterr().err.strip() == \
        "dreamlab: error: unknown rankdir 'XY'; valid: TB, LR, BT, RL; TB: top to bottom, LR: left to right"
    assert main(["graph", "googlenett"]) == 2
    err = capsys.readouterr().err
    assert "close matches: googlenet" in err and len(err.strip().splitlines()) == 1
    assert main(["graph", "lenet-digits", "-o", "g.jpg"]) == 2
    assert "valid: .dot, .gv, .svg, .png, .pdf" in capsys.readouterr().err
    with pytest.raises(DreamlabError, match="rejected a 1x64x64 input"):
        graph("lenet-digits", size=64)  # its fc1 fixes the input at 28 px


def test_without_graphviz_one_line_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    assert main(["graph", "lenet-digits", "-o", str(tmp_path / "g.svg")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install graphviz" in err
    assert main(["graph", "lenet-digits", "-o", str(tmp_path / "g.dot")]) == 0  # DOT text needs nothing
    assert (tmp_path / "g.dot").read_text().splitlines()[1] == 'digraph "lenet-digits" {'


@needs_dot
@pytest.mark.parametrize("name", shipped_recipe_names())
def test_every_shipped_recipe_renders(name, tmp_path):
    size = min(64, load_recipe(name).input_size)
    out = tmp_path / "g.svg"
    assert main(["graph", name, "--size", str(size), "-o", str(out)]) == 0
    svg = out.read_text()
    assert svg.count('class="node"') >= 8 and "<svg" in svg


@needs_dot
def test_googlenet_lr_svg_is_readable(tmp_path):
    """Not a sliver: the diagram keeps 10 pt text and several rows of nodes at its natural size."""
    out = tmp_path / "g.svg"
    graph("googlenet", rankdir="LR", out=out)
    svg = out.read_text()
    width, height = (float(v) for v in re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups())
    assert height >= 150 and width > height
    sizes = {float(s) for s in re.findall(r'font-size="([\d.]+)"', svg)}
    assert sizes and min(sizes) >= 10
    png = tmp_path / "g.png"
    graph("googlenet", rankdir="LR", out=png)
    with Image.open(png) as img:
        assert img.height >= 200


@needs_dot
def test_svg_shows_a_diagram_in_chromium(chromium, tmp_path):
    out = tmp_path / "lenet.svg"
    graph("lenet-digits", out=out)
    page = chromium.new_page(width=600, height=900)
    page.goto(out.as_uri())
    assert page.evaluate("document.querySelectorAll('g.node').length") == 12
    assert page.evaluate("document.querySelectorAll('g.edge').length") == 11
    shot = page.screenshot(tmp_path / "shot.png")
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert (pixels.sum(-1) < 200).mean() > 0.002  # dark text and edges
    conv_blue = np.all(np.abs(pixels - [0xCF, 0xE2, 0xF3]) <= 3, axis=-1)
    assert conv_blue.mean() > 0.005  # the filled conv nodes
    assert not page.console_errors()


def test_cli_prints_dot_without_output(capsys):
    assert main(["graph", "lenet-digits", "--depth", "1", "--rankdir", "lr"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("// dreamlab ") and '\ndigraph "lenet-digits" {' in out and "rankdir=LR" in out
    assert Path("lenet-digits.dot").exists() is False


class _ControlFlow(nn.Module):
    """Python control flow on shapes, which torch.fx cannot trace (HED's side outputs do this)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1))
        self.side = nn.Conv2d(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sides = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i != 1:
                side = self.side(x)
                if side.shape[-2:] != (16, 16):
                    side = nn.functional.interpolate(side, size=(16, 16))
                sides.append(side)
        return torch.cat(sides, 1)


def test_untraceable_model_is_graphed_by_running_it():
    g = model_graph(_ControlFlow(), size=16, depth=2)
    cat = g.node("", "cat")
    assert cat.shape == (2, 16, 16)
    assert [n.kind for n in g.inputs_of(cat.id)] == ["Conv2d", "interpolate"]
    assert [n.address for n in g.inputs_of(g.node("", "interpolate").id)] == ["side"]
    assert [n.id for n in g.nodes if n.address == "side"] == ["side", "side_1"]


@pytest.mark.parametrize("name,depth", [("googlenet", 2), ("resnet18", 3)])
def test_running_and_fx_tracing_agree(name, depth):
    """The fallback for untraceable models gives the same nodes, shapes and edges as torch.fx."""
    loaded = load_model(name, weights="none")
    traced = model_graph(loaded, depth=depth)
    ran = run_graph(weightless_copy(loaded.model).eval(), torch.empty(1, 3, 224, 224, device="meta"), depth, name)

    def summary(g):
        address = {n.id: n.address or n.kind for n in g.nodes}
        return [(n.address, n.kind, n.shape) for n in g.nodes], sorted((address[s], address[t]) for s, t in g.edges)

    assert summary(traced) == summary(ran)


def test_vit_graph_draws_data_not_shape_lookups_and_reads_attention_shapes():
    model = torchvision.models.vit_b_16()
    edges = set(model_graph(model, depth=4).edges)
    assert ("conv_proj", "reshape") in edges and ("reshape", "permute") in edges
    # the batch size read from x.shape feeds reshape and expand, but no image data does
    assert ("x", "reshape") not in edges and ("permute", "expand") not in edges
    nodes = {n.id: n for n in model_graph(model, depth=4).nodes}
    assert nodes["encoder_layers_encoder_layer_0_self_attention"].shape == (197, 768)  # a tuple output's first


def test_a_size_the_trace_rejects_is_named_with_its_value_not_a_tracing_proxy():
    with pytest.raises(DreamlabError) as info:
        model_graph(torchvision.models.vit_b_16(), size=128)
    assert "Proxy" not in str(info.value) and "got 128" in str(info.value)
