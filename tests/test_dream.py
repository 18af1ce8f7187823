"""DeepDream on photos: the photo keeps its size and the objective goes up; octaves, tiles, guide, zoom, resume."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from dreamlab import dream
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.io import read_png_text, save_png
from dreamlab.optvis.dream import guided
from dreamlab.optvis.dream_tiles import tiles, zoom_rotate

from models_fixtures import random_googlenet

pytestmark = pytest.mark.usefixtures("one_thread")


def smooth_photo(height: int, width: int, seed: int = 0, channels: int = 3) -> torch.Tensor:
    """A photo-like image: smooth random colour fields, not square."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, channels, max(2, height // 8), max(2, width // 8), generator=generator)
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]


@pytest.fixture(scope="module")
def googlenet() -> nn.Module:
    return random_googlenet()


def layer_score(model: nn.Module, image: torch.Tensor, objective: str = "inception4c") -> float:
    """The objective on a whole image, measured the way dream() reports it (one piece)."""
    return dream(model, image, objective, recipe="googlenet", octaves=1, steps=1, lr=1e-9, device="cpu").initial_score


def test_dream_keeps_the_photo_size_and_raises_the_layer(googlenet):
    photo = smooth_photo(72, 104)
    result = dream(googlenet, photo, "inception4c", recipe="googlenet", octaves=2, steps=4, device="cpu")
    assert result.image.shape == photo.shape
    assert result.final_score > result.initial_score
    assert result.initial_score == pytest.approx(layer_score(googlenet, photo), rel=1e-4)
    assert result.provenance["dreamlab:size"] == "72x104"
    assert result.provenance["dreamlab:objective"] == "inception4c"


def test_one_octave_differs_from_four_and_both_raise_the_objective():
    photo = smooth_photo(96, 128)
    one = dream("lenet-digits", photo, octaves=1, steps=5, device="cpu")
    four = dream("lenet-digits", photo, octaves=4, steps=5, device="cpu")
    assert one.final_score > one.initial_score and four.final_score > four.initial_score
    assert (one.image - four.image).abs().mean() > 0.01
    assert one.image.shape == four.image.shape == (1, 96, 128)  # the RGB photo greyed for a 1-channel model


def test_tiles_give_the_one_piece_result():
    photo = smooth_photo(200, 272, seed=3)
    assert len(tiles(200, 272, tile=192, overlap=32)) == 6
    whole = dream("lenet-digits", photo, octaves=2, steps=6, device="cpu", tile=None)
    tiled = dream("lenet-digits", photo, octaves=2, steps=6, device="cpu", tile=192, overlap=32)
    changed = (whole.image - photo.mean(0, keepdim=True)).abs().mean()
    assert changed > 0.02  # the dream did something, and the tiles did the same thing
    assert (whole.image - tiled.image).abs().max() <= 2 / 255


@pytest.mark.parametrize("objective, splits", [
    ("conv2", True), ("conv2:3", True), ("conv2:3 + 0.5*conv2:7", True), ("2*conv2:3 - 1", True),
    ("conv2:3 / 2", True), ("conv2:3 * conv2:4", False), ("2 / conv2:3", False),
    ("conv2:3 + conv1:1", False)])
def test_tiled_dreams_take_only_objectives_whose_tiles_add_up(objective, splits):
    """Tiles add up their scores: right for means over one layer's positions, wrong for a product, or two layers
    (weighted by the first one's positions)."""
    photo = smooth_photo(272, 320, seed=3)
    tiled = lambda: dream("lenet-digits", photo, objective, octaves=1, steps=1, device="cpu", tile=256)  # noqa: E731
    if splits:
        assert tiled().image.shape == (1, 272, 320)
    else:
        with pytest.raises(DreamlabError, match=r"the 320x272 photo is larger than tile=256 \(--tile\), so it is dreamed "
                                                r"in tiles.*dream in one piece with tile=320 \(--tile 320\)"):
            tiled()
        dream("lenet-digits", photo, objective, octaves=1, steps=1, device="cpu", tile=320)  # one piece: fine


