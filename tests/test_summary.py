"""The layer table: shapes from a meta-device copy, the caller's model untouched."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision
from torch import nn

from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.models import loading
from dreamlab.models.summary import format_table, format_totals, layer_table, model_totals, summarize


def test_googlenet_inception4c_has_512_channels_at_224():
    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    rows = {r.name: r for r in layer_table(model, input_size=224)}
    assert rows["inception4c"].output_shape == (512, 14, 14)
    assert rows["inception4c"].channels == 512
    assert rows["fc"].output_shape == (1000,)
    assert rows["conv1.conv"].params == 64 * 3 * 7 * 7
    assert rows["inception4c"].params == sum(p.numel() for p in model.inception4c.parameters())


def test_callers_model_is_not_moved_or_hooked():
    model = torchvision.models.resnet18()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = {r.name: r for r in layer_table(model, input_size=64)}
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # BasicBlock calls its relu twice: the table says so
    assert rows["layer1.0.relu"].calls == 2
    assert "runs 2x per pass: not addressable" in format_table(list(rows.values()))


def test_table_text_has_one_row_per_module():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    text = format_table(summarize(model, input_size=10).rows())
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "type", "output", "shape", "channels", "params", "note"]
    assert lines[2].split() == ["(input)", "Tensor", "3x10x10", "3", "0"]
    assert lines[3].split() == ["0", "Conv2d", "8x8x8", "8", "224"]
    assert lines[4].split() == ["1", "ReLU", "8x8x8", "8", "0"]
    assert lines[5].split() == ["logit", "Sequential", "8x8x8", "8", "224", "the", "model's", "output"]
    assert len(lines) == 6


def test_totals_count_shared_weights_once_and_sum_the_leaf_outputs():
    relu, c1, c2 = torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 1), torch.nn.Conv2d(4, 4, 1)
    c2.weight = c1.weight  # tied: counted once
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), relu, c1, relu, c2,
                                torch.nn.Flatten())
    totals = model_totals(model, summarize(model, input_size=8))
    assert totals.params == 3 * 4 * 9 + 4 + 2 * 4 + 16 + 4 + 4
    assert totals.param_bytes == totals.params * 4
    assert totals.buffers == 4 + 4 + 1  # running mean and var, the batch counter
    assert totals.buffer_bytes == 8 * 4 + 8
    # leaf outputs of 4x8x8 = 256 values: conv, bn, relu twice, both 1x1 convs, flatten
    assert totals.output_bytes == 7 * 256 * 4
    assert totals.input_bytes == 3 * 8 * 8 * 4
    assert format_totals(totals, 8).splitlines() == [
        "parameters: 144 (576 bytes); buffers: 9 (40 bytes)",
        "one 8x8 image: input 768 bytes, outputs of the leaf modules (every call) 7.2 kB"]  # decimal: 7,168 B


def test_layers_command_prints_the_totals(capsys):
    from dreamlab.apps.cli import main

    assert main(["layers", "resnet18"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    # decimal units, as torchinfo: 46,758,048 and 38,560 bytes
    assert lines[-2] == "parameters: 11,689,512 (46.8 MB); buffers: 9,620 (38.6 kB)"
    assert lines[-1].startswith("one 224x224 image: input 602.1 kB, outputs of the leaf modules (every call) ")


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.conv(y)


class PicksAChannel(nn.Module):
    """Indexes a list with the input's width: fails with IndexError on the meta device and on the CPU alike."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return [x][x.shape[-1]]


def _custom_recipe(tmp_path, monkeypatch, build) -> str:
    monkeypatch.setitem(loading._BUILDERS, "mine:custom", lambda weights=None: build())
    path = tmp_path / "custom.toml"
    path.write_text('name = "custom"\nbuilder = "mine:custom"\nweights = "none"\ninput_size = 16\n')
    return str(path)


