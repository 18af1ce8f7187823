"""Fixes from a new-user walkthrough: layer_table takes what the other views take, `layers --size HxW`, examples
labels the units no photo turns on, a missing --images folder, features' hint for a channels-last tensor."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import dreamlab
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.inspect.examples import NEVER_ON, NEVER_ON_FILL, TILE, examples
from dreamlab.io import read_png_text
from dreamlab.models import loading

LENET = [("conv1", (20, 28, 28)), ("relu1", (20, 28, 28)), ("pool1", (20, 14, 14)), ("conv2", (50, 14, 14)),
         ("relu2", (50, 14, 14)), ("pool2", (50, 7, 7)), ("flatten", (2450,)), ("fc1", (500,)), ("relu3", (500,)),
         ("fc2", (10,))]


def _shapes(rows) -> list[tuple[str, tuple[int, ...] | None]]:
    return [(r.name, r.output_shape) for r in rows]


def test_layer_table_takes_a_name_a_loaded_model_and_a_module() -> None:
    assert _shapes(dreamlab.layer_table("lenet-digits")) == LENET  # weights "none" by default: shapes only
    loaded = dreamlab.load_model("lenet-digits")
    assert _shapes(dreamlab.layer_table(loaded)) == LENET
    assert _shapes(dreamlab.layer_table(loaded.model, input_size=28)) == LENET  # 1 channel, as its first conv reads
    with pytest.raises(DreamlabError, match=r"^LeNetDigits cannot take a 224x224 input \(.*\); give the size it "
                                            r"takes \(input_size=\), or its recipe \(recipe=\)$"):
        dreamlab.layer_table(loaded.model)  # a module without a recipe: 224 px, as render gives it
    assert _shapes(dreamlab.layer_table(loaded.model, recipe="lenet-digits")) == LENET
    assert _shapes(dreamlab.layer_table("lenet-digits", weights="default")) == LENET


def test_layer_table_names_channels_the_model_rejects_not_the_size() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(DreamlabError, match=r"^Sequential does not take channels=1 \(.*expected input\[1, 1, 224, "
                                            r"224\] to have 3 channels.*\); it takes 3, what its first convolution "
                                            r"reads: leave channels out$"):
        dreamlab.layer_table(model, channels=1)
    with pytest.raises(DreamlabError, match=r"^lenet-digits does not take channels=3 .*; it takes 1, the recipe's: "
                                            r"leave channels out$"):
        dreamlab.layer_table("lenet-digits", channels=3)
    assert _shapes(dreamlab.layer_table("lenet-digits", channels=1)) == LENET


def test_layer_table_names_both_wrong_channels_and_a_wrong_size_channels_first() -> None:
    """channels=3 and input_size=4 for LeNet were told the size alone; once fixed, the channels were refused."""
    with pytest.raises(DreamlabError) as refused:
        dreamlab.layer_table("lenet-digits", input_size=4, channels=3)
    assert str(refused.value) == (
        "lenet-digits does not take channels=3 (Given groups=1, weight of size [20, 1, 5, 5], expected input[1, 3, "
        "28, 28] to have 1 channels, but got 3 channels instead); it takes 1, the recipe's: leave channels out; also, "
        "lenet-digits rejected a 1x4x4 input (mat1 and mat2 shapes cannot be multiplied (1x50 and 2450x500)); it runs "
        "at its recipe's size, 28: use input_size=28")
    with pytest.raises(DreamlabError, match=r"^Sequential does not take channels=1 \(.*\); it takes 3, what its first "
                                            r"convolution reads: leave channels out; also, Sequential cannot take a "
                                            r"2x2 input \(.*\); give the size it takes \(input_size=\), or "
                                            r"its recipe \(recipe=\)$"):
        dreamlab.layer_table(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), input_size=2, channels=1)
    with pytest.raises(DreamlabError, match=r"^lenet-digits rejected a 1x4x4 input \(mat1 .*\); it runs at its "
                                            r"recipe's size, 28: use input_size=28$"):
        dreamlab.layer_table("lenet-digits", input_size=4, channels=1)  # the size alone


def test_layer_table_takes_height_x_width() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    rows = dreamlab.layer_table(model, input_size=(10, 14))
    assert [(r.name, r.output_shape) for r in rows] == [("0", (4, 8, 12)), ("1", (4, 8, 12))]
    assert dreamlab.layer_table(model, input_size=9)[0].output_shape == (4, 7, 7)


@pytest.mark.parametrize("call, message", [
    (lambda: dreamlab.layer_table(3), "model must be a recipe or torchvision model name (like 'googlenet'), a "
                                      "recipe .toml path, a LoadedModel or an nn.Module, got int; `dreamlab "
                                      "recipes` lists the names"),
    (lambda: dreamlab.layer_table("lenet-digits", input_size="28"),
     "input_size must be a whole number >= 1 (the input side in pixels, or (height, width)), got '28'"),
    (lambda: dreamlab.layer_table("lenet-digits", input_size=(28, 28, 1)),
     "input_size must be pixels or a (height, width) pair, got tuple (28, 28, 1)"),
    (lambda: dreamlab.layer_table("lenet-digits", input_size=(28, 0)),
     "input_size must be a whole number >= 1 (the input side in pixels, or (height, width)), got 0"),
    (lambda: dreamlab.layer_table("lenet-digits", input_size=5000),
     "input_size 5000 is out of range; valid: 1 to 2048 pixels"),
    (lambda: dreamlab.layer_table(dreamlab.load_model("lenet-digits"), weights="imagenet"),
     "weights='imagenet' goes with a model given by name; this LoadedModel of lenet-digits has its weights"),
])
def test_layer_table_refuses_in_one_line(call, message) -> None:
    with pytest.raises(DreamlabError) as refused:
        call()
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_a_too_small_size_is_told_in_the_words_of_the_interface_that_asked(capsys) -> None:
    """googlenet takes every size from 15 px: layer_table names its keyword, `dreamlab layers` its flag."""
    with pytest.raises(DreamlabError) as refused:
        dreamlab.layer_table("googlenet", input_size=8)
    assert str(refused.value).endswith("; the smallest size it takes is 15: use input_size=15 or more")
    assert main(["layers", "googlenet", "--size", "8"]) == 2
    assert capsys.readouterr().err.strip().endswith("; the smallest size it takes is 15: use --size 15 or more")
    assert main(["layers", "lenet-digits", "--size", "5000"]) == 2
    assert capsys.readouterr().err.strip() == "dreamlab: error: --size 5000 is out of range; valid: 1 to 2048 pixels"


def test_layers_size_takes_height_x_width(capsys) -> None:
    assert main(["layers", "googlenet", "--size", "96x128", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["input"]["output_shape"] == [3, 96, 128]
    assert {r["name"]: r["output_shape"] for r in table["layers"]}["inception4c"] == [512, 6, 8]
    assert main(["layers", "lenet-digits", "--size", "20x40"]) == 2
    assert capsys.readouterr().err.strip().endswith("rejected a 1x20x40 input (mat1 and mat2 shapes cannot be "
                                                    "multiplied (1x2500 and 2450x500)); it runs at its recipe's size, "
                                                    "28: use --size 28")
    assert main(["layers", "lenet-digits", "--size", "28x28"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("one 28x28 image: input 3.1 kB, outputs of the leaf modules "
                                                     "(every call) 243.2 kB")


def _half_dead() -> nn.Module:
    """Channel 0 is the image's red, channel 1 is never on (a negative weight and bias before the ReLU)."""
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0, 0] = 1.0
        conv.weight[1] = -1.0
        conv.bias[1] = -1.0
        conv.weight[2, 2] = 1.0
    return nn.Sequential(conv, nn.ReLU()).eval()


