"""Dataset examples (`dreamlab examples`, `dreamlab.inspect.examples`): planted patterns found in the right image
at the right place, receptive fields against the arithmetic, fixed-size models, the command line."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dreamlab
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError, DreamlabNote
from dreamlab.inspect.examples import examples
from dreamlab.inspect.receptive import receptive_field
from dreamlab.inspect.features import preprocess
from dreamlab.io import read_png_text, sample_photo, save_png

RECIPE = dreamlab.Recipe("colours", "custom:colours", input_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def colour_detector() -> nn.Module:
    """Channel 0 answers red over green and blue, channel 1 blue over red and green (3x3 sums, no padding)."""
    conv = nn.Conv2d(3, 2, 3, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0], conv.weight[0, 1:] = 1.0, -0.5
        conv.weight[1, 2], conv.weight[1, :2] = 1.0, -0.5
    return nn.Sequential(conv).eval()


def grey_with_square(colour: tuple[float, float, float], top: int, left: int, size: int = 6) -> torch.Tensor:
    image = torch.full((3, 32, 48), 0.5)
    image[:, top:top + size, left:left + size] = torch.tensor(colour).view(3, 1, 1)
    return image


def test_planted_squares_are_found_in_their_image_at_their_place() -> None:
    red, blue = grey_with_square((1, 0, 0), 4, 6), grey_with_square((0, 0, 1), 20, 36)
    model = colour_detector()
    found = examples(model, "0", [0, 1], [torch.full((3, 32, 48), 0.5), red, blue], top=3, recipe=RECIPE)
    assert found.receptive_field.side == 3
    best_red, best_blue = found.units[0][0], found.units[1][0]
    assert best_red.image == "tensor 1" and best_blue.image == "tensor 2"
    # the best position is inside the square, and its 3x3 crop shows the square's colour
    top, left, bottom, right = best_red.box
    assert 4 <= (top + bottom) // 2 < 10 and 6 <= (left + right) // 2 < 12 and bottom - top == 3
    assert torch.allclose(best_red.crop, torch.tensor([1.0, 0, 0]).view(3, 1, 1).expand(3, 3, 3))
    # the score is the channel's maximum over the map, as a hand computation gives it
    assert best_red.score == pytest.approx(model(red[None])[0, 0].max().item(), abs=1e-5)
    assert best_blue.score == pytest.approx(9 * 1.0, abs=1e-5)
    # the grey image leaves channel 0 at 0 everywhere: no example; blue's map is 0 or below, a real response
    assert [e.image for e in found.units[0]] == ["tensor 1", "tensor 2"]


def test_receptive_field_matches_the_arithmetic() -> None:
    # 3x3 (+2), 3x3 (+2), 2x2 max-pool stride 2 (+1), 3x3 at stride 2 (+4): 1 + 2 + 2 + 1 + 4 = 10 pixels
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3)).eval()
    deep, first = receptive_field(model, "5", RECIPE), receptive_field(model, "0", RECIPE)
    assert (deep.side, deep.stride, deep.origin) == (10, (2.0, 2.0), (5.0, 5.0))  # position 0 sees pixels 0-9
    assert (first.side, first.stride, first.origin) == (3, (1.0, 1.0), (1.5, 1.5))
    assert deep.box(3, 0) == (6, 0, 16, 10) and first.box(4, 6) == (4, 6, 7, 9)
    padded = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1)).eval()
    # position j of the stride-2 conv reads conv1 positions 2j-1..2j+1, which read pixels 2j-2..2j+2
    assert receptive_field(padded, "2", RECIPE).box(5, 5) == (8, 8, 13, 13)
    assert receptive_field(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2)), "1", RECIPE) is None


def test_a_fixed_size_model_reads_centre_squares_and_a_logit_the_whole_image() -> None:
    found = examples("lenet-digits", "logit", [3], ["china", "flower"], top=2)
    loaded = dreamlab.load_model("lenet-digits")
    by_hand = {name: loaded.model(preprocess(sample_photo(name, "test"), loaded.recipe))[0, 3].item()
               for name in ("china", "flower")}
    assert [e.image for e in found.units[0]] == sorted(by_hand, key=by_hand.get, reverse=True)
    for example in found.units[0]:
        assert example.score == pytest.approx(by_hand[example.image], abs=1e-4)
        assert example.box == (0, 0, 28, 28) and example.crop.shape == (1, 28, 28)
    assert found.receptive_field is None


@pytest.mark.parametrize("kwargs, message", [
    ({"units": [99]}, "unit 99 is out of range for layer 'conv2' (50 channels: valid 0-49)"),
    ({"units": [-1]}, "units must be channel numbers >= 0"),
    ({"top": 0}, "top"),
    ({"images": []}, "no images given"),
    ({"images": 3}, "images must be a folder"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message) -> None:
    arguments = {"units": [3], "images": ["china"], "top": 2, **kwargs}
    with pytest.raises(DreamlabError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        examples("lenet-digits", "conv2", arguments["units"], arguments["images"], top=arguments["top"])
    assert "\n" not in str(info.value)


def test_examples_from_the_command_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("china", "flower"):
        image = (sample_photo(name, "test").permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        from PIL import Image
        Image.fromarray(image).save(folder / f"{name}.png")
    (folder / "notes.txt").write_text("not an image")
    assert main(["examples", "lenet-digits", "conv2:3,7", "--images", "photos", "--top", "2"]) == 0
    out = tmp_path / "lenet-digits_conv2_3_7_examples.png"
    assert capsys.readouterr().out.strip() == out.name
    text = read_png_text(out)
    assert text["dreamlab:units"] == "3,7" and text["dreamlab:receptive_field"] == "14"
    rows = text["dreamlab:examples"].split(" | ")
    assert len(rows) == 2 and all(sorted(e.split("=")[0] for e in row.split(",")) == ["china.png", "flower.png"]
                                  for row in rows)
    assert text["dreamlab:columns"] == "2" and text["dreamlab:rows"] == "2"


@pytest.mark.parametrize("argv, message", [
    (["lenet-digits", "conv2", "--images", "china"], "give the units as LAYER:UNITS"),
    (["lenet-digits", "conv2:3", "--images", "missing.png"], "cannot read image 'missing.png': no such file"),
    (["lenet-digits", "conv9:1", "--images", "china"], "unknown layer 'conv9'"),
    (["lenet-digits", "conv2:1 + conv2:2", "--images", "china"],
     "examples takes one LAYER:UNITS, like conv2:1,2 or features.22:0-7, not an expression or a neuron position; "
     "got 'conv2:1 + conv2:2'"),
])
def test_examples_bad_input_exits_with_one_line(tmp_path, monkeypatch, capsys, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["examples", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not list(tmp_path.glob("*.png"))


def test_size_sets_the_shorter_side_and_a_fixed_size_model_refuses_another() -> None:
    red = grey_with_square((1, 0, 0), 4, 6)
    found = examples(colour_detector(), "0", [0], [red], top=1, size=64, recipe=RECIPE)  # twice the 32 px
    top, left, bottom, right = found.units[0][0].box
    assert 8 <= top and bottom <= 20 and 12 <= left and right <= 24  # inside the square, now at rows 8-19
    with pytest.raises(DreamlabError, match="lenet-digits takes 28-pixel images only"):
        examples("lenet-digits", "conv2", [0], ["china"], size=56)
    with pytest.raises(DreamlabError, match=r"^size \(--size\) 4 is out of range; valid: 8 to 2048"):
        examples("lenet-digits", "conv2", [0], ["china"], size=4)


def test_the_best_images_are_kept_as_they_stream_past_and_ties_keep_the_earlier(tmp_path) -> None:
    levels = [0.6, 0.9, 0.7, 1.0, 0.9]
    images = [grey_with_square((level, 0, 0), 10, 10) for level in levels]
    images[4][:, 24:, :8] = 0.4  # another picture (a copy is read once) with the same best score
    found = examples(colour_detector(), "0", [0], images, top=3, recipe=RECIPE)
    assert [e.image for e in found.units[0]] == ["tensor 3", "tensor 1", "tensor 4"]
    assert [e.score for e in found.units[0]] == pytest.approx([9 * 1.0, 9 * 0.9, 9 * 0.9])
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DreamlabError, match="cannot read image .*broken.png"):
        examples(colour_detector(), "0", [0], [tmp_path / "broken.png"], recipe=RECIPE)


def test_inspection_of_a_callers_module_reads_its_first_convs_channels() -> None:
    """A 1-channel module without a recipe gets 1-channel images, as render gives it (not RGB at 224 px)."""
    grey = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    nn.init.constant_(grey[0].weight, 0.1)  # every channel is on for a photo (a dead map would be dropped)
    with pytest.warns(DreamlabNote, match="the photo is 40x40 px, smaller than the 224 px"):  # enlarged, said
        assert dreamlab.features(grey, "1", torch.rand(3, 40, 40)).input.shape == (1, 1, 224, 224)
    found = examples(grey, "1", [0], [torch.rand(3, 40, 60)], top=1)
    assert found.units[0][0].crop.shape[0] == 1 and found.receptive_field.side == 3
    assert "Conv2d" in dreamlab.graph(grey)


def test_an_image_that_leaves_a_unit_off_is_no_example() -> None:
    """After a ReLU a unit's map can be 0 everywhere; its argmax, the top-left corner, is not what it responds to."""
    model = nn.Sequential(colour_detector(), nn.ReLU()).eval()
    red = grey_with_square((1, 0, 0), 4, 6)
    grey = torch.full((3, 32, 48), 0.5)  # leaves both channels at 0 (after the ReLU)
    found = examples(model, "1", [0, 1], [grey, red], top=2, recipe=RECIPE)
    assert [e.image for e in found.units[0]] == ["tensor 1"]  # the red square only
    assert found.units[1] == []  # nothing blue: no example at all
    assert found.grid.columns == 1 and found.grid.tiles.shape[0] == 2
    assert found.never_on == [1] and found.grid.text["dreamlab:never_on"] == "1"
    assert found.grid.tiles[1].min() == 0.0 and (found.grid.tiles[1] == 0.8).float().mean() > 0.5  # grey, labelled
    assert "fewer photos turned the unit on" in found.grid.text["dreamlab:order"]


