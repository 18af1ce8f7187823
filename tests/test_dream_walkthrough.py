"""DeepDream on photos, a new user's walkthrough: a guide at an early layer (bounded memory, out-of-memory said as
such), messages of bad options, --fps, the zoom frames' score, --recipe's help, zoom without zoom_frames, paths
that name sample photos."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from test_dream_fixes import run_dream, smooth_photo

import dreamlab.optvis.dream as dream_module
from dreamlab import dream
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError, takes_positional
from dreamlab.io import save_png
from dreamlab.optvis.dream import GUIDE_POSITIONS, guide_columns, guided

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = dict(weights="none", octaves=1, steps=1, device="cpu")


@pytest.fixture()
def photo_file(tmp_path):
    return save_png(smooth_photo(48, 64), tmp_path / "photo.png")


# 1. a guide at an early layer

def test_the_guide_match_in_chunks_gives_the_one_piece_score_and_gradient():
    generator = torch.Generator().manual_seed(0)
    acts = torch.randn(1, 8, 37, generator=generator, requires_grad=True)
    guide = torch.randn(8, 50, generator=generator)
    best = torch.einsum("bcn,cm->bnm", acts.detach(), guide).argmax(-1)  # the match all at once
    expected = (acts.transpose(1, 2) * guide.t()[best]).sum(-1).mean(-1)
    (want,) = torch.autograd.grad(expected.sum(), acts)
    chunked = guided("x", guide, chunk=100)({"x": acts})  # 2 positions' rows at a time: 19 chunks
    (got,) = torch.autograd.grad(chunked.sum(), acts)
    assert torch.equal(chunked, expected) and torch.equal(got, want)


def test_a_guide_map_larger_than_the_bound_is_sampled_on_a_grid():
    large = torch.randn(2, 342, 512)  # an early layer's map of a 512 px guide
    columns = guide_columns(large)
    assert columns.shape[1] <= GUIDE_POSITIONS
    assert torch.equal(columns, large[:, ::4, ::4].flatten(1))  # every 4th: 86 x 128 (every 3rd: 19,494)
    small = torch.randn(2, 43, 64)  # features.22 of a 512 px guide: kept whole
    assert torch.equal(guide_columns(small), small.flatten(1))


def test_a_guided_dream_at_an_early_layer_matches_a_bounded_guide(monkeypatch):
    seen = []

    def stop(layer, features, *args, **kwargs):  # the dream's guide features; stop before any matching
        seen.append(tuple(features.shape))
        raise KeyboardInterrupt

    monkeypatch.setattr(dream_module, "guided", stop)
    with pytest.raises(KeyboardInterrupt):  # lenet's conv1 of a 512x342 guide: 171,000 positions unbounded
        dream("lenet-digits", smooth_photo(107, 160), "conv1", guide=smooth_photo(342, 512, seed=1), **FAST)
    assert seen and seen[0][1] <= GUIDE_POSITIONS


CPU_OOM = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
           "allocate 11991121920 bytes. Error code 12 (Cannot allocate memory)")


def test_running_out_of_memory_is_said_as_such_not_as_a_size_the_model_rejects(monkeypatch, photo_file, capsys):
    def score(self, crop):
        if crop.shape[-1] != 28:  # the model's own size, the check's first forward, passes
            raise RuntimeError(CPU_OOM)
        return original(self, crop)

    original = dream_module._Dreamer.score
    monkeypatch.setattr(dream_module._Dreamer, "score", score)
    with pytest.raises(DreamlabError) as refused:
        dream("lenet-digits", str(photo_file), "conv2", **FAST)
    assert str(refused.value) == (
        "ran out of cpu memory (one allocation of 12 GB) dreaming 'conv2' on the 64x48 photo; try a later layer, "
        "a smaller tile (--tile N, tile=N in Python: below the photo's longer side, 64 px, it is dreamed in "
        "pieces), or a smaller photo")
    assert run_dream(photo_file, "-o", photo_file.with_name("out.png")) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("dreamlab: error: ran out of cpu memory") and "input only" not in err


# 2. messages

def test_a_value_that_starts_with_a_dash_gets_the_equals_spelling(photo_file, capsys):
    with pytest.raises(SystemExit) as exited:
        run_dream(photo_file, "--objective", "-conv2")
    assert exited.value.code == 2
    assert capsys.readouterr().err == ("dreamlab: error: argument --objective: expected one argument; a value that "
                                       "starts with '-' goes after '=': --objective=-conv2 (see dreamlab dream "
                                       "--help)\n")
    assert run_dream(photo_file, "--objective=-conv2", "-o", photo_file.with_name("o.png")) == 0  # which works


def test_a_guide_that_is_not_an_image_is_named_as_the_guide(tmp_path, photo_file, capsys):
    (tmp_path / "notimage.png").write_text("not an image")
    assert run_dream(photo_file, "--guide", tmp_path / "notimage.png") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dreamlab: error: cannot read guide {str(tmp_path / 'notimage.png')!r}: ")


def test_a_tiled_photo_takes_the_logit_of_a_model_whose_output_is_a_map():
    from collections import OrderedDict

    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 4, 3, padding=1), relu=nn.ReLU(),
                                      head=nn.Conv2d(4, 2, 3, padding=1))).eval()
    photo = smooth_photo(200, 300)  # tiles of 256: two pieces
    kwargs = dict(recipe="lenet-digits", octaves=1, steps=2, tile=256, device="cpu")
    by_logit = dream(model, photo, "logit:1", **kwargs)  # the output map's channel 1, as head:1 (README)
    by_layer = dream(model, photo, "head:1", **kwargs)
    assert by_logit.provenance["dreamlab:overlap"] == by_layer.provenance["dreamlab:overlap"] == "64"
    assert torch.equal(by_logit.image, by_layer.image) and by_logit.final_score == by_layer.final_score


def test_an_mp4_encoder_that_fails_inside_imageio_is_one_clear_line_and_keeps_the_frames(tmp_path, photo_file,
                                                                                         monkeypatch, capsys):
    import dreamlab.apps.commands.dream as command

    class Broken:  # imageio-ffmpeg on an ffmpeg that lists no encoders: header_footer[1] of a split
        @staticmethod
        def get_writer(path, **kwargs):
            raise IndexError("list index out of range")

    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    monkeypatch.setattr(command, "_imageio", lambda: Broken)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: "/opt/ffmpeg")
    out = tmp_path / "z.mp4"
    assert run_dream(photo_file, "-o", out, "--zoom-frames", 2) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (f"dreamlab: error: could not encode {str(out)!r} (imageio-ffmpeg could not use the ffmpeg "
                   f"'/opt/ffmpeg': IndexError: list index out of range; check that it is a working ffmpeg with "
                   f"H.264, or name one with IMAGEIO_FFMPEG_EXE); the frames are kept in "
                   f"{str(tmp_path / 'z_frames')!r}: run again with -o NAME.webp or .gif and --frames-dir "
                   f"{tmp_path / 'z_frames'} to make the animation from them")
    assert sorted(p.name for p in (tmp_path / "z_frames").iterdir()) == ["frame_0000.png", "frame_0001.png"]
    assert not out.exists()


# 3. --fps

@pytest.mark.parametrize("suffix, fps, limit, step", [(".gif", 101, 100, "10 ms"), (".webp", 5000, 1000, "1 ms")])
def test_a_frame_rate_the_format_cannot_show_is_refused_before_dreaming(tmp_path, photo_file, capsys, suffix, fps,
                                                                        limit, step):
    out = tmp_path / f"z{suffix}"
    assert run_dream(photo_file, "-o", out, "--zoom-frames", 2, "--fps", fps) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dreamlab: error: --fps {fps} is more than a {'GIF' if suffix == '.gif' else 'WebP'} "
                          f"can show: its frame delay is in {step} steps, so {limit} fps at most; give --fps {limit} "
                          f"or less") and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "z_frames").exists()


def test_a_gif_at_100_fps_gets_10_ms_frames(tmp_path, photo_file):
    from PIL import Image

    assert run_dream(photo_file, "-o", tmp_path / "z.gif", "--zoom-frames", 2, "--fps", 100) == 0
    with Image.open(tmp_path / "z.gif") as gif:
        assert gif.info["duration"] == 10


# 4. the zoom frames' score

def test_each_zoom_frame_png_carries_its_score(tmp_path, photo_file):
    from dreamlab.io import load_image, read_png_text

    assert run_dream(photo_file, "-o", tmp_path / "z.gif", "--zoom-frames", 3, "--zoom", 1.1) == 0
    texts = [read_png_text(tmp_path / "z_frames" / f"frame_{i:04d}.png") for i in range(3)]
    scores = [float(text["dreamlab:score"]) for text in texts]
    kwargs = dict(weights="default", octaves=1, steps=1, lr=1e-12, device="cpu")
    for i in range(3):  # the objective on the frame as saved: a dream of it with a step of ~0 measures it
        frame = load_image(tmp_path / "z_frames" / f"frame_{i:04d}.png")
        assert scores[i] == pytest.approx(dream("lenet-digits", frame, **kwargs).initial_score, rel=1e-5)
    with Image.open(tmp_path / "z.gif") as gif:  # the animation keeps no one frame's score
        assert "dreamlab:score" not in json.loads(gif.info["comment"])


def test_dream_gives_on_frame_the_score_where_it_takes_one():
    seen = []
    result = dream("lenet-digits", smooth_photo(48, 64), zoom_frames=2, zoom=1.1,
                   on_frame=lambda i, image, score: seen.append((i, score)), **FAST)
    assert [i for i, _ in seen] == [0, 1] and [s for _, s in seen] == result.frame_scores
    assert result.final_score == result.frame_scores[-1]
    two = dream("lenet-digits", smooth_photo(48, 64), zoom_frames=2, zoom=1.1, on_frame=lambda i, image: None,
                **FAST)  # the documented two-argument callback still works
    assert two.frame_scores == result.frame_scores


class _NoSignature:
    """A callable whose signature cannot be read, as some builtins'."""

    __signature__ = "unreadable"  # inspect.signature raises TypeError

    def __init__(self, seen: list) -> None:
        self.seen = seen

    def __call__(self, *args: object) -> None:
        self.seen.append(len(args))


