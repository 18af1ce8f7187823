"""How a large photo is cut into tiles: the context each tile takes (the objective's receptive field, in steps of
32 px), `tile="auto"` making room for it, and a tile too small for its context refused (its pieces would be
larger than the tile and multiply)."""
from __future__ import annotations

import pytest
import torch

from dreamlab import dream
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.io import read_png_text, save_png
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
