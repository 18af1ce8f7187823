"""`dreamlab gallery` on lenet-digits (few steps, few channels): the files it writes, resume after Ctrl-C and
kill -9, settings checks, two gloo ranks under torchrun, odd names, and the page in headless Chromium."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from browser import Chromium, Page, load_all_thumbnails  # tests/browser.py
from PIL import Image
from torch import nn

from dreamlab import load_model, render
from dreamlab.apps.gallery import build as gallery
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.apps.gallery.build import build_gallery
from dreamlab.apps.gallery.folder import GalleryFolder
from dreamlab.apps.gallery.naming import layer_folder
from dreamlab.apps.gallery.plan import plan_batches
from dreamlab.optvis.units import parse_units
from dreamlab.apps.gallery.page import DATA_ELEMENT_ID
from dreamlab.io import load_image, read_png_text
from dreamlab.models.loading import LoadedModel
from dreamlab.optvis.objectives import channel
from dreamlab.models.recipe import Recipe, load_recipe

ARTIFACTS = Path(__file__).parent / "artifacts"
ODD_DIR = "my gallery 'q\" #1 & co"  # spaces, quotes, '#' and '&' in the user's output path
LAYERS = ("conv1", "conv2", "fc2")
CHANNELS = range(10)
BATCH = 4
ARGS = ["lenet-digits", "--layers", ",".join(LAYERS), "--channels", "0-9", "--steps", "8", "--batch-size",
        str(BATCH), "--device", "cpu"]
EXPECTED = [f"{layer}:{c}" for layer in LAYERS for c in CHANNELS]
BATCH_LABELS = [f"{layer}:{a}-{min(a + BATCH, 10) - 1}" for layer in LAYERS for a in range(0, 10, BATCH)]
# subprocesses: one thread each (two threads on a busy 2-core box make small renders ~20x slower)
SUBPROCESS_ENV = {**{k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")},
                  "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same arithmetic as the subprocesses, whose PNGs are compared byte for byte
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run through the CLI, into a folder whose name has odd characters."""
    out = tmp_path_factory.mktemp("ref") / ODD_DIR
    assert main(["gallery", *ARGS, "--out", str(out)]) == 0
    return out


def manifest_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def pngs_of(out: Path) -> dict[str, bytes]:
    """unit -> PNG bytes, for every unit of the manifest."""
    return {u["unit"]: (out / u["file"]).read_bytes() for u in manifest_of(out)["units"]}


