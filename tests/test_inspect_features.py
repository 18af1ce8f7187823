"""dreamlab.inspect.features and `dreamlab features`: preprocessing, hand-set kernels, ranking, labels, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.inspect import features as features_module
from dreamlab.inspect.features import features, normalize, preprocess, shorter_side_to, to_channels
from dreamlab.io import centre_crop, read_png_text
from dreamlab.models.recipe import Recipe

pytestmark = pytest.mark.usefixtures("one_thread")
GREY = Recipe(name="edges", builder="custom:edges", weights="none", input_size=8, channels=1, mean=(0.0,),
              std=(1.0,))


def edge_model() -> nn.Module:
    """Channel 0 finds dark-to-bright vertical edges, channel 1 bright-to-dark (after the ReLU)."""
    conv = nn.Conv2d(1, 2, 3, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, :, 0], conv.weight[0, 0, :, 2] = -1.0, 1.0
        conv.weight[1] = -conv.weight[0]
    return nn.Sequential(conv, nn.ReLU())


def test_edge_detector_on_a_step_gives_the_expected_map():
    step = torch.zeros(1, 8, 8)
    step[:, :, 4:] = 1.0
    result = features(edge_model(), "1", step, recipe=GREY)
    assert result.channels == [0, 1]
    expected = torch.zeros(6, 6)
    expected[:, 2:4] = 3.0  # windows over columns 2-4 and 3-5 straddle the step: three rows of (1 - 0)
    torch.testing.assert_close(result.maps[0], expected)
    torch.testing.assert_close(result.maps[1], torch.zeros(6, 6))
    torch.testing.assert_close(result.means, torch.tensor([1.0, 0.0]))  # 12 of 36 pixels at 3
    mirrored = features(edge_model(), "1", 1 - step, recipe=GREY)
    assert mirrored.channels == [1, 0]  # the bright-to-dark detector is now the strongest
    torch.testing.assert_close(mirrored.maps[0], expected)


def test_preprocess_resizes_crops_and_normalizes_as_the_recipe_says():
    recipe = Recipe(name="r", builder="custom:r", input_size=10, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    photo = torch.zeros(3, 20, 40)
    photo[:, :, 10:30] = 1.0  # the middle half is white: after resize to 10x20 and a centre crop, all of it
    x = preprocess(photo, recipe)
    assert x.shape == (1, 3, 10, 10)
    torch.testing.assert_close(x[0, :, :, 2:8], ((1 - torch.tensor([0.5, 0.25, 0.0])) /
                                                  torch.tensor([0.5, 0.25, 2.0])).view(3, 1, 1).expand(3, 10, 6))
    grey = preprocess(torch.ones(3, 8, 8) * torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1), GREY)
    torch.testing.assert_close(grey, torch.full((1, 1, 8, 8), 0.299))  # BT.601 luma of pure red


@pytest.mark.parametrize("shape", [(3, 10, 60), (3, 60, 10), (1, 7, 101)])
def test_a_long_strip_is_cut_to_its_centre_before_the_resize(shape, monkeypatch):
    """The model input is the centre square, as before, but the resize no longer sees the whole strip: an 8000x1
    strip made a 224 x 1.8M-pixel tensor (10 GB) on its way to a 224x224 crop."""
    recipe = Recipe(name="r", builder="custom:r", input_size=28, mean=(0.5,) * 3, std=(0.25,) * 3)
    photo = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    whole = normalize(centre_crop(shorter_side_to(to_channels(photo, recipe), 28), (28, 28)), recipe)
    sizes = []
    real_cover = features_module.cover
    monkeypatch.setattr(features_module, "cover", lambda x, size: sizes.append(x.shape[-2:]) or real_cover(x, size))
    x = preprocess(photo, recipe)
    assert x.shape == (1, 3, 28, 28) and max(sizes[0]) <= 4 * min(sizes[0]) + 1  # cut to 4:1 (+1: same centre)
    torch.testing.assert_close(x, whole, atol=1e-4, rtol=0)  # the same centre square (measured: 1e-5 apart)


def test_cli_top_k_labelled_grid(tmp_path, capsys):
    out = tmp_path / "f.png"
    assert main(["features", "lenet-digits", "conv1", "--image", "china", "--top", "4", "-o", str(out)]) == 0
    text = read_png_text(out)
    channels = [int(c) for c in text["dreamlab:channels"].split(",")]
    assert len(channels) == 4 and len(set(channels)) == 4
    result = features("lenet-digits", "conv1", "china", top=20)
    assert result.channels[:4] == channels and torch.all(result.means[:-1] >= result.means[1:])
    with Image.open(out) as img:
        assert img.size == (2 * (84 + 2) + 2, 2 * (84 + 2) + 2)  # 28x28 maps at 3x, two a row
        corner = np.asarray(img.crop((2, 2, 20, 14)))
    assert (corner == 0).mean() > 0.5 and (corner > 150).any()  # the channel label: light text on a black box


def test_bad_input_gets_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    assert main(["features", "lenet-digits", "conv1", "--image", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"dreamlab: error: cannot read image '{bad}'")
    assert main(["features", "lenet-digits", "conv1", "--image", "missing.jpg"]) == 2
    assert "give a PNG/JPEG path or one of china, flower" in capsys.readouterr().err
    assert main(["features", "lenet-digits", "fc1", "--image", "flower"]) == 2
    assert "not feature maps" in capsys.readouterr().err
    assert main(["features", "lenet-digits", "conv9", "--image", "flower"]) == 2
    assert "close matches: conv1, conv2" in capsys.readouterr().err
    assert main(["features", "lenet-digits", "", "--image", "flower"]) == 2  # an unset shell variable
    assert capsys.readouterr().err == ("dreamlab: error: layer '' is empty: give a dotted module address such as "
                                       "'conv1' or 'inception4c'; `dreamlab layers lenet-digits` lists them\n")


def test_callers_model_is_unchanged():
    model = edge_model().train()
    before = [p.clone() for p in model.parameters()]
    features(model, "0", torch.rand(1, 8, 8), recipe=GREY)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not any(m._forward_hooks for m in model.modules())


def test_a_channel_that_is_off_everywhere_is_black_not_grey():
    maps = features("lenet-digits", "relu1", torch.zeros(1, 28, 28))
    dead = [k for k, m in enumerate(maps.maps) if not m.any()]
    assert dead, "relu1 has channels that a black image leaves at 0"
    tiles = maps.grid.tiles
    for k in dead:
        assert tiles[k, :, 12:, :].max() == 0  # below the label: all black


class TokenNet(nn.Module):
    """A vision transformer's shape: 2x2 patches embedded as 2 dims (their mean, and minus it), a class token
    first, then a layer `mix` whose output is the [B, N, D] token sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(1, 2, 2, stride=2, bias=False)
        with torch.no_grad():
            self.embed.weight[0].fill_(0.25)
            self.embed.weight[1].fill_(-0.25)
        self.class_token = nn.Parameter(torch.full((1, 1, 2), 7.0))
        self.mix = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.embed(x).flatten(2).transpose(1, 2)  # [B, N, D]
        return self.mix(torch.cat([self.class_token.expand(len(x), -1, -1), patches], 1))


def test_token_layers_are_shown_as_their_grid_of_patches_without_the_class_token():
    image = torch.rand(1, 8, 8)
    result = features(TokenNet().eval(), "mix", image, recipe=GREY)
    patch_means = nn.functional.avg_pool2d(image[None], 2)[0, 0]  # 4x4 patches
    assert result.maps.shape == (2, 4, 4) and result.channels == [0, 1]
    torch.testing.assert_close(result.maps[0], patch_means)  # the class token (7) is not among them


def test_a_layer_of_1x1_maps_is_refused_as_showing_no_pattern():
    model = nn.Sequential(edge_model(), nn.AdaptiveAvgPool2d(1))
    with pytest.raises(DreamlabError, match=r"layer '1' outputs 1x1 maps \(one value per channel\), which show no "
                                            r"pattern; pick an earlier layer"):
        features(model, "1", torch.rand(1, 8, 8), recipe=GREY)


def test_a_unit_where_a_layer_goes_is_told_to_give_the_layer_alone(capsys):
    assert main(["features", "lenet-digits", "conv1:3", "--image", "china"]) == 2
    assert "unknown layer 'conv1:3'" in (err := capsys.readouterr().err) and \
        "give a layer alone here, such as 'conv1', not a unit or an expression" in err
