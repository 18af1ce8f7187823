"""`dreamlab.kernels` from Python: transposed convolutions laid out per output channel, layers that are not 2-D
convolutions and arguments of the wrong kind refused in one line."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dreamlab.errors import DreamlabError
from dreamlab.inspect.kernels import conv_weight, kernels
from dreamlab.inspect.tiles import normalize_each


class _Layers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.up = nn.ConvTranspose2d(6, 4, 3)
        self.grouped = nn.ConvTranspose2d(4, 6, 3, groups=2)
        self.line = nn.Conv1d(3, 4, 3)
        self.volume = nn.Conv3d(3, 4, 3)
        self.fc = nn.Linear(4, 2)


@pytest.fixture(scope="module")
def layers() -> _Layers:
    torch.manual_seed(0)
    return _Layers()


def test_a_transposed_convolution_shows_a_row_per_output_channel(layers):
    grid = kernels(layers, "up", scale=1, padding=0)
    weight = layers.up.weight.detach()  # [in 6, out 4, 3, 3]
    assert grid.tiles.shape == (24, 1, 3, 3) and (grid.rows, grid.columns) == (4, 6)
    expected = normalize_each(weight.transpose(0, 1).reshape(24, 1, 3, 3))  # output-major: row o, column i
    assert torch.equal(grid.tiles, expected)
    assert grid.text["dreamlab:outputs"] == "4 of 4" and grid.text["dreamlab:inputs"] == "6 of 6"
    assert grid.text["dreamlab:weight"] == "transposed conv [in, out, kh, kw], shown as [out, in, kh, kw]"


def test_a_grouped_transposed_convolution_is_the_convolution_it_computes(layers):
    w = conv_weight(layers, "grouped")
    assert w.shape == (6, 2, 3, 3)  # [out, in / groups, kh, kw], as a Conv2d's
    x = torch.rand(1, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    up = layers.grouped(x) - layers.grouped.bias.detach().view(1, -1, 1, 1)
    assert torch.allclose(up, F.conv2d(x, w.flip(-2, -1), padding=2, groups=2), atol=1e-6)


@pytest.mark.parametrize("layer, kind", [("line", "Conv1d"), ("volume", "Conv3d")])
def test_other_convolutions_are_named_as_such(layers, layer, kind):
    with pytest.raises(DreamlabError) as refused:
        kernels(layers, layer)
    assert str(refused.value).startswith(f"only 2-D convolutions (Conv2d, ConvTranspose2d) are shown; {layer!r} is "
                                         f"{kind}; try ")


def test_a_layer_without_weights_of_a_convolution_says_so(layers):
    with pytest.raises(DreamlabError, match="^layer 'fc' \\(Linear\\) has no convolution weights; try "):
        kernels(layers, "fc")


def test_a_relu_or_pool_first_suggests_the_conv_it_follows():
    vgg = nn.Module()  # as VGG's features: conv, relu, ... conv 28, relu 29, pool 30
    vgg.features = nn.Sequential(*[nn.Conv2d(3, 3, 1) if i % 2 == 0 else nn.ReLU() for i in range(30)],
                                 nn.MaxPool2d(2))
    for layer in ("features.29", "features.30"):
        with pytest.raises(DreamlabError, match=f"^layer '{layer}' \\(\\w+\\) has no convolution weights; "
                                                "try features.28 or "):
            kernels(vgg, layer)


@pytest.mark.parametrize("options, text", [
    ({"layer": 3}, "layer must be a string, a dotted module address such as 'conv1' or 'inception4c', got int 3; "
                   "`dreamlab layers MODEL` lists them"),
    ({"layer": None}, "layer must be a string"),
    ({"layer": " "}, "layer ' ' is empty: give a dotted module address such as 'conv1' or 'inception4c'; "
                     "`dreamlab layers MODEL` lists them"),
    ({"layer": "conv", "limit": 0}, "limit (--limit) must be a whole number >= 1 (output and input channels shown), "
                                    "got 0"),
    ({"layer": "conv", "limit": 2.5}, "limit (--limit) must be a whole number >= 1"),
])
def test_arguments_of_the_wrong_kind_are_refused(layers, options, text):
    with pytest.raises(DreamlabError) as refused:
        kernels(layers, **options)
    assert str(refused.value) == text or str(refused.value).startswith(text)