@pytest.mark.parametrize("view", ["features", "examples"])
def test_a_callers_fixed_size_module_without_a_recipe_is_told_how_to_say_its_size(view) -> None:
    """As render says it: the made-up recipe assumes 224 px, which LeNet's Linear head cannot take."""
    from dreamlab.models.zoo.digits import lenet_digits

    call = {"features": lambda: dreamlab.features(lenet_digits(), "conv1", "china"),
            "examples": lambda: dreamlab.examples(lenet_digits(), "conv2", [0], ["china"])}[view]
    with pytest.raises(DreamlabError, match=r"^LeNetDigits failed on a 1x224x224 input \(mat1 and mat2 .*\) and runs "
                                            r"on 28x28; for a module with a fixed input size, say it: recipe=dreamlab"
                                            r"\.Recipe\('LeNetDigits', 'custom:LeNetDigits', input_size=28, "
                                            r"channels=1\)$"):
        call()


def test_a_copy_at_another_size_or_format_is_read_once_and_a_distinct_picture_is_not(tmp_path, capsys) -> None:
    """The same picture as a PNG and as a half-size JPEG would fill two tiles of each row; a mirrored copy is
    another picture."""
    from PIL import Image

    from dreamlab.apps.cli import main

    photo = torch.full((3, 96, 144), 0.5)
    photo[0, 24:54, 36:66] = 1.0
    photo[1] = torch.linspace(0, 1, 144).expand(96, 144)  # texture, so resampling and JPEG change it a little
    full = save_png(photo, tmp_path / "a.png")  # both are read at the recipe's 32 px (shorter side)
    Image.open(full).resize((72, 48)).convert("RGB").save(tmp_path / "a_small.jpg", quality=80)
    Image.open(full).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "a_mirrored.png")
    found = examples(colour_detector(), "0", [0], tmp_path, top=3, recipe=RECIPE)
    assert found.duplicates == {"a_small.jpg": "a.png"}
    assert sorted(e.image for e in found.units[0]) == ["a.png", "a_mirrored.png"]
    small = next(r for r in found.images if r["name"] == "a_small.jpg")
    assert small["same_as"] == "a.png" and "another size or format" in small["same_picture"]
    out = tmp_path / "ex.png"
    assert main(["examples", "lenet-digits", "conv2:0", "--images", str(tmp_path),
                 "-o", str(out)]) == 0
    assert "image a_small.jpg is the same picture as a.png at another size or format; it is read once" in \
        capsys.readouterr().err


