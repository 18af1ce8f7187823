"""render against bad input and Ctrl-C: blocked output names, non-UTF-8 file names, -o of another file type,
an empty --direction file, and interruptions at any point of a multi-batch render."""
from __future__ import annotations

import os
import signal
import warnings

import numpy as np
import pytest
import torch

from dreamlab.apps.cli import main
from dreamlab.io import read_png_text, save_png
from dreamlab.optvis import engine
from dreamlab.optvis.engine import render

pytestmark = pytest.mark.usefixtures("one_thread")

LENET = ["--model", "lenet-digits", "--steps", "2", "--device", "cpu"]


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, calls: dict[int, str]) -> None:
    """Make the n-th call of _Renderer.scores raise KeyboardInterrupt ('raise') or send a real SIGINT ('signal')."""
    original = engine._Renderer.scores
    count = {"n": 0}

    def scores(self, *args, **kwargs):
        count["n"] += 1
        action = calls.get(count["n"])
        if action == "raise":
            raise KeyboardInterrupt
        if action == "signal":
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(engine._Renderer, "scores", scores)


# item 1: a file name that is not UTF-8 ---------------------------------------------------------------------

def test_provenance_naming_a_non_utf8_file_is_saved(tmp_path):
    name = os.fsdecode(b"in/\xfe.png")  # what Python makes of such a name: a surrogate
    save_png(torch.rand(3, 4, 4), tmp_path / "a.png", {"dreamlab:image": name})
    assert read_png_text(tmp_path / "a.png")["dreamlab:image"] == "in/\\xfe.png"


