"""Gradient attributions: agreement with captum on an nn.ReLU model, IG completeness, SmoothGrad, baselines."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dreamlab import attribute
from dreamlab.attribution.gradients import baseline_for
from dreamlab.errors import DreamlabError
from dreamlab.models.recipe import Recipe
from dreamlab.models.zoo.digits import load_digits_split
from dreamlab.optvis import objectives as o

captum_attr = pytest.importorskip("captum.attr")
pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::UserWarning")]  # captum's "setting backward hooks" notices

IDENTITY = Recipe(name="relu-net", builder="tests:relu_net", weights="none", channels=3, mean=(0.0, 0.0, 0.0),
                  std=(1.0, 1.0, 1.0))  # no normalization, so pixels are what captum differentiates too


def relu_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(32, 5)).eval()


@pytest.fixture(scope="module")
def model_and_images():
    return relu_net(), torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("method, make, options", [
    ("saliency", lambda m: captum_attr.Saliency(m), {"abs": False}),
    ("guided", lambda m: captum_attr.GuidedBackprop(m), {}),
    ("deconvnet", lambda m: captum_attr.Deconvolution(m), {}),
])
def test_gradient_methods_agree_with_captum(model_and_images, method, make, options):
    model, x = model_and_images
    ours = attribute(model, x, "logit:3", method, recipe=IDENTITY)
    theirs = make(model).attribute(x.clone(), target=3, **options)
    assert ours.shape == x.shape
    assert theirs.abs().max() > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_integrated_gradients_agree_with_captum_same_baseline_and_steps(model_and_images):
    model, x = model_and_images
    ours = attribute(model, x, 2, "ig", recipe=IDENTITY, baseline="black", steps=16, batch_size=7)
    theirs = captum_attr.IntegratedGradients(model).attribute(x.clone(), baselines=torch.zeros_like(x), target=2,
                                                              n_steps=16, method="gausslegendre")
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-7)


def test_rules_change_the_gradient_on_this_model(model_and_images):
    model, x = model_and_images
    plain = attribute(model, x, "logit:3", "saliency", recipe=IDENTITY)
    for method in ("guided", "deconvnet"):
        assert not torch.allclose(attribute(model, x, "logit:3", method, recipe=IDENTITY), plain)


def test_single_image_keeps_its_shape_and_batched_targets_pick_one_class_per_image(model_and_images):
    model, x = model_and_images
    one = attribute(model, x[1], "logit:4", "saliency", recipe=IDENTITY)
    assert one.shape == x[1].shape
    per_image = attribute(model, x, o.logit([0, 4]), "saliency", recipe=IDENTITY)
    torch.testing.assert_close(per_image[1], one)
    torch.testing.assert_close(per_image[0], attribute(model, x[0], 0, "saliency", recipe=IDENTITY))
    with pytest.raises(DreamlabError, match="3 units for 2 image"):
        attribute(model, x, o.logit([0, 1, 2]), "saliency", recipe=IDENTITY)


def test_integrated_gradients_completeness_within_one_percent_on_digits():
    _, _, x, y = load_digits_split()
    x, y = x[:12], y[:12]
    ig = attribute("lenet-digits", x, o.logit(y.tolist()), "ig", steps=64)
    from dreamlab import load_model

    loaded = load_model("lenet-digits")
    mean, std = loaded.recipe.mean[0], loaded.recipe.std[0]
    with torch.no_grad():
        f = loaded.model((x - mean) / std).gather(1, y[:, None])[:, 0]
        f0 = loaded.model((torch.zeros_like(x) - mean) / std).gather(1, y[:, None])[:, 0]
    relative = (ig.flatten(1).sum(1) - (f - f0)).abs() / (f - f0).abs()
    assert relative.max() < 0.01


def test_smoothgrad_is_seeded_and_averages_towards_the_gradient(model_and_images):
    model, x = model_and_images
    a = attribute(model, x, 1, "smoothgrad", recipe=IDENTITY, samples=4, noise=0.1, seed=3, batch_size=3)
    assert torch.equal(a, attribute(model, x, 1, "smoothgrad", recipe=IDENTITY, samples=4, noise=0.1, seed=3))
    assert not torch.equal(a, attribute(model, x, 1, "smoothgrad", recipe=IDENTITY, samples=4, noise=0.1, seed=4))
    no_noise = attribute(model, x, 1, "smoothgrad", recipe=IDENTITY, samples=2, noise=0.0)
    torch.testing.assert_close(no_noise, attribute(model, x, 1, "saliency", recipe=IDENTITY))


def test_baselines():
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(baseline_for(x, "black"), torch.zeros_like(x))
    blurred = baseline_for(x, "blurred")
    assert blurred.shape == x.shape
    assert blurred.std() < 0.5 * x.std()  # the detail is gone
    torch.testing.assert_close(blurred.mean(), x.mean(), atol=0.02, rtol=0)  # the overall level stays
    noise = baseline_for(x, "noise", seed=1)
    assert torch.equal(noise, baseline_for(x, "noise", seed=1)) and 0 <= noise.min() and noise.max() <= 1
    with pytest.raises(DreamlabError, match="close matches: blurred"):
        baseline_for(x, "blurry")


def test_unknown_method_and_bad_image_shapes_are_one_line_errors(model_and_images):
    model, x = model_and_images
    with pytest.raises(DreamlabError, match="unknown attribution method 'gided'; close matches: guided"):
        attribute(model, x, 1, "gided", recipe=IDENTITY)
    with pytest.raises(DreamlabError) as info:  # Grad-CAM is another function's: say which
        attribute(model, x, 1, "gradcam", recipe=IDENTITY)
    assert str(info.value).endswith("valid: saliency, input-x-gradient, smoothgrad, ig, deconvnet, guided, "
                                    "guided-gradcam, occlusion; for Grad-CAM call "
                                    "dreamlab.gradcam(..., method='gradcam')")
    with pytest.raises(DreamlabError, match="has 1 channels; this model takes 3"):
        attribute(model, x[:, :1], 1, "saliency", recipe=IDENTITY)
    with pytest.raises(DreamlabError, match="class 7 is out of range"):
        attribute(model, x, "logit:7", "saliency", recipe=IDENTITY)


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "ig", "guided", "guided-gradcam"])
def test_a_model_on_the_gpu_gives_the_cpu_result(model_and_images, method):
    model, x = model_and_images
    options = {"smoothgrad": {"samples": 4}, "ig": {"steps": 8}, "guided-gradcam": {"layer": "6"}}.get(method, {})
    on_cpu = attribute(model, x, 3, method, recipe=IDENTITY, **options)
    on_gpu = attribute(copy.deepcopy(model).to("cuda"), x, 3, method, recipe=IDENTITY, **options)
    assert on_gpu.device.type == "cuda" and on_gpu.shape == x.shape
    if method != "smoothgrad":  # SmoothGrad's noise comes from the device's own generator
        torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=1e-3, atol=1e-6)


def test_smoothgrad_gives_each_image_of_a_batch_what_it_gets_alone(model_and_images):
    model, x = model_and_images
    batch = torch.cat([x, x.flip(0), torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(5))])
    together = attribute(model, batch, 3, "smoothgrad", recipe=IDENTITY, samples=6, seed=7, batch_size=4)
    for i in range(batch.shape[0]):
        alone = attribute(model, batch[i], 3, "smoothgrad", recipe=IDENTITY, samples=6, seed=7, batch_size=4)
        torch.testing.assert_close(together[i], alone, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(together[0], together[3], rtol=1e-5, atol=1e-7)  # the same image, the same noise
    # held-out digits with their own classes, as the reviewer's check (max difference 0.217 before)
    _, _, digits, labels = load_digits_split()
    many = attribute("lenet-digits", digits[:5], o.logit(labels[:5].tolist()), "smoothgrad", samples=8,
                     batch_size=3)
    for i in range(5):
        torch.testing.assert_close(many[i], attribute("lenet-digits", digits[i], int(labels[i]), "smoothgrad",
                                                      samples=8, batch_size=3), rtol=1e-4, atol=1e-6)


def test_smoothgrad_noise_on_a_constant_image_is_a_fraction_of_the_input_range(model_and_images):
    model, _ = model_and_images
    grey = torch.full((1, 3, 16, 16), 0.5)
    ours = attribute(model, grey, 2, "smoothgrad", recipe=IDENTITY, samples=5, noise=0.2, seed=1)
    assert not torch.allclose(ours, attribute(model, grey, 2, "saliency", recipe=IDENTITY))  # not saliency
    # by hand: the seeded draws, noise 0.2 of the range [0, 1]
    generator = torch.Generator().manual_seed(1)
    noisy = (grey + 0.2 * torch.randn((5, 3, 16, 16), generator=generator)).requires_grad_(True)
    (grad,) = torch.autograd.grad(model(noisy)[:, 2].sum(), noisy)
    torch.testing.assert_close(ours[0], grad.mean(0), rtol=1e-5, atol=1e-7)


def test_integrated_gradients_completeness_gap_is_captums_convergence_delta(model_and_images):
    from dreamlab.attribution.api import ig_completeness

    model, x = model_and_images
    for baseline, theirs_baseline in (("black", torch.zeros_like(x)), (x.flip(-1)[:1] * 0.5, x.flip(-1)[:1] * 0.5)):
        ours = attribute(model, x, 2, "ig", recipe=IDENTITY, baseline=baseline, steps=6)
        gap, difference = ig_completeness(model, x, 2, ours, baseline, recipe=IDENTITY)
        _, delta = captum_attr.IntegratedGradients(model).attribute(
            x.clone(), baselines=theirs_baseline.expand_as(x), target=2, n_steps=6, method="gausslegendre",
            return_convergence_delta=True)
        torch.testing.assert_close(gap.float(), delta.float(), rtol=1e-4, atol=1e-6)
        with torch.no_grad():
            expected = model(x)[:, 2].double() - model(theirs_baseline.expand_as(x))[:, 2].double()
        torch.testing.assert_close(difference, expected, rtol=1e-6, atol=1e-7)
    assert gap.abs().max() > 0  # 6 steps is not exact
    one, _ = ig_completeness(model, x[0], 2, ours[0], x.flip(-1)[0] * 0.5, recipe=IDENTITY)
    assert one.dim() == 0


def test_input_x_gradient_agrees_with_captum_and_is_the_pixels_times_the_gradient(model_and_images):
    model, x = model_and_images
    ours = attribute(model, x, "logit:3", "input-x-gradient", recipe=IDENTITY)
    theirs = captum_attr.InputXGradient(model).attribute(x.clone(), target=3)
    assert theirs.abs().max() > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours, x * attribute(model, x, "logit:3", "saliency", recipe=IDENTITY))
    with pytest.raises(DreamlabError, match=r"steps \(--steps\) applies to method='ig' only, not "
                                            r"method='input-x-gradient'"):
        attribute(model, x, "logit:3", "input-x-gradient", recipe=IDENTITY, steps=8)


class LinearScore(nn.Module):
    """Logit 0 is sum(w * x) over the pixels of a 1x4x4 image: its occlusion drops have a closed form."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 1, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.arange(16.0).view(1, 16) - 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


