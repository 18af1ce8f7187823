"""DeepDream on photos, the review's findings: MP4 of odd-sided photos, EXIF orientation, the scale-free step,
the tiles' context, fixed-size models, provenance, Ctrl-C in the first zoom frame, resumed TensorBoard steps,
the CLI's option names and sample photos, the roll's border."""
from __future__ import annotations

import dataclasses
import hashlib
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import dreamlab
from dreamlab import dream
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError, DreamlabNote
from dreamlab.io import pixel_digest
from dreamlab.io import load_image, read_png_text, sample_photo, save_png

from models_fixtures import OnlySide

pytestmark = pytest.mark.usefixtures("one_thread")


def smooth_photo(height: int, width: int, seed: int = 0, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = low + (high - low) * torch.rand(1, 3, max(2, height // 8), max(2, width // 8), generator=generator)
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]


def run_dream(*args) -> int:
    return main(["dream", *map(str, args), "--model", "lenet-digits", "--octaves", "2", "--steps", "2",
                 "--device", "cpu"])


@pytest.fixture()
def photo_file(tmp_path):
    return save_png(smooth_photo(48, 64), tmp_path / "photo.png")


# 1. MP4

class FakeWriter:
    """imageio's writer as the MP4 path uses it: it records the frames (or fails at the second)."""

    def __init__(self, path, fail: bool):
        self.path, self.fail, self.frames = path, fail, []

    def __enter__(self):
        open(self.path, "wb").close()  # ffmpeg creates the file before it fails
        return self

    def __exit__(self, *exc):
        return False

    def append_data(self, array):
        if self.fail and self.frames:
            raise OSError("[Errno 32] Broken pipe\n\nFFMPEG COMMAND:\nffmpeg -y ...")
        self.frames.append(array)


@pytest.fixture()
def fake_imageio(monkeypatch):
    import dreamlab.apps.commands.dream as command

    class Module:
        writers: list[FakeWriter] = []
        fail = False

        @classmethod
        def get_writer(cls, path, **kwargs):
            cls.writers.append(FakeWriter(path, cls.fail))
            cls.kwargs = kwargs
            return cls.writers[-1]

    monkeypatch.setattr(command, "_imageio", lambda: Module)
    return Module


def test_mp4_frames_of_an_odd_sided_photo_get_a_repeated_last_row_and_column(tmp_path, fake_imageio):
    photo = save_png(smooth_photo(47, 63), tmp_path / "odd.png")
    out = tmp_path / "z.mp4"
    assert run_dream(photo, "-o", out, "--zoom-frames", 2) == 0
    frames = fake_imageio.writers[0].frames
    assert [f.shape for f in frames] == [(48, 64, 3)] * 2  # libx264's yuv420p needs even sides
    for frame, png in zip(frames, sorted((tmp_path / "z_frames").iterdir())):
        kept = np.asarray(Image.open(png).convert("RGB"))
        assert (frame[:47, :63] == kept).all()  # the picture itself is untouched, not rescaled
        assert (frame[47] == frame[46]).all() and (frame[:, 63] == frame[:, 62]).all()
    assert fake_imageio.kwargs["macro_block_size"] == 1  # (imageio's own fix would rescale)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.png", "z.mp4", "z_frames"]  # renamed, no temp left


def test_an_mp4_encoder_failure_is_one_line_and_leaves_no_file(tmp_path, fake_imageio, capsys, photo_file):
    fake_imageio.fail = True
    out = tmp_path / "z.mp4"
    assert run_dream(photo_file, "-o", out, "--zoom-frames", 2) == 2
    *progress, err = capsys.readouterr().err.splitlines()
    assert progress == [f"dreamlab: dreaming frame {i} of 2 (0-based) at 64x48: 2 octaves of 2 steps" for i in (0, 1)]
    assert err.startswith(f"dreamlab: error: could not encode {str(out)!r} ([Errno 32] Broken pipe); the frames are "
                          f"kept in")
    assert "run again with -o NAME.webp or .gif" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "z_frames"]  # no 0-byte z.mp4, no temp
    assert len(list((tmp_path / "z_frames").iterdir())) == 2  # nothing computed is lost


def test_mp4_of_an_odd_sided_photo_with_the_video_extra(tmp_path):
    imageio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    photo = save_png(smooth_photo(47, 63), tmp_path / "odd.png")
    out = tmp_path / "z.mp4"
    assert run_dream(photo, "-o", out, "--zoom-frames", 2) == 0
    with imageio.get_reader(out) as reader:
        assert reader.count_frames() == 2 and tuple(reader.get_meta_data()["size"]) == (64, 48)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.png", "z.mp4", "z_frames"]


# 2. EXIF orientation

def exif_jpeg(path, orientation: int):
    """A JPEG stored 60 wide x 40 high, red in its stored top-left quadrant, blue elsewhere."""
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[...] = (0, 0, 255)
    stored[:20, :30] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    return path


def test_load_image_turns_a_photo_as_its_exif_orientation_says(tmp_path):
    image = load_image(exif_jpeg(tmp_path / "phone.jpg", 6))
    # 6: turn 90 degrees clockwise to show: shown 40 wide x 60 high, the stored top-left now at the top right
    assert image.shape == (3, 60, 40)
    assert image[0, :30, 20:].mean() > 0.9 and image[2, :30, 20:].mean() < 0.1
    assert image[0, :30, :20].mean() < 0.1 and image[0, 30:].mean() < 0.1
    assert load_image(exif_jpeg(tmp_path / "upright.jpg", 1)).shape == (3, 40, 60)


def test_dream_keeps_the_shown_orientation_of_a_phone_photo(tmp_path):
    out = tmp_path / "d.png"
    assert run_dream(exif_jpeg(tmp_path / "phone.jpg", 6), "-o", out) == 0
    with Image.open(out) as image:
        assert image.size == (40, 60)


# 3. the step does not depend on the gradient's scale

def test_lr_is_the_mean_change_per_step_whatever_the_gradient_scale():
    """1e-9 * conv2 has the gradient of conv2 times 1e-9 (mean |grad| ~1e-13 here): the old epsilon of 1e-8
    swallowed such steps; now the dream is the same as conv2's and each step moves the pixels by lr on average."""
    photo = smooth_photo(40, 48, low=0.3, high=0.7)  # away from 0 and 1: no step is clamped
    images = []
    kwargs = dict(octaves=1, steps=4, lr=0.01, device="cpu")
    scaled = dream("lenet-digits", photo, "1e-9 * conv2", on_step=lambda s: images.append(s.image.clone()), **kwargs)
    changes = [float((b - a).abs().mean()) for a, b in zip(images, images[1:])]
    assert changes == pytest.approx([0.01] * 3, rel=1e-3)
    plain = dream("lenet-digits", photo, "conv2", **kwargs)
    assert (plain.image - scaled.image).abs().max() <= 1 / 255
    flat = dream("lenet-digits", photo, "0 * conv2", **kwargs)  # a zero gradient: no step, no NaN
    assert torch.equal(flat.image, (photo.mean(0, keepdim=True) * 255).round() / 255)


# 4. the tiles' context is the objective layer's receptive field

def dilated(gain: float = 2.0) -> nn.Module:
    """Six 3x3 convolutions dilated 1, 2, 4, 8, 16, 16: a receptive field of 95 px at l10, wider than 64."""
    torch.manual_seed(0)
    layers, channels = [], 3
    for d in (1, 2, 4, 8, 16, 16):
        conv = nn.Conv2d(channels, 8, 3, padding=d, dilation=d)
        conv.weight.data *= gain
        layers += [conv, nn.ReLU()]
        channels = 8
    return nn.Sequential(OrderedDict((f"l{i}", layer) for i, layer in enumerate(layers)))


def test_tiles_give_the_one_piece_result_with_the_layers_receptive_field_as_context():
    model, photo = dilated(), smooth_photo(352, 400, seed=3)
    kwargs = dict(octaves=1, steps=3, device="cpu")
    whole = dream(model, photo, "l10", tile=None, **kwargs)
    tiled = dream(model, photo, "l10", tile=320, **kwargs)
    assert tiled.provenance["dreamlab:overlap"] == "96"  # the field, 95 px, in whole steps of 32 as the tiles take it
    assert (whole.image - photo).abs().mean() > 3 / 255  # the dream did something
    assert (whole.image - tiled.image).abs().max() <= 1 / 255 + 1e-6  # float rounding, through the 8-bit image
    assert ((whole.image - tiled.image).abs() > 0).float().mean() < 0.01
    short = dream(model, photo, "l10", tile=320, overlap=64, **kwargs)  # the old fixed context
    assert (whole.image - short.image).abs().max() >= 2 / 255
    assert whole.provenance["dreamlab:overlap"] == "none (one piece)"  # not tiled: no context, no field measured


# 5. a model that asserts its input size

@pytest.fixture()
def fixed_size_lenet():
    from dreamlab.models.loading import load_model

    loaded = load_model("lenet-digits")

    def only_28(module, inputs):
        assert inputs[0].shape[-2:] == (28, 28), f"Wrong image height! Expected 28 but got {inputs[0].shape[-2]}!"

    handle = loaded.model.register_forward_pre_hook(only_28)
    yield loaded
    handle.remove()


def test_a_model_that_asserts_its_input_size_gets_the_one_line_refusal(fixed_size_lenet):
    """torchvision's ViT asserts its input size (an AssertionError, not a RuntimeError); with a layer objective the
    line says the model takes one size only, not to pick a layer objective."""
    with pytest.raises(DreamlabError, match=r"^lenet-digits rejected the 64x48 photo itself \(Wrong image height! "
                                            r"Expected 28 but got 48!\), so no number of octaves helps; the model "
                                            r"takes its 28x28 input only, for any layer: resize the photo to 28x28 "
                                            r"and dream it with octaves=1 \(--octaves 1\)$"):
        dream(fixed_size_lenet, smooth_photo(48, 64), "conv2", octaves=2, steps=1, device="cpu")
    with pytest.raises(DreamlabError, match=r"^lenet-digits rejected a 20x20 octave \(Wrong image height! Expected "
                                            r"28 but got 20!\) though it takes the photo's size; the model takes its "
                                            r"28x28 input only, for any layer: use fewer octaves \(octaves=1, --octaves 1, "
                                            r"dreams the photo at its size only\)$"):
        dream(fixed_size_lenet, smooth_photo(28, 28), "conv2", octaves=2, steps=1, device="cpu")



@pytest.fixture()
def only28_recipe(tmp_path, monkeypatch):
    """A recipe file whose input_size, 32, the model it builds (OnlySide(28)) does not take."""
    from dreamlab.models import loading

    monkeypatch.setitem(loading._BUILDERS, "tests:only28", lambda weights=None: OnlySide())
    path = tmp_path / "only28.toml"
    path.write_text('name = "only28"\nbuilder = "tests:only28"\ninput_size = 32\ndefault_layer = "conv"\n')
    return path


WRONG_SIZE = ("only28 failed on a 3x32x32 input (Wrong image height! Expected 28 but got 32!) and runs on 28x28: its "
              "recipe's input_size, 32, is not a size the model takes; set input_size = 28 in {where}; also, ")
PHOTO_ITSELF = ("only28 rejected the 64x48 photo itself (Wrong image height! Expected 28 but got 48!), so no number "
                "of octaves helps; the model takes its 28x28 input only, for any layer: resize the photo to 28x28 "
                "and dream it with octaves=1 (--octaves 1)")
OCTAVE = ("only28 rejected a 20x20 octave (Wrong image height! Expected 28 but got 20!) though it takes the photo's "
          "size; the model takes its 28x28 input only, for any layer: use fewer octaves (octaves=1, --octaves 1, "
          "dreams the photo at its size only)")


@pytest.mark.parametrize("height, width, octaves, then", [(48, 64, 1, PHOTO_ITSELF), (28, 28, 2, OCTAVE)])
def test_a_wrong_input_size_of_a_fixed_size_model_gets_every_fix_in_one_line(only28_recipe, tmp_path, capsys,
                                                                             height, width, octaves, then):
    """The input_size fix, and what the model would refuse next at the size it takes (the photo, an octave),
    in the first error: not one fix per run."""
    photo = save_png(smooth_photo(height, width), tmp_path / "photo.png")
    assert main(["dream", str(photo), "--recipe", str(only28_recipe), "--weights", "none", "-o",
                 str(tmp_path / "d.png"), "--steps", "1", "--octaves", str(octaves), "--device", "cpu"]) == 2
    assert capsys.readouterr().err == f"dreamlab: error: {WRONG_SIZE.format(where=only28_recipe)}{then}\n"
    assert not (tmp_path / "d.png").exists()


def test_the_python_api_gets_every_fix_of_a_wrong_input_size_in_one_line(only28_recipe):
    recipe = dreamlab.Recipe("only28", "tests:only28", input_size=32, default_layer="conv")
    with pytest.raises(DreamlabError) as caught:
        dream(OnlySide(), smooth_photo(48, 64), recipe=recipe, octaves=1, steps=1, device="cpu")
    assert str(caught.value) == WRONG_SIZE.format(where="the recipe") + PHOTO_ITSELF
    with pytest.raises(DreamlabError) as caught:
        dream(str(only28_recipe), smooth_photo(48, 64), weights="none", octaves=1, steps=1, device="cpu")
    assert str(caught.value) == WRONG_SIZE.format(where=only28_recipe) + PHOTO_ITSELF
    fixed = dataclasses.replace(recipe, input_size=28)
    assert dream(OnlySide(), smooth_photo(28, 28), recipe=fixed, octaves=1, steps=1,
                 device="cpu").image.shape == (3, 28, 28)  # both fixes made: it dreams


def test_a_callers_recipe_that_misses_224_is_told_its_size():
    """A Recipe of the caller's ('custom:') whose input_size is not the 224 its module takes: the size is found
    (common sizes first, then 224), not the module's own assertion raised."""
    recipe = dreamlab.Recipe("vitlike", "custom:vitlike", input_size=32, default_layer="conv")
    with pytest.raises(DreamlabError) as caught:
        dream(OnlySide(224), smooth_photo(48, 64), recipe=recipe, octaves=1, steps=1, device="cpu")
    assert str(caught.value) == (
        "vitlike failed on a 3x32x32 input (Wrong image height! Expected 224 but got 32!) and runs on 224x224; for a "
        "module with a fixed input size, say it: recipe=dreamlab.Recipe('vitlike', 'custom:vitlike', input_size=224, "
        "channels=3); also, vitlike rejected the 64x48 photo itself (Wrong image height! Expected 224 but got 48!), "
        "so no number of octaves helps; the model takes its 224x224 input only, for any layer: resize the photo to "
        "224x224 and dream it with octaves=1 (--octaves 1)")


# 6. provenance

SETTINGS = ["objective", "model", "weights", "recipe", "recipe_hash", "seed", "size", "octaves", "octave_scale", "steps", "lr",
            "jitter", "tile", "overlap", "guide", "device", "version"]


def test_a_guided_dream_records_the_guide_file_and_its_hash(tmp_path, photo_file):
    guide = save_png(smooth_photo(40, 40, seed=5), tmp_path / "clouds.png")
    out = tmp_path / "d.png"
    assert run_dream(photo_file, "--guide", guide, "-o", out) == 0
    text = read_png_text(out)
    assert text["dreamlab:guide_file"] == str(guide)
    assert text["dreamlab:guide_sha256"] == hashlib.sha256(guide.read_bytes()).hexdigest()[:16]
    assert text["dreamlab:guide"] == "conv2 features" and text["dreamlab:objective"] == "guide@conv2"
    assert text["dreamlab:photo_sha256"] == hashlib.sha256(photo_file.read_bytes()).hexdigest()[:16]
    assert "torchvision:version" in text


def test_zoom_frames_carry_the_settings_of_a_plain_dream(tmp_path, photo_file):
    guide = save_png(smooth_photo(40, 40, seed=5), tmp_path / "clouds.png")
    assert run_dream(photo_file, "--guide", guide, "-o", tmp_path / "d.png") == 0
    assert run_dream(photo_file, "--guide", guide, "-o", tmp_path / "z.gif", "--zoom-frames", 2, "--zoom", 1.1,
                     "--rotate", 3) == 0
    plain, frame = read_png_text(tmp_path / "d.png"), read_png_text(tmp_path / "z_frames" / "frame_0001.png")
    for key in [*SETTINGS, "guide_file", "guide_sha256", "photo", "photo_sha256"]:
        assert frame[f"dreamlab:{key}"] == plain[f"dreamlab:{key}"], key
    assert (frame["dreamlab:frame"], frame["dreamlab:zoom"], frame["dreamlab:rotate"]) == ("1", "1.1", "3")
    assert frame["dreamlab:mode"] == "dream-zoom" and len(frame["dreamlab:zoom_key"]) == 16
    assert "dreamlab:zoom_frames" not in frame  # a frame does not depend on how many follow (resumes extend it)


# 7. Ctrl-C before the first zoom frame is finished

def test_ctrl_c_in_the_first_zoom_frame_exits_130_without_an_error(tmp_path, photo_file, monkeypatch, capsys):
    import dreamlab.optvis.dream as dream_module

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dream_module, "tiled_gradient", ctrl_c)
    assert run_dream(photo_file, "-o", tmp_path / "z.gif", "--zoom-frames", 3) == 130
    err = capsys.readouterr().err
    assert err == ("dreamlab: dreaming frame 0 of 3 (0-based) at 64x48: 2 octaves of 2 steps\n"
                   "dreamlab: interrupted during frame 0, before any zoom frame was finished; nothing was written "
                   "(run the command again to start over)\n")
    assert not (tmp_path / "z.gif").exists()