@pytest.mark.parametrize("make, given", [
    (lambda seen: lambda i, image: seen.append(2), 2),
    (lambda seen: lambda i, image, score: seen.append(3), 3),
    (lambda seen: lambda *args: seen.append(len(args)), 3),
    (lambda seen: lambda i, image, score=None: seen.append(2 if score is None else 3), 3),
    (lambda seen: lambda i, image, *, score=None: seen.append(2 if score is None else 3), 2),
    (_NoSignature, 2),  # called as documented first
])
def test_on_frame_gets_the_score_as_its_signature_reads(make, given):
    seen: list[int] = []
    dream("lenet-digits", smooth_photo(32, 32), zoom_frames=1, on_frame=make(seen), **FAST)
    assert seen == [given]


def test_a_builtin_without_a_signature_is_taken_as_on_frame():
    assert takes_positional(slice, 2) is None  # unreadable, so it is not refused: called as on_frame(i, image)
    assert dream("lenet-digits", smooth_photo(32, 32), zoom_frames=1, on_frame=slice, **FAST).frames


# 5. --recipe's help

@pytest.mark.parametrize("command", ["dream", "render"])
def test_the_help_of_recipe_says_it_replaces_model(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("--recipe RECIPE a recipe TOML file, instead of --model (the file names its model; giving both is "
            "refused)") in text
    assert "instead of the model's shipped recipe" not in text


# 6. zoom without zoom_frames

@pytest.mark.parametrize("kwargs, said", [
    (dict(zoom=2.0), "zoom applies to the endless zoom only: add zoom_frames=N, or leave it out"),
    (dict(rotate=5), "rotate applies to the endless zoom only: add zoom_frames=N, or leave it out"),
    (dict(zoom=2.0, rotate=5), "zoom and rotate apply to the endless zoom only: add zoom_frames=N, or leave them "
                               "out")])
def test_the_api_refuses_zoom_settings_without_zoom_frames(kwargs, said):
    with pytest.raises(DreamlabError) as refused:
        dream("lenet-digits", smooth_photo(48, 64), **kwargs, **FAST)
    assert str(refused.value) == said
    assert dream("lenet-digits", smooth_photo(48, 64), zoom_frames=1, **kwargs, **FAST).frames  # with it: taken


# 7. a path that names a sample photo

def test_a_path_with_a_folder_is_a_file_even_where_its_name_is_a_sample(tmp_path, monkeypatch, capsys):
    from dreamlab.io import read_png_text

    monkeypatch.chdir(tmp_path)
    assert run_dream("./china", "-o", "c.png") == 2  # no file ./china: not the sample photo
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"dreamlab: error: cannot read photo {str(tmp_path / 'china')!r}: no such file; give a PNG/JPEG path or one "
        f"of china, flower (scikit-learn's sample photos: write china, without a folder, for it)")
    save_png(smooth_photo(48, 64), tmp_path / "photo.png").rename(tmp_path / "china")  # a PNG without a suffix
    assert run_dream("./china", "--guide", "flower/", "-o", "c.png") == 2  # flower/ is a folder's path too
    assert "cannot read guide" in capsys.readouterr().err
    assert run_dream("./china", "-o", "c.png") == 0
    assert read_png_text(tmp_path / "c.png")["dreamlab:size"] == "48x64"  # the file, not the 427x640 sample


