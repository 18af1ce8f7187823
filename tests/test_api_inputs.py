"""The Python API: what a caller passes is refused in one DreamlabError line, tensors land on the render's
device, and the caller's random state is left alone (defects found by a review on 2026-12-04; the device ones
broke every CUDA render and are checked here on the meta device, which needs no GPU)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

import dreamlab
from dreamlab import objectives as o
from dreamlab.errors import DreamlabError, DreamlabNote
from dreamlab.optvis.score_checks import NonFinite
from dreamlab.optvis.params import FourierParam, PixelParam, image_to_param_raw, make_param
from dreamlab.optvis.transforms import seeded_rng

pytestmark = pytest.mark.usefixtures("one_thread")

LENET = dict(steps=1, device="cpu")


@pytest.mark.parametrize("spec", ["fourier", "pixel"])
def test_a_param_puts_every_tensor_on_the_requested_device(spec):
    param = make_param(spec, 2, 3, 16, device="meta")
    placed = {name: t.device.type for name, t in [*param.named_buffers(), *param.named_parameters()]}
    assert "color_matrix" in placed and set(placed.values()) == {"meta"}, placed
    for cls in (FourierParam, PixelParam):  # built directly, as a user would
        assert cls(1, 3, 8, 8, device="meta").color_matrix.device.type == "meta"


def test_a_start_image_follows_the_param_to_its_device():
    param = make_param("fourier", 1, 3, 8, device="meta")
    image_to_param_raw(torch.full((1, 3, 8, 8), 0.3), param)  # a CPU image, a param elsewhere
    assert param.spectrum.device.type == "meta"


def test_the_nan_watch_lives_on_the_step_scores_device():
    watch = NonFinite([0, 1], ["a:0", "a:1"])
    watch.check_scores(torch.zeros(2), 0)  # the start scores come back to the host
    watch.record(torch.zeros(2, device="meta"), 1)  # the step scores stay on the render's device
    assert watch.first_bad.device.type == "meta"
    with pytest.raises(DreamlabError, match="a:1 became NaN or infinite on the start image"):
        NonFinite([0, 1], ["a:0", "a:1"]).check_scores(torch.tensor([0.0, float("nan")]), 0)


def test_loading_a_model_and_seeding_a_cpu_render_leave_the_gpus_seeds_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    state = torch.get_rng_state()
    dreamlab.load_model("lenet-digits", "none")
    with seeded_rng(3, torch.device("cpu")):
        torch.rand(1)
    assert calls == [] and torch.equal(torch.get_rng_state(), state)


def test_neuron_positions_are_checked_at_the_render_size():
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1))  # the map has the image's size
    with pytest.raises(DreamlabError, match=r"position 20,3 is outside layer '0' \(its map is 16 high x 16 wide at the render size"):
        dreamlab.render(model, "0:1@20,3", steps=1, size=16, transforms="standard", device="cpu")
    result = dreamlab.render(model, "0:1@15,3", steps=2, size=16, transforms="standard", device="cpu")
    assert result.images.shape == (1, 3, 16, 16)


def test_a_neuron_is_read_where_it_is_written_on_any_map():
    """The check at the render size records nothing that moves the position: DeepDream's octaves and a cropping
    transform give smaller maps, where a position shifted from the centre would land elsewhere or wrap."""
    objective = o.neuron("l", 0, x=2, y=5)
    objective.check({"l": torch.Size([1, 1, 10, 10])})
    for side in (6, 10, 16):
        acts = torch.zeros(1, 1, side, side)
        acts[0, 0, 5, 2] = 7.0
        assert objective({"l": acts}).tolist() == [7.0]


def test_a_neuron_on_a_padded_map_is_read_where_the_render_size_map_sits():
    """at_offsets gives the objective the engine scores the transformed (padded) images with; the centre and
    whole-channel objectives need no offset, and a sum carries the offset to its neuron."""
    acts = torch.zeros(1, 1, 14, 14)
    acts[0, 0, 5 + 3, 2 + 2] = 7.0  # the render-size map's (x=2, y=5), with the map sitting at (dy=3, dx=2)
    shifted = o.neuron("l", 0, x=2, y=5).at_offsets({"l": (3, 2)})
    assert shifted({"l": acts}).tolist() == [7.0]
    assert o.neuron("l", 0, x=2, y=5)({"l": acts}).tolist() == [0.0]
    combined = (2 * o.neuron("l", 0, x=2, y=5) + o.channel("l", 0)).at_offsets({"l": (3, 2)})
    assert combined({"l": acts}).tolist() == pytest.approx([14.0 + 7.0 / 196])
    acts[0, 0, 7, 7] = 5.0  # the centre of whichever map it reads: no offset moves it
    assert o.neuron("l", 0).at_offsets({"l": (3, 2)})({"l": acts}).tolist() == [5.0]


def test_a_neuron_render_brightens_the_pixel_it_names_under_padding_transforms():
    """An identity layer: neuron (x, y) is pixel (x, y) of the image. The transforms pad 4 px of grey on every
    side, so the optimizer's maps are 8 px larger; the render must still change pixel (x, y), not the one 4 px
    up and left (which is padding, with no gradient)."""
    from dreamlab.optvis.transforms import RandomTransforms

    model = nn.Sequential(nn.Identity())
    result = dreamlab.render(model, "0:0@9,6", steps=8, size=16, param="pixel", optimizer="adam", lr=0.1,
                             transforms=RandomTransforms(pad=4, fill=0.5), device="cpu")
    change = result.images[0, 0] - result.images[0, 0].median()
    assert divmod(int(change.abs().argmax()), 16) == (6, 9)
    assert float(change[6, 9]) > 0.1


def test_a_neuron_under_a_cropping_transform_is_read_at_a_negative_offset_or_refused():
    """A user transform that crops 4 px a side: the render-size map sits at offset -4 in the optimizer's; a
    position that falls outside the cropped map is refused in one line rather than crashing mid-render."""
    model = nn.Sequential(nn.Identity())
    crop = [lambda x: x[..., 4:-4, 4:-4]]
    result = dreamlab.render(model, "0:0@9,6", steps=8, size=16, param="pixel", optimizer="adam", lr=0.1,
                             transforms=crop, device="cpu")
    change = result.images[0, 0] - result.images[0, 0].median()
    assert divmod(int(change.abs().argmax()), 16) == (6, 9)
    with pytest.raises(DreamlabError, match=r"position 14,6 of layer '0' falls outside the map the transforms give "
                                            r"the optimizer \(8 high x 8 wide, with the render-size map at offset -4,-4"):
        dreamlab.render(model, "0:0@14,6", steps=1, size=16, transforms=crop, device="cpu")


def test_units_are_ints_in_any_form_and_listed_once():
    assert o.channel("l", torch.tensor(3)).labels == ("l:3",)
    assert o.channel("l", np.int64(3)).labels == ("l:3",)
    assert o.channel("l", torch.tensor([1, 2])).labels == ("l:1", "l:2")
    with pytest.raises(DreamlabError, match="non-empty list of ints"):
        o.channel("l", [])
    with pytest.raises(DreamlabError, match="non-empty list of ints"):
        o.channel("l", [1.5])
    with pytest.raises(DreamlabError, match="units lists 1 more than once"):
        dreamlab.render("lenet-digits", "conv2:0-3", units=[1, 1], **LENET)
    with pytest.raises(DreamlabError, match="needs both x and y"):
        o.neuron("l", 0, x=3)


@o.objective(layers=["conv2"])
def _wide(acts):
    return acts["conv2"][:, 0].mean(1)  # [b, W]: one score per column, not per sample


@o.objective(layers=["conv2"])
def _number(acts):
    return 1.0


@o.objective(layers=["conv2"])
def _detached(acts):
    return acts["conv2"][:, 0].mean((1, 2)).detach()


BAD_CALLS = {
    "objective an int": (lambda: dreamlab.render("lenet-digits", 5, **LENET), "objective must be a string"),
    "objective None": (lambda: dreamlab.render("lenet-digits", None, **LENET), "got NoneType"),
    "model an int": (lambda: dreamlab.render(5, "conv2:0", **LENET), "model must be a recipe or torchvision"),
    "recipe an int": (lambda: dreamlab.render("lenet-digits", "conv2:0", recipe=5, **LENET),
                      "recipe must be a recipe name"),
    "empty start image": (lambda: dreamlab.render("lenet-digits", "conv2:0", init_image=torch.rand(1, 0, 5),
                                                  **LENET), "init_image is empty"),
    "colour matrix of words": (lambda: dreamlab.render("lenet-digits", "conv2:0", color_matrix=[["a"] * 3] * 3,
                                                       **LENET), "color_matrix must be a 3x3 matrix of numbers"),
    "singular colour matrix": (lambda: dreamlab.render("lenet-digits", "conv2:0", color_matrix=np.eye(3) * [1, 1, 0],
                                                       **LENET), "color_matrix must hold finite numbers and be "
                                                                 "invertible"),
    "objective of the wrong shape": (lambda: dreamlab.render("lenet-digits", _wide, **LENET),
                                     "objective '_wide' returned [1, 14]; an objective returns one score per sample"),
    "objective returns a number": (lambda: dreamlab.render("lenet-digits", _number, **LENET),
                                   "objective '_number' returned float"),
    "objective without gradient": (lambda: dreamlab.render("lenet-digits", _detached, **LENET),
                                   "does not depend on the image"),
}


@pytest.mark.parametrize("name", BAD_CALLS)
def test_bad_api_input_is_one_dreamlab_error(name):
    call, text = BAD_CALLS[name]
    with pytest.raises(DreamlabError) as caught:
        call()
    assert text in str(caught.value) and "\n" not in str(caught.value)


class _FixedSize(nn.Module):
    """A CIFAR-style net: its Linear takes 32-px inputs only."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 16 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(nn.functional.max_pool2d(self.conv(x).relu(), 2).flatten(1))


