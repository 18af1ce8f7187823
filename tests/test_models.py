"""Recipes and model loading: shipped and derived recipes, weights files, the offline download error."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from dreamlab import load_model
from dreamlab.errors import DownloadError, DreamlabError, UnknownNameError, WeightsError
from dreamlab.models.recipe import RECIPE_KEYS, load_recipe, shipped_recipe_names


def test_shipped_recipes():
    assert {"googlenet", "resnet50", "vgg16", "lenet-digits"} <= set(shipped_recipe_names())
    googlenet = load_recipe("googlenet")
    assert (googlenet.input_size, googlenet.default_layer, googlenet.weights) == (224, "inception4c", "IMAGENET1K_V1")
    assert load_recipe("lenet-digits").channels == 1


def test_recipe_with_unknown_key_lists_valid_keys(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nbuilder = "torchvision.models:resnet18"\nlearning_rate = 0.1\n')
    with pytest.raises(DreamlabError) as info:
        load_recipe(path)
    message = str(info.value)
    assert "unknown key 'learning_rate'" in message
    assert "valid keys: " + ", ".join(RECIPE_KEYS) in message


def test_recipe_file_overrides_settings(tmp_path: Path):
    path = tmp_path / "r18.toml"
    path.write_text('name = "r18"\nbuilder = "torchvision.models:resnet18"\nweights = "none"\nlr = 0.02\n'
                    'input_size = 160\n')
    loaded = load_model(path)
    assert loaded.recipe.lr == 0.02 and loaded.recipe.input_size == 160
    assert type(loaded.model).__name__ == "ResNet" and loaded.weights == "none"


def test_any_torchvision_model_gets_a_recipe_from_its_weights_metadata():
    recipe = load_recipe("convnext_tiny")
    weights = torchvision.models.ConvNeXt_Tiny_Weights.DEFAULT
    assert recipe.input_size == weights.transforms().crop_size[0] == 224
    assert recipe.mean == tuple(weights.transforms().mean)
    loaded = load_model("convnext_tiny", weights="none")
    assert loaded.categories[281] == "tabby"


def test_unknown_model_lists_close_matches():
    with pytest.raises(UnknownNameError, match="unknown model 'googlenett'; close matches: googlenet"):
        load_recipe("googlenett")


@pytest.mark.parametrize("name, family, advice", [("deeplabv3_resnet50", "segmentation", "dreamlab.layer_table(model)"),
                                                  ("fasterrcnn_resnet50_fpn", "detection", None),
                                                  ("r3d_18", "video", None)])
def test_a_torchvision_model_of_another_family_is_named_as_such(name, family, advice):
    with pytest.raises(UnknownNameError) as caught:
        load_recipe(name)
    message = str(caught.value)
    assert message.startswith(f"'{name}' is a torchvision {family} model; dreamlab names torchvision's "
                              f"classification models (resnet18, convnext_tiny")
    assert (advice in message) if advice else message.endswith("vgg16)")


@pytest.mark.offline_attempt
def test_offline_download_fails_with_one_clear_line(no_network):
    with pytest.raises(DownloadError) as info:  # a WeightsError the CLI exits 1 for
        load_model("googlenet")
    message = str(info.value)
    assert message.startswith("could not download the GoogLeNet_Weights.IMAGENET1K_V1 weights of googlenet")
    assert "--weights PATH" in message and "--weights none" in message and "\n" not in message
    assert no_network, "the download should have been attempted (and refused)"


def test_unknown_weights_name_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="unknown weights for resnet50 .IMAGENET1K_V9.; close matches: IMAGENET1K_V1, IMAGENET1K_V2"):
        load_model("resnet50", weights="IMAGENET1K_V9")


def test_weights_file_round_trip(tmp_path: Path):
    torch.manual_seed(0)
    source = torchvision.models.resnet18()
    path = tmp_path / "r18.pt"
    torch.save(source.state_dict(), path)
    loaded = load_model("resnet18", weights=path)
    assert loaded.weights == str(path)
    assert torch.equal(loaded.model.fc.weight, source.fc.weight)


def test_weights_file_wrapped_in_a_checkpoint_and_from_dataparallel(tmp_path: Path):
    source = torchvision.models.resnet18()
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}, path)
    assert torch.equal(load_model("resnet18", weights=path).model.conv1.weight, source.conv1.weight)


def test_googlenet_file_with_aux_heads_loads(tmp_path: Path):
    full = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "googlenet.pth"
    torch.save(full.state_dict(), path)
    loaded = load_model("googlenet", weights=path)
    assert torch.equal(loaded.model.fc.weight, full.fc.weight)
    assert loaded.model.transform_input  # ImageNet weights expect GoogLeNet's input re-normalization


def test_weights_file_that_does_not_fit_names_the_keys(tmp_path: Path):
    state = torchvision.models.resnet18(num_classes=10).state_dict()
    del state["layer1.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "wrong.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError) as info:
        load_model("resnet18", weights=path)
    message = str(info.value)
    assert "does not fit resnet18" in message
    assert "missing keys: layer1.0.conv1.weight" in message
    assert "unexpected keys: extra.weight" in message
    assert "shape mismatches: fc.weight (file [10, 512], model [1000, 512])" in message


def test_weights_file_errors(tmp_path: Path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_model("resnet18", weights=tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_model("resnet18", weights=garbage)
    tensor_only = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(WeightsError, match="holds a Tensor, not a state dict"):
        load_model("resnet18", weights=tensor_only)


def test_weights_file_must_not_execute_code(tmp_path: Path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_model("resnet18", weights=path)


def test_loaded_model_is_frozen_and_in_eval_mode():
    model = load_model("lenet-digits").model
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.offline_attempt
def test_download_message_goes_to_stderr_not_into_printed_output(no_network, capsys: pytest.CaptureFixture[str]):
    """torch.hub writes 'Downloading: ...' to stdout; `graph` without -o and `layers --json` print their
    output there, so the line must not go there (it corrupts the DOT text or JSON a user pipes on); a download
    that fails at once leaves only the one-line error (test_cli: the line on stderr once a download proceeds)."""
    from dreamlab.apps.cli import main

    assert main(["graph", "googlenet", "--weights", "default"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.rstrip().splitlines()
    assert line.startswith("dreamlab: error: could not download the GoogLeNet_Weights")
    assert no_network, "the download should have been attempted (and refused)"


def test_weights_file_from_pytorchs_checkpoint_tutorial_loads(tmp_path: Path):
    """PyTorch's tutorial saves {"epoch", "model_state_dict", "optimizer_state_dict", "loss"}: the model's part."""
    source = torchvision.models.resnet18()
    optimizer = torch.optim.SGD(source.parameters(), lr=0.1)
    path = tmp_path / "tutorial.pt"
    torch.save({"epoch": 3, "model_state_dict": source.state_dict(),
                "optimizer_state_dict": optimizer.state_dict(), "loss": 0.5}, path)
    assert torch.equal(load_model("resnet18", weights=path).model.fc.weight, source.fc.weight)


def test_checkpoint_with_state_dicts_under_other_names_names_them(tmp_path: Path):
    state = torchvision.models.resnet18().state_dict()
    path = tmp_path / "two.pt"
    torch.save({"step": 7, "net": state, "ema": state}, path)
    with pytest.raises(WeightsError) as info:
        load_model("resnet18", weights=path)
    message = str(info.value)
    assert "entries 'net', 'ema' hold dicts" in message
    assert f"torch.save(torch.load({str(path)!r})['net'], PATH)" in message
    assert "\n" not in message


def test_a_builder_argument_it_does_not_take_is_the_one_named(tmp_path: Path):
    path = tmp_path / "typo.toml"
    path.write_text('name = "gn"\nbuilder = "torchvision:googlenet"\n'
                    'builder_kwargs = { aux_logit = false, init_weights = false }\n')
    with pytest.raises(DreamlabError) as info:
        load_model(path, weights="none")
    message = str(info.value)
    assert "builder 'torchvision:googlenet' refused its argument 'aux_logit' (" in message
    assert "init_weights" not in message.split("(")[0]  # the valid argument is not blamed


def test_torchvision_class_names_skip_a_model_with_another_number_of_classes(tmp_path: Path):
    """ImageNet's names fit a 1000-way resnet18; one built with num_classes=10 has no names (its class 3 is no
    'tiger shark'), from a recipe and from a module with a borrowed recipe alike."""
    from dreamlab.models.prepare import resolve_model

    assert load_model("resnet18", weights="none").categories[3] == "tiger shark"
    path = tmp_path / "ten.toml"
    path.write_text('name = "ten"\nbuilder = "torchvision:resnet18"\nbuilder_kwargs = { num_classes = 10 }\n')
    assert load_model(path, weights="none").categories is None
    module = torchvision.models.resnet18(num_classes=10).eval()
    assert resolve_model(module, "resnet50", "default")[3] is None
    assert resolve_model(torchvision.models.resnet18().eval(), "resnet50", "default")[3][3] == "tiger shark"


def test_a_class_name_for_a_model_without_names_says_to_use_an_index(tmp_path: Path, monkeypatch, capsys):
    from dreamlab.apps.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ten.toml").write_text('name = "ten"\nbuilder = "torchvision:resnet18"\nweights = "none"\n'
                                       'builder_kwargs = { num_classes = 10 }\n')
    assert main(["render", "logit:3", "--recipe", "ten.toml", "--size", "32", "--steps", "1"]) == 0
    assert capsys.readouterr().out.strip() == "ten_logit_3.png"  # no ImageNet name in it
    assert main(["render", "logit:tabby", "--recipe", "ten.toml", "--size", "32", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "class name 'tabby' given but this model has no class names; use an index (logit:3), or list them in " \
           "its recipe (categories = [...])" in err
    assert "\n" not in err


def test_weights_of_a_model_fine_tuned_on_other_classes_say_how_to_build_it(tmp_path: Path):
    path = tmp_path / "ten.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), path)
    with pytest.raises(WeightsError) as info:
        load_model("resnet18", weights=path)
    assert str(info.value).endswith("; trained on 10 classes? build it so: a recipe whose builder_kwargs say so "
                                    "(torchvision models: num_classes = 10), given with --recipe FILE.toml "
                                    "(README: Recipes)")
    recipe = tmp_path / "ten.toml"
    recipe.write_text('name = "ten"\nbuilder = "torchvision:resnet18"\nbuilder_kwargs = { num_classes = 10 }\n')
    assert load_model(recipe, weights=path).model.fc.out_features == 10  # the advice works
    other = tmp_path / "other.pt"  # another architecture: no such advice
    torch.save(torchvision.models.resnet34().state_dict(), other)
    with pytest.raises(WeightsError) as info:
        load_model("resnet18", weights=other)
    assert "trained on" not in str(info.value)
