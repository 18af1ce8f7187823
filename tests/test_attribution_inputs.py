"""What `dreamlab.gradcam` and `dreamlab.attribute` take from Python: images in [0, 1], targets, baselines and
counts, each bad one refused in one line that names the argument, before the model runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamlab.attribution.api import attribute, gradcam
from dreamlab.errors import DreamlabError
from models_fixtures import SmallNet

pytestmark = pytest.mark.usefixtures("one_thread")




@pytest.fixture(scope="module")
def model() -> SmallNet:
    torch.manual_seed(0)
    return SmallNet()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


NAN = torch.full((3, 32, 32), float("nan"))
INF = torch.zeros(3, 32, 32).index_fill_(1, torch.tensor([4]), float("inf"))


@pytest.mark.parametrize("image, text", [
    (NAN, "image has NaN or infinite values; give finite values in [0, 1]"),
    (INF, "image has NaN or infinite values; give finite values in [0, 1]"),
    ((torch.rand(3, 32, 32) * 255).to(torch.uint8),
     "image is a uint8 tensor (0-255) and images are in [0, 1]; divide it by 255 (image.float() / 255)"),
    (torch.linspace(0, 255, 3 * 32 * 32).view(3, 32, 32),
     "image has values from 0 to 255, outside [0, 1] (the max 255 is above 1); they look like 0-255 values: divide "
     "them by 255"),
    (torch.full((3, 32, 32), -0.5), "image has values from -0.5 to -0.5, outside [0, 1]"),
    (torch.ones(3, 32, 32, dtype=torch.int64), "image has dtype torch.int64; images are float tensors in [0, 1]"),
    (np.zeros((3, 32, 32), np.float32), "image must be a torch tensor [C, H, W] or [B, C, H, W] in [0, 1], got "
                                        "ndarray; convert it with torch.from_numpy(array)"),
    ([[[0.5]]], "image must be a torch tensor [C, H, W] or [B, C, H, W] in [0, 1], got list; convert it with "
                "torch.tensor(...) (values in [0, 1]), or read a file with dreamlab.io.load_image"),
])
@pytest.mark.parametrize("function", ["gradcam", "attribute"])
def test_images_outside_0_1_or_not_tensors_are_refused(model, image, text, function):
    run = gradcam if function == "gradcam" else attribute
    with pytest.raises(DreamlabError) as refused:
        run(model, image, 1)
    assert str(refused.value).startswith(text) and "\n" not in str(refused.value)


def test_images_at_the_bounds_are_taken(model):
    edges = torch.zeros(3, 32, 32)
    edges[:, :16] = 1.0
    assert gradcam(model, edges, 1).shape == (1, 32, 32)


@pytest.mark.parametrize("options, text", [
    ({"baseline": torch.full((3, 32, 32), float("nan"))}, "baseline has NaN or infinite values"),
    ({"baseline": torch.full((3, 32, 32), 2.0)}, "baseline has values from 2 to 2, outside [0, 1]"),
    ({"baseline": 3}, "baseline must be one of black, blurred, noise (--baseline) or an image tensor [C, H, W] in "
                      "[0, 1], got int 3"),
    ({"baseline": "white"}, "unknown baseline 'white'; valid: black, blurred, noise"),
    ({"baseline": torch.rand(3, 16, 16)}, "baseline has shape [3, 16, 16]; valid: the image's [3, 32, 32] or a "
                                          "batch [1 or 2, 3, 32, 32] (resize the baseline to the image)"),
    ({"baseline": torch.rand(3, 3, 32, 32)}, "baseline has shape [3, 3, 32, 32]; valid"),
    ({"batch_size": 0}, "batch_size (--batch-size) must be a whole number >= 1 (images per forward pass for IG "
                        "steps and SmoothGrad samples), got 0"),
    ({"batch_size": 2.5}, "batch_size (--batch-size) must be a whole number >= 1"),
    ({"steps": 4.5}, "steps (--steps) must be a whole number from 1 to 1024 (integrated gradients' steps; 20 to "
                     "300 is usual), got 4.5"),
    ({"steps": 0}, "steps 0 is out of range; valid: 1 to 1024"),
    ({"seed": 0.5}, "seed must be a whole number (an int), got 0.5"),
])
def test_integrated_gradients_arguments_are_checked_up_front(model, x, options, text):
    with pytest.raises(DreamlabError) as refused:
        attribute(model, x, "logit:1", method="ig", **options)
    assert str(refused.value).startswith(text)
    assert "rejected" not in str(refused.value) and "--size" not in str(refused.value)


def test_a_baseline_image_or_batch_of_the_images_shape_is_taken(model, x):
    one = attribute(model, x, "logit:1", method="ig", steps=4, baseline=torch.full((3, 32, 32), 0.5))
    batch = attribute(model, x, "logit:1", method="ig", steps=4, baseline=torch.full((1, 3, 32, 32), 0.5))
    assert torch.equal(one, batch) and one.shape == x.shape


@pytest.mark.parametrize("options, text", [
    ({"samples": 2.5}, "samples (--samples) must be a whole number from 1 to 1024 (SmoothGrad's noisy copies; the "
                       "paper uses 50), got 2.5"),
    ({"samples": "8"}, "samples (--samples) must be a whole number from 1 to 1024"),
    ({"noise": "0.1"}, "noise must be a finite number >= 0 (--noise: SmoothGrad's noise"),
    ({"batch_size": -1}, "batch_size (--batch-size) must be a whole number >= 1"),
])
def test_smoothgrad_arguments_are_checked(model, x, options, text):
    with pytest.raises(DreamlabError) as refused:
        attribute(model, x, "logit:1", method="smoothgrad", **options)
    assert str(refused.value).startswith(text)


def test_integer_scalars_are_class_indices(model, x):
    expected = gradcam(model, x, 1)
    assert torch.equal(gradcam(model, x, np.int64(1)), expected)
    assert torch.equal(gradcam(model, x, torch.tensor(1)), expected)
    assert torch.equal(gradcam(model, x, "logit:1"), expected)
    assert torch.equal(attribute(model, x, np.int32(1)), attribute(model, x, 1))


def test_an_integer_tensor_of_labels_attributes_each_image_to_its_own(model, x):
    both = attribute(model, x, torch.tensor([1, 3]))
    assert torch.equal(both, attribute(model, x, "logit:1,3"))
    # alone, each image is in a batch of one: equal up to the batch size's rounding (DESIGN.md)
    assert torch.allclose(both[0], attribute(model, x[0], 1), rtol=1e-4, atol=1e-7)
    assert torch.allclose(both[1], attribute(model, x[1], 3), rtol=1e-4, atol=1e-7)


def test_no_target_means_each_images_top_class(model, x):
    top = model(((x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                 / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))).argmax(1)
    assert torch.equal(gradcam(model, x), gradcam(model, x, top))
    assert torch.equal(attribute(model, x[1], None, method="guided"), attribute(model, x[1], int(top[1]),
                                                                                 method="guided"))


@pytest.mark.parametrize("target, text", [
    (1.5, "target must be an objective string (logit:281, logit:tabby, inception4c:97), an Objective, a class "
          "index (int), an integer tensor of one class per image or None (each image's top class), got float 1.5"),
    (True, "target must be an objective string"),
    (torch.tensor(1.0), "target must be an objective string"),
    ([1, 2], "target must be an objective string"),
    ((1, 3), "target must be an objective string"),
    (-1, "class index -1 is negative; give a class index >= 0 (logit:N)"),
])
def test_targets_of_other_kinds_are_refused(model, x, target, text):
    with pytest.raises(DreamlabError) as refused:
        gradcam(model, x, target)
    assert str(refused.value).startswith(text) and "\n" not in str(refused.value)


def test_a_list_of_labels_is_told_the_tensor_that_attributes_each_image_to_its_own():
    from dreamlab.attribution.target import parse_target
    with pytest.raises(DreamlabError, match=r", got list \[1, 2\]; for one class per image pass "
                                            r"torch.tensor\(\[1, 2\]\)$"):
        parse_target([1, 2], None)
    with pytest.raises(DreamlabError) as refused:
        parse_target(["a"], None)
    assert "torch.tensor" not in str(refused.value)


CUT = "does not depend on the image (it has no gradient)"
NOT_FINITE = "became NaN or infinite on the model input, so there is nothing to attribute"


@pytest.mark.parametrize("method", ["gradcam", "saliency", "smoothgrad", "ig", "guided"])
@pytest.mark.parametrize("score, text", [(lambda a: a["conv2"].mean((1, 2, 3)).detach(), CUT),
                                         (lambda a: a["conv2"].mean((1, 2, 3)) / 0.0, NOT_FINITE)])
def test_a_target_without_a_gradient_or_with_nan_scores_is_one_line_not_a_nan_map(model, x, method, score, text):
    from dreamlab import objectives as o
    target = o.objective(layers=["conv2"])(score)
    with pytest.raises(DreamlabError) as refused:
        if method == "gradcam":
            gradcam(model, x[0], target)
        else:
            attribute(model, x[0], target, method=method)
    assert str(refused.value).startswith(f"target '<lambda>' {text}") and "\n" not in str(refused.value)


class _DetachesItsInput(torch.nn.Module):
    """A forward that cuts the pixels off while its own weights still need a gradient: the logit has a graph,
    but not one back to the image."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.detach().flatten(1))


