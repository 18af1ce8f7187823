"""`dreamlab cam` and `dreamlab attribute`: files written, provenance, --sanity, one-line errors; the colour maps."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dreamlab.apps.cli import main
from dreamlab.attribution.overlay import HEAT, SIGNED, colorize, heat, overlay, signed_map
from dreamlab.io import load_image, read_png_text, save_png
from dreamlab.models.zoo.digits import load_digits_split

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digit_photo(tmp_path_factory):
    """A held-out 4, saved at 56 px (twice the model's input size) as a user's photo would be."""
    _, _, x, y = load_digits_split()
    assert int(y[2]) == 4
    path = tmp_path_factory.mktemp("photos") / "four.png"
    save_png(F.interpolate(x[2:3], size=(56, 56), mode="bilinear", align_corners=False)[0], path)
    return path


@pytest.mark.parametrize("command", [["cam"], ["attribute", "--method", "saliency"]])
def test_a_photo_smaller_than_the_model_input_is_noted(command, digit_photo, tmp_path, capsys):
    """A 3x3 photo gave a 3x3 PNG without a word; the README's own digit is upscaled so that it reads."""
    small = tmp_path / "small.png"
    save_png(F.interpolate(load_image(digit_photo)[None], size=(3, 5), mode="area")[0], small)
    out = tmp_path / "out.png"
    assert main([*command, "lenet-digits", "--image", str(small), "-o", str(out)]) == 0
    assert capsys.readouterr().err == ("dreamlab: note: the photo is 5x3 pixels, smaller than the 28x28 model input, "
                                       "and the PNG is drawn at the photo's size; for a readable picture, upscale "
                                       "the photo first\n")
    assert main([*command, "lenet-digits", "--image", str(digit_photo), "-o", str(out)]) == 0  # 56 px: no note
    assert "dreamlab: note: the photo is" not in capsys.readouterr().err


def test_cam_writes_an_overlay_at_the_photo_size_and_the_raw_map(digit_photo, tmp_path, capsys):
    out = tmp_path / "cam.png"
    assert main(["cam", "lenet-digits", "--image", str(digit_photo), "-o", str(out)]) == 0
    assert "logit:4" in capsys.readouterr().out  # the default target is the model's top class
    picture = load_image(out)
    raw = np.load(out.with_suffix(".npy"))
    assert picture.shape == (3, 56, 56) and raw.shape == (56, 56)
    assert raw.min() >= 0 and raw.max() > 0
    text = read_png_text(out)
    assert text["dreamlab:target"] == "logit:4" and text["dreamlab:layer"] == "relu2"
    assert text["dreamlab:method"] == "gradcam"
    assert main(["cam", "lenet-digits", "--image", str(digit_photo), "--method", "gradcam++", "--layer", "conv1",
                 "--target", "logit:7", "--device", "cpu", "-o", str(tmp_path / "pp.png")]) == 0
    assert read_png_text(tmp_path / "pp.png")["dreamlab:layer"] == "conv1"


@pytest.mark.parametrize("options, target, layer", [([], "logit:4", "relu2"),
                                                   (["--target", "relu2:3"], "relu2:3", "pool1")])
def test_cam_runs_the_model_input_once_without_gradients_before_its_gradient_pass(digit_photo, tmp_path, capsys,
                                                                                   options, target, layer):
    """The check that the model takes the input, the top class and the layer's trace share one forward; before,
    each ran its own (three forwards of the same input without a --target, two with one)."""
    from dreamlab.models.zoo.digits import LeNetDigits

    calls: list[tuple[bool, torch.Tensor]] = []

    def hook(module: torch.nn.Module, inputs: tuple, output: object) -> None:
        if isinstance(module, LeNetDigits) and inputs[0].device.type != "meta":  # not the shape probes
            calls.append((torch.is_grad_enabled(), inputs[0].detach().clone()))

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        assert main(["cam", "lenet-digits", "--image", str(digit_photo), *options, "-o", str(tmp_path / "c.png")]) == 0
    finally:
        handle.remove()
    assert f"gradcam of {target} at {layer}" in capsys.readouterr().out
    with_gradients = [x for grad, x in calls if grad]
    assert len(with_gradients) == 1
    same_input = [x for grad, x in calls if not grad and x.shape == with_gradients[0].shape
                  and torch.equal(x, with_gradients[0])]
    assert len(same_input) == 1


@pytest.mark.parametrize("method, options", [
    ("saliency", []), ("ig", ["--steps", "8", "--baseline", "noise", "--seed", "3"]),
    ("guided-gradcam", ["--layer", "conv2"])])
def test_attribute_writes_heat_and_signed_panels_and_the_signed_attributions(digit_photo, tmp_path, method,
                                                                             options):
    out = tmp_path / f"{method}.png"
    assert main(["attribute", "lenet-digits", "--image", str(digit_photo), "--method", method, *options,
                 "-o", str(out)]) == 0
    picture = load_image(out)
    assert picture.shape == (3, 56 + 4, 2 * 56 + 6)  # two panels with 2 px padding
    values = np.load(out.with_suffix(".npy"))
    assert values.shape == (1, 28, 28) and np.abs(values).max() > 0
    if method != "guided-gradcam":
        assert (values < 0).any() and (values > 0).any()  # the signed attributions, not a heat map
    text = read_png_text(out)
    assert text["dreamlab:method"] == method
    # only the options the method reads, as JSON: the ones given, and the defaults of the others it reads
    assert json.loads(text["dreamlab:options"]) == {
        "saliency": {}, "ig": {"steps": 8, "baseline": "noise", "batch_size": 32, "seed": 3},
        "guided-gradcam": {"layer": "conv2"}}[method]
    assert text.get("dreamlab:layer") == ("conv2" if method == "guided-gradcam" else None)


def test_attribution_pngs_record_the_input_image_size_and_versions(digit_photo, tmp_path):
    import torchvision

    import dreamlab

    sha = hashlib.sha256(digit_photo.read_bytes()).hexdigest()[:16]
    for argv in (["cam"], ["attribute", "--method", "smoothgrad", "--samples", "4"], ["attribute", "--method",
                                                                                    "guided-gradcam"]):
        out = tmp_path / f"{argv[-1]}.png"
        assert main([argv[0], "lenet-digits", "--image", str(digit_photo), *argv[1:], "-o", str(out)]) == 0
        text = read_png_text(out)
        assert (text["dreamlab:image"], text["dreamlab:image_sha256"], text["dreamlab:photo_size"]) == (
            "four.png", sha, "28")
        assert (text["dreamlab:version"], text["torch:version"], text["torchvision:version"]) == (
            dreamlab.__version__, torch.__version__, torchvision.__version__)
    # the CAM layer guided-gradcam used, not None: the recipe's cam_layer
    assert read_png_text(tmp_path / "guided-gradcam.png")["dreamlab:layer"] == "relu2"
    assert json.loads(read_png_text(tmp_path / "guided-gradcam.png")["dreamlab:options"]) == {"layer": "relu2"}
    assert json.loads(read_png_text(tmp_path / "4.png")["dreamlab:options"]) == {
        "samples": 4, "noise": 0.15, "batch_size": 32, "seed": 0}


@pytest.mark.parametrize("command", [["cam"], ["attribute", "--method", "saliency"]])
def test_scikit_learns_sample_photos_are_accepted_by_name(tmp_path, monkeypatch, command):
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)  # no file named china here
    out = tmp_path / "china.png"
    assert main([command[0], "lenet-digits", "--image", "china", *command[1:], "--target", "logit:3",
                 "-o", str(out)]) == 0
    picture = load_image(out)
    # china.jpg is 640x427, and the pictures are at the photo's size (attribute's: two panels, 2 px padding)
    assert tuple(picture.shape) == ((3, 427, 640) if command[0] == "cam" else (3, 427 + 4, 2 * 640 + 6))
    text = read_png_text(out)
    assert (text["dreamlab:image"], text["dreamlab:image_source"]) == ("china", "scikit-learn sample photo")
    assert "dreamlab:image_sha256" not in text


