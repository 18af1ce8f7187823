"""`dreamlab.attribute` refuses options its method does not read (the rule of `dreamlab attribute`), a
channels-last image gets the permute to pass, and the CLI's --baseline error lists what the CLI takes."""
from __future__ import annotations

import pytest
import torch

import dreamlab
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.io import match_channels, save_png
from dreamlab.models import loading

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def digit() -> torch.Tensor:
    return torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method, options, text", [
    ("saliency", {"steps": 5}, "steps (--steps) applies to method='ig' only, not method='saliency'; leave it out"),
    ("saliency", {"samples": 5}, "samples (--samples) applies to method='smoothgrad' only, not method='saliency'"),
    ("guided", {"noise": 0.1}, "noise (--noise) applies to method='smoothgrad' only, not method='guided'"),
    ("smoothgrad", {"baseline": "noise"}, "baseline (--baseline) applies to method='ig' or method='occlusion' "
                                          "only, not method='smoothgrad'"),
    ("deconvnet", {"batch_size": 4}, "batch_size (--batch-size) applies to method='ig' or method='smoothgrad' "
                                     "or method='occlusion' only, not method='deconvnet'"),
    ("ig", {"layer": "conv1"}, "layer (--layer) applies to method='guided-gradcam' only, not method='ig'"),
    ("saliency", {"seed": 1}, "seed (--seed) applies to method='smoothgrad', and method='ig' or 'occlusion' with "
                              "baseline='noise', only (the others draw no noise), not method='saliency'"),
    ("ig", {"seed": 1}, "seed (--seed) applies to method='smoothgrad', and method='ig' or 'occlusion' with "
                        "baseline='noise', only (the others draw no noise), not method='ig' with baseline='black'; "
                        "leave it out"),
    ("ig", {"seed": 1, "baseline": torch.zeros(1, 28, 28)}, "not method='ig' with an image baseline; leave it out"),
])
def test_attribute_refuses_an_option_its_method_ignores_before_the_model_loads(digit, monkeypatch, method, options,
                                                                               text):
    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(loading, "load_model", no_load)
    monkeypatch.setattr("dreamlab.models.prepare.load_model", no_load)
    with pytest.raises(DreamlabError) as refused:
        dreamlab.attribute("lenet-digits", digit, "logit:3", method=method, **options)
    assert text in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("method", ["saliency", "input-x-gradient", "smoothgrad", "ig", "deconvnet", "guided",
                                    "guided-gradcam", "occlusion"])
def test_every_method_runs_with_its_options_left_out(digit, method):
    assert dreamlab.attribute("lenet-digits", digit, "logit:3", method=method).shape == (1, 28, 28)


def test_the_options_a_method_reads_are_taken_and_none_means_the_default(digit):
    ig = dreamlab.attribute("lenet-digits", digit, 3, method="ig", baseline="noise", steps=4, batch_size=2, seed=5)
    same = dreamlab.attribute("lenet-digits", digit, 3, method="ig", baseline="noise", steps=4, seed=5)
    torch.testing.assert_close(ig, same)  # batch_size changes only the conv's rounding
    smooth = dreamlab.attribute("lenet-digits", digit, 3, method="smoothgrad", samples=4, noise=0.1, seed=2)
    assert smooth.shape == (1, 28, 28)
    guided_cam = dreamlab.attribute("lenet-digits", digit, 3, method="guided-gradcam", layer="relu2")
    assert guided_cam.shape == (1, 28, 28)
    assert torch.equal(dreamlab.attribute("lenet-digits", digit, 3, steps=None, seed=None),
                       dreamlab.attribute("lenet-digits", digit, 3))


@pytest.mark.parametrize("shape, hint", [
    ((28, 28, 1), "the image has 28 channels; this model takes 1; channels last (NumPy/PIL's layout): pass "
                  "image.permute(2, 0, 1)"),
    ((1, 28, 28, 1), "the image has 28 channels; this model takes 1; a batch of one, channels last (NumPy/PIL's "
                     "layout): pass image[0].permute(2, 0, 1)"),
    ((2, 28, 28, 1), "the image has 28 channels; this model takes 1; channels last (NumPy/PIL's layout): pass "
                     "image.permute(0, 3, 1, 2)"),
])
@pytest.mark.parametrize("function", [dreamlab.gradcam, dreamlab.attribute])
def test_a_channels_last_image_is_told_how_to_permute(function, shape, hint):
    with pytest.raises(DreamlabError) as refused:
        function("lenet-digits", torch.rand(*shape), "logit:3")
    assert str(refused.value) == hint


@pytest.mark.parametrize("function", [dreamlab.gradcam, dreamlab.attribute])
def test_the_suggested_permute_is_taken(function):
    last = torch.rand(2, 28, 28, 1)
    assert function("lenet-digits", last.permute(0, 3, 1, 2), "logit:3").shape[0] == 2
    assert function("lenet-digits", last[0].permute(2, 0, 1), "logit:3").shape[-2:] == (28, 28)


def test_other_channel_counts_get_no_layout_hint():
    with pytest.raises(DreamlabError) as refused:
        dreamlab.attribute("lenet-digits", torch.rand(5, 28, 28), "logit:3")
    assert str(refused.value) == "the image has 5 channels; this model takes 1"


@pytest.mark.parametrize("function", [dreamlab.gradcam, dreamlab.attribute])
def test_rgb_for_a_grey_model_names_the_conversion_that_works(function):
    rgb = torch.rand(3, 28, 28, generator=torch.Generator().manual_seed(0))
    with pytest.raises(DreamlabError) as refused:
        function("lenet-digits", rgb, "logit:3")
    assert str(refused.value) == ("the image has 3 channels; this model takes 1; dreamlab.io.match_channels(image, 1) "
                                  "makes it grey (the mean of R, G and B)")
    assert function("lenet-digits", match_channels(rgb, 1), "logit:3").shape[-2:] == (28, 28)  # the fix works


def test_the_cli_lists_the_baselines_it_takes_before_the_model_loads(tmp_path, capsys, monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before --baseline was checked")

    monkeypatch.setattr(loading, "load_model", no_load)
    monkeypatch.setattr("dreamlab.models.prepare.load_model", no_load)
    photo = tmp_path / "digit.png"
    save_png(torch.rand(1, 28, 28), photo)
    out = tmp_path / "ig.png"
    argv = ["attribute", "lenet-digits", "--image", str(photo), "--method", "ig", "--baseline", "white", "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dreamlab: error: unknown baseline 'white'") and "valid: black, blurred, noise" in err
    assert "tensor" not in err and err.count("\n") == 1 and not out.exists()


def test_the_cli_passes_the_api_only_the_options_its_method_reads(tmp_path, capsys):
    photo = tmp_path / "digit.png"
    save_png(torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(1)), photo)
    for method in ("saliency", "ig", "smoothgrad", "guided-gradcam"):
        assert main(["attribute", "lenet-digits", "--image", str(photo), "--method", method, "--target", "logit:3",
                     "-o", str(tmp_path / f"{method}.png")]) == 0
    assert main(["attribute", "lenet-digits", "--image", str(photo), "--target", "logit:3", "--sanity",
                 "--method", "saliency,ig,smoothgrad,guided-gradcam,gradcam", "--steps", "4", "--samples", "2"]) == 0
    assert "cascading randomization" in capsys.readouterr().out
