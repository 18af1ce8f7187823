"""What a caller passes about the model: weights keywords against paths, the input channels of a module, arguments
that conflict, a recipe's default weights, a fixed-size module under padding transforms, and start images."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dreamlab
from dreamlab.errors import DreamlabError, WeightsError
from dreamlab.models.loading import is_weights_file, load_model
from dreamlab.models.prepare import custom_recipe, input_channels, minimum_side, takes_size, unsized_module_error
from dreamlab.models.recipe import Recipe, load_recipe
from dreamlab.optvis.settings import fit_init_image

from models_fixtures import OnlySide

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(steps=1, device="cpu")
DIGITS = ('name = "t"\nbuilder = "zoo:lenet_digits"\ninput_size = 28\nchannels = 1\nmean = [0.1307]\n'
          'std = [0.3081]\ntransforms = "small"\n')


# --- 2: a folder named like a keyword -----------------------------------------------------------------------------

def test_keywords_win_over_folders_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()
    (tmp_path / "none").mkdir()
    assert load_model("lenet-digits").weights == "default"
    assert load_model("lenet-digits", "none").weights == "none"
    assert load_model("lenet-digits", "NONE").weights == "none"
    with pytest.raises(WeightsError, match="is a folder, not a state-dict file"):
        load_model("lenet-digits", "./none")  # a path that spells the keyword is a path


def test_a_weights_file_named_like_a_keyword_is_recorded_as_a_file_not_as_random_init(tmp_path, monkeypatch):
    import shutil

    from pathlib import Path

    import dreamlab.models.zoo.digits as digits

    monkeypatch.chdir(tmp_path)
    shutil.copy(Path(digits.__file__).parent / "weights" / digits.LENET_WEIGHTS_FILE, tmp_path / "none")
    loaded = load_model("lenet-digits", "./none")
    assert loaded.weights == "./none"  # 'none' would read as random init in every PNG's provenance
    trained = load_model("lenet-digits").model.state_dict()
    assert all(torch.equal(value, trained[key]) for key, value in loaded.model.state_dict().items())


def test_what_counts_as_a_weights_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").mkdir()
    (tmp_path / "mine").touch()
    assert [is_weights_file(w) for w in ("default", "DEFAULT", "none", "./default", "x.pt", "mine", "IMAGENET1K_V1")] \
        == [False, False, False, True, True, True, False]
    assert is_weights_file(Path("none"))  # a Path object is always a path


# --- 3: the channels of a module are what its first *running* convolution reads ------------------------------------

class HeadFirst(nn.Module):
    """Registers its 16 -> 5 head before its 3 -> 16 stem, which runs first."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(16, 5, 1)
        self.stem = nn.Conv2d(3, 16, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.stem(x))).mean((2, 3))


