"""Parameterizations, transforms and PNG output."""
from __future__ import annotations

import pytest
import torch

from dreamlab.errors import DreamlabError
from dreamlab.io import grid, output_paths, png_bytes, read_png_text, safe_name, save_png
from dreamlab.optvis.optimizers import make_optimizer
from dreamlab.optvis.params import (
    COLOR_CORRELATION_SVD_SQRT,
    FourierParam,
    MacoParam,
    PixelParam,
    fourier_scale,
    image_to_param_raw,
    make_param,
)
from dreamlab.optvis.transforms import RandomTransforms


def test_params_give_batched_images_in_unit_range():
    g = torch.Generator().manual_seed(0)
    for kind in ("pixel", "fourier"):
        for channels in (1, 3):
            param = make_param(kind, 5, channels, (32, 48), generator=g, sd=1.0)
            img = param()
            assert img.shape == (5, channels, 32, 48)
            assert img.min() >= 0 and img.max() <= 1
            assert img.std() > 0.01


def test_fourier_scale_is_one_over_frequency():
    scale = fourier_scale(8, 8)
    assert scale[0, 0] == 8  # DC clamped at the lowest frequency 1/8
    assert torch.isclose(scale[0, 2], torch.tensor(1 / 0.25))  # fx = 2/8
    assert torch.isclose(scale[4, 4], torch.tensor(1 / (0.5 * 2 ** 0.5)))


def test_fourier_param_favours_low_frequencies():
    g = torch.Generator().manual_seed(0)
    img = FourierParam(1, 1, 64, 64, generator=g, sd=1.0, decorrelate=False).raw()[0, 0]
    power = torch.fft.rfft2(img).abs() ** 2
    assert power[1:4, 1:4].mean() > 20 * power[20:30, 20:30].mean()


def test_colour_decorrelation_uses_lucids_matrix():
    param = PixelParam(1, 3, 2, 2, decorrelate=True)
    matrix = param.color_matrix
    assert torch.allclose(matrix * COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max(), COLOR_CORRELATION_SVD_SQRT)
    for k in range(3):  # component k of the decorrelated space becomes column k of lucid's matrix in RGB
        with torch.no_grad():
            param.pixels.zero_()
            param.pixels[:, k] = 1.0
        rgb = param()[0, :, 0, 0]
        expected = torch.sigmoid(COLOR_CORRELATION_SVD_SQRT[:, k] / 0.462)  # 0.462: the largest column norm
        torch.testing.assert_close(rgb, expected, atol=2e-4, rtol=0)
    # the last one, column (0.02, -0.05, 0.03), lowers green while red and blue rise; its transpose, row
    # (0.27, -0.09, 0.03), would raise red by 0.13 instead: a wrong orientation misses by far more than the tolerance
    assert rgb[1] < 0.5 < rgb[0] < rgb[2] < 0.55
    assert PixelParam(1, 1, 2, 2).color_matrix is None  # grayscale: no colour matrix


@pytest.mark.parametrize("kind", ["pixel", "fourier"])
def test_start_level_centres_the_random_start(kind):
    g = torch.Generator().manual_seed(0)
    dark = make_param(kind, 2, 3, 16, generator=g, start_level=0.05)()
    assert dark.mean().item() == pytest.approx(0.05, abs=0.002)
    grey = make_param(kind, 2, 1, 16, generator=g)()
    assert grey.mean().item() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("kind", ["pixel", "fourier"])
def test_a_start_image_is_reproduced_whatever_the_start_level(kind):
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 0.9 + 0.05
    param = make_param(kind, 2, 3, 16, start_level=0.05)
    image_to_param_raw(image, param)
    torch.testing.assert_close(param(), image.expand(2, -1, -1, -1), atol=1e-4, rtol=1e-4)