@pytest.mark.parametrize("objective", ["conv2:3@centre", "conv2:3@2,1", "conv2:3 + 0.5*conv2:4@1,1"])
def test_a_neuron_is_refused_with_render_init_named(objective):
    """A neuron reads one fixed position, which the roll moves every step (it barely rose before) and the octaves
    rescale: refused, naming the command that optimizes a neuron from a photo."""
    quoted = shlex.quote(objective)
    with pytest.raises(DreamlabError, match=re.escape(f"{objective!r} reads a neuron at a fixed position, which the "
                                                      f"dream's random roll") + ".*" + re.escape(
                           f"`dreamlab render {quoted} --init PHOTO`")):
        dream("lenet-digits", smooth_photo(40, 40, seed=1), objective, octaves=1, steps=1, device="cpu")


def test_tiles_cover_the_image_once():
    parts = tiles(300, 500, tile=256, overlap=64)
    covered = torch.zeros(300, 500)
    for part in parts:
        covered[part.core] += 1
        assert part.crop[0].start <= part.core[0].start and part.crop[1].stop >= part.core[1].stop
    assert torch.all(covered == 1)


def test_guide_moves_the_features_towards_the_guide(googlenet):
    from dreamlab.optvis.capture import capture

    photo, guide = smooth_photo(64, 80, seed=1), smooth_photo(64, 64, seed=10)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def features(image: torch.Tensor) -> torch.Tensor:  # [C, positions] at inception3b, as dream() computes them
        with torch.no_grad(), capture(googlenet, ["inception3b"]) as cap:
            return cap.run((image[None] - mean) / std)["inception3b"][0].flatten(1)

    towards_guide = guided("inception3b", features(guide))
    kwargs = dict(recipe="googlenet", octaves=2, steps=5, device="cpu")
    plain = dream(googlenet, photo, "inception3b", **kwargs)
    result = dream(googlenet, photo, "inception3b", guide=guide, **kwargs)
    photo_dot = dream(googlenet, photo, towards_guide, recipe="googlenet", octaves=1, steps=1, lr=1e-9,
                      device="cpu").initial_score
    assert result.initial_score == pytest.approx(photo_dot, rel=1e-4)  # dream() used this guide objective
    assert result.final_score > photo_dot  # the dot product with the guide's features went up
    assert result.provenance["dreamlab:guide"] == "inception3b features"

    def likeness(image: torch.Tensor) -> float:  # the direction of the mean feature, the guide's vs the image's
        return F.cosine_similarity(features(image).mean(1), features(guide).mean(1), dim=0).item()

    assert likeness(result.image) > likeness(plain.image)  # the guide, not just any dream, moved it there


def test_a_fixed_size_model_sees_the_guide_at_its_size():
    """torchvision's ViT takes 224x224 only: a 64x96 guide is read at that size, not refused (by cap.run's size
    advice, which is for cap.run's callers)."""
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(image_size=224, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)
    result = dream(vit.eval(), smooth_photo(224, 224), "encoder.layers.encoder_layer_1", guide=smooth_photo(64, 96),
                   octaves=1, steps=1, device="cpu")
    assert result.provenance["dreamlab:guide"] == "encoder.layers.encoder_layer_1 features"


def test_zoom_makes_n_frames_of_the_photo_size():
    photo = smooth_photo(48, 64)
    seen = []
    result = dream("lenet-digits", photo, octaves=1, steps=2, zoom_frames=3, zoom=1.1, rotate=5, device="cpu",
                   on_frame=lambda i, frame: seen.append(i))
    assert seen == [0, 1, 2] and result.frame_numbers == [0, 1, 2]
    assert [tuple(f.shape) for f in result.frames] == [(1, 48, 64)] * 3
    assert (result.frames[1] - result.frames[2]).abs().mean() > 0.005


def test_zoom_rotate_identity_and_quarter_turn():
    image = smooth_photo(32, 32)[None]
    assert torch.allclose(zoom_rotate(image, 1.0, 0.0), image, atol=1e-5)
    turned = zoom_rotate(image, 1.0, 90.0)
    assert (turned - torch.rot90(image, 1, (-2, -1))).abs().mean() < 1e-4 or \
        (turned - torch.rot90(image, -1, (-2, -1))).abs().mean() < 1e-4
    assert (zoom_rotate(image, 1.5, 0.0) - image).abs().mean() > 0.01


