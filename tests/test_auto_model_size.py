"""A fixed-size model under size-growing transforms sees its own size (model_size) when nothing was chosen."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import dreamlab
from dreamlab.errors import DreamlabError

RECIPE = dreamlab.Recipe("fixed16", "custom:fixed16", input_size=16)  # the default transforms pad


def fixed_size_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16 * 16, 3)).eval()


def test_the_model_sees_its_own_size_with_a_warning_and_a_record():
    with pytest.warns(UserWarning, match=r"^fixed16 takes 16x16 inputs only, and the transforms' padding grows the "
                                         r"image; the model sees each step's images resized to 16x16") as caught:
        result = dreamlab.render(fixed_size_net(), "logit:1", recipe=RECIPE, steps=2)
    assert caught[0].filename == __file__  # render's caller, through render's argument-order check
    assert result.images.shape == (1, 3, 16, 16) and result.provenance["dreamlab:model_size"] == "16"
    assert result.final_scores[0] > result.initial_scores[0]


def test_the_cli_says_so_in_a_note(tmp_path, capsys, monkeypatch):
    from dreamlab.apps.cli import main

    assert main(["render", "encoder.layers.encoder_layer_1:0", "--model", "vit_b_16", "--weights", "none",
                 "--steps", "1", "--out", str(tmp_path / "vit.png")]) == 0
    err = capsys.readouterr().err
    assert err.count("dreamlab: note: vit_b_16 takes 224x224 inputs only") == 1 and "model_size=224" in err


def test_a_gallery_notes_it_once_and_records_it(tmp_path, capsys):
    import json

    from PIL import Image

    from dreamlab.apps.cli import main

    assert main(["gallery", "vit_b_16", "--weights", "none", "--layers", "encoder.layers.encoder_layer_1",
                 "--channels", "0-1", "--batch-size", "1", "--steps", "1", "--out", str(tmp_path / "g")]) == 0
    assert capsys.readouterr().err.count("dreamlab: note: vit_b_16 takes 224x224 inputs only") == 1  # 2 batches
    unit = json.loads((tmp_path / "g" / "manifest.json").read_text())["units"][1]
    with Image.open(tmp_path / "g" / unit["file"]) as img:
        assert img.text["dreamlab:model_size"] == "224"


@pytest.mark.parametrize("given", [{"size": 24}, {"transforms": "standard"}, {"model_size": 16}])
def test_a_choice_the_caller_made_is_kept(given):
    if "model_size" in given:  # model_size was the way out: it works and needs no note
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            dreamlab.render(fixed_size_net(), "logit:1", recipe=RECIPE, steps=1, **given)
        return
    if "transforms" in given:  # at the model's own size only the transforms are at fault: no size to change
        expected = (r"^fixed16 takes 16x16 inputs only, and transforms 'standard' pad the 16x16 image to 28x28 "
                    r"\(.*\): use transforms that keep the size \(transforms='small' or 'none', --transforms small "
                    r"or none\), or show the model each step's images resized to 16x16 \(model_size=16, "
                    r"--model-size 16\)$")
    else:
        expected = (r"^fixed16 rejected a 3x\d+x\d+ input .*; it runs at its recipe's size, 16: use size 16 "
                    r"\(--size 16\) and transforms that keep the size")
    with pytest.raises(DreamlabError, match=expected):
        dreamlab.render(fixed_size_net(), "logit:1", recipe=RECIPE, steps=1, **given)


def test_a_neuron_that_resizing_would_move_is_refused_with_the_way_out():
    with pytest.raises(DreamlabError, match=r"^fixed16 takes 16x16 inputs only, and the transforms' padding grows "
                                            r"the image; '1:2@3,4' reads fixed positions, which resizing to 16x16 "
                                            r"would move: use transforms that keep the size"):
        dreamlab.render(fixed_size_net(), "1:2@3,4", recipe=RECIPE, steps=1)
    dreamlab.render(fixed_size_net(), "1:2@3,4", recipe=RECIPE, steps=1, transforms="small")  # the way out works


@pytest.mark.parametrize("size", [16, (16, 16)])
def test_the_recipes_own_size_given_is_no_choice_against_it(size):
    with pytest.warns(UserWarning, match=r"^fixed16 takes 16x16 inputs only"):
        result = dreamlab.render(fixed_size_net(), "logit:1", recipe=RECIPE, steps=1, size=size)
    assert result.provenance["dreamlab:model_size"] == "16"
