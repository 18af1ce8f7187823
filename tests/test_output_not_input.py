"""An output path that is the photo a command reads is refused before any work, so the photo is never
replaced (`dreamlab dream photo.png -o photo.png` overwrote it without a word)."""
from __future__ import annotations

import pytest
import torch

from dreamlab.apps.cli import main
from dreamlab.io import save_png


@pytest.fixture()
def photo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return save_png(torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(0)), tmp_path / "photo.png")


@pytest.mark.parametrize("argv", [
    ["render", "logit:3", "-m", "lenet-digits", "--steps", "1", "--init", "photo.png", "-o", "photo.png"],
    ["dream", "photo.png", "-m", "lenet-digits", "--octaves", "1", "--steps", "1", "-o", "photo.png"],
    ["dream", "flower", "--guide", "photo.png", "-m", "lenet-digits", "--octaves", "1", "-o", "./photo.png"],
    ["features", "-m", "lenet-digits", "conv1", "-i", "photo.png", "-o", "photo.png"],
    ["cam", "lenet-digits", "-i", "photo.png", "-o", "photo.png"],
    ["attribute", "lenet-digits", "-i", "photo.png", "-o", "photo.png"],
    ["examples", "lenet-digits", "conv2:1", "--images", "flower", "photo.png", "-o", "photo.png"],
], ids=lambda argv: argv[0] + ("-guide" if "--guide" in argv else ""))
def test_an_output_that_is_the_photo_read_is_refused_and_the_photo_kept(argv, photo, capsys):
    before = photo.read_bytes()
    assert main(argv) == 2
    assert capsys.readouterr().err == ("dreamlab: error: output 'photo.png' is the photo this command reads "
                                       "('photo.png'), which it would replace; give another output path\n")
    assert photo.read_bytes() == before


def test_another_output_beside_the_photo_is_written(photo, tmp_path):
    assert main(["features", "-m", "lenet-digits", "conv1", "-i", "photo.png", "-o", "maps.png"]) == 0
    assert (tmp_path / "maps.png").is_file()