def test_a_module_with_a_fixed_size_is_told_how_to_say_it():
    net = _FixedSize()
    with pytest.raises(DreamlabError, match=r"_FixedSize failed on a 3x236x236 input \(mat1 and mat2 .*\) and runs "
                                            r"on 32x32; for a module with a fixed input size, say it: recipe="
                                            r"dreamlab.Recipe\('_FixedSize', 'custom:_FixedSize', input_size=32, "
                                            r"channels=3\)"):
        dreamlab.render(net, "logit:1", **LENET)
    recipe = dreamlab.Recipe("cifar", "custom:cifar", input_size=32)
    with pytest.raises(DreamlabError, match=r"^cifar takes 32x32 inputs only, and transforms 'standard' pad the 32x32 "
                                            r"image to 44x44 \(mat1 and mat2 .*\): use transforms that keep the size "
                                            r"\(transforms='small' or 'none', --transforms small or none\), or .* "
                                            r"\(model_size=32, --model-size 32\)$"):
        dreamlab.render(net, "logit:1", recipe=recipe, transforms="standard", **LENET)
    with pytest.warns(DreamlabNote, match="^cifar takes 32x32 inputs only"):  # nothing chosen: model_size 32
        assert dreamlab.render(net, "logit:1", recipe=recipe, **LENET).provenance["dreamlab:model_size"] == "32"
    done = dreamlab.render(net, "logit:1", recipe=recipe, transforms="none", **LENET)
    assert done.images.shape == (1, 3, 32, 32)
    with pytest.raises(DreamlabError, match=r"_FixedSize failed on a 3x224x224 input .* input_size=32"):
        dreamlab.dream(net, torch.rand(3, 40, 40), "conv", octaves=1, steps=1)
    assert dreamlab.dream(net, torch.rand(3, 40, 40), "conv", octaves=1, steps=1, recipe=recipe).image.shape == \
        (3, 40, 40)


