"""Per-layer render settings in recipes: [layers."NAME"] tables, what they apply to, and their bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dreamlab import load_model, render
from dreamlab.apps.cli import main
from dreamlab.apps.gallery.build import build_gallery
from dreamlab.errors import DreamlabError, UnknownNameError
from dreamlab.models.recipe import LAYER_KEYS, Recipe, load_recipe

ROOT = Path(__file__).resolve().parents[1]
DIGITS = '''name = "digits-layers"
builder = "zoo:lenet_digits"
weights = "none"
input_size = 28
channels = 1
mean = [0.3052]
std = [0.3246]
transforms = "small"
steps = 2
lr = 0.02
'''


def recipe_file(tmp_path: Path, tables: str) -> Path:
    path = tmp_path / "digits_layers.toml"
    path.write_text(DIGITS + tables)
    return path


@pytest.fixture(scope="module")
def layered(tmp_path_factory: pytest.TempPathFactory):
    path = recipe_file(tmp_path_factory.mktemp("recipe"),
                       '[layers.conv2]\nsteps = 3\nlr = 0.1\n\n[layers.fc2]\nsteps = 5\n')
    return load_model(path)


def test_a_layers_table_sets_the_steps_and_lr_of_objectives_on_that_layer(layered) -> None:
    on_conv2 = render(layered, "conv2:0", device="cpu")
    assert on_conv2.history.shape[0] == 3
    assert (on_conv2.provenance["dreamlab:steps"], on_conv2.provenance["dreamlab:lr"]) == ("3", "0.1")
    on_conv1 = render(layered, "conv1:0", device="cpu")  # no table: the recipe's own settings
    assert (on_conv1.provenance["dreamlab:steps"], on_conv1.provenance["dreamlab:lr"]) == ("2", "0.02")


def test_the_later_table_wins_for_an_objective_on_two_layers_and_arguments_beat_tables(layered) -> None:
    both = render(layered, "conv2:0 + fc2:1", device="cpu")
    assert (both.provenance["dreamlab:steps"], both.provenance["dreamlab:lr"]) == ("5", "0.1")
    given = render(layered, "conv2:0", steps=4, lr=0.05, device="cpu")
    assert (given.provenance["dreamlab:steps"], given.provenance["dreamlab:lr"]) == ("4", "0.05")


def test_for_layers_merges_tables_in_recipe_order() -> None:
    recipe = Recipe("r", "zoo:x", steps=256, lr=0.05,
                    layers={"a": {"steps": 512, "lr": 0.1}, "b": {"steps": 128}})
    assert (recipe.for_layers(["b", "a"]).steps, recipe.for_layers(["b", "a"]).lr) == (128, 0.1)
    assert recipe.for_layers(["c"]) is recipe


def test_a_recipe_without_layers_tables_keeps_the_hash_its_gallery_recorded() -> None:
    manifest = json.loads((ROOT / "gallery" / "lenet-digits" / "manifest.json").read_text())
    assert load_recipe("lenet-digits").hash() == manifest["recipe_hash"]
    with_table = Recipe("r", "zoo:x", layers={"conv2": {"steps": 3}})
    assert with_table.hash() != Recipe("r", "zoo:x").hash()


@pytest.mark.parametrize(("tables", "expected"), [
    ("[layers.conv2]\ninput_size = 32\n",
     '[layers."conv2"]: \'input_size\' cannot be set per layer; valid: ' + ", ".join(LAYER_KEYS)),
    ("[layers.conv2]\nsteps = 0\n", '[layers."conv2"]: steps = 0 is not valid; steps must be a positive integer'),
    ("[layers.conv2]\nfourier_decay = -1\n", "fourier_decay must be a number from 0 to 4"),
    ("layers = 3\n", 'layers must be tables of per-layer settings, like [layers."features.29"]'),
])
def test_bad_layers_tables_are_refused_in_one_line(tmp_path: Path, tables: str, expected: str) -> None:
    with pytest.raises(DreamlabError) as info:
        load_recipe(recipe_file(tmp_path, tables))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_a_table_for_a_layer_the_model_lacks_names_close_matches(tmp_path: Path) -> None:
    path = recipe_file(tmp_path, "[layers.conv3]\nsteps = 3\n")
    with pytest.raises(UnknownNameError) as info:
        load_model(path)
    message = str(info.value)
    assert "'conv3'" in message and "close matches: conv1, conv2" in message
    assert f"`dreamlab layers --recipe {path}` lists them" in message


def test_the_cli_takes_a_layers_steps_for_its_snapshots(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    path = recipe_file(tmp_path, "[layers.conv2]\nsteps = 3\n")
    out = tmp_path / "u.png"
    assert main(["render", "conv2:0", "--recipe", str(path), "--out", str(out), "--thresholds", "3",
                 "--device", "cpu"]) == 0
    assert out.is_file() and (tmp_path / "u_step0003.png").is_file()
    # 3 is past the recipe's own 2 steps: refused for an objective on conv1
    assert main(["render", "conv1:0", "--recipe", str(path), "--out", str(out), "--thresholds", "3",
                 "--device", "cpu"]) == 2
    assert "thresholds must be step numbers from 1 to 2" in capsys.readouterr().err


def test_a_gallery_renders_each_layer_with_its_steps_and_records_them(tmp_path: Path) -> None:
    path = recipe_file(tmp_path, "[layers.conv2]\nsteps = 3\n")
    manifest = build_gallery(str(path), tmp_path / "g", ["conv1", "conv2"], channels=[0, 1],
                             device="cpu").manifest
    assert manifest["steps"] is None  # the layers differ
    assert {entry["name"]: entry["steps"] for entry in manifest["layers"]} == {"conv1": 2, "conv2": 3}
    assert {u["unit"]: u["steps"] for u in manifest["units"]} == {
        "conv1:0": 2, "conv1:1": 2, "conv2:0": 3, "conv2:1": 3}
    again = build_gallery(str(path), tmp_path / "g", ["conv1", "conv2"], channels=[0, 1], device="cpu")
    assert again.rendered == 0  # the records match each layer's steps: nothing to do
    with pytest.raises(DreamlabError, match="holds units made with steps=2, this run has steps=3"):
        build_gallery(str(path), tmp_path / "g", ["conv1"], channels=[0, 1], steps=3, device="cpu")


def test_layers_lists_the_model_of_a_recipe_with_a_layer_typo_so_it_can_be_fixed(tmp_path, capsys) -> None:
    path = recipe_file(tmp_path, '[layers."conv9"]\nsteps = 3\n')
    assert main(["layers", "--recipe", str(path)]) == 0  # the command the error names works
    out, err = capsys.readouterr()
    assert "conv2" in out and "fc2" in out
    assert err.startswith(f"dreamlab: note: unknown layer in recipe {path}'s [layers.\"...\"] tables: 'conv9'; "
                          "close matches: conv1, conv2") and err.rstrip().endswith("the table below lists the "
                                                                                   "model's layers")
    assert main(["render", "conv2:0", "--recipe", str(path)]) == 2  # elsewhere still an error
    assert "`dreamlab layers --recipe " in capsys.readouterr().err