class GreyToRGB(nn.Module):
    """Takes 1-channel images and repeats them to the 3 channels its only convolution reads."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.repeat(1, 3, 1, 1)).mean((2, 3))


def test_the_channels_come_from_the_convolution_that_runs_first():
    assert input_channels(HeadFirst()) == 3
    assert custom_recipe(HeadFirst()).channels == 3
    assert input_channels(nn.Linear(3, 4)) is None and custom_recipe(nn.Linear(3, 4)).channels == 3
    result = dreamlab.render(HeadFirst(), "stem:1", size=32, **TINY)  # was a raw RuntimeError (16 channels fed)
    assert result.images.shape == (1, 3, 32, 32)


def test_an_explicit_recipe_is_respected_and_a_wrong_one_gets_the_right_advice():
    right = dreamlab.render(HeadFirst(), "stem:1", recipe=Recipe("hf", "custom:hf", input_size=32), **TINY)
    assert right.images.shape == (1, 3, 32, 32)  # was refused with "set channels=16"
    wrong = Recipe("hf", "custom:hf", input_size=32, channels=4, mean=(0.5,) * 4, std=(0.5,) * 4)
    with pytest.raises(DreamlabError, match=r"^recipe 'hf' gives 4-channel images, but HeadFirst's first "
                                            r"convolution reads 3; set channels=3 \(with a mean and std per "
                                            r"channel\)$"):
        dreamlab.render(HeadFirst(), "stem:1", recipe=wrong, **TINY)
    grey = Recipe("g", "custom:g", input_size=16, channels=1, mean=(0.5,), std=(0.5,))
    done = dreamlab.render(GreyToRGB(), "conv:1", recipe=grey, **TINY)  # its own channel handling is trusted
    assert done.images.shape == (1, 1, 16, 16)


# --- 5: arguments that conflict are refused, not ignored ------------------------------------------------------------

@pytest.fixture(scope="module")
def lenet():
    return load_model("lenet-digits")


NET = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())


@pytest.mark.parametrize("call, message", [
    (lambda L: dreamlab.render(L, "conv2:1", recipe="hed-vgg16", **TINY),
     "recipe= goes with your own nn.Module; this LoadedModel carries its recipe 'lenet-digits': leave recipe out, "
     "or load_model(RECIPE) and pass that"),
    (lambda L: dreamlab.render(L, "conv2:1", weights="none", **TINY),
     "weights='none' goes with a model given by name; this LoadedModel of lenet-digits has its weights (default): "
     "leave weights out, or load_model('lenet-digits', weights='none') and pass that"),
    (lambda L: dreamlab.render(L, "conv2:1", weights=None, **TINY), "weights=None goes with a model given by name"),
    (lambda L: dreamlab.render("lenet-digits", "features.0:1", recipe="hed-vgg16", **TINY),
     "model 'lenet-digits' and recipe 'hed-vgg16' both say which model to load; give one: the name (or .toml "
     "path) as the model, and recipe= only with your own nn.Module"),
    (lambda L: dreamlab.render(NET, "0:1", weights="none", size=32, **TINY),
     "weights='none' goes with a model given by name; Sequential is your module and keeps its own weights: leave "
     "weights out, or load them into it"),
    (lambda L: dreamlab.render(NET, "0:1", weights="/nonexistent.pt", size=32, **TINY),
     "weights='/nonexistent.pt' goes with a model given by name"),
    (lambda L: dreamlab.render(L, "conv2:1", diversity_layer="conv1", **TINY),
     "diversity_layer='conv1' compares the images of one unit, and diversity is 1 (one image per unit): add "
     "diversity=N (N >= 2), or leave diversity_layer out"),
    (lambda L: dreamlab.render(L, "conv2:1", diversity_layer=3, diversity=1, **TINY), "diversity_layer=3 compares"),
    (lambda L: dreamlab.render(L, "conv2:1", diversity=2, diversity_weight=1e39, **TINY),
     "diversity_weight 1e+39 is out of range; valid: 0 to 1000 (the penalty relative to each image's score"),
    (lambda L: dreamlab.render(L, "conv2:1", diversity_weight=0.5, **TINY),
     "diversity_weight=0.5 weighs the penalty between the images of one unit, and diversity is 1 (one image per "
     "unit): add diversity=N (N >= 2), or leave diversity_weight out"),
    (lambda L: dreamlab.dream(L, torch.rand(1, 28, 28), "conv2", recipe="lenet-digits", octaves=1, steps=1,
                              device="cpu"), "recipe= goes with your own nn.Module"),
    (lambda L: dreamlab.gradcam(NET, torch.rand(3, 32, 32), "logit:1", weights="none"),
     "weights='none' goes with a model given by name"),
])
def test_conflicting_arguments_are_one_line(lenet, call, message):
    with pytest.raises(DreamlabError) as caught:
        call(lenet)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_default_weights_go_with_every_model(lenet):
    assert dreamlab.render(lenet, "conv2:1", weights="default", **TINY).provenance["dreamlab:weights"] == "default"
    done = dreamlab.render(NET, "0:1", weights="default", size=32, **TINY)
    assert done.provenance["dreamlab:weights"] == "caller's module"


# --- 6: a recipe named by a string is checked against the caller's module as a Recipe object is --------------------

def test_a_recipe_file_with_a_callers_module_gets_its_layer_checks(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 4))
    table = tmp_path / "tbl.toml"
    table.write_text('name = "tbl"\nbuilder = "custom:x"\ninput_size = 32\n[layers."conv9"]\nsteps = 2\n')
    with pytest.raises(DreamlabError, match=rf"unknown layer in recipe {re.escape(str(table))}'s \[layers.\"...\"\] "
                                            r"tables: 'conv9'; valid: 0, 1, 2, 3, 4, logit; "
                                            r"dreamlab.layer_table\(model\) lists them$"):
        dreamlab.render(net, "0:1", recipe=str(table), **TINY)
    default = tmp_path / "dl.toml"
    default.write_text('name = "dl"\nbuilder = "custom:x"\ninput_size = 32\ndefault_layer = "body.9"\n')
    with pytest.raises(DreamlabError, match=rf"unknown default_layer of recipe {re.escape(str(default))}: 'body.9'"):
        dreamlab.render(net, "0:1", recipe=default, **TINY)


# --- 7: a recipe without `weights` -------------------------------------------------------------------------------

def test_a_zoo_recipe_without_weights_gets_the_builders_default(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(DIGITS)
    assert load_recipe(path).weights == "default" == Recipe("r", "zoo:x").weights
    loaded = load_model(path)
    assert loaded.weights == "default"
    shipped = load_model("lenet-digits").model.state_dict()
    assert all(torch.equal(v, shipped[k]) for k, v in loaded.model.state_dict().items())


def test_weights_a_recipe_names_wrongly_are_blamed_on_the_recipe(tmp_path):
    path = tmp_path / "u.toml"
    path.write_text(DIGITS.replace('name = "t"', 'name = "u"\nweights = "DEFAULT"'))
    with pytest.raises(WeightsError, match=rf"^unknown weights 'DEFAULT' for u, named by the `weights` of recipe {re.escape(str(path))}; "
                                           r"valid: default, none \(or what its builder takes\): fix it there, or "
                                           r"leave it out$"):
        load_model(path)
    with pytest.raises(WeightsError, match=r"^unknown weights 'nosuch' for u; valid: default, none, or the PATH"):
        load_model(path, "nosuch")  # the user's own value: no recipe to blame


# --- 13: a fixed-size module under padding transforms -----------------------------------------------------------

class FlatMLP(nn.Module):
    """Takes 16x16 RGB inputs only (16 is none of COMMON_SIZES)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3 * 16 * 16, 10)
        self.fc2 = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def test_a_size_changed_by_the_transforms_is_named():
    net = FlatMLP().eval()
    recipe = custom_recipe(net)
    try:
        net(torch.zeros(1, 3, 28, 28))
    except RuntimeError as exc:
        error = exc
    accepts = lambda size: takes_size(net, 3, size)  # noqa: E731
    found = unsized_module_error(recipe, (1, 3, 28, 28), error, accepts, rendered=(16, 16))
    assert str(found) == ("FlatMLP failed on a 3x28x28 input (mat1 and mat2 shapes cannot be multiplied (1x2352 and "
                          "768x10)): the transforms' padding made the 16x16 image 28x28, and the model takes a fixed "
                          "size; render with transforms='none' or 'small' (--transforms none/small), which keep the "
                          "size")
    assert unsized_module_error(recipe, (1, 3, 28, 28), error, accepts) is None  # nothing known: its own error
    assert unsized_module_error(recipe, (1, 3, 20, 20), error, accepts, rendered=(20, 20)) is None  # no padding


