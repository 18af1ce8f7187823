"""`dreamlab gallery` takes render's optimization options (--param, --optimizer, --lr, --fourier-decay,
--transforms): they reach the renders, are recorded, and a resume with other values is refused."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dreamlab.apps.cli import build_parser, main
from dreamlab.apps.gallery.build import build_gallery
from dreamlab.apps.gallery.resume import OPTION_KEYS
from dreamlab.errors import DreamlabError, DreamlabNote

BASE = ["gallery", "lenet-digits", "--layers", "conv2", "--channels", "0-1", "--steps", "2", "--device", "cpu"]
MACO = ["--param", "maco", "--optimizer", "adam", "--lr", "0.3"]
RECIPES = Path(__file__).resolve().parents[1] / "recipes"
FLAGS = ("--lr", "--optimizer", "--fourier-decay", "--param", "--transforms")


def _gallery(out, *args: str) -> int:
    return main([*BASE, "--out", str(out), *args])


def _records(out) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / ".units" / "conv2").glob("*.json"))]


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def test_the_options_are_render_s_own_definitions():
    def actions(command: str) -> dict:
        parser = build_parser([command]).chosen
        return {flag: (a.dest, a.type, a.default, a.metavar, a.help) for a in parser._actions
                for flag in a.option_strings if flag in FLAGS}

    assert actions("gallery") == actions("render") and len(actions("gallery")) == len(FLAGS)


def test_maco_options_reach_the_renders_and_are_recorded(tmp_path, capsys):
    out = tmp_path / "g"
    assert _gallery(out, *MACO) == 0
    with Image.open(out / "conv2" / "conv2_0001.png") as png:
        text = dict(png.info)
    assert (text["dreamlab:param"], text["dreamlab:optimizer"], text["dreamlab:lr"]) == ("maco", "adam", "0.3")
    assert text["dreamlab:transforms"] == "small"  # the recipe's, left alone
    # no fourier_decay: it shapes the Fourier parameterization only
    assert [{k: r[k] for k in OPTION_KEYS if k in r} for r in _records(out)] == \
        [{"param": "maco", "optimizer": "adam", "lr": 0.3, "transforms": "small"}] * 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["param"], manifest["optimizer"], manifest["lr"]) == ("maco", "adam", 0.3)
    assert "fourier_decay" not in manifest  # it shapes the Fourier parameterization only
    page = (out / "index.html").read_text()
    assert "<dt>param</dt><dd title=\"maco\">maco</dd>" in page
    capsys.readouterr()
    assert _gallery(out, *MACO) == 0  # the same values resume
    assert "2 already done" in capsys.readouterr().err


def test_lucid_settings_record_the_fourier_decay(tmp_path):
    out = tmp_path / "g"
    assert _gallery(out, "--optimizer", "adam", "--fourier-decay", "1", "--transforms", "none") == 0
    with Image.open(out / "conv2" / "conv2_0000.png") as png:
        assert (png.info["dreamlab:decay_power"], png.info["dreamlab:transforms"]) == ("1", "none")
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["param"], manifest["fourier_decay"], manifest["transforms"]) == ("fourier", 1.0, "none")


@pytest.mark.parametrize("args, key, found, asked", [
    ([*MACO[:-1], "0.2"], "lr", 0.3, 0.2),
    (["--param", "fourier", *MACO[2:]], "param", "maco", "fourier"),
    (["--param", "maco", "--lr", "0.3"], "optimizer", "adam", "channel-adam"),
    (["--transforms", "none", *MACO], "transforms", "small", "none"),
])
def test_a_resume_with_another_value_is_refused_naming_it(tmp_path, capsys, args, key, found, asked):
    out = tmp_path / "g"
    assert _gallery(out, *MACO) == 0
    capsys.readouterr()
    assert _gallery(out, *args) == 2
    assert _error(capsys) == (f"dreamlab: error: {str(out)!r} holds units made with {key}={found!r} (--{key} "
                              f"{found}), this run has {key}={asked!r}; pass {key}={found!r} (--{key} {found}) to "
                              f"match them, or use another out folder (--out), or overwrite=True (--overwrite) to "
                              f"replace them")
    assert _gallery(out, *args, "--overwrite") == 0
    assert all(r["param"] == ("fourier" if "fourier" in args else "maco") for r in _records(out))


def test_a_folder_from_before_the_options_resumes_at_the_recipe_s_values(tmp_path, capsys):
    out = tmp_path / "g"
    assert _gallery(out) == 0
    for path in (out / ".units" / "conv2").glob("*.json"):  # as an older dreamlab wrote them
        record = json.loads(path.read_text())
        path.write_text(json.dumps({k: v for k, v in record.items() if k not in OPTION_KEYS}))
    capsys.readouterr()
    assert _gallery(out) == 0
    assert "0 rendered now, 2 already done" in capsys.readouterr().err
    assert _gallery(out, "--lr", "0.02", "--param", "fourier") == 0  # the recipe's values, given
    capsys.readouterr()
    assert _gallery(out, "--lr", "0.05") == 2
    assert "holds units made with lr=0.02 (--lr 0.02), this run has lr=0.05;" in _error(capsys)


@pytest.mark.parametrize("args", [
    ["--optimizer", "sgd"], ["--param", "nope"], ["--transforms", "nope"], ["--lr", "0"], ["--lr", "2000"],
    ["--lr", "nan"], ["--fourier-decay", "5"], ["--param", "pixel", "--fourier-decay", "1"],
    ["--param", "maco", "--fourier-decay", "1"], ["--lr", "x"], ["--lr", "-1"], ["--steps", "0"], ["--size", "3"],
    ["--size", "5000"], ["--precision", "fp16"],
])
def test_bad_values_get_render_s_texts(tmp_path, capsys, args):
    assert _status([*BASE, "--out", str(tmp_path / "g"), *args]) == 2
    gallery_error = _error(capsys)
    assert _status(["render", "conv2:0", "--model", "lenet-digits", "--steps", "2", "--device", "cpu", "-o",
                    str(tmp_path / "r.png"), *args]) == 2
    assert _error(capsys).replace("dreamlab render", "dreamlab gallery") == gallery_error
    assert not (tmp_path / "g" / ".units").exists()  # refused before any work


def _status(argv: list[str]) -> int:
    """main's exit status, also where argparse exits (a value of the wrong type)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def test_fourier_decay_is_refused_where_a_layer_renders_another_parameterization(tmp_path):
    # build_gallery serves Python and the CLI: the keyword, with its flag
    with pytest.raises(DreamlabError, match=r"^fourier_decay=1.0 \(--fourier-decay\) applies to the Fourier "
                                            r"parameterization only, and layer conv2 renders with param 'pixel': give "
                                            r"param='fourier' \(--param fourier\), or leave fourier_decay out$"):
        build_gallery("lenet-digits", tmp_path / "g", ["conv2"], steps=1, device="cpu", param="pixel",
                      fourier_decay=1.0)
    with pytest.raises(DreamlabError, match="^a gallery takes optimizer by name"):
        build_gallery("lenet-digits", tmp_path / "g", ["conv2"], steps=1, device="cpu", optimizer=lambda p: p)



