"""Grad-CAM and Grad-CAM++: agreement with captum, default layers, targets that are any objective, bad input."""
from __future__ import annotations

import pytest
import torch
from models_fixtures import random_googlenet
from test_attribution_gradients import IDENTITY, relu_net

from dreamlab import attribute, gradcam
from dreamlab.attribution.cam import cam_weights, default_cam_layer
from dreamlab.errors import DreamlabError

captum_attr = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_and_images():
    return relu_net(), torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("layer", ["3", "5", "6"])
def test_gradcam_agrees_with_captum_layer_gradcam_relu_upsampled(model_and_images, layer):
    model, x = model_and_images
    ours = gradcam(model, x, "logit:3", layer=layer, recipe=IDENTITY)
    coarse = captum_attr.LayerGradCam(model, model.get_submodule(layer)).attribute(x, target=3,
                                                                                  relu_attributions=True)
    theirs = captum_attr.LayerAttribution.interpolate(coarse, (16, 16), interpolate_mode="bilinear")
    assert ours.shape == (2, 1, 16, 16)
    assert (theirs.flatten(1).amax(1) > 0).all()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-8)


def test_gradcam_plus_plus_weights_follow_the_closed_form():
    act = torch.tensor([[[[1.0, 2.0], [0.0, 1.0]]]])  # sum over positions: 4
    grad = torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]])
    # alpha = g^2 / (2 g^2 + 4 g^3): 1/6 at g=1, 1/(2-4) (masked by relu(g)=0) at g=-1, 4/(8+32) at g=2, 0 at g=0
    expected = 1 / 6 * 1 + 4 / 40 * 2
    torch.testing.assert_close(cam_weights(act, grad, "gradcam++").flatten(), torch.tensor([expected]))
    torch.testing.assert_close(cam_weights(act, grad, "gradcam").flatten(), torch.tensor([0.5]))


def test_default_layer_is_the_recipes_else_the_last_spatial_one(model_and_images):
    model, x = model_and_images
    assert default_cam_layer(model, x) == "7"  # AdaptiveAvgPool2d(2): the last output with H*W > 1
    googlenet = random_googlenet()
    assert default_cam_layer(googlenet, torch.rand(1, 3, 64, 64)) == "inception5b"
    assert default_cam_layer(googlenet, torch.rand(1, 3, 64, 64), "inception4e") == "inception4e"
    cam = gradcam(googlenet, torch.rand(3, 64, 64), "logit:7", recipe="googlenet")
    assert cam.shape == (1, 64, 64) and cam.min() >= 0 and cam.max() > 0


def test_target_may_be_any_objective_and_is_checked():
    x = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(0))
    cam = gradcam("lenet-digits", x, "relu2:5 + 0.5*logit:3", layer="conv1")
    assert cam.shape == (1, 28, 28) and cam.max() > 0
    with pytest.raises(DreamlabError, match="class 10 is out of range"):
        gradcam("lenet-digits", x, "logit:10")
    with pytest.raises(DreamlabError, match="unknown class 'tabby'"):
        gradcam("lenet-digits", x, "logit:tabby")
    with pytest.raises(DreamlabError, match="channel 60 is out of range for layer 'conv2'"):
        gradcam("lenet-digits", x, "conv2:60", layer="conv1")
    with pytest.raises(DreamlabError, match="unknown layer 'conv3'; close matches: conv1, conv2"):
        gradcam("lenet-digits", x, "logit:3", layer="conv3")


def test_layer_without_spatial_dims_or_off_the_targets_path_is_refused():
    x = torch.rand(1, 28, 28)
    with pytest.raises(DreamlabError, match=r"'fc1' has output shape \[1, 500\], with no spatial dimensions"):
        gradcam("lenet-digits", x, "logit:3", layer="fc1")
    with pytest.raises(DreamlabError, match="does not depend on layer 'relu2'|runs after every layer"):
        gradcam("lenet-digits", x, "conv1:0", layer="relu2")


def test_guided_gradcam_is_guided_backprop_masked_by_the_cam(model_and_images):
    model, x = model_and_images
    guided = attribute(model, x, 3, "guided", recipe=IDENTITY)
    cam = gradcam(model, x, 3, layer="6", recipe=IDENTITY)
    torch.testing.assert_close(attribute(model, x, 3, "guided-gradcam", layer="6", recipe=IDENTITY), guided * cam)
