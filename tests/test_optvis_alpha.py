"""Transparent renders (optvis/alpha.py, render(alpha=True), dreamlab render --alpha): the fourth channel, the
random backgrounds, the transparency penalty, the RGBA PNGs and their provenance, and the refusals."""
from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from dreamlab import render
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.io import grid, read_png_text, to_pil
from dreamlab.optvis.alpha import checkerboard, composite, random_backgrounds, transparency_penalty
from dreamlab.optvis.params import FourierParam, PixelParam, image_to_param_raw
from dreamlab.models.recipe import load_recipe
from dreamlab.optvis.engine import _Renderer
from dreamlab.optvis.grammar import parse_objective
from dreamlab.optvis.settings import RenderSettings, resolve_settings

from models_fixtures import TinyNet

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = dict(steps=8, size=16, device="cpu", transforms="none")


@pytest.mark.parametrize("param", [PixelParam, FourierParam])
def test_an_alpha_param_gives_a_fourth_channel_through_a_sigmoid_starting_half_opaque(param):
    images = param(2, 3, 12, 10, generator=torch.Generator().manual_seed(0), alpha=True, sd=0.0)()
    assert images.shape == (2, 4, 12, 10)
    assert torch.allclose(images[:, 3], torch.full((2, 12, 10), 0.5))  # a zero raw alpha: lucid's 0.5
    opaque = param(2, 3, 12, 10, generator=torch.Generator().manual_seed(0), sd=0.0)()
    assert torch.equal(images[:, :3], opaque)  # the colours are those of the opaque param


def test_the_fourier_alpha_keeps_its_mean_free_while_the_chroma_means_are_frozen():
    param = FourierParam(1, 3, 8, 8, generator=torch.Generator().manual_seed(0), alpha=True)
    assert param.free[1:3, 0, 0].sum() == 0 and bool((param.free[3] == 1).all()) and bool((param.free[0] == 1).all())


def test_an_init_image_sets_the_colours_and_leaves_the_alpha_half_transparent():
    photo = torch.rand(1, 3, 12, 12) * 0.8 + 0.1
    param = PixelParam(1, 3, 12, 12, generator=torch.Generator().manual_seed(0), alpha=True, sd=0.0)
    image_to_param_raw(photo, param)
    images = param()
    assert torch.allclose(images[:, :3], photo, atol=1e-5)
    assert torch.allclose(images[:, 3], torch.full((1, 12, 12), 0.5))


def test_composite_lays_the_colours_over_the_background_by_the_alpha():
    images = torch.tensor([0.8, 0.2, 0.6, 0.25]).view(1, 4, 1, 1)
    assert torch.allclose(composite(images, 0.4).flatten(), torch.tensor([0.5, 0.35, 0.45]))
    board = checkerboard(torch.zeros(1, 4, 16, 16))  # fully transparent: the board itself
    assert board[0, 0, 0, 0] == pytest.approx(0.95) and board[0, 0, 0, 2] == pytest.approx(0.6)


def test_the_penalty_is_the_mean_alpha_times_the_score_size():
    images = torch.zeros(2, 4, 2, 2)
    images[:, 3] = torch.tensor([0.5, 1.0]).view(2, 1, 1)
    score = torch.tensor([4.0, -2.0])
    assert transparency_penalty(score, images, 0.5).tolist() == [4.0 - 0.5 * 4 * 0.5, -2.0 - 0.5 * 2 * 1.0]


def test_the_backgrounds_are_seeded_per_image_and_differ_between_seeds():
    first = random_backgrounds([torch.Generator().manual_seed(s) for s in (1, 2)], 3, 16, 16, None)
    again = random_backgrounds([torch.Generator().manual_seed(2)], 3, 16, 16, None)
    assert torch.equal(first[1], again[0])  # image 2's alone: the same whatever its batch
    assert not torch.equal(first[0], first[1])
    assert 0 < float(first.min()) and float(first.max()) < 1 and float(first.std()) > 0.01


