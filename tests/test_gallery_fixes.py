"""Gallery: `--layers logit` (the module that computes the model's output), and the strip of a unit no photo turns on."""
from __future__ import annotations

import argparse
import json

import pytest
import torch
from torch import nn

from dreamlab.apps.cli import main
from dreamlab.apps.gallery.build import build_gallery
from dreamlab.errors import DreamlabError
from dreamlab.models.loading import LoadedModel
from dreamlab.models.recipe import Recipe


def test_logit_is_the_module_whose_output_is_the_models(tmp_path, capsys):
    assert main(["gallery", "lenet-digits", "--layers", "logit", "--channels", "0-2", "--steps", "2", "--out",
                 str(tmp_path / "g")]) == 0
    err = capsys.readouterr().err
    assert "dreamlab: note: logit, the model's output, is layer 'fc2' of lenet-digits" in err
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert [(layer["name"], layer.get("output")) for layer in manifest["layers"]] == [("fc2", True)]
    assert sorted(u["channel"] for u in manifest["units"]) == [0, 1, 2]


def test_a_resume_with_nothing_left_to_render_gives_no_notes(tmp_path):
    out = tmp_path / "g"
    args = {"layers": ["logit"], "channels": [0, 1], "steps": 1, "device": "cpu"}
    build_gallery("lenet-digits", out, batch_size=2, log=lambda line: None, **args)
    lines: list[str] = []
    build_gallery("lenet-digits", out, batch_size=1, log=lines.append, **args)  # another batch size: a note
    assert [line for line in lines if "note:" in line] == []  # nothing to render, so nothing they would explain
    assert f"{out}: 2 units asked for, in 2 batches, 2 already done" in lines
    lines.clear()
    build_gallery("lenet-digits", out, batch_size=1, log=lines.append, **{**args, "channels": [0, 1, 2]})
    assert [line.split(";")[0] for line in lines if "note:" in line] == [
        "dreamlab: note: logit, the model's output, is layer 'fc2' of lenet-digits",
        f"dreamlab: note: {out}: units there were rendered with batch_size 2 and this run uses 1"]


def test_logit_beside_the_module_itself_renders_it_once(tmp_path, capsys):
    assert main(["gallery", "lenet-digits", "--layers", "fc2,logit", "--channels", "0", "--steps", "1", "--out",
                 str(tmp_path / "g")]) == 0
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert [layer["name"] for layer in manifest["layers"]] == ["fc2"] and len(manifest["units"]) == 1


def test_a_model_whose_output_no_module_gives_shows_logit_as_a_layer_of_its_own(tmp_path):
    from test_gallery import OddNet

    recipe = Recipe(name="odd-net", builder="tests:OddNet", weights="none", input_size=16, channels=1,
                    mean=(0.5,), std=(0.5,), transforms="small", steps=1)
    loaded = LoadedModel(model=OddNet().eval().requires_grad_(False), recipe=recipe, weights="none",
                         categories=None)
    result = build_gallery(loaded, tmp_path / "g", layers=["logit"], device="cpu")  # tanh after the last conv
    layers = result.manifest["layers"]
    assert [(layer["name"], layer["channels"], layer.get("output")) for layer in layers] == [("logit", 2, True)]
    assert [u["unit"] for u in result.manifest["units"]] == ["logit:0", "logit:1"]


