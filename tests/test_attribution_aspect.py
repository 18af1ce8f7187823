"""cam and attribute show the model an undistorted photo: its aspect kept where the model takes any size, else
padded to a square with the recipe's mean colour; the maps are laid back onto the photo where it was."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dreamlab.apps.cli import main
from dreamlab.io import save_png
from dreamlab.models import loading

SIDE = 32  # the recipes' input size


class RedAnywhere(nn.Module):
    """Logit 0 is the strongest red-over-the-rest response anywhere (any input size, adaptive pooling)."""

    def __init__(self, fixed: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0], self.conv.weight[0, 1:] = 1.0, -0.5
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fixed = fixed  # a Linear head over the whole map: the model takes SIDE x SIDE only
        self.head = nn.Linear(SIDE * SIDE, 2) if fixed else nn.Identity()
        if fixed:
            with torch.no_grad():
                self.head.weight.fill_(1.0)
                self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu(self.conv(x))
        if self.fixed:
            return self.head(a.flatten(1))
        return torch.cat([self.pool(a).flatten(1), torch.zeros(x.shape[0], 1)], 1)


@pytest.fixture
def recipes(tmp_path):
    loading.register_builder("tests:red_any", lambda weights=None: RedAnywhere(False))
    loading.register_builder("tests:red_fixed", lambda weights=None: RedAnywhere(True))
    paths = {}
    for name in ("red_any", "red_fixed"):
        paths[name] = tmp_path / f"{name}.toml"
        paths[name].write_text(f'name = "{name}"\nbuilder = "tests:{name}"\ninput_size = {SIDE}\nweights = "none"\n'
                               f'mean = [0.5, 0.5, 0.5]\nstd = [1.0, 1.0, 1.0]\n')
    return paths


def wide_photo(tmp_path):
    """A grey 40x80 photo (1:2) with a red 8x8 square whose centre is at row 10, column 62."""
    photo = torch.full((3, 40, 80), 0.5)
    photo[:, 6:14, 58:66] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    return save_png(photo, tmp_path / "wide.png")


def peak(path) -> tuple[int, int]:
    values = np.load(path)
    values = np.abs(values).sum(0) if values.ndim == 3 else values
    return tuple(int(v) for v in np.unravel_index(np.argmax(values), values.shape))


@pytest.mark.parametrize("model, model_input, region", [
    ("red_any", "32x64, aspect kept", "0,0,32,64"),
    ("red_fixed", "32x32, padded (the photo 16x32 at 8,0)", "8,0,16,32"),
])
def test_the_model_input_and_the_region_are_recorded(recipes, tmp_path, model, model_input, region):
    out = tmp_path / "cam.png"
    assert main(["cam", str(recipes[model]), "--image", str(wide_photo(tmp_path)), "--target", "logit:0",
                 "--layer", "relu", "-o", str(out)]) == 0
    with Image.open(out) as img:
        assert img.size == (80, 40)
        assert img.text["dreamlab:model_input"] == model_input and img.text["dreamlab:photo_region"] == region
    row, col = peak(out.with_suffix(".npy"))  # the raw map at the photo's size: on the red square
    assert 6 <= row < 14 and 58 <= col < 66


@pytest.mark.parametrize("model, shape, square", [
    # the square's place in the model input, 2 px around it (the 3x3 kernel's reach and the resampling's blur)
    ("red_any", (3, 32, 64), (slice(3, 14), slice(44, 55))),  # x 0.8: rows 4.8-11.2, columns 46.4-52.8
    ("red_fixed", (3, 32, 32), (slice(8, 16), slice(21, 29))),  # x 0.4 + 8 rows: rows 10.4-13.6, columns 23.2-26.4
])
def test_saliency_peaks_on_the_square_in_the_model_input(recipes, tmp_path, model, shape, square):
    out = tmp_path / "sal.png"
    assert main(["attribute", str(recipes[model]), "--image", str(wide_photo(tmp_path)), "--target", "logit:0",
                 "--method", "saliency", "-o", str(out)]) == 0
    values = np.load(out.with_suffix(".npy"))
    assert values.shape == shape  # the .npy is over the whole model input (IG's completeness is over it)
    row, col = peak(out.with_suffix(".npy"))
    assert square[0].start <= row < square[0].stop and square[1].start <= col < square[1].stop
    with Image.open(out) as img:
        assert img.size == (2 * 80 + 6, 40 + 4)  # heat | signed, each at the photo's size, 2 px apart and around


def test_a_square_photo_is_resized_as_before(recipes, tmp_path):
    photo = save_png(torch.full((3, 50, 50), 0.5), tmp_path / "sq.png")
    out = tmp_path / "s.png"
    assert main(["cam", str(recipes["red_fixed"]), "--image", str(photo), "--target", "logit:0", "--layer", "relu",
                 "-o", str(out)]) == 0
    with Image.open(out) as img:
        assert img.text["dreamlab:model_input"] == "32x32" and img.text["dreamlab:photo_region"] == "0,0,32,32"
