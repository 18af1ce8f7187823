"""The inspection views' PNGs (kernels, features, examples) carry render's provenance and what each view read:
versions, recipe hash, random init's seed, the layer, each input image's name and sha256; `weights` spelled as
render spells it; logits by class name; each unit's example tiles from distinct images, each labelled and
located in the provenance."""
from __future__ import annotations

import hashlib
import math
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import dreamlab
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError, DreamlabNote
from dreamlab.inspect.examples import TILE, class_units, examples
from dreamlab.io import PIXELS
from dreamlab.io import sample_photo
from test_examples import colour_detector

pytestmark = pytest.mark.usefixtures("one_thread")
BASE = ("dreamlab:model", "dreamlab:weights", "dreamlab:weights_seed", "dreamlab:recipe", "dreamlab:recipe_hash",
        "dreamlab:device", "dreamlab:version", "torch:version", "torchvision:version")
CLASSES = dreamlab.Recipe("colours", "custom:colours", input_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                          categories=("red thing", "blue thing"))


def text_of(path: Path) -> dict[str, str]:
    """The PNG's text chunks, read with PIL."""
    with Image.open(path) as img:
        img.load()
        return dict(img.text)


def sha16(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def colour_classifier() -> nn.Module:
    """Two logits: red over green and blue, and blue over red and green (a 3x3 sum's maximum over positions)."""
    return nn.Sequential(*colour_detector(), nn.AdaptiveMaxPool2d(1), nn.Flatten()).eval()


def square(colour: tuple[float, float, float], top: int, left: int, height: int = 32, width: int = 48,
           size: int = 6) -> torch.Tensor:
    image = torch.full((3, height, width), 0.5)
    image[:, top:top + size, left:left + size] = torch.tensor(colour).view(3, 1, 1)
    return image


def save_photo(image: torch.Tensor, path: Path) -> Path:
    Image.fromarray((image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()).save(path)
    return path


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    """What render records for lenet-digits at random init (the keys the views must share)."""
    return dreamlab.render("lenet-digits", "conv1:0", weights="none", steps=1, size=28, device="cpu").provenance


def test_every_view_records_renders_base_provenance_and_its_layer(tmp_path, rendered) -> None:
    photo = save_photo(sample_photo("flower", "test")[:, :64, :64], tmp_path / "flower.png")
    assert main(["kernels", "lenet-digits", "conv1", "--weights", "none", "-o", str(tmp_path / "k.png")]) == 0
    assert main(["features", "lenet-digits", "conv1", "--weights", "none", "--image", str(photo), "-o",
                 str(tmp_path / "f.png")]) == 0
    assert main(["examples", "lenet-digits", "conv2:3", "--weights", "none", "--images", str(photo), "china",
                 "--top", "2", "-o", str(tmp_path / "e.png")]) == 0
    texts = {name: text_of(tmp_path / f"{name}.png") for name in ("k", "f", "e")}
    for name, text in texts.items():
        assert {key: text[key] for key in BASE} == {key: rendered[key] for key in BASE}, name
        assert text["dreamlab:weights"] == "none" and text["dreamlab:weights_seed"] == "0"
    assert texts["k"]["dreamlab:layer"] == texts["f"]["dreamlab:layer"] == "conv1"
    assert texts["k"]["dreamlab:layer_module"] == "Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))"
    assert texts["e"]["dreamlab:layer"] == "conv2" and texts["e"]["dreamlab:layer_module"].startswith("Conv2d(20, 50")
    # the features PNG names its photo and the sha256 of the file's bytes
    file_digest = sha16(photo.read_bytes())
    assert (texts["f"]["dreamlab:image"], texts["f"]["dreamlab:image_sha256"],
            texts["f"]["dreamlab:image_sha256_of"]) == ("flower.png", file_digest, "file")
    # examples: every image, a file by its bytes and a sample photo by its pixels, said which
    china = sample_photo("china", "test").numpy().astype("<f4")
    assert json.loads(texts["e"]["dreamlab:images"]) == [
        {"name": "flower.png", "sha256": file_digest, "sha256_of": "file"},
        {"name": "china", "sha256": sha16(china.tobytes()), "sha256_of": PIXELS, "source": "scikit-learn sample photo"}]
    assert texts["e"]["dreamlab:top"] == "2" and texts["e"]["dreamlab:size"] == "28"


def test_kernels_record_the_range_their_grey_levels_stand_for() -> None:
    conv = nn.Conv2d(1, 2, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.linspace(-0.5, 0.25, 18).view(2, 1, 3, 3))
    grid = dreamlab.kernels(nn.Sequential(conv), "0", shared_scale=True)
    assert grid.text["dreamlab:values"] == "-0.5 to 0.25"
    assert grid.text["dreamlab:normalization"] == "shared (0 is mid-grey)"
    assert grid.text["dreamlab:device"] == "cpu" and "dreamlab:weights_seed" not in grid.text
    assert grid.text["dreamlab:weights"] == "caller's module"


def test_a_tensor_is_recorded_by_the_sha256_of_its_pixels() -> None:
    image = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0))
    with pytest.warns(DreamlabNote, match="smaller than the 224 px"):  # a 40 px photo for a 224 px input
        result = dreamlab.features(nn.Sequential(nn.Conv2d(3, 2, 3)), "0", image)
    assert result.grid.text["dreamlab:image"] == "tensor"
    assert result.grid.text["dreamlab:image_sha256"] == sha16(image.numpy().astype("<f4").tobytes())
    assert result.grid.text["dreamlab:image_sha256_of"] == PIXELS
    assert result.grid.text["dreamlab:means"].count(",") == 1


