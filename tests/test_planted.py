"""Planted-filter models and their analysis (dreamlab.apps.quality.planted), and the fast planted measure."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from dreamlab import load_model
from dreamlab.optvis.params import COLOR_CORRELATION_SVD_SQRT
from dreamlab.apps.quality.planted import (KERNEL, MEAN, STD, WAVE_VECTORS, channel_activations, dominant_orientation,
                                           grating, grating_images, hue_color, orientation_error, orientation_of,
                                           planted_model, reference_activations, tile, tiling_correlation)
from dreamlab.apps.quality.measures import (ACTIVATION_GOAL, CORRELATION_GOAL, FAST, planted_cell,
                                            score_planted)
from dreamlab.optvis.engine import render
from dreamlab.optvis.objectives import channel


pytestmark = pytest.mark.usefixtures("one_thread")


# --- analysis on synthetic images with known answers ------------------------------------------------------------

@pytest.mark.parametrize("degrees", [0.0, 17.0, 30.0, 45.0, 72.5, 90.0, 121.0, 160.0])
def test_dominant_orientation_of_a_synthetic_grating(degrees: float) -> None:
    # a luminance grating of period 7 px at an arbitrary angle (off the FFT grid), plus a little noise
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    t = math.radians(degrees)
    image = 0.5 + 0.4 * torch.cos(2 * math.pi * (x * math.cos(t) + y * math.sin(t)) / 7.0)
    image = image + 0.02 * torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    assert orientation_error(dominant_orientation(image.expand(3, 64, 64)), degrees) < 2.0


def test_dominant_orientation_of_every_planted_wave_is_exact() -> None:
    for k, wave in enumerate(WAVE_VECTORS):
        image = grating(wave, hue_color(60.0 * k % 360), 32)
        assert dominant_orientation(image) == pytest.approx(orientation_of(wave), abs=1e-3)


def test_dominant_orientation_of_a_flat_image_is_an_error() -> None:
    with pytest.raises(ValueError):
        dominant_orientation(torch.full((3, 16, 16), 0.3))


def test_orientation_error_wraps_round_180_degrees() -> None:
    assert orientation_error(179.0, 1.0) == pytest.approx(2.0)
    assert orientation_error(10.0, 100.0) == pytest.approx(90.0)
    assert orientation_error(45.0, 225.0) == pytest.approx(0.0)


def test_exact_tiling_correlates_one_at_any_phase_scale_and_offset() -> None:
    kernels = planted_model().kernels
    for k in (0, 3, 6):
        image = 0.5 + 0.3 * tile(kernels[k], 48).roll((5, 11), dims=(1, 2))
        corr, (dy, dx) = tiling_correlation(image, kernels[k])
        assert corr == pytest.approx(1.0, abs=1e-5)
        # the returned offset reproduces the image (up to the scale and the grey level)
        shifted = kernels[k].roll((-dy, -dx), dims=(1, 2))
        assert torch.allclose((image - 0.5) / 0.3, tile(shifted, 48), atol=1e-4)


def test_tiling_correlation_of_a_random_kernel_with_a_cropped_image() -> None:
    kernel = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(1))
    image = tile(kernel, 40).roll(3, dims=2)[:, 2:38, 1:37]  # not a whole number of tiles: cropped to 32x32
    assert tiling_correlation(image, kernel)[0] == pytest.approx(1.0, abs=1e-5)
    noise = torch.randn(3, 40, 40, generator=torch.Generator().manual_seed(2))
    assert abs(tiling_correlation(noise, kernel)[0]) < 0.35  # best of 64 offsets of pure noise


def test_other_channels_and_the_square_wave() -> None:
    kernels = planted_model().kernels
    # the planted gratings are orthogonal: another channel's tiling does not match
    assert abs(tiling_correlation(tile(kernels[1], 32), kernels[5])[0]) < 1e-4
    # a perfect render saturates to the square wave: the goal (0.8) sits below its ~0.9 ceiling
    square = 0.5 + 0.5 * torch.sign(tile(kernels[2], 16))
    assert 0.85 < tiling_correlation(square, kernels[2])[0] < 0.95 and CORRELATION_GOAL < 0.85


# --- the planted models ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layers", [1, 2])
def test_each_channel_prefers_its_own_grating_at_any_phase(layers: int) -> None:
    planted = planted_model(layers=layers)
    stimuli = torch.stack([0.5 + 0.5 * torch.sign(tile(k, KERNEL)) for k in planted.kernels])

    def normalize(x: torch.Tensor) -> torch.Tensor:
        return (x - planted.recipe.mean[0]) / planted.recipe.std[0]

    with torch.no_grad():
        response = planted.model(normalize(stimuli)).mean((2, 3))  # [stimulus, channel]
    assert torch.equal(response.argmax(0), torch.arange(planted.units))
    assert (response.diagonal() > 2 * (response - torch.diag(response.diagonal())).max(0).values).all()
    if layers == 2:  # the four rectified phases make the channel nearly indifferent to the grating's phase
        for shift in range(1, 8):
            with torch.no_grad():
                shifted = planted.model(normalize(stimuli.roll(shift, dims=3))).mean((2, 3)).diagonal()
            ratio = shifted / response.diagonal()
            assert ((ratio > 0.69) & (ratio < 1.45)).all(), (shift, ratio)


def test_planted_recipe_builds_through_load_model() -> None:
    planted = planted_model(layers=2)
    loaded = load_model(planted.recipe)
    assert loaded.recipe.input_size == KERNEL and loaded.recipe.channels == 3
    assert torch.equal(loaded.model.conv1.weight, planted.model.conv1.weight)
    with pytest.raises(ValueError):
        planted_model(layers=3)


# --- the fast measure: a correct parameterization passes, a broken one fails ---------------------------------------

def test_pixel_renders_recover_every_planted_channel() -> None:
    cell = planted_cell(1, "pixel", "none", FAST)
    assert cell["recovered"] == 8, cell
    assert cell["min_correlation"] >= 0.85 and cell["max_orientation_error"] <= 2.0


def test_a_colour_matrix_that_crushes_the_chromatic_axes_fails() -> None:
    # a broken colour decorrelation: the chromatic columns of lucid's matrix 100x too small, so the render can
    # barely leave the grey axis and cannot draw colour gratings
    broken = COLOR_CORRELATION_SVD_SQRT.clone()
    broken[:, 1:] /= 100
    settings = dataclasses.replace(FAST, param_options={"color_matrix": broken})
    cell = planted_cell(1, "pixel", "none", settings)
    assert cell["recovered"] == 0 and cell["min_correlation"] < 0.5, cell


@pytest.mark.parametrize("preset", ["none", "jitter"])
def test_fourier_renders_recover_every_planted_channel(preset: str) -> None:
    cell = planted_cell(1, "fourier", preset, FAST)
    assert cell["recovered"] == 8, cell
    assert cell["max_orientation_error"] <= 2.0


def test_per_coordinate_adam_on_the_spectrum_fails() -> None:
    # lucid's optimizer and decay: Adam gives the frequencies the filter ignores full-size steps (dreamlab/optim.py)
    settings = dataclasses.replace(FAST, optimizer="adam", param_options={"decay_power": 1.0})
    cell = planted_cell(1, "fourier", "none", settings)
    assert cell["recovered"] == 0 and cell["min_correlation"] < 0.7, cell


# --- negative controls (issue #12): each must fail the planted measure ---------------------------------------------

def test_a_render_that_minimizes_the_planted_unit_fails_on_activation() -> None:
    # its shape passes (a negated grating is the grating shifted by half a period): the activation must not
    planted = planted_model(layers=1)
    result = render(planted.model, -channel(planted.layer, range(planted.units)), recipe=planted.recipe,
                    param="pixel", transforms="none", steps=256)
    cell = score_planted(planted, result.images, "none")
    assert cell["recovered"] == 0 and max(c["activation"] for c in cell["per_channel"]) < 0.1


def test_one_signed_gradient_step_from_the_start_fails() -> None:
    planted = planted_model(layers=1)
    start = 0.5 + 0.01 * torch.randn(planted.units, 3, KERNEL, KERNEL, generator=torch.Generator().manual_seed(0))
    start.requires_grad_(True)
    scores = planted.model((start - MEAN) / STD).flatten(2).mean(2)
    scores[torch.arange(planted.units), torch.arange(planted.units)].sum().backward()
    one_step = (start + 0.05 * start.grad.sign()).clamp(0, 1).detach()  # one step of the recipe's size
    cell = score_planted(planted, one_step, "none")
    assert cell["recovered"] == 0 and cell["min_activation"] < ACTIVATION_GOAL


def test_noise_and_the_render_of_another_unit_fail() -> None:
    planted = planted_model(layers=1)
    noise = torch.rand(planted.units, 3, KERNEL, KERNEL, generator=torch.Generator().manual_seed(0))
    assert score_planted(planted, noise, "none")["recovered"] == 0
    good = render(planted.model, channel(planted.layer, range(planted.units)), recipe=planted.recipe,
                  param="pixel", transforms="none", steps=FAST.planted_steps).images
    assert score_planted(planted, good, "none")["recovered"] == planted.units
    assert score_planted(planted, good.roll(1, 0), "none")["recovered"] == 0  # image k-1 scored as unit k


def test_the_planted_grating_reaches_its_own_reference_and_a_square_wave_more() -> None:
    planted = planted_model(layers=1)
    gratings = grating_images(planted)  # [K, phases, 3, S, S]
    reference = reference_activations(planted)
    assert torch.allclose(channel_activations(planted, gratings[:, 0]), reference)  # phase 0 is the filter's
    square = (gratings[:, 0] > 0.5).float()  # the saturated render a sigmoid parameterization ends at
    assert (channel_activations(planted, square) / reference > 1.1).all()
    # under the jitter preset the activation is averaged over shifts: below the best phase, never above
    jittered = channel_activations(planted, gratings[:, 0], "jitter")
    assert (jittered < reference).all() and (reference_activations(planted, "jitter") <= reference).all()