@pytest.mark.parametrize("preset", ["jitter", "standard"])
def test_a_preset_that_pads_past_a_fixed_size_model_is_refused_before_the_folder(tmp_path, capsys, preset):
    # lenet-digits ends in a fixed-size linear layer: 28 px only; jitter pads to 36, standard to 40
    grown = {"jitter": 36, "standard": 40}[preset]
    assert _gallery(tmp_path / "g", "--transforms", preset) == 2
    assert _error(capsys) == (f"dreamlab: error: lenet-digits does not take the {grown}x{grown} images that transforms "
                              f"'{preset}' (--transforms {preset}) make of its 28x28 ones by padding; valid for this "
                              f"model: transforms='small' or 'none' (--transforms small or none), which keep the size")
    assert not (tmp_path / "g").exists()  # refused before the folder is made
    with pytest.raises(DreamlabError, match=f"^lenet-digits does not take the {grown}x{grown} images"):
        build_gallery("lenet-digits", tmp_path / "p", ["conv2"], steps=1, device="cpu", transforms=preset)
    assert not (tmp_path / "p").exists()
    assert _gallery(tmp_path / "s", "--transforms", "small") == 0  # what it names as valid works


def test_render_names_the_presets_a_fixed_size_model_takes(tmp_path, capsys):
    assert _status(["render", "conv2:0", "--model", "lenet-digits", "--transforms", "jitter", "--steps", "2",
                    "--device", "cpu", "-o", str(tmp_path / "r.png")]) == 2
    assert _error(capsys).startswith("dreamlab: error: lenet-digits takes 28x28 inputs only, and transforms 'jitter' "
                                     "pad the 28x28 image to 36x36 (")
    assert not (tmp_path / "r.png").exists()
    # the two ways out it names both work
    for way_out in (["--transforms", "small"], ["--transforms", "jitter", "--model-size", "28"]):
        assert _status(["render", "conv2:0", "--model", "lenet-digits", "--steps", "2", "--device", "cpu", "-o",
                        str(tmp_path / "r.png"), *way_out]) == 0