def test_a_module_of_another_dtype_is_refused_before_it_runs():
    with pytest.raises(DreamlabError, match=r"_FixedSize has float64 parameters; dreamlab runs float32 models .* "
                                            r"pass model.float\(\)"):
        dreamlab.render(_FixedSize().double(), "conv:0", **LENET)
    with pytest.raises(DreamlabError, match=r"precision='bf16'"):
        dreamlab.render(_FixedSize().bfloat16(), "conv:0", **LENET)
    # only render takes precision=: the others are not sent to a keyword they refuse
    with pytest.raises(DreamlabError) as refused:
        dreamlab.gradcam(_FixedSize().bfloat16(), torch.rand(3, 32, 32), "logit:1")
    assert str(refused.value) == "_FixedSize has bfloat16 parameters; dreamlab runs float32 models: pass model.float()"
    with pytest.raises(DreamlabError, match=r"^_FixedSize has float64 parameters; dreamlab runs float32 models: pass "):
        dreamlab.dream(_FixedSize().double(), torch.rand(3, 40, 40), "conv", octaves=1, steps=1)
    with pytest.raises(DreamlabError, match=r"_FixedSize has parameters on the 'meta' device, which hold shapes but "
                                            r"no values"):
        dreamlab.render(_FixedSize().to("meta"), "conv:0", **LENET)