def test_weights_none_is_random_init_as_render_takes_it_and_is_refused_with_a_module() -> None:
    """render reads weights=None, "none" and "NONE" as random init (of a fixed seed); examples does the same."""
    spelled = [examples("lenet-digits", "conv2", [1], ["china"], top=1, weights=w) for w in (None, "none", "NONE")]
    assert {e.grid.text["dreamlab:weights"] for e in spelled} == {"none"}
    assert {e.grid.text["dreamlab:weights_seed"] for e in spelled} == {"0"}
    assert len({e.units[0][0].score for e in spelled}) == 1
    module = dreamlab.load_model("lenet-digits", weights="none").model
    for call in (lambda: dreamlab.render(module, "conv2:1", weights=None, steps=1),
                 lambda: examples(module, "conv2", [1], ["china"], weights=None)):
        with pytest.raises(DreamlabError) as refused:
            call()
        assert str(refused.value).startswith("weights=None goes with a model given by name; LeNetDigits is your "
                                             "module and keeps its own weights: leave weights out")


def test_logits_are_named_by_class_as_render_reads_them() -> None:
    images = [square((1, 0, 0), 4, 6), square((0, 0, 1), 20, 30)]
    for units, expected in (("red_thing", [0]), ("'blue thing'", [1]), (["blue thing", 0], [1, 0]), ("0,1", [0, 1])):
        found = examples(colour_classifier(), "logit", units, images, top=1, recipe=CLASSES)
        assert found.unit_ids == expected, units
    assert [row[0].image for row in found.units] == ["tensor 0", "tensor 1"]
    assert found.grid.text["dreamlab:classes"] == "0=red thing | 1=blue thing"
    with pytest.raises(DreamlabError, match="^unknown class 'red'; close matches: red thing"):
        examples(colour_classifier(), "logit", "red", images, recipe=CLASSES)
    unnamed = dreamlab.Recipe("plain", "custom:plain", input_size=32, mean=(0.0,) * 3, std=(1.0,) * 3)
    with pytest.raises(DreamlabError, match=r"^class name 'red thing' given, but plain has no class names; give a "
                                            r"class index, like logit:3$"):
        examples(colour_classifier(), "logit", ["red thing"], images, recipe=unnamed)
    with pytest.raises(DreamlabError, match=r"^unit 'tabby' is a name, and the units of layer '0' are channel "
                                            r"numbers, like \[0, 12\]; class names go with layer 'logit'"):
        examples(colour_classifier(), "0", ["tabby"], images, recipe=CLASSES)
    with pytest.raises(DreamlabError, match=r"^units must be channel numbers >= 0, like \[0, 12\] or range\(8\) or "
                                            r"class names, like \['tabby'\]; got 2.5$"):
        examples(colour_classifier(), "logit", 2.5, images, recipe=CLASSES)


def test_googlenets_class_names_come_with_it_offline() -> None:
    from dreamlab.models.loading import torchvision_categories
    from dreamlab.models.recipe import load_recipe

    names = torchvision_categories(load_recipe("googlenet"))
    assert class_units("tabby", names, "googlenet") == [281]
    assert class_units("tiger_cat", names, "googlenet") == class_units("'tiger cat'", names, "googlenet") == [282]
    assert class_units("jack-o'-lantern", names, "googlenet") == [607]
    # a list, as render reads logit:tabby,285,'tiger cat'; a typo in it is named alone
    assert class_units("tabby,285,'tiger cat'", names, "googlenet") == [281, 285, 282]
    assert class_units("tabby,tiger_cat", names, "googlenet") == [281, 282]
    with pytest.raises(DreamlabError, match=r"^unknown class 'tigr cat'; close matches: tiger cat"):
        class_units("tabby,tigr_cat", names, "googlenet")


def test_the_command_line_takes_a_list_of_class_names(named_recipe, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["examples", str(named_recipe), "logit:three,4,'five'", "--images", "china", "--top", "1",
                 "-o", "ex.png"]) == 0
    assert text_of(tmp_path / "ex.png")["dreamlab:classes"] == "3=three | 4=four | 5=five"


