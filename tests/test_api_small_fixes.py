"""Python API slips told where they are written: settings at construction, sample photos everywhere."""
from __future__ import annotations

import pytest
import torch

from dreamlab import RenderSettings
from dreamlab.errors import DreamlabError
from dreamlab.io import load_image, read_photo


@pytest.mark.parametrize("fields, message", [
    ({"steps": 0}, "steps must be a whole number >= 1, got 0"),
    ({"size": 3}, "size 3 is out of range; valid: 8 to 2048 pixels"),  # as build_gallery words it
    ({"size": "28"}, "size must be a whole number >= 8 pixels (or a (height, width) pair), got '28'"),
    ({"lr": -1.0}, "lr must be a finite number > 0 up to 1000 (the learning rate; the recipes use 0.02 to 0.05), got -1.0"),
    ({"seed": 1.5}, "seed must be a whole number (an int), got 1.5"),
    ({"start_level": 1.0}, "start_level must be between 0 and 1 (exclusive), got 1.0"),
    ({"model_size": (28, 2)}, "model_size 2 is out of range; valid: 8 to 2048 pixels"),
    ({"model_size": (28, 2.5)}, "model_size must be a whole number >= 8 pixels a side, got 2.5"),
])
def test_settings_are_checked_when_made(fields, message):
    with pytest.raises(DreamlabError) as refused:
        RenderSettings(**fields)
    assert str(refused.value) == message


def test_unset_settings_are_left_to_the_recipe():
    settings = RenderSettings()
    assert settings.steps is None and settings.lr is None and settings.size is None


def test_load_image_takes_the_sample_names(tmp_path, monkeypatch):
    china = load_image("china")
    assert china.shape == (3, 427, 640) and torch.equal(china, read_photo("china"))
    monkeypatch.chdir(tmp_path)  # a file of that name in the current folder wins, as for every photo argument
    from PIL import Image

    Image.new("RGB", (5, 4), (255, 0, 0)).save(tmp_path / "china", format="PNG")
    assert load_image("china").shape == (3, 4, 5)


def test_dir_of_the_package_lists_the_public_names_it_imports_on_first_use():
    import subprocess
    import sys
    # a fresh interpreter: nothing imported yet, as a new user's `import dreamlab; dir(dreamlab)`
    shown = subprocess.run([sys.executable, "-c", "import dreamlab; print(' '.join(dir(dreamlab)))"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert {"render", "capture", "objectives", "dream", "gradcam", "attribute", "layer_table", "Recipe",
            "RenderSettings", "DreamlabError", "__version__"} <= set(shown)
    assert "importlib" not in shown and shown == sorted(shown)


def test_sizes_of_numpy_and_torch_integers_are_plain_ints_or_pairs():
    import numpy as np
    settings = RenderSettings(size=np.int64(32), model_size=[np.int32(28), 30])
    assert settings.size == 32 and type(settings.size) is int  # was kept as np.int64: an IndexError in render
    assert settings.model_size == (28, 30) and all(type(side) is int for side in settings.model_size)
    assert settings.height_width == (32, 32) and settings.model_height_width == (28, 30)
    assert RenderSettings(size=[32, 48]).size == (32, 48)


SAMPLE_AS_A_PATH = ("no such file; give a PNG/JPEG path or one of china, flower (scikit-learn's sample photos: pass "
                    "the string 'china', not a Path, for it)")


def test_a_path_object_is_a_file_even_where_its_name_is_a_sample(tmp_path, monkeypatch):
    """Path('./china') is Path('china'), and was read as the sample photo: a Path now always means a file."""
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    for read in (load_image, read_photo):
        for given in (Path("china"), Path("./china")):
            with pytest.raises(DreamlabError) as refused:
                read(given)
            assert str(refused.value) == f"cannot read image 'china': {SAMPLE_AS_A_PATH}"
        assert read("china").shape == (3, 427, 640)  # the plain string is the sample
    from PIL import Image

    Image.new("RGB", (5, 4), (255, 0, 0)).save(tmp_path / "china", format="PNG")
    assert load_image(Path("./china")).shape == read_photo(Path("china")).shape == (3, 4, 5)


def test_every_photo_argument_of_the_api_reads_a_path_as_a_file(tmp_path, monkeypatch):
    from pathlib import Path

    import dreamlab

    monkeypatch.chdir(tmp_path)
    with pytest.raises(DreamlabError) as refused:
        dreamlab.render("lenet-digits", "conv1:0", init_image=Path("china"), weights="none", steps=1, device="cpu")
    assert str(refused.value) == f"cannot read init_image 'china': {SAMPLE_AS_A_PATH}"
    for photo, guide, said in ((Path("china"), None, "image 'china'"), ("flower", Path("china"), "guide 'china'")):
        with pytest.raises(DreamlabError) as refused:
            dreamlab.dream("lenet-digits", photo, guide=guide, weights="none", steps=1, octaves=1, device="cpu")
        assert str(refused.value) == f"cannot read {said}: {SAMPLE_AS_A_PATH}"
    with pytest.raises(DreamlabError) as refused:
        dreamlab.features("lenet-digits", "conv1", Path("china"), weights="none")
    assert str(refused.value) == f"cannot read image 'china': {SAMPLE_AS_A_PATH}"
    with pytest.raises(DreamlabError, match=r"^no such file or folder 'china'; images are folders of PNG/JPEG"):
        dreamlab.examples("lenet-digits", "conv1", [0], [Path("china")], weights="none")
