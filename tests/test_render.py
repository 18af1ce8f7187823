"""The render loop on random-weight models: objectives go up, batches stay independent, runs repeat exactly."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dreamlab import objectives as o
from dreamlab import render
from dreamlab.errors import DreamlabError
from dreamlab.optvis.params import INIT_MARGIN

from models_fixtures import random_googlenet, random_resnet18

MODELS = {"googlenet": random_googlenet, "resnet18": random_resnet18}
OBJECTIVES = {
    "googlenet": {"channel": "inception4c:97", "neuron": "inception4c:97@2,2", "layer": "inception4c",
                  "logit": "logit:5", "batch": "inception4c:0-3", "arithmetic": "inception4c:1 - 0.5*inception4a:3"},
    "resnet18": {"channel": "layer3:5", "neuron": "layer3:5@2,2", "layer": "layer3", "logit": "logit:5",
                 "batch": "layer3:0-3", "arithmetic": "layer3:1 - 0.5*layer2:3"},
}


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {name: build() for name, build in MODELS.items()}


@pytest.mark.parametrize("param", ["pixel", "fourier"])
@pytest.mark.parametrize("kind", list(OBJECTIVES["googlenet"]))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_objective_increases_on_the_clean_image(models, model_name, kind, param):
    result = render(models[model_name], OBJECTIVES[model_name][kind], steps=20, size=64, param=param,
                    transforms="none", device="cpu", seed=1)
    assert result.images.shape == (result.final_scores.shape[0], 3, 64, 64)
    assert torch.all(result.final_scores > result.initial_scores), (result.initial_scores, result.final_scores)


def test_objective_increases_under_standard_transforms(models):
    """The objective on the transformed images goes up. (On the clean image it need not, for random weights:
    their channel means depend on the grey border the transforms add, which the clean image lacks.)"""
    result = render(models["resnet18"], "layer3:0-3", steps=30, size=96, transforms="standard", device="cpu")
    assert result.history.shape == (30, 4)
    # under random transforms single steps are noisy: compare the first and last few
    assert torch.all(result.history[-5:].mean(0) > result.history[:5].mean(0)), result.history


def test_unit_i_of_a_batch_only_sees_channel_i(models):
    """d score_i / d image_j == 0 for j != i: samples of a batched objective are independent."""
    model = models["googlenet"]
    obj = o.channel("inception4c", range(4))
    images = (torch.rand(4, 3, 64, 64) * 0.5 + 0.25).requires_grad_(True)
    from dreamlab.optvis.capture import capture

    with capture(model, obj.layers) as cap:
        scores = obj(cap.run((images - 0.45) / 0.225))
    for i in range(4):
        (grad,) = torch.autograd.grad(scores[i], images, retain_graph=True)
        per_sample = grad.flatten(1).abs().sum(1)
        assert per_sample[i] > 0
        assert torch.all(per_sample[torch.arange(4) != i] == 0)
    # and sample i's score is channel i of sample i
    with capture(model, obj.layers) as cap:
        acts = cap.run((images.detach() - 0.45) / 0.225)["inception4c"]
    expected = torch.stack([acts[i, i].mean() for i in range(4)])
    assert torch.allclose(scores.detach(), expected)


def test_same_seed_gives_identical_images_and_other_seed_does_not(models):
    args = dict(steps=5, size=48, device="cpu", transforms="standard")
    a = render(models["resnet18"], "layer2:3", seed=7, **args).images
    b = render(models["resnet18"], "layer2:3", seed=7, **args).images
    c = render(models["resnet18"], "layer2:3", seed=8, **args).images
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_hooks_are_removed_after_render_and_after_an_error(models):
    model = models["resnet18"]
    render(model, "layer3:1", steps=2, size=48, device="cpu")
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(DreamlabError, match="out of range"):
        render(model, "layer3:600", steps=2, size=48, device="cpu")
    assert all(not m._forward_hooks for m in model.modules())

    @o.objective(layers=["layer3"])
    def broken(acts):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        render(model, broken, steps=2, size=48, device="cpu")
    assert all(not m._forward_hooks for m in model.modules())


def test_callers_model_is_left_as_found():
    model = random_resnet18().train()
    model.fc.weight.requires_grad_(True)
    render(model, "layer2:0", steps=1, size=32, device="cpu")
    assert model.training and model.fc.weight.requires_grad
    assert next(model.parameters()).device.type == "cpu"


def test_channel_out_of_range_names_the_valid_range(models):
    with pytest.raises(DreamlabError, match=r"channel 600 is out of range for layer 'inception4c' "
                                            r"\(512 channels: valid 0-511\)"):
        render(models["googlenet"], "inception4c:600", steps=1, size=64, device="cpu")


def test_unknown_layer_lists_close_matches(models):
    with pytest.raises(DreamlabError, match=r"unknown layer 'inception4x'; close matches: inception4[a-e]"):
        render(models["googlenet"], "inception4x:1", steps=1, size=64, device="cpu")


def test_reused_module_is_refused(models):
    # torchvision's BasicBlock calls its one `relu` module twice per forward
    with pytest.raises(DreamlabError, match="runs more than once per forward"):
        render(models["resnet18"], "layer1.0.relu:0", steps=1, size=32, device="cpu")


def test_user_objective_with_total_variation_and_decorator(models):
    @o.objective(layers=["layer2"])
    def centre(acts):
        a = acts["layer2"][:, 3]
        h, w = a.shape[-2:]
        return a[:, h // 2 - 1:h // 2 + 1, w // 2 - 1:w // 2 + 1].mean((1, 2))

    obj = centre + 0.1 * o.total_variation()
    assert obj.name == "centre + 0.1*total_variation"
    result = render(models["resnet18"], obj, steps=15, size=48, transforms="none", device="cpu")
    assert result.final_scores[0] > result.initial_scores[0]
    assert result.provenance["dreamlab:objective"] == "centre + 0.1*total_variation"


def test_units_split_into_batches_are_all_kept(models):
    result = render(models["resnet18"], "layer2:0-4", steps=3, size=32, device="cpu", batch_size=2)
    assert result.images.shape[0] == 5
    assert result.labels == [f"layer2:{i}" for i in range(5)]
    assert result.history.shape == (3, 5)


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 2147483648 bytes. Error code 12 (Cannot allocate memory)"),  # the CPU's words
])
def test_out_of_memory_halves_the_batch_and_keeps_finished_units(models, monkeypatch, error):
    from dreamlab.optvis import engine as render_module

    original = render_module._Renderer.run_batch
    sizes = []

    def flaky(self, units, bar):
        sizes.append(len(units))
        if len(units) > 2:
            raise error
        return original(self, units, bar)

    monkeypatch.setattr(render_module._Renderer, "run_batch", flaky)
    result = render(models["resnet18"], "layer2:0-5", steps=2, size=32, device="cpu")
    assert sizes == [6, 3, 2, 2, 2]
    assert result.images.shape[0] == 6 and result.labels[-1] == "layer2:5"


def test_thresholds_snapshot_and_callback(models):
    seen = []
    result = render(models["resnet18"], "layer2:0-1", steps=6, size=32, device="cpu", thresholds=[2, 6],
                    on_snapshot=lambda step, images, labels: seen.append((step, images.shape[0], list(labels))))
    assert sorted(result.snapshots) == [2, 6]
    assert torch.equal(result.snapshots[6], result.images)
    assert seen == [(2, 2, ["layer2:0", "layer2:1"]), (6, 2, ["layer2:0", "layer2:1"])]


def test_keyboard_interrupt_returns_what_exists(models, monkeypatch):
    from dreamlab.optvis import engine as render_module

    calls = {"n": 0}
    original = render_module._Renderer.scores

    def interrupt_on_fourth(self, *args):
        calls["n"] += 1
        if calls["n"] == 5:  # 1 initial clean forward + 3 steps, then Ctrl-C
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(render_module._Renderer, "scores", interrupt_on_fourth)
    result = render(models["resnet18"], "layer2:0-1", steps=50, size=32, device="cpu")
    assert result.interrupted
    assert result.history.shape == (3, 2)
    assert result.images.shape == (2, 3, 32, 32)
    assert result.provenance["dreamlab:steps"] == "3"


def test_start_from_an_image(models):
    photo = torch.zeros(3, 40, 40)
    photo[0] = 0.9  # red
    result = render(models["resnet18"], "layer2:0", steps=1, size=32, lr=1e-6, device="cpu", init_image=photo,
                    param="pixel", transforms="none")
    assert torch.allclose(result.images[0, :, 5, 5], torch.tensor([0.9, INIT_MARGIN, INIT_MARGIN]), atol=0.01)


def test_a_units_image_does_not_depend_on_the_batch_split(models):
    args = dict(steps=4, size=48, device="cpu", transforms="standard", seed=3)
    whole = render(models["resnet18"], "layer2:0-3", **args).images
    split = render(models["resnet18"], "layer2:0-3", batch_size=1, **args).images
    assert torch.allclose(whole, split, atol=1e-4)
    alone = render(models["resnet18"], o.channel("layer2", [0, 1, 2, 3]), **args).images
    assert torch.allclose(whole, alone, atol=1e-4)
    subset = render(models["resnet18"], "layer2:0-3", units=[3, 1], **args)
    assert subset.labels == ["layer2:3", "layer2:1"]
    assert torch.allclose(subset.images, whole[[3, 1]], atol=1e-4)


def test_units_outside_the_objective_are_refused(models):
    with pytest.raises(DreamlabError, match=r"units must be indices into the objective's 4 units \(0-3\), got \[4\]"):
        render(models["resnet18"], "layer2:0-3", units=[4], steps=1, size=32, device="cpu")


def test_the_recipes_optimizer_and_start_level_reach_the_render():
    from dreamlab import load_model

    digits = load_model("lenet-digits")  # channel-adam, start_level 0.05, fourier_decay 0.5
    dark = render(digits, "logit:3", steps=1, transforms="none", device="cpu")
    assert dark.provenance["dreamlab:optimizer"] == "channel-adam"
    assert dark.images.mean().item() == pytest.approx(0.05, abs=0.02)
    grey = render(digits, "logit:3", steps=1, transforms="none", device="cpu", optimizer="adam",
                  start_level=0.5)
    assert grey.provenance["dreamlab:optimizer"] == "adam"
    assert grey.images.mean().item() == pytest.approx(0.5, abs=0.05)


def test_param_options_take_the_recipes_fourier_decay_unless_overridden():
    from dreamlab.models.recipe import load_recipe
    from dreamlab.optvis.settings import RenderSettings, param_options, resolve_settings

    digits = load_recipe("lenet-digits")

    def options(**given):
        return param_options(resolve_settings(RenderSettings(**given), digits, owned=True))

    assert options(param="fourier") == {"start_level": 0.05, "decay_power": 0.5, "sd": 0.01, "decorrelate": True}
    assert options(param="pixel", init_sd=0.1) == {"start_level": 0.05, "sd": 0.1, "decorrelate": True}
    assert options(param="fourier", fourier_decay=1.0)["decay_power"] == 1.0


def test_an_unknown_optimizer_in_a_recipe_is_named(tmp_path):
    from dreamlab.errors import DreamlabError

    path = tmp_path / "r.toml"
    path.write_text('name = "r"\nbuilder = "torchvision.models:resnet18"\nweights = "none"\noptimizer = "adamw"\n')
    with pytest.raises(DreamlabError, match='r.toml: optimizer = "adamw" is not valid; optimizer must be one of '
                                            'channel-adam, adam'):
        render(str(path), "layer1:0", steps=1, size=32, device="cpu")


def test_a_callers_module_without_a_recipe_gets_its_input_channels_from_its_first_conv():
    grey = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    result = render(grey, "1:0-1", steps=2, size=16, device="cpu")
    assert result.images.shape == (2, 1, 16, 16)
    assert result.provenance["dreamlab:recipe"] == "Sequential"