@pytest.mark.parametrize("build, reason", [
    (TwoInputs, "missing 1 required positional argument: 'y'"),
    (PicksAChannel, "list index out of range"),
])
def test_a_model_that_does_not_take_one_image_is_a_one_line_error(tmp_path, monkeypatch, capsys, build, reason):
    with pytest.raises(DreamlabError, match=f"cannot take a 16x16 input .*{reason}"):
        layer_table(build(), input_size=16)
    recipe_file = _custom_recipe(tmp_path, monkeypatch, build)
    assert main(["layers", "--recipe", recipe_file]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("dreamlab: error: custom cannot take a 16x16 input (")  # the recipe's name
    assert err.endswith(f"dreamlab needs a model whose forward takes one image batch [B, 3, H, W]: check input_size "
                        f"and channels in {recipe_file}, or wrap the model in a module that does")
    assert main(["layers", "--recipe", _custom_recipe(tmp_path, monkeypatch, build), "--size", "20"]) == 2
    err = capsys.readouterr().err.strip()  # not "try size 16": it fails at the recipe's size too
    assert err.startswith("dreamlab: error: custom cannot take a 20x20 input (") and err.endswith(
        f"check input_size and channels in {recipe_file}, or wrap the model in a module that does")


class Reused(nn.Module):
    """A conv run twice, the second time at half the resolution; a dict output."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        b = self.shared(self.pool(self.shared(self.stem(x))))
        return {"logits": self.head(b.mean((2, 3))), "map": b}


def test_a_reused_module_shows_every_call_and_the_totals_count_each():
    model = Reused()
    summary = summarize(model, input_size=32)
    rows = {r.name: r for r in summary.layers}
    shared = rows["shared"]
    assert shared.calls == 2 and shared.output_shape == (8, 32, 32)
    assert shared.output_shapes == ((8, 32, 32), (8, 16, 16))
    assert shared.output_bytes == (8 * 32 * 32 + 8 * 16 * 16) * 4
    # the leaves' outputs: stem, both calls of shared, pool, head
    totals = model_totals(model, summary)
    assert totals.output_bytes == (8 * 32 * 32 + 8 * 32 * 32 + 8 * 16 * 16 + 8 * 16 * 16 + 10) * 4
    lines = format_table(summary.rows()).splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("shared "))
    assert lines[first].split()[2:] == ["8x32x32", "8", "584", "runs", "2x", "per", "pass:", "not", "addressable"]
    assert lines[first + 1].split() == ["8x16x16", "call", "2", "of", "2"]
    assert lines[-1].split()[:6] == ["logit", "Reused", "logits:", "10,", "map:", "8x16x16"]
    assert summary.output.output_shape is None and summary.output.outputs == ("logits: 10, map: 8x16x16",)


class RunsOutOfOrder(nn.Module):
    """Modules registered in another order than they run; a ModuleList iterated, never called; a module that never
    runs; a tuple-returning LSTM; a tuple output."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.unused = nn.Linear(2, 2)
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        self.side = nn.ModuleList([nn.Conv2d(4, 1, 1), nn.Conv2d(4, 1, 1)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.body[1](self.body[0](x))  # the Sequential itself is not called either
        sides = [side(y) for side in self.side]
        out, _ = self.lstm(y.mean(2).transpose(1, 2))
        return out, sides[0] + sides[1]


def test_rows_come_in_execution_order_with_depth_and_the_input_and_output():
    summary = summarize(RunsOutOfOrder(), input_size=10)
    assert [(r.name, r.depth, r.order) for r in summary.layers] == [
        ("body", 1, 0), ("body.0", 2, 0), ("body.1", 2, 1),
        ("side", 1, 2), ("side.0", 2, 2), ("side.1", 2, 3),
        ("lstm", 1, 4), ("unused", 1, None)]  # not run: after the module registered before it
    rows = {r.name: r for r in summary.layers}
    assert rows["lstm"].output_shape == (8, 6) and rows["lstm"].outputs == ("8x6, (1x6, 1x6)",)
    assert rows["lstm"].output_bytes == (8 * 6 + 6 + 6) * 4
    assert (summary.input.name, summary.input.output_shape, summary.input.output_bytes) == ("(input)", (3, 10, 10),
                                                                                            1200)
    assert (summary.output.name, summary.output.outputs) == ("logit", ("8x6, 1x8x8",))
    notes = {line.split()[0]: line for line in format_table(summary.rows()).splitlines()[2:]}
    assert notes["body"].endswith("iterated, not called: not addressable")
    assert notes["side"].endswith("iterated, not called: not addressable")
    assert notes["unused"].endswith("not run") and "iterated" not in notes["unused"]
    text = format_table(summary.rows()).splitlines()
    assert text[3].startswith("body ") and text[4].startswith("  body.0 ")  # indented by depth


def test_layers_command_json_and_options(capsys):
    assert main(["layers", "lenet-digits", "--json", "--weights", "none"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["input"]["output_shape"] == [1, 28, 28] and table["output"]["output_shape"] == [10]
    assert table["totals"]["input_bytes"] == 28 * 28 * 4
    assert table["totals"]["output_bytes"] == sum(r["output_bytes"] for r in table["layers"])  # all leaves
    assert [r["order"] for r in table["layers"]] == list(range(len(table["layers"])))
    assert main(["layers", "lenet-digits"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == "parameters: 1,256,080 (5.0 MB); buffers: 0 (0 bytes)"  # 5,024,320 bytes


class TwoLoops(nn.Module):
    """HED's shape: a forward that alternates between the modules of two lists."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)])
        self.taps = nn.ModuleList([nn.Conv2d(4, 1, 1), nn.Conv2d(4, 1, 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for block, tap in zip(self.trunk, self.taps):
            x = block(x)
            out.append(tap(x))
        return torch.cat(out, 1)


def test_a_module_whose_list_was_left_for_another_gets_a_continued_row():
    lines = format_table(summarize(TwoLoops(), 8).rows()).splitlines()
    width = len(lines[1].split(" ")[0])  # the name column's dashes
    names = [line[:width].rstrip() for line in lines[2:]]
    assert names == ["(input)", "trunk", "  trunk.0", "taps", "  taps.0", "trunk (continued)", "  trunk.1",
                     "taps (continued)", "  taps.1", "logit"]


def test_summarize_and_model_totals_refuse_a_name_or_loaded_model_in_one_line():
    """README names them beside layer_table, which takes names; they take a module, and say how to get one."""
    loaded = loading.load_model("lenet-digits", weights="none")
    with pytest.raises(DreamlabError) as refused:
        summarize("lenet-digits")
    assert str(refused.value) == (
        "summarize takes an nn.Module, got 'lenet-digits'; for a model by name, dreamlab.layer_table('lenet-digits') "
        "gives its rows, or load it: loaded = dreamlab.load_model(name, weights='none'), then "
        "summarize(loaded.model, ...)")
    with pytest.raises(DreamlabError, match="^model_totals takes an nn.Module, got a LoadedModel; pass its .model"):
        model_totals(loaded, summarize(loaded.model, 28, 1))
    summary = summarize(loaded.model, loaded.recipe.input_size, loaded.recipe.channels)  # the way it names works
    assert summary.input.output_shape == (1, 28, 28) and model_totals(loaded.model, summary).params == 1_256_080
