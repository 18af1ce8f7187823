"""The dreamlab command line, end to end on offline models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from dreamlab.apps.cli import main
from dreamlab.io import read_png_text

FAST = ["--steps", "3", "--size", "64", "--device", "cpu"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed CLI in a fresh process (how a user runs it)."""
    return subprocess.run([sys.executable, "-m", "dreamlab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TORCH_HOME": str(cwd / "torch_home")})


def test_render_with_random_weights_writes_png_with_provenance(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["render", "inception4c:97", "--weights", "none", *FAST]) == 0
    path = tmp_path / "googlenet_inception4c_97.png"
    assert capsys.readouterr().out.strip() == "googlenet_inception4c_97.png"
    with Image.open(path) as img:
        assert img.size == (64, 64) and img.mode == "RGB"
    text = read_png_text(path)
    assert text["dreamlab:objective"] == "inception4c:97"
    assert text["dreamlab:model"] == "googlenet" and text["dreamlab:weights"] == "none"
    assert text["dreamlab:weights_seed"] == "0"  # random init is seeded, so the PNG can be made again
    assert text["dreamlab:seed"] == "0" and text["dreamlab:steps"] == "3" and text["dreamlab:size"] == "64"
    assert text["dreamlab:recipe_hash"].startswith("sha256:")
    assert text["dreamlab:version"] == "0.1.0" and text["torch:version"] == torch.__version__
    float(text["dreamlab:score"])
    assert (text["dreamlab:optimizer"], text["dreamlab:decay_power"], text["dreamlab:start_level"]) == (
        "channel-adam", "0.5", "0.5")


def test_lucids_optimization_from_the_command_line(tmp_path):
    out = tmp_path / "lucid.png"
    assert main(["render", "conv2:7", "--model", "lenet-digits", "--steps", "2", "--device", "cpu",
                 "--optimizer", "adam", "--fourier-decay", "1", "-o", str(out)]) == 0
    text = read_png_text(out)
    assert (text["dreamlab:optimizer"], text["dreamlab:decay_power"], text["dreamlab:start_level"]) == (
        "adam", "1", "0.05")


def test_same_seed_gives_byte_identical_png(tmp_path):
    outputs = []
    for name, seed in (("a.png", "3"), ("b.png", "3"), ("c.png", "4")):
        assert main(["render", "conv2:7", "--model", "lenet-digits", "--steps", "12", "--device", "cpu",
                     "--seed", seed, "-o", str(tmp_path / name)]) == 0
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


def test_random_weights_are_the_same_in_every_run(tmp_path):
    outputs = []
    for name, global_seed in (("a.png", 1), ("b.png", 2)):
        torch.manual_seed(global_seed)  # whatever state the global RNG is in
        assert main(["render", "inception4c:5", "--weights", "none", *FAST, "--seed", "3",
                     "-o", str(tmp_path / name)]) == 0
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]


def test_batch_writes_one_png_per_unit_or_a_grid(tmp_path):
    assert main(["render", "conv2:0-3", "--model", "lenet-digits", "--steps", "2", "--device", "cpu",
                 "-o", str(tmp_path / "units")]) == 0
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == [
        f"lenet-digits_conv2_{i}.png" for i in range(4)]
    assert read_png_text(tmp_path / "units" / "lenet-digits_conv2_2.png")["dreamlab:unit"] == "conv2:2"
    with Image.open(tmp_path / "units" / "lenet-digits_conv2_2.png") as img:
        assert img.mode == "L" and img.size == (28, 28)
    assert main(["render", "conv2:0-3", "--model", "lenet-digits", "--steps", "2", "--device", "cpu", "--grid",
                 "-o", str(tmp_path / "grid.png")]) == 0
    with Image.open(tmp_path / "grid.png") as img:
        assert img.size == (2 * 28 + 3 * 2, 2 * 28 + 3 * 2)
    text = read_png_text(tmp_path / "grid.png")  # the score of each unit, in the order of dreamlab:units
    assert text["dreamlab:units"] == "conv2:0 | conv2:1 | conv2:2 | conv2:3"
    alone = [read_png_text(tmp_path / "units" / f"lenet-digits_conv2_{i}.png")["dreamlab:score"] for i in range(4)]
    assert text["dreamlab:scores"].split(" | ") == alone  # the same seed: the same renders


