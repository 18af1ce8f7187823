"""The model_size render setting (lucent's fixed_image_size): what the model sees is resized after the transforms,
in every step and in the final scores, so a fixed-size model renders at any size."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dreamlab
from dreamlab import capture, render
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError, DreamlabNote
from dreamlab.io import read_png_text
from dreamlab.models.loading import load_model

from models_fixtures import NarrowSizes, TinyNet

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = dict(steps=4, device="cpu", seed=0)


@pytest.fixture(scope="module")
def digits():
    return load_model("lenet-digits")


def test_a_fixed_size_model_renders_at_another_size(digits):
    result = render(digits, "logit:3", size=56, model_size=28, **DIGITS)
    assert result.images.shape == (1, 1, 56, 56)
    assert result.provenance["dreamlab:size"] == "56" and result.provenance["dreamlab:model_size"] == "28"
    assert torch.isfinite(result.history).all() and result.history.shape == (4, 1)
    non_square = render(digits, "logit:3", size=(40, 60), model_size=(28, 28), **DIGITS)
    assert non_square.images.shape == (1, 1, 40, 60) and non_square.provenance["dreamlab:model_size"] == "28"


def test_unset_model_size_leaves_the_provenance_as_it_was(digits):
    assert "dreamlab:model_size" not in render(digits, "logit:3", **DIGITS).provenance


def test_final_scores_are_of_the_image_the_model_sees(digits):
    result = render(digits, "logit:3", size=56, model_size=28, **DIGITS)
    seen = F.interpolate(result.images, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
    recipe = digits.recipe
    mean, std = torch.tensor(recipe.mean).view(1, -1, 1, 1), torch.tensor(recipe.std).view(1, -1, 1, 1)
    with torch.no_grad():
        logits = digits.model((seen - mean) / std)
    assert torch.allclose(result.final_scores, logits[:, 3], atol=1e-4)


def test_every_step_feeds_the_model_at_model_size():
    net = TinyNet().eval()
    sizes = set()
    hook = net.conv1.register_forward_pre_hook(lambda module, args: sizes.add(tuple(args[0].shape[-2:])))
    try:
        upsampled = render(net, "conv2:0", size=16, model_size=32, steps=3, transforms="jitter", device="cpu")
        assert sizes == {(32, 32)}  # the check, the start, each step and the end: never the 16 or 24 px image
        sizes.clear()
        render(net, "conv2:0", size=16, steps=3, transforms="jitter", device="cpu")
        assert (16, 16) in sizes and (24, 24) in sizes  # unset: the image as it is, and padded by the jitter
    finally:
        hook.remove()
    assert upsampled.images.shape == (1, 3, 16, 16)


def test_neurons_at_fixed_positions_need_transforms_that_keep_the_size(digits):
    with pytest.raises(DreamlabError, match=r"'conv2:3@2,2' reads fixed positions, which model_size cannot keep in "
                                            r"place: the transforms make the 56x56 image 64x64"):
        render(digits, "conv2:3@2,2", size=56, model_size=28, transforms="jitter", **DIGITS)
    with pytest.raises(DreamlabError, match="reads fixed positions"):  # also inside a sum
        render(digits, "conv2:1 + conv2:3@2,2", size=56, model_size=28, transforms="jitter", **DIGITS)
    # transforms that keep the size keep the positions; the centre stays the centre
    render(digits, "conv2:3@2,2", size=56, model_size=28, transforms="small", **DIGITS)
    render(digits, "conv2:3@centre", size=56, model_size=28, transforms="jitter", **DIGITS)
    # positions are those of the map at model_size (14x14; 28x28 at the render size of 56)
    with pytest.raises(DreamlabError, match=r"position 20,20 is outside layer 'conv2' \(its map is 14 high x 14 wide"):
        render(digits, "conv2:3@20,20", size=56, model_size=28, transforms="small", **DIGITS)


def test_a_model_size_the_model_rejects_is_one_line(digits):
    with pytest.raises(DreamlabError, match=r"lenet-digits rejected a 1x20x20 input at model_size 20x20 \(.*\); it "
                                            r"runs at its recipe's size: give model_size=28 \(--model-size 28\)$"):
        render(digits, "logit:3", size=56, model_size=20, **DIGITS)


@pytest.mark.parametrize("bad, message", [
    (4, r"^model_size 4 is out of range; valid: 8 to 2048 pixels$"),
    (4.0, r"model_size must be a whole number >= 8 pixels \(or a \(height, width\) pair; None: the model sees the "
          r"render size\), got 4.0"),
    ("28", r"model_size must be a whole number >= 8 pixels .*, got '28'"),
    (4096, r"model_size 4096 is out of range"),
    ((28, 28, 1), r"model_size must be an int or \(height, width\), got \(28, 28, 1\)"),
])
def test_bad_model_sizes_are_refused_in_one_line(bad, message):
    with pytest.raises(DreamlabError, match=message):
        render(nn.Sequential(nn.Conv2d(3, 4, 3)), "0:1", model_size=bad, steps=1, size=16, device="cpu")


def test_the_cli_takes_model_size(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "three.png"
    assert main(["render", "logit:3", "--model", "lenet-digits", "--size", "56", "--model-size", "28",
                 "--steps", "2", "--device", "cpu", "-o", str(out)]) == 0
    text = read_png_text(out)
    assert text["dreamlab:size"] == "56" and text["dreamlab:model_size"] == "28"


def test_capture_agrees_with_the_model_size_scores():
    """The neuron positions are checked on the maps at model_size: capture of the resized image shows them."""
    net = TinyNet().eval()
    result = render(net, "conv2:2@3,5", size=24, model_size=12, steps=2, transforms="none", device="cpu")
    seen = F.interpolate(result.images, size=(12, 12), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    with capture(net, ["conv2"]) as cap, torch.no_grad():
        acts = cap.run((seen - mean) / std)
    assert torch.allclose(result.final_scores, acts["conv2"][:, 2, 5, 3], atol=1e-5)


def pooling_net() -> nn.Module:
    """Takes any square side from 10 up (two unpadded 3x3 convolutions, two 2x2 pools); its recipe says 64."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3), nn.MaxPool2d(2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()