def _push_blue_and_bright(param: FourierParam, steps: int = 60, bright: float = 1.0) -> None:
    """Optimize toward a bluer (and brighter) image: the objective that ran away into a colour cast."""
    optimizer = make_optimizer("channel-adam", param.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        image = param()
        loss = -(image[:, 2] - image[:, 0] + bright * image.sum(1)).mean()
        loss.backward()
        optimizer.step()


def test_fourier_keeps_the_chromatic_mean_and_frees_luminance():
    param = FourierParam(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    start = param.raw().detach().mean((2, 3))
    _push_blue_and_bright(param)
    end = param.raw().detach().mean((2, 3))
    torch.testing.assert_close(end[:, 1:], start[:, 1:])  # the chromatic axes' mean: frozen
    assert (end[:, 0] - start[:, 0]).min() > 0.5  # luminance's mean moved
    image = param().detach()
    assert (image[:, 2].mean() - image[:, 0].mean()).abs() < 0.1  # no cast, although blue was rewarded
    unfrozen = FourierParam(2, 3, 16, 16, generator=torch.Generator().manual_seed(0), freeze_chroma_mean=False)
    _push_blue_and_bright(unfrozen)
    assert (unfrozen.raw().detach().mean((2, 3))[:, 1:] - start[:, 1:]).abs().max() > 0.5  # it would run away


def test_an_init_image_keeps_its_mean_colour():
    reddish = torch.tensor([0.7, 0.4, 0.25])[None, :, None, None].expand(1, 3, 16, 16).clone()
    reddish += 0.1 * torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    grating = torch.cos(torch.arange(16) * torch.pi / 2).expand(16, 16)  # a colour-blind objective
    red_minus_blue = {}
    for freeze in (True, False):
        param = FourierParam(2, 3, 16, 16, freeze_chroma_mean=freeze)
        image_to_param_raw(reddish, param)
        start = param.raw().detach().mean((2, 3))
        optimizer = make_optimizer("channel-adam", param.parameters(), lr=0.05)
        for _ in range(60):
            optimizer.zero_grad()
            (-(param() * grating).mean()).backward()
            optimizer.step()
        if freeze:
            torch.testing.assert_close(param.raw().detach().mean((2, 3))[:, 1:], start[:, 1:])
        image = param().detach()
        red_minus_blue[freeze] = (image[:, 0].mean() - image[:, 2].mean()).item()
    assert red_minus_blue[True] > 0.2  # the start's is 0.45: still red
    assert red_minus_blue[False] < 0.1  # unfrozen, the colour is lost


@pytest.mark.parametrize("start_level", [1.0, 0, -0.5, float("nan"), "0.5", True])
@pytest.mark.parametrize("kind", ["pixel", "fourier", "maco"])
def test_start_level_outside_zero_one_is_refused(kind, start_level):
    """Every parameterization (and MacoParam.from_images) refuses it with the same DreamlabError line; before,
    the pixel and Fourier ones raised a bare ValueError and a string start_level a TypeError."""
    text = (f"start_level must be between 0 and 1 (exclusive) (the level a zero raw image maps to; 0.5: grey, "
            f"0.05: near-black), got {start_level!r}")
    with pytest.raises(DreamlabError) as refused:
        make_param(kind, 1, 3, 8, start_level=start_level)
    assert str(refused.value) == text
    if kind == "maco":
        with pytest.raises(DreamlabError) as refused:
            MacoParam.from_images(torch.rand(3, 8, 8), start_level=start_level)
        assert str(refused.value) == text


def test_transforms_are_per_sample_and_seeded():
    images = torch.rand(1, 3, 32, 32).expand(4, 3, 32, 32)
    t = RandomTransforms.preset("standard")
    a = t(images, torch.Generator().manual_seed(1))
    b = t(images, torch.Generator().manual_seed(1))
    assert a.shape == (4, 3, 44, 44)  # pad 12, crop 6 a side
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])  # each sample drew its own transform
    assert torch.equal(RandomTransforms.preset("none")(images, torch.Generator()), images)
    small = RandomTransforms.preset("small")(images, torch.Generator().manual_seed(0))
    assert small.shape == images.shape  # no padding: fixed-size models still fit


@pytest.mark.parametrize("amounts, message", [
    ({"pad": -3}, "RandomTransforms pad -3 is out of range; valid: 0 to 2048"),
    ({"crop": 2.5}, "RandomTransforms crop must be a whole number from 0 to 2048, got 2.5"),
    ({"degrees": 1000}, "RandomTransforms degrees must be a number from 0 to 180 degrees, got 1000"),
    ({"translate": "4"}, "RandomTransforms translate must be a number from 0 to 2048 pixels, got '4'"),
    ({"translate": float("nan")}, "RandomTransforms translate must be a number from 0 to 2048 pixels, got nan"),
    ({"scale": 1.1}, "RandomTransforms scale must be a range (low, high) such as (0.9, 1.1), got 1.1"),
    ({"scale": (0, 1)}, "RandomTransforms scale must be a number from 0.05 to 20 (a factor), got 0"),
    ({"scale": (1.2, 0.8)}, "RandomTransforms scale (1.2, 0.8) runs from high to low; give (low, high), such as "
                            "(0.8, 1.2)"),
    ({"fill": 2}, "RandomTransforms fill must be a number from 0 to 1 (a grey level), got 2"),
])
def test_random_transforms_of_ones_own_refuse_amounts_that_cannot_work(amounts, message):
    with pytest.raises(DreamlabError) as caught:
        RandomTransforms(**amounts)
    assert str(caught.value) == message