def test_the_api_reads_a_str_with_a_folder_as_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DreamlabError, match=r"^cannot read image './flower': no such file; .*write flower, without"):
        dream("lenet-digits", "./flower", **FAST)


# 8. README's tiling figure

def test_the_readme_measures_tiling_with_a_tile_the_engine_takes():
    import re
    from pathlib import Path

    from dreamlab.optvis.dream import _tiling

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    measured = re.search(r"`dreamlab dream (\S+) --model hed-vgg16\s+--octaves 2 --steps 5 --tile (\d+)`", readme)
    assert measured and measured[1] == "china.jpg"  # the 640x427 photo: larger than the tile, so it is tiled
    tile = int(measured[2])
    assert _tiling(tile, None, 640, lambda: 92) == (tile, 96, True)  # features.22's 92 px field: 96 of context
    with pytest.raises(DreamlabError, match=r"^tile=256 \(--tile 256\) is too small .* give tile=320"):
        _tiling(256, None, 640, lambda: 92)  # what README measured before
    assert "--tile 256` against" not in readme


# 9. the README's pictures are what the current code dreams

def test_the_dream_build_script_starts_the_zoom_from_no_frames(tmp_path):
    """gallery/dream/build.sh keeps its frames in TMPDIR: a rebuild must not resume from the last build's."""
    import os
    import subprocess
    from pathlib import Path

    stale = tmp_path / "china_zoom_frames"
    stale.mkdir()
    (stale / "frame_0000.png").write_bytes(b"an older build's frame")
    log = tmp_path / "calls.txt"
    stub = tmp_path / "python"  # stands in for the interpreter: notes what the zoom's --frames-dir holds
    stub.write_text('#!/bin/sh\nprev=""\nfor a in "$@"; do\n  if [ "$prev" = --frames-dir ]; then '
                    'echo "frames: $(ls -A "$a" 2>/dev/null)" >> "$LOG"; fi\n  prev=$a\ndone\n')
    stub.chmod(0o755)
    script = Path(__file__).parent.parent / "gallery" / "dream" / "build.sh"
    env = {**os.environ, "PYTHON": str(stub), "TMPDIR": str(tmp_path), "LOG": str(log)}
    subprocess.run(["bash", str(script)], env=env, check=True, stdin=subprocess.DEVNULL)
    assert log.read_text().splitlines() == ["frames: "]