POOLING = dict(recipe=dreamlab.Recipe("pooling", "custom:pooling", input_size=64), steps=1, device="cpu")


def test_a_size_below_the_models_minimum_names_the_minimum_not_only_the_recipes_size():
    with pytest.raises(DreamlabError, match=r"^pooling rejected a 3x9x9 input \(.*\); the smallest size it takes is "
                                            r"10x10: use size 10 or more \(--size 10\), or render this size and show "
                                            r"the model 64x64 \(model_size=64, --model-size 64\)$"):
        render(pooling_net(), "6:1", size=9, transforms="none", **POOLING)
    with pytest.raises(DreamlabError, match=r"^pooling rejected a 3x9x9 input at model_size 9x9 \(.*\); the smallest "
                                            r"size it takes is 10x10: give model_size=10 or more \(--model-size 10\), "
                                            r"or its recipe's 64$"):
        render(pooling_net(), "6:1", size=32, model_size=9, **POOLING)
    assert render(pooling_net(), "6:1", size=10, transforms="none", **POOLING).images.shape == (1, 3, 10, 10)


def test_a_model_that_takes_a_narrow_range_of_sizes_is_not_told_a_size_the_padding_would_push_out_of_it():
    """The smallest side it takes is 60, but --size 60 with the standard transforms shows it 72: the advice is
    its recipe's size with transforms that keep the size, or model_size."""
    recipe = dreamlab.Recipe("narrow", "custom:narrow", input_size=64)
    with pytest.raises(DreamlabError, match=r"^narrow rejected a 3x\d+x\d+ input \(shape .*\); it runs at its recipe's "
                                            r"size, 64: use size 64 \(--size 64\) and transforms that keep the size"):
        render(NarrowSizes().eval(), "conv:1", recipe=recipe, size=32, steps=1, device="cpu")
    with pytest.warns(DreamlabNote, match=r"^narrow takes 64x64 inputs only, and the transforms' padding grows"):
        result = render(NarrowSizes().eval(), "conv:1", recipe=recipe, size=64, steps=1, device="cpu")
    assert result.images.shape == (1, 3, 64, 64) and result.provenance["dreamlab:model_size"] == "64"


def test_a_model_that_takes_a_narrow_range_of_sizes_is_told_its_recipes_model_size():
    recipe = dreamlab.Recipe("narrow", "custom:narrow", input_size=64)
    with pytest.raises(DreamlabError, match=r"^narrow rejected a 3x32x32 input at model_size 32x32 \(shape .*\); it "
                                            r"runs at its recipe's size: give model_size=64 \(--model-size 64\)$"):
        render(NarrowSizes().eval(), "conv:1", recipe=recipe, size=64, model_size=32, steps=1, device="cpu")
