"""RenderResult.save writes what `dreamlab render` writes: the image(s) with the render's provenance."""
from __future__ import annotations

import pytest
from PIL import Image

import dreamlab
from dreamlab.errors import DreamlabError


@pytest.fixture(scope="module")
def result():
    return dreamlab.render("lenet-digits", "conv2:0-2", steps=2)


def test_one_image_carries_the_provenance_and_its_own_unit(result, tmp_path):
    path = result.save(tmp_path / "u1.png", index=1)
    with Image.open(path) as img:
        text = dict(img.text)
        assert img.size == (28, 28)
    assert text["dreamlab:unit"] == "conv2:1" and text["dreamlab:unit_index"] == "1"
    assert text["dreamlab:score"] == f"{float(result.final_scores[1]):.6g}"
    assert text["dreamlab:model"] == "lenet-digits" and text["dreamlab:steps"] == "2"
    assert result.save(tmp_path / "last.png", index=-1) == tmp_path / "last.png"
    with Image.open(tmp_path / "last.png") as img:
        assert img.text["dreamlab:unit"] == "conv2:2"


def test_several_images_are_saved_as_the_grid_render_writes(result, tmp_path):
    from dreamlab.apps.cli import main

    result.save(tmp_path / "grid.png")
    assert main(["render", "conv2:0-2", "--model", "lenet-digits", "--steps", "2", "--grid", "--out",
                 str(tmp_path / "cli.png")]) == 0
    with Image.open(tmp_path / "grid.png") as mine, Image.open(tmp_path / "cli.png") as cli:
        assert mine.size == cli.size
        assert mine.text["dreamlab:units"] == "conv2:0 | conv2:1 | conv2:2"
        assert mine.text["dreamlab:unit_indices"] == "0 | 1 | 2"
        assert mine.text["dreamlab:scores"] == cli.text["dreamlab:scores"]  # same seed, same render
        assert set(mine.text) <= set(cli.text)


@pytest.mark.parametrize("index", [3, -4, True, "1", 1.0])
def test_an_index_outside_the_images_is_refused(result, tmp_path, index):
    with pytest.raises(DreamlabError, match=r"^index must be an image's place, 0 to 2, or None \(a grid of all 3\)"):
        result.save(tmp_path / "x.png", index=index)


def test_a_name_that_is_not_a_png_is_refused(result, tmp_path):
    with pytest.raises(DreamlabError, match="would not be a .png file"):
        result.save(tmp_path / "x.jpg")


def test_threshold_snapshots_are_listed_after_the_final_images(tmp_path, capsys):
    from dreamlab.apps.cli import main

    assert main(["render", "conv2:3,4", "--model", "lenet-digits", "--steps", "3", "--thresholds", "2", "--out",
                 str(tmp_path) + "/"]) == 0
    names = [line.rsplit("/", 1)[-1] for line in capsys.readouterr().out.splitlines()]
    assert names == ["lenet-digits_conv2_3.png", "lenet-digits_conv2_4.png", "lenet-digits_conv2_3_step0002.png",
                     "lenet-digits_conv2_4_step0002.png"]
    assert main(["render", "conv2:3,4", "--model", "lenet-digits", "--steps", "3", "--thresholds", "1,2", "--grid",
                 "--out", str(tmp_path / "g.png")]) == 0
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / name) for name in
                                                    ("g.png", "g_step0001.png", "g_step0002.png")]