def test_on_step_sees_every_step_and_ctrl_c_keeps_what_is_done():
    photo = smooth_photo(48, 64)
    steps = []
    dream("lenet-digits", photo, octaves=2, steps=3, device="cpu", on_step=lambda s: steps.append((s.octave, s.step)))
    assert steps == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]

    def stop_in_second_octave(step) -> None:
        if step.octave == 1:
            raise KeyboardInterrupt

    result = dream("lenet-digits", photo, octaves=2, steps=3, device="cpu", on_step=stop_in_second_octave)
    assert result.interrupted and result.image.shape == (1, 48, 64)
    # the provenance says what the image holds: octave 0 and the one step of octave 1 that on_step saw
    assert result.provenance["dreamlab:interrupted"] == "during octave 2 of 2, after 1 of its 3 steps"
    assert result.provenance["dreamlab:octaves_done"] == "1"
    assert result.provenance["dreamlab:last_octave_steps"] == "1"
    assert result.provenance["dreamlab:octaves"] == "2"  # the settings asked for stay
    assert "dreamlab:interrupted" not in dream("lenet-digits", photo, octaves=1, steps=1, device="cpu").provenance

    def stop_in_second_frame(step) -> None:
        if step.frame == 1:
            raise KeyboardInterrupt

    zoomed = dream("lenet-digits", photo, octaves=1, steps=2, zoom_frames=3, device="cpu",
                   on_step=stop_in_second_frame)
    assert zoomed.interrupted and zoomed.frame_numbers == [0]
    assert zoomed.provenance["dreamlab:interrupted"] == "during frame 1 of 3 (0-based), which is not kept"
    assert zoomed.provenance["dreamlab:frames_done"] == "1"


def test_cli_ctrl_c_saves_a_png_that_says_how_far_the_dream_got(photo_file, tmp_path, monkeypatch, capsys):
    import dreamlab.optvis.dream as dream_module

    real, calls = dream_module.tiled_gradient, []

    def ctrl_c_at_the_sixth_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # octave 1 has its 3 steps, octave 2 two of them
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(dream_module, "tiled_gradient", ctrl_c_at_the_sixth_step)
    out = tmp_path / "d.png"
    assert main(["dream", str(photo_file), "--model", "lenet-digits", "--octaves", "3", "--steps", "3",
                 "--device", "cpu", "-o", str(out)]) == 130
    text = read_png_text(out)
    assert text["dreamlab:interrupted"] == "during octave 2 of 3, after 2 of its 3 steps"
    assert (text["dreamlab:octaves_done"], text["dreamlab:last_octave_steps"]) == ("1", "2")
    assert (text["dreamlab:octaves"], text["dreamlab:steps"]) == ("3", "3")
    assert "dreamlab: interrupted; saved the octaves done so far (during octave 2 of 3" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, message", [
    (dict(objective="conv2:0-3"), "has 4 units"),
    (dict(objective="conv2:1", guide=torch.rand(1, 32, 32)), "whole-layer objective"),
    (dict(octaves=9), r"use octaves=\d+ \(--octaves \d+\) or fewer"),
    (dict(octave_scale=1.0), "octave_scale must be"),
    (dict(tile=10), "tile must be"),
    (dict(objective="conv9"), "unknown layer 'conv9'; close matches: conv1, conv2"),
    (dict(objective="nope"), "unknown layer 'nope'; valid: conv1, .*; dream a layer such as conv2 \\(the recipe's "
                             "default\\); `dreamlab layers lenet-digits` lists them all"),
    (dict(zoom=4.5), "zoom must be a finite number from 0.25 to 4, got 4.5"),
    (dict(zoom=1e308), "zoom must be a finite number from 0.25 to 4"),
    (dict(rotate=361.0), "rotate must be a finite number from -360 to 360, got 361.0"),
])
def test_bad_arguments_get_one_line(kwargs, message):
    with pytest.raises(DreamlabError, match=message):
        dream("lenet-digits", smooth_photo(48, 64), device="cpu", **{"octaves": 2, **kwargs})


@pytest.mark.parametrize("recipe", ["googlenet", "resnet50", pytest.param("vgg16", marks=pytest.mark.slow),
                                    "lenet-digits"])  # building VGG16 takes ~10 s
def test_every_recipe_dreams_with_random_weights(recipe):
    result = dream(recipe, smooth_photo(40, 56), weights="none", octaves=1, steps=1, device="cpu")
    assert result.image.shape[-2:] == (40, 56)
    assert result.provenance["dreamlab:weights"] == "none"


# the command line