# 10. a resumed zoom with other settings says which

def test_frames_of_other_settings_are_refused_naming_the_setting(tmp_path, photo_file, capsys):
    frames = tmp_path / "z_frames"
    assert run_dream(photo_file, "-o", tmp_path / "z.gif", "--zoom-frames", 1, "--zoom", 1.1) == 0
    capsys.readouterr()
    assert run_dream(photo_file, "-o", tmp_path / "z.gif", "--zoom-frames", 2, "--zoom", 1.2, "--seed", 3) == 2
    assert capsys.readouterr().err == (
        f"dreamlab: error: {str(frames)!r} holds frames of a zoom with other settings: --seed 0 there (this run: "
        f"3), --zoom 1.1 there (this run: 1.2); give theirs, another --frames-dir, or remove those frames to start "
        f"over\n")
    assert run_dream(photo_file, "-o", tmp_path / "z.gif", "--zoom-frames", 2, "--zoom", 1.1, "--objective",
                     "conv1") == 2
    assert "other settings: --objective conv2 there (this run: conv1);" in capsys.readouterr().err
    other = tmp_path / "other.png"
    save_png(smooth_photo(48, 64, seed=1), other)
    assert run_dream(other, "-o", tmp_path / "z.gif", "--zoom-frames", 2, "--zoom", 1.1) == 2
    assert f"other settings: the photo ({photo_file} there, {other} in this run);" in capsys.readouterr().err
    # a sample photo's name (a plain string) against a file's frames
    assert run_dream("china", "-o", tmp_path / "z.gif", "--zoom-frames", 2, "--zoom", 1.1) == 2
    assert f"other settings: the photo ({photo_file} there, china in this run);" in capsys.readouterr().err
    assert run_dream("china", "-o", tmp_path / "s.gif", "--zoom-frames", 1) == 0
    assert run_dream("flower", "-o", tmp_path / "s.gif", "--zoom-frames", 2) == 2
    assert "other settings: the photo (china there, flower in this run);" in capsys.readouterr().err


