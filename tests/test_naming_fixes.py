"""Naming fixes from a new-user walkthrough: `logit` as a gallery layer (with class names), `logit` and the model's
name in an unknown layer's hint, other tools' flag names, map sizes height first, class names in file names and
PNG text. Offline and quick: lenet-digits and tiny models, one or two steps."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from PIL import Image
from torch import nn

import dreamlab
from dreamlab.apps.cli import main
from dreamlab.apps.gallery.build import build_gallery
from dreamlab.errors import DreamlabError
from dreamlab.models.loading import LoadedModel, load_model
from dreamlab.models.recipe import Recipe

from models_fixtures import DIGIT_NAMES as NAMES


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("dreamlab: error: ") and err.count("\n") == 1, err
    return err


def text_of(path) -> dict[str, str]:
    with Image.open(path) as img:
        return dict(img.text)


# ---------------------------------------------------------------------- 1: logit as a gallery layer


def test_gallery_logit_cli_renders_the_output_layer(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["gallery", "lenet-digits", "--layers", "logit", "--channels", "0", "--steps", "1", "--out",
                 str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(layer["name"], layer["channels"], layer.get("output")) for layer in manifest["layers"]] == \
        [("fc2", 10, True)]  # a channel per class
    # lenet-digits' class names are its digits: nothing more to show
    assert [u["unit"] for u in manifest["units"]] == ["fc2:0"] and "class" not in manifest["units"][0]


def test_gallery_logit_shows_class_names(tmp_path):
    loaded = dataclasses.replace(load_model("lenet-digits"), categories=NAMES)
    out = tmp_path / "g"
    result = build_gallery(loaded, out, ["logit"], channels=[3, 4], steps=1, device="cpu", log=lambda _: None)
    units = result.manifest["units"]
    assert [(u["unit"], u["class"]) for u in units] == [("fc2:3", "three"), ("fc2:4", "four")]
    assert text_of(out / units[0]["file"])["dreamlab:class"] == "three"
    record = json.loads((out / ".units" / "fc2" / "0003.json").read_text())
    assert record["class"] == "three"
    page = (out / "index.html").read_text(encoding="utf-8")
    assert 'title="fc2:3 (three)"' in page and 'class="ch">3 three<' in page and 'alt="fc2:4 (four)"' in page
    assert (out / "fc2" / "contact_sheet.png").is_file()

    # a record written before class names were recorded still gets its name on the page
    record.pop("class")
    (out / ".units" / "fc2" / "0003.json").write_text(json.dumps(record))
    again = build_gallery(loaded, out, ["logit"], channels=[3, 4], steps=1, device="cpu", log=lambda _: None)
    assert again.skipped == 2 and [u["class"] for u in again.manifest["units"]] == ["three", "four"]


class FunctionalTail(nn.Module):
    """Logits from a function after the last module: no module's output is the model's."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1)) * 2.0


class DictOut(FunctionalTail):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return {"logits": super().forward(x)}


def tiny(model: nn.Module, categories=("cat", "dog", "cow")) -> LoadedModel:
    recipe = Recipe(name="tiny", builder="tests:FunctionalTail", weights="none", input_size=8, channels=1,
                    mean=(0.5,), std=(0.5,), transforms="small", steps=1)
    return LoadedModel(model=model.eval().requires_grad_(False), recipe=recipe, weights="none",
                       categories=categories)


def test_gallery_logit_of_a_functional_output_is_a_layer_of_its_own(tmp_path):
    torch.manual_seed(0)
    loaded, out = tiny(FunctionalTail()), tmp_path / "g"
    result = build_gallery(loaded, out, ["logit"], device="cpu", log=lambda _: None)
    assert [(layer["name"], layer["channels"], layer.get("output")) for layer in result.manifest["layers"]] == \
        [("logit", 3, True)]
    units = result.manifest["units"]
    assert [(u["unit"], u["class"], u["file"]) for u in units] == [
        ("logit:0", "cat", "logit/logit_0000.png"), ("logit:1", "dog", "logit/logit_0001.png"),
        ("logit:2", "cow", "logit/logit_0002.png")]
    text = text_of(out / "logit" / "logit_0001.png")
    assert (text["dreamlab:objective"], text["dreamlab:unit"], text["dreamlab:class"]) == ("logit:0-2", "logit:1",
                                                                                            "dog")
    # a resume that asks for another layer keeps the logit units on the page
    again = build_gallery(loaded, out, ["conv"], device="cpu", log=lambda _: None)
    assert [layer["name"] for layer in again.manifest["layers"]] == ["conv", "logit"]
    assert len(again.manifest["units"]) == 5