@pytest.fixture()
def photo_file(tmp_path):
    path = tmp_path / "photo.png"
    save_png(smooth_photo(48, 64), path)
    return path


def run_dream(*args) -> int:
    return main(["dream", *map(str, args), "--model", "lenet-digits", "--octaves", "2", "--steps", "2",
                 "--device", "cpu"])


def test_cli_same_seed_same_bytes_and_provenance(photo_file, tmp_path):
    for name, seed in (("a.png", 0), ("b.png", 0), ("c.png", 1)):
        assert run_dream(photo_file, "-o", tmp_path / name, "--seed", seed) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "c.png").read_bytes()
    text = read_png_text(tmp_path / "a.png")
    assert text["dreamlab:model"] == "lenet-digits" and text["dreamlab:octaves"] == "2"
    assert text["dreamlab:objective"] == "conv2" and text["dreamlab:photo"] == str(photo_file)  # as given
    with Image.open(tmp_path / "a.png") as image:
        assert image.size == (64, 48)


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_cli_zoom_writes_an_animation_of_n_frames(photo_file, tmp_path, suffix):
    out = tmp_path / f"zoom{suffix}"
    assert run_dream(photo_file, "-o", out, "--zoom-frames", 3, "--rotate", 2) == 0
    with Image.open(out) as animation:
        assert animation.n_frames == 3 and animation.size == (64, 48)
        # the first frame's provenance, as JSON where the format keeps text
        kept = animation.info["comment"] if suffix == ".gif" else animation.getexif()[0x010E]
    assert sorted(p.name for p in (tmp_path / "zoom_frames").iterdir()) == [f"frame_000{i}.png" for i in range(3)]
    first = read_png_text(tmp_path / "zoom_frames" / "frame_0000.png")
    del first["dreamlab:frame"], first["dreamlab:score"]  # the frame's own
    assert json.loads(kept) == {**first, "dreamlab:frames": "3", "dreamlab:fps": "12"}
    assert first["dreamlab:rotate"] == "2" and first["dreamlab:mode"] == "dream-zoom"