def leftovers(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def assert_same_gallery(out: Path, reference: Path) -> None:
    """Exactly the reference's units, each once, with byte-identical PNGs and records; no temp files."""
    units = manifest_of(out)["units"]
    assert [u["unit"] for u in units] == EXPECTED
    assert units == manifest_of(reference)["units"]
    assert pngs_of(out) == pngs_of(reference)
    assert sorted(p.name for p in (out / ".units").glob("*/*.json")) == \
        sorted(p.name for p in (reference / ".units").glob("*/*.json"))
    assert leftovers(out) == []


# ------------------------------------------------------------------------------------------- the files


def test_gallery_writes_units_records_sheets_manifest_and_page(reference: Path) -> None:
    manifest = manifest_of(reference)
    recipe = load_recipe("lenet-digits")
    assert {k: manifest[k] for k in ("model", "recipe", "recipe_hash", "weights", "steps", "size", "seed")} == {
        "model": "lenet-digits", "recipe": "lenet-digits", "recipe_hash": recipe.hash(), "weights": "default",
        "steps": 8, "size": 28, "seed": 0}
    # fc2's output is the model's: the page's search box takes logit:N for it
    assert manifest["layers"] == [{"name": name, "channels": n, "steps": 8,
                                   **({"output": True} if name == "fc2" else {}), "sheet": f"{name}/contact_sheet.png"} for name, n in zip(LAYERS, (20, 50, 10))]
    assert [u["unit"] for u in manifest["units"]] == EXPECTED

    for unit in manifest["units"]:
        layer, ch = unit["layer"], unit["channel"]
        assert unit == {
            "unit": f"{layer}:{ch}", "layer": layer, "channel": ch, "objective": f"{layer}:{ch}",
            "activation": unit["activation"], "never_on": unit["activation"] == 0.0 and unit["never_on"], "seed": 0,
            "steps": 8, "size": 28, "recipe": "lenet-digits",
            "recipe_hash": recipe.hash(), "weights": "default", "weights_seed": None, "device": "cpu",
            "precision": "fp32", "compile": "no", "batch_size": BATCH, "scheme": 2,
            # the render options as the layer's units used them: here the recipe's
            "param": "fourier", "optimizer": "channel-adam", "lr": recipe.lr, "fourier_decay": 0.5,
            "transforms": "small", "file": f"{layer}/{layer}_{ch:04d}.png"}
        assert isinstance(unit["activation"], float) and isinstance(unit["never_on"], bool)
        record = json.loads((reference / ".units" / layer / f"{ch:04d}.json").read_text())
        assert record == unit
        with Image.open(reference / unit["file"]) as img:
            assert (img.size, img.mode) == ((28, 28), "L")
        text = read_png_text(reference / unit["file"])
        assert text["dreamlab:unit"] == unit["unit"] and text["dreamlab:seed"] == "0"
        # what was rendered: the layer's whole channel list, in which the channel is the unit's place
        count = dict(zip(LAYERS, (20, 50, 10)))[layer]
        assert (text["dreamlab:objective"], text["dreamlab:unit_index"]) == (f"{layer}:0-{count - 1}", str(ch))
        assert float(text["dreamlab:score"]) == pytest.approx(unit["activation"], rel=1e-5)
    # the logit units did what they were asked: each logit went up from its value on the unit's start image
    start = render(load_model("lenet-digits"), "fc2:0-9", steps=1, device="cpu").initial_scores
    reached = torch.tensor([u["activation"] for u in manifest["units"] if u["layer"] == "fc2"])
    assert torch.all(reached > start + 0.2), (reached, start)

    for layer in manifest["layers"]:  # 10 tiles of 28 px enlarged to 84: 4 columns, 3 rows, 2 px gaps
        with Image.open(reference / layer["sheet"]) as sheet:
            assert sheet.size == (4 * 86 + 2, 3 * 86 + 2)
            # each tile's channel is written in its top-left corner: white text on a black box
            corner = np.asarray(sheet.convert("L"))[2:14, 2:14]
            assert corner.max() > 200 and (corner == 0).mean() > 0.3
    assert len(list((reference / ".units").glob("*/*.json"))) == len(EXPECTED)
    page = (reference / "index.html").read_text(encoding="utf-8")
    block = re.search(rf'<script type="application/json" id="{DATA_ELEMENT_ID}">(.*?)</script>', page, re.DOTALL)
    assert block and json.loads(block[1]) == manifest
    assert leftovers(reference) == []


def test_a_units_record_says_how_to_render_it_again(reference: Path) -> None:
    unit = next(u for u in manifest_of(reference)["units"] if u["unit"] == "conv2:6")
    again = render(load_model("lenet-digits"), channel("conv2", range(50)), units=[6], seed=unit["seed"],
                   steps=unit["steps"], size=unit["size"], device="cpu")
    as_bytes = (again.images[0] * 255).round().to(torch.uint8)
    assert torch.equal(as_bytes, (load_image(reference / unit["file"]) * 255).round().to(torch.uint8))


# ---------------------------------------------------------------------------------------------- resume


def _interrupt_on_call(monkeypatch: pytest.MonkeyPatch, n: int, how: str) -> list[str]:
    """Make the gallery's n-th render call end as Ctrl-C would: 'flag' (the engine caught it mid-batch and
    returned early) or 'raise' (it arrived outside the step loop). Returns the batches rendered."""
    calls: list[str] = []
    count = [0]  # calls so far, also after `calls` is cleared: the interruption happens once
    real = gallery.render

    def fake(model: Any, objective: Any, **kwargs: Any) -> Any:
        layer, units = objective.name.split(":")[0], list(kwargs["units"])  # the batch, as Batch.label says it
        calls.append(f"{layer}:{units[0]}-{units[-1]}" if len(units) > 1 else f"{layer}:{units[0]}")
        count[0] += 1
        if count[0] == n and how == "raise":
            raise KeyboardInterrupt
        result = real(model, objective, **kwargs)
        return dataclasses.replace(result, interrupted=True) if count[0] == n else result

    monkeypatch.setattr(gallery, "render", fake)
    return calls


def test_resume_after_ctrl_c_renders_each_missing_unit_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            reference: Path) -> None:
    out = tmp_path / "g"
    args: dict[str, Any] = {"layers": LAYERS, "steps": 8, "batch_size": BATCH, "channels": CHANNELS, "device": "cpu"}
    calls = _interrupt_on_call(monkeypatch, 3, "flag")
    with pytest.raises(KeyboardInterrupt):
        build_gallery("lenet-digits", out, **args)
    assert calls == BATCH_LABELS[:3]
    done = [u["unit"] for u in manifest_of(out)["units"]]  # valid JSON, listing the two finished batches
    assert done == EXPECTED[:8]
    assert sorted(p.name for p in (out / "conv1").glob("conv1_*.png")) == [f"conv1_{c:04d}.png" for c in range(8)]
    assert leftovers(out) == []

    # as if killed between a PNG and its record: the unit counts as not done, its batch is rendered again
    (out / ".units" / "conv1" / "0005.json").unlink()
    calls.clear()
    result = build_gallery("lenet-digits", out, **args)
    assert calls == [BATCH_LABELS[1]] + BATCH_LABELS[2:]
    assert (result.skipped, result.total) == (7, 30)
    assert result.manifest == manifest_of(out)
    assert_same_gallery(out, reference)

    calls.clear()
    assert build_gallery("lenet-digits", out, **args).skipped == 30  # a third run has nothing to do
    assert calls == []
    assert_same_gallery(out, reference)


