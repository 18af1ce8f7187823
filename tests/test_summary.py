"""The layer table: shapes from a meta-device copy, the caller's model untouched."""
from __future__ import annotations

import torch
import torchvision

from dreamlab.models.summary import format_table, layer_table


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
