"""A recipe read from a .toml file is called by that file in errors (the file is the thing to edit), a shipped or
Python-built one by its name; the file is not a setting: not a TOML key, not in the hash, equality or repr."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

import dreamlab
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.models.loading import load_model
from dreamlab.models.recipe import RECIPE_KEYS, check_recipe, load_recipe

SHIPPED = Path(dreamlab.__file__).resolve().parent.parent / "recipes" / "lenet_digits.toml"


def _recipe_file(tmp_path: Path, drop: tuple[str, ...] = (), **changes: str) -> Path:
    """The lenet-digits recipe as a file, named "t" inside, without the keys in `drop` and with `changes`."""
    keys = {*drop, *changes, "name"}
    lines = [line for line in SHIPPED.read_text().splitlines() if line.replace(" ", "").split("=")[0] not in keys]
    lines += ['name = "t"'] + [f"{key} = {value}" for key, value in changes.items()]
    path = tmp_path / "my" / "t.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_file_a_recipe_came_from_is_no_setting(tmp_path):
    path = _recipe_file(tmp_path)
    read = load_recipe(path)
    built = dataclasses.replace(load_recipe("lenet-digits"), name="t")
    assert read.source == str(path) and read.called == str(path) and built.source is None and built.called == "t"
    assert read == built and repr(read) == repr(built) and read.hash() == built.hash()
    assert load_recipe("lenet-digits").hash() == "sha256:6fdae80c9fd0062f"  # as recorded in PNGs before
    assert "source" not in RECIPE_KEYS
    assert read.for_layers(["conv2"]).source == check_recipe(read).source == str(path)
    written = tmp_path / "s.toml"
    written.write_text(SHIPPED.read_text() + 'source = "x.toml"\n')
    with pytest.raises(DreamlabError, match="unknown key 'source'"):
        load_recipe(written)


def test_errors_of_a_recipe_file_name_the_file_as_it_was_given(tmp_path, monkeypatch):
    path = _recipe_file(tmp_path, cam_layer='"nope"')
    monkeypatch.chdir(path.parent)
    with pytest.raises(DreamlabError, match=r"^unknown cam_layer of recipe \./t\.toml: 'nope'.*"
                                            r"`dreamlab layers --recipe \./t\.toml` lists them"):
        load_model("./t.toml", "none")


def test_dream_without_an_objective_names_the_recipe_file_that_has_no_default_layer(tmp_path):
    path = _recipe_file(tmp_path, drop=("default_layer",))
    photo = torch.full((1, 28, 28), 0.5)
    shown = re.escape(str(path))
    with pytest.raises(DreamlabError, match=f"^recipe '{shown}' names no default_layer; give an objective, e.g. a "
                                            f"layer from `dreamlab layers {shown}`$"):
        dreamlab.dream(str(path), photo, weights="none", steps=1, device="cpu")
    built = dataclasses.replace(load_recipe("lenet-digits"), name="t", default_layer=None)
    with pytest.raises(DreamlabError, match=r"^recipe 't' names no default_layer; give an objective, e.g. a layer "
                                            r"from dreamlab\.layer_table\(model\)$"):  # no recipe t to list
        dreamlab.dream(load_model(built, "none"), photo, steps=1, device="cpu")
    with pytest.raises(DreamlabError, match=r"^recipe 'Sequential' names no default_layer; give an objective, e.g. a "
                                            r"layer from dreamlab\.layer_table\(model\)$"):  # a module of your own
        dreamlab.dream(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), photo, steps=1, device="cpu")
    with pytest.raises(DreamlabError, match=r"^recipe 'resnet18' names no default_layer; give an objective, e.g. a "
                                            r"layer from `dreamlab layers resnet18`$"):  # a torchvision name
        dreamlab.dream("resnet18", photo, weights="none", steps=1, device="cpu")


def test_gallery_without_layers_names_the_recipe_file_that_has_no_default_layer(tmp_path, capsys):
    path = _recipe_file(tmp_path, drop=("default_layer",))
    assert main(["gallery", str(path), "--weights", "none", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert err == (f"dreamlab: error: recipe {str(path)!r} names no default layer; give layers (--layers): "
                   f"`dreamlab layers {path}` lists them\n"), err


def test_a_channel_mismatch_names_the_recipe_file(tmp_path):
    path = _recipe_file(tmp_path, channels="3", mean="[0.1, 0.1, 0.1]", std="[0.3, 0.3, 0.3]")
    with pytest.raises(DreamlabError, match=f"^recipe '{re.escape(str(path))}' gives 3-channel images, but "
                                            f"LeNetDigits's first convolution reads 1; set channels=1"):
        load_model(path, "none")
    module = load_model("lenet-digits", "none").model
    with pytest.raises(DreamlabError, match=f"^recipe '{re.escape(str(path))}' gives 3-channel images"):
        dreamlab.render(module, "conv2:0", recipe=str(path), steps=1, device="cpu")


def test_a_mean_and_std_of_the_wrong_length_names_the_file(tmp_path):
    path = _recipe_file(tmp_path, mean="[0.1, 0.2]")
    with pytest.raises(DreamlabError, match=rf"^recipe {re.escape(str(path))}: mean and std need 1 value \(channels "
                                            r"= 1\), got 2 and 1$"):
        load_recipe(path)


def test_an_input_size_the_model_cannot_take_names_the_recipe_file(tmp_path, capsys):
    """layers and gallery said 'check the recipe's input_size', render 'set input_size = 28 in the recipe': a recipe
    read from a file is fixed in that file, so they name it."""
    path = _recipe_file(tmp_path, input_size="16")
    shown = str(path)
    assert main(["layers", shown]) == 2
    assert capsys.readouterr().err.strip().endswith(f"check input_size and channels in {shown}, or wrap the model in "
                                                    f"a module that does")
    assert main(["gallery", shown, "--weights", "none", "--steps", "1", "--out", str(tmp_path / "g")]) == 2
    assert f"check input_size and channels in {shown}, or wrap" in capsys.readouterr().err
    assert main(["render", "--recipe", shown, "conv2:0", "--steps", "1", "--device", "cpu", "-o",
                 str(tmp_path / "r.png")]) == 2
    assert capsys.readouterr().err.strip().endswith(f"is not a size the model takes; set input_size = 28 in {shown}")
    path.write_text(path.read_text().replace("input_size = 16", "input_size = 28"))  # the advice followed
    assert main(["layers", shown]) == 0


def test_a_recipe_file_that_does_not_exist_says_where_it_was_looked_for_and_what_to_give(tmp_path, monkeypatch,
                                                                                          capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["render", "--recipe", "nope.toml", "conv2:0"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"dreamlab: error: recipe file 'nope.toml' does not exist (a relative path is read from {tmp_path}); give the "
        f"path of a .toml recipe file, or a shipped recipe by name: googlenet, hed-vgg16, inceptionv1, lenet-digits, "
        f"resnet50, vgg16")
    with pytest.raises(DreamlabError, match=r"^recipe file '/nope/x.toml' does not exist; give the path"):
        load_recipe("/nope/x.toml")
    assert main(["layers", "--recipe", "lenet-digits"]) == 0  # the advice followed: a shipped name
