"""A new user's walkthrough of the outputs: RenderResult.save writes what `dreamlab render` writes (snapshots and
class names included), settings are checked when made, load_image takes the sample names, dream's PNGs name their
recipe, a zoom that only re-encodes says so, and render lists its --thresholds snapshots."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import dreamlab
from dreamlab import RenderSettings
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.io import load_image, read_photo, read_png_text, save_png
from dreamlab.optvis.classes import classes_text

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
STEPS = ["--steps", "3", "--device", "cpu"]


@pytest.fixture(scope="module")
def named_recipe(tmp_path_factory) -> Path:
    """lenet-digits with class names that say more than the number, so that PNGs record them."""
    path = tmp_path_factory.mktemp("recipe") / "named.toml"
    path.write_text('name = "named-digits"\nbuilder = "zoo:lenet_digits"\ninput_size = 28\nchannels = 1\n'
                    'mean = [0.0]\nstd = [1.0]\ntransforms = "small"\ncategories = [' +
                    ", ".join(f'"{n}"' for n in NAMES) + "]\n")
    return path


def same_file(a: Path, b: Path) -> None:
    assert read_png_text(a) == read_png_text(b)
    assert a.read_bytes() == b.read_bytes()  # same pixels, same text in the same order


# 1. RenderResult.save: the files `dreamlab render` writes, byte for byte

def test_save_writes_each_file_render_writes_and_render_lists_them(named_recipe, tmp_path, capsys):
    cli = tmp_path / "cli"
    assert main(["render", "logit:3-4", "--model", str(named_recipe), *STEPS, "--thresholds", "2", "-o",
                 str(cli) + "/"]) == 0
    finals = [cli / "named-digits_logit_3_three.png", cli / "named-digits_logit_4_four.png"]
    snapshots = [p.with_name(f"{p.stem}_step0002.png") for p in finals]
    assert capsys.readouterr().out.splitlines() == [str(p) for p in finals + snapshots]  # 6. snapshots listed

    result = dreamlab.render(str(named_recipe), "logit:3-4", steps=3, device="cpu", thresholds=[2])
    for i in range(2):
        assert result.save(tmp_path / f"u{i}.png", index=i) == tmp_path / f"u{i}.png"
        same_file(tmp_path / f"u{i}.png", finals[i])
        assert result.save(tmp_path / f"s{i}.png", index=i, step=2) == tmp_path / f"s{i}.png"
        same_file(tmp_path / f"s{i}.png", snapshots[i])
    text = read_png_text(tmp_path / "s1.png")
    assert text["dreamlab:class"] == "four" and text["dreamlab:step"] == "2" and "dreamlab:score" not in text
    assert text["dreamlab:recipe_hash"].startswith("sha256:") and text["dreamlab:steps"] == "3"


def test_save_without_index_writes_the_grid_render_writes_with_its_snapshots(named_recipe, tmp_path, capsys):
    grid = tmp_path / "cli.png"
    assert main(["render", "logit:3-4", "--model", str(named_recipe), *STEPS, "--thresholds", "2", "--grid", "-o",
                 str(grid)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(grid), str(tmp_path / "cli_step0002.png")]
    result = dreamlab.render(str(named_recipe), "logit:3-4", steps=3, device="cpu", thresholds=[2])
    same_file(result.save(tmp_path / "grid.png"), grid)
    same_file(result.save(tmp_path / "grid_step.png", step=2), tmp_path / "cli_step0002.png")
    text = read_png_text(tmp_path / "grid.png")
    assert text["dreamlab:classes"] == "3=three | 4=four" and text["dreamlab:units"] == "logit:3 | logit:4"


def test_an_expression_of_logits_records_its_classes_as_render_does(named_recipe, tmp_path):
    out = tmp_path / "cli.png"
    assert main(["render", "logit:3 - logit:4", "--model", str(named_recipe), *STEPS, "-o", str(out)]) == 0
    result = dreamlab.render(str(named_recipe), "logit:3 - logit:4", steps=3, device="cpu")
    same_file(result.save(tmp_path / "mine.png"), out)
    assert read_png_text(out)["dreamlab:classes"] == "3=three | 4=four"


def test_classes_text_names_only_class_logits_with_names():
    assert classes_text(["logit:3 - logit:4", "logit:3"], NAMES) == {"dreamlab:classes": "3=three | 4=four"}
    assert classes_text(["logit:3"], [str(i) for i in range(10)]) == {}  # lenet-digits: '3' says nothing more
    assert classes_text(["conv2:3", "my.logit:3", "logit:0-4"], NAMES) == {}  # a layer, another layer, a range
    assert classes_text(["logit:3"], None) == {}


@pytest.mark.parametrize("step", [3, 0, True, "2", None])
def test_a_step_without_a_snapshot_is_refused_with_the_kept_ones(tmp_path, step):
    result = dreamlab.render("lenet-digits", "conv2:0-1", steps=2, device="cpu", thresholds=[1, 2])
    if step is None:  # no step: the final images
        assert read_png_text(result.save(tmp_path / "x.png"))["dreamlab:scores"]
        return
    with pytest.raises(DreamlabError) as refused:
        result.save(tmp_path / "x.png", step=step)
    assert str(refused.value).startswith(f"step must be a step with a snapshot in this result (kept: 1, 2), got "
                                         f"{step!r}; render(..., thresholds=[STEP]) keeps one")
    assert not (tmp_path / "x.png").exists()


def test_a_render_without_thresholds_names_none_kept(tmp_path):
    result = dreamlab.render("lenet-digits", "conv2:0", steps=1, device="cpu")
    with pytest.raises(DreamlabError, match=r"^step must be a step with a snapshot in this result \(kept: none\)"):
        result.save(tmp_path / "x.png", step=1)


# 2. settings refused where they are made, in render's words

@pytest.mark.parametrize("fields", [{"steps": 0}, {"size": 3}, {"lr": -1.0}])
def test_settings_are_refused_when_made_as_render_refuses_them(fields):
    with pytest.raises(DreamlabError) as made:
        RenderSettings(**fields)
    with pytest.raises(DreamlabError) as rendered:
        dreamlab.render("lenet-digits", "conv2:0", device="cpu", **fields)
    assert str(made.value) == str(rendered.value) and "\n" not in str(made.value)
    assert str(made.value).startswith(f"{next(iter(fields))} ")  # names the field first, as render does


# 3. load_image takes the sample photos' names, as every photo argument does

@pytest.mark.parametrize("name", ["china", "flower"])
def test_load_image_reads_the_sample_photos(name):
    photo = load_image(name)
    assert photo.shape == (3, 427, 640) and photo.dtype == torch.float32
    assert torch.equal(photo, read_photo(name))


def test_load_image_of_a_missing_file_names_the_sample_photos(tmp_path):
    with pytest.raises(DreamlabError) as refused:
        load_image(tmp_path / "chian.png")
    assert str(refused.value) == (f"cannot read image {str(tmp_path / 'chian.png')!r}: no such file; give a "
                                  f"PNG/JPEG path or one of china, flower (scikit-learn's sample photos)")


# 4. dream's PNGs name the recipe and its hash, as render's do

def smooth_photo(height: int = 40, width: int = 56) -> torch.Tensor:
    coarse = torch.rand(1, 3, height // 8, width // 8, generator=torch.Generator().manual_seed(0))
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]


def dream_cli(*args) -> int:
    return main(["dream", *map(str, args), "--model", "lenet-digits", "--octaves", "2", "--steps", "2",
                 "--device", "cpu"])


def test_dream_pngs_record_the_recipe_and_its_hash(tmp_path):
    rendered = dreamlab.render("lenet-digits", "conv2:0", steps=1, device="cpu").provenance
    recipe = {k: rendered[k] for k in ("dreamlab:recipe", "dreamlab:recipe_hash")}
    assert recipe["dreamlab:recipe"] == "lenet-digits" and recipe["dreamlab:recipe_hash"].startswith("sha256:")
    photo = save_png(smooth_photo(), tmp_path / "photo.png")
    assert dream_cli(photo, "-o", tmp_path / "cli.png") == 0
    dreamed = dreamlab.dream("lenet-digits", photo, octaves=2, steps=2, device="cpu")
    assert dream_cli(photo, "-o", tmp_path / "zoom.gif", "--zoom-frames", 2) == 0
    for path in (tmp_path / "cli.png", dreamed.save(tmp_path / "py.png"), tmp_path / "zoom_frames" / "frame_0001.png"):
        text = read_png_text(path)
        assert {k: text.get(k) for k in recipe} == recipe, path


# 5. a resumed zoom that only re-encodes says so, and what it wrote

def test_a_zoom_whose_frames_are_all_there_says_so(tmp_path, capsys):
    photo = save_png(smooth_photo(), tmp_path / "photo.png")
    assert dream_cli(photo, "-o", tmp_path / "z.gif", "--zoom-frames", 2) == 0
    first = capsys.readouterr()
    assert first.out == f"{tmp_path / 'z.gif'}\n" and "dreaming frame 1 of 2" in first.err
    frames = tmp_path / "z_frames"
    stamps = [p.stat().st_mtime_ns for p in sorted(frames.iterdir())]
    (tmp_path / "z.gif").unlink()
    assert dream_cli(photo, "-o", tmp_path / "z.gif", "--zoom-frames", 2) == 0
    again = capsys.readouterr()
    assert again.err == f"dreamlab: all 2 frames are already in {frames}; writing the animation from them\n"
    assert again.out == f"{tmp_path / 'z.gif'}\n" and (tmp_path / "z.gif").is_file()
    assert [p.stat().st_mtime_ns for p in sorted(frames.iterdir())] == stamps  # nothing dreamed again


# 6. `dream` has no --thresholds (snapshots are render's): it is refused, not ignored

def test_dream_refuses_thresholds(tmp_path, capsys):
    photo = save_png(smooth_photo(), tmp_path / "photo.png")
    with pytest.raises(SystemExit) as exited:
        dream_cli(photo, "--thresholds", "2")
    assert exited.value.code == 2 and "--thresholds" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]