def test_cli_zoom_resumes_from_the_last_frame(photo_file, tmp_path, capsys):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_dream(photo_file, "-o", tmp_path / "s.gif", "--zoom-frames", 4, "--frames-dir", straight) == 0
    assert run_dream(photo_file, "-o", tmp_path / "r.gif", "--zoom-frames", 2, "--frames-dir", resumed) == 0
    (resumed / "frame_0001.png").unlink()  # as if stopped during frame 1
    assert run_dream(photo_file, "-o", tmp_path / "r.gif", "--zoom-frames", 4, "--frames-dir", resumed) == 0
    assert "resuming at frame 1" in capsys.readouterr().err
    for i in range(4):
        assert (straight / f"frame_{i:04d}.png").read_bytes() == (resumed / f"frame_{i:04d}.png").read_bytes()
    assert run_dream(photo_file, "-o", tmp_path / "again.gif", "--zoom-frames", 4, "--frames-dir", resumed) == 0
    assert capsys.readouterr().err == (f"dreamlab: all 4 frames are already in {resumed}; writing the animation "
                                       f"from them\n")
    assert (tmp_path / "again.gif").read_bytes() == (tmp_path / "r.gif").read_bytes()
    # frames of other settings are not continued
    assert run_dream(photo_file, "-o", tmp_path / "r.gif", "--zoom-frames", 5, "--frames-dir", resumed,
                     "--seed", 7) == 2
    assert "other settings" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--zoom-frames", "2", "-o", "z.png"], "writes an animation"),
    (["-o", "z.gif"], "saved as PNG"),
    (["--objective", "logit:3"], "fixed-size layer"),
    (["--zoom-frames", "2", "--zoom", "1e308", "-o", "z.gif"],
     "--zoom 1e+308 is out of range; valid: 0.25 to 4 (magnification per frame)"),
    (["--zoom-frames", "2", "--zoom", "0.1", "-o", "z.gif"], "--zoom 0.1 is out of range; valid: 0.25 to 4"),
    (["--zoom-frames", "2", "--rotate", "1e308", "-o", "z.gif"],
     "--rotate 1e+308 is out of range; valid: -360 to 360 degrees per frame"),
    (["--zoom", "2"], "--zoom applies to the endless zoom only: add --zoom-frames N, or leave it out"),
    (["--rotate", "2"], "--rotate applies to the endless zoom only"),
    (["--frames-dir", "f"], "--frames-dir applies to the endless zoom only"),
    (["--zoom", "2", "--fps", "3"], "--zoom, --fps apply to the endless zoom only: add --zoom-frames N, or leave "
                                    "them out"),
    (["--objective", "nope"], "unknown layer 'nope'; valid: conv1, relu1"),
    (["--octaves", "1", "--objective", "logit:3"],
     "lenet-digits rejected the 64x48 photo itself (mat1 and mat2 shapes cannot be multiplied (1x9600 and 2450x500)"
     "), so no number of octaves helps; objectives past a fixed-size layer (logit) need the model's 28x28 input: "
     "use a layer objective, or resize the photo to 28x28 and dream it with octaves=1 (--octaves 1)"),
])
def test_cli_errors_are_one_line(photo_file, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert run_dream(photo_file, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("dreamlab: error: ") and message in err and err.count("\n") == 1
    assert "fewer octaves" not in err  # (the photo's own size is refused: fewer octaves would not help)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]  # nothing written


def test_a_photo_of_the_input_size_is_told_to_use_fewer_octaves(tmp_path, capsys):
    """A logit needs the model's input size: a 28x28 photo has it, its smaller octaves do not."""
    photo = tmp_path / "digit.png"
    save_png(smooth_photo(28, 28, channels=1), photo)
    assert run_dream(photo, "--objective", "logit:3", "-o", tmp_path / "d.png") == 2
    err = capsys.readouterr().err
    assert "lenet-digits rejected a 20x20 octave" in err and "though it takes the photo's size" in err
    assert "or fewer octaves (octaves=1, --octaves 1, dreams the photo at its size only)" in err
    assert main(["dream", str(photo), "--model", "lenet-digits", "--objective", "logit:3", "--octaves", "1",
                 "--steps", "1", "--device", "cpu", "-o", str(tmp_path / "d.png")]) == 0


def test_cli_mp4_without_the_video_extra(photo_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if the extra were not installed
    assert run_dream(photo_file, "-o", tmp_path / "z.mp4", "--zoom-frames", 2) == 2
    assert "dreamlab[video]" in capsys.readouterr().err


def test_bench_dream_workload_reports_ms_per_step():
    from dreamlab.apps.bench import bench_dream

    figures = bench_dream(steps=2, device=torch.device("cpu"), size=(64, 96))
    assert figures["what"] == "dreamlab_dream" and figures["size"] == "96x64"
    assert 0 < figures["ms_per_step"] < 1000 * figures["seconds"] and figures["steps"] == 2


def test_cli_zoom_mp4_with_the_video_extra(photo_file, tmp_path):
    imageio = pytest.importorskip("imageio.v2")
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "zoom.mp4"
    assert run_dream(photo_file, "-o", out, "--zoom-frames", 3) == 0
    with imageio.get_reader(out) as reader:
        assert reader.count_frames() == 3 and tuple(reader.get_meta_data()["size"]) == (64, 48)
    dump = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "quiet", "-i", str(out), "-f", "ffmetadata", "-"],
                          capture_output=True, text=True, check=True).stdout
    comment = next(line.partition("=")[2] for line in dump.splitlines() if line.startswith("comment="))
    assert json.loads(comment)["dreamlab:frames"] == "3"
    assert json.loads(comment)["dreamlab:objective"] == read_png_text(tmp_path / "zoom_frames" / "frame_0002.png")[
        "dreamlab:objective"]


def test_cli_ctrl_c_while_saving_waits_for_the_png(photo_file, tmp_path, monkeypatch, capsys):
    import signal

    import dreamlab.io as io_module

    real = io_module.save_png

    def ctrl_c_then_save(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)  # a second Ctrl-C, as the user presses it while the PNG is written
        return real(*args, **kwargs)

    monkeypatch.setattr(io_module, "save_png", ctrl_c_then_save)
    out = tmp_path / "d.png"
    assert main(["dream", str(photo_file), "--model", "lenet-digits", "--octaves", "1", "--steps", "2",
                 "--device", "cpu", "-o", str(out)]) == 130
    assert "dreamlab:score" in read_png_text(out)
    assert capsys.readouterr().err.endswith("dreamlab: interrupted while saving; saved the dream first\n")