def test_the_render_draws_a_new_background_every_step_and_the_same_in_every_run():
    recipe = load_recipe("lenet-digits")  # one channel: grey backgrounds
    settings = resolve_settings(RenderSettings(alpha=True, size=16, seed=5), recipe, owned=True)
    renderer = _Renderer(TinyNet(), parse_objective("conv2:0-1"), recipe, settings, None, (), None)
    step1, again, step2 = (renderer.backgrounds(step, [0, 1]) for step in (1, 1, 2))
    assert step1.shape == (2, 1, 16, 16) and torch.equal(step1, again)
    assert not torch.equal(step1, step2) and not torch.equal(step1[0], step1[1])
    assert torch.equal(renderer.backgrounds(2, [1])[0], step2[1])  # a unit's own, whatever its batch
    opaque = resolve_settings(RenderSettings(size=16), recipe, owned=True)
    assert _Renderer(TinyNet(), parse_objective("conv2:0"), recipe, opaque, None, (), None).backgrounds(1, [0]) is None


def test_a_transparent_render_returns_rgba_images_and_says_so():
    result = render(TinyNet(), "conv2:0-1", alpha=True, **FAST)
    assert result.images.shape == (2, 4, 16, 16) and result.has_alpha
    assert result.numpy().shape == (2, 16, 16, 4) and result.pil()[0].mode == "RGBA"
    assert result.grid().mode == "RGBA"
    assert not render(TinyNet(), "conv2:0", **FAST).has_alpha


def test_the_penalty_lowers_the_mean_alpha():
    args = dict(FAST, steps=24, size=24, lr=0.1)
    free = render(TinyNet(), "conv2:0-1", alpha=True, alpha_weight=0, **args).images[:, 3].mean()
    penalized = render(TinyNet(), "conv2:0-1", alpha=True, alpha_weight=4, **args).images[:, 3].mean()
    assert float(penalized) < float(free) - 0.05, (float(free), float(penalized))


def test_same_seed_same_image_and_another_seed_another_background():
    one = render(TinyNet(), "conv2:0", alpha=True, seed=3, param="pixel", **FAST).images
    two = render(TinyNet(), "conv2:0", alpha=True, seed=3, param="pixel", **FAST).images
    other = render(TinyNet(), "conv2:0", alpha=True, seed=4, param="pixel", init_sd=0.0, **FAST).images
    same_start = render(TinyNet(), "conv2:0", alpha=True, seed=3, param="pixel", init_sd=0.0, **FAST).images
    assert torch.equal(one, two)
    # with no start noise, only the backgrounds (and nothing else) depend on the seed here: transforms none
    assert not torch.equal(other, same_start)


def test_a_units_image_does_not_depend_on_its_batch():
    whole = render(TinyNet(), "conv2:0-2", alpha=True, **FAST).images
    alone = render(TinyNet(), "conv2:0-2", alpha=True, units=[2], **FAST).images
    assert torch.allclose(whole[2], alone[0], atol=1e-5)


def test_diversity_gives_each_image_its_own_alpha():
    result = render(TinyNet(), "conv2:0", alpha=True, diversity=2, diversity_weight=0, **FAST)
    assert result.images.shape == (2, 4, 16, 16)
    assert not torch.equal(result.images[0, 3], result.images[1, 3])


def test_the_png_is_rgba_with_the_alpha_settings_in_its_provenance(tmp_path):
    result = render(TinyNet(), "conv2:0-1", alpha=True, alpha_weight=2.5, **FAST)
    path = result.save(tmp_path / "one.png", index=1)
    with Image.open(path) as img:
        assert img.mode == "RGBA"
        assert img.getchannel("A").getextrema() != (255, 255)
    text = read_png_text(path)
    assert text["dreamlab:alpha_weight"] == "2.5"
    assert text["dreamlab:alpha"].startswith("on (alpha channel last): each step over random 1/f^1.5 noise")
    with Image.open(result.save(tmp_path / "grid.png")) as img:
        assert img.mode == "RGBA"
    assert "dreamlab:alpha" not in render(TinyNet(), "conv2:0", **FAST).provenance


def test_pil_and_grid_keep_an_alpha_channel_with_opaque_padding():
    assert to_pil(torch.rand(2, 4, 4)).mode == "LA" and to_pil(torch.rand(4, 4, 4)).mode == "RGBA"
    tiled = grid(torch.zeros(2, 4, 4, 4), columns=2, padding=1)
    assert tiled.shape == (4, 6, 11) and tiled[3, 0, 0] == 1 and tiled[3, 1, 1] == 0