def test_a_token_layer_scores_a_unit_by_its_mean_over_the_tokens() -> None:
    from test_inspect_features import GREY, TokenNet

    bright, dark = torch.full((1, 8, 8), 0.9), torch.full((1, 8, 8), 0.1)
    found = examples(TokenNet().eval(), "mix", [0, 1], [bright, dark], top=2, recipe=GREY)
    # unit 0 is the patches' mean: 16 patches and the class token (7), averaged over the 17 tokens
    assert [e.score for e in found.units[0]] == pytest.approx([(7 + 16 * 0.9) / 17, (7 + 16 * 0.1) / 17])
    assert [e.score for e in found.units[1]] == pytest.approx([(7 - 16 * 0.1) / 17, (7 - 16 * 0.9) / 17])
    assert found.units[0][0].box == (0, 0, 8, 8) and found.receptive_field is None  # the whole image


def test_a_long_strip_is_refused_before_its_resized_copy_fills_the_memory(tmp_path) -> None:
    from PIL import Image

    Image.new("RGB", (20000, 60), (100, 50, 20)).save(tmp_path / "strip.png")
    with pytest.raises(DreamlabError, match=r"strip.png is 20000x60 pixels: with its shorter side at 28 it would be "
                                            r"9333 px long \(at most 8192\); crop it"):
        examples("lenet-digits", "conv2", [0], [tmp_path / "strip.png"], size=28)


def from_ten_pixels() -> nn.Module:
    """Takes any size from 10 px up: 3x3 (-2), 3x3 (-2), 2x2 max-pool (/2), 3x3 (-2) leave 1x1 at 10 px."""
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 4, 3)).eval()