class SharedReLUNet(nn.Module):
    """One ReLU module called twice, on tensors of different shapes (as ResNet's Bottleneck reuses its relu)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.b(self.relu(self.a(x)))).mean((2, 3)))


def test_logit_is_the_output_module_also_where_a_module_runs_twice(tmp_path, capsys):
    # finding the output module hooks every layer; a hook that returned what it kept gave the shared relu's second
    # call its first call's output, the forward failed, and `logit` became a layer of its own beside `fc`
    recipe = Recipe(name="shared-relu", builder="tests:SharedReLUNet", weights="none", input_size=16, channels=1,
                    mean=(0.5,), std=(0.5,), transforms="small", steps=1)
    torch.manual_seed(0)
    loaded = LoadedModel(model=SharedReLUNet().eval().requires_grad_(False), recipe=recipe, weights="none",
                         categories=None)
    result = build_gallery(loaded, tmp_path / "g", layers=["logit"], channels=[0, 1], device="cpu")
    assert [(layer["name"], layer.get("output")) for layer in result.manifest["layers"]] == [("fc", True)]
    assert [u["unit"] for u in result.manifest["units"]] == ["fc:0", "fc:1"]


def test_a_gallery_strip_of_a_unit_no_photo_turns_on_says_so(tmp_path):
    import numpy as np
    from PIL import Image
    from torch import nn

    from dreamlab.apps.gallery.examples import examples_record, write_examples
    from dreamlab.inspect.examples import NEVER_ON_FILL
    from dreamlab.io import save_png
    from test_examples import RECIPE, colour_detector, grey_with_square

    photos = tmp_path / "photos"
    photos.mkdir()
    save_png(grey_with_square((1, 0, 0), 4, 6), photos / "red.png")  # turns on channel 0 only
    loaded = LoadedModel(model=nn.Sequential(colour_detector(), nn.ReLU()).eval(), recipe=RECIPE, weights="none",
                         categories=None)
    notes = []
    write_examples(tmp_path / "g", loaded, "1", [0, 1], photos, top=2, size=32, log=notes.append)
    record = examples_record(tmp_path / "g", "1")
    assert record["units"]["0"]["images"] == ["red.png"] and record["units"]["1"]["images"] == []
    with Image.open(tmp_path / "g" / record["units"]["1"]["file"]) as strip:
        assert strip.text["dreamlab:never_on"] == "1" and strip.text["dreamlab:examples"] == ""
        pixels = np.asarray(strip.convert("RGB"))
        assert (pixels == round(NEVER_ON_FILL * 255)).all(-1).mean() > 0.5  # the grey tile, not a white one


def test_logit_as_its_module_takes_the_recipes_logit_table_as_render_does(tmp_path):
    from PIL import Image

    from dreamlab.models.loading import load_model
    from test_recipe_layers import recipe_file

    loaded = load_model(recipe_file(tmp_path, '[layers."logit"]\nsteps = 3\nlr = 0.1\n'))
    result = build_gallery(loaded, tmp_path / "g", layers=["logit"], channels=[4], device="cpu")
    unit = result.manifest["units"][0]
    assert (unit["unit"], result.manifest["layers"][0]["steps"]) == ("fc2:4", 3)
    text = Image.open(tmp_path / "g" / unit["file"]).text
    assert (text["dreamlab:steps"], text["dreamlab:lr"]) == ("3", "0.1")  # as `render logit:4` would
    other = build_gallery(loaded, tmp_path / "h", layers=["conv2"], channels=[0], device="cpu")
    assert Image.open(tmp_path / "h" / other.manifest["units"][0]["file"]).text["dreamlab:lr"] == "0.02"


def test_every_rank_exits_as_rank_0_does_when_its_download_fails(monkeypatch, capsys):
    """Under torchrun rank 0 loads the model first; a failed download (exit 1) must not become exit 2 on the ranks
    that hear of it second-hand, and a crash of rank 0 is exit 1 there too."""
    from dreamlab.apps.cli import _main
    from dreamlab.apps.gallery import build
    from dreamlab.errors import DownloadError

    class Group:  # two ranks, without torch.distributed: broadcast hands rank 0's value on
        def __init__(self, rank: int, sent: list):
            self.rank, self.world, self.distributed, self.sent = rank, 2, True, sent

        def broadcast(self, value):
            if self.rank == 0:
                self.sent.append(value)
            return self.sent[0]

    def failing_load(model, weights):
        raise DownloadError("could not download the weights of resnet18 (no network); use --weights PATH")

    monkeypatch.setattr(build, "load_model", failing_load)
    sent: list = []
    with pytest.raises(DownloadError):
        build._shared_plan(Group(0, sent), "resnet18", "default", lambda loaded: None)
    assert sent == [(None, ("could not download the weights of resnet18 (no network); use --weights PATH", 1))]
    with pytest.raises(DreamlabError) as caught:
        build._shared_plan(Group(1, sent), "resnet18", "default", lambda loaded: None)
    assert caught.value.exit_code == 1 and str(caught.value).startswith("could not download the weights")
    crashed = [(None, build._failure(RuntimeError("CUDA error")))]
    with pytest.raises(DreamlabError, match="^rank 0 failed; its output says why$") as caught:
        build._shared_plan(Group(1, crashed), "resnet18", "default", lambda loaded: None)
    assert caught.value.exit_code == 1

    def run_rank_1(args):
        build._shared_plan(Group(1, sent), "resnet18", "default", lambda loaded: None)

    monkeypatch.setattr("dreamlab.apps.cli._parse", lambda argv: argparse.Namespace(run=run_rank_1))
    assert _main(["gallery", "resnet18"]) == 1
    assert capsys.readouterr().err.startswith("dreamlab: error: could not download the weights of resnet18")
