"""gallery --examples: each unit's dataset examples written beside its render, listed in the manifest, kept on
resume and found again when the images or the count change."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dreamlab.apps.cli import main
from dreamlab.apps.gallery.build import build_gallery
from dreamlab.errors import DreamlabError
from dreamlab.inspect.examples import TILE, examples
from dreamlab.io import read_png_text


def test_gallery_examples_are_written_listed_and_kept_on_resume(tmp_path: Path, photos: Path) -> None:
    out, lines = tmp_path / "g", []
    result = build_gallery("lenet-digits", out, ["conv2"], channels=[3, 7], steps=2, examples=photos,
                           examples_top=2, log=lines.append)
    units = {u["channel"]: u for u in result.manifest["units"]}
    direct = examples("lenet-digits", "conv2", [3, 7], photos, top=2)
    for ch, row in zip((3, 7), direct.units):
        unit = units[ch]
        assert unit["examples"] == f"conv2/conv2_{ch:04d}_examples.png"
        assert unit["example_images"] == [e.image for e in row]
        assert unit["example_scores"] == pytest.approx([e.score for e in row], abs=1e-5)
        with Image.open(out / unit["examples"]) as strip:
            assert strip.size == (2 * (TILE + 2) + 2, TILE + 4)
        assert read_png_text(out / unit["examples"])["dreamlab:unit"] == f"conv2:{ch}"
    assert any("dataset examples of 2 units from 2 images" in line for line in lines)
    record = json.loads((out / ".examples" / "conv2.json").read_text())
    assert record["key"]["top"] == 2 and [name for name, _ in record["key"]["images"]] == ["china.png", "flower.png"]
    assert "viewer-examples" in (out / "index.html").read_text()

    lines.clear()  # the same images and count: nothing to find again
    build_gallery("lenet-digits", out, ["conv2"], channels=[3, 7], steps=2, examples=photos, examples_top=2,
                  log=lines.append)
    assert not any("dataset examples" in line for line in lines)
    build_gallery("lenet-digits", out, ["conv2"], channels=[3, 7], steps=2, examples=photos, examples_top=1,
                  log=lines.append)
    assert any("dataset examples of 2 units" in line for line in lines)
    assert len(json.loads((out / "manifest.json").read_text())["units"][0]["example_images"]) == 1


def test_gallery_examples_bad_input_is_refused_before_any_render(tmp_path: Path, photos: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DreamlabError, match="no PNG or JPEG images in folder"):
        build_gallery("lenet-digits", tmp_path / "g", ["conv2"], channels=[0], steps=2, examples=empty)
    assert not (tmp_path / "g" / "conv2").exists()
    assert main(["gallery", "lenet-digits", "--layers", "conv2", "--channels", "0", "--steps", "2", "--out",
                 str(tmp_path / "g"), "--examples-top", "3"]) == 2
    assert "--examples-top applies to --examples DIR" in capsys.readouterr().err
    assert main(["gallery", "lenet-digits", "--layers", "conv2", "--channels", "0", "--steps", "2", "--out",
                 str(tmp_path / "g"), "--examples", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err and not (tmp_path / "g" / "conv2").exists()


def test_gallery_examples_from_a_sample_photo_name(tmp_path: Path) -> None:
    out, lines = tmp_path / "g", []
    result = build_gallery("lenet-digits", out, ["conv2"], channels=[3], steps=2, examples="china", examples_top=1,
                           log=lines.append)  # failed after the renders: a sample name is no file to stat
    assert result.manifest["units"][0]["example_images"] == ["china"]
    assert json.loads((out / ".examples" / "conv2.json").read_text())["key"]["images"] == [["china", "china"]]


def test_gallery_examples_option_takes_a_sample_photo_name(tmp_path: Path, capsys) -> None:
    # the command line's type made 'china' a Path, a file, which the error then offered as a sample name
    out = tmp_path / "g"
    assert main(["gallery", "lenet-digits", "--layers", "conv2", "--channels", "1", "--steps", "2", "--out",
                 str(out), "--examples", "china", "--examples-top", "1"]) == 0
    assert json.loads((out / "manifest.json").read_text())["units"][0]["example_images"] == ["china"]
    assert main(["gallery", "lenet-digits", "--layers", "conv2", "--channels", "1", "--steps", "2", "--out",
                 str(out), "--examples", "./china"]) == 2  # a path is a file, never the sample
    assert "no such file" in capsys.readouterr().err
