"""What `dreamlab render` writes: distinct file names, snapshots with the render's provenance, --direction files
of any name (review r8, items 9-11)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.io import label_name, output_paths, read_png_text, safe_name

LENET = ["--model", "lenet-digits", "--steps", "4", "--device", "cpu"]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_label_names_mark_operators_and_diversity_images() -> None:
    for plain in ("inception4c:97", "inception4c:97@7,7", "conv2:0-3", "logit:3", "-conv2:3", "conv2 + conv1:2"):
        assert label_name(plain) == safe_name(plain)  # the names tests and the README use stay as they were
    marked = {"conv2 #1": "conv2_div1", "conv2:3 #2": "conv2_3_div2", "conv2:3*conv1:2": "conv2_3_x_conv1_2",
              "conv2:3/conv1:2": "conv2_3_over_conv1_2", "(conv2:3 + conv1:2)*2": "(conv2_3_+_conv1_2)_x_2",
              "conv2:3 + conv1:2*2": "conv2_3_+_conv1_2_x_2", "conv2:pair^1[0]": "conv2_pair_pow1_0"}
    assert {label: label_name(label) for label in marked} == marked
    long = ["x" * 200 + ":1", "x" * 200 + ":2"]
    assert len({label_name(label) for label in long}) == 2 and all(len(label_name(la)) == 96 for la in long)


def test_output_paths_never_give_one_path_twice() -> None:
    labels = ["a:1", "a:1", "A:1", "a:2"]  # a repeat, and one that differs in case only (one file on macOS)
    assert [p.name for p in output_paths("m", labels, None)] == ["m_a_1.png", "m_a_1_dup2.png", "m_A_1_dup3.png",
                                                                  "m_a_2.png"]
    assert [str(p) for p in output_paths("m", labels[:2], "out.png")] == ["out_a_1.png", "out_a_1_dup2.png"]
    assert [str(p) for p in output_paths("m", labels[:2], "dir")] == ["dir/m_a_1.png", "dir/m_a_1_dup2.png"]


def test_diversity_images_and_unit_lists_write_different_files(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["render", "conv2", *LENET, "--diversity", "2"]) == 0
    assert main(["render", "conv2:1,2", *LENET]) == 0
    assert names(tmp_path) == ["lenet-digits_conv2_1.png", "lenet-digits_conv2_2.png", "lenet-digits_conv2_div1.png",
                               "lenet-digits_conv2_div2.png"]
    assert read_png_text(tmp_path / "lenet-digits_conv2_div2.png")["dreamlab:unit"] == "conv2 #2"
    assert read_png_text(tmp_path / "lenet-digits_conv2_2.png")["dreamlab:unit"] == "conv2:2"


def test_products_and_quotients_write_different_files(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["render", "conv2:3*conv1:2", *LENET]) == 0
    assert main(["render", "conv2:3/conv1:2", *LENET]) == 0
    assert names(tmp_path) == ["lenet-digits_conv2_3_over_conv1_2.png", "lenet-digits_conv2_3_x_conv1_2.png"]
    assert read_png_text(tmp_path / "lenet-digits_conv2_3_x_conv1_2.png")["dreamlab:unit"] == "conv2:3*conv1:2"


def test_a_render_never_overwrites_its_own_files(tmp_path, monkeypatch) -> None:
    import dreamlab.io

    monkeypatch.setattr(dreamlab.io, "label_name", lambda label: "same")  # every unit's name collides
    assert main(["render", "conv2:0-2", *LENET, "--thresholds", "2", "-o", str(tmp_path)]) == 0
    finals = ["lenet-digits_same.png", "lenet-digits_same_dup2.png", "lenet-digits_same_dup3.png"]
    assert names(tmp_path) == sorted(finals + [name.replace(".png", "_step0002.png") for name in finals])
    for unit, name in enumerate(finals):
        assert read_png_text(tmp_path / name)["dreamlab:unit"] == f"conv2:{unit}"
        assert read_png_text(tmp_path / name.replace(".png", "_step0002.png"))["dreamlab:unit"] == f"conv2:{unit}"


@pytest.mark.parametrize("grid", [False, True])
def test_snapshots_carry_the_provenance_of_the_render(tmp_path, grid) -> None:
    out = tmp_path / "d.png"
    assert main(["render", "logit:0-1", *LENET, "--thresholds", "2", "-o", str(out), *(["--grid"] if grid else [])]) == 0
    for final in ([out] if grid else [tmp_path / "d_logit_0.png", tmp_path / "d_logit_1.png"]):
        text, snapshot = read_png_text(final), read_png_text(final.with_name(f"{final.stem}_step0002.png"))
        score = "dreamlab:scores" if grid else "dreamlab:score"
        assert snapshot == {**{k: v for k, v in text.items() if k != score}, "dreamlab:step": "2"}
        assert snapshot["dreamlab:seed"] == "0" and snapshot["dreamlab:recipe_hash"].startswith("sha256:")


def test_snapshots_are_kept_when_the_render_fails_after_them(tmp_path, monkeypatch) -> None:
    from dreamlab.optvis import engine

    def fail(*args, **kwargs):
        raise DreamlabError("the render failed at its end")

    monkeypatch.setattr(engine, "provenance", fail)
    assert main(["render", "logit:0", *LENET, "--thresholds", "2", "-o", str(tmp_path / "f.png")]) == 2
    assert names(tmp_path) == ["f_step0002.png"]
    assert read_png_text(tmp_path / "f_step0002.png") == {"dreamlab:objective": "logit:0", "dreamlab:model":
                                                          "lenet-digits", "dreamlab:unit": "logit:0",
                                                          "dreamlab:step": "2"}


def test_direction_files_of_any_name_render(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "my dirs.npy", np.eye(50, dtype=np.float32)[[3, 7]])
    np.save(tmp_path / "a:b.npy", np.eye(50, dtype=np.float32)[3])
    assert main(["render", "conv2", *LENET, "--direction", "my dirs.npy", "-o", "out"]) == 0
    assert main(["render", "conv2", *LENET, "--direction", "a:b.npy", "-o", "out"]) == 0
    assert names(tmp_path / "out") == ["lenet-digits_conv2_a_b.png", "lenet-digits_conv2_my_dirs_0.png",
                                       "lenet-digits_conv2_my_dirs_1.png"]
    text = read_png_text(tmp_path / "out" / "lenet-digits_conv2_my_dirs_1.png")
    assert text["dreamlab:unit"] == "conv2:my_dirs[1]" and text["dreamlab:direction_file"] == "my dirs.npy"


def test_the_python_api_still_refuses_a_bad_direction_name() -> None:
    import torch

    from dreamlab import objectives as o

    with pytest.raises(DreamlabError, match="a direction's name must be a word without spaces or ':'"):
        o.direction("conv2", torch.ones(50), name="my dirs")


def test_size_takes_height_x_width(tmp_path, capsys):
    from dreamlab.apps.args import image_size

    assert (image_size("224"), image_size("96x128"), image_size(" 64X32 ")) == (224, (96, 128), (64, 32))
    for bad in ("32xq", "x32", "0x32", "-3"):
        with pytest.raises(argparse.ArgumentTypeError, match="N or HEIGHTxWIDTH"):
            image_size(bad)
    out = tmp_path / "wide.png"
    assert main(["render", "conv2:3", "--model", "googlenet", "--weights", "none", "--size", "32x48",
                 "--steps", "2", "--device", "cpu", "-o", str(out)]) == 0
    with Image.open(out) as image:
        assert image.size == (48, 32)  # PIL gives (width, height)
    assert read_png_text(out)["dreamlab:size"] == "32x48"


@pytest.mark.parametrize("option, message", [
    (["--size", "4"], "--size 4 is out of range; valid: 8 to 2048 pixels a side"),
    (["--size", "64x4000"], "--size 4000 is out of range; valid: 8 to 2048 pixels a side"),
    (["--lr", "2000"], "lr 2000 is out of range; valid: above 0 up to 1000 (the learning rate; the recipes use 0.02 "
                       "to 0.05); try 0.05"),
    (["--lr", "0"], "lr must be a finite number > 0 up to 1000 (the learning rate; the recipes use 0.02 to 0.05), got 0.0"),
])
def test_a_size_or_lr_out_of_range_is_named_before_the_model_loads(option, message, capsys, monkeypatch):
    from dreamlab.models import loading

    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("the model loaded first"))
    assert main(["render", "conv2:3", "--model", "lenet-digits", *option]) == 2
    assert capsys.readouterr().err.strip() == f"dreamlab: error: {message}"
