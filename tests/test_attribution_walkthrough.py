"""Defects a new-user walkthrough of `cam` and `attribute` found: a long strip's input, provenance, the --sanity
table, and messages that speak the caller's words."""
from __future__ import annotations

import json
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import dreamlab
from dreamlab.apps.cli import main
from dreamlab.io import save_png
from dreamlab.models import loading
from models_fixtures import NarrowSizes, registered_rgb_recipes

SIDE = 32  # the recipes' input size


class RedFrom(nn.Module):
    """Logit 0: the strongest red-over-the-rest response anywhere, through a `kernel`-pixel conv without padding,
    so the model takes any size from `kernel` pixels a side up."""

    def __init__(self, kernel: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, kernel, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, 0], self.conv.weight[:, 1:] = 1.0, -0.5
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveMaxPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.pool(self.relu(self.conv(x))).flatten(1)[:, :1], torch.zeros(x.shape[0], 1)], 1)


@pytest.fixture
def recipes(tmp_path):
    return registered_rgb_recipes(tmp_path, {"red_k3": lambda: RedFrom(3), "red_k16": lambda: RedFrom(16)}, SIDE)


def strip(tmp_path, height: int, width: int):
    """A grey strip with a red patch in its middle third."""
    photo = torch.full((3, height, width), 0.5)
    photo[:, :, width // 3:2 * width // 3] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    return save_png(photo, tmp_path / "strip.png")


def test_a_long_strip_keeps_its_aspect_with_the_longer_side_capped(recipes, tmp_path, capsys):
    # 4x200 at --size 64 would be 64x3200, over 2048: it used to be padded into a 64x64 square, silently
    out = tmp_path / "cam.png"
    assert main(["cam", str(recipes["red_k3"]), "--image", str(strip(tmp_path, 4, 200)), "--size", "64",
                 "--target", "logit:0", "--layer", "relu", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "dreamlab: note: --size 64 would make the 4x200 photo's longer side 3200 px, over the 2048-pixel " \
           "limit: the model sees it at 41x2048, its aspect kept with the longer side capped at 2048" in err
    with Image.open(out) as img:
        assert img.text["dreamlab:model_input"] == "41x2048, aspect kept, the longer side capped at 2048"
        assert img.text["dreamlab:photo_region"] == "0,0,41,2048"


def test_a_strip_too_thin_once_capped_is_padded_with_a_note(recipes, tmp_path, capsys):
    # 2x1000 capped is 4x2048, below the 16-pixel kernel: padded into the 32 square, and said so
    out = tmp_path / "sal.png"
    assert main(["attribute", str(recipes["red_k16"]), "--image", str(strip(tmp_path, 2, 1000)),
                 "--target", "logit:0", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "the recipe's size 32 would make the 2x1000 photo's longer side 16000 px" in err
    assert "padded with the recipe's mean colour, so the padding can draw attributions" in err
    with Image.open(out) as img:
        assert img.text["dreamlab:model_input"].startswith("32x32, padded")


def test_a_photo_within_the_limit_gets_no_note(recipes, tmp_path, capsys):
    assert main(["cam", str(recipes["red_k3"]), "--image", str(strip(tmp_path, 20, 100)), "--target", "logit:0",
                 "--layer", "relu", "-o", str(tmp_path / "c.png")]) == 0
    assert "note" not in capsys.readouterr().err


def digit(tmp_path):
    """A grey 28x28 photo with a bright bar, for lenet-digits."""
    photo = torch.zeros(1, 28, 28)
    photo[:, 6:22, 12:16] = 1.0
    return str(save_png(photo, tmp_path / "digit.png"))


def test_a_cam_png_records_the_options_its_method_read(tmp_path):
    out = tmp_path / "cam.png"
    assert main(["cam", "lenet-digits", "--image", digit(tmp_path), "--target", "logit:1", "-o", str(out)]) == 0
    with Image.open(out) as img:
        assert json.loads(img.text["dreamlab:options"]) == {"layer": "relu2"}
        assert img.text["dreamlab:layer"] == "relu2" and "dreamlab:weights_seed" not in img.text


@pytest.mark.parametrize("command", [["cam"], ["attribute", "--method", "saliency"]])
def test_random_init_records_its_seed_as_render_does(tmp_path, command):
    from dreamlab.models.loading import WEIGHTS_SEED

    out = tmp_path / "map.png"
    assert main([*command, "lenet-digits", "--image", digit(tmp_path), "--target", "logit:1", "--weights", "none",
                 "-o", str(out)]) == 0
    with Image.open(out) as img:
        assert img.text["dreamlab:weights"] == "none" and img.text["dreamlab:weights_seed"] == str(WEIGHTS_SEED)


class LongNames(nn.Module):
    """Two conv blocks; the first's address is longer than the table's 'randomized' header, and it is re-drawn
    second, so its row gets the '+'."""

    def __init__(self) -> None:
        super().__init__()
        self.first_convolution = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.first_convolution(x))).amax((2, 3))


def test_the_sanity_table_keeps_its_columns_under_their_headers(tmp_path, capsys):
    loading.register_builder("tests:long_names", lambda weights=None: LongNames())
    recipe = tmp_path / "long_names.toml"
    recipe.write_text(f'name = "long_names"\nbuilder = "tests:long_names"\ninput_size = {SIDE}\nweights = "none"\n'
                      f'mean = [0.5, 0.5, 0.5]\nstd = [1.0, 1.0, 1.0]\n')
    photo = str(save_png(torch.rand(3, SIDE, SIDE, generator=torch.Generator().manual_seed(0)), tmp_path / "p.png"))
    assert main(["attribute", str(recipe), "--image", photo, "--target", "logit:0", "--sanity",
                 "--method", "saliency,gradcam"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines()[1:] if not line.startswith("n/a:")]
    assert [line.split()[0] for line in lines] == ["randomized", "head", "+first_convolution"]
    assert len({len(line) for line in lines}) == 1  # right-aligned cells: every row as long as the header


@pytest.mark.parametrize("methods, message", [
    ("saliency,,ig", "--method 'saliency,,ig' has an empty item (two commas in a row, or one at an end); give "
                     "the methods separated by single commas, e.g. saliency,ig"),
    ("saliency,", "--method 'saliency,' has an empty item"),
    ("saliency,ig,saliency", "--method 'saliency,ig,saliency' names saliency twice; name each method once, e.g. "
                             "saliency,ig"),
])
def test_sanity_refuses_an_empty_or_repeated_method(tmp_path, capsys, methods, message):
    assert main(["attribute", "lenet-digits", "--image", digit(tmp_path), "--sanity", "--method", methods]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["cam"], ["attribute", "--method", "saliency"]])
def test_a_target_is_echoed_as_written(tmp_path, capsys, command):
    assert main([*command, "lenet-digits", "--image", digit(tmp_path), "--target", "conv2:3,4", "-o",
                 str(tmp_path / "m.png")]) == 2
    assert capsys.readouterr().err.strip() == ("dreamlab: error: target 'conv2:3,4' has 2 units for 1 image(s); "
                                               "give one unit (logit:3) or one per image")


class Pooled(nn.Module):
    """4x max pool -> conv -> conv (3x3, padding 1): it takes 4 pixels a side and more, and below 8 every map is
    1x1."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(4)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv2(self.conv1(self.pool(x))).amax((2, 3)))


def noise_photo(tmp_path) -> str:
    """A 40x40 RGB noise photo, seeded."""
    return str(save_png(torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0)), tmp_path / "p.png"))


@pytest.fixture
def pooled(tmp_path):
    return str(registered_rgb_recipes(tmp_path, {"pooled": Pooled}, SIDE)["pooled"])


def test_cam_at_too_small_a_size_names_the_size_and_the_smallest_that_works(pooled, tmp_path, capsys):
    # conv2:1 reads conv2, so the map is at conv1 or pool: 1x1 below 8 pixels; it used to blame the target
    photo = noise_photo(tmp_path)
    assert main(["cam", pooled, "--image", photo, "--size", "4", "--target", "conv2:1", "-o",
                 str(tmp_path / "c.png")]) == 2
    assert capsys.readouterr().err.strip() == (
        "dreamlab: error: the model input at this --size, 4x4, is too small for a Grad-CAM: at that size no layer "
        "with a spatial output map runs before the target's layer conv2; the smallest size that gives one (a map "
        "larger than 1x1) is 8: use --size 8 or more")
    assert main(["cam", pooled, "--image", photo, "--size", "8", "--target", "conv2:1", "-o",
                 str(tmp_path / "c.png")]) == 0


def test_the_python_api_names_the_image_to_pass_not_a_flag(pooled):
    import dreamlab

    with pytest.raises(dreamlab.DreamlabError) as error:
        dreamlab.gradcam("lenet-digits", torch.rand(1, 8, 8), "logit:3")
    assert str(error.value).endswith("it runs at its recipe's size, 28: pass a 28x28 image (resize yours first)")
    assert "--size" not in str(error.value)
    with pytest.raises(dreamlab.DreamlabError) as error:
        dreamlab.gradcam(pooled, torch.rand(3, 4, 4), "conv2:1")
    assert str(error.value) == (
        "an image of 4x4 is too small for a Grad-CAM: at that size no layer with a spatial output map runs before "
        "the target's layer conv2; the smallest size that gives one (a map larger than 1x1) is 8: pass an image of "
        "at least 8 pixels a side (resize yours first)")


def test_a_command_names_the_smallest_size_a_model_takes(pooled, tmp_path, capsys):
    photo = noise_photo(tmp_path)
    assert main(["attribute", pooled, "--image", photo, "--size", "2", "--target", "logit:0", "-o",
                 str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dreamlab: error: pooled rejected a 3x2x2 input (") and \
        err.endswith("; the smallest size it takes is 4: use --size 4 or more")


def test_a_recipe_cam_layer_with_a_1x1_map_is_told_as_a_size_too_small(pooled, tmp_path, capsys):
    recipe = tmp_path / "pooled_cam.toml"
    recipe.write_text(open(pooled).read().replace('name = "pooled"', 'name = "pooled_cam"') + 'cam_layer = "conv2"\n')
    photo = noise_photo(tmp_path)
    assert main(["cam", str(recipe), "--image", photo, "--size", "4", "--target", "logit:0", "-o",
                 str(tmp_path / "c.png")]) == 2
    assert capsys.readouterr().err.strip() == (
        "dreamlab: error: the model input at this --size, 4x4, is too small for a Grad-CAM: at that size the "
        "recipe's cam_layer conv2 has no map larger than 1x1; the smallest size that gives one (a map larger than "
        "1x1) is 8: use --size 8 or more")


def deep() -> nn.Module:
    """conv1 (3x3, padding 1) -> relu1 -> 4x max pool -> conv2 -> relu2 -> global max -> 2 logits: below 8 pixels
    a side relu2's map is 1x1 while relu1's is not, so the default Grad-CAM layer (the last spatial one, relu2)
    moves to relu1."""
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 4, 3, padding=1), relu1=nn.ReLU(), pool=nn.MaxPool2d(4),
        conv2=nn.Conv2d(4, 4, 3, padding=1), relu2=nn.ReLU(), top=nn.AdaptiveMaxPool2d(1), flat=nn.Flatten(),
        head=nn.Linear(4, 2)))


def deep_recipe(tmp_path) -> str:
    """`deep` registered, and its recipe (input size 32) written in `tmp_path`."""
    return str(registered_rgb_recipes(tmp_path, {"deep": deep}, SIDE)["deep"])


def test_a_default_layer_moved_by_a_small_size_gets_a_note(tmp_path, capsys):
    # hed-vgg16 at --size 2 used to take features.8 instead of features.29 with only the output line naming it
    model, photo = deep_recipe(tmp_path), noise_photo(tmp_path)
    assert main(["cam", model, "--image", photo, "--size", "4", "--target", "logit:0", "-o",
                 str(tmp_path / "c.png")]) == 0
    out, err = capsys.readouterr()
    assert "gradcam of logit:0 at relu1;" in out
    assert err.splitlines()[0] == (
        "dreamlab: note: the default Grad-CAM layer moved from relu2 to relu1: at --size 4 (model input 4x4) relu2's "
        "map is 1x1, too small for a Grad-CAM, so the map is at the last layer whose map is larger; use --size 8 or "
        "more to keep relu2, or choose a layer with --layer")
    for quiet in (["--size", "8"], ["--size", "4", "--layer", "relu1"]):  # the usual layer, or the user's choice
        assert main(["cam", model, "--image", photo, *quiet, "--target", "logit:0", "-o",
                     str(tmp_path / "c.png")]) == 0
        assert "moved" not in capsys.readouterr().err
    assert main(["attribute", model, "--image", photo, "--size", "4", "--target", "logit:0", "--method",
                 "guided-gradcam", "-o", str(tmp_path / "a.png")]) == 0
    assert capsys.readouterr().err.count("the default Grad-CAM layer moved from relu2 to relu1") == 1


def test_the_python_api_warns_of_a_moved_default_layer_in_its_own_words(tmp_path):
    import dreamlab
    from dreamlab.errors import DreamlabNote

    model = deep_recipe(tmp_path)
    with pytest.warns(DreamlabNote) as notes:
        dreamlab.gradcam(model, torch.rand(3, 4, 6), "logit:0")
    assert [str(n.message) for n in notes] == [
        "the default Grad-CAM layer moved from relu2 to relu1: on this 4x6 image relu2's map is 1x1, too small for a "
        "Grad-CAM, so the map is at the last layer whose map is larger; pass an image of at least 5 pixels a side "
        "(resize yours first) to keep relu2, or choose a layer with layer="]  # 5x8: relu2's map is 1x2
    assert notes[0].filename == __file__  # it points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dreamlab.gradcam(model, torch.rand(3, 8, 8), "logit:0")
        dreamlab.gradcam(model, torch.rand(3, 4, 6), "logit:0", "relu1")


@pytest.mark.parametrize("command", [["cam"], ["attribute", "--method", "saliency"]])
def test_a_position_outside_the_map_is_told_in_cams_words(tmp_path, capsys, command):
    # it used to speak of "the render size, or model_size where it is set": render's words
    assert main([*command, "lenet-digits", "--image", digit(tmp_path), "--target", "conv2:0@99,99", "-o",
                 str(tmp_path / "m.png")]) == 2
    assert capsys.readouterr().err == (
        "dreamlab: error: target 'conv2:0@99,99': position 99,99 is outside the map of layer 'conv2', which is 14 "
        "high x 14 wide for this 28x28 model input (valid x 0-13, y 0-13); give a position in that range, or "
        "@centre for the map's centre: 'conv2:0@centre'\n")
    assert not list(tmp_path.glob("m.*"))
    assert main([*command, "lenet-digits", "--image", digit(tmp_path), "--target", "conv2:0@13,13", "-o",
                 str(tmp_path / "m.png")]) == 0


def test_the_python_api_tells_a_position_outside_the_map_without_render_words():
    import dreamlab
    from dreamlab import objectives as o

    with pytest.raises(dreamlab.DreamlabError) as error:
        dreamlab.attribute("lenet-digits", torch.rand(1, 28, 28), o.neuron("conv2", 0, x=3, y=14))
    assert str(error.value) == (
        "target 'conv2:0@3,14': position 3,14 is outside the map of layer 'conv2', which is 14 high x 14 wide for "
        "this 28x28 model input (valid x 0-13, y 0-13); give a position in that range, or @centre for the map's "
        "centre: 'conv2:0@centre'")
    assert "model_size" not in str(error.value) and "render" not in str(error.value)


def test_a_model_that_takes_a_narrow_range_of_sizes_is_not_told_or_more():
    recipe = dreamlab.Recipe("narrow", "custom:narrow", input_size=64)
    with pytest.raises(dreamlab.DreamlabError) as error:
        dreamlab.gradcam(NarrowSizes().eval(), torch.rand(3, 32, 32), "logit:1", recipe=recipe)
    assert str(error.value).startswith("narrow rejected a 3x32x32 input (shape [1, 3, 32, 32] is invalid")
    assert str(error.value).endswith("it runs at its recipe's size, 64: pass a 64x64 image (resize yours first)")


def test_the_size_a_moved_layer_note_advises_keeps_the_layer_for_a_photo_of_odd_aspect(tmp_path, capsys):
    """The size was searched by resizing the 16x24 model input (aspect 1.5): at --size 22 that is 22x33, where
    layer4's map is 1x2; but --size 22 makes this 427x640 photo 22x32 (the longer side from the photo's own aspect,
    rounded to an even number), where it is 1x1, and the rerun said 'use --size 23'."""
    photo = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (427, 640, 3), dtype=np.uint8)).save(photo)
    common = ["resnet18", "--weights", "none", "--image", str(photo), "--target", "logit:0"]
    assert main(["cam", *common, "--size", "16", "-o", str(tmp_path / "c.png")]) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        "dreamlab: note: the default Grad-CAM layer moved from layer4 to layer3: at --size 16 (model input 16x24) "
        "layer4's map is 1x1, too small for a Grad-CAM, so the map is at the last layer whose map is larger; use "
        "--size 23 or more to keep layer4, or choose a layer with --layer")
    for command in (["cam"], ["attribute", "--method", "guided-gradcam"]):  # the advice followed
        assert main([*command, *common, "--size", "23", "-o", str(tmp_path / "c.png")]) == 0
        assert "moved" not in capsys.readouterr().err


ALEXNET_NOTE = (  # alexnet's avgpool, AdaptiveAvgPool2d((6, 6)), repeats features.12's 1x1 map below 223 px
    "the Grad-CAM layer avgpool is an adaptive pool that enlarges a 1x1 map to 6x6 {given}, so the map is flat (one "
    "value over the whole image), with no location information; {larger} for a map it does not enlarge, or an "
    "earlier layer such as the last conv layer, {named} (3x3 here)")


def test_a_cam_layer_enlarged_by_an_adaptive_pool_gets_a_note(tmp_path, capsys):
    # alexnet's default layer is avgpool: at --size 63 its 6x6 map was features.12's 1x1 one repeated, a flat
    # Grad-CAM shown as heat over the whole photo without a word
    photo = noise_photo(tmp_path)
    cam = ["cam", "alexnet", "--weights", "none", "--image", photo, "--target", "logit:0", "-o",
           str(tmp_path / "c.png")]
    assert main([*cam, "--size", "63"]) == 0
    out, err = capsys.readouterr()
    assert "gradcam of logit:0 at avgpool;" in out
    assert err.splitlines()[0] == "dreamlab: note: " + ALEXNET_NOTE.format(  # an all-zero map's note may follow
        given="at --size 63 (model input 63x63)", larger="use --size 223 or more", named="--layer features.10")
    raw = np.load(tmp_path / "c.npy")
    assert raw.max() == pytest.approx(raw.min())  # what the note says: one value everywhere
    for quiet in (["--size", "224"], ["--size", "63", "--layer", "features.10"]):  # the usual size, the conv layer
        assert main([*cam, *quiet]) == 0
        assert "adaptive pool" not in capsys.readouterr().err
    assert main(["attribute", "alexnet", "--weights", "none", "--image", photo, "--size", "63", "--target", "logit:0",
                 "--method", "guided-gradcam", "-o", str(tmp_path / "a.png")]) == 0
    assert capsys.readouterr().err.count("adaptive pool that enlarges") == 1  # in --size words only


def test_the_python_api_notes_an_enlarged_cam_layer_in_its_own_words():
    from dreamlab.errors import DreamlabNote

    with pytest.warns(DreamlabNote) as notes:
        dreamlab.gradcam("alexnet", torch.rand(3, 63, 63), "logit:0", weights="none")
    assert [str(n.message) for n in notes] == [ALEXNET_NOTE.format(
        given="on this 63x63 image", larger="pass an image of at least 223 pixels a side (resize yours first)",
        named="layer='features.10'")]
    assert notes[0].filename == __file__  # it points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dreamlab.gradcam("alexnet", torch.rand(3, 224, 224), "logit:0", weights="none")
        dreamlab.gradcam("alexnet", torch.rand(3, 63, 63), "logit:0", "features.10", weights="none")
