"""Bad input found by a new-user audit, checked where the library refuses it: each mistake is one line
`dreamlab: error: ...` and exit 2 from the CLI, and a DreamlabError from the Python API, before the expensive work.

Like tests/test_bad_input.py, a table holds each input with the text its error line must hold; the tests below
it cover what a table cannot (the Python API, the weights cache, what a right input still does).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image

import dreamlab.models.loading as loading
from dreamlab import render
from dreamlab.apps.cli import main
from dreamlab.attribution.api import attribute, gradcam
from dreamlab.errors import DreamlabError, WeightsError, close_matches, unknown
from dreamlab.models.recipe import load_recipe
from dreamlab.models.zoo import hed
from dreamlab.optvis.dream import octave_sizes

pytestmark = pytest.mark.usefixtures("one_thread")

LENET = ["--model", "lenet-digits", "--steps", "2", "--device", "cpu"]
RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _photo(tmp: Path, size: int = 40, mode: str = "RGB") -> str:
    Image.new(mode, (size, size), 128 if mode == "L" else (120, 60, 30)).save(tmp / "photo.png")
    return str(tmp / "photo.png")


def _digit(tmp: Path) -> str:
    return _photo(tmp, 28, "L")


def _recipe_naming(tmp: Path, builder: str) -> str:
    """recipes/lenet_digits.toml with another builder."""
    text = (RECIPES / "lenet_digits.toml").read_text()
    lines = [f'builder = "{builder}"' if line.startswith("builder =") else line for line in text.splitlines()]
    (tmp / "r.toml").write_text("\n".join(lines) + "\n")
    return str(tmp / "r.toml")


def _whole_module(tmp: Path) -> str:
    torch.save(loading.load_model("lenet-digits").model, tmp / "whole.pt")  # the module, not its state dict
    return str(tmp / "whole.pt")


def _folder(tmp: Path) -> str:
    (tmp / "adir").mkdir()
    return str(tmp / "adir")


def _not_toml(tmp: Path) -> str:
    Image.new("RGB", (4, 4)).save(tmp / "text.png")
    return str(tmp / "text.png")


# (argv, or a function of the temp folder that returns it) -> text the one error line holds
CASES = {
    # 1. a model whose output is not class scores has no top class
    "cam of an edge map": (lambda t: ["cam", "hed-vgg16", "--weights", "none", "--size", "32", "--image",
                                      _photo(t)], "hed-vgg16's output is [1, 1, 32, 32], not class scores "
                                                  "[N, classes], so there is no top class to pick; give --target, "
                                                  "e.g. edges:0"),
    "attribute of an edge map": (lambda t: ["attribute", "hed-vgg16", "--weights", "none", "--size", "32",
                                            "--image", _photo(t), "--method", "saliency"],
                                 "not class scores [N, classes]"),
    # 2. sizes and counts that would exhaust memory, and sizes a model cannot take
    "render size": (["render", "logit:3", *LENET, "--size", "100000"],
                    "--size 100000 is out of range; valid: 8 to 2048 pixels a side"),
    "bench size": (["bench", "--size", "100000", "--device", "cpu"],
                   "--size 100000 is out of range; valid: 32 to 2048 pixels"),
    "cam size": (lambda t: ["cam", "lenet-digits", "--image", _digit(t), "--size", "100000"],
                 "--size 100000 is out of range; valid: 1 to 2048 pixels"),
    "cam size the model rejects": (lambda t: ["cam", "lenet-digits", "--image", _digit(t), "--size", "64"],
                                   "lenet-digits rejected a 1x64x64 input"),
    "cam size with a target": (lambda t: ["cam", "lenet-digits", "--image", _digit(t), "--size", "64",
                                          "--target", "logit:3"], "it runs at its recipe's size, 28: use --size 28"),
    "attribute size the model rejects": (
        lambda t: ["attribute", "lenet-digits", "--image", _digit(t), "--size", "64"],
        "it runs at its recipe's size, 28: use --size 28"),
    "ig steps": (lambda t: ["attribute", "lenet-digits", "--image", _digit(t), "--method", "ig", "--steps",
                            "100000000"], "steps 100000000 is out of range; valid: 1 to 1024"),
    "smoothgrad samples": (lambda t: ["attribute", "lenet-digits", "--image", _digit(t), "--method", "smoothgrad",
                                      "--samples", "100000000"], "samples 100000000 is out of range; valid: 1 to 1024"),
    "smoothgrad noise nan": (lambda t: ["attribute", "lenet-digits", "--image", _digit(t), "--method",
                                        "smoothgrad", "--noise", "nan"], "noise must be a finite number >= 0"),
    "smoothgrad noise huge": (lambda t: ["attribute", "lenet-digits", "--image", _digit(t), "--method",
                                         "smoothgrad", "--noise", "1e9"], "noise 1e+09 is out of range; valid: 0 to 1"),
    "kernels scale": (lambda t: ["kernels", "lenet-digits", "conv1", "--scale", "100000", "-o", str(t / "k.png")],
                      "scale 100000 is out of range for 20 tiles of 5x5 weights; valid: 1 to "),
    # 3. an unknown torchvision model in a recipe, whichever weights are asked for
    "recipe names no torchvision model": (
        lambda t: ["render", "conv1:1", "--recipe", _recipe_naming(t, "torchvision:nosuch"), "--steps", "1"],
        "r.toml: 'nosuch'"),  # the file, not the name inside it
    # 5. graph of a size the model cannot take
    "graph size": (["graph", "lenet-digits", "--size", "64"],
                   "lenet-digits rejected a 1x64x64 input (mat1 and mat2 shapes cannot be multiplied"),
    # 6. a reused module in a gallery
    "gallery reused module": (lambda t: ["gallery", "resnet18", "--weights", "none", "--layers", "layer1.0.relu",
                                         "--steps", "1", "--size", "32", "--out", str(t / "g")],
                              "layer 'layer1.0.relu' runs more than once per forward pass (the module object is "
                              "reused), so its output is ambiguous; address its block 'layer1.0'"),
    # 7. paths that are not what the option takes
    "weights folder": (lambda t: ["render", "conv1:1", *LENET, "--weights", _folder(t)],
                       "is a folder, not a state-dict file"),
    "recipe folder": (lambda t: ["render", "conv1:1", "--recipe", _folder(t)],
                      "is a folder, not a TOML recipe file"),
    "recipe not toml": (lambda t: ["render", "conv1:1", "--recipe", _not_toml(t)],
                        "is not a TOML recipe file (recipe files end in .toml)"),
    "weights a whole module": (lambda t: ["render", "conv1:1", *LENET, "--weights", _whole_module(t)],
                               "it holds a pickled module (dreamlab.models.zoo.digits.LeNetDigits) rather than a "
                               "state dict; save the weights with torch.save(model.state_dict(), PATH)"),
    # 8. a photo smaller than any octave
    "dream 1x1 photo": (lambda t: ["dream", _photo(t, 1), "--model", "lenet-digits", "--octaves", "1"],
                        "the photo is 1x1 px; DeepDream needs at least 16 px a side"),
    # 9. a Fourier decay that overflows
    "fourier decay": (["render", "logit:3", *LENET, "--fourier-decay", "100"],
                      "fourier_decay 100.0 is out of range; valid: 0 to 4"),
    "recipe fourier decay": (lambda t: ["layers", "--recipe", _recipe_with(t, "fourier_decay = 5")],
                             "fourier_decay = 5 is not valid; fourier_decay must be a number from 0 to 4"),
    # 10. error texts
    "model close matches once": (["render", "x:1", "--model", "foonet"],
                                 "unknown model 'foonet'; close matches: googlenet; shipped recipes:"),
    "torchvision weights listed once": (["render", "conv1:1", "--model", "googlenet", "--weights", "FOO"],
                                        "valid: default, none, IMAGENET1K_V1; or give a local file"),
    "classes": (["render", "logit:12", *LENET], "class 12 is out of range for logit (10 classes: valid 0-9)"),
    "precision lists the valid ones": (["render", "logit:3", *LENET, "--precision", "fp16"],
                                       "unknown precision 'fp16'; close matches: bf16; valid: auto, fp32, bf16"),
}


def _recipe_with(tmp: Path, line: str) -> str:
    (tmp / "r.toml").write_text(f'name = "r"\nbuilder = "zoo:lenet_digits"\ninput_size = 28\nchannels = 1\n'
                                f'mean = [0.3]\nstd = [0.3]\n{line}\n')
    return str(tmp / "r.toml")


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """(exit status, stderr) of one command."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exit
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", list(CASES))
def test_one_line_error(name, tmp_path, monkeypatch, capsys):
    argv, text = CASES[name]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path / "cache"))  # hed-vgg16 never reads the real cache here
    code, err = run_cli(argv(tmp_path) if callable(argv) else argv, capsys)
    assert "Traceback" not in err
    assert code == 2, err
    lines = err.splitlines()
    assert lines[-1].startswith("dreamlab: error: ") and text in lines[-1], err
    assert sum(line.startswith("dreamlab: error: ") for line in lines) == 1, err
    assert "\x1b[" not in err  # no terminal codes from torch's messages


