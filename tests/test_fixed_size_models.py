"""Which models `render` shows their own size (model_size) when nothing was chosen: a fixed-size model (ViT) whose
input the default transforms' padding would grow; never an ordinary conv net, which takes the padded image."""
from __future__ import annotations

import warnings

import torch
from PIL import Image
from torch import nn

import dreamlab
from dreamlab.apps.cli import main


def any_size_net() -> nn.Module:
    """A conv net with adaptive pooling: it takes any input size, as torchvision's classifiers do."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, 3)).eval()


def test_a_conv_net_that_takes_any_size_is_unaffected():
    recipe = dreamlab.Recipe("anysize", "custom:anysize", input_size=16)  # default transforms: they pad
    seen: list[tuple[int, int]] = []
    net = any_size_net()
    net[0].register_forward_pre_hook(lambda module, inputs: seen.append(tuple(inputs[0].shape[-2:])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no note (a DreamlabNote is a warning)
        result = dreamlab.render(net, "logit:1", recipe=recipe, steps=2)
    assert result.images.shape == (1, 3, 16, 16) and "dreamlab:model_size" not in result.provenance
    assert any(side != (16, 16) for side in seen)  # the model saw the transforms' padded image, not resized back


def test_googlenet_renders_without_a_note(tmp_path, capsys):
    out = tmp_path / "g.png"
    assert main(["render", "inception4c:0", "--weights", "none", "--steps", "1", "--out", str(out)]) == 0
    assert "inputs only" not in capsys.readouterr().err  # no size note (a unit that stays at 0 gets one of its own)
    with Image.open(out) as img:
        assert "dreamlab:model_size" not in img.text and img.size == (224, 224)


def test_vit_renders_at_its_own_size_with_one_note_and_a_record(tmp_path, capsys):
    # the command of the report: it used to stop, telling the user to pass --size 224 --transforms small
    assert main(["render", "encoder.layers.encoder_layer_3:0", "--model", "vit_b_16", "--weights", "none",
                 "--steps", "1", "--out", f"{tmp_path}/"]) == 0
    err = capsys.readouterr().err
    assert err.count("dreamlab: note: vit_b_16 takes 224x224 inputs only") == 1 and "model_size=224" in err
    (png,) = tmp_path.glob("*.png")
    with Image.open(png) as img:
        assert img.text["dreamlab:model_size"] == "224" and img.size == (224, 224)
