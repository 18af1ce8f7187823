"""MacoParam: a fixed natural Fourier magnitude, only the phase optimized (params.py), and the name "maco" through
settings, the command line and the PNG provenance."""
from __future__ import annotations

import functools
import json

import pytest
import torch

import dreamlab
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.io import read_png_text
from dreamlab.optvis.optimizers import make_optimizer
from dreamlab.optvis.params import (MACO_ALPHA, MacoParam, PixelParam, image_to_param_raw, make_param,
                                    natural_magnitude, resize_magnitude)

pytestmark = pytest.mark.usefixtures("one_thread")


def generators(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def spectrum_ratio(param: MacoParam) -> torch.Tensor:
    """|rfft2| of the raw image over the magnitude, on the columns irfft2 takes as they are (not the zero and
    the Nyquist column, which it makes Hermitian)."""
    with torch.no_grad():
        spectrum = torch.fft.rfft2(param.raw(), norm="ortho").abs()
    return (spectrum / param.magnitude)[..., 1:-1]


def test_maco_gives_batched_images_in_unit_range():
    for channels in (1, 3):
        images = make_param("maco", 3, channels, (16, 24), generator=generators(0, 1, 2))()
        assert images.shape == (3, channels, 16, 24)
        assert 0 < images.min() and images.max() < 1
        assert images.std() > 0.05  # natural-looking noise from the start, not flat grey


def test_only_the_phase_is_a_parameter_and_a_step_keeps_the_magnitude():
    param = MacoParam(2, 3, 16, 24, generator=generators(0, 1))
    assert [name for name, _ in param.named_parameters()] == ["phase"]
    assert param.phase.shape == (2, 3, 16, 13)
    magnitude = param.magnitude.clone()
    start = param().detach().clone()
    optimizer = make_optimizer("adam", param.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        (-param()[:, 0, 4:8, 4:8].mean()).backward()
        optimizer.step()
    assert not torch.allclose(param().detach(), start)  # the phase moved the picture...
    assert torch.equal(param.magnitude, magnitude)  # ...and the magnitude buffer did not move
    ratio = spectrum_ratio(param)  # the image's spectrum is the magnitude, up to one scale per image
    torch.testing.assert_close(ratio, ratio.flatten(1).median(1).values.view(2, 1, 1, 1).expand_as(ratio),
                               rtol=1e-3, atol=1e-4)


def test_the_default_magnitude_is_the_measured_power_law():
    magnitude = natural_magnitude(3, 16, 16)
    assert magnitude.shape == (3, 16, 9)
    # luminance at 1/4 and 1/8 cycles per pixel: a factor 2 in frequency is a factor 2^alpha in magnitude
    assert magnitude[0, 0, 2] / magnitude[0, 0, 4] == pytest.approx(2 ** MACO_ALPHA[0], rel=1e-5)
    grey = MacoParam(1, 1, 16, 16).magnitude
    torch.testing.assert_close(grey[0], magnitude[0])  # one channel: luminance's law


def test_same_seed_same_image_and_each_sample_from_its_own_generator():
    pair = MacoParam(2, 3, 16, 16, generator=generators(0, 1))()
    again = MacoParam(2, 3, 16, 16, generator=generators(0, 1))()
    alone = MacoParam(1, 3, 16, 16, generator=generators(1))()
    assert torch.equal(pair, again)
    assert torch.equal(pair[1:], alone)
    assert not torch.allclose(pair[0], pair[1])


def test_a_given_magnitude_is_used_as_given():
    grating = torch.zeros(1, 16, 9)
    grating[0, 0, 3] = 1.0  # one frequency: 3 cycles across, none down
    param = MacoParam(1, 1, 16, 16, magnitude=grating, decorrelate=False)
    assert torch.equal(param.magnitude, grating)
    raw = param.raw().detach()[0, 0]
    torch.testing.assert_close(raw, raw[:1].expand(16, 16))  # the same in every row: vertical stripes
    spectrum = torch.fft.rfft2(raw).abs()
    assert spectrum.argmax().item() == 3
    # another size is resampled to the render's by frequency: 1/16 cycle per pixel is column 1 of a 16-px
    # spectrum and column 2 of a 32-px one
    given = natural_magnitude(3, 16, 16) * torch.rand(3, 16, 9, generator=torch.Generator().manual_seed(0))
    resized = MacoParam(1, 3, 32, 32, magnitude=given, magnitude_width=16).magnitude
    assert resized.shape == (3, 32, 17)
    torch.testing.assert_close(resized[:, 0, [0, 2, 4]], given[:, 0, [0, 1, 2]])
    torch.testing.assert_close(resized[:, [2, 30], 0], given[:, [1, 15], 0])


def test_an_odd_width_magnitude_is_resampled_at_its_own_frequencies():
    # 45 px wide has 23 columns, as 44 px has: column j is j/45 cycles per pixel, not j/44. Resampled to 10 x 15,
    # every frequency of the target grid (k/10, j/15) falls on a column and row of the 30 x 45 grid (3k, 3j), so
    # the resampled power law must equal the one computed at 10 x 15 up to float32 rounding (1e-5 relative), but
    # for the zero frequency, which each size clamps at its own lowest frequency (fourier_scale)
    source = natural_magnitude(3, 30, 45)
    resized = MacoParam(1, 3, 10, 15, magnitude=source, magnitude_width=45).magnitude
    direct = natural_magnitude(3, 10, 15)
    assert resized.shape == direct.shape == (3, 10, 8)
    away = torch.ones(10, 8, dtype=torch.bool)
    away[0, 0] = False
    torch.testing.assert_close(resized[:, away], direct[:, away], rtol=1e-5, atol=0)
    # read as an even width (the old assumption) every column is 45/44 off in frequency: 2% off in magnitude
    assert ((resize_magnitude(source, 10, 15, 44) / direct)[:, away] - 1).abs().max() > 0.02


def test_a_magnitude_of_another_width_needs_the_width_it_was_measured_at():
    magnitude = natural_magnitude(3, 16, 17)
    with pytest.raises(DreamlabError, match=r"^magnitude has 9 columns, the rfft2 of images 16 or 17 px wide, and "
                                            r"the render is 32 px wide; give magnitude_width=16 or 17"):
        MacoParam(1, 3, 32, 32, magnitude=magnitude)
    for width in (18, 16.5, True, "17"):
        with pytest.raises(DreamlabError, match=r"^magnitude_width must be the width the magnitude was measured "
                                                r"at, 16 or 17 for its 9 columns \(width // 2 \+ 1\), got "):
            MacoParam(1, 3, 32, 32, magnitude=magnitude, magnitude_width=width)  # type: ignore[arg-type]
    with pytest.raises(DreamlabError, match=r"^magnitude_width=16 is the width a given magnitude was measured at, "
                                            r"and no magnitude is given"):
        MacoParam(1, 3, 32, 32, magnitude_width=16)
    same = MacoParam(1, 3, 20, 17, magnitude=magnitude).magnitude  # the render's own width: none needed
    torch.testing.assert_close(same, resize_magnitude(magnitude, 20, 17, 17))


def test_from_images_takes_the_photos_spectrum_at_the_render_size():
    stripes = (torch.cos(torch.arange(64) * 2 * torch.pi * 8 / 64) * 0.3 + 0.5).expand(1, 3, 64, 64)
    factory = MacoParam.from_images(stripes, decorrelate=False)
    param = make_param(factory, 2, 3, 32, generator=generators(0, 1))
    assert param.magnitude.shape == (3, 32, 17)
    assert param.magnitude[0].argmax().item() == 8  # scaled to cover 32 px, the 8 cycles across stay 8 across
    assert param().shape == (2, 3, 32, 32)
    with pytest.raises(DreamlabError, match="MacoParam.from_images needs at least one photo"):
        MacoParam.from_images([])


@pytest.mark.parametrize("magnitude, message", [
    (torch.ones(3, 16), r"magnitude has shape \[3, 16\]; give a tensor \[3, H, W // 2 \+ 1\] of finite values"),
    (torch.ones(1, 16, 9), r"magnitude has shape \[1, 16, 9\]; give a tensor \[3, H, W // 2 \+ 1\]"),
    (torch.full((3, 16, 9), float("nan")), "magnitude holds NaN or infinite values; give a tensor"),
    (-torch.ones(3, 16, 9), "magnitude has negative values; give a tensor"),
    (torch.zeros(3, 16, 9), "magnitude has only zero values; give a tensor"),
    (torch.nn.functional.pad(torch.ones(3, 1, 1), (0, 8, 0, 15)),  # the zero frequency alone
     r"magnitude is zero at every frequency but \[:, 0, 0\], the zero frequency, which gives flat images"),
    (torch.ones(3, 16, 9, dtype=torch.int64), "magnitude must be a float tensor, got a torch.int64 tensor"),
    ([[1.0]], "magnitude must be a float tensor, got list; give a tensor"),
])
def test_a_bad_magnitude_is_refused_in_one_line(magnitude, message):
    with pytest.raises(DreamlabError, match=message) as caught:
        MacoParam(1, 3, 16, 16, magnitude=magnitude)
    assert "\n" not in str(caught.value)


def test_a_bad_contrast_is_refused_in_one_line():
    for contrast in (0.0, -1.0, float("nan"), "2", None, True):  # not a number: not a TypeError deep in math
        with pytest.raises(DreamlabError, match=r"contrast must be a finite number > 0 \(the raw image's deviation"):
            MacoParam(1, 3, 16, 16, contrast=contrast)  # type: ignore[arg-type]
    assert MacoParam(1, 3, 16, 16, contrast=2).contrast == 2.0


def bluest(param: MacoParam, steps: int = 30) -> torch.Tensor:
    """Adam at MACO's lr 0.3 on the phase, for the bluest image (blue minus red): the raw image's channel means."""
    optimizer = make_optimizer("adam", param.parameters(), lr=0.3)
    for _ in range(steps):
        optimizer.zero_grad()
        images = param()
        (-(images[:, 2] - images[:, 0]).mean()).backward()
        optimizer.step()
    with torch.no_grad():
        return param.raw().mean((2, 3))


def test_a_frozen_chromatic_mean_stays_grey_and_luminance_mean_is_free():
    # the zero frequency's phase sets each channel's mean: left free (the default), Adam drives the red-blue axis
    # to its end (hed-vgg16's blue lean, QUALITY.md "hed-vgg16: MACO"); frozen, its mean stays 0
    frozen = bluest(MacoParam(2, 3, 32, 32, generator=generators(0, 1), freeze_chroma_mean=True))
    torch.testing.assert_close(frozen[:, 1:], torch.zeros(2, 2), rtol=0, atol=1e-5)
    assert frozen[:, 0].abs().min() > 0.2  # measured 0.46: the optimizer moves luminance's mean
    free = bluest(MacoParam(2, 3, 32, 32, generator=generators(0, 1)))
    assert free[:, 1].max() < -0.5  # measured -0.90: the red-blue axis at the blue end
    torch.testing.assert_close(free.mean(1), torch.zeros(2), rtol=0, atol=1e-5)  # Horama's one mean removed
    # no chromatic axes, nothing to hold: one mean over all channels
    assert MacoParam(1, 3, 16, 16, freeze_chroma_mean=True, decorrelate=False).centred is None
    assert MacoParam(1, 1, 16, 16, freeze_chroma_mean=True).centred is None
    with pytest.raises(DreamlabError, match="^freeze_chroma_mean must be True or False, got 1$"):
        MacoParam.from_images(torch.rand(1, 3, 16, 16), freeze_chroma_mean=1)


def test_the_default_contrast_is_that_of_natural_photos():
    images = MacoParam(4, 3, 64, 64, generator=generators(0, 1, 2, 3))().detach()
    assert images.std((1, 2, 3)).median().item() == pytest.approx(0.22, abs=0.02)  # the sample photos' 0.21-0.23


def test_an_init_photo_gives_its_phase():
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    disc = ((yy - 12) ** 2 + (xx - 20) ** 2 < 64).float() * 0.8 + 0.1  # a bright disc off centre
    photo = disc.expand(1, 3, 32, 32)
    param = MacoParam(1, 3, 32, 32, generator=generators(0))
    noise = param().detach()
    image_to_param_raw(photo, param)
    image = param().detach()

    def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
        return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()

    assert correlation(image, photo) > 0.6 > abs(correlation(noise, photo))
    assert image[0, :, 12, 20].mean() > image[0, :, 28, 4].mean() + 0.1  # the disc is where the photo's is


def test_maco_renders_raise_the_objective_and_are_named_in_the_provenance():
    result = dreamlab.render("lenet-digits", "logit:3", param="maco", steps=24, device="cpu", transforms="none")
    assert result.history[-1, 0] > result.history[0, 0] + 1  # measured: 0.76 -> 3.8
    assert result.provenance["dreamlab:param"] == "maco"
    assert "dreamlab:sd" not in result.provenance and "dreamlab:decay_power" not in result.provenance


@pytest.mark.parametrize("given", [{"param": "maco"}, {"param": lambda: PixelParam(1, 1, 28, 28)}])
def test_an_init_sd_given_where_no_random_start_takes_it_is_refused(given):
    import dataclasses

    from dreamlab.models.recipe import load_recipe
    from dreamlab.optvis.settings import RenderSettings, resolve_settings

    # maco starts from a random phase: no spread to set; user code makes its own start (was silently ignored)
    what = ("'maco' (MACO starts from a random phase, with no spread to set)" if given["param"] == "maco" else
            "'custom:<lambda>' (a parameterization of your own makes its own start)")
    with pytest.raises(DreamlabError) as refused:
        dreamlab.render("lenet-digits", "conv2:3", dreamlab.RenderSettings(steps=2, **given), device="cpu",
                        init_sd=0.5)
    assert str(refused.value) == (f"init_sd=0.5 is the spread of the pixel and fourier parameterizations' random "
                                  f"start, and param is {what}: give param='pixel' or 'fourier', or leave init_sd "
                                  f"out")
    # where a recipe's param is maco, the message says whose it is
    maco_digits = dataclasses.replace(load_recipe("lenet-digits"), param="maco")
    with pytest.raises(DreamlabError, match=r"and param is 'maco' \(the recipe's\) \(MACO starts"):
        resolve_settings(RenderSettings(init_sd=0.5), maco_digits, owned=True)
    # pixel and fourier take it, and record it where it is not the default
    for param in ("pixel", "fourier"):
        result = dreamlab.render("lenet-digits", "conv2:3", param=param, init_sd=0.1, steps=1, device="cpu")
        assert result.provenance["dreamlab:sd"] == "0.1"
        assert "dreamlab:sd" not in dreamlab.render("lenet-digits", "conv2:3", param=param, steps=1,
                                                    device="cpu").provenance


@pytest.mark.parametrize("param", ["maco", "pixel"])
def test_the_api_refuses_a_fourier_decay_it_was_given_with_another_param(param):
    with pytest.raises(DreamlabError, match=rf"^fourier_decay=1.0 applies to the Fourier parameterization "
                                                     rf"only, and param is '{param}': give param='fourier', or "
                                                     rf"leave fourier_decay out$"):
        dreamlab.render("lenet-digits", "conv2:3", param=param, fourier_decay=1.0, steps=1, device="cpu")
    # the recipe's own fourier_decay (0.5, for its Fourier default) does not stop another param
    assert dreamlab.render("lenet-digits", "conv2:3", param=param, steps=1,
                           device="cpu").provenance["dreamlab:param"] == param


def test_the_api_names_a_recipes_param_that_ignores_fourier_decay():
    import dataclasses

    from dreamlab.models.recipe import load_recipe
    from dreamlab.optvis.settings import RenderSettings, resolve_settings

    pixel = dataclasses.replace(load_recipe("lenet-digits"), param="pixel")
    with pytest.raises(DreamlabError, match=r"^fourier_decay=0.7 applies to the Fourier parameterization "
                                                     r"only, and param is 'pixel' \(the recipe's\): give"):
        resolve_settings(RenderSettings(fourier_decay=0.7), pixel, owned=True)
    assert resolve_settings(RenderSettings(), pixel, owned=True).param == "pixel"


def test_param_options_leave_out_what_maco_does_not_take():
    from dreamlab.models.recipe import load_recipe
    from dreamlab.optvis.settings import RenderSettings, param_options, resolve_settings

    options = param_options(resolve_settings(RenderSettings(param="maco"), load_recipe("lenet-digits"), owned=True))
    assert options == {"start_level": 0.05, "decorrelate": True}


def test_the_cli_renders_maco_and_refuses_fourier_decay_with_it(tmp_path, capsys):
    out = tmp_path / "maco.png"
    assert main(["render", "conv2:1", "--model", "lenet-digits", "--param", "maco", "--steps", "2", "--device",
                 "cpu", "-o", str(out)]) == 0
    assert read_png_text(out)["dreamlab:param"] == "maco"
    assert main(["render", "conv2:1", "--model", "lenet-digits", "--param", "maco", "--fourier-decay", "1",
                 "--steps", "2", "--device", "cpu", "-o", str(out)]) != 0
    assert ("dreamlab: error: --fourier-decay applies to the Fourier parameterization only"
            in capsys.readouterr().err)


def test_a_recipe_may_name_maco(tmp_path):
    from pathlib import Path

    from dreamlab.models.recipe import load_recipe

    source = (Path(__file__).resolve().parents[1] / "recipes" / "lenet_digits.toml").read_text()
    assert 'param = "fourier"' in source
    recipe = tmp_path / "digits-maco.toml"
    recipe.write_text(source.replace('name = "lenet-digits"', 'name = "digits-maco"')
                      .replace('param = "fourier"', 'param = "maco"'))
    assert load_recipe(str(recipe)).param == "maco"
    recipe.write_text(source.replace('param = "fourier"', 'param = "mac0"'))
    with pytest.raises(DreamlabError, match='param = "mac0" is not valid; param must be one of pixel, fourier, maco '
                                            r'\(close matches: maco\)$'):
        load_recipe(str(recipe))


def test_quality_settings_maco_renders_maco_with_adam_at_its_lr(monkeypatch, capsys):
    from dreamlab.apps.quality.measures import Measure

    seen = []

    def fake_run(names, settings, progress=False):
        seen.append(settings)
        return [Measure(name="natural", title="hed-vgg16 vs photo crops", figure=1.0, figure_text="x", goal=0.95,
                        goal_text=">= 95% of units", passed=True)]

    monkeypatch.setattr("dreamlab.apps.quality.measures.run_measures", fake_run)
    assert main(["quality", "--measures", "natural", "--settings", "maco", "--hed-units", "1"]) == 0
    assert (seen[0].param, seen[0].optimizer, seen[0].lr) == ("maco", "adam", 0.3)
    assert "optimizer adam at lr 0.3, param maco" in capsys.readouterr().out


def test_from_images_takes_one_photo_name_or_path_as_one_photo(tmp_path):
    from PIL import Image

    path = tmp_path / "stripes, 2 photos.png"  # a comma in a name, which a comma-separated list read as two
    stripes = (torch.cos(torch.arange(32) * 2 * torch.pi * 4 / 32) * 0.3 + 0.5).expand(32, 32)
    Image.fromarray((stripes * 255).round().byte().numpy()).convert("RGB").save(path)
    for photo in (path, str(path)):  # not read character by character as a list of names
        magnitude = make_param(MacoParam.from_images(photo, decorrelate=False), 1, 3, 32).magnitude
        assert magnitude[0].argmax().item() == 4
    named = make_param(MacoParam.from_images("china"), 1, 3, 16).magnitude
    torch.testing.assert_close(named, make_param(MacoParam.from_images(["china"]), 1, 3, 16).magnitude)
    with pytest.raises(DreamlabError, match="MACO photo must be a torch tensor"):
        MacoParam.from_images(3)  # type: ignore[arg-type]


def test_from_images_refuses_an_option_maco_does_not_take_when_called():
    from dreamlab.errors import UnknownKeywordError

    with pytest.raises(UnknownKeywordError, match="MacoParam.from_images takes no keyword 'contrst'; close matches: "
                                                   "contrast"):
        MacoParam.from_images(["china"], contrst=2.0)
    with pytest.raises(UnknownKeywordError, match="takes no keyword 'magnitude'"):  # from_images sets it
        MacoParam.from_images(["china"], magnitude=torch.ones(3, 4, 3))


@pytest.mark.parametrize("options, message", [
    ({"contrast": -1}, r"contrast must be a finite number > 0 \(the raw image's deviation; default 2.5, the sample "
                       r"photos'\), got -1$"),
    ({"contrast": float("inf")}, "contrast must be a finite number > 0 .*, got inf$"),
    ({"contrast": "2"}, "contrast must be a finite number > 0 .*, got '2'$"),
    ({"start_level": 1.0}, r"start_level must be between 0 and 1 \(exclusive\) \(the level a zero raw image maps "
                           r"to; 0.5: grey, 0.05: near-black\), got 1.0$"),
    ({"start_level": True}, "start_level must be between 0 and 1 .*, got True$"),
    ({"decorrelate": "yes"}, "decorrelate must be True or False, got 'yes'$"),
    ({"color_matrix": torch.eye(2)}, r"color_matrix must be 3x3, got shape \[2, 2\]$"),
    ({"color_matrix": torch.zeros(3, 3)}, "color_matrix must hold finite numbers and be invertible"),
])
def test_from_images_refuses_a_bad_option_value_when_called(options, message):
    with pytest.raises(DreamlabError, match=message) as caught:
        MacoParam.from_images(torch.rand(1, 3, 16, 16), **options)  # not later, when the render calls the factory
    assert "\n" not in str(caught.value)


def test_from_images_takes_good_option_values():
    factory = MacoParam.from_images(torch.rand(1, 3, 16, 16), contrast=1, start_level=0.05, decorrelate=False,
                                    color_matrix=None)
    param = make_param(factory, 1, 3, 16)
    assert (param.contrast, param.color_matrix) == (1.0, None)
    assert param.offset == pytest.approx(-2.944, abs=1e-3)  # logit(0.05)


def test_a_from_images_render_names_its_photos_in_the_png(tmp_path):
    from PIL import Image

    from dreamlab.io import PIXELS, file_digest, pixel_digest, sample_photo

    path = tmp_path / "stripes, 2 photos.png"  # a comma in a name, which a comma-separated list read as two
    stripes = (torch.cos(torch.arange(32) * 2 * torch.pi * 4 / 32) * 0.3 + 0.5).expand(32, 32)
    Image.fromarray((stripes * 255).round().byte().numpy()).convert("RGB").save(path)
    batch = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    factory = MacoParam.from_images(["china", str(path), batch])
    result = dreamlab.render("lenet-digits", "conv2:1", param=factory, steps=1, device="cpu")
    text = read_png_text(result.save(tmp_path / "maco.png"))
    assert text["dreamlab:param"] == "custom:MacoParam.from_images"
    assert json.loads(text["dreamlab:maco_photos"]) == [
        {"name": "china", "sha256": pixel_digest(sample_photo("china", "the test")), "sha256_of": PIXELS,
         "source": "scikit-learn sample photo"},
        {"name": str(path), "sha256": file_digest(path), "sha256_of": "file"},
        {"name": "tensor [2, 3, 16, 16]", "sha256": pixel_digest(batch), "sha256_of": PIXELS}]
    other = MacoParam.from_images(batch + 0.01).png_text  # other pixels, another digest
    assert json.loads(other["dreamlab:maco_photos"])[0]["sha256"] != pixel_digest(batch)
    plain = dreamlab.render("lenet-digits", "conv2:1", param="maco", steps=1, device="cpu").provenance
    assert not any(key.startswith("dreamlab:maco_photos") for key in plain)


def test_a_partial_of_a_from_images_factory_still_names_its_photos_in_the_png(tmp_path):
    """Before, functools.partial hid the factory's png_text, and the PNG said nothing of the photos."""
    factory = MacoParam.from_images("china")
    result = dreamlab.render("lenet-digits", "conv2:1", param=functools.partial(factory, contrast=1.5), steps=2,
                             device="cpu")
    text = read_png_text(result.save(tmp_path / "maco.png"))
    assert text["dreamlab:param"] == "custom:MacoParam.from_images"
    assert [photo["name"] for photo in json.loads(text["dreamlab:maco_photos"])] == ["china"]
    assert text["dreamlab:maco_photos"] == factory.png_text["dreamlab:maco_photos"]


def test_flat_photos_are_refused_as_photos_not_as_a_magnitude():
    factory = MacoParam.from_images(torch.full((2, 3, 32, 32), 0.5))
    with pytest.raises(DreamlabError, match=r"the MACO photos are flat \(one colour each\): their spectrum is zero"):
        make_param(factory, 1, 3, 16)