RECIPE = dreamlab.Recipe("halfdead", "custom:halfdead", input_size=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def test_a_unit_no_photo_turns_on_gets_a_labelled_tile_and_a_record(tmp_path) -> None:
    photos = [torch.rand(3, 16, 16) * 0.5 + 0.5, torch.rand(3, 16, 20) * 0.5 + 0.5]
    found = examples(_half_dead(), "1", [0, 1, 2], photos, top=2, recipe=RECIPE, out=tmp_path / "ex.png")
    assert [len(row) for row in found.units] == [2, 0, 2] and found.never_on == [1]
    text = read_png_text(tmp_path / "ex.png")
    assert text["dreamlab:never_on"] == "1"
    assert f"a unit no photo turned on (dreamlab:never_on): one grey tile saying '{NEVER_ON}'" in text["dreamlab:order"]
    tile = found.grid.tiles[2]  # row 1, column 0: light grey, its unit in the corner, the words in the middle
    assert tile.shape == (3, TILE, TILE)
    assert float(tile[:, -12:].min()) == pytest.approx(NEVER_ON_FILL, abs=1e-6)  # grey to the bottom edge
    assert float(tile[:, :12, :12].min()) == 0.0  # the unit's label box
    middle = tile[:, TILE // 2 - 12:TILE // 2 + 12]
    assert float(middle.min()) < 0.1 and float(middle[:, :, :8].min()) == pytest.approx(NEVER_ON_FILL, abs=1e-6)
    assert bool((found.grid.tiles[3] == 1).all())  # the rest of that row: blank white


def test_the_command_line_notes_the_units_no_photo_turns_on(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(loading._BUILDERS, "mine:halfdead", lambda weights=None: _half_dead())
    (tmp_path / "halfdead.toml").write_text('name = "halfdead"\nbuilder = "mine:halfdead"\nweights = "none"\n'
                                            'input_size = 16\nmean = [0.0, 0.0, 0.0]\nstd = [1.0, 1.0, 1.0]\n')
    assert main(["examples", "--recipe", "halfdead.toml", "1:0-2", "--images", "china", "--weights", "none",
                 "-o", "ex.png"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "ex.png"
    assert err == ("dreamlab: note: 1:1 is 0 everywhere on every image: no photo turns it on, so its row is one tile "
                   "saying so; try more or other photos (--images)\n")
    assert read_png_text(tmp_path / "ex.png")["dreamlab:never_on"] == "1"


@pytest.mark.parametrize("given", ["nosuch/", "nosuch"])
def test_a_missing_images_folder_is_no_such_file_or_folder(tmp_path, monkeypatch, capsys, given) -> None:
    monkeypatch.chdir(tmp_path)
    message = ("no such file or folder 'nosuch'; images are folders of PNG/JPEG photos, image files, or china / "
               "flower (scikit-learn's sample photos)")
    assert main(["examples", "lenet-digits", "conv2:3", "--images", given]) == 2
    assert capsys.readouterr().err == f"dreamlab: error: {message}\n"
    with pytest.raises(DreamlabError) as refused:
        examples("lenet-digits", "conv2", [3], [given, "china"])
    assert str(refused.value) == message.replace("'nosuch'", repr(given))
    with pytest.raises(DreamlabError, match="^cannot read image 'missing.png': no such file; give a PNG/JPEG path"):
        examples("lenet-digits", "conv2", [3], "missing.png")  # a name with an image's suffix is a missing file


@pytest.mark.parametrize("shape, hint", [
    ((64, 64, 3), "; channels last (NumPy/PIL's layout): pass image.permute(2, 0, 1)"),
    ((1, 3, 32, 32), "; a batch of one: pass image[0]"),
    ((4, 32, 32), "; 4 channels (RGBA: the alpha channel is not read): pass image[:3]"),
    ((5, 32), ""),
])
def test_features_says_how_to_pass_an_image_of_another_layout(shape, hint) -> None:
    with pytest.raises(DreamlabError) as refused:
        dreamlab.features("lenet-digits", "conv1", torch.rand(*shape))
    assert str(refused.value) == f"expected an image [1 or 3, H, W], got shape {list(shape)}{hint}"


def test_features_and_kernels_save_refuses_a_name_that_is_not_png(tmp_path) -> None:
    maps = dreamlab.features("lenet-digits", "conv1", "china", top=2)
    kernels = dreamlab.kernels("lenet-digits", "conv1")
    for shown in (maps, kernels):
        with pytest.raises(DreamlabError, match=r"output '.*x\.jpg' would not be a \.png file"):
            shown.save(tmp_path / "x.jpg")  # a .jpg name got PNG bytes
    assert list(tmp_path.iterdir()) == []
