"""`dreamlab.graph` of models that need real values in their forward (a hook that reads the tensor, Python
control flow on values), of models that fail for other reasons, and of bad arguments."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamlab.errors import DreamlabError
from dreamlab.inspect.graph import graph, model_graph
from models_fixtures import SmallNet




class _ValueBranch(SmallNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0:  # data-dependent: neither torch.fx nor the meta device can decide it
            x = x * 2
        return super().forward(x)


class _Broken(SmallNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("this forward is broken")


def test_a_hook_that_reads_values_is_graphed_from_a_cpu_copy():
    model = SmallNet()
    seen: list[tuple[int, ...]] = []
    model.conv1.register_forward_hook(lambda module, inputs, output: seen.append(output.cpu().numpy().shape))
    g = model_graph(model, size=32)
    assert g.node("conv2").shape == (8, 32, 32) and g.node("fc").shape == (5,)
    assert seen == [(1, 6, 32, 32)]  # the copy ran once, on the CPU


def test_control_flow_on_values_is_graphed_from_a_cpu_copy():
    g = model_graph(_ValueBranch(), size=32)
    assert g.node("fc").shape == (5,)
    assert g.node("", "gt").label == "gt\nscalar"  # the comparison's 0-d result
    assert '"conv1" -> "relu1";' in graph(_ValueBranch(), size=32)


def test_a_failure_that_is_not_about_the_size_does_not_blame_the_size():
    with pytest.raises(DreamlabError) as refused:
        graph(_Broken())
    assert str(refused.value) == ("_Broken failed on a 3x224x224 input (this forward is broken) in one forward of a "
                                  "copy of it; if it takes another input size, give size=")


def test_a_size_the_model_rejects_names_its_size():
    with pytest.raises(DreamlabError, match=r"^lenet-digits rejected a 1x64x64 input \(mat1 and mat2 shapes cannot "
                                            r"be multiplied.*\); it runs at its recipe's size, 28: use size=28$"):
        graph("lenet-digits", size=64)


@pytest.mark.parametrize("size, said", [
    ("8", "googlenet rejected a 3x8x8 input (Given input size: (480x1x1). Calculated output size: (480x0x0). Output "
          "size is too small); the smallest size it takes is 15: use --size 15 or more"),
    ("4", "lenet-digits rejected a 1x4x4 input (mat1 and mat2 shapes cannot be multiplied (1x50 and 2450x500)); it "
          "runs at its recipe's size, 28: use --size 28"),
])
def test_graph_and_layers_word_a_size_the_model_rejects_alike(size, said, capsys):
    """`layers` said 'GoogLeNet cannot take a 8x8 input (...); try size 224', `graph` 'googlenet rejected a 3x8x8
    input (...); it runs at its recipe's size, 224': one line now (prepare.too_small_error), with the minimum."""
    from dreamlab.apps.cli import main

    model = "googlenet" if size == "8" else "lenet-digits"
    for command in ("graph", "layers"):
        assert main([command, model, "--size", size]) == 2
        assert capsys.readouterr().err == f"dreamlab: error: {said}\n"


@pytest.mark.parametrize("options, text", [
    ({"depth": 0}, "depth (--depth) must be a whole number >= 1 (1: the model's top-level modules), got 0"),
    ({"depth": 1.5}, "depth (--depth) must be a whole number >= 1 (1: the model's top-level modules), got 1.5"),
    ({"size": 0}, "size (--size) must be a whole number >= 1 (the input side in pixels, or (height, width)), got 0"),
    ({"size": (32, 0)}, "size (--size) must be a whole number >= 1 (the input side in pixels, or (height, width)), "
                        "got 0"),
    ({"size": (32, 32, 3)}, "size (--size) must be pixels or a (height, width) pair, got tuple (32, 32, 3); on the "
                            "command line: --size 224 or --size 96x128"),
    ({"size": (32, 100_000)}, "size 100000 is out of range; valid: 1 to 2048 pixels"),
    ({"size": 100_000}, "size 100000 is out of range; valid: 1 to 2048 pixels"),
])
def test_depth_and_size_are_checked(options, text):
    with pytest.raises(DreamlabError) as refused:
        graph(SmallNet(), **options)
    assert str(refused.value) == text


def test_numpys_ints_are_taken():
    assert graph(SmallNet(), depth=np.int64(1), size=np.int64(16)).count("->") == 8


def test_views_refuse_the_pairings_render_refuses():
    """model_and_recipe goes through render's resolve_model: a name with recipe=, a module with weights=."""
    from dreamlab.inspect.source import model_and_recipe

    with pytest.raises(DreamlabError, match="both say which model to load"):
        model_and_recipe("lenet-digits", recipe="googlenet")
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3))
    with pytest.raises(DreamlabError, match="weights"):
        model_and_recipe(module, weights="none")
    assert model_and_recipe(module)[1].channels == 1  # the channels its first conv reads
    # graph's own default (weights none) is not a pairing the caller made
    assert "Conv2d" in model_graph(module, size=16).to_dot()