@pytest.mark.parametrize("given", [{"steps": 0}, {"size": 3}, {"size": 5000}, {"lr": 0}, {"lr": -1}])
def test_build_gallery_refuses_what_render_refuses_in_its_words_before_the_folder(tmp_path, given):
    import dreamlab

    with pytest.raises(DreamlabError) as by_render:
        dreamlab.render("lenet-digits", "conv2:0", device="cpu", **given)
    with pytest.raises(DreamlabError) as by_gallery:
        build_gallery("lenet-digits", tmp_path / "g", ["conv2"], device="cpu", **given)
    assert str(by_gallery.value) == str(by_render.value)
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("given, message", [
    ({"seed": 1.5}, "seed must be a whole number (an int), got 1.5"),  # was rendered as seed 1
    ({"seed": True}, "seed must be a whole number (an int), got True"),
    ({"batch_size": 0}, "batch_size (--batch-size) must be a whole number >= 1 (units per render call; None: 64 on "
                        "cuda, 16 on cpu), got 0"),  # was taken as the default
    ({"batch_size": 1.5}, "batch_size (--batch-size) must be a whole number >= 1"),
    ({"compile": "nope"}, "unknown compile mode 'nope'; valid: default, reduce-overhead"),  # was after the folder
])
def test_build_gallery_checks_its_render_arguments_before_the_folder(tmp_path, given, message):
    with pytest.raises(DreamlabError) as refused:
        build_gallery("lenet-digits", tmp_path / "g", ["conv2"], steps=1, device="cpu", channels=[0], **given)
    assert str(refused.value).startswith(message)
    assert not (tmp_path / "g").exists()


def test_the_flags_render_and_gallery_share_read_and_default_alike():
    """--weights said less in gallery's help ('PATH'), and --size's range was render's only."""
    shared = ("--weights", "--steps", "--seed", "--diversity-weight")  # --tensorboard-every: per batch in a gallery

    def actions(command: str) -> dict:
        parser = build_parser([command]).chosen
        return {flag: (a.dest, a.type, a.default, a.help) for a in parser._actions
                for flag in a.option_strings if flag in shared}

    assert actions("gallery") == actions("render") and len(actions("gallery")) == len(shared)
    sizes = {command: next(a for a in build_parser([command]).chosen._actions if "--size" in a.option_strings).help
             for command in ("render", "gallery")}
    assert all("8 to 2048" in text for text in sizes.values()), sizes


@pytest.mark.parametrize("size, said", [
    ("96x128", "a gallery's images are square: give one side in pixels (e.g. 128), got '96x128'"),  # render takes it
    ("0", "expected positive pixels, one side (224), got '0'"),
])
def test_gallery_size_says_its_images_are_square(tmp_path, capsys, size, said):
    assert _status([*BASE, "--out", str(tmp_path / "g"), "--size", size]) == 2
    assert _error(capsys) == f"dreamlab: error: argument --size: {said} (see dreamlab gallery --help)"