def test_random_transforms_of_ones_own_render_seeded_and_are_recorded_with_their_amounts():
    import dreamlab

    mine = RandomTransforms(translate=3, scale=[0.9, 1.1], degrees=5)
    assert mine.scale == (0.9, 1.1)  # a list is taken, kept as a tuple (the dataclass stays hashable)
    first = dreamlab.render("lenet-digits", "logit:3", transforms=mine, steps=3)
    again = dreamlab.render("lenet-digits", "logit:3", transforms=mine, steps=3)
    assert torch.equal(first.images, again.images)
    assert first.provenance["dreamlab:transforms"] == ("RandomTransforms(pad=0, translate=3, scale=(0.9, 1.1), "
                                                       "degrees=5, crop=0, fill=0.5)")
    with pytest.raises(DreamlabError) as caught:  # a crop that leaves the model nothing
        dreamlab.render("lenet-digits", "logit:3", transforms=RandomTransforms(crop=11), steps=1)
    assert str(caught.value) == ("the transforms' crop of 11 px a side (after a pad of 0) leaves 6x6 px of the 28x28 "
                                 "image; keep crop - pad under 11 px, or render a larger size")


def test_png_provenance_and_determinism(tmp_path):
    img = torch.rand(3, 10, 12)
    path = save_png(img, tmp_path / "x.png", {"dreamlab:objective": "a:1", "note": "ü"})
    assert read_png_text(path) == {"dreamlab:objective": "a:1", "note": "ü"}
    assert png_bytes(img, {"k": "v"}) == png_bytes(img, {"k": "v"})


def test_grid_and_names():
    g = grid(torch.zeros(5, 1, 4, 4), padding=1)
    assert g.shape == (1, 2 * 5 + 1, 3 * 5 + 1)
    assert safe_name("inception4c:97@7,7") == "inception4c_97_at_7_7"
    assert [p.name for p in output_paths("googlenet", ["a:1"], None)] == ["googlenet_a_1.png"]
    assert [str(p) for p in output_paths("m", ["a:1", "a:2"], "out.png")] == ["out_a_1.png", "out_a_2.png"]


# --- CPPN -------------------------------------------------------------------------------------------------------

def test_cppn_images_are_smooth_and_each_sample_starts_from_its_own_generator():
    from dreamlab.optvis.params import CPPNParam

    def generators(*seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]

    pair = CPPNParam(2, 3, 32, 48, generator=generators(0, 1), sd=1.0)()
    alone = CPPNParam(1, 3, 32, 48, generator=generators(1), sd=1.0)()
    assert pair.shape == (2, 3, 32, 48) and 0 < pair.min() and pair.max() < 1
    assert torch.equal(pair[1:], alone)  # sample 1 depends on its generator only
    assert not torch.allclose(pair[0], pair[1])
    # a function of the coordinates: neighbouring pixels differ far less than in a pixel image of the same spread
    step = (pair[..., 1:] - pair[..., :-1]).abs().mean()
    noise = PixelParam(1, 3, 32, 48, generator=generators(0), sd=float(pair.detach().std()) * 4)()
    assert step < 0.2 * (noise[..., 1:] - noise[..., :-1]).abs().mean()
    # the default output layer starts near grey, as the other parameterizations do
    grey = CPPNParam(1, 3, 32, 32, generator=generators(0))()
    assert (grey - 0.5).abs().max() < 0.05


@pytest.mark.usefixtures("one_thread")
def test_cppn_renders_raise_the_objective_through_every_layer():
    import dreamlab
    from dreamlab.optvis.params import CPPNParam

    result = dreamlab.render("lenet-digits", "conv2:3", param=CPPNParam, optimizer="adam", lr=0.005, steps=48,
                             device="cpu")
    assert result.history[-1, 0] > result.history[0, 0] + 0.5 and result.final_scores[0] > 0
    assert result.provenance["dreamlab:param"] == "custom:CPPNParam"
    param = CPPNParam(1, 1, 28, 28, generator=torch.Generator().manual_seed(0), sd=1.0)
    param().mean().backward()
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in param.weights)


@pytest.mark.parametrize("cls", ["PixelParam", "FourierParam", "CPPNParam", "MacoParam"])
def test_param_constructors_refuse_bad_shapes_and_generator_counts_in_one_line(cls):
    from dreamlab.errors import ArgumentValueError
    from dreamlab.optvis import params

    make = getattr(params, cls)
    with pytest.raises(DreamlabError) as caught:
        make(1, 3, 0, 8)
    assert str(caught.value) == (f"{cls} height must be a whole number >= 1; give the image's shape as whole numbers, "
                                 f"e.g. (1, 3, 224, 224), got 0")
    with pytest.raises(DreamlabError, match=f"^{cls} batch must be a whole number >= 1; .*, got 1.5$"):
        make(1.5, 3, 8, 8)
    # a ValueError still, as it was before it was a DreamlabError
    with pytest.raises(ArgumentValueError) as caught:
        make(2, 3, 8, 8, generator=[torch.Generator()])
    assert isinstance(caught.value, ValueError) and str(caught.value) == (
        "generator= holds 1 generator(s) for a batch of 2; give one per sample, or a single torch.Generator for the "
        "whole batch")
