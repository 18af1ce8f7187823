"""`dreamlab gallery` after review r9 (/tmp/r9/gallery.md): the committed example is what the current code
builds, a folder of another render scheme or precision is refused, device and --compile changes are noted,
dataset examples follow the weights and keep earlier channels, the lock goes at the end of a run, and the CLI's
summary and activation-0 note speak of what the run did."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image, PngImagePlugin

from dreamlab.apps.cli import main
from dreamlab.apps.commands.gallery import summary
from dreamlab.apps.gallery import build as gallery_build
from dreamlab.apps.gallery.build import build_gallery
from dreamlab.apps.gallery.folder import GalleryFolder
from dreamlab.apps.gallery.page import render_index
from dreamlab.apps.gallery.plan import resolve_precision
from dreamlab.apps.gallery.resume import RENDER_SCHEME, warn_device_and_compile
from dreamlab.errors import DreamlabError
from dreamlab.io import read_png_text
from dreamlab.optvis.result import RenderResult

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "gallery" / "lenet-digits"
SMALL: dict[str, Any] = {"layers": ["conv1"], "channels": [0, 1], "steps": 2, "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_thread")


def records(out: Path) -> list[Path]:
    return sorted((out / ".units").glob("*/*.json"))


def edit_records(out: Path, **changes: Any) -> None:
    """Rewrite every unit record with `changes` (a value of None deletes the key)."""
    for path in records(out):
        record = json.loads(path.read_text())
        for key, value in changes.items():
            if value is None:
                record.pop(key, None)
            else:
                record[key] = value
        path.write_text(json.dumps(record, indent=1) + "\n")


# 1. the committed example, and folders of an older render scheme

def test_committed_example_is_what_the_current_code_builds() -> None:
    manifest = json.loads((COMMITTED / "manifest.json").read_text(encoding="utf-8"))
    counts = {layer["name"]: layer["channels"] for layer in manifest["layers"]}
    assert counts == {"conv1": 20, "conv2": 50, "fc2": 10} and len(manifest["units"]) == 80
    for unit in manifest["units"]:
        text = read_png_text(COMMITTED / unit["file"])
        # the documented provenance: the layer's whole channel list, and the unit's place in it
        assert text["dreamlab:objective"] == f"{unit['layer']}:0-{counts[unit['layer']] - 1}", unit["file"]
        assert text["dreamlab:unit_index"] == str(unit["channel"])
        assert unit["scheme"] == RENDER_SCHEME and unit["compile"] == "no" and unit["device"] == "cpu"
        record = json.loads((COMMITTED / ".units" / unit["layer"] / f"{unit['channel']:04d}.json").read_text())
        assert record == unit
    assert (COMMITTED / "index.html").read_text(encoding="utf-8") == render_index(manifest)
    assert not (COMMITTED / ".units" / "lock").exists()
    script = (REPO / "gallery" / "build_examples.sh").read_text()
    assert 'rm -rf "$build"' in script  # the script builds from an empty folder


def test_a_folder_of_an_older_render_scheme_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "g"
    build_gallery("lenet-digits", out, **SMALL)
    edit_records(out, scheme=None)  # a gallery of the current scheme made before records said so: resumes
    assert build_gallery("lenet-digits", out, **SMALL).rendered == 0

    png = out / "conv1" / "conv1_0001.png"  # as the old scheme wrote it: no unit_index, its own objective
    with Image.open(png) as img:
        img.load()
        info = PngImagePlugin.PngInfo()
        for key, value in img.text.items():
            if key != "dreamlab:unit_index":
                info.add_text(key, "conv1:1" if key == "dreamlab:objective" else value)
        img.save(png, pnginfo=info)
    message = (f"{str(out)!r} holds units of render scheme 1 (each unit rendered as its own objective), and this "
               f"dreamlab renders scheme 2 (each unit its channel of the layer's whole channel list), whose images "
               f"differ; use another out folder (--out), or overwrite=True (--overwrite) to render them again")
    with pytest.raises(DreamlabError) as err:
        build_gallery("lenet-digits", out, **SMALL)
    assert str(err.value) == message
    edit_records(out, scheme=1)
    with pytest.raises(DreamlabError, match="holds units of render scheme 1"):
        build_gallery("lenet-digits", out, **SMALL)
    assert build_gallery("lenet-digits", out, overwrite=True, **SMALL).rendered == 2
    assert {json.loads(p.read_text())["scheme"] for p in records(out)} == {RENDER_SCHEME}


# 5. precision is refused, device and --compile are noted, compile is recorded

def test_another_precision_is_refused_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g"
    build_gallery("lenet-digits", out, **SMALL)
    with pytest.raises(DreamlabError) as err:
        build_gallery("lenet-digits", out, precision="bf16", **SMALL)
    assert str(err.value) == (f"{str(out)!r} holds units rendered at precision fp32 (on cpu), this run renders at "
                              f"bf16; pass precision='fp32' (--precision fp32) to match them, or use another out "
                              f"folder (--out), or overwrite=True (--overwrite) to replace them")
    capsys.readouterr()
    assert main(["gallery", "lenet-digits", "--layers", "conv1", "--channels", "0", "--precision", "fp16",
                 "--out", str(tmp_path / "h")]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "unknown precision 'fp16'" in err_lines[0] and "fp32, bf16" in err_lines[0]
    assert not (tmp_path / "h").exists()
    # auto: what a GPU resume would pick (bf16), which the check above then refuses for a CPU-started folder
    assert resolve_precision("auto", torch.device("cuda", 0)) == "bf16"
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"


def test_another_device_or_compile_choice_is_noted(tmp_path: Path) -> None:
    out = tmp_path / "g"
    build_gallery("lenet-digits", out, **SMALL)
    assert {json.loads(p.read_text())["compile"] for p in records(out)} == {"no"}
    edit_records(out, device="cuda", compile="max-autotune")
    lines: list[str] = []
    assert build_gallery("lenet-digits", out, log=lines.append, **SMALL).rendered == 0
    assert not [line for line in lines if "note:" in line]  # the folder is done: nothing they would explain
    assert build_gallery("lenet-digits", out, log=lines.append, **{**SMALL, "channels": [0, 1, 2]}).rendered == 1
    notes = [line for line in lines if line.startswith("dreamlab: note:")]
    assert notes == [
        f"dreamlab: note: {out}: units there were rendered on cuda and this run renders on cpu; kernels round "
        f"differently on another device, so some units can differ slightly from a run on one device; pass "
        f"device='cuda' (--device cuda) to match them",
        f"dreamlab: note: {out}: units there were rendered with compile max-autotune and this run with compile no; "
        f"compiled kernels can round differently, so some units can differ slightly; pass compile='max-autotune' "
        f"(--compile max-autotune) to match them"]
    lines.clear()  # (called directly: a compiled render on this CPU would take minutes)
    warn_device_and_compile([{"device": "cpu", "compile": "no"}], torch.device("cpu"), "default", out, lines.append)
    assert lines == [
        f"dreamlab: note: {out}: units there were rendered with compile no and this run with compile default; "
        f"compiled kernels can round differently, so some units can differ slightly; leave compile (--compile) out "
        f"to match them"]
    lines.clear()  # records from before compile was recorded: not compared
    warn_device_and_compile([{"device": "cpu"}], torch.device("cpu"), "default", out, lines.append)
    assert lines == []


def test_compile_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = gallery_build.render

    def no_compile(*args: Any, **kwargs: Any) -> Any:  # record what --compile asked for without compiling
        assert kwargs.pop("compile") == "reduce-overhead"
        result = real(*args, **kwargs)
        result.provenance["dreamlab:compile"] = "reduce-overhead"
        return result

    monkeypatch.setattr(gallery_build, "render", no_compile)
    out = tmp_path / "g"
    build_gallery("lenet-digits", out, compile="reduce-overhead", **SMALL)
    assert {json.loads(p.read_text())["compile"] for p in records(out)} == {"reduce-overhead"}


# 2, 3. dataset examples follow the weights and keep the channels found before

def test_overwrite_with_other_weights_finds_the_examples_again(tmp_path: Path, photos: Path) -> None:
    out, lines = tmp_path / "g", []
    args: dict[str, Any] = {"layers": ["conv2"], "channels": [0, 1], "steps": 2, "device": "cpu",
                            "examples": photos, "examples_top": 2}
    trained = build_gallery("lenet-digits", out, **args).manifest["units"][0]["example_scores"]
    random = build_gallery("lenet-digits", out, weights="none", overwrite=True, log=lines.append, **args)
    assert "conv2: dataset examples of 2 units from 2 images" in lines
    assert random.manifest["weights"] == "none"
    assert random.manifest["units"][0]["example_scores"] != trained
    key = json.loads((out / ".examples" / "conv2.json").read_text())["key"]
    assert (key["weights"], key["weights_seed"]) == ("none", 0) and key["recipe_hash"].startswith("sha256:")


def test_added_channels_keep_the_earlier_channels_examples(tmp_path: Path, photos: Path) -> None:
    out, lines = tmp_path / "g", []
    args: dict[str, Any] = {"layers": ["conv2"], "steps": 2, "device": "cpu", "examples_top": 2}
    build_gallery("lenet-digits", out, channels=[0, 1], examples=photos, **args)
    first = (out / "conv2" / "conv2_0000_examples.png").read_bytes()
    manifest = build_gallery("lenet-digits", out, channels=[2], examples=photos, log=lines.append, **args).manifest
    assert "conv2: dataset examples of 1 unit from 2 images" in lines  # only the new channel is searched
    assert [u["examples"] for u in manifest["units"]] == [f"conv2/conv2_{c:04d}_examples.png" for c in range(3)]
    assert (out / "conv2" / "conv2_0000_examples.png").read_bytes() == first
    # a run without --examples shows them too
    manifest = build_gallery("lenet-digits", out, channels=[0, 1, 2, 3], **args).manifest
    assert [u.get("examples") for u in manifest["units"]] == \
        [f"conv2/conv2_{c:04d}_examples.png" for c in range(3)] + [None]
    lines.clear()  # other K: every channel found before is found again, none dropped
    build_gallery("lenet-digits", out, channels=[3], examples=photos, log=lines.append,
                  **{**args, "examples_top": 1})
    assert "conv2: dataset examples of 4 units from 2 images" in lines
    record = json.loads((out / ".examples" / "conv2.json").read_text())
    assert sorted(record["units"], key=int) == ["0", "1", "2", "3"]
    assert all(len(u["images"]) == 1 for u in record["units"].values())


# 11. the lock file goes at the end of a run

def test_the_lock_file_is_removed_at_the_end_of_a_run(tmp_path: Path) -> None:
    out = tmp_path / "g"
    build_gallery("lenet-digits", out, **SMALL)
    assert not (out / ".units" / "lock").exists()
    folder = GalleryFolder(out)
    with folder.locked():
        assert (out / ".units" / "lock").is_file()
        with pytest.raises(DreamlabError, match="another dreamlab gallery run is writing"):
            build_gallery("lenet-digits", out, **SMALL)
        assert (out / ".units" / "lock").is_file()  # the refused run leaves the holder's lock alone
    assert not (out / ".units" / "lock").exists()
    (out / ".units" / "lock").write_text("")  # left by a killed run: taken over, then removed
    assert build_gallery("lenet-digits", out, **SMALL).rendered == 0
    assert not (out / ".units" / "lock").exists()


# 9, 10. the CLI's closing lines

def test_cli_summary_on_partial_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g"
    base = ["gallery", "lenet-digits", "--steps", "2", "--device", "cpu", "--out", str(out)]
    assert main([*base, "--layers", "conv1", "--channels", "0-2"]) == 0
    err = capsys.readouterr().err
    assert f"{out}: 3 units asked for, in 1 batch, 0 already done" in err
    assert f"{out}: 3 units in the gallery (3 rendered now, 0 already done)" in err
    assert main([*base, "--layers", "conv1", "--channels", "1"]) == 0
    err = capsys.readouterr().err
    assert f"{out}: 1 unit asked for, in 1 batch, 1 already done" in err
    assert f"{out}: 3 units in the gallery; of the 1 unit this run asked for, 0 rendered now, 1 already done" in err
    assert summary(out, 80, 10, 10) == f"{out}: 80 units in the gallery; of the 10 units this run asked for, 0 " \
                                       f"rendered now, 10 already done"
    assert not re.search(r"\b1 batches\b|\b1 units\b", err)


def test_activation_0_note_names_only_units_rendered_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(RenderResult, "never_on_mask", lambda self: [True] * len(self.labels))  # every unit off
    base = ["gallery", "lenet-digits", "--layers", "conv1", "--steps", "1", "--device", "cpu", "--out",
            str(tmp_path / "g")]
    assert main([*base, "--channels", "0"]) == 0
    assert "dreamlab: note: conv1:0 stayed at 0 for every step (the page marks them)" in capsys.readouterr().err
    assert main([*base, "--channels", "0-1"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "stayed at 0" in line]
    assert len(notes) == 1 and notes[0].startswith("dreamlab: note: conv1:1 stayed at 0")
    assert main([*base, "--channels", "0-1"]) == 0  # nothing rendered: no note
    assert "stayed at 0" not in capsys.readouterr().err
    page = (tmp_path / "g" / "index.html").read_text(encoding="utf-8")
    assert page.count('class="unit dead"') == 2