def test_a_recipe_s_padding_preset_for_a_fixed_size_model_renders_at_its_size(tmp_path):
    # a [layers."logit"] table's preset reaches render as the gallery's override, which render refused at the first
    # batch (after the folder was made) as the caller's choice; the gallery now shows the model its own size, as
    # render does for logit:N and for a recipe's other presets (conv2's own table here)
    recipe = tmp_path / "padded.toml"
    recipe.write_text((RECIPES / "lenet_digits.toml").read_text(encoding="utf-8")
                      + '\n[layers."conv2"]\ntransforms = "jitter"\n\n[layers."logit"]\ntransforms = "standard"\n')
    said: list[str] = []
    with pytest.warns(DreamlabNote, match="the transforms' padding grows the image; the model sees each step's "
                                          "images resized to 28x28"):  # render's own, for conv2
        result = build_gallery(recipe, tmp_path / "g", ["conv2", "fc2"], channels=[0, 1], steps=2, device="cpu",
                               log=said.append)
    assert result.rendered == 4
    assert ('dreamlab: note: lenet-digits takes 28x28 inputs only, and transforms \'standard\' (its recipe\'s '
            '[layers."logit"] table, for layer fc2) pad the image to 40x40; the model sees each step\'s images '
            'resized to 28x28 (as model_size=28 does; recorded as dreamlab:model_size)') in said
    for layer, preset in (("conv2", "jitter"), ("fc2", "standard")):
        with Image.open(tmp_path / "g" / layer / f"{layer}_0000.png") as png:
            assert (png.size, png.info["dreamlab:transforms"], png.info["dreamlab:model_size"]) == \
                ((28, 28), preset, "28")
        assert {json.loads(p.read_text())["transforms"] for p in (tmp_path / "g" / ".units" / layer).glob("*.json")} \
            == {preset}
    # a resume with nothing left to render says only what it says for any other layer: all done
    again: list[str] = []
    assert build_gallery(recipe, tmp_path / "g", ["conv2", "fc2"], channels=[0, 1], steps=2, device="cpu",
                         log=again.append).rendered == 0
    assert again == [f"{tmp_path / 'g'}: 4 units asked for, in 2 batches, 4 already done"]
    # one that renders the logit layer's units says it again
    more: list[str] = []
    assert build_gallery(recipe, tmp_path / "g", ["fc2"], channels=[0, 1, 2], steps=2, device="cpu",
                         log=more.append).rendered == 1
    assert sum("its recipe's [layers.\"logit\"] table, for layer fc2" in line for line in more) == 1
    # a preset given for the gallery is still refused before the folder is made, over the recipe's too
    with pytest.raises(DreamlabError, match="^lenet-digits does not take the 36x36 images that transforms 'jitter'"):
        build_gallery(recipe, tmp_path / "h", ["fc2"], steps=2, device="cpu", transforms="jitter")
    assert not (tmp_path / "h").exists()


def test_a_transparent_gallery_records_alpha_shows_a_checkerboard_and_refuses_an_opaque_resume(tmp_path, capsys):
    out = tmp_path / "g"
    assert _gallery(out, "--alpha") == 0
    with Image.open(out / "conv2" / "conv2_0000.png") as png:
        assert png.mode == "LA" and png.info["dreamlab:alpha"]  # lenet-digits is grey: grey + alpha
    with Image.open(out / "conv2" / "contact_sheet.png") as sheet:
        assert sheet.mode in ("L", "RGB")  # the sheet lays the units over grey, as a resume reads them back
    assert [(r["alpha"], r["alpha_weight"]) for r in _records(out)] == [(True, 1.0)] * 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["alpha"], manifest["alpha_weight"]) == (True, 1.0)
    assert '<body class="pixelated alpha">' in (out / "index.html").read_text()
    capsys.readouterr()
    assert _gallery(out, "--alpha", "--alpha-weight", "1") == 0  # the default, named, resumes
    assert "2 already done" in capsys.readouterr().err
    assert _gallery(out) == 2
    assert _error(capsys) == (f"dreamlab: error: {str(out)!r} holds units made with alpha=True (--alpha), this run "
                              f"has alpha=False; pass alpha=True (--alpha) to match them, or use another out folder "
                              f"(--out), or overwrite=True (--overwrite) to replace them")
    assert _gallery(out, "--alpha", "--alpha-weight", "2") == 2
    assert "holds units made with alpha_weight=1.0 (--alpha-weight 1.0), this run has alpha_weight=2.0;" in \
        _error(capsys)


def test_an_opaque_gallery_records_no_alpha_and_refuses_a_transparent_resume(tmp_path, capsys):
    out = tmp_path / "g"
    assert _gallery(out) == 0
    assert all("alpha" not in r for r in _records(out))
    assert "alpha" not in json.loads((out / "manifest.json").read_text())
    assert '<body class="pixelated">' in (out / "index.html").read_text()
    capsys.readouterr()
    assert _gallery(out, "--alpha") == 2
    assert "holds units made with alpha=False (no --alpha), this run has alpha=True;" in _error(capsys)
    assert _gallery(out, "--alpha-weight", "2") == 2
    assert "alpha_weight=2.0 weighs the transparency penalty of a transparent render, and alpha is off" in \
        _error(capsys)


def test_a_fourier_decay_of_0_stays_in_the_manifest_though_it_equals_false(tmp_path):
    out = tmp_path / "g"
    assert _gallery(out, "--fourier-decay", "0") == 0
    assert json.loads((out / "manifest.json").read_text())["fourier_decay"] == 0.0
