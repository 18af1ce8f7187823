"""The layer table: shapes from a meta-device copy, the caller's model untouched."""
from __future__ import annotations

import torch
import torchvision

from dreamlab.models.summary import format_table, format_totals, layer_table, model_totals


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
    text = format_table(layer_table(model, input_size=10))
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "type", "output", "shape", "channels", "params", "note"]
    assert lines[2].split() == ["0", "Conv2d", "8x8x8", "8", "224"]
    assert lines[3].split() == ["1", "ReLU", "8x8x8", "8", "0"]


def test_totals_count_shared_weights_once_and_sum_the_leaf_outputs():
    relu, c1, c2 = torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 1), torch.nn.Conv2d(4, 4, 1)
    c2.weight = c1.weight  # tied: counted once
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), relu, c1, relu, c2,
                                torch.nn.Flatten())
    rows = layer_table(model, input_size=8)
    totals = model_totals(model, rows)
    assert totals.params == 3 * 4 * 9 + 4 + 2 * 4 + 16 + 4 + 4
    assert totals.param_bytes == totals.params * 4
    assert totals.buffers == 4 + 4 + 1  # running mean and var, the batch counter
    assert totals.buffer_bytes == 8 * 4 + 8
    # leaf outputs of 4x8x8 = 256 values: conv, bn, relu twice, both 1x1 convs, flatten
    assert totals.output_bytes == 7 * 256 * 4
    assert format_totals(totals, 8).splitlines() == [
        "parameters: 144 (576 bytes); buffers: 9 (40 bytes)",
        "outputs of one 8x8 image (every leaf module, float32): 7.0 kB"]


def test_layers_command_prints_the_totals(capsys):
    from dreamlab.apps.cli import main

    assert main(["layers", "resnet18"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2] == "parameters: 11,689,512 (44.6 MB); buffers: 9,620 (37.7 kB)"
    assert lines[-1].startswith("outputs of one 224x224 image (every leaf module, float32): ")