def test_thresholds_save_snapshots(tmp_path):
    assert main(["render", "logit:3", "--model", "lenet-digits", "--steps", "6", "--device", "cpu",
                 "--thresholds", "2,4", "-o", str(tmp_path / "three.png")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three.png", "three_step0002.png", "three_step0004.png"]


def test_grid_snapshots_hold_every_batch(tmp_path):
    assert main(["render", "conv2:0-3", "--model", "lenet-digits", "--steps", "3", "--device", "cpu", "--grid",
                 "--thresholds", "2", "--batch-size", "2", "-o", str(tmp_path / "g.png")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png", "g_step0002.png"]
    with Image.open(tmp_path / "g.png") as final, Image.open(tmp_path / "g_step0002.png") as snapshot:
        assert snapshot.size == final.size == (2 * 28 + 3 * 2, 2 * 28 + 3 * 2)  # all 4 units, not the last 2


def test_ctrl_c_saves_what_exists_and_exits_130(tmp_path, monkeypatch, capsys):
    from dreamlab.optvis import engine

    original = engine._Renderer.scores
    calls = {"n": 0}

    def interrupt(self, *args):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(engine._Renderer, "scores", interrupt)
    code = main(["render", "conv2:0-1", "--model", "lenet-digits", "--steps", "100", "--device", "cpu",
                 "-o", str(tmp_path)])
    assert code == 130
    assert "interrupted after 2 steps" in capsys.readouterr().err
    assert read_png_text(tmp_path / "lenet-digits_conv2_1.png")["dreamlab:steps"] == "2"


def test_layers_table_and_json(capsys):
    assert main(["layers", "googlenet"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("inception4c "))
    from dreamlab import load_model

    params = sum(p.numel() for p in load_model("googlenet", weights="none").model.inception4c.parameters())
    assert row.split() == ["inception4c", "Inception", "512x14x14", "512", f"{params:,}"]  # no note: runs once
    assert main(["layers", "lenet-digits", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in table["layers"]}
    assert table["totals"]["params"] == 1_256_080 and table["totals"]["param_bytes"] == 4 * 1_256_080
    assert rows["conv1"]["output_shape"] == [20, 28, 28]
    assert rows["conv2"]["output_shape"] == [50, 14, 14]
    assert rows["fc2"]["output_shape"] == [10] and rows["fc2"]["params"] == 5010


@pytest.mark.parametrize("args, message", [
    (["render", "inception4x:1", "--weights", "none", *FAST],
     "dreamlab: error: unknown layer 'inception4x'; close matches: inception4a, inception4b"),
    (["render", "inception4c:600", "--weights", "none", *FAST],
     "dreamlab: error: channel 600 is out of range for layer 'inception4c' (512 channels: valid 0-511)"),
    (["render", "inception4c::1", "--weights", "none", *FAST],
     "dreamlab: error: bad objective 'inception4c::1': expected a channel number, found ':' at position 13"),
    (["render", "conv1:1", "--model", "lenet", *FAST], "dreamlab: error: unknown model 'lenet'; close matches:"),
    (["render", "conv1:1", "--model", "lenet-digits", "--param", "wavelet", *FAST],
     "dreamlab: error: unknown parameterization 'wavelet'; valid: pixel, fourier"),
    (["render", "conv1:1", "--model", "lenet-digits", "--optimizer", "sgd", *FAST],
     "dreamlab: error: unknown optimizer 'sgd'; valid: channel-adam, adam"),
    (["render", "conv1:1", "--model", "lenet-digits", "--param", "pixel", "--fourier-decay", "1", *FAST],
     "dreamlab: error: --fourier-decay applies to the Fourier parameterization only; add --param fourier"),
    (["render", "conv1:1", "--model", "lenet-digits", "--fourier-decay=-1", *FAST],
     "dreamlab: error: fourier_decay must be a finite number >= 0 (0: flat spectrum, 1: lucid's 1/f), got -1.0"),
    (["render", "conv1:1", "--model", "lenet-digits", "--compile", "fast", *FAST],
     "dreamlab: error: argument --compile: invalid choice: 'fast' (choose from 'default', 'reduce-overhead', "
     "'max-autotune', 'max-autotune-no-cudagraphs')"),
    (["render", "conv1:1", "--model", "lenet-digits", "--steps", "0"],
     "dreamlab: error: argument --steps: expected a positive integer, got '0'"),
    (["render", "conv1:1", "--model", "lenet-digits", "--weights", "missing.pt"],
     "dreamlab: error: weights file 'missing.pt' does not exist"),
    (["render", "logit:tabbby", "--weights", "none", *FAST],
     "dreamlab: error: unknown class 'tabbby'; close matches: tabby"),
    (["layers", "resnet-50"], "dreamlab: error: unknown model 'resnet-50'; close matches: resnet50"),
])
def test_errors_are_one_line_without_traceback(tmp_path, args, message):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message), lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.offline_attempt
def test_default_weights_offline_says_what_to_do(tmp_path, capsys, no_network):
    assert main(["render", "inception4c:97", *FAST, "-o", str(tmp_path / "x.png")]) == 1  # not a usage error
    captured = capsys.readouterr()
    # torch.hub's 'Downloading: ...' notice is held back until the download is under way: one line only
    [err] = captured.err.strip().splitlines()
    assert captured.out == ""
    assert err.startswith("dreamlab: error: could not download the GoogLeNet_Weights.IMAGENET1K_V1 weights")
    assert err.endswith("use weights=PATH (--weights PATH) for a local state-dict file, or weights='none' (--weights none) for random init")
    assert not (tmp_path / "x.png").exists()


def test_a_failed_download_exits_1_not_the_usage_status(tmp_path, capsys, monkeypatch):
    """torch.hub offline raises urllib's URLError: a failure of the surroundings (exit 1), not a usage error (2)."""
    import urllib.error

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    assert main(["render", "inception4c:97", *FAST, "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("dreamlab: error: could not download the GoogLeNet_Weights.IMAGENET1K_V1 weights of "
                          "googlenet ([Errno 101] Network is unreachable); use weights=PATH")
    assert not (tmp_path / "x.png").exists()


def test_a_download_under_way_says_so_on_stderr(tmp_path, capsys, monkeypatch):
    """torch.hub's notice is let through, on stderr and before its progress bar, once the download proceeds."""
    import torchvision
    from tqdm import tqdm

    def download(url, dst, *args, **kwargs):
        with tqdm(total=1, unit="B") as bar:  # writes to sys.stderr, as torch.hub's bar does
            bar.update(1)
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    assert main(["layers", "resnet18", "--weights", "DEFAULT"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith('Downloading: "https://download.pytorch.org/models/resnet18-')
    assert "100%" in captured.err and "Downloading" not in captured.out


def test_recipes_lists_shipped_recipes(capsys):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["googlenet", "hed-vgg16", "inceptionv1",
                                                       "lenet-digits", "resnet50", "vgg16"]
    # the hint's commands are ones that run
    assert "`dreamlab layers convnext_tiny`" in lines[-1]
    assert "`dreamlab render features.5:0 --model convnext_tiny`" in lines[-1]


def test_a_model_that_refuses_the_input_size_gets_one_line(tmp_path, capsys):
    # torchvision's ViT asserts a 224 px input; the standard transforms pad it to 236 (with nothing chosen, the
    # model is shown its own size instead: tests/test_auto_model_size.py)
    assert main(["render", "encoder.layers.encoder_layer_0:5", "--model", "vit_b_16", "--weights", "none",
                 "--steps", "1", "--device", "cpu", "--transforms", "standard", "-o", str(tmp_path / "v.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dreamlab: error: vit_b_16 takes 224x224 inputs only, and transforms 'standard' pad the "
                          "224x224 image to 236x236 (Wrong image height! Expected 224")
    assert err.endswith("use transforms that keep the size (transforms='small' or 'none', --transforms small or "
                        "none), or show the model each step's images resized to 224x224 (model_size=224, "
                        "--model-size 224)")
    assert main(["render", "encoder.layers.encoder_layer_0:5", "--model", "vit_b_16", "--weights", "none",
                 "--steps", "1", "--device", "cpu", "--transforms", "small", "-o", str(tmp_path / "v.png")]) == 0


GALLERY = ["gallery", "lenet-digits", "--weights", "none", "--layers", "conv1", "--steps", "3", "--device", "cpu",
           "--batch-size", "4"]


def _unit_pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "conv1").glob("conv1_*.png"))}


def test_a_random_weights_gallery_resumes_into_the_uninterrupted_one(tmp_path):
    torch.manual_seed(1)
    assert main([*GALLERY, "--channels", "0-3", "--out", str(tmp_path / "resumed")]) == 0
    torch.manual_seed(2)  # another process would start from another global RNG state
    assert main([*GALLERY, "--out", str(tmp_path / "resumed")]) == 0
    assert main([*GALLERY, "--out", str(tmp_path / "whole")]) == 0
    resumed, whole = _unit_pngs(tmp_path / "resumed"), _unit_pngs(tmp_path / "whole")
    assert len(whole) == 20 and resumed == whole
    record = json.loads((tmp_path / "whole" / ".units" / "conv1" / "0003.json").read_text())
    assert record["weights"] == "none" and record["weights_seed"] == 0


def test_a_gallery_of_unseeded_random_weights_is_not_resumed(tmp_path, capsys):
    assert main([*GALLERY, "--channels", "0-1", "--out", str(tmp_path)]) == 0
    record_path = tmp_path / ".units" / "conv1" / "0000.json"
    record = json.loads(record_path.read_text())
    del record["weights_seed"]  # as written before random init was seeded
    record_path.write_text(json.dumps(record))
    capsys.readouterr()
    assert main([*GALLERY, "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(
        f"dreamlab: error: {str(tmp_path)!r} holds units made with weights_seed=None, this run has weights_seed=0")


def test_a_gallery_resumed_with_another_batch_size_says_so(tmp_path, capsys):
    assert main([*GALLERY, "--channels", "0-3", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / ".units" / "conv1" / "0002.json").read_text())["batch_size"] == 4
    capsys.readouterr()
    assert main([*GALLERY[:-1], "2", "--channels", "0-5", "--out", str(tmp_path)]) == 0
    assert (f"dreamlab: note: {tmp_path}: units there were rendered with batch_size 4 and this run uses 2; rounding "
            f"depends on the batch size (on CPUs too), so some units can differ slightly from a run with one batch "
            f"size (gallery/README.md, Determinism); pass batch_size=4 (--batch-size 4) to match them") \
        in capsys.readouterr().err
    assert json.loads((tmp_path / ".units" / "conv1" / "0005.json").read_text())["batch_size"] == 2


class _TwoUnits(torch.nn.Module):
    """conv:0 follows the image's brightness; conv:1 has a bias no image in [0, 1] can overcome: always off."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.copy_(torch.tensor([0.0, -100.0]))
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x)).mean((2, 3))


class _StepUnits(torch.nn.Module):
    """Two units whose outputs are steps (sign + 2): never 0, and no gradient reaches the image."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)
        self.step = _Sign()

    def forward(self, x):
        return self.step(self.conv(x)).mean((2, 3))


class _Sign(torch.nn.Module):
    def forward(self, x):
        return x.sign() + 2


def _tiny_recipe(tmp_path, monkeypatch, name: str, make, layer: str):
    """A 16-px recipe `name` whose builder makes `make()`, and its path."""
    from dreamlab.models import loading

    monkeypatch.setitem(loading._BUILDERS, f"tests:{name}", lambda weights=None: make())
    recipe = tmp_path / f"{name}.toml"
    recipe.write_text(f'name = "{name}"\nbuilder = "tests:{name}"\nweights = "none"\ninput_size = 16\n'
                      f'default_layer = "{layer}"\n')
    return recipe


def test_units_no_gradient_reaches_get_a_note(tmp_path, monkeypatch, capsys):
    recipe = _tiny_recipe(tmp_path, monkeypatch, "step_units", _StepUnits, "step")
    args = ["--recipe", str(recipe), "--steps", "3", "--device", "cpu", "--transforms", "none"]
    assert main(["render", "step:0-1", *args, "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert ("dreamlab: note: step:0, step:1: the gradient reaching their images was exactly 0 at every step, so the "
            "objective never changed them and each is its start image" in err)
    assert "stayed at 0" not in err  # on (at 1 to 3) all along: not never_on's note


def test_units_that_never_turn_on_get_a_note(tmp_path, monkeypatch, capsys):
    recipe = _tiny_recipe(tmp_path, monkeypatch, "two_units", _TwoUnits, "relu")
    args = ["--recipe", str(recipe), "--steps", "20", "--device", "cpu", "--transforms", "none"]
    assert main(["render", "relu:0-1", *args, "-o", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "note: relu:1 stayed at 0 for all 20 steps: no image the optimizer reached turned it on" in err
    assert "relu:0" not in err  # the unit that came on gets no note
    assert main(["gallery", str(recipe), "--layers", "relu", "--steps", "4", "--device", "cpu",
                 "-o", str(tmp_path / "gallery")]) == 0
    assert ("note: relu:1 stayed at 0 for every step (the page marks them): no image the optimizer reached turned it on"
            in capsys.readouterr().err)


@pytest.mark.parametrize("argv, message", [
    (["render", "conv2:1", "--model", "lenet-digits", "--stesp", "4"],
     "dreamlab: error: unrecognized arguments: --stesp 4; did you mean --steps? (see dreamlab render --help)"),
    (["render", "-o", "c.png", "-logit:3", "--model", "lenet-digits"],
     "dreamlab: error: the following arguments are required: objective; a value that starts with '-' (-logit:3) "
     "goes after --: dreamlab render [OPTIONS] -- -logit:3 (see dreamlab render --help)"),
    (["render", "--compile", "logit:3"], "; --compile takes an optional MODE: put it after the positional arguments, "
                                         "or write --compile=default (see dreamlab render --help)"),
    (["render", "conv2:1", "--weights", ""], "dreamlab: error: argument --weights: an empty name"),
    (["render", "conv2:1", "--model", " "], "dreamlab: error: argument --model/-m: an empty name"),
    (["render", "conv2:1", "--init", ""], "dreamlab: error: argument --init: an empty path; give a file name"),
    (["layers", "--recipe", ""], "dreamlab: error: argument --recipe: an empty path; give a file name"),
    (["layers", ""], "dreamlab: error: argument model: an empty name"),
    (["gallery", "--model", "lenet-digits"], "dreamlab: error: unrecognized arguments: --model; here the model is "
                                             "the first argument, without --model: dreamlab gallery MODEL ..."),
    (["dream", "lenet-digits", "china"], "dreamlab: error: unrecognized arguments: china; here the model is an "
                                         "option: dreamlab dream PHOTO --model MODEL"),
    (["render", "googlenet", "inception4c:97"], "unrecognized arguments: inception4c:97; here the model is an "
                                                "option: dreamlab render OBJECTIVE --model MODEL"),
])
def test_command_line_slips_get_a_hint(argv, message, capsys):
    """The subcommand names its own help and close options; an empty path is not read as the current folder."""
    with pytest.raises(SystemExit) as exit_:  # argparse's errors exit from the parser
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("argv", [
    ["layers", "--model", "lenet-digits"],
    ["layers", "-m", "lenet-digits", "--json"],
    ["kernels", "--model", "lenet-digits", "conv1", "-o", "k.png"],
    ["kernels", "conv1", "--model", "lenet-digits", "-o", "k.png"],
])
def test_model_first_commands_take_model_as_an_option_too(argv, capsys, tmp_path, monkeypatch):
    """render and dream take --model; the commands whose model comes first accept that spelling as well."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 0
    out = capsys.readouterr().out
    if argv[0] == "layers":
        assert "conv2" in out
    else:
        assert (tmp_path / "k.png").is_file()


def test_model_given_twice_is_refused(capsys):
    assert main(["layers", "lenet-digits", "--model", "googlenet"]) == 2
    err = capsys.readouterr().err
    assert err == ("dreamlab: error: give the model once: MODEL 'lenet-digits' and --model 'googlenet' were both "
                   "given\n"), err


@pytest.mark.parametrize("argv, message", [
    (["gallery", "", "--out", "g"], "argument model: an empty name"),
    (["gallery", "lenet-digits", "--weights", "", "--out", "g"], "argument --weights: an empty name"),
    (["bench", "--peer-bench", ""], "argument --peer-bench: an empty path; give a file name"),
])
def test_empty_names_of_gallery_and_bench_are_refused(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_render_whose_log_reader_went_away_still_writes_its_images(tmp_path):
    """`dreamlab render ... 2>&1 | head -1`: the phase lines meet a closed pipe, the images are saved anyway."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    try:
        done = subprocess.run([sys.executable, "-m", "dreamlab", "render", "logit:0-1", "--model", "lenet-digits",
                               "--steps", "2", "-o", str(tmp_path)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=write_end, timeout=300)
    finally:
        os.close(write_end)
    assert done.returncode == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["lenet-digits_logit_0.png", "lenet-digits_logit_1.png"]


def test_render_from_a_weights_file_records_its_sha256(tmp_path, monkeypatch, capsys):
    """A path alone does not say which weights were read once the file is retrained: the PNG names its bytes."""
    import hashlib

    from dreamlab import load_model

    monkeypatch.chdir(tmp_path)
    state = load_model("lenet-digits").model.state_dict()
    torch.save(state, tmp_path / "mine.pt")
    assert main(["render", "conv2:1", "--model", "lenet-digits", "--weights", "mine.pt", "--steps", "2",
                 "-o", "first.png"]) == 0
    first = read_png_text(tmp_path / "first.png")
    assert first["dreamlab:weights"] == "mine.pt" and "dreamlab:weights_seed" not in first
    assert first["dreamlab:weights_sha256"] == hashlib.sha256((tmp_path / "mine.pt").read_bytes()).hexdigest()[:16]
    torch.save({k: v * 0.5 for k, v in state.items()}, tmp_path / "mine.pt")  # retrained in place
    assert main(["render", "conv2:1", "--model", "lenet-digits", "--weights", "mine.pt", "--steps", "2",
                 "-o", "second.png"]) == 0
    second = read_png_text(tmp_path / "second.png")
    assert second["dreamlab:weights"] == "mine.pt"
    assert second["dreamlab:weights_sha256"] == hashlib.sha256((tmp_path / "mine.pt").read_bytes()).hexdigest()[:16]
    assert second["dreamlab:weights_sha256"] != first["dreamlab:weights_sha256"]
    capsys.readouterr()


def test_a_note_is_printed_once_per_run_even_when_the_warning_filters_change_between(monkeypatch, capsys):
    """Python's "once" forgets what it showed whenever the filters change (an import that adds one, any
    catch_warnings): a note given again after that (a gallery's next batch, a second check of --device) is still
    printed once."""
    import argparse
    import warnings

    from dreamlab.errors import DreamlabNote

    def run(args):
        for _ in range(3):
            warnings.warn("the same note", DreamlabNote)
            warnings.filterwarnings("ignore", message="something else")  # what a library import does
        warnings.warn("another note", DreamlabNote)
        return 0

    monkeypatch.setattr("dreamlab.apps.cli._parse", lambda argv: argparse.Namespace(run=run))
    assert main(["recipes"]) == 0
    assert capsys.readouterr().err == "dreamlab: note: the same note\ndreamlab: note: another note\n"