def test_cli_ctrl_c_exits_130_and_says_how_to_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g"
    _interrupt_on_call(monkeypatch, 2, "raise")
    assert main(["gallery", *ARGS, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted; 4 finished units are saved" in err and "Run the same command again" in err
    assert [u["unit"] for u in manifest_of(out)["units"]] == EXPECTED[:4]


def test_cli_ctrl_c_before_any_unit_finished_says_none_is_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g"
    _interrupt_on_call(monkeypatch, 1, "raise")
    assert main(["gallery", *ARGS, "--out", str(out)]) == 130
    assert capsys.readouterr().err.endswith(f"dreamlab: interrupted; no unit had finished, so {out} holds none. Run "
                                            f"the same command again to render them.\n")


def test_cli_compile_reaches_every_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    modes = []
    real = gallery.render

    def spy(*args, **kwargs):
        modes.append(kwargs["compile"])
        return real(*args, **{**kwargs, "compile": False})  # the compiled path itself: tests/test_compile.py

    monkeypatch.setattr(gallery, "render", spy)
    assert main(["gallery", *ARGS, "--out", str(tmp_path / "g"), "--compile"]) == 0
    assert main(["gallery", *ARGS, "--out", str(tmp_path / "h"), "--compile", "reduce-overhead"]) == 0
    assert len(modes) > 2 and set(modes[:len(modes) // 2]) == {"default"}
    assert set(modes[len(modes) // 2:]) == {"reduce-overhead"}


SLOW_RUN = """
import sys, time
import dreamlab.apps.gallery.build as g
real = g.render
def slow(*args, **kwargs):
    result = real(*args, **kwargs)
    time.sleep(0.5)  # leaves time to kill the run with a batch in flight
    return result
g.render = slow
from dreamlab.apps.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / ODD_DIR
    cmd = ["gallery", *ARGS, "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN, *cmd], cwd=tmp_path, env=SUBPROCESS_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob(".units/*/*.json"))) < BATCH and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert 0 < len(list(out.glob(".units/*/*.json"))) < len(EXPECTED)
    stale = out / "conv1" / ".conv1_0009.png.0123456789ab.tmp"  # what a kill inside atomic_write leaves
    stale.write_bytes(b"half a png")

    rerun = subprocess.run([sys.executable, "-m", "dreamlab", *cmd], check=False, cwd=tmp_path, env=SUBPROCESS_ENV,
                           capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.strip() == str(out / "index.html")
    assert "removed temporary files" in rerun.stderr
    assert not stale.exists()
    assert_same_gallery(out, reference)


# ----------------------------------------------------------------------------------- settings and checks


def test_other_settings_are_refused_and_overwrite_replaces_them(tmp_path: Path) -> None:
    out = tmp_path / "g"
    small: dict[str, Any] = {"layers": ["conv1"], "channels": [0, 1], "batch_size": 2, "device": "cpu"}
    build_gallery("lenet-digits", out, steps=4, **small)
    with pytest.raises(DreamlabError) as refused:
        build_gallery("lenet-digits", out, steps=5, **small)
    assert str(refused.value) == (f"{str(out)!r} holds units made with steps=4, this run has steps=5; use another out "
                                  f"folder (--out), or overwrite=True (--overwrite) to replace them")
    with pytest.raises(DreamlabError, match="weights='default', this run has weights='none'"):
        build_gallery("lenet-digits", out, steps=4, weights="none", **small)

    # another batch size is no other setting: the units are already there
    assert build_gallery("lenet-digits", out, steps=4, **{**small, "batch_size": 3}).rendered == 0

    # same settings, another layer: the gallery grows
    grown = build_gallery("lenet-digits", out, steps=4, layers=["fc2"], channels=[0, 1], device="cpu").manifest
    assert grown is not None and [u["unit"] for u in grown["units"]] == ["conv1:0", "conv1:1", "fc2:0", "fc2:1"]

    # --overwrite would delete fc2's units without rendering them: refused, and nothing is deleted
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(DreamlabError) as refused:
        build_gallery("lenet-digits", out, steps=5, overwrite=True, **small)
    assert str(refused.value) == (
        f"overwrite=True (--overwrite) would delete the finished units of layer 'fc2' (2 units) in {str(out)!r}, "
        f"which this run does not render; add it to layers (layers=['conv1', 'fc2'], --layers conv1,fc2) to render "
        f"it again with this run's settings, or use another out folder (--out)")
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    replaced = build_gallery("lenet-digits", out, steps=5, overwrite=True, **{**small, "layers": ["fc2", "conv1"]})
    assert replaced.manifest is not None and replaced.manifest["steps"] == 5 and replaced.rendered == 4
    assert [(u["unit"], u["steps"]) for u in replaced.manifest["units"]] == [
        ("conv1:0", 5), ("conv1:1", 5), ("fc2:0", 5), ("fc2:1", 5)]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "conv1/contact_sheet.png", "conv1/conv1_0000.png", "conv1/conv1_0001.png",
        "fc2/contact_sheet.png", "fc2/fc2_0000.png", "fc2/fc2_0001.png"]


def test_cli_overwrite_keeps_the_units_of_layers_it_does_not_render(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g"
    base = ["gallery", "lenet-digits", "--channels", "0-1", "--device", "cpu", "--out", str(out)]
    assert main([*base, "--layers", "conv1,conv2,fc2", "--steps", "2"]) == 0
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    capsys.readouterr()
    assert main([*base, "--layers", "conv1", "--steps", "3", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err == (f"dreamlab: error: overwrite=True (--overwrite) would delete the finished units of layers "
                   f"'conv2' (2 units), 'fc2' (2 units) in {str(out)!r}, which this run does not render; add them to "
                   f"layers (layers=['conv1', 'conv2', 'fc2'], --layers conv1,conv2,fc2) to render them again with "
                   f"this run's settings, or use another out folder (--out)\n")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == pngs
    assert [u["steps"] for u in manifest_of(out)["units"]] == [2] * 6


def test_bad_requests_fail_before_touching_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "g"
    with pytest.raises(DreamlabError, match="unknown layer 'conv9'; close matches: conv1, conv2"):
        build_gallery("lenet-digits", out, layers=["conv9"], device="cpu")
    with pytest.raises(DreamlabError, match=r"selects no channel of layer 'fc2' \(10 channels: 0-9\)"):
        build_gallery("lenet-digits", out, layers=["conv1", "fc2"], channels=[12, 13], device="cpu")
    assert not out.exists()


@pytest.mark.parametrize("layers, channels, message", [
    (["conv1"], range(51), "channels 0-50 (--channels 0-50) goes past layer 'conv1' (20 channels: 0-19); use "
                           "channels 0-19 (--channels 0-19), or leave channels out for every channel"),
    (["fc2", "conv1"], [3, 15, 25], "channels 3,15,25 (--channels 3,15,25) goes past layers 'fc2' (10 channels: "
                                    "0-9), 'conv1' (20 channels: 0-19); use channels 3,15 (--channels 3,15), or "
                                    "leave channels out for every channel"),
    (["conv1"], [25, 30], "channels 25,30 (--channels 25,30) selects no channel of layer 'conv1' (20 channels: "
                          "0-19); pick channels within 0-19 for it, or leave channels out for every channel"),
    (["conv1"], [], "channels (--channels) selects no channel; give some, e.g. range(16) (--channels 0-15), or "
                    "leave channels out for every channel"),
])
def test_channels_past_every_layer_asked_for_are_refused(tmp_path: Path, layers: list[str], channels: Any,
                                                         message: str) -> None:
    with pytest.raises(DreamlabError) as refused:
        build_gallery("lenet-digits", tmp_path / "g", layers=layers, channels=channels, steps=2, device="cpu")
    assert str(refused.value) == message
    assert not (tmp_path / "g").exists()


def test_channels_past_a_narrower_layer_are_named(tmp_path: Path) -> None:
    said: list[str] = []
    result = build_gallery("lenet-digits", tmp_path / "g", layers=["conv1", "conv2"], channels=range(18, 23),
                           steps=2, device="cpu", log=said.append)
    assert ("dreamlab: note: channels (--channels) goes past layer 'conv1' (20 channels: 0-19); 20-22 left out "
            "there") in said
    assert not any("past layer 'conv2'" in line for line in said)
    assert [u["unit"] for u in result.manifest["units"]] == ["conv1:18", "conv1:19", *(f"conv2:{c}" for c in
                                                                                         range(18, 23))]


def test_cli_reports_bad_channels_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["gallery", "lenet-digits", "--channels", "3-x", "--out", str(tmp_path / "g")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read '3-x'" in err
    assert main(["gallery", "lenet-digits", "--layers", "nope", "--out", str(tmp_path / "g")]) == 2
    assert "unknown layer 'nope'" in capsys.readouterr().err
    # a unit where a layer goes is told how a gallery spells it: the layer, and the channels apart
    assert main(["gallery", "lenet-digits", "--layers", "conv2:3-5", "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give the layer alone, 'conv2', and its channels as channels 3-5 " \
        "(--channels 3-5); `dreamlab layers lenet-digits` lists them all" in err
    assert not (tmp_path / "g").exists()
    assert main(["gallery", "hed-vgg16", "--weights", "none", "--layers", "features_22", "--out",
                 str(tmp_path / "g")]) == 2  # lucent's spelling, told as render tells it
    assert "lucent's 'features_22' is 'features.22' here (dotted module addresses)" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--layers", "conv1", "--channels", "0-50"],
     "channels 0-50 (--channels 0-50) goes past layer 'conv1' (20 channels: 0-19); use channels 0-19 "
     "(--channels 0-19), or leave channels out for every channel\n"),
    (["--layers", ""], "--layers '' is empty; give comma-separated layer names, e.g. --layers conv1,conv2 "
                       "(`dreamlab layers lenet-digits` lists them), or leave --layers out for the recipe's default "
                       "layer"),
    (["--layers", "conv1,,conv2"], "--layers 'conv1,,conv2' has an empty name at position 2; give comma-separated "
                                   "layer names"),
    (["--layers", "conv1,"], "--layers 'conv1,' has an empty name at position 2"),
    (["--out", "{tmp}/gal/x.png"], "out='{tmp}/gal/x.png' (--out) ends in .png like a file, but a gallery is a "
                                   "folder (one PNG per unit, manifest.json, index.html); give a folder name, e.g. "
                                   "out='{tmp}/gal/x' (--out {tmp}/gal/x)\n"),
    (["--out", "{tmp}/gal/page.HTML"], "out='{tmp}/gal/page.HTML' (--out) ends in .html like a file, but a gallery "
                                       "is a folder (one PNG per unit, manifest.json, index.html); give a folder "
                                       "name, e.g. out='{tmp}/gal/page' (--out {tmp}/gal/page)\n"),
])
def test_cli_refuses_bad_layers_channels_and_out_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             args: list[str], message: str) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = ["--out", str(tmp_path / "gal")] if "--out" not in args else []
    assert main(["gallery", "lenet-digits", "--steps", "2", "--device", "cpu", *out, *args]) == 2
    err = capsys.readouterr().err
    assert err == "dreamlab: error: " + message.replace("{tmp}", str(tmp_path)) if message.endswith("\n") else \
        err.count("\n") == 1 and err.startswith("dreamlab: error: " + message.replace("{tmp}", str(tmp_path))), err
    assert not (tmp_path / "gal").exists()  # refused before anything was written


def test_a_gallery_folder_named_like_a_file_is_still_resumed(tmp_path: Path) -> None:
    out = tmp_path / "old.png"  # made before such names were refused
    build_gallery("lenet-digits", tmp_path / "g", layers=["fc2"], channels=[0], steps=2, device="cpu")
    (tmp_path / "g").rename(out)
    assert build_gallery("lenet-digits", out, layers=["fc2"], channels=[0], steps=2, device="cpu").rendered == 0


def test_a_second_run_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    folder = GalleryFolder(tmp_path / "g")
    with folder.locked(), pytest.raises(DreamlabError, match="another dreamlab gallery run is writing"):
        build_gallery("lenet-digits", folder.out, layers=["fc2"], channels=[0], steps=2, device="cpu")


def test_channels_batches_and_folder_names() -> None:
    assert parse_units("0-3,8, 10-11,2") == [0, 1, 2, 3, 8, 10, 11]
    for bad in ("3-1", "a", "1-", ""):
        with pytest.raises(DreamlabError):
            parse_units(bad)
    # aligned windows: the same channel always lands in the same batch, whatever else is chosen
    labels = [b.label for b in plan_batches([("a", 10), ("b", 3)], [1, 2, 3, 4, 5, 7, 9], 4)]
    assert labels == ["a:1-3", "a:4-5", "a:7", "a:9", "b:1-2"]
    assert [b.label for b in plan_batches([("a", 5)], None, 2)] == ["a:0-1", "a:2-3", "a:4"]

    odd = ["a b", "a_b", "a/b", "index.html", "manifest.json", "ünï", ".units", "x" * 200]
    folders = [layer_folder(name) for name in odd]
    assert len(set(folders)) == len(odd)
    assert all(re.fullmatch(r"[A-Za-z0-9.+_-]{1,80}", f) and not f.startswith(".") for f in folders), folders
    assert folders[3] != "index.html" and layer_folder("inception4c") == "inception4c"


# -------------------------------------------------------------------------------------------- torchrun


def test_torchrun_two_gloo_ranks_share_the_units(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "dreamlab", "gallery", *ARGS, "--out", str(out)]
    run = subprocess.run(cmd, check=False, cwd=tmp_path, env=SUBPROCESS_ENV, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    by_rank: dict[int, list[str]] = {0: [], 1: []}
    for rank, label in re.findall(r"^\[rank (\d)/2\] (\S+): \d+ units", run.stderr, re.MULTILINE):
        by_rank[int(rank)].append(label)
    assert by_rank[0] and by_rank[1], run.stderr  # both ranks rendered
    assert sorted(by_rank[0] + by_rank[1]) == sorted(BATCH_LABELS)  # every batch once
    assert run.stdout.strip() == str(out / "index.html")  # rank 0 alone reports
    assert_same_gallery(out, reference)  # same bytes as one process: sharding does not change pixels
    assert (out / "index.html").is_file() and all((out / f"{layer}/contact_sheet.png").is_file() for layer in LAYERS)


# ------------------------------------------------------------------------------------------ odd names

ODD_LAYERS = ('</script><b>x</b> "q" & #1', "sp ace/slash?é", "index.html")


class OddNet(nn.Module):
    """Three convs whose layer names are hostile as HTML, as paths and as file names ("index.html" is the
    dotted address of a nested module: names themselves cannot contain '.')."""

    def __init__(self) -> None:
        super().__init__()
        self.add_module(ODD_LAYERS[0], nn.Conv2d(1, 3, 3, padding=1))
        self.add_module(ODD_LAYERS[1], nn.Conv2d(3, 2, 3, padding=1))
        self.index = nn.Module()
        self.index.add_module("html", nn.Conv2d(2, 2, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in ODD_LAYERS:
            x = torch.tanh(self.get_submodule(name)(x))
        return x


@pytest.fixture(scope="module")
def odd_gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    recipe = Recipe(name="odd-net", builder="tests:OddNet", weights="none", input_size=16, channels=1,
                    mean=(0.5,), std=(0.5,), transforms="small", steps=4)
    loaded = LoadedModel(model=OddNet().eval().requires_grad_(False), recipe=recipe, weights="none",
                         categories=None)
    out = tmp_path_factory.mktemp("odd") / ODD_DIR / "sub dir #2"
    build_gallery(loaded, out, layers=list(ODD_LAYERS), device="cpu")
    return out


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.h2: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_h2 = tag == "h2"
        if tag == "h2":
            self.h2.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_h2 = False if tag == "h2" else self._in_h2

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.h2[-1] += data


def test_odd_layer_names_and_paths_stay_inert(odd_gallery: Path) -> None:
    manifest = manifest_of(odd_gallery)
    assert [layer["name"] for layer in manifest["layers"]] == list(ODD_LAYERS)
    assert [u["unit"] for u in manifest["units"]] == [f"{name}:{c}" for name, n in zip(ODD_LAYERS, (3, 2, 2))
                                                      for c in range(n)]
    paths = [u["file"] for u in manifest["units"]] + [layer["sheet"] for layer in manifest["layers"]]
    for path in paths:  # plain relative names inside the folder, whatever the layer was called
        assert re.fullmatch(r"[A-Za-z0-9.+_-]+/[A-Za-z0-9.+_-]+\.png", path), path
        assert (odd_gallery / path).resolve().is_relative_to(odd_gallery.resolve())
        assert (odd_gallery / path).is_file()
    assert len({p.split("/")[0] for p in paths}) == 3
    assert (odd_gallery / "index.html").is_file() and (odd_gallery / "index.html").stat().st_size > 1000

    parser = _Tags()
    parser.feed((odd_gallery / "index.html").read_text(encoding="utf-8"))
    assert parser.tags.count("script") == 2 and "b" not in parser.tags
    assert parser.h2[:3] == list(ODD_LAYERS)


# ------------------------------------------------------------------------------------------ browser




def _jump(page: Page, text: str) -> dict[str, Any]:
    page.evaluate("(() => { const i = document.getElementById('jump-input'); i.value = ''; i.focus(); })()")
    page.type_text(text)
    page.press("Enter")
    page.wait_for("document.getElementById('viewer').open")
    return page.evaluate("""(() => ({title: document.getElementById('viewer-title').textContent,
        meta: Array.from(document.querySelectorAll('#viewer-meta dd'), (e) => e.textContent),
        img: document.getElementById('viewer-img').getAttribute('src')}))()""")


def _check_clean(page: Page) -> None:
    page.browser.pump(0.05)
    assert page.console_errors() == []
    assert page.events("Page.javascriptDialogOpening") == []
    assert all(u.startswith(("file://", "data:")) for u in page.requested_urls())


def test_browser_shows_the_real_gallery_and_jumps_to_a_unit(chromium: Chromium, reference: Path) -> None:
    page = chromium.new_page(width=1100, height=800)
    page.goto((reference / "index.html").as_uri())
    assert page.evaluate("Array.from(document.querySelectorAll('section.layer h2'), (h) => h.textContent)") == \
        list(LAYERS)
    loaded = load_all_thumbnails(page)
    assert [src for _, src, _ in loaded] == [u["file"] for u in manifest_of(reference)["units"]]
    assert all(width == 28 for _, _, width in loaded), loaded  # every thumbnail's image loaded
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(ARTIFACTS / "gallery_lenet.png", full_page=True)

    below = "(() => { const r = document.getElementById('u27').getBoundingClientRect(); return r.top > innerHeight; })()"
    assert page.evaluate(below) is True  # fc2:7 starts below the fold
    state = _jump(page, "fc2:7")
    assert state["title"] == "fc2:7" and state["img"] == "fc2/fc2_0007.png"
    assert "fc2:7" in state["meta"] and "lenet-digits" in state["meta"]
    assert page.evaluate(below) is False
    assert page.wait_for("document.getElementById('viewer-img').naturalWidth") == 28
    page.screenshot(ARTIFACTS / "gallery_lenet_viewer.png")
    _check_clean(page)


def test_browser_odd_names_render_as_text(chromium: Chromium, odd_gallery: Path) -> None:
    page = chromium.new_page(width=900, height=700)
    page.goto((odd_gallery / "index.html").as_uri())
    assert page.evaluate("document.scripts.length") == 2
    assert page.evaluate("document.querySelectorAll('b').length") == 0
    assert page.evaluate("Array.from(document.querySelectorAll('section.layer h2'), (h) => h.textContent)") == \
        list(ODD_LAYERS)
    assert all(width == 16 for _, _, width in load_all_thumbnails(page))
    state = _jump(page, f"{ODD_LAYERS[1]}:1")
    assert state["title"] == f"{ODD_LAYERS[1]}:1"
    sheets = page.evaluate("""Promise.all(Array.from(document.querySelectorAll('a.sheet'), (a) =>
        new Promise((resolve) => { const i = new Image(); i.onload = () => resolve(i.naturalWidth);
                                   i.onerror = () => resolve(0); i.src = a.href; })))""")
    assert sheets == [2 * 66 + 2] * 3  # 3, 2, 2 tiles of 16 px enlarged to 64: two columns each
    page.screenshot(ARTIFACTS / "gallery_odd_names.png")
    _check_clean(page)



def test_images_at_few_steps_barely_depend_on_the_batch_size(tmp_path: Path, reference: Path) -> None:
    other = build_gallery("lenet-digits", tmp_path / "b3", layers=["conv2"], channels=CHANNELS, steps=8,
                          batch_size=3, device="cpu").manifest
    assert other is not None
    by_unit = {u["unit"]: u for u in manifest_of(reference)["units"]}
    for unit in other["units"]:
        mine, theirs = load_image(tmp_path / "b3" / unit["file"]), load_image(reference / unit["file"])
        assert (mine - theirs).abs().max() <= 1 / 255 + 1e-6, unit["unit"]  # batched convs may round differently
        assert unit["activation"] == pytest.approx(by_unit[unit["unit"]]["activation"], rel=1e-3, abs=1e-4)


@pytest.fixture(scope="module")
def diverse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conv2:0-3 and fc2:0-3 with 3 images per unit, in batches of 2 units, through the CLI."""
    out = tmp_path_factory.mktemp("diverse") / "g"
    assert main(["gallery", "lenet-digits", "--layers", "conv2,fc2", "--channels", "0-3", "--steps", "8",
                 "--batch-size", "2", "--diversity", "3", "--device", "cpu", "--out", str(out)]) == 0
    return out


def test_diversity_gallery_keeps_each_units_images_and_scores(diverse: Path) -> None:
    manifest = manifest_of(diverse)
    assert (manifest["diversity"], manifest["diversity_weight"]) == (3, 1.0)
    units = manifest["units"]
    assert [u["unit"] for u in units] == [f"{layer}:{c}" for layer in ("conv2", "fc2") for c in range(4)]
    loaded = load_model("lenet-digits")
    for layer in ("conv2", "fc2"):
        count = 50 if layer == "conv2" else 10
        again = render(loaded, channel(layer, range(count)), units=[1, 2], steps=8, diversity=3, device="cpu")
        for k, ch in enumerate((1, 2)):
            record = next(u for u in units if u["unit"] == f"{layer}:{ch}")
            assert record["files"] == [f"{layer}/{layer}_{ch:04d}_{i}.png" for i in (1, 2, 3)]
            assert record["file"] == record["files"][0] and record["activation"] == record["activations"][0]
            assert record["activations"] == pytest.approx(again.final_scores[3 * k:3 * k + 3].tolist())
            for i, file in enumerate(record["files"]):
                expected = (again.images[3 * k + i] * 255).round() / 255
                assert torch.allclose(load_image(diverse / file), expected, atol=1 / 255), file
                assert read_png_text(diverse / file)["dreamlab:diversity"].startswith("3 images per unit")
            assert not torch.equal(load_image(diverse / record["files"][0]), load_image(diverse / record["files"][1]))
    # the contact sheet holds one tile per unit (its first image) and the page marks the units as N images
    sheet = Image.open(diverse / "conv2" / "contact_sheet.png")
    assert sheet.size == (2 * 84 + 3 * 2, 2 * 84 + 3 * 2)
    assert (diverse / "index.html").read_text(encoding="utf-8").count('class="ch">1 ×3<') == 2


def test_diversity_gallery_resumes_and_refuses_other_settings(diverse: Path, tmp_path: Path) -> None:
    out = tmp_path / "g"
    shutil.copytree(diverse, out)
    args: dict[str, Any] = {"layers": ["conv2", "fc2"], "channels": range(4), "steps": 8, "batch_size": 2,
                            "device": "cpu"}
    assert build_gallery("lenet-digits", out, diversity=3, **args).rendered == 0
    with pytest.raises(DreamlabError, match="holds units made with diversity=3, this run has diversity=1"):
        build_gallery("lenet-digits", out, **args)
    with pytest.raises(DreamlabError, match="diversity_weight=1.0, this run has diversity_weight=2.0"):
        build_gallery("lenet-digits", out, diversity=3, diversity_weight=2, **args)
    # a unit missing one of its images is not done: it is rendered again, with the same pixels
    second = out / "conv2" / "conv2_0001_2.png"
    before = second.read_bytes()
    second.unlink()
    assert build_gallery("lenet-digits", out, diversity=3, **args).rendered == 1
    assert second.read_bytes() == before
    # --overwrite removes every image of every unit (and refuses to drop the units --channels leaves out)
    with pytest.raises(DreamlabError, match=r"would delete 6 finished units \(conv2:1-3, fc2:1-3\)"):
        build_gallery("lenet-digits", out, layers=["conv2", "fc2"], channels=[0], steps=8, device="cpu",
                      overwrite=True)
    build_gallery("lenet-digits", out, **{**args, "batch_size": 4}, overwrite=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted([
        "conv2/contact_sheet.png", "fc2/contact_sheet.png",
        *(f"{layer}/{layer}_000{c}.png" for layer in ("conv2", "fc2") for c in range(4))])


def test_diversity_gallery_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gallery", "lenet-digits", "--diversity-weight", "2", "--out", str(tmp_path / "g")]) == 2
    assert "--diversity-weight applies to several images per unit: add --diversity N" in capsys.readouterr().err
    assert main(["gallery", "lenet-digits", "--diversity", "65", "--out", str(tmp_path / "g")]) == 2
    assert "diversity 65 is out of range; valid: 1 to 64 images per unit" in capsys.readouterr().err
    with pytest.raises(DreamlabError, match="diversity_weight"):
        build_gallery("lenet-digits", tmp_path / "g", diversity=2, diversity_weight=-1.0, device="cpu")
    assert not (tmp_path / "g").exists()


def test_browser_viewer_shows_a_units_diversity_images(chromium: Chromium, diverse: Path) -> None:
    page = chromium.new_page(width=1100, height=800)
    page.goto((diverse / "index.html").as_uri())
    state = _jump(page, "fc2:2")
    assert state["img"] == "fc2/fc2_0002_1.png"
    strip = "Array.from(document.querySelectorAll('#viewer-strip button'), (b) => [b.querySelector('img')" \
            ".getAttribute('src'), b.getAttribute('aria-pressed')])"
    assert page.evaluate(strip) == [[f"fc2/fc2_0002_{i}.png", str(i == 1).lower()] for i in (1, 2, 3)]
    assert page.wait_for("Array.from(document.querySelectorAll('#viewer-strip img')).every((i) => i.naturalWidth "
                         "=== 28)")
    page.evaluate("document.querySelectorAll('#viewer-strip button')[2].click()")
    assert page.evaluate("document.getElementById('viewer-img').getAttribute('src')") == "fc2/fc2_0002_3.png"
    assert page.evaluate("document.getElementById('viewer-file').getAttribute('href')") == "fc2/fc2_0002_3.png"
    assert page.evaluate(strip)[2][1] == "true"
    # the side panel follows the image shown: its file, its activation, and which image it is
    meta = "Object.fromEntries(Array.from(document.querySelectorAll('#viewer-meta dt'), (dt) => [dt.textContent, " \
           "dt.nextElementSibling.textContent]))"
    unit = next(u for u in manifest_of(diverse)["units"] if u["unit"] == "fc2:2")
    shown = page.evaluate(meta)
    assert (shown["image"], shown["file"]) == ("3 of 3", "fc2/fc2_0002_3.png")
    assert float(shown["activation"]) == pytest.approx(unit["activations"][2], rel=1e-5)
    assert float(shown["activation"]) != pytest.approx(unit["activations"][0], rel=1e-5)
    page.evaluate("document.querySelectorAll('#viewer-strip button')[0].click()")
    shown = page.evaluate(meta)
    assert (shown["image"], shown["file"]) == ("1 of 3", "fc2/fc2_0002_1.png")
    assert float(shown["activation"]) == pytest.approx(unit["activations"][0], rel=1e-5)
    page.evaluate("document.querySelectorAll('#viewer-strip button')[2].click()")
    page.screenshot(ARTIFACTS / "gallery_diversity_viewer.png")
    page.evaluate("document.getElementById('viewer-next').click()")  # another unit: its own strip, first image
    assert page.evaluate("document.getElementById('viewer-img').getAttribute('src')") == "fc2/fc2_0003_1.png"
    assert page.evaluate(meta)["image"] == "1 of 3"
    _check_clean(page)


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_overwrite_refuses_to_drop_finished_channels_outside_channels(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g"
    base = ["gallery", "lenet-digits", "--layers", "conv1", "--device", "cpu", "--out", str(out)]
    assert main([*base, "--channels", "0-5", "--steps", "2"]) == 0
    before = _files(out)
    capsys.readouterr()
    assert main([*base, "--channels", "0-1", "--steps", "3", "--overwrite"]) == 2
    assert capsys.readouterr().err == (
        f"dreamlab: error: overwrite=True (--overwrite) would delete 4 finished units (conv1:2-5) in {str(out)!r}, "
        f"which this run's channels 0-1 (--channels 0-1) does not render; leave channels out to render every channel "
        f"again with this run's settings (or use channels 0-5, --channels 0-5), or use another out folder (--out)\n")
    assert _files(out) == before  # nothing deleted, not even the page

    # with the finished channels in --channels, --overwrite renders them all again
    assert main([*base, "--channels", "0-5", "--steps", "3", "--overwrite"]) == 0
    assert [(u["unit"], u["steps"]) for u in manifest_of(out)["units"]] == [(f"conv1:{c}", 3) for c in range(6)]


def test_overwrite_names_the_dropped_channels_of_each_layer(tmp_path: Path) -> None:
    out = tmp_path / "g"
    build_gallery("lenet-digits", out, ["conv1", "fc2"], channels=[0, 1, 2, 5], steps=2, device="cpu")
    with pytest.raises(DreamlabError) as refused:
        build_gallery("lenet-digits", out, ["conv1", "fc2"], channels=[0, 1], steps=3, overwrite=True,
                      device="cpu")
    assert str(refused.value) == (
        f"overwrite=True (--overwrite) would delete 4 finished units (conv1:2,5, fc2:2,5) in {str(out)!r}, which "
        f"this run's channels 0-1 (--channels 0-1) does not render; leave channels out to render every channel again "
        f"with this run's settings (or use channels 0-2,5, --channels 0-2,5), or use another out folder (--out)")
    assert len(GalleryFolder(out).read_records()) == 8


@pytest.mark.parametrize("name", ["index.html", "manifest.json"])
def test_a_folder_that_is_no_gallery_keeps_its_own_page_and_manifest(tmp_path: Path, name: str,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / name).write_text("mine\n")
    argv = ["gallery", "lenet-digits", "--layers", "conv1", "--channels", "0", "--steps", "2", "--device", "cpu",
            "--out", str(out)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"dreamlab: error: out={str(out)!r} (--out) already holds {name} that no gallery wrote (there is no .units/ "
        f"folder), which the gallery's own {name} would replace; give an empty folder or a new name, e.g. "
        f"out={str(out / 'gallery')!r} (--out {out / 'gallery'})\n")
    assert sorted(p.name for p in out.iterdir()) == [name] and (out / name).read_text() == "mine\n"
    with pytest.raises(DreamlabError, match=f"already holds {name} that no gallery wrote"):
        build_gallery("lenet-digits", out, ["conv1"], channels=[0], steps=2, device="cpu")

    # a folder with other files of the user's is fine, and a gallery's own folder resumes
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("keep\n")
    assert main([*argv[:-1], str(other)]) == 0
    assert (other / "notes.txt").read_text() == "keep\n"
    assert main([*argv[:-1], str(other)]) == 0


def test_per_layer_steps_show_in_the_page_header_and_sections(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "recipes" / "lenet_digits.toml").read_text(encoding="utf-8")
    assert "\nsteps = 256\n" in text
    recipe = tmp_path / "my_lenet.toml"
    recipe.write_text(text.replace("\nsteps = 256\n", "\nsteps = 2\n") + '\n[layers."fc2"]\nsteps = 3\n')
    out = tmp_path / "g"
    assert main(["gallery", str(recipe), "--layers", "conv1,fc2", "--channels", "0-1", "--device", "cpu",
                 "--out", str(out)]) == 0
    manifest = manifest_of(out)
    assert manifest["steps"] is None and [(l["name"], l["steps"]) for l in manifest["layers"]] == [
        ("conv1", 2), ("fc2", 3)]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert '<dt>steps</dt><dd title="per layer">per layer</dd>' in page and "null" not in page.split("<script")[0]
    assert '<h2>conv1</h2><span class="count">20 channels · 2 shown · 2 steps</span>' in page
    assert '<h2>fc2</h2><span class="count">10 channels · 2 shown · 3 steps</span>' in page


def test_progress_says_which_units_a_resume_renders(tmp_path: Path) -> None:
    out = tmp_path / "g"
    args: dict[str, Any] = {"layers": ["conv2"], "channels": range(4), "steps": 2, "batch_size": 4, "device": "cpu"}
    lines: list[str] = []
    build_gallery("lenet-digits", out, log=lines.append, **args)
    assert any(re.fullmatch(r"conv2:0-3: 4 units in [0-9.]+ s \(batch 1/1\)", line) for line in lines), lines
    (out / "conv2" / "conv2_0002.png").unlink()
    lines.clear()
    build_gallery("lenet-digits", out, log=lines.append, **args)
    assert any(re.fullmatch(r"conv2:0-3: 1 unit \(conv2:2; 3 already done\) in [0-9.]+ s \(batch 1/1\)", line)
               for line in lines), lines


def test_help_and_resume_note_do_not_promise_batch_size_independence(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["gallery", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "do not depend on it" not in help_text
    assert "rounding depends on it, on a CPU too" in help_text and "keep one per gallery" in help_text
    out = tmp_path / "g"
    args: dict[str, Any] = {"layers": ["conv1"], "channels": [0, 1], "steps": 2, "device": "cpu"}
    build_gallery("lenet-digits", out, batch_size=2, **args)
    lines: list[str] = []
    build_gallery("lenet-digits", out, batch_size=1, log=lines.append, **{**args, "channels": [0, 1, 2]})
    note = [line for line in lines if "note:" in line]
    assert note == [f"dreamlab: note: {out}: units there were rendered with batch_size 2 and this run uses 1; rounding "
                    f"depends on the batch size (on CPUs too), so some units can differ slightly from a run with "
                    f"one batch size (gallery/README.md, Determinism); pass batch_size=2 (--batch-size 2) to match "
                    f"them"]


def test_a_weights_file_retrained_in_place_is_refused_on_resume(tmp_path: Path) -> None:
    weights = tmp_path / "lenet.pt"
    torch.save(load_model("lenet-digits", weights="none").model.state_dict(), weights)
    out = tmp_path / "g"
    small: dict[str, Any] = {"layers": ["conv1"], "channels": [0, 1], "steps": 2, "device": "cpu",
                             "weights": str(weights)}
    build_gallery("lenet-digits", out, **small)
    first = manifest_of(out)["units"][0]["weights_sha256"]
    assert first == read_png_text(out / manifest_of(out)["units"][0]["file"])["dreamlab:weights_sha256"]
    assert build_gallery("lenet-digits", out, **small).rendered == 0  # the same file resumes

    state = torch.load(weights)
    state["conv1.weight"] += 0.1  # retrained: same path, other weights
    torch.save(state, weights)
    with pytest.raises(DreamlabError) as refused:
        build_gallery("lenet-digits", out, **small)
    assert str(refused.value).startswith(f"{str(out)!r} holds units made from {str(weights)!r} with sha256 {first}, "
                                         f"and the file now has sha256 ")
    assert str(refused.value).endswith(" (retrained or replaced); use another out folder (--out), or "
                                       "overwrite=True (--overwrite) to replace them")
    assert build_gallery("lenet-digits", out, overwrite=True, **small).rendered == 2
    assert manifest_of(out)["units"][0]["weights_sha256"] != first


def test_a_weights_file_named_another_way_resumes_by_its_bytes(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "lenet.pt"
    torch.save(load_model("lenet-digits", weights="none").model.state_dict(), weights)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    small: dict[str, Any] = {"layers": ["conv1"], "steps": 2, "device": "cpu", "batch_size": 1}
    build_gallery("lenet-digits", "g", channels=[0], weights="lenet.pt", **small)
    monkeypatch.chdir(tmp_path / "sub")  # the same file from another folder, then by its absolute path
    assert build_gallery("lenet-digits", "../g", channels=[0, 1], weights="../lenet.pt", **small).rendered == 1
    assert build_gallery("lenet-digits", "../g", channels=[0, 1, 2], weights=str(weights), **small).rendered == 1
    torch.save({k: v + 0.1 for k, v in torch.load(weights).items()}, tmp_path / "other.pt")
    with pytest.raises(DreamlabError, match=r"holds units made with weights='lenet.pt', this run has "
                                            r"weights='\.\./other.pt'"):
        build_gallery("lenet-digits", "../g", channels=[0], weights="../other.pt", **small)
