"""DeepDream's inputs as a new user gives them: paths, sample names, tensors of the wrong layout, NumPy arrays and
PIL images; the photo and guide in the provenance (Python and the PNG the CLI writes); the counts in messages."""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image

from dreamlab import dream
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.io import PIXELS, pixel_digest, read_png_text, read_photo, sample_photo, save_png

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = dict(octaves=1, steps=1, device="cpu")


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


@pytest.fixture()
def photo_file(tmp_path):
    return save_png(torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(0)), tmp_path / "photo.png")


def photo_keys(provenance: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in provenance.items() if k.startswith(("dreamlab:photo", "dreamlab:guide_"))}


# 1. what dream() takes

def test_the_python_api_records_a_photo_file_a_sample_and_a_tensor(photo_file):
    pytest.importorskip("sklearn")
    by_path = dream("lenet-digits", str(photo_file), guide="flower", **FAST).provenance  # (a sample photo is
    assert photo_keys(by_path) == {"dreamlab:photo": str(photo_file), "dreamlab:photo_sha256": sha(photo_file),  # a
                                   "dreamlab:photo_sha256_of": "file", "dreamlab:guide_file": "flower",  # slow photo)
                                   "dreamlab:guide_sha256": pixel_digest(sample_photo("flower", "test")),
                                   "dreamlab:guide_sha256_of": PIXELS}
    pixels = torch.full((3, 32, 32), 0.25)
    tensor = dream("lenet-digits", pixels, guide=photo_file, **FAST).provenance
    assert photo_keys(tensor) == {"dreamlab:photo": "tensor", "dreamlab:photo_sha256": pixel_digest(pixels),
                                  "dreamlab:photo_sha256_of": PIXELS, "dreamlab:guide_file": str(photo_file),
                                  "dreamlab:guide_sha256": sha(photo_file), "dreamlab:guide_sha256_of": "file"}
    assert tensor["dreamlab:guide"] == "conv2 features"  # the setting keeps its key


def test_the_pixel_digest_is_the_one_the_inspection_views_record():
    from dreamlab.io import image_record, photo_record

    image = torch.rand(3, 8, 8, dtype=torch.float64)
    dreamed = photo_record(image, image)
    inspected = image_record("tensor", image, image)
    assert (dreamed["dreamlab:photo_sha256"], dreamed["dreamlab:photo_sha256_of"]) == (inspected["sha256"],
                                                                                       inspected["sha256_of"])
    assert inspected["sha256_of"] == PIXELS and len(inspected["sha256"]) == 16


def test_features_reads_photos_with_the_same_function():
    from dreamlab.inspect import features

    assert features.read_photo is read_photo


@pytest.mark.parametrize("image, message", [
    (3, "image must be a torch tensor [C, H, W] in [0, 1], a PNG/JPEG path, or one of china, flower, got int; "
        "dreamlab.io.load_image reads a file as a tensor"),
    (np.zeros((40, 56, 3), np.uint8), "image must be a torch tensor [C, H, W] in [0, 1], a PNG/JPEG path, or one of "
                                      "china, flower, got ndarray; dreamlab.io.load_image reads a file as a tensor, "
                                      "and torch.from_numpy(array).permute(2, 0, 1).float() / 255 converts this uint8 "
                                      "array [40, 56, 3]"),
    (np.zeros((3, 40, 56)), "got ndarray; dreamlab.io.load_image reads a file as a tensor, and "
                            "torch.from_numpy(array).float() converts this float64 array [3, 40, 56]"),
    (Image.new("RGB", (56, 40)), "got Image; dreamlab.io.load_image reads a file as a tensor, and "
                                 "torchvision.transforms.functional.to_tensor(picture) converts a PIL image"),
    ("", "image is an empty path; give a PNG/JPEG path or one of china, flower"),
    ("chna", "cannot read image 'chna': no such file; give a PNG/JPEG path or one of china, flower (scikit-learn's "
             "sample photos)"),
])
def test_what_is_not_a_photo_is_refused_in_one_line(image, message):
    with pytest.raises(DreamlabError) as refused:
        dream("lenet-digits", image, **FAST)
    assert str(refused.value).endswith(message) and "\n" not in str(refused.value)


def test_a_bad_guide_is_named_as_the_guide():
    with pytest.raises(DreamlabError) as refused:
        dream("lenet-digits", torch.rand(3, 32, 32), guide="clouds.jpg", **FAST)
    assert str(refused.value) == ("cannot read guide 'clouds.jpg': no such file; give a PNG/JPEG path or one of "
                                  "china, flower (scikit-learn's sample photos)")


