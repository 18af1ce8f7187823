"""dreamlab.inspect.kernels and `dreamlab kernels`: tiles, normalization, make_grid geometry, provenance, errors."""
from __future__ import annotations

import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.inspect.kernels import kernel_grid, kernels
from dreamlab.io import read_png_text
from dreamlab.models.loading import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def googlenet():
    return load_model("googlenet", weights="none").model


def test_googlenet_conv1_has_make_grid_geometry(googlenet):
    result = kernels(googlenet, "conv1.conv", scale=1)
    assert result.tiles.shape == (64, 3, 7, 7)
    expected = torchvision.utils.make_grid(result.tiles, nrow=8, padding=2, pad_value=1.0)
    assert result.image.shape == expected.shape == (3, 74, 74)
    assert torch.equal(result.image, expected)
    assert result.geometry()["dreamlab:grid_size"] == "74x74" and result.rows == result.columns == 8


def test_each_kernel_is_normalized_alone_unless_shared(googlenet):
    weight = googlenet.conv1.conv.weight
    each = kernel_grid(weight, scale=1).tiles
    assert torch.allclose(each.flatten(1).amin(1), torch.zeros(64)) and torch.allclose(each.flatten(1).amax(1),
                                                                                        torch.ones(64))
    torch.testing.assert_close(each[5], (weight[5] - weight[5].min()) / (weight[5].max() - weight[5].min()))
    shared = kernel_grid(weight, scale=1, shared_scale=True).tiles
    torch.testing.assert_close(shared, 0.5 + weight / (2 * weight.abs().max()))


def test_deeper_layers_pairs_and_summed_inputs():
    conv = nn.Conv2d(5, 4, 3)
    pairs = kernel_grid(conv.weight, scale=1, limit=3)
    assert pairs.tiles.shape == (9, 1, 3, 3) and pairs.columns == 3  # a row per output, a column per input
    w = conv.weight.detach()
    tile = pairs.tiles[1 * 3 + 2, 0]  # output 1, input 2
    torch.testing.assert_close(tile, (w[1, 2] - w[1, 2].min()) / (w[1, 2].max() - w[1, 2].min()))
    summed = kernel_grid(conv.weight, scale=1, sum_inputs=True)
    assert summed.tiles.shape == (4, 1, 3, 3)
    s = w[3].sum(0)
    torch.testing.assert_close(summed.tiles[3, 0], (s - s.min()) / (s.max() - s.min()))
    assert summed.text["dreamlab:mode"] == "inputs summed" and pairs.text["dreamlab:inputs"] == "3 of 5"


def test_cli_writes_png_with_its_geometry(tmp_path, capsys):
    out = tmp_path / "k.png"
    assert main(["kernels", "lenet-digits", "conv1", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    text = read_png_text(out)
    with Image.open(out) as img:
        size = f"{img.height}x{img.width}"
        assert img.mode == "L"  # one input channel: grey tiles
    assert text["dreamlab:grid_size"] == size and text["dreamlab:tiles"] == "20"
    assert text["dreamlab:kernel"] == "5x5" and text["dreamlab:scale"] == "6"  # 5x5 weights at >= 28 px
    assert text["dreamlab:tile_size"] == "30x30" and text["dreamlab:columns"] == "5"
    assert size == f"{4 * 32 + 2}x{5 * 32 + 2}"


def test_bad_layers_get_one_line(capsys):
    assert main(["kernels", "lenet-digits", "pool1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dreamlab: error: layer 'pool1' (MaxPool2d) has no convolution weights; try conv1")
    assert len(err.splitlines()) == 1
    assert main(["kernels", "lenet-digits", "conv3"]) == 2
    assert "close matches: conv1, conv2" in capsys.readouterr().err
    with pytest.raises(DreamlabError, match="try conv1.conv"):
        kernels("googlenet", "conv1", weights="none")  # a BasicConv2d block: its conv is named


def test_callers_model_is_unchanged(googlenet):
    before = {k: v.clone() for k, v in googlenet.state_dict().items()}
    result = kernels(googlenet, "inception4c.branch2.1.conv", limit=4, shared_scale=True)
    assert result.text["dreamlab:weights"] == "caller's module" and result.text["dreamlab:model"] == "GoogLeNet"
    assert all(torch.equal(before[k], v) for k, v in googlenet.state_dict().items())


def test_a_grouped_conv_with_three_inputs_per_group_is_not_drawn_as_colour():
    grouped = kernels(nn.Sequential(nn.Conv2d(6, 12, 3, groups=2)), "0")
    assert grouped.text["dreamlab:mode"] == "pairs" and grouped.tiles.shape[:2] == (12 * 3, 1)
    assert kernels(nn.Sequential(nn.Conv2d(3, 4, 3)), "0").text["dreamlab:mode"] == "rgb"


def test_1x1_kernels_share_one_scale_instead_of_turning_mid_grey():
    """Stretched on its own a one-weight tile is constant; shared, the weights' signs and sizes show."""
    weight = torch.tensor([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 5.0]).view(2, 4, 1, 1)  # not 3 inputs: not RGB
    for sum_inputs in (False, True):
        grid = kernel_grid(weight, sum_inputs=sum_inputs)
        values = grid.tiles.flatten().unique()
        assert len(values) > 1  # not one mid-grey
        assert grid.text["dreamlab:normalization"] == "shared (1x1 kernels: one value a tile)"
    pairs = kernel_grid(weight, scale=1).tiles.flatten()
    assert pairs.argmax() == 7 and pairs.argmin() == 0 and pairs[3] == 0.5  # zero stays mid-grey
    assert kernel_grid(torch.randn(4, 3, 5, 5)).text["dreamlab:normalization"] == "each tile"


def test_a_shared_scale_grids_padding_is_a_colour_no_tile_has():
    from dreamlab.inspect.kernels import SHARED_PADDING, kernel_grid

    weight = torch.tensor([0.2016, 0.203, 0.2062]).view(3, 1, 1, 1)  # three 1x1 kernels, as hed-vgg16's fuse
    image = kernel_grid(weight, padding=2, scale=4).image
    assert image.shape[0] == 3  # grey tiles, drawn as RGB for the coloured padding
    torch.testing.assert_close(image[:, 0, 0], torch.tensor(SHARED_PADDING))
    assert image[:, 2:6, 2:6].std(0).max() == 0  # the tiles themselves stay grey
    assert float(image[0, 8:12, 2:6].min()) == 1.0  # the largest weight (third tile: row 2) is white, beside blue
    assert kernel_grid(torch.randn(4, 1, 3, 3)).fill == 1.0  # tiles stretched each on their own: white padding