def test_a_fixed_size_module_under_padding_is_one_line():
    with pytest.raises(DreamlabError, match=r"the transforms' padding made the 16x16 image 28x28"):
        dreamlab.render(FlatMLP(), "logit:1", size=16, **TINY)
    assert dreamlab.render(FlatMLP(), "logit:1", size=16, transforms="none", **TINY).images.shape == (1, 3, 16, 16)


def test_minimum_side_is_said_only_of_models_that_take_every_larger_size():
    """The one rule every size message shares: "N or more" needs the model to take twice its size too."""
    probes = []

    def from_15(side: int) -> bool:
        probes.append(side)
        return side >= 15

    assert minimum_side(from_15, 8, 224) == 15
    assert probes[0] == 448  # the cheap check first: no bisection for a fixed-size model
    assert minimum_side(lambda side: 221 <= side <= 224, 100, 224) is None  # MaxViT: 221 to 224 px only
    assert minimum_side(from_15, 224, 224) is None and minimum_side(from_15, 300, 224) is None  # not below
    assert minimum_side(lambda side: side >= 224, 100, 224) == 224  # takes the size and up: the size itself


def test_a_callers_recipe_that_misses_224_is_told_its_size():
    """224 is tried too for a caller's Recipe of another size (a made-up one is 224 already)."""
    recipe = Recipe("vitlike", "custom:vitlike", input_size=32)
    with pytest.raises(DreamlabError, match=r"^vitlike failed on a 3x44x44 input \(Wrong image height! Expected 224 "
                                            r"but got 44!\) and runs on 224x224; for a module with a fixed input "
                                            r"size, say it: recipe=dreamlab.Recipe\('vitlike', 'custom:vitlike', "
                                            r"input_size=224, channels=3\), and render with transforms='none' \(or "
                                            r"'small'\), which keep the size$"):
        dreamlab.render(OnlySide(224), "conv:1", recipe=recipe, **TINY)


