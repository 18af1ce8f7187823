"""`dreamlab.features` from Python: the image must be a tensor in [0, 1] (or a file), `top` and `layer` are
checked, each refused in one line before the model runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dreamlab.errors import DreamlabError
from dreamlab.inspect.features import features


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())


@pytest.mark.parametrize("image, text", [
    (torch.full((3, 32, 32), float("nan")), "image has NaN or infinite values; give finite values in [0, 1]"),
    ((torch.rand(3, 32, 32) * 255).to(torch.uint8), "image is a uint8 tensor (0-255) and images are in [0, 1]; "
                                                    "divide it by 255 (image.float() / 255)"),
    (torch.full((3, 32, 32), 200.0), "image has values from 200 to 200, outside [0, 1]"),
    (np.zeros((3, 32, 32)), "image must be a torch tensor [C, H, W] in [0, 1], a PNG/JPEG path, or one of china, "
                            "flower, got ndarray; dreamlab.io.load_image reads a file as a tensor"),
])
def test_bad_images_are_refused(model, image, text):
    with pytest.raises(DreamlabError) as refused:
        features(model, "0", image)
    assert str(refused.value) == text or str(refused.value).startswith(text)


@pytest.mark.parametrize("options, text", [
    ({"top": 0}, "top (--top) must be a whole number >= 1 (how many channels to show), got 0"),
    ({"top": 2.5}, "top (--top) must be a whole number >= 1 (how many channels to show), got 2.5"),
    ({"layer": 0}, "layer must be a string, a dotted module address such as 'conv1' or 'inception4c', got int 0; "
                   "`dreamlab layers MODEL` lists them"),
    ({"layer": ""}, "layer '' is empty: give a dotted module address such as 'conv1' or 'inception4c'; "
                    "`dreamlab layers MODEL` lists them"),  # (was told in capture()'s words)
])
def test_top_and_layer_are_checked(model, options, text):
    with pytest.raises(DreamlabError) as refused:
        features(model, options.pop("layer", "0"), torch.rand(3, 32, 32), **options)
    assert str(refused.value) == text


def test_a_top_of_numpys_int_is_taken(model):
    assert features(model, "0", torch.rand(3, 224, 224), top=np.int64(2)).maps.shape[0] == 2