def test_a_module_that_takes_no_image_is_one_line():
    with pytest.raises(DreamlabError, match=r"^Linear failed on a 3x\d+x\d+ image \(mat1 and mat2 shapes cannot be "
                                            r"multiplied .*\), and at every common size; render needs a model that "
                                            r"takes images \[batch, channels, height, width\]"):
        dreamlab.render(torch.nn.Linear(3, 4), "logit:0", steps=1, size=8, device="cpu")


@pytest.mark.parametrize("fields, message", [
    (dict(std=(0.0, 1.0, 1.0)), r"recipe 'r': std = \[0.0, 1.0, 1.0\] is not valid; std must be a list of positive "
                                r"numbers"),
    (dict(mean=(0.5,)), r"recipe 'r': mean and std need 3 values"),
    (dict(lr="fast"), r"recipe 'r': lr = \"fast\" is not valid; lr must be a number above 0 up to 1000"),
    (dict(layers={"deep": {"size": 3}}), r"recipe 'r': \[layers.\"deep\"\]: 'size' cannot be set per layer"),
])
def test_a_recipe_built_in_python_is_checked_where_it_is_written_as_a_file_is(fields, message):
    with pytest.raises(DreamlabError, match=message):
        dreamlab.Recipe("r", "custom:r", **fields)


@pytest.mark.parametrize("recipe, message", [
    (dreamlab.Recipe("r", "custom:r", channels=1, mean=(0.5,), std=(0.5,)),
     r"recipe 'r' gives 1-channel images, but _FixedSize's first convolution reads 3; set channels=3"),
    (dreamlab.Recipe("r", "custom:r", layers={"nope": {"steps": 3}}),
     r"unknown layer in recipe r's \[layers.\"...\"\] tables: 'nope'"),
])
def test_a_recipe_built_in_python_is_checked_against_the_model(recipe, message):
    with pytest.raises(DreamlabError, match=message):
        dreamlab.render(_FixedSize(), "conv:0", recipe=recipe, **LENET)


@pytest.mark.parametrize("image, message", [
    (torch.full((1, 28, 28), float("nan")), "has NaN or infinite values; give finite values in [0, 1]"),
    (torch.full((1, 28, 28), 200.0), "has values from 200 to 200, outside [0, 1]"),
    (torch.zeros(1, 28, 28, dtype=torch.uint8), "is a uint8 tensor (0-255) and images are in [0, 1]; divide it by 255"),
    (torch.zeros(1, 28, 28, device="meta"), "is a tensor on the 'meta' device, which holds a shape but no values"),
])
def test_a_start_image_or_photo_outside_0_1_is_refused_not_clamped(image, message):
    """Before, a NaN start image ended in 'the score became NaN ... lower --lr' and a 0-255 one was clamped to white."""
    with pytest.raises(DreamlabError, match=re.escape(f"init_image {message}")):
        dreamlab.render("lenet-digits", "logit:1", init_image=image, **LENET)
    with pytest.raises(DreamlabError, match=re.escape(f"image {message}")):
        dreamlab.dream("lenet-digits", image, "conv2", octaves=1, steps=1, device="cpu")


def test_a_snapshot_callback_that_cannot_be_called_is_refused_before_the_render_runs():
    calls, net, small = [], nn.Sequential(nn.Conv2d(3, 4, 3)), dict(steps=1, size=16, device="cpu")
    with pytest.raises(DreamlabError) as refused:
        dreamlab.render(net, "0:0", thresholds=[1], on_snapshot=lambda step: calls.append(step), **small)
    assert str(refused.value) == ("on_snapshot is called as on_snapshot(step, images, labels), which <lambda>(step) "
                                  "cannot take; give it 3 positional parameters")
    with pytest.raises(DreamlabError, match=r"^on_snapshot must be a function, called as on_snapshot\(step, images, "
                                            r"labels\); got str$"):
        dreamlab.render(net, "0:0", thresholds=[1], on_snapshot="print", **small)
    dreamlab.render(net, "0:0", thresholds=[1], on_snapshot=lambda *seen: calls.append(seen[0]), **small)
    assert calls == [1]