def test_render_with_a_non_utf8_direction_file_saves_its_image(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = os.fsdecode(b"\xfe.npy")
    np.save(name, np.eye(50, dtype=np.float32)[3])
    assert main(["render", "conv2", "--direction", name, *LENET, "-o", "d.png"]) == 0
    assert read_png_text(tmp_path / "d.png")["dreamlab:direction_file"] == "\\xfe.npy"


# item 2: an output name that is a folder is refused before the render --------------------------------------

@pytest.mark.parametrize("folder, argv", [
    ("lenet-digits_logit_3.png", ["logit:3,4"]),  # the default name of one unit
    ("x_logit_4.png", ["logit:3,4", "-o", "x.png"]),  # a name beside -o x.png
    ("y_step0001.png", ["logit:3", "--thresholds", "1", "-o", "y.png"]),  # a snapshot's name
    ("g_step0001.png", ["logit:3,4", "--grid", "--thresholds", "1", "-o", "g.png"]),  # a grid snapshot's name
    ("lenet-digits_logit_3..4_grid.png", ["logit:3,4", "--grid"]),  # the grid's default name
])
def test_an_output_name_that_is_a_folder_is_refused_before_the_render(tmp_path, monkeypatch, capsys, folder, argv):
    monkeypatch.chdir(tmp_path)
    (tmp_path / folder).mkdir()
    assert main(["render", *argv, *LENET]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rendering" not in err  # one line, before any work
    assert f"output '{folder}' is a folder" in err and "give -o another name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]


# item 16: -o with a suffix of another file type -----------------------------------------------------------

@pytest.mark.parametrize("name", ["x.txt", "x.json", "x.html", "x.mp4"])
def test_an_output_of_another_file_type_is_refused(tmp_path, capsys, name):
    assert main(["render", "logit:3", *LENET, "-o", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "images are saved as PNG; give a name ending in .png, or a folder" in err
    assert not (tmp_path / name).exists()


def test_folders_stay_accepted_outputs(tmp_path):
    (tmp_path / "old.txt").mkdir()  # an existing folder, whatever its name
    assert main(["render", "logit:3", *LENET, "-o", str(tmp_path / "old.txt")]) == 0
    assert main(["render", "logit:3", *LENET, "-o", str(tmp_path / "renders.v2")]) == 0
    assert (tmp_path / "old.txt" / "lenet-digits_logit_3.png").is_file()
    assert (tmp_path / "renders.v2" / "lenet-digits_logit_3.png").is_file()


# item 14: an empty --direction text file -------------------------------------------------------------------

def test_an_empty_direction_file_gives_one_line_and_no_warning(tmp_path, capsys):
    (tmp_path / "d.txt").write_text("")
    with warnings.catch_warnings(record=True) as caught:  # pytest would hide a warning from stderr
        warnings.simplefilter("always")
        assert main(["render", "conv2", "--direction", str(tmp_path / "d.txt"), *LENET]) == 2
    assert [str(w.message) for w in caught] == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dreamlab: error: a direction is a vector [C]")


# items 3 and 8: Ctrl-C ----------------------------------------------------------------------------------

def test_an_interrupted_multi_batch_render_records_each_images_steps(tmp_path, monkeypatch, capsys):
    # calls: batch 1 = start + 5 steps + final; batch 2 = start + 2 steps, then Ctrl-C at its 3rd step
    _interrupt_at(monkeypatch, {11: "raise"})
    code = main(["render", "conv2:0-5", "--model", "lenet-digits", "--steps", "5", "--batch-size", "2",
                 "--device", "cpu", "-o", str(tmp_path)])
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted after 2 steps" in err and "2 of 6 unit(s) were not rendered" in err
    texts = [read_png_text(tmp_path / f"lenet-digits_conv2_{u}.png") for u in range(4)]
    assert [t["dreamlab:steps"] for t in texts] == ["5", "5", "2", "2"]
    assert ["dreamlab:interrupted" in t for t in texts] == [False, False, True, True]
    assert texts[2]["dreamlab:interrupted"] == "after 2 of 5 steps"
    assert not (tmp_path / "lenet-digits_conv2_4.png").exists()


def test_ctrl_c_while_a_batch_starts_keeps_the_finished_batches(monkeypatch):
    _interrupt_at(monkeypatch, {6: "raise"})  # batch 2's first scoring (batch 1: start + 3 steps + final)
    result = render("lenet-digits", "conv2:0-3", steps=3, batch_size=2, device="cpu")
    assert result.interrupted and result.labels == ["conv2:0", "conv2:1"] and result.steps == [3, 3]
    assert "dreamlab:interrupted" not in result.unit_text(0)  # it ran all its steps


def test_ctrl_c_before_any_batch_finished_raises(monkeypatch):
    _interrupt_at(monkeypatch, {1: "raise"})
    with pytest.raises(KeyboardInterrupt):
        render("lenet-digits", "conv2:0-3", steps=3, batch_size=2, device="cpu")


def test_a_second_ctrl_c_while_a_batch_finishes_keeps_it(monkeypatch):
    _interrupt_at(monkeypatch, {3: "raise", 4: "signal"})  # Ctrl-C at step 2, again during the final scoring
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where pytest was started in the background by a shell
    result = render("lenet-digits", "conv2:0-3", steps=5, batch_size=2, device="cpu")
    assert result.interrupted and result.steps == [1, 1]
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_a_ctrl_c_at_the_end_of_a_batch_stops_after_it(monkeypatch):
    _interrupt_at(monkeypatch, {4: "signal"})  # during batch 1's final scoring: its steps are all done
    result = render("lenet-digits", "conv2:0-3", steps=2, batch_size=2, device="cpu")
    assert result.interrupted and result.steps == [2, 2] and len(result.labels) == 2


def test_a_ctrl_c_while_saving_waits_until_every_image_is_written(tmp_path, monkeypatch, capsys):
    from dreamlab import io

    original = io.save_png
    count = {"n": 0}

    def save_png_interrupted(*args, **kwargs):
        count["n"] += 1
        if count["n"] == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(io, "save_png", save_png_interrupted)
    before = signal.getsignal(signal.SIGINT)
    assert main(["render", "conv2:0-3", *LENET, "-o", str(tmp_path)]) == 130
    assert len(list(tmp_path.glob("*.png"))) == 4
    assert "interrupted while saving; saved every image first" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before