def ctrl_c_at_step(monkeypatch, step: int) -> None:
    """Make the dream's `step`-th step (counted over octaves and frames from 1) raise KeyboardInterrupt."""
    import dreamlab.optvis.dream as dream_module

    real, calls = dream_module.tiled_gradient, []

    def gradient(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(dream_module, "tiled_gradient", gradient)


def test_ctrl_c_in_the_first_zoom_frame_says_the_tensorboard_log_keeps_its_steps(tmp_path, photo_file, monkeypatch,
                                                                                    capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ctrl_c_at_step(monkeypatch, 3)
    board = tmp_path / "tb"
    assert run_dream(photo_file, "-o", tmp_path / "z.gif", "--zoom-frames", 3, "--tensorboard", board) == 130
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == ("dreamlab: interrupted during frame 0, before any zoom frame was finished; no frame or animation "
                    f"was written, the TensorBoard log in {str(board)!r} keeps the steps so far (run the command "
                    "again to start over)")
    (events,) = board.iterdir()
    acc = EventAccumulator(str(events))
    acc.Reload()
    assert [e.step for e in acc.Scalars("objective/dream")] == [1, 2]  # what the message promises is there
    assert not (tmp_path / "z.gif").exists()


# 8. a resumed zoom's TensorBoard steps continue

def test_a_resumed_zoom_continues_the_tensorboard_steps(tmp_path, photo_file):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = tmp_path / "tb"
    for frames in (2, 4):
        assert run_dream(photo_file, "-o", tmp_path / "z.gif", "--zoom-frames", frames, "--tensorboard", board) == 0
    steps = []
    for events in sorted(board.iterdir()):
        acc = EventAccumulator(str(events))
        acc.Reload()
        steps += [e.step for e in acc.Scalars("objective/dream")]
    assert steps == list(range(1, 4 * 2 * 2 + 1))  # 4 frames x 2 octaves x 2 steps, each once


def test_a_zoom_resumed_mid_frame_logs_each_tensorboard_step_once(tmp_path, photo_file, monkeypatch):
    """The first run logs frame 1's first steps, then stops; the resumed run dreams frame 1 again and tells
    TensorBoard (read as it reads a run: the whole folder) to drop the stopped run's steps from there on."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board, out = tmp_path / "tb", tmp_path / "z.gif"
    with monkeypatch.context() as patch:
        ctrl_c_at_step(patch, 7)
        assert run_dream(photo_file, "-o", out, "--zoom-frames", 3, "--tensorboard", board,
                         "--tensorboard-every", 1) == 130
    first = EventAccumulator(str(board))
    first.Reload()
    assert [e.step for e in first.Scalars("objective/dream")] == [1, 2, 3, 4, 5, 6]  # frame 1 stopped at step 7
    assert run_dream(photo_file, "-o", out, "--zoom-frames", 3, "--tensorboard", board, "--tensorboard-every", 1) == 0
    assert len(list(board.iterdir())) == 2
    run = EventAccumulator(str(board), size_guidance={"images": 0})  # 0: keep them all (the default samples 4)
    run.Reload()
    assert [e.step for e in run.Scalars("objective/dream")] == list(range(1, 13))  # 3 frames x 2 x 2 steps, once
    assert [e.step for e in run.Images("image/dream")] == list(range(1, 13))


# 9. the CLI's own names, and the sample photos

def test_the_cli_defaults_are_dream_s():
    """`dreamlab dream PHOTO` and dream(model, photo) dream alike: each default the CLI shows is dream()'s own."""
    import inspect

    from dreamlab.apps.cli import build_parser
    from dreamlab.apps.commands.dream import ZOOM_DEFAULTS

    signature = inspect.signature(dream).parameters
    args = build_parser(["dream"]).parse_args(["dream", "china"])
    shown = {name: getattr(args, name) for name in ("octaves", "octave_scale", "steps", "lr", "jitter", "tile", "seed")}
    shown.update(zoom=ZOOM_DEFAULTS["zoom"], rotate=ZOOM_DEFAULTS["rotate"])
    assert shown == {name: signature[name].default for name in shown}


@pytest.mark.parametrize("args, message", [
    (["--octave-scale", "1"], "--octave-scale 1 is out of range; valid: a finite number above 1; try 1.4 (the "
                              "default) to 2"),
    (["--octave-scale", "nan"], "--octave-scale nan is out of range"),
    (["--lr", "0"], "--lr 0 is out of range; valid: a finite number above 0, at most 1 (the mean change of a pixel "
                    "per step in [0,1] units: a larger step is more than the whole pixel range, and gives noise); "
                    "try 0.006 (the default)"),
    (["--lr", "inf"], "--lr inf is out of range"),
    (["--lr", "5"], "--lr 5 is out of range; valid: a finite number above 0, at most 1"),
    (["--jitter", "-1"], "--jitter -1 is out of range; valid: 0 or more pixels; --jitter 0 turns the roll off"),
    (["--tile", "10"], "--tile 10 is out of range; valid: at least 64 pixels, or auto; the default is auto (1024)"),
    (["--overlap", "-1"], "--overlap -1 is out of range; valid: 0 or more pixels"),
])
def test_cli_range_errors_name_the_option(photo_file, tmp_path, capsys, args, message):
    assert run_dream(photo_file, *args, "-o", tmp_path / "d.png") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dreamlab: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "d.png").exists()


def test_an_lr_above_1_is_refused_and_one_above_0_1_is_noted(photo_file, tmp_path, capsys):
    """lr is the mean change per step in [0, 1] units: above 1 a step is more than the pixel range (noise), and
    above 0.1 the photo is soon lost (a judgement call: a note, the dream still made)."""
    with pytest.raises(DreamlabError, match=r"^lr must be a finite number above 0 and at most 1 \(the mean change of "
                                            r"a pixel per step, in \[0, 1\] units: a larger step is more than the "
                                            r"whole pixel range, and gives noise; the default is 0.006\), got 1.5$"):
        dream("lenet-digits", smooth_photo(48, 64), lr=1.5, octaves=1, steps=1, device="cpu")
    with pytest.warns(DreamlabNote, match=r"^lr=0.5 \(--lr\) moves a pixel by 50% of its range per step on average"):
        assert dream("lenet-digits", smooth_photo(48, 64), lr=0.5, octaves=1, steps=1, device="cpu").image.shape \
            == (1, 48, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DreamlabNote)
        dream("lenet-digits", smooth_photo(48, 64), lr=0.1, octaves=1, steps=1, device="cpu")  # no note
    assert run_dream(photo_file, "--lr", 1, "-o", tmp_path / "d.png") == 0  # the largest taken
    err = capsys.readouterr().err
    assert err.startswith("dreamlab: note: lr=1 (--lr) moves a pixel by 100% of its range per step on average, so "
                          "the photo is soon lost in saturated noise (with hed-vgg16 the score falls above 0.1); the "
                          "default is 0.006, and 0.03 already dreams strongly\n")
    assert (tmp_path / "d.png").is_file()


def test_cli_dreams_a_sample_photo_by_name(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    assert main(["dream", "china", "--model", "lenet-digits", "--octaves", "1", "--steps", "1", "--device",
                 "cpu"]) == 0
    assert capsys.readouterr().err == "dreamlab: dreaming the photo at 640x427: 1 octave of 1 step\n"
    with Image.open(tmp_path / "china_dream.png") as image:
        assert image.size == (640, 427)
        assert image.text["dreamlab:photo"] == "china"
        assert image.text["dreamlab:photo_sha256"] == pixel_digest(sample_photo("china", "test"))
        assert image.text["dreamlab:photo_sha256_of"].startswith("pixels")
    assert main(["dream", "chin.png", "--model", "lenet-digits"]) == 2
    assert capsys.readouterr().err == ("dreamlab: error: cannot read photo 'chin.png': no such file; give a PNG/JPEG "
                                       "path or one of china, flower (scikit-learn's sample photos)\n")


def test_the_python_api_dreams_a_photo_file_or_sample_by_name(photo_file):
    """dream() takes what features() and the CLI take: a path, or china/flower; the same pixels give one result."""
    kwargs = dict(octaves=1, steps=1, device="cpu")
    by_path = dream("lenet-digits", str(photo_file), "conv2", guide=photo_file, **kwargs)
    by_tensor = dream("lenet-digits", load_image(photo_file), "conv2", guide=load_image(photo_file), **kwargs)
    assert torch.equal(by_path.image, by_tensor.image)
    with pytest.raises(DreamlabError, match="cannot read image 'nope.png': no such file; give a PNG/JPEG path or one"):
        dream("lenet-digits", "nope.png", **kwargs)


@pytest.mark.parametrize("shape, hint", [
    ((1, 3, 64, 64), "a batch of one: pass image[0]"),
    ((64, 64, 3), "channels last (NumPy/PIL's layout): pass image.permute(2, 0, 1)"),
])
def test_a_photo_of_the_wrong_layout_says_what_to_pass(shape, hint):
    with pytest.raises(DreamlabError) as error:
        dream("lenet-digits", torch.rand(shape), octaves=1, steps=1, device="cpu")
    assert str(error.value) == f"image must be [C,H,W] with 1 or 3 channels, got shape {list(shape)}; {hint}"


# 10. a long zoom's animation under the open-file limit

@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_an_animation_of_more_frames_than_open_files_allowed_is_written(tmp_path, suffix):
    resource = pytest.importorskip("resource")
    import os

    from dreamlab.apps.commands.dream import write_animation

    frames = [save_png(torch.rand(3, 8, 8), tmp_path / f"frame_{i:04d}.png") for i in range(120)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_now = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 64
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 60, hard))  # fewer than the frames: macOS's 256 in small
    try:
        out = write_animation(frames, tmp_path / f"z{suffix}", 12)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with Image.open(out) as animation:
        assert animation.n_frames == 120
