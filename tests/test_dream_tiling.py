"""How a large photo is cut into tiles: the context each tile takes (the objective's receptive field, in steps of
32 px), `tile="auto"` making room for it, and a tile too small for its context refused (its pieces would be
larger than the tile and multiply)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_dream_fixes import smooth_photo

from dreamlab import dream
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.io import load_image, read_png_text, save_png
from dreamlab.models.loading import load_model
from dreamlab.optvis.dream import _tiling
from dreamlab.optvis.dream_tiles import smallest_tile, tiles

pytestmark = pytest.mark.usefixtures("one_thread")


def never_measured() -> int:
    raise AssertionError("the receptive field was measured for a photo dreamed in one piece")


def test_auto_is_1024_until_the_context_needs_a_larger_tile() -> None:
    assert _tiling("auto", None, 1024, never_measured) == (1024, 64, False)
    assert _tiling("auto", None, 3000, lambda: 171) == (1024, 192, True)  # googlenet's inception4c
    assert _tiling("auto", None, 3000, lambda: 597) == (1344, 608, True)  # inception_v3's Mixed_6e
    assert _tiling("auto", None, 1200, lambda: 597) == (1344, 608, False)  # fits the larger tile: one piece
    assert _tiling("auto", 100, 3000, never_measured) == (1024, 128, True)  # a given overlap is not measured


def test_a_given_tile_is_kept_or_refused_never_silently_grown() -> None:
    assert _tiling(None, None, 9000, never_measured) == (None, 64, False)
    assert _tiling(256, None, 200, never_measured) == (256, 64, False)
    assert _tiling(256, None, 300, lambda: 64) == (256, 64, True)
    assert _tiling(64, 0, 300, never_measured) == (64, 0, True)  # no context: any tile of 64 px or more
    with pytest.raises(DreamlabError, match=r"^tile=1024 \(--tile 1024\) is too small for the 608 px of context each "
                                            r"tile takes on every side: a tile must keep 128 px of its own beside "
                                            r"it, or the pieces multiply; give tile=1344 \(--tile 1344\) or more, a "
                                            r"smaller overlap \(--overlap N.*or tile='auto' \(--tile auto\)$"):
        _tiling(1024, None, 3000, lambda: 597)


def test_every_piece_of_an_accepted_tile_stays_within_it() -> None:
    for overlap in (0, 32, 64, 96, 192, 608):
        tile = smallest_tile(overlap)
        for part in tiles(3000, 2000, tile, overlap):
            rows, cols = part.crop
            assert rows.stop - rows.start <= tile and cols.stop - cols.start <= tile


def test_dream_refuses_a_tile_too_small_for_the_layers_context_before_any_step() -> None:
    photo = torch.rand(1, 300, 300, generator=torch.Generator().manual_seed(0))
    with pytest.raises(DreamlabError, match=r"tile=128 \(--tile 128\) is too small for the 64 px of context .* "
                                            r"give tile=256 \(--tile 256\) or more"):
        dream("lenet-digits", photo, "conv2", octaves=1, steps=1, device="cpu", tile=128)
    with pytest.raises(DreamlabError, match=r"tile must be 'auto', a whole number >= 64 \(pixels\) or None"):
        dream("lenet-digits", photo, "conv2", octaves=1, steps=1, device="cpu", tile="big")


def test_the_cli_takes_tile_auto_and_overlap_and_records_the_context_used(tmp_path, capsys) -> None:
    photo = save_png(torch.rand(3, 200, 400, generator=torch.Generator().manual_seed(1)), tmp_path / "wide.png")
    out = tmp_path / "d.png"
    base = ["dream", str(photo), "--model", "lenet-digits", "--octaves", "1", "--steps", "1", "--device", "cpu"]
    assert main([*base, "--tile", "auto", "-o", str(out)]) == 0
    assert (read_png_text(out)["dreamlab:tile"], read_png_text(out)["dreamlab:overlap"]) == (
        "1024", "none (one piece)")
    assert main([*base, "--tile", "320", "--overlap", "70", "-o", str(out)]) == 0
    assert (read_png_text(out)["dreamlab:tile"], read_png_text(out)["dreamlab:overlap"]) == ("320", "96")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([*base, "--tile", "big", "-o", str(out)])
    assert exit_.value.code == 2
    assert "'big' is not a whole number of pixels or auto" in capsys.readouterr().err


# a zoom's resume key holds the tiling that decides its pixels, not the --tile and --overlap values as given

def zoom(photo, frames, count: int, *options) -> int:
    """A 2-frame-or-more lenet-digits zoom of `photo` into the folder `frames`."""
    return main(["dream", str(photo), "--model", "lenet-digits", "--octaves", "2", "--steps", "2", "--device",
                 "cpu", "-o", str(frames.with_suffix(".gif")), "--frames-dir", str(frames), "--zoom-frames",
                 str(count), *map(str, options)])


def frame_pixels(frames, index: int) -> np.ndarray:
    with Image.open(frames / f"frame_{index:04d}.png") as image:
        return np.asarray(image)


def test_tile_values_that_cut_a_zoom_alike_give_the_same_frames_and_resume_each_other(tmp_path, capsys) -> None:
    photo = save_png(smooth_photo(96, 240), tmp_path / "photo.png")
    # one piece: auto (1024), a tile larger than the photo, a tile of the photo's size; an overlap is then unused
    alike = {"auto": [], "large": ["--tile", 500, "--overlap", 32], "own": ["--tile", 240]}
    # tiles of a 64 px core without context, whatever the tile that leaves it (64 and 70 both round down to 64)
    tiled = {"tile64": ["--tile", 64, "--overlap", 0], "tile70": ["--tile", 70, "--overlap", 0]}
    # a 128 px core with 32 px of context: 20 px rounds up to 32, 192 and 200 leave the same core
    context = {"overlap32": ["--tile", 192, "--overlap", 32], "overlap20": ["--tile", 200, "--overlap", 20]}
    for name, options in {**alike, **tiled, **context}.items():
        assert zoom(photo, tmp_path / name, 2, *options) == 0
    for group in (alike, tiled, context):
        first, *others = group
        for name in others:
            for i in range(2):
                assert np.array_equal(frame_pixels(tmp_path / first, i), frame_pixels(tmp_path / name, i))
    # tiles without context are another dream (with enough context they can match one piece: not claimed)
    assert not np.array_equal(frame_pixels(tmp_path / "auto", 1), frame_pixels(tmp_path / "tile64", 1))
    capsys.readouterr()
    # each folder resumes with the other settings of its group, and continues with the same frames
    (tmp_path / "auto" / "frame_0001.png").unlink()
    assert zoom(photo, tmp_path / "auto", 3, "--tile", 500, "--overlap", 32) == 0
    assert zoom(photo, tmp_path / "tile70", 3, "--tile", 64, "--overlap", 0) == 0
    assert capsys.readouterr().err.count("resuming at frame") == 2
    assert zoom(photo, tmp_path / "large", 3) == 0
    assert zoom(photo, tmp_path / "tile64", 3, "--tile", 64, "--overlap", 0) == 0
    for a, b in (("auto", "large"), ("tile64", "tile70")):
        for i in range(3):
            assert np.array_equal(frame_pixels(tmp_path / a, i), frame_pixels(tmp_path / b, i))


def test_a_zoom_resumed_with_another_tiling_is_refused_naming_it(tmp_path, capsys) -> None:
    photo = save_png(smooth_photo(96, 240), tmp_path / "photo.png")
    assert zoom(photo, tmp_path / "whole", 1) == 0
    assert zoom(photo, tmp_path / "tiled", 1, "--tile", 64, "--overlap", 0) == 0
    capsys.readouterr()
    refused = {("whole", "--tile", 64, "--overlap", 0):
               "one piece there (this run: tiles of 64 px with 0 px of context)",
               ("tiled",): "tiles of 64 px with 0 px of context there (this run: one piece)",
               ("tiled", "--tile", 96, "--overlap", 0):
                   "tiles of 64 px with 0 px of context there (this run: tiles of 96 px with 0 px of context)",
               ("tiled", "--tile", 192, "--overlap", 1):  # rounded up to 32 px of context
                   "tiles of 64 px with 0 px of context there (this run: tiles of 192 px with 32 px of context)"}
    for (folder, *options), said in refused.items():
        assert zoom(photo, tmp_path / folder, 2, *options) == 2
        assert capsys.readouterr().err == (
            f"dreamlab: error: {str(tmp_path / folder)!r} holds frames of a zoom with other settings: "
            f"--tile/--overlap: {said}; give theirs, another --frames-dir, or remove those frames to start over\n")


def test_frames_of_the_older_key_resume_with_tile_and_overlap_values_that_cut_them_alike(tmp_path, capsys) -> None:
    """Frames written before the key held the tiling carry a key of --tile and --overlap as given."""
    photo = save_png(smooth_photo(48, 96), tmp_path / "photo.png")
    frames = tmp_path / "frames"
    assert zoom(photo, frames, 1, "--tile", 500) == 0
    loaded = load_model("lenet-digits")
    older = hashlib.sha256(photo.read_bytes() + b"")  # the photo's bytes, then the guide's (none)
    older.update(json.dumps(["lenet-digits", loaded.recipe.hash(), loaded.weights, "conv2", 2, 1.4, 2, 0.006, 32, 500,
                             None, 0, 1.05, 0.0]).encode())
    text = read_png_text(frames / "frame_0000.png")
    assert text["dreamlab:zoom_key"] != older.hexdigest()[:16]
    save_png(load_image(frames / "frame_0000.png"), frames / "frame_0000.png",
             {**text, "dreamlab:zoom_key": older.hexdigest()[:16]})
    capsys.readouterr()
    assert zoom(photo, frames, 2, "--tile", 500) == 0  # the same values
    assert "resuming at frame 1" in capsys.readouterr().err
    (frames / "frame_0001.png").unlink()
    assert zoom(photo, frames, 2) == 0  # auto: one piece too, as the frame's provenance (tile 500, one piece) says
    assert "resuming at frame 1" in capsys.readouterr().err
    assert zoom(photo, frames, 3, "--tile", 64, "--overlap", 0) == 2  # another tiling
    assert "other settings: --tile/--overlap: one piece there (this run: tiles of 64 px" in capsys.readouterr().err
