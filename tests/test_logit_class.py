"""A class logit of a model with class names is saved under its name, and its PNG records the class."""
from __future__ import annotations

import pytest
from PIL import Image

import dreamlab
from dreamlab.apps.cli import main
from dreamlab.optvis.classes import logit_class

from models_fixtures import DIGIT_NAMES as NAMES


@pytest.mark.parametrize("label, categories, name", [
    ("logit:3", NAMES, "three"), ("logit:3 #2", NAMES, "three"), ("logit:3", None, None),
    ("logit:3", [str(i) for i in range(10)], None),  # lenet-digits: the name says no more than the number
    ("logit:12", NAMES, None), ("conv2:3", NAMES, None), ("logit:3@1,1", NAMES, None),
])
def test_logit_class(label, categories, name):
    assert logit_class(label, categories) == name


def test_the_file_name_and_png_carry_the_class_name(named_recipe, tmp_path, capsys):
    assert main(["render", "logit:three", "--model", str(named_recipe), "--steps", "1", "--out",
                 str(tmp_path / "out") + "/"]) == 0
    path = tmp_path / "out" / "named-digits_logit_3_three.png"
    assert capsys.readouterr().out.splitlines() == [str(path)]
    with Image.open(path) as img:
        assert img.text["dreamlab:class"] == "three" and img.text["dreamlab:unit"] == "logit:3"


def test_the_module_behind_the_logits_names_its_classes_too(named_recipe, tmp_path, capsys):
    """fc2's output is lenet-digits' output: its units are the classes logit:N reads, named as gallery names them."""
    assert main(["render", "fc2:3 - fc2:4", "--model", str(named_recipe), "--steps", "1", "-o",
                 str(tmp_path / "out") + "/"]) == 0
    path = tmp_path / "out" / "named-digits_fc2_3_three_-_fc2_4_four.png"
    assert capsys.readouterr().out.splitlines() == [str(path)]
    with Image.open(path) as img:
        assert img.text["dreamlab:classes"] == "3=three | 4=four" and img.text["dreamlab:unit"] == "fc2:3 - fc2:4"
    result = dreamlab.render(str(named_recipe), "fc2:3-4", steps=1)
    assert result.class_layer == "fc2" and result.class_names == ["three", "four"]
    hidden = dreamlab.render(str(named_recipe), "fc1:3", steps=1)  # not the output: no class
    assert hidden.class_layer is None and hidden.class_names == [None]


@pytest.fixture()
def forwards(monkeypatch) -> list[int]:
    """[the forwards of every model load_model loads from now on]."""
    from dreamlab.models import loading

    count, load = [0], loading.load_model

    def counted(*args, **kwargs):
        loaded = load(*args, **kwargs)
        loaded.model.register_forward_pre_hook(lambda module, inputs: count.__setitem__(0, count[0] + 1))
        return loaded

    monkeypatch.setattr(loading, "load_model", counted)
    return count


def test_the_command_line_finds_the_class_layer_with_the_forward_render_runs_for_it(named_recipe, tmp_path,
                                                                                    forwards):
    """`dreamlab render` names its files by the class layer before the render, and render() finds it too: one
    forward answers both, so the command runs the model as often as render() does."""
    from dreamlab.models import loading

    result = dreamlab.render(loading.load_model(str(named_recipe)), "fc2:3 - fc2:4", steps=2)
    assert result.class_layer == "fc2"
    by_render, forwards[0] = forwards[0], 0
    assert main(["render", "fc2:3 - fc2:4", "--model", str(named_recipe), "--steps", "2", "-o",
                 str(tmp_path / "out") + "/"]) == 0
    assert (tmp_path / "out" / "named-digits_fc2_3_three_-_fc2_4_four.png").exists()
    assert forwards[0] == by_render == 6  # the class layer, the units' check, 2 steps, the start and end scores


def test_the_python_result_knows_the_class_names(named_recipe, tmp_path):
    result = dreamlab.render(str(named_recipe), "logit:3-4", steps=1)
    assert result.class_names == ["three", "four"]
    with Image.open(result.save(tmp_path / "four.png", index=1)) as img:
        assert img.text["dreamlab:class"] == "four"
    plain = dreamlab.render("lenet-digits", "logit:3", steps=1)
    assert plain.class_names == [None] and "dreamlab:class" not in plain.unit_text(0)


def test_an_accented_class_name_keeps_its_letters_in_the_file_name(tmp_path, capsys):
    recipe = tmp_path / "accents.toml"
    recipe.write_text('name = "accents"\nbuilder = "zoo:lenet_digits"\ninput_size = 28\nchannels = 1\n'
                      'mean = [0.0]\nstd = [1.0]\ntransforms = "small"\ncategories = ['
                      + ", ".join(f'"{n}"' for n in [*NAMES[:3], "crème brûlée", *NAMES[4:]]) + "]\n")
    assert main(["render", "logit:3", "--model", str(recipe), "--steps", "1", "--out", str(tmp_path) + "/"]) == 0
    path = tmp_path / "accents_logit_3_creme_brulee.png"
    assert capsys.readouterr().out.splitlines() == [str(path)]
    with Image.open(path) as img:
        assert img.text["dreamlab:class"] == "crème brûlée"  # the PNG keeps the name as the weights spell it
