"""An all-zero head (random-weight ViT) is named where a logit's render, Grad-CAM or attributions stay flat."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from dreamlab import load_model
from dreamlab.apps.cli import main
from dreamlab.models.zero_head import zero_head, zero_head_note

pytestmark = pytest.mark.usefixtures("one_thread")

NOTE = ("dreamlab: note: fc2's weights are all zero (as torchvision builds a ViT's head without weights), so every logit is 0 for any image and has no gradient: load weights (--weights default or a "
        "file) or target a layer before fc2")


def tiny_vit() -> nn.Module:
    """torchvision's ViT at its smallest: built without weights, its heads.head starts at zero (weight and bias)."""
    return torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=1,
                                                hidden_dim=8, mlp_dim=8, num_classes=5)


def test_a_random_weight_vit_has_a_zero_head_and_a_normally_initialised_model_has_none():
    vit = tiny_vit()
    assert zero_head(vit) == "heads.head"
    with torch.no_grad():
        vit.heads.head.bias[2] = 0.5  # a head with any non-zero value is not flat
    assert zero_head(vit) is None
    assert zero_head(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))) is None
    assert zero_head(nn.ReLU()) is None  # no layer with weights at all


def test_the_note_is_only_for_a_target_that_reads_the_output_or_the_head():
    vit = tiny_vit()
    assert "heads.head's weights are all zero" in zero_head_note(vit, {"logit"})
    assert zero_head_note(vit, ["heads.head"]) is not None
    assert zero_head_note(vit, {"encoder"}) is None  # a hidden layer does not depend on the head
    assert zero_head_note(tiny_vit().requires_grad_(False).apply(_fill), {"logit"}) is None


def _fill(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.constant_(module.weight, 0.1)


@pytest.fixture(scope="module")
def zero_head_weights(tmp_path_factory) -> str:
    """lenet-digits' trained weights with its last layer, fc2, set to zero: every logit is 0 for any image."""
    state = load_model("lenet-digits").model.state_dict()
    state["fc2.weight"].zero_()
    state["fc2.bias"].zero_()
    path = tmp_path_factory.mktemp("weights") / "zero_head.pt"
    torch.save(state, path)
    return str(path)


@pytest.mark.parametrize("command", [
    ["cam", "lenet-digits", "--image", "china", "--target", "logit:3"],
    ["attribute", "lenet-digits", "--image", "china", "--method", "saliency", "--target", "logit:3"],
    ["render", "logit:3", "--model", "lenet-digits", "--steps", "2", "--transforms", "small"],
])
def test_a_flat_logit_names_the_zero_head(command, zero_head_weights, tmp_path, capsys):
    assert main([*command, "--weights", zero_head_weights, "-o", str(tmp_path / "out.png")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == NOTE
    assert err[-2].startswith("dreamlab: note: ") and "heads" not in err[-2]  # after the command's own note


def test_a_hidden_unit_of_that_model_gets_no_such_note(zero_head_weights, tmp_path, capsys):
    assert main(["cam", "lenet-digits", "--image", "china", "--target", "fc1:3", "--weights", zero_head_weights,
                 "-o", str(tmp_path / "out.png")]) == 0
    assert "fc2's weights" not in capsys.readouterr().err