def test_a_zoom_resumes_with_its_objective_spelled_out(tmp_path, photo_file, capsys):
    """The default objective given by name, or an objective spaced otherwise, is the same zoom."""
    assert run_dream(photo_file, "-o", tmp_path / "z.gif", "--zoom-frames", 1) == 0  # lenet-digits: conv2
    assert run_dream(photo_file, "-o", tmp_path / "z.gif", "--zoom-frames", 1, "--objective", "conv2") == 0
    assert "the 1 frame is already in" in capsys.readouterr().err
    assert run_dream(photo_file, "-o", tmp_path / "s.gif", "--zoom-frames", 1, "--objective", "conv2 + conv2:1") == 0
    assert run_dream(photo_file, "-o", tmp_path / "s.gif", "--zoom-frames", 1, "--objective", "conv2+conv2:1") == 0
    assert "the 1 frame is already in" in capsys.readouterr().err


def test_a_result_is_saved_only_under_a_png_name(tmp_path):
    """.save writes PNG bytes: under a .gif or .jpg name they would pass for another format."""
    result = dream("lenet-digits", smooth_photo(48, 64), **FAST)
    with pytest.raises(DreamlabError, match=r"^output '.*z\.gif' would not be a \.png file; give a name ending in "
                                            r"\.png$"):
        result.save(tmp_path / "z.gif")
    assert not (tmp_path / "z.gif").exists()
    assert Image.open(result.save(tmp_path / "d.png")).info["dreamlab:score"] == f"{result.final_score:.6g}"