KERNEL = r"\(Calculated padded input size per channel: .*\)"


def test_a_model_with_a_minimum_size_is_told_that_minimum_not_a_fixed_size() -> None:
    """It takes 10 px or more: a size or a recipe below that is told 10 or more (it once heard 'runs on 28x28; for a
    module with a fixed input size, say it', as for LeNet), as render words --size."""
    tiny = dreamlab.Recipe("tiny", "custom:tiny", input_size=6, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    with pytest.raises(DreamlabError, match=rf"^colours rejected a 3x8x12 input {KERNEL}; the smallest size it takes "
                                            rf"is 10: use size 10 or more \(--size 10\)$"):
        examples(from_ten_pixels(), "5", [0], ["china"], size=8, recipe=RECIPE)
    with pytest.raises(DreamlabError, match=rf"^tiny failed on a 3x6x6 input {KERNEL}; the smallest size it takes is "
                                            rf"10x10, above its recipe's input_size, 6: give a recipe with input_size "
                                            rf"10 or more, recipe=dreamlab\.Recipe\('tiny', 'custom:tiny', "
                                            rf"input_size=10, channels=3\)$"):
        examples(from_ten_pixels(), "5", [0], ["china"], recipe=tiny)


OUTPUT_TOO_SMALL = "(Given input size: (480x1x1). Calculated output size: (480x0x0). Output size is too small)"


@pytest.mark.parametrize("model, argv, message", [
    ("googlenet", ["--size", "8"],  # googlenet takes any size from 15 px: not 'set input_size = 28'
     f"googlenet rejected a 3x8x12 input {OUTPUT_TOO_SMALL}; the smallest size it takes is 15: use size 15 or more "
     f"(--size 15)"),
    ("small.toml", [],  # not 'set input_size = 224'
     f"small failed on a 3x12x12 input {OUTPUT_TOO_SMALL}; the smallest size it takes is 15x15, above its recipe's "
     f"input_size, 12: set input_size = 15 or more in small.toml"),
    ("vit.toml", [],  # a fixed size: that size, no 'or more'
     "vit failed on a 3x160x160 input (Wrong image height! Expected 224 but got 160!) and runs on 224x224: its "
     "recipe's input_size, 160, is not a size the model takes; set input_size = 224 in vit.toml"),
    ("vit_b_16", ["--size", "112"],
     "vit_b_16 takes 224-pixel images only, not size (--size) 112; leave size out, or give 224"),
])
def test_a_size_the_model_rejects_is_told_its_minimum_or_its_fixed_size(tmp_path, monkeypatch, capsys, model, argv,
                                                                         message) -> None:
    from importlib import resources

    monkeypatch.chdir(tmp_path)
    googlenet = (resources.files("dreamlab.recipes") / "googlenet.toml").read_text()
    (tmp_path / "small.toml").write_text(googlenet.replace('name = "googlenet"', 'name = "small"')
                                         .replace("input_size = 224", "input_size = 12"))
    (tmp_path / "vit.toml").write_text('name = "vit"\nbuilder = "torchvision:vit_b_16"\ninput_size = 160\n'
                                       'mean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n')
    layer = "encoder:0" if "vit" in model else "inception4c:0"
    assert main(["examples", model, layer, "--images", "china", "--weights", "none", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dreamlab: error: {message}"] and not list(tmp_path.glob("*.png"))


def test_a_locked_image_is_told_to_be_made_readable(tmp_path, monkeypatch, capsys):
    """Was '[Errno 13] Permission denied: ...; give a PNG or JPEG file' (PermissionError raised by hand: the tests
    run as root, where chmod 000 does not bite)."""
    from PIL import Image

    photo = tmp_path / "p.png"
    Image.new("RGB", (28, 28)).save(photo)

    def locked(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", locked)
    assert main(["examples", "lenet-digits", "conv2:0", "--images", str(photo), "-o", str(tmp_path / "e.png")]) == 2
    assert capsys.readouterr().err == (f"dreamlab: error: cannot read image {str(photo)!r}: permission denied; give "
                                       f"a file you can read (chmod u+r)\n")


def test_a_locked_folder_of_images_is_told_to_be_made_readable(tmp_path, monkeypatch, capsys):
    """Was 'Permission denied: DIR' with exit 1 and no what-to-try (raised by hand: the tests run as root)."""
    from pathlib import Path

    folder = tmp_path / "photos"
    folder.mkdir()

    def locked(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", locked)
    assert main(["examples", "lenet-digits", "conv2:0", "--images", str(folder), "-o", str(tmp_path / "e.png")]) == 2
    assert capsys.readouterr().err == (f"dreamlab: error: cannot read folder {str(folder)!r}: permission denied; "
                                       f"give a folder you can read (chmod u+rx)\n")