# --- what a table row cannot show ----------------------------------------------------------------------------

def test_an_edge_map_target_named_by_the_error_works(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(["cam", "hed-vgg16", "--weights", "none", "--size", "32", "--image", _photo(tmp_path),
                         "--target", "edges:0", "-o", str(tmp_path / "c.png")], capsys)
    assert code == 0, err
    assert (tmp_path / "c.png").is_file()


def test_graph_prints_no_traceback_of_its_own(tmp_path, capsys):
    code, err = run_cli(["graph", "lenet-digits", "--size", "64"], capsys)
    assert code == 2
    assert err.splitlines() == [err.strip()]  # ShapeProp's traceback is not printed
    assert err.strip().endswith("it runs at its recipe's size, 28: use --size 28")
    assert "ShapeProp" not in err and "node=" not in err


def test_graph_at_the_recipe_size_still_draws(capsys):
    assert run_cli(["graph", "lenet-digits", "--size", "28"], capsys)[0] == 0


def test_attribution_api_refuses_a_size_the_model_rejects():
    digit = torch.rand(1, 64, 64)
    # the API has no size argument: its errors name the image to pass, not --size
    with pytest.raises(DreamlabError, match=r"lenet-digits rejected a 1x64x64 input .*its recipe's size, 28: pass a "
                                            r"28x28 image \(resize yours first\)$"):
        attribute("lenet-digits", digit, "logit:3")
    with pytest.raises(DreamlabError, match=r"pass a 28x28 image \(resize yours first\)$"):
        gradcam("lenet-digits", digit, "logit:3")
    assert attribute("lenet-digits", torch.rand(1, 28, 28), "logit:3").shape == (1, 28, 28)


@pytest.mark.parametrize("options, text", [
    ({"method": "ig", "steps": 100_000_000}, "steps 100000000 is out of range; valid: 1 to 1024"),
    ({"method": "ig", "steps": 0}, "steps 0 is out of range; valid: 1 to 1024"),
    ({"method": "smoothgrad", "samples": 5000}, "samples 5000 is out of range; valid: 1 to 1024"),
    ({"method": "smoothgrad", "noise": float("nan")}, "noise must be a finite number >= 0"),
    ({"method": "smoothgrad", "noise": float("inf")}, "noise must be a finite number >= 0"),
    ({"method": "smoothgrad", "noise": -0.1}, "noise must be a finite number >= 0"),
])
def test_attribution_api_bounds_its_counts_before_the_model_loads(options, text, monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(loading, "load_model", no_load)
    monkeypatch.setattr("dreamlab.models.prepare.load_model", no_load)
    with pytest.raises(DreamlabError, match=text):
        attribute("lenet-digits", torch.rand(1, 28, 28), "logit:3", **options)


def test_render_api_bounds_size_and_fourier_decay():
    with pytest.raises(DreamlabError, match="size 4096 is out of range; valid: 8 to 2048 pixels"):
        render("lenet-digits", "logit:3", steps=1, size=(28, 4096), device="cpu")
    with pytest.raises(DreamlabError, match="fourier_decay 4.5 is out of range; valid: 0 to 4"):
        render("lenet-digits", "logit:3", steps=1, fourier_decay=4.5, device="cpu")
    with pytest.raises(DreamlabError, match="fourier_decay nan is out of range|fourier_decay must be a finite"):
        render("lenet-digits", "logit:3", steps=1, fourier_decay=float("nan"), device="cpu")


def test_kernels_scale_at_the_bound_is_taken(tmp_path):
    from dreamlab.inspect.kernels import kernels

    with pytest.raises(DreamlabError, match=r"valid: 1 to (\d+)") as refused:
        kernels("lenet-digits", "conv1", scale=100_000)
    largest = int(str(refused.value).split("valid: 1 to ")[1].split()[0])
    assert kernels("lenet-digits", "conv1", scale=8).image.shape[-1] > 8 * 5
    with pytest.raises(DreamlabError, match="out of range"):
        kernels("lenet-digits", "conv1", scale=largest + 1)


def test_octaves_of_a_photo_too_small_for_any_count():
    with pytest.raises(DreamlabError, match="the photo is 10x12 px; DeepDream needs at least 16 px a side"):
        octave_sizes(12, 10, 1, 1.4)
    with pytest.raises(DreamlabError, match=r"below 16 px a side; use octaves=1 \(--octaves 1\), or a smaller "):
        octave_sizes(20, 20, 4, 1.4)  # not 'octaves=1 or fewer': there is no fewer
    with pytest.raises(DreamlabError, match=r"use octaves=3 \(--octaves 3\) or fewer, or a smaller octave_scale"):
        octave_sizes(40, 40, 5, 1.4)
    assert octave_sizes(20, 20, 1, 1.4) == [(20, 20)]


def test_weights_and_recipe_paths_are_named_for_what_they_are(tmp_path):
    with pytest.raises(WeightsError, match="is a folder, not a state-dict file"):
        loading.load_model("lenet-digits", weights=tmp_path)
    with pytest.raises(DreamlabError, match="is a folder, not a TOML recipe file"):
        load_recipe(tmp_path)
    with pytest.raises(DreamlabError, match="unknown model 'no-such-model'"):
        load_recipe("no-such-model")  # a name that is no path stays an unknown model
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(WeightsError, match="corrupt, truncated or not a PyTorch file"):
        loading.load_model("lenet-digits", weights=tmp_path / "notes.txt")


def test_a_folder_named_like_a_model_does_not_shadow_it(tmp_path, monkeypatch):
    (tmp_path / "lenet-digits").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_recipe("lenet-digits").name == "lenet-digits"


def test_close_matches_and_valid_lists_name_each_option_once():
    assert close_matches("foonet", ["googlenet", "vgg16", "googlenet"]) == ["googlenet"]
    message = str(unknown("precision", "fp16", ("auto", "fp32", "bf16", "fp32")))
    assert message == "unknown precision 'fp16'; close matches: bf16; valid: auto, fp32, bf16"
    # when the close matches are all the options, the list is not repeated
    assert str(unknown("layer", "conv3", ["conv1", "conv2"])) == "unknown layer 'conv3'; close matches: conv1, conv2"


# --- 4. a corrupt weights cache --------------------------------------------------------------------------------

@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache folder as $DREAMLAB_CACHE, and a pip that must not run."""
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path))

    def no_pip(*args, **kwargs):
        raise AssertionError(f"fetch ran a command: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "run", no_pip)
    return tmp_path


@pytest.mark.parametrize("content", [b"garbage\n", b"PK\x03\x04truncated"])
def test_corrupt_cache_is_one_line_naming_fetch_force(cache, capsys, content):
    (cache / hed.STATE_FILE).write_bytes(content)
    code, err = run_cli(["fetch", "hed-vgg16"], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"dreamlab: error: the cached hed-vgg16 weights '{cache / hed.STATE_FILE}' are corrupt or "
                          f"truncated") and err.strip().endswith("run `dreamlab fetch hed-vgg16 --force` to fetch "
                                                                 "them again")
    with pytest.raises(WeightsError, match=r"corrupt or truncated .*dreamlab fetch hed-vgg16 --force"):
        loading.load_model("hed-vgg16")
    code, err = run_cli(["render", "features.22:1", "--model", "hed-vgg16", "--steps", "2", "--size", "64"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "--force" in err


def test_cache_of_another_model_is_refused(cache):
    torch.save({"conv.weight": torch.ones(1)}, cache / hed.STATE_FILE)
    with pytest.raises(WeightsError, match="its keys or shapes are not hed-vgg16's"):
        hed.fetch_hed()


def test_a_whole_cache_is_still_already_there(cache, capsys):
    real = Path(os.path.expanduser("~/.cache/dreamlab")) / hed.STATE_FILE
    if not real.is_file():
        pytest.skip(f"hed-vgg16 weights not in the cache ({real}): run `dreamlab fetch hed-vgg16`")
    (cache / hed.STATE_FILE).symlink_to(real)  # read through a link: the real cache is never written
    code, out = main(["fetch", "hed-vgg16"]), capsys.readouterr().out
    assert code == 0 and out.startswith("hed-vgg16: weights already in")