BAD = [
    ({"alpha": "yes"}, "alpha must be True or False (a transparent render), got 'yes'"),
    ({"alpha_weight": 1.0}, "alpha_weight=1.0 weighs the transparency penalty of a transparent render, and alpha "
                            "is off: add alpha=True (--alpha), or leave alpha_weight out"),
    ({"alpha": True, "alpha_weight": -1}, "alpha_weight must be a finite number >= 0"),
    ({"alpha": True, "alpha_weight": math.nan}, "alpha_weight must be a finite number >= 0"),
    ({"alpha": True, "alpha_weight": 1e4}, "alpha_weight 10000.0 is out of range; valid: 0 to 100"),
    ({"alpha": True, "param": "maco"}, "alpha (a transparent render) needs the alpha channel of the pixel or fourier "
                                       "parameterization, and param is 'maco'"),
]


@pytest.mark.parametrize("settings, message", BAD)
def test_bad_alpha_settings_are_one_line(settings, message):
    with pytest.raises(DreamlabError) as error:
        RenderSettings(**settings)
    assert str(error.value).startswith(message) and "\n" not in str(error.value), str(error.value)


def test_a_custom_param_is_refused_with_alpha():
    with pytest.raises(DreamlabError, match="param is 'custom:PixelParam'"):
        render(TinyNet(), "conv2:0", alpha=True, param=PixelParam(1, 3, 16, 16), **FAST)


@pytest.mark.parametrize("options, message", [
    (["--alpha-weight", "2"], "dreamlab: error: --alpha-weight weighs the transparency penalty of --alpha; add "
                              "--alpha, or leave --alpha-weight out"),
    (["--alpha", "--alpha-weight", "-1"], "dreamlab: error: --alpha-weight must be a finite number >= 0"),
    (["--alpha", "--alpha-weight", "inf"], "dreamlab: error: --alpha-weight must be a finite number >= 0"),
    (["--alpha", "--param", "maco"], "dreamlab: error: --alpha needs the alpha channel that the pixel and fourier "
                                     "parameterizations add, and --param is maco: add --param pixel or --param "
                                     "fourier, or leave --alpha out"),
])
def test_the_cli_refuses_bad_alpha_options_in_one_line(capsys, options, message):
    code = main(["render", "conv2:0", "--model", "lenet-digits", "--steps", "1", "--device", "cpu", *options])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(message) and len(err.splitlines()) == 1, err


def test_the_cli_writes_a_transparent_png(tmp_path, capsys):
    out = tmp_path / "digit.png"
    code = main(["render", "conv2:0", "--model", "lenet-digits", "--steps", "4", "--device", "cpu", "--alpha",
                 "--alpha-weight", "3", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    with Image.open(out) as img:
        assert img.mode == "LA"  # lenet-digits is grey: grey + alpha
    assert read_png_text(out)["dreamlab:alpha_weight"] == "3"


def test_dream_has_no_alpha_and_says_why(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["dream", "china", "--model", "lenet-digits", "--alpha"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("dreamlab: error: unrecognized arguments: --alpha; transparent images are dreamlab "
                          "render's (dreamlab render OBJECTIVE --alpha): dream changes a photo"), err


def test_an_init_photo_sets_the_colours_of_a_transparent_render():
    photo = torch.full((3, 16, 16), 0.8)
    result = render(TinyNet(), "conv2:0", alpha=True, init_image=photo, param="pixel", lr=1e-6,
                    **dict(FAST, steps=1))
    assert torch.allclose(result.images[0, :3], photo, atol=1e-3)
    assert float(result.images[0, 3].mean()) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("argv, says", [
    (["dream", "--alpha"], "photo; dreamlab dream has no --alpha: transparent images are dreamlab render's"),
])
def test_a_missing_argument_beside_alpha_says_the_command_has_no_alpha(capsys, argv, says):
    """Not argparse's guess that --alpha is a value starting with '-' that should go after --."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"dreamlab: error: the following arguments are required: {says}"), err
    assert "goes after --" not in err