@pytest.fixture(scope="module")
def zero_cam_photo(tmp_path_factory):
    """Held-out digit 6 of the split (a 2): its Grad-CAM of logit:9 at relu2 is all zero."""
    _, _, x, y = load_digits_split()
    path = tmp_path_factory.mktemp("photos") / "zero_case.png"
    save_png(x[6], path)
    return path


def test_an_all_zero_cam_gets_a_note(zero_cam_photo, tmp_path, capsys):
    out = tmp_path / "zero.png"
    assert main(["cam", "lenet-digits", "--image", str(zero_cam_photo), "--target", "logit:9", "-o", str(out)]) == 0
    assert np.load(out.with_suffix(".npy")).max() == 0
    err = capsys.readouterr().err
    assert err == ("dreamlab: note: the gradcam map of logit:9 at relu2 is all zero: its gradient-weighted sum of "
                   "the layer's channels is 0 or negative at every position (nothing there raises the target), so "
                   "the picture shows no heat; try another --layer or --target\n")
    # a map with heat gets no note
    assert main(["cam", "lenet-digits", "--image", str(zero_cam_photo), "--target", "logit:2", "-o", str(out)]) == 0
    assert np.load(out.with_suffix(".npy")).max() > 0 and capsys.readouterr().err == ""


def test_sanity_shows_an_all_zero_map_as_not_available(zero_cam_photo, capsys):
    assert main(["attribute", "lenet-digits", "--image", str(zero_cam_photo), "--target", "logit:9", "--sanity",
                 "--method", "saliency,gradcam"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [line.split() for line in lines[2:6]]
    assert [r[0] for r in rows] == ["fc2", "+fc1", "+conv2", "+conv1"]
    assert [r[2] for r in rows] == ["n/a"] * 4  # the trained model's Grad-CAM is all zero: no correlation
    assert all(0 < float(r[1]) <= 1 for r in rows)
    assert lines[6].startswith("n/a: the trained or the randomized model's map is all zero") and len(lines) == 7


def test_sanity_prints_one_row_per_block_with_a_column_per_method(digit_photo, capsys):
    assert main(["attribute", "lenet-digits", "--image", str(digit_photo), "--sanity",
                 "--method", "saliency,guided,gradcam"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].split() == ["randomized", "saliency", "guided", "gradcam"]
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["fc2", "+fc1", "+conv2", "+conv1"]
    assert all(-1 <= float(v) <= 1 for r in rows for v in r[1:])
    assert float(rows[0][2]) > float(rows[0][1])  # guided backprop barely changes when the classifier is random


@pytest.mark.parametrize("argv, message", [
    (["cam", "lenet-digits", "--target", "logit:12"], "class 12 is out of range for logit"),
    (["cam", "lenet-digits", "--target", "logit:tabby"], "unknown class 'tabby'"),
    (["cam", "lenet-digits", "--layer", "fc1"], "'fc1' has output shape [1, 500], with no spatial dimensions"),
    (["cam", "lenet-digits", "--layer", "conv3"], "unknown layer 'conv3'; close matches: conv1, conv2"),
    (["attribute", "lenet-digits", "--method", "guidedd"], "close matches: guided"),
    (["attribute", "lenet-digits", "--method", "gradcam++"], "unknown attribution method 'gradcam++'; close matches: "
     "guided-gradcam; valid: saliency, input-x-gradient, smoothgrad, ig, deconvnet, guided, guided-gradcam, "
     "occlusion; for Grad-CAM run `dreamlab cam --method gradcam++` (attribute takes it with --sanity only)"),
    (["attribute", "lenet-digits", "--method", "ig", "--baseline", "blurry"], "close matches: blurred"),
    (["attribute", "lenet-digits", "--target", "conv7:1"], "unknown layer 'conv7'"),
    (["cam", "lenet-digits", "--device", "gpu"], "unknown device 'gpu'; valid here: cpu"),
    (["attribute", "lenet-digits", "--device", "gpu"], "unknown device 'gpu'; valid here: cpu"),
])
def test_bad_input_is_one_line_and_exit_2(digit_photo, capsys, argv, message):
    assert main([*argv, "--image", str(digit_photo)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dreamlab: error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["--method", "saliency", "--samples", "5"], "--samples applies to --method smoothgrad only, not saliency; "
                                                 "leave it out"),
    (["--method", "saliency", "--noise", "0.3"], "--noise applies to --method smoothgrad only"),
    (["--method", "saliency", "--baseline", "noise"],
     "--baseline applies to --method ig or occlusion only, not saliency"),
    (["--method", "saliency", "--steps", "5"], "--steps applies to --method ig only, not saliency"),
    (["--method", "guided", "--batch-size", "4"], "--batch-size applies to --method ig, smoothgrad or occlusion only"),
    (["--method", "ig", "--layer", "conv1"], "--layer applies to --method guided-gradcam only, not ig"),
    (["--method", "ig", "--seed", "1"],
     "--seed applies to --method smoothgrad, and ig or occlusion with --baseline noise, only"),
    (["--sanity", "--method", "saliency,ig", "--layer", "conv1"],
     "--layer applies to --method guided-gradcam, gradcam, gradcam++, layercam or scorecam only, not saliency,ig"),
])
def test_attribute_refuses_options_its_method_ignores(digit_photo, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(["attribute", "lenet-digits", "--image", str(digit_photo), *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"dreamlab: error: {err[len('dreamlab: error: '):]}" and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["cam", "attribute"])
@pytest.mark.parametrize("target", ["", " "])
def test_an_empty_target_is_refused(digit_photo, tmp_path, capsys, command, target):
    with pytest.raises(SystemExit) as exit_:  # argparse's errors exit from the parser
        main([command, "lenet-digits", "--image", str(digit_photo), "--target", target, "-o", str(tmp_path / "a.png")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("dreamlab: error: argument --target/-t: an empty target; give an objective such as "
                          "logit:3, or leave --target out") and err.count("\n") == 1
    assert not (tmp_path / "a.png").exists()


@pytest.mark.parametrize("command", [["cam", "lenet-digits"], ["attribute", "lenet-digits", "--method", "ig"]])
def test_without_o_an_unwritable_current_folder_is_refused_before_the_model_loads(digit_photo, capsys,
                                                                                  monkeypatch, command):
    import dreamlab.attribution.target as target

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(target, "subject", no_model)
    monkeypatch.chdir("/proc")  # not writable, even by root
    assert main([*command, "--image", str(digit_photo)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dreamlab: error: cannot write the default output in the current folder '/proc'")
    assert err.rstrip().endswith("(-o FILE.png writes elsewhere)") and err.count("\n") == 1


@pytest.mark.parametrize("command, blocked", [
    (["cam", "lenet-digits"], "lenet-digits_logit_4_gradcam.png"),
    (["attribute", "lenet-digits", "--method", "ig"], "lenet-digits_logit_4_ig.npy"),
])
def test_without_o_the_default_names_are_checked_before_the_attribution_runs(digit_photo, tmp_path, capsys,
                                                                             monkeypatch, command, blocked):
    """The default name needs the target (the top class), so it is checked after that one forward, before the
    attribution; the .npy beside the PNG too."""
    import dreamlab.attribution.api as api

    def no_work(*args, **kwargs):
        raise AssertionError("the attribution ran")

    monkeypatch.setattr(api, "attribute", no_work)
    monkeypatch.setattr(api, "gradcam", no_work)
    monkeypatch.chdir(tmp_path)
    (tmp_path / blocked).mkdir()  # a folder where the file would go
    assert main([*command, "--image", str(digit_photo)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dreamlab: error: default output '{blocked}' is a folder; give a file name or another "
                          f"path (-o FILE.png writes elsewhere)") and err.count("\n") == 1


def test_an_unreadable_photo_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "not-a-photo.png"
    bad.write_text("hello")
    for command in ("cam", "attribute"):
        for photo in (bad, tmp_path / "missing.jpg"):
            assert main([command, "lenet-digits", "--image", str(photo)]) == 2
            err = capsys.readouterr().err
            assert err.startswith("dreamlab: error: cannot read image") and err.count("\n") == 1


def test_colour_maps_hit_their_anchors_and_stay_in_range():
    values = np.array([0.0, 0.25, 1.0, -3.0, 7.0])
    rgb = colorize(values)
    assert rgb.shape == (5, 3) and rgb.min() >= 0 and rgb.max() <= 1
    np.testing.assert_allclose(rgb[1], np.array(HEAT[1][1]) / 255)
    np.testing.assert_allclose(rgb[3], rgb[0])  # clipped
    assert np.all(np.diff(colorize(np.linspace(0, 1, 11)).mean(1)) > 0)  # lightness rises with the value
    np.testing.assert_allclose(colorize(np.array([0.5]), SIGNED)[0], np.array(SIGNED[1][1]) / 255)


def test_heat_signed_map_and_overlay():
    a = torch.zeros(3, 4, 4)
    a[0, 1, 1], a[1, 2, 2] = 2.0, -4.0
    h = heat(a)
    assert h.shape == (4, 4) and h[2, 2] == 1 and 0 < h[1, 1] < 1 and h[0, 0] == 0
    assert heat(a, signed=True)[2, 2] == 0  # the negative sum is not positive evidence
    s = signed_map(a)
    assert s.shape == (3, 4, 4) and s[2, 2, 2] > s[0, 2, 2] and s[0, 1, 1] > s[2, 1, 1]  # blue neg, red pos
    assert heat(torch.zeros(1, 3, 3)).max() == 0
    o = overlay(torch.ones(1, 4, 4), h)
    assert o.shape == (3, 4, 4) and 0 <= o.min() and o.max() <= 1


def test_a_photo_with_the_wrong_channel_count_is_one_line(tmp_path):
    from dreamlab.attribution.photos import model_input
    from dreamlab.attribution.target import Subject
    from dreamlab.errors import DreamlabError
    from dreamlab.models.recipe import Recipe

    def subject(channels: int) -> Subject:
        recipe = Recipe("c", "custom:c", input_size=28, channels=channels, mean=(0.0,) * channels,
                        std=(1.0,) * channels)
        return Subject(torch.nn.Conv2d(channels, 1, 3), recipe, None)

    assert model_input(torch.rand(3, 20, 20), subject(1), 28).x.shape == (1, 1, 28, 28)  # RGB read as grey
    assert model_input(torch.rand(1, 20, 20), subject(3), 28).x.shape == (1, 3, 28, 28)  # grey repeated
    with pytest.raises(DreamlabError, match="the photo has 3 channels and this model takes 4; give a 4-channel"):
        model_input(torch.rand(3, 20, 20), subject(4), 28)


@pytest.mark.parametrize("fraction", [0.004, 0.006])
def test_a_sparse_map_is_drawn_not_blank(fraction):
    a = torch.zeros(1, 100, 100)
    n = round(fraction * 10000)
    a.view(-1)[:n] = torch.linspace(0.5, 1.0, n)  # 0.5% of the pixels or fewer: the 99.5th percentile is 0
    h = heat(a)
    assert h.max() > 0.99 and h.view(-1)[:n].min() > 0.45 and h.view(-1)[n:].max() == 0
    s = signed_map(a)
    red = s[0] - s[2]  # red positive, white zero
    assert red.view(-1)[:n].min() > 0.2 and red.view(-1)[n:].abs().max() < 1e-6
    s = signed_map(-a)
    assert (s[2] - s[0]).view(-1)[:n].min() > 0.2  # blue negative
    # a dense map keeps the 99.5th percentile of all its values
    dense = torch.rand(1, 50, 50, generator=torch.Generator().manual_seed(0)) + 0.01
    torch.testing.assert_close(heat(dense), (dense[0] / torch.quantile(dense.flatten(), 0.995)).clamp(0, 1))


def test_a_sparse_attribution_shows_in_the_png(tmp_path):
    """The reviewer's speck: one white pixel on black (0.13% of the pixels); IG against black is 0 elsewhere."""
    photo = torch.zeros(1, 28, 28)
    photo[:, 13:15, 13] = 1
    save_png(photo, tmp_path / "speck.png")
    out = tmp_path / "speck_ig.png"
    assert main(["attribute", "lenet-digits", "--image", str(tmp_path / "speck.png"), "--target", "logit:3",
                 "--method", "ig", "--steps", "8", "-o", str(out)]) == 0
    values = np.load(out.with_suffix(".npy"))
    assert 0 < (values != 0).mean() <= 0.005 and values.sum(0).max() > 0
    picture = load_image(out)
    heat_panel, signed_panel = picture[:, 2:30, 2:30], picture[:, 2:30, 32:60]
    blank = overlay(photo, torch.zeros(28, 28))  # what the heat panel was: the photo greyed, no heat
    assert (heat_panel - blank).abs().amax() > 0.2  # heat on the speck
    assert (signed_panel < 0.8).any()  # colour where the speck is, not all white


def test_a_layer_with_a_1x1_map_is_refused_on_the_command_line(capsys):
    assert main(["cam", "resnet18", "--weights", "none", "--image", "china", "--size", "64", "--layer",
                 "avgpool"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dreamlab: error: layer 'avgpool' has output shape [1, 512, 1, 1], a 1x1 map") \
        and err.count("\n") == 1


def test_default_names_include_the_layer_given(digit_photo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for layer in ([], ["--layer", "conv1"], ["--layer", "relu2"]):
        assert main(["cam", "lenet-digits", "--image", str(digit_photo), *layer]) == 0
    assert main(["attribute", "lenet-digits", "--image", str(digit_photo), "--method", "guided-gradcam",
                 "--layer", "conv2"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "lenet-digits_logit_4_conv1_gradcam.png", "lenet-digits_logit_4_conv2_guided-gradcam.png",
        "lenet-digits_logit_4_gradcam.png", "lenet-digits_logit_4_relu2_gradcam.png"]
    assert read_png_text(tmp_path / "lenet-digits_logit_4_conv1_gradcam.png")["dreamlab:layer"] == "conv1"


def test_the_targets_own_layer_gets_a_note_and_is_not_the_default(digit_photo, tmp_path, capsys):
    assert main(["cam", "lenet-digits", "--image", str(digit_photo), "--target", "relu2:3", "-o",
                 str(tmp_path / "a.png")]) == 0
    captured = capsys.readouterr()
    assert "gradcam of relu2:3 at pool1" in captured.out and captured.err == ""
    assert main(["cam", "lenet-digits", "--image", str(digit_photo), "--target", "relu2:3", "--layer", "relu2",
                 "-o", str(tmp_path / "b.png")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("dreamlab: note: --layer relu2 is the layer relu2:3 reads, so the map is the target "
                          "channel itself") and err.count("\n") == 1


def test_ig_prints_and_records_its_completeness_gap(digit_photo, tmp_path, capsys):
    from dreamlab.attribution.photos import read_photo
    from dreamlab.attribution.target import subject

    out = tmp_path / "ig.png"
    assert main(["attribute", "lenet-digits", "--image", str(digit_photo), "--target", "logit:4", "--method", "ig",
                 "--steps", "8", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    text = read_png_text(out)
    assert text["dreamlab:ig_quadrature"] == "gauss-legendre, 8 nodes"
    gap, difference = float(text["dreamlab:ig_completeness_gap"]), float(text["dreamlab:ig_score_difference"])
    # independently: the .npy's sum minus the model's logit at the photo and at the black baseline
    subj = subject("lenet-digits")
    x = read_photo(digit_photo, subj)[1].x
    with torch.no_grad():
        f = subj.model(subj.normalize(x))[0, 4].double() - subj.model(subj.normalize(torch.zeros_like(x)))[0, 4]
    assert difference == pytest.approx(float(f), rel=1e-5)
    assert gap == pytest.approx(float(np.load(out.with_suffix(".npy")).astype(np.float64).sum()) - float(f),
                                rel=1e-4, abs=1e-6)
    assert abs(gap) > 1e-4  # 8 steps: not exact
    assert err.startswith("dreamlab: note: integrated gradients by Gauss-Legendre quadrature, 8 steps: the "
                          "attributions sum to") and f"a completeness gap of {gap:.3g}" in err
    assert err.count("\n") == 1


def test_smoothgrad_on_a_constant_image_notes_the_noise_scale(tmp_path, capsys):
    save_png(torch.zeros(1, 28, 28), tmp_path / "black.png")
    assert main(["attribute", "lenet-digits", "--image", str(tmp_path / "black.png"), "--method", "smoothgrad",
                 "--samples", "4", "-o", str(tmp_path / "sg.png")]) == 0
    err = capsys.readouterr().err
    assert err == ("dreamlab: note: the image is constant (its value range is 0), so SmoothGrad's noise is 0.15 of "
                   "the input range [0, 1] rather than of the image's range\n")


@pytest.mark.parametrize("method", ["guided", "deconvnet"])
def test_rules_on_models_without_relu_refuse_and_partial_ones_get_a_note(tmp_path, capsys, method):
    assert main(["attribute", "efficientnet_b0", "--weights", "none", "--image", "china", "--size", "32",
                 "--method", method, "-o", str(tmp_path / "e.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dreamlab: error: ") and "ran none on the way to" in err and "SiLU x 49" in err
    assert err.count("\n") == 1
    assert main(["attribute", "mobilenet_v3_small", "--weights", "none", "--image", "china", "--size", "32",
                 "--method", method, "-o", str(tmp_path / "m.png")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("dreamlab: note: ") and "ruled the model's 14 ReLU/ReLU6 calls" in err \
        and "Hardswish x 19" in err and err.count("\n") == 1


def test_sanity_leaves_out_blocks_the_target_does_not_depend_on(digit_photo, capsys):
    assert main(["attribute", "lenet-digits", "--image", str(digit_photo), "--target", "conv2:3", "--sanity",
                 "--method", "saliency"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.strip().splitlines()[2:]]
    assert [r[0] for r in rows] == ["conv2", "+conv1"]  # fc1, fc2 run after conv2: re-initializing them is no step
    assert main(["attribute", "lenet-digits", "--image", str(digit_photo), "--target", "conv2:3 + logit:1",
                 "--sanity", "--method", "saliency"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.strip().splitlines()[2:]]
    assert [r[0] for r in rows] == ["fc2", "+fc1", "+conv2", "+conv1"]


def test_occlusion_records_the_window_and_stride_it_used(digit_photo, tmp_path, capsys):
    out = tmp_path / "occ.png"
    assert main(["attribute", "lenet-digits", "--image", str(digit_photo), "--target", "logit:4", "--method",
                 "occlusion", "-o", str(out)]) == 0
    options = json.loads(read_png_text(out)["dreamlab:options"])
    assert (options["window"], options["stride"], options["baseline"]) == (3, 1, "black")  # 28 px input: 28 // 8
    assert np.load(out.with_suffix(".npy")).shape == (1, 28, 28)
    assert main(["attribute", "lenet-digits", "--image", str(digit_photo), "--method", "occlusion", "--window",
                 "29", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "window 29 is out of range; valid: 1 to 28 (--window: the occluding square's side" in err