def test_gallery_logit_of_an_output_without_channels_is_refused(tmp_path):
    with pytest.raises(DreamlabError, match=r"^tiny's output \(dict\) is not a tensor of channels \(\[batch, N\] "
                                            r"logits or a \[batch, C, H, W\] map\), so a gallery cannot show "
                                            r"`logit` as a layer; give a module of `dreamlab layers tiny`"):
        build_gallery(tiny(DictOut()), tmp_path / "g", ["logit"], device="cpu", log=lambda _: None)
    assert not (tmp_path / "g").exists()


def test_gallery_unknown_layer_offers_logit_and_names_the_model(tmp_path, capsys):
    assert main(["gallery", "lenet-digits", "--layers", "logti", "--out", str(tmp_path / "g")]) == 2
    err = one_error_line(capsys)
    assert err.startswith("dreamlab: error: unknown layer 'logti'; close matches: logit; valid: conv1, ")
    assert ", fc2, logit; `dreamlab layers lenet-digits` lists them all" in err


def test_gallery_unknown_layer_of_a_model_built_elsewhere_names_its_recipe(tmp_path):
    with pytest.raises(DreamlabError, match=r"^unknown layer 'logti'; close matches: logit; valid: conv, fc, logit; "
                                            r"`dreamlab layers tiny` lists them all$"):
        build_gallery(tiny(FunctionalTail()), tmp_path / "g", ["logti"], device="cpu", log=lambda _: None)


# ------------------------------------------------------------- 2, 3: an unknown layer's hint in render


def test_render_unknown_layer_lists_logit_and_names_the_model(capsys):
    assert main(["render", "logti:3", "--model", "lenet-digits"]) == 2
    err = one_error_line(capsys)
    assert "close matches: logit; valid: conv1, " in err and ", fc2, logit; " in err
    assert "`dreamlab layers lenet-digits` lists them all" in err and "MODEL" not in err


def test_render_unknown_layer_names_the_recipe_file_it_was_loaded_from(named_recipe, capsys):
    # the --model default (googlenet) is not what was loaded
    assert main(["render", "logti:3", "--recipe", str(named_recipe)]) == 2
    err = one_error_line(capsys)
    assert f"`dreamlab layers {named_recipe}` lists them all" in err and "googlenet" not in err


def test_python_api_names_the_loaded_model():
    with pytest.raises(DreamlabError, match=r"`dreamlab layers lenet-digits` lists them all"):
        dreamlab.render("lenet-digits", "conv9:3", steps=1)


# ------------------------------------------------------------------------- 4: other tools' flag names


@pytest.mark.parametrize("flag, hint", [
    ("--iterations", "use --steps (dreamlab's name for --iterations)"),
    ("--iters", "use --steps (dreamlab's name for --iters)"),
    ("--n-steps", "use --steps (dreamlab's name for --n-steps)"),
    ("--num-steps", "use --steps (dreamlab's name for --num-steps)"),
    ("--num_steps", "use --steps (dreamlab's name for --num-steps)"),
    ("--n_iter", "use --steps (dreamlab's name for --n-iter)"),
    ("--learning-rate", "use --lr (dreamlab's name for --learning-rate)"),
    ("--learning_rate", "use --lr (dreamlab's name for --learning-rate)"),
    ("--iteratoins", "did you mean --steps (dreamlab's name for --iterations)?"),
    ("--batch_size", "use --batch-size (options are written with '-', not '_')"),
])
def test_render_other_tools_flag_names_get_ours(flag, hint, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["render", "conv2:3", "--model", "lenet-digits", flag, "3"])
    assert exit_.value.code == 2
    err = one_error_line(capsys)
    assert err == f"dreamlab: error: unrecognized arguments: {flag} 3; {hint} (see dreamlab render --help)\n"


def test_an_unknown_flags_value_is_not_taken_for_a_misplaced_model(capsys):
    with pytest.raises(SystemExit):
        main(["render", "conv2:3", "--model", "lenet-digits", "--frobnicate", "3"])
    assert "here the model is an option" not in one_error_line(capsys)


def test_a_sure_hint_wins_over_a_guess(capsys):
    with pytest.raises(SystemExit):
        main(["dream", "china", "--model", "lenet-digits", "--frobnicate", "3", "--num_octaves", "2"])
    assert "; use --octaves (dreamlab's name for --num-octaves) (see" in one_error_line(capsys)


# ------------------------------------------------------------------------------- 5: map sizes, height first


