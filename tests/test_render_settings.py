"""RenderSettings and render()'s input checks: every bad argument is one line naming it and what is valid (#10)."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from dreamlab import render
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.models.recipe import load_recipe
from dreamlab.optvis.settings import RenderSettings, resolve_settings

from models_fixtures import TinyNet

pytestmark = pytest.mark.usefixtures("one_thread")


FAST = dict(steps=2, size=16, device="cpu", transforms="none")

BAD = [
    ({"batch_size": -1}, "batch_size must be a whole number >= 1 (units optimized at once; None: all), got -1"),
    ({"batch_size": 1.5}, "batch_size must be a whole number >= 1"),
    ({"thresholds": ["a"]}, "thresholds must be step numbers from 1 to 2 (the render's steps), got ['a']"),
    ({"thresholds": (0, 2)}, "thresholds must be step numbers from 1 to 2 (the render's steps), got (0, 2)"),
    ({"thresholds": [3]}, "thresholds must be step numbers from 1 to 2"),
    ({"thresholds": 2}, "thresholds must be step numbers from 1 to 2"),
    ({"steps": 2.7}, "steps must be a whole number >= 1, got 2.7"),
    ({"steps": 0}, "steps must be a whole number >= 1, got 0"),
    ({"steps": True}, "steps must be a whole number >= 1, got True"),
    ({"lr": math.nan}, "lr must be a finite number > 0 up to 1000 (the learning rate; the recipes use 0.02 to 0.05), got nan"),
    ({"lr": math.inf}, "lr must be a finite number > 0 up to 1000 (the learning rate; the recipes use 0.02 to 0.05), got inf"),
    ({"lr": 0.0}, "lr must be a finite number > 0"),
    ({"lr": "fast"}, "lr must be a finite number > 0 up to 1000 (the learning rate; the recipes use 0.02 to 0.05), got 'fast'"),
    ({"fourier_decay": math.nan}, "fourier_decay must be a finite number >= 0 (0: flat spectrum, 1: lucid's 1/f), "
                                  "got nan"),
    ({"fourier_decay": -math.inf}, "fourier_decay must be a finite number >= 0"),
    ({"fourier_decay": -1}, "fourier_decay must be a finite number >= 0"),
    ({"start_level": 1.0}, "start_level must be between 0 and 1 (exclusive), got 1.0"),
    ({"init_sd": math.nan}, "init_sd must be a finite number >= 0"),
    ({"seed": "1"}, "seed must be a whole number (an int), got '1'"),
    ({"seed": 1.5}, "seed must be a whole number"),
    ({"size": 4}, "size 4 is out of range; valid: 8 to 2048 pixels"),  # as build_gallery and the CLI say it
    ({"size": (48,)}, "size must be an int or (height, width), got (48,)"),
    ({"size": (48, 6.5)}, "size must be a whole number >= 8 pixels a side, got 6.5"),
    ({"param_options": {"sd": 0.1}}, "render() takes no keyword 'param_options'; param_options became typed settings: fourier_decay, start_level, init_sd"),
    ({"stpes": 3}, "render() takes no keyword 'stpes'; close matches: steps"),
    ({"param": "fourir"}, "unknown parameterization 'fourir'; close matches: fourier"),
    ({"param": 3}, "param must be a name (pixel, fourier, maco), an ImageParam module or a factory returning one, got int"),
    ({"optimizer": 3}, "optimizer must be a name (channel-adam, adam) or a factory params -> torch.optim.Optimizer"),
    ({"transforms": [1]}, "transforms must be a preset name (standard, small, jitter, none), or callables"),
    ({"transforms": "standart"}, "unknown transforms preset 'standart'; close matches: standard"),
    ({"precision": "fp8"}, "unknown precision 'fp8'"),
    ({"compile": "fastest"}, "unknown compile mode 'fastest'"),
    ({"compile": True, "transforms": [lambda x: x]}, "compile works with the named transforms presets only"),
    ({"decorrelate": "yes"}, "decorrelate must be True or False, got 'yes'"),
    ({"color_matrix": torch.eye(2)}, "color_matrix must be 3x3, got shape [2, 2]"),
    ({"units": ["a"]}, "units must be indices into the objective's 2 units (0-1), got ['a']"),
    ({"init_image": torch.rand(2, 3, 8, 8), "units": [0]}, "init_image holds 2 images for 1 unit(s); give one image "
                                                           "for all units or one per unit"),
    ({"init_image": torch.rand(1, 1, 3, 8, 8)}, "init_image must be [C,H,W] (or [H,W] grey, or [B,C,H,W] one per "
                                                "unit), got shape [1, 1, 3, 8, 8]"),
    ({"init_image": torch.rand(5, 8, 8)}, "init_image has 5 channels (shape [1, 5, 8, 8], read as [B,C,H,W]); this "
                                          "model takes 3"),
    ({"init_image": torch.rand(8, 8, 3)}, "init_image has 8 channels (shape [1, 8, 8, 3], read as [B,C,H,W]); this "
                                          "model takes 3; channels last (NumPy/PIL's layout): pass "
                                          "init_image.permute(2, 0, 1)"),
    ({"init_image": torch.rand(4, 8, 8)}, "init_image has 4 channels (shape [1, 4, 8, 8], read as [B,C,H,W]); this "
                                          "model takes 3; 4 channels (RGBA: the alpha channel is not read): pass "
                                          "init_image[:3]"),
    ({"init_image": torch.rand(2, 4, 8, 8)}, "init_image has 4 channels (shape [2, 4, 8, 8], read as [B,C,H,W]); "
                                             "this model takes 3; 4 channels (RGBA: the alpha channel is not read): "
                                             "pass init_image[:, :3]"),
    ({"init_image": torch.rand(2, 8, 8, 3)}, "init_image has 8 channels (shape [2, 8, 8, 3], read as [B,C,H,W]); "
                                             "this model takes 3; channels last (NumPy/PIL's layout): pass "
                                             "init_image.permute(0, 3, 1, 2)"),
    ({"init_image": [[0.5]]}, "init_image must be a torch tensor [C, H, W] or [B, C, H, W] in [0, 1], got list"),
    ({"settings": {"steps": 2}}, "settings must be a RenderSettings, got dict"),
]


@pytest.mark.parametrize(("given", "message"), BAD, ids=[next(iter(g)) + str(i) for i, (g, _) in enumerate(BAD)])
def test_bad_render_arguments_are_one_line_errors(given, message):
    args = {**FAST, **given}
    with pytest.raises(DreamlabError) as caught:
        render(TinyNet(), "conv2:0-1", **args)
    text = str(caught.value)
    assert text.startswith(message), text
    assert "\n" not in text


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--lr", "nan", "dreamlab: error: lr must be a finite number > 0 up to 1000 (the learning rate; the recipes use 0.02 to 0.05), got nan"),
    ("--lr", "inf", "dreamlab: error: lr must be a finite number > 0 up to 1000 (the learning rate; the recipes use 0.02 to 0.05), got inf"),
    ("--fourier-decay", "nan", "dreamlab: error: fourier_decay must be a finite number >= 0"),
])
def test_the_cli_maps_to_the_same_checks(capsys, option, value, message):
    code = main(["render", "conv2:0", "--model", "lenet-digits", "--steps", "1", "--device", "cpu", option, value])
    assert code == 2
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if "error" in line]  # progress lines come before it
    assert errors == [err.splitlines()[-1]] and errors[0].startswith(message) and "Traceback" not in err, err


def test_a_grey_2d_init_image_is_one_channel():
    digits_like = torch.zeros(28, 28)
    digits_like[10:18, 12:16] = 1.0
    result = render(TinyNet(), "conv2:0", init_image=digits_like, param="pixel", lr=1e-6, steps=1, size=28,
                    device="cpu", transforms="none")
    image = result.images[0]
    assert image.shape == (3, 28, 28)
    assert image[:, 14, 14].min() > 0.95 and image[:, 2, 2].max() < 0.05  # the same grey picture on all channels


def test_one_init_image_per_unit_follows_the_units():
    dark, light = torch.full((3, 16, 16), 0.1), torch.full((3, 16, 16), 0.9)
    result = render(TinyNet(), "conv2:0-3", units=[3, 1], init_image=torch.stack([dark, light]), param="pixel",
                    lr=1e-6, batch_size=1, **{**FAST, "steps": 1})
    assert result.images[0].mean() == pytest.approx(0.1, abs=0.01)
    assert result.images[1].mean() == pytest.approx(0.9, abs=0.01)


def test_settings_resolve_against_the_recipe():
    digits = load_recipe("lenet-digits")
    resolved = resolve_settings(RenderSettings(size=(20, 30), lr=0.5, color_matrix=torch.eye(3)), digits, owned=True)
    assert (resolved.steps, resolved.lr, resolved.optimizer, resolved.start_level) == (digits.steps, 0.5,
                                                                                        digits.optimizer, 0.05)
    assert resolved.size == (20, 30) and resolved.height_width == (20, 30)
    assert resolved.device == torch.device("cpu") and resolved.precision == "fp32" and resolved.compile is None
    assert resolved.color_matrix == ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.steps = 3  # type: ignore[misc]


@pytest.mark.parametrize("given, message", [
    (dict(device="tpu"), r"unknown device 'tpu'; valid here: cpu"),
    (dict(device="gpu0"), r"unknown device 'gpu0'; valid here: cpu"),
    (dict(optimizer="sgd"), r"unknown optimizer 'sgd'; valid: channel-adam, adam"),
    (dict(precision="fp16"), r"unknown precision 'fp16'; close matches: bf16"),
    (dict(param="pixels"), r"unknown parameterization 'pixels'; close matches: pixel"),
    (dict(transforms="big"), r"unknown transforms preset 'big'; valid: standard, small, jitter, none"),
    (dict(compile="max"), r"unknown compile mode 'max'; close matches: max-autotune"),
])
def test_a_name_no_render_could_take_is_refused_where_the_settings_are_written(given, message):
    with pytest.raises(DreamlabError, match=message):
        RenderSettings(**given)


def test_a_gpu_named_in_settings_is_checked_when_the_render_runs():
    settings = RenderSettings(device="cuda:1", steps=1)  # the settings may be meant for another machine
    if not torch.cuda.is_available():
        with pytest.raises(DreamlabError, match="no CUDA GPU is available"):
            render(TinyNet(), "conv:0", settings)


def test_the_names_recipe_files_are_checked_against_are_the_tables_render_uses():
    from dreamlab.optvis import choices
    from dreamlab.optvis.optimizers import OPTIMIZERS
    from dreamlab.optvis.params import PARAMS
    from dreamlab.optvis.transforms import PRESETS

    assert choices.PARAM_NAMES == tuple(PARAMS)
    assert choices.OPTIMIZER_NAMES == tuple(OPTIMIZERS)
    assert choices.TRANSFORM_PRESETS == tuple(PRESETS)


def test_the_recipe_files_size_bound_is_the_one_every_command_takes():
    from dreamlab.models.recipe import _check_value
    from dreamlab.models.summary import MAX_INPUT_SIZE

    assert _check_value("input_size", MAX_INPUT_SIZE) is None and _check_value("input_size", MAX_INPUT_SIZE + 1)