# 2. a tensor of the wrong layout: the expression that makes [C,H,W] of it

@pytest.mark.parametrize("shape, hint", [
    ((2, 3, 32, 32), "; a batch of 2 (one photo at a time): pass image[0]"),
    ((1, 32, 40, 3), "; a batch of one, channels last (NumPy/PIL's layout): pass image[0].permute(2, 0, 1)"),
    ((4, 32, 40), "; 4 channels (RGBA: the alpha channel is not read): pass image[:3]"),
    ((32, 40, 4), "; channels last (NumPy/PIL's layout), 4 channels (RGBA: the alpha channel is not read): pass "
                  "image.permute(2, 0, 1)[:3]"),
    ((5, 32, 40), ""),  # no guess
    ((32,), ""),
])
def test_a_photo_of_another_layout_is_told_the_expression_to_pass(shape, hint):
    with pytest.raises(DreamlabError) as refused:
        dream("lenet-digits", torch.rand(shape), **FAST)
    assert str(refused.value) == f"image must be [C,H,W] with 1 or 3 channels, got shape {list(shape)}{hint}"


# 3. and 4. the PNG the CLI writes

def test_the_cli_png_names_the_photo_as_given_and_a_sample_guide_by_its_pixels(photo_file, tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    assert main(["dream", "photo.png", "--guide", "china", "--model", "lenet-digits", "--octaves", "1", "--steps",
                 "1", "--device", "cpu"]) == 0
    text = read_png_text(tmp_path / "photo_dream.png")
    assert photo_keys(text) == {
        "dreamlab:photo": "photo.png", "dreamlab:photo_sha256": sha(photo_file), "dreamlab:photo_sha256_of": "file",
        "dreamlab:guide_file": "china", "dreamlab:guide_sha256": pixel_digest(sample_photo("china", "test")),
        "dreamlab:guide_sha256_of": PIXELS}
    assert text["dreamlab:overlap"] == "none (one piece)"  # 56x40 is one tile: no context was used


def test_the_cli_records_the_overlap_of_a_tiled_photo(tmp_path):
    photo = save_png(torch.rand(3, 200, 300, generator=torch.Generator().manual_seed(1)), tmp_path / "wide.png")
    out = tmp_path / "d.png"
    assert main(["dream", str(photo), "--model", "lenet-digits", "--octaves", "1", "--steps", "1", "--tile", "256",
                 "--device", "cpu", "-o", str(out)]) == 0
    text = read_png_text(out)
    assert (text["dreamlab:tile"], text["dreamlab:overlap"]) == ("256", "64")


def test_a_resumed_zoom_frame_names_the_photo_not_the_frame_it_started_from(photo_file, tmp_path):
    args = ["dream", str(photo_file), "--model", "lenet-digits", "--octaves", "1", "--steps", "1", "--device", "cpu",
            "-o", str(tmp_path / "z.gif")]
    assert main([*args, "--zoom-frames", "1"]) == 0
    assert main([*args, "--zoom-frames", "2"]) == 0  # frame 1 starts from frame 0's PNG
    text = read_png_text(tmp_path / "z_frames" / "frame_0001.png")
    assert photo_keys(text) == {"dreamlab:photo": str(photo_file), "dreamlab:photo_sha256": sha(photo_file),
                                "dreamlab:photo_sha256_of": "file"}


# 5. counts

def test_the_cli_says_what_it_dreams_with_counts_in_their_number(photo_file, tmp_path, capsys):
    args = ["dream", str(photo_file), "--model", "lenet-digits", "--device", "cpu"]
    assert main([*args, "--octaves", "1", "--steps", "1", "-o", str(tmp_path / "a.png")]) == 0
    assert main([*args, "--octaves", "2", "--steps", "3", "--zoom-frames", "2", "-o", str(tmp_path / "z.gif")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "dreamlab: dreaming the photo at 56x40: 1 octave of 1 step",
        "dreamlab: dreaming frame 0 of 2 (0-based) at 56x40: 2 octaves of 3 steps",
        "dreamlab: dreaming frame 1 of 2 (0-based) at 56x40: 2 octaves of 3 steps"]


def test_an_interrupted_dream_of_one_octave_step_or_frame_counts_in_the_singular(monkeypatch):
    import dreamlab.optvis.dream as dream_module

    photo = torch.rand(3, 32, 32)

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(dream_module, "tiled_gradient", ctrl_c)
        stopped = dream("lenet-digits", photo, **FAST).provenance["dreamlab:interrupted"]
    assert stopped == "during octave 1 of 1, after 0 of its 1 step"

    def ctrl_c_at_the_last_step(step) -> None:
        raise KeyboardInterrupt

    done = dream("lenet-digits", photo, on_step=ctrl_c_at_the_last_step, **FAST).provenance
    assert done["dreamlab:interrupted"] == "after the one octave"

    real, calls = dream_module._Dreamer.measure, []

    def ctrl_c_at_the_final_score(self, image):
        calls.append(1)
        if len(calls) == 2:  # the first is the photo's own score
            raise KeyboardInterrupt
        return real(self, image)

    monkeypatch.setattr(dream_module._Dreamer, "measure", ctrl_c_at_the_final_score)
    zoom = dream("lenet-digits", photo, zoom_frames=1, **FAST).provenance
    assert zoom["dreamlab:interrupted"] == "after the one frame"


def test_a_start_frame_past_the_zoom_says_how_frames_count():
    with pytest.raises(DreamlabError) as refused:
        dream("lenet-digits", torch.rand(3, 32, 32), zoom_frames=1, start_frame=1, **FAST)
    assert str(refused.value) == ("start_frame 1 is past the last of 1 zoom frame (frames count from 0): give a "
                                  "start_frame below zoom_frames")


def test_any_whole_number_is_a_seed_as_render_takes_it():
    big = dream("lenet-digits", torch.rand(3, 32, 32), seed=-(2 ** 70), **FAST)
    assert big.provenance["dreamlab:seed"] == str(-(2 ** 70))
    with pytest.raises(DreamlabError) as refused:
        dream("lenet-digits", torch.rand(3, 32, 32), seed=1.5, **FAST)
    assert str(refused.value) == "seed must be a whole number (an int), got 1.5"


# 4. objectives that cannot be dreamed: one line, as render says it

def _tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(OrderedDict(conv=torch.nn.Conv2d(3, 4, 3, padding=1), relu=torch.nn.ReLU())).eval()


def test_an_objective_without_a_gradient_is_one_line_not_torchs_runtime_error():
    from dreamlab import objectives as o
    cut = o.objective(layers=["relu"])(lambda acts: acts["relu"].mean((1, 2, 3)).detach())
    with pytest.raises(DreamlabError) as err:
        dream(_tiny_net(), torch.rand(3, 32, 32), cut, **FAST)
    assert str(err.value) == ("the score of '<lambda>' does not depend on the image (it has no gradient): the "
                              "objective or the model's forward cuts the gradient with .detach(), .item(), "
                              "torch.no_grad() or an integer op; remove that cut")


def test_a_score_or_gradient_that_is_nan_stops_the_dream_instead_of_returning_a_nan_image():
    from dreamlab import objectives as o
    nan_score = o.objective(layers=["relu"])(lambda acts: acts["relu"].mean((1, 2, 3)) * float("nan"))
    with pytest.raises(DreamlabError) as stopped:
        dream(_tiny_net(), torch.rand(3, 32, 32), nan_score, **FAST)
    assert str(stopped.value) == ("the score of '<lambda>' became NaN or infinite on the photo, before any step, so the "
                                  "dream was stopped and nothing saved; check the objective (a division by ~0?) and "
                                  "the weights")  # render's words (score_checks.non_finite_error), but for the place
    # a finite score whose gradient is NaN (sqrt at 0 times 0): caught once the octave ends
    nan_grad = o.objective(layers=["relu"])(
        lambda acts: acts["relu"].mean((1, 2, 3)) + (acts["relu"] * 0).sqrt().sum((1, 2, 3)))
    with pytest.raises(DreamlabError) as stopped:
        dream(_tiny_net(), torch.rand(3, 32, 32), nan_grad, octaves=2, steps=2, device="cpu")
    assert str(stopped.value) == ("the gradient of '<lambda>' became NaN or infinite in octave 1 of 2, so the dream "
                                  "was stopped and nothing saved; check the objective (a division by ~0?) and the "
                                  "weights")
    assert dream(_tiny_net(), torch.rand(3, 32, 32), "relu", **FAST).image.isfinite().all()


def test_a_boundary_wider_than_half_the_smallest_octave_is_refused_as_render_refuses_it():
    """dream did not give the objective's checks the image's shape: render refused this width, dream ran it."""
    from dreamlab import objectives as o

    wide = o.channel("relu", 1) + o.penalize_boundary_complexity(20)
    with pytest.raises(DreamlabError) as refused:
        dream(_tiny_net(), torch.rand(3, 32, 32), wide, **FAST)
    assert str(refused.value) == ("penalize_boundary_complexity's width 20 does not fit the 32x32 image: its border "
                                  "takes 20 px on each side, 40 of 32; give a width of 1 to 16 (16: the whole image), "
                                  "or render a larger size")
    with pytest.raises(DreamlabError) as refused:  # two octaves: the smaller one, 23 px, is scored too
        dream(_tiny_net(), torch.rand(3, 32, 32), o.channel("relu", 1) + o.penalize_boundary_complexity(16),
              octaves=2, steps=1, device="cpu")
    assert str(refused.value).startswith("penalize_boundary_complexity's width 16 does not fit the 23x23 image: ")
    assert str(refused.value).endswith("; a dream scores the photo's smallest octave, that image, first: fewer "
                                       "octaves (octaves=, --octaves) make it larger")
    narrow = o.channel("relu", 1) + o.penalize_boundary_complexity(16)
    assert dream(_tiny_net(), torch.rand(3, 32, 32), narrow, **FAST).image.shape == (3, 32, 32)


@pytest.mark.parametrize("callbacks, message", [
    ({"on_step": 5}, "on_step must be a function, called as on_step(DreamStep); got int"),
    ({"on_start": lambda: None}, "on_start is called as on_start(provenance), which <lambda>() cannot take; give it 1 "
                                 "positional parameter"),
    ({"on_frame": lambda frame: None, "zoom_frames": 2},
     "on_frame is called as on_frame(frame, image, score) or on_frame(frame, image), which <lambda>(frame) cannot "
     "take; give it 2 or 3 positional parameters"),
    ({"on_frame": lambda frame, image, score: None},  # without a zoom there is no frame score to give it
     "on_frame is called as on_frame(frame, image) (a score only with zoom_frames), which <lambda>(frame, image, "
     "score) cannot take; give it 2 positional parameters"),
])
def test_a_callback_that_cannot_be_called_is_refused_before_the_first_frame(callbacks, message):
    with pytest.raises(DreamlabError) as refused:
        dream(_tiny_net(), torch.rand(3, 32, 32), "relu", **FAST, **callbacks)
    assert str(refused.value) == message


def test_a_billion_octaves_are_told_to_be_fewer_not_overflowed(photo_file, tmp_path, capsys):
    """--octaves 1000000000: 1.4**999999999 is past a float's range; the smallest octave is told (0x0), in one line,
    before a list of a billion sizes is made."""
    assert main(["dream", str(photo_file), "--model", "lenet-digits", "--octaves", "1000000000", "--steps", "1",
                 "--device", "cpu", "-o", str(tmp_path / "d.png")]) == 2
    err = capsys.readouterr().err
    assert err == ("dreamlab: error: 1000000000 octaves at scale 1.4 shrink the 56x40 photo to 0x0, below 16 px a "
                   "side; use octaves=3 (--octaves 3) or fewer, or a smaller octave_scale (--octave-scale)\n")
    assert not (tmp_path / "d.png").exists()


def test_a_scale_just_above_1_is_told_as_given():
    """--octave-scale 1.0000001 (valid: above 1) was told as 'at scale 1', the value refused elsewhere."""
    from dreamlab.optvis.dream import octave_sizes

    with pytest.raises(DreamlabError, match=r"^1000000000 octaves at scale 1\.0000001 shrink the 64x64 photo to 0x0, "
                                            r"below 16 px a side; use octaves=13862945 \(--octaves 13862945\) or "
                                            r"fewer"):
        octave_sizes(64, 64, 10**9, 1.0000001)


def test_a_grey_photo_as_a_2d_tensor_dreams_as_its_one_channel_form():
    """[H, W] is taken as render's init_image takes it: the same dream as [1, H, W], on a 1- and a 3-channel model."""
    photo = torch.rand(28, 28, generator=torch.Generator().manual_seed(0))
    flat, channel = dream("lenet-digits", photo, "conv2", **FAST), dream("lenet-digits", photo[None], "conv2", **FAST)
    assert flat.image.shape == (1, 28, 28) and torch.equal(flat.image, channel.image)
    rgb = dream("resnet18", photo, "layer1", weights="none", **FAST)
    assert rgb.image.shape == (3, 28, 28)
