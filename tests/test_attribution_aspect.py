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
from models_fixtures import registered_rgb_recipes

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
    return registered_rgb_recipes(tmp_path, {"red_any": lambda: RedAnywhere(False),
                                             "red_fixed": lambda: RedAnywhere(True)}, SIDE)


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


def bright_spot(png, panel: int, size: tuple[int, int]) -> tuple[tuple[int, int], tuple[float, float]]:
    """(the brightest pixel, the centroid of the pixels at least 90% as bright) of panel `panel` of an attribute
    PNG (heat | signed, each at the photo's `size` (height, width), 2 px apart and around), in photo pixels."""
    height, width = size
    with Image.open(png) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
    left = 2 + panel * (width + 2)
    light = rgb[2:2 + height, left:left + width].sum(-1)
    rows, cols = np.nonzero(light >= light.min() + 0.9 * (light.max() - light.min()))
    top = np.unravel_index(np.argmax(light), light.shape)
    return (int(top[0]), int(top[1])), (float(rows.mean()), float(cols.mean()))


@pytest.mark.parametrize("model", ["red_any", "red_fixed"])
def test_the_heat_map_in_the_png_lies_on_the_square(recipes, tmp_path, model):
    # the heat over the (greyed) photo is black but near the square's strongest response, which lies inside it
    out = tmp_path / "sal.png"
    assert main(["attribute", str(recipes[model]), "--image", str(wide_photo(tmp_path)), "--target", "logit:0",
                 "--method", "saliency", "-o", str(out)]) == 0
    (row, col), (mid_row, mid_col) = bright_spot(out, 0, (40, 80))
    assert 6 - 2 <= row < 14 + 2 and 58 - 2 <= col < 66 + 2  # the square, rows 6-13 and columns 58-65, 2 px around
    assert abs(mid_row - 10) <= 4 and abs(mid_col - 62) <= 4  # a map left uncropped (padded) would lie 5 rows lower


@pytest.mark.parametrize("model", ["red_any", "red_fixed"])
def test_sanity_and_ig_run_on_a_wide_photo(recipes, tmp_path, capsys, model):
    photo = str(wide_photo(tmp_path))
    assert main(["attribute", str(recipes[model]), "--image", photo, "--target", "logit:0", "--sanity",
                 "--method", "saliency,gradcam", "--layer", "relu"]) == 0
    table = capsys.readouterr().out
    rows = [line.split()[0] for line in table.splitlines()[2:] if not line.startswith("n/a:")]
    assert "cascading randomization" in table and rows == (["head", "+conv"] if model == "red_fixed" else ["conv"])
    out = tmp_path / "ig.png"
    assert main(["attribute", str(recipes[model]), "--image", photo, "--target", "logit:0", "--method", "ig",
                 "-o", str(out)]) == 0
    assert "completeness gap" in capsys.readouterr().err
    with Image.open(out) as img:
        gap, difference = (float(img.text[k]) for k in ("dreamlab:ig_completeness_gap",
                                                         "dreamlab:ig_score_difference"))
    # the .npy is over the whole model input (the padding too), so its sum is what completeness is about
    values = np.load(out.with_suffix(".npy"))
    assert difference > 0 and abs(gap) <= 0.05 * difference
    assert float(values.sum(dtype=np.float64)) == pytest.approx(gap + difference, rel=1e-4, abs=1e-6)


class RedCells(nn.Module):
    """A stride-32 red detector (one 32x32 cell per output position, as torchvision's classifiers end at a 32-fold
    reduction), max-pooled to logit 0: it takes any size, and its map's cells are 32 pixels of its input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 32, stride=32, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(-0.5 / 32 ** 2)
            self.conv.weight[0, 0] = 1.0 / 32 ** 2
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveMaxPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.pool(self.relu(self.conv(x))).flatten(1), torch.zeros(x.shape[0], 1)], 1)


@pytest.mark.parametrize("size, expected", [(224, 32), (256, 32), (28, 4), (32, 4), (64, 8), (299, 1), (8, 1)])
def test_the_longer_side_is_rounded_to_a_multiple_that_divides_the_shorter(size, expected):
    from dreamlab.attribution.photos import side_multiple

    assert side_multiple(size) == expected and size % expected == 0 and expected <= max(1, size // 7)


@pytest.mark.parametrize("shape, fed", [
    ((3, 60, 120), (224, 448)),  # 2:1 is fed at 2:1
    ((3, 120, 60), (448, 224)),  # and 1:2 at 1:2
    ((3, 60, 100), (224, 384)),  # 5:3: 373.3 rounds to 384, 12 cells of 32
    ((3, 150, 100), (352, 224)),  # 3:2 upright: 336 (10.5 cells) rounds half up to 352
])
def test_a_photo_is_fed_with_its_aspect_and_a_side_of_whole_cells(shape, fed):
    from dreamlab.attribution.photos import model_input
    from dreamlab.attribution.target import subject

    subj = subject(RedCells(), dreamlab_recipe(224))
    fitted = model_input(torch.rand(shape), subj, 224)
    assert tuple(fitted.x.shape) == (1, 3, *fed) and fitted.region == (0, 0, *fed)
    assert fitted.how == f"{fed[0]}x{fed[1]}, aspect kept"


def dreamlab_recipe(size: int):
    from dreamlab import Recipe

    return Recipe("red_cells", "tests:red_cells", input_size=size, mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0))


@pytest.mark.parametrize("wide", [True, False])
def test_the_cam_of_a_stride_32_model_lies_on_the_square(tmp_path, wide):
    # the square sits in the 11th of 12 cells of the 224x384 input; unrounded (224x373: 11 whole cells, the map
    # stretched over 373 pixels) the map's peak would fall past the square's far side, at photo column 95.4
    loading.register_builder("tests:red_cells", lambda weights=None: RedCells())
    recipe = tmp_path / "red_cells.toml"
    recipe.write_text('name = "red_cells"\nbuilder = "tests:red_cells"\ninput_size = 224\nweights = "none"\n'
                      'mean = [0.5, 0.5, 0.5]\nstd = [1.0, 1.0, 1.0]\n')
    photo = torch.full((3, 60, 100), 0.5)
    photo[:, 25:35, 85:95] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    photo = photo if wide else photo.transpose(1, 2)
    out = tmp_path / "cam.png"
    assert main(["cam", str(recipe), "--image", str(save_png(photo, tmp_path / "p.png")), "--target", "logit:0",
                 "--layer", "relu", "-o", str(out)]) == 0
    with Image.open(out) as img:
        assert img.text["dreamlab:model_input"] == ("224x384" if wide else "384x224") + ", aspect kept"
    row, col = peak(out.with_suffix(".npy")) if wide else peak(out.with_suffix(".npy"))[::-1]
    assert 25 <= row < 35 and 85 <= col < 95