GREY_IDENTITY = Recipe(name="linear", builder="tests:linear", weights="none", channels=1, mean=(0.0,), std=(1.0,),
                       input_size=4)


def test_occlusion_gives_each_pixel_the_mean_drop_of_the_windows_over_it():
    model, x = LinearScore().eval(), torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(3))
    contribution = (model.fc.weight.view(4, 4) * x[0]).detach()
    tiles = attribute(model, x, "logit:0", "occlusion", recipe=GREY_IDENTITY, window=2, stride=2)
    # non-overlapping 2x2 windows against black: each pixel gets its window's share of the logit
    expected = contribution.view(2, 2, 2, 2).sum((1, 3)).repeat_interleave(2, 0).repeat_interleave(2, 1)
    torch.testing.assert_close(tiles[0], expected)
    slid = attribute(model, x, "logit:0", "occlusion", recipe=GREY_IDENTITY, window=2, stride=1, batch_size=3)
    windows = [contribution[t:t + 2, l:l + 2].sum() for t in range(3) for l in range(3)]
    corner, centre = windows[0], sum(windows) / 9  # pixel (0, 0) under one window; (1, 1) under four
    torch.testing.assert_close(slid[0, 0, 0], corner)
    torch.testing.assert_close(slid[0, 1, 1], (windows[0] + windows[1] + windows[3] + windows[4]) / 4)
    assert not torch.isclose(slid[0, 1, 1], centre)
    single = attribute(model, x, "logit:0", "occlusion", recipe=GREY_IDENTITY, window=1)
    torch.testing.assert_close(single[0], contribution)  # 1-px windows: each pixel's own w * x


def test_occlusion_refuses_a_window_larger_than_the_input_and_options_it_does_not_read():
    model, x = LinearScore().eval(), torch.rand(1, 4, 4)
    with pytest.raises(DreamlabError, match=r"window .*at most the model input's shorter side, 4"):
        attribute(model, x, "logit:0", "occlusion", recipe=GREY_IDENTITY, window=5)
    with pytest.raises(DreamlabError, match=r"window \(--window\) applies to method='occlusion' only"):
        attribute(model, x, "logit:0", "saliency", recipe=GREY_IDENTITY, window=2)
    with pytest.raises(DreamlabError, match=r"seed \(--seed\) applies to .*not method='occlusion' with "
                                            r"baseline='black'"):
        attribute(model, x, "logit:0", "occlusion", recipe=GREY_IDENTITY, seed=1)
    noisy = [attribute(model, x, "logit:0", "occlusion", recipe=GREY_IDENTITY, baseline="noise", seed=s)
             for s in (1, 1, 2)]
    assert torch.equal(noisy[0], noisy[1]) and not torch.equal(noisy[0], noisy[2])