@pytest.mark.parametrize("method", ["saliency", "input-x-gradient", "smoothgrad", "ig"])
def test_a_forward_that_detaches_the_image_is_one_line_though_its_weights_need_a_gradient(method):
    from dreamlab.models.recipe import Recipe

    grey = Recipe(name="detached", builder="tests:detached", weights="none", channels=1, mean=(0.0,), std=(1.0,),
                  input_size=4)
    model, image = _DetachesItsInput(), torch.rand(1, 4, 4)
    with pytest.raises(DreamlabError) as refused:  # torch said "appears to not have been used in the graph"
        attribute(model, image, "logit:0", method=method, recipe=grey)
    assert str(refused.value).startswith(f"target 'logit:0' {CUT}")
    assert attribute(model, image, "logit:0", method="occlusion", recipe=grey, window=2).abs().sum() > 0


def test_layer_and_method_of_the_wrong_type_are_refused(model, x):
    with pytest.raises(DreamlabError, match=r"^layer must be a string \(a layer address, e.g. 'inception4c'\), got "
                                            r"int 3$"):
        gradcam(model, x, 1, 3)
    with pytest.raises(DreamlabError, match="^unknown CAM method '1'"):
        gradcam(model, x, 1, method=1)
    with pytest.raises(DreamlabError, match="^unknown attribution method 'None'"):
        attribute(model, x, 1, method=None)


class _GradSensitive(SmallNet):
    """Fails only when its input needs a gradient: a failure that has nothing to do with the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            raise RuntimeError("this model cannot be differentiated")
        return super().forward(x)


def test_a_failure_at_a_size_the_model_takes_is_not_blamed_on_the_size(x):
    with pytest.raises(RuntimeError, match="^this model cannot be differentiated$"):
        attribute(_GradSensitive(), x, 1)  # 32 px, not the 224 of a module without recipe