# --- 15: start images keep their aspect ratio -------------------------------------------------------------------

def _disc(height: int, width: int, radius: float) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    return ((y - height / 2) ** 2 + (x - width / 2) ** 2 <= radius ** 2).float()[None]


@pytest.mark.parametrize("shape, size, radius", [((100, 200), (64, 64), 40), ((200, 100), (64, 64), 40),
                                                  ((100, 100), (32, 64), 20)])
def test_a_start_image_is_scaled_to_cover_and_centre_cropped(shape, size, radius):
    """A disc stays a disc of the scaled radius, in the centre (stretched, the first was a 26x51 ellipse)."""
    fitted = fit_init_image(_disc(*shape, radius=radius), 1, size, 1)[0, 0] > 0.5
    assert fitted.shape == size
    rows, cols = fitted.any(1).sum().item(), fitted.any(0).sum().item()
    scale = max(size[0] / shape[0], size[1] / shape[1])
    assert abs(rows - cols) <= 1 and abs(rows - 2 * radius * scale) <= 2
    assert fitted[size[0] // 2, size[1] // 2] and not fitted[0].any() and not fitted[:, 0].any()


def test_a_square_start_image_is_resized_as_before():
    image = torch.rand(3, 20, 20)
    expected = F.interpolate(image[None], size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    assert torch.allclose(fit_init_image(image, 3, (28, 28), 1), expected.clamp(0, 1))


def test_a_shipped_recipe_lent_to_another_module_is_not_refused_over_its_default_layer():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 4))
    result = dreamlab.render(net, "0:1", recipe="googlenet", **TINY)  # googlenet's default layer: inception4c
    assert result.final_scores.shape == (1,) and result.provenance["dreamlab:recipe"] == "googlenet"


def test_errors_of_a_recipe_file_name_the_file_only_where_they_name_the_recipe(tmp_path, monkeypatch):
    path = tmp_path / "my" / "r.toml"
    path.parent.mkdir()
    path.write_text(DIGITS.replace('name = "t"', 'name = "r"\ncam_layer = "x"'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DreamlabError, match=r"^unknown cam_layer of recipe my/r\.toml: 'x'"):
        load_model("my/r.toml", "none")
    with pytest.raises(DreamlabError, match=r"^unknown cam_layer of recipe r: 'x'"):
        load_model(Recipe("r", "zoo:lenet_digits", input_size=28, channels=1, mean=(0.1,), std=(0.3,),
                          cam_layer="x"), "none")  # built in Python: no file to name


@pytest.mark.parametrize("given, message", [
    (None, r"^load_model takes a model name \(googlenet, lenet-digits\), a recipe file or a Recipe, got NoneType$"),
    (nn.Linear(2, 2), r"got Linear \(a module you built goes to render, gradcam, ... as it is"),
])
def test_load_model_refuses_what_names_no_model_in_one_line(given, message):
    from dreamlab.errors import DreamlabError
    from dreamlab.models.loading import load_model

    with pytest.raises(DreamlabError, match=message):
        load_model(given)


def test_a_recipe_or_weights_file_that_cannot_be_read_says_so(tmp_path, monkeypatch):
    from dreamlab.errors import DreamlabError
    from dreamlab.models.loading import _unreadable
    from dreamlab.models.recipe import load_recipe

    path = tmp_path / "r.toml"
    path.write_text(DIGITS)
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(DreamlabError, match=r"folder.toml' is a folder, not a TOML recipe file"):
        load_recipe(tmp_path / "folder.toml")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_text", denied)  # what mode 000 does for a user who is not root
    with pytest.raises(DreamlabError, match=r"cannot read recipe '.*r.toml': permission denied; give a file you "
                                            r"can read \(chmod u\+r\)$"):
        load_recipe(path)
    said = _unreadable(tmp_path / "w.pt", PermissionError(13, "Permission denied"))
    assert str(said).endswith("w.pt': permission denied; give a file you can read (chmod u+r)")