def test_a_position_outside_the_map_says_height_then_width():
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1))  # the map has the image's size, 12 high, 20 wide
    with pytest.raises(DreamlabError, match=r"^position 25,3 is outside layer '0' \(its map is 12 high x 20 wide at "
                                            r"the render size, or at model_size where it is set: valid x 0-19, "
                                            r"y 0-11\)$"):
        dreamlab.render(model, "0:1@25,3", steps=1, size=(12, 20), transforms="none", device="cpu")


# ------------------------------------------------------------------- 6: class names in file names and PNG text


def test_render_class_names_in_file_names_and_png_text(named_recipe, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = ["--recipe", str(named_recipe), "--steps", "1"]
    assert main(["render", "logit:three", *base]) == 0
    assert text_of(tmp_path / "named-digits_logit_3_three.png")["dreamlab:class"] == "three"
    assert main(["render", "logit:3 - logit:four", *base]) == 0
    text = text_of(tmp_path / "named-digits_logit_3_three_-_logit_4_four.png")
    assert text["dreamlab:classes"] == "3=three | 4=four" and "dreamlab:class" not in text
    assert main(["render", "logit:3-4", "--grid", *base]) == 0
    assert text_of(tmp_path / "named-digits_logit_3..4_grid.png")["dreamlab:classes"] == "3=three | 4=four"
    assert main(["render", "logit:three", "--diversity", "2", "--diversity-layer", "conv2", "--grid", *base]) == 0
    assert text_of(tmp_path / "named-digits_logit_3_three_grid.png")["dreamlab:classes"] == "3=three"
    assert main(["render", "logit:5", "--thresholds", "1", "--steps", "2", "--recipe", str(named_recipe)]) == 0
    assert text_of(tmp_path / "named-digits_logit_5_five_step0001.png")["dreamlab:class"] == "five"
    assert main(["render", "conv2:3", *base]) == 0  # plain channels keep their names
    assert (tmp_path / "named-digits_conv2_3.png").is_file()
    assert main(["render", "logit:3", "--model", "lenet-digits", "--steps", "1"]) == 0  # its names are digits
    assert (tmp_path / "lenet-digits_logit_3.png").is_file()
    assert "dreamlab:class" not in text_of(tmp_path / "lenet-digits_logit_3.png")


def test_a_class_name_is_made_safe_for_a_file_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "odd.toml"
    names = ["potter's wheel", "a/b:c d", *(str(i) for i in range(2, 10))]
    path.write_text('name = "odd"\nbuilder = "zoo:lenet_digits"\ninput_size = 28\nchannels = 1\nmean = [0.0]\n'
                    'std = [1.0]\ntransforms = "small"\ncategories = ' + json.dumps(names) + "\n")
    assert main(["render", "logit:0-1", "--recipe", str(path), "--steps", "1"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["odd_logit_0_potter_s_wheel.png",
                                                              "odd_logit_1_a_b_c_d.png"]
    assert text_of(tmp_path / "odd_logit_1_a_b_c_d.png")["dreamlab:class"] == "a/b:c d"


def test_class_names_that_differ_only_in_case(tmp_path, capsys):
    path = tmp_path / "case.toml"
    names = ["Cardigan", "cardigan", *(f"c{i}" for i in range(2, 10))]
    path.write_text('name = "case"\nbuilder = "zoo:lenet_digits"\ninput_size = 28\nchannels = 1\nmean = [0.0]\n'
                    'std = [1.0]\ntransforms = "small"\ncategories = ' + json.dumps(names) + "\n")
    loaded = load_model(path)
    assert dreamlab.parse_objective("logit:cardigan", loaded.categories).labels == ("logit:1",)  # exact case wins
    assert dreamlab.parse_objective("logit:Cardigan", loaded.categories).labels == ("logit:0",)
    assert main(["render", "logit:CARDIGAN", "--recipe", str(path), "--steps", "1"]) == 2
    assert one_error_line(capsys) == ("dreamlab: error: class name 'CARDIGAN' names 2 classes: logit:0 ('Cardigan'), "
                                      "logit:1 ('cardigan'); give the index, or the name in its exact case\n")


@pytest.mark.parametrize("objective, hint", [
    ("logit:tabby cat", "(a class name with spaces is written with '_' for them or in quotes: logit:tabby_cat or "
                        "logit:'tabby cat')"),
    ("logit:potter's wheel", "(a class name with a quote in it goes in the other quotes: logit:\"potter's wheel\")"),
])
def test_a_class_name_with_spaces_or_quotes_says_how_to_write_it(objective, hint, capsys):
    assert main(["render", objective, "--model", "lenet-digits"]) == 2
    assert hint in one_error_line(capsys)