def test_the_command_line_takes_a_logit_by_class_name(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["examples", "lenet-digits", "logit:7", "--images", "china", "--top", "1"]) == 0
    assert text_of(tmp_path / "lenet-digits_logit_7_examples.png")["dreamlab:classes"] == "7=7"
    assert main(["examples", "lenet-digits", "conv2:tabby", "--images", "china"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dreamlab: error: cannot read 'tabby' as units of 'conv2': give channel numbers like 0-15 or "
                   "0-3,8 (class names, as in logit:tabby, go with the logit)"]
    assert main(["examples", "lenet-digits", "logit:tabby", "--images", "china"]) == 2
    assert capsys.readouterr().err.startswith("dreamlab: error: unknown class 'tabby'; valid: 0, 1, 2")


def test_each_units_tiles_are_distinct_images_labelled_and_located(tmp_path) -> None:
    red = square((1, 0, 0), 8, 12, height=64, width=96, size=12)  # at 2x the recipe's 32 px
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir(), second.mkdir()
    save_photo(red, first / "red.png")
    save_photo(red, first / "copy.png")  # the same bytes under another name
    save_photo(square((1, 0, 0), 40, 70, height=64, width=96, size=12), second / "red.png")  # another red.png
    weaker = square((0.8, 0, 0), 4, 6)
    found = examples(colour_classifier(), "0", [0], [first, second, weaker, weaker], top=8, recipe=CLASSES)
    row = found.units[0]
    names = [e.image for e in row]
    assert len(names) == len(set(names)) == 3  # copy.png and the second tensor repeat images already read
    assert names == ["copy.png", str(second / "red.png"), "tensor 2"]  # the tie keeps the earlier
    assert found.duplicates == {str(first / "red.png"): "copy.png", "tensor 3": "tensor 2"}
    # each tile's source: the map position and, in the photo's own pixels, a box inside the planted square
    best = row[0]
    top, left, bottom, right = best.photo_box
    assert 8 <= top and bottom <= 20 and 12 <= left and right <= 24 and (bottom - top, right - left) == (6, 6)
    sources = json.loads(found.grid.text["dreamlab:example_sources"])
    assert sources[0][0] == {"image": best.image, "score": pytest.approx(best.score, rel=1e-5),
                             "position": list(best.position), "box": list(best.box), "photo_box": list(best.photo_box)}
    images = json.loads(found.grid.text["dreamlab:images"])  # every input, a repeat with the image it repeats
    assert [(r["name"], r.get("same_as")) for r in images] == [
        ("copy.png", None), (str(first / "red.png"), "copy.png"), (str(second / "red.png"), None), ("tensor 2", None),
        ("tensor 3", "tensor 2")]
    assert images[0]["sha256"] == images[1]["sha256"] == sha16((first / "red.png").read_bytes())
    # the image's name is written in the tile's bottom-left corner: light text on a black box
    corner = found.grid.tiles[0, :, TILE - 12:TILE - 1, 1:30]
    assert (corner == 0).float().mean() > 0.4 and (corner > 0.6).any()


def test_a_photo_smaller_than_the_input_gets_every_pixel_its_crop_covers() -> None:
    """photo_box holds the photo pixels a crop overlaps: never an empty box, even for a 1x1 photo (rounding both
    ends to the nearest pixel gave (1, 0, 1, 0) there)."""
    g = torch.Generator().manual_seed(0)
    dot, small = torch.rand(1, 1, 1, generator=g), torch.rand(1, 3, 3, generator=g)
    found = examples("lenet-digits", "conv2", list(range(10)), [dot, small], top=2)  # both resized to 28x28
    seen = set()
    for example in (e for row in found.units for e in row):
        top, left, bottom, right = example.box
        scale = (1 if example.image == "tensor 0" else 3) / 28
        clip = 1 if example.image == "tensor 0" else 3
        expected = (max(math.floor(top * scale), 0), max(math.floor(left * scale), 0),
                    min(math.ceil(bottom * scale), clip), min(math.ceil(right * scale), clip))
        assert example.photo_box == expected and expected[0] < expected[2] and expected[1] < expected[3]
        seen.add(example.image)
    assert seen == {"tensor 0", "tensor 1"}


def test_the_command_line_says_when_an_image_is_given_twice(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["examples", "lenet-digits", "conv2:3", "--images", "china", "flower", "china", "--top", "3"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dreamlab: note: image china is given more than once; it is read once"]
    text = text_of(tmp_path / "lenet-digits_conv2_3_examples.png")
    assert sorted(e.split("=")[0] for e in text["dreamlab:examples"].split(",")) == ["china", "flower"]


def test_features_default_output_names_the_photo(tmp_path, monkeypatch, capsys) -> None:
    """Two photos of one layer no longer write the same file."""
    monkeypatch.chdir(tmp_path)
    for photo in ("china", "flower"):
        assert main(["features", "lenet-digits", "conv1", "--image", photo, "--top", "2"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["lenet-digits_conv1_china_features.png",
                                                                "lenet-digits_conv1_flower_features.png"]
    assert np.asarray(Image.open(tmp_path / "lenet-digits_conv1_china_features.png")).size > 0
