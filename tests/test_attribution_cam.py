"""Grad-CAM and Grad-CAM++: agreement with captum, default layers, targets that are any objective, bad input."""
from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from models_fixtures import random_googlenet
from test_attribution_gradients import IDENTITY, relu_net

from dreamlab import attribute, gradcam
from dreamlab.attribution.cam import cam_weights, default_cam_layer, enlarging_pool, trace_forward
from dreamlab.attribution.api import enlarged_map_noted
from dreamlab.errors import DreamlabError, DreamlabNote
from dreamlab.models.recipe import Recipe

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


def forward_counter(model: torch.nn.Module) -> list[int]:
    """A list that grows by one at each forward of `model`."""
    forwards: list[int] = []
    model.register_forward_pre_hook(lambda *_: forwards.append(1))
    return forwards


def test_a_default_layer_gradcam_makes_no_extra_forward_for_the_enlarged_map_note():
    # alexnet's avgpool, AdaptiveAvgPool2d((6, 6)), may enlarge its map: the note's check used to run a forward of its
    # own (3 forwards at 224 px); it now reads the one that chose the default layer
    model = torchvision.models.alexnet(weights=None)
    forwards = forward_counter(model)
    gradcam(model, torch.rand(3, 224, 224), "logit:0")
    assert len(forwards) == 2  # the default layer's (and the note's), and the Grad-CAM's
    forwards.clear()
    gradcam(model, torch.rand(3, 224, 224), "logit:0", "features.10")
    assert len(forwards) == 2  # a named layer: the note's, and the Grad-CAM's


def sized_forward_counter(model: torch.nn.Module) -> list[tuple[int, int]]:
    """A list that grows by the input's height and width at each forward of `model`."""
    sizes: list[tuple[int, int]] = []
    model.register_forward_pre_hook(lambda _, inputs: sizes.append(tuple(inputs[0].shape[-2:])))
    return sizes


def test_the_notes_share_their_forwards_and_each_size_is_run_once():
    # alexnet at 63 px: the moved-layer note and the enlarged-map note both look at the recipe's 224 px (each ran its
    # own forward there), and the enlarged-map note's search (7 sizes) runs each size once
    model = torchvision.models.alexnet(weights=None)
    sizes = sized_forward_counter(model)
    with pytest.warns(DreamlabNote, match="adaptive pool that enlarges a 1x1 map to 6x6"):
        cam = gradcam(model, torch.rand(3, 63, 63, generator=torch.Generator().manual_seed(0)), "logit:0")
    assert cam.shape == (1, 63, 63)
    assert sizes.count((224, 224)) == 1 and len(sizes) == len(set(sizes)) + 1  # 63 px twice: layer, Grad-CAM
    assert sizes.count((63, 63)) == 2
    # resnet18 at 16 px: layer4's map is 1x1, so the default moves to layer2; the note names layer4's map from the
    # forward that chose the layer, not from one more at 16 px
    model = torchvision.models.resnet18(weights=None)
    sizes = sized_forward_counter(model)
    with pytest.warns(DreamlabNote, match="moved from layer4 to layer2: on this 16x16 image layer4's map is 1x1"):
        gradcam(model, torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)), "logit:0")
    assert sizes.count((16, 16)) == 2 and len(sizes) == len(set(sizes)) + 1


def test_inside_enlarged_map_noted_the_note_is_not_worked_out():
    """The command line says the enlarged-map note once, in --size words, then calls the API inside
    enlarged_map_noted(): the API's own note, silenced there, ran a forward at the image's size and a search."""
    model = torchvision.models.alexnet(weights=None)
    image = torch.rand(3, 63, 63, generator=torch.Generator().manual_seed(0))
    forwards = forward_counter(model)
    with pytest.warns(DreamlabNote, match="adaptive pool that enlarges"):
        said = gradcam(model, image, "logit:0", "avgpool")
    assert len(forwards) > 2  # the note's forward at 63 px, its search up to 224, the Grad-CAM's
    forwards.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with enlarged_map_noted():
            quiet = gradcam(model, image, "logit:0", "avgpool")
    assert len(forwards) == 1 and torch.equal(quiet, said)  # the Grad-CAM's forward only; the same map


def test_a_trace_serves_the_default_layer_and_the_enlarging_pool_without_a_forward():
    model = torchvision.models.alexnet(weights=None).eval()
    x = torch.rand(1, 3, 63, 63)
    trace = trace_forward(model, x)
    forwards = forward_counter(model)
    assert default_cam_layer(model, x, trace=trace) == default_cam_layer(model, x) == "avgpool"
    assert enlarging_pool(model, x, "avgpool", trace) == enlarging_pool(model, x, "avgpool") == \
        ("avgpool", (1, 1), (6, 6), "features.10", (3, 3))
    assert len(forwards) == 2  # the two calls without a trace


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


def test_a_layer_with_a_1x1_output_is_refused(model_and_images):
    from torch import nn

    model, x = model_and_images
    pooled = nn.Sequential(*list(model)[:7], nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()
    for method in ("gradcam", "gradcam++"):
        with pytest.raises(DreamlabError, match=r"layer '7' has output shape \[2, 8, 1, 1\], a 1x1 map with no "
                                                r"spatial extent.*pick a layer before the pooling"):
            gradcam(pooled, x, 3, layer="7", recipe=IDENTITY, method=method)
    assert default_cam_layer(pooled, x) == "6"  # the default skips it, as before


def test_gradcam_plus_plus_alpha_takes_relu_of_the_activations():
    # a layer with negative outputs: sum(A) = -3, so the literal alpha at g = 1 would be 1 / (2 - 3) = -1
    act = torch.tensor([[[[1.0, -5.0], [0.0, 1.0]]]])
    grad = torch.tensor([[[[1.0, 1.0], [2.0, 0.0]]]])
    # with relu(A) the sum is 2: alpha = 1 / (2 + 2) at g = 1, 4 / (8 + 16) at g = 2
    expected = 1 / 4 * 1 + 1 / 4 * 1 + 4 / 24 * 2
    torch.testing.assert_close(cam_weights(act, grad, "gradcam++").flatten(), torch.tensor([expected]))


def test_gradcam_plus_plus_alphas_stay_in_0_to_half_at_a_layer_before_its_relu():
    """LeNet's conv2 (before relu2) on held-out digits: the literal formula's alphas reach -60 and 176 there."""
    from dreamlab.attribution.api import _prepare
    from dreamlab.attribution.cam import layer_activation_and_gradient
    from dreamlab.attribution.target import subject
    from dreamlab.models.zoo.digits import load_digits_split

    _, _, x, y = load_digits_split()
    subj = subject("lenet-digits")
    images, score = _prepare(subj, x[:8], "logit:4")
    act, grad = layer_activation_and_gradient(score, images, "conv2")
    assert act.min() < 0  # the case at hand
    g2, g3 = grad.pow(2), grad.pow(3)
    literal = g2 / (2 * g2 + act.sum((2, 3), keepdim=True) * g3)
    ours = g2 / (2 * g2 + act.clamp(min=0).sum((2, 3), keepdim=True) * g3)
    positive = grad > 0
    assert literal[positive].min() < 0  # what the fix avoids
    assert ours[positive].min() >= 0 and ours[positive].max() <= 0.5
    expected = (ours.nan_to_num() * grad.clamp(min=0)).sum((2, 3), True)  # 0 / 0 where g = 0
    torch.testing.assert_close(cam_weights(act, grad, "gradcam++"), expected)
    # its weights are >= 0, and conv2's outputs mostly negative (69% on digit 4): the maps are all zero there,
    # which `dreamlab cam` notes, where the literal alphas' sign flips made up a map
    cam = gradcam(subj, x[:8], "logit:4", layer="conv2", method="gradcam++")
    assert cam.shape == (8, 1, 28, 28) and cam.min() >= 0


def test_the_default_layer_is_never_the_targets_own_layer():
    x = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(0))
    # relu2 is lenet's cam_layer; for a relu2 channel the map there would be the channel itself
    own = gradcam("lenet-digits", x, "relu2:3", layer="relu2")
    channel = {}
    from dreamlab import load_model

    loaded = load_model("lenet-digits")
    handle = loaded.model.relu2.register_forward_hook(lambda m, i, o: channel.setdefault("out", o.detach()))
    loaded.model((x[None] - loaded.recipe.mean[0]) / loaded.recipe.std[0])
    handle.remove()
    relu_channel = torch.nn.functional.interpolate(channel["out"][:, 3:4], size=(28, 28), mode="bilinear")[0]
    torch.testing.assert_close(own / own.max(), relu_channel / relu_channel.max())  # why it is not the default
    conv2 = gradcam("lenet-digits", x, "relu2:3", layer="conv2")  # relu2 is relu(conv2): the same channel again
    torch.testing.assert_close(conv2 / conv2.max(), relu_channel / relu_channel.max())
    default = gradcam("lenet-digits", x, "relu2:3")  # at pool1, the input of the conv that mixes channels
    torch.testing.assert_close(default, gradcam("lenet-digits", x, "relu2:3", layer="pool1"))
    assert not torch.allclose(default / default.max(), own / own.max(), atol=0.05)
    torch.testing.assert_close(gradcam("lenet-digits", x, "conv2:3"), default)  # conv2 mixes: pool1 too
    # a logit keeps the recipe's layer; a target at the first layer has no spatial layer before it
    torch.testing.assert_close(gradcam("lenet-digits", x, "logit:3"),
                               gradcam("lenet-digits", x, "logit:3", layer="relu2"))
    with pytest.raises(DreamlabError, match="no layer with a spatial output map runs before the target's layer "
                                            "conv1.*give a later target"):
        gradcam("lenet-digits", x, "conv1:0")


def test_the_default_layer_skips_the_recipes_when_the_target_reads_an_earlier_layer():
    googlenet = random_googlenet()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    from dreamlab.attribution.api import cam_layer
    from dreamlab.attribution.target import subject

    subj = subject(googlenet, "googlenet")
    assert cam_layer(subj, x, None) == "inception5b"
    assert cam_layer(subj, x, None, "inception4c:97") == "inception4b"  # not inside inception4c either
    assert cam_layer(subj, x, None, "logit:3") == "inception5b"


def test_the_default_layer_for_a_target_skips_a_module_that_runs_twice():
    """resnet18's avgpool:1 reads layer4's channel, formed after layer4.1.conv2: the last spatial module before that
    conv was layer4.1.relu, which also runs after bn2, and gradcam then failed with 'runs more than once' on a layer
    the user never named."""
    from torchvision.models import resnet18

    model = resnet18(weights=None).eval()
    x = torch.rand(1, 3, 32, 40)
    assert default_cam_layer(model, x, target_layers={"avgpool"}) == "layer4.1.bn1"
    assert default_cam_layer(model, x) == "layer4"
    assert gradcam(model, x[0], "avgpool:1").shape == (1, 32, 40)


TOKENS = Recipe(name="tokens", builder="tests:tiny_vit", weights="none", input_size=32, mean=(0.0, 0.0, 0.0),
                std=(1.0, 1.0, 1.0))


def tiny_vit() -> torch.nn.Module:
    """torchvision's ViT at 32 px: 4x4 patches of 8 px, so its token layers are [B, 17, 16] (a class token first);
    a random head (torchvision starts it at zero, which would leave every gradient zero)."""
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                                               mlp_dim=32, num_classes=5).eval()
    torch.nn.init.normal_(vit.heads.head.weight)
    return vit


LAST_LN_1 = "encoder.layers.encoder_layer_1.ln_1"


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_a_vit_token_layer_gives_a_map_of_the_images_size_that_varies(method):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    cam = gradcam(tiny_vit(), x, "logit:1", LAST_LN_1, method=method, recipe=TOKENS)
    assert cam.shape == (2, 1, 32, 32)
    assert (cam.flatten(1).amax(1) > cam.flatten(1).amin(1)).all()  # not constant


def test_a_token_layers_gradcam_weighs_the_patch_tokens_read_as_their_grid():
    vit, x = tiny_vit(), torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    store = {}
    handle = vit.get_submodule(LAST_LN_1).register_forward_hook(lambda m, i, out: store.setdefault("out", out))
    (grad,) = torch.autograd.grad(vit(x)[0, 1], store["out"])
    handle.remove()
    act = store["out"].detach()[0, 1:].T.reshape(16, 4, 4)  # the 16 patches (the class token left out) as 4x4
    weights = grad[0, 1:].T.reshape(16, 4, 4).mean((1, 2), keepdim=True)
    coarse = (weights * act).sum(0).clamp(min=0)[None, None]
    expected = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(gradcam(vit, x[0], "logit:1", LAST_LN_1, recipe=TOKENS), expected)


def test_a_vits_default_layer_is_the_last_attentions_input_not_its_patch_embedding():
    vit, x = tiny_vit(), torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert default_cam_layer(vit, x[:1]) == LAST_LN_1  # conv_proj, the last 4-D map, said little
    cam = gradcam(vit, x, "logit:1", recipe=TOKENS)
    assert (cam.flatten(1).amax(1) > cam.flatten(1).amin(1)).all()  # not constant
    torch.testing.assert_close(cam, gradcam(vit, x, "logit:1", LAST_LN_1, recipe=TOKENS))
    # a target inside the stack: the input of the last attention before it
    first_mlp = "encoder.layers.encoder_layer_0.mlp"
    assert default_cam_layer(vit, x[:1], target_layers={first_mlp}) == "encoder.layers.encoder_layer_0.ln_1"


def test_tokens_without_attention_keep_the_last_spatial_layer_as_their_default():
    assert default_cam_layer(PatchTokens().eval(), torch.rand(1, 3, 12, 12)) == "embed"


@pytest.mark.parametrize("layer", ["encoder.layers.encoder_layer_1", "encoder.ln",
                                   "encoder.layers.encoder_layer_1.mlp"])
def test_a_token_layer_after_the_last_attention_is_refused_naming_its_input(layer):
    # the head reads the class token alone, so the patch tokens there get no gradient: the map would be all zero
    with pytest.raises(DreamlabError, match=rf"the target 'logit:1' reads only the class token of layer '{layer}', "
                                            rf"none of its patch tokens .* so its Grad-CAM is zero everywhere; use "
                                            rf"{LAST_LN_1}, the input of the last attention$"):
        gradcam(tiny_vit(), torch.rand(3, 32, 32), "logit:1", layer, recipe=TOKENS)


class PatchTokens(torch.nn.Module):
    """4-px patches embedded as 4-dim tokens [B, N, 4] (no class token), a ReLU `mix`, their mean, 3 logits."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Conv2d(3, 4, 4, stride=4)
        self.mix = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(self.embed(x).flatten(2).transpose(1, 2)).mean(1))


def test_tokens_without_a_class_token_give_a_map_and_guided_gradcam_reads_it_too():
    model, x = PatchTokens().eval(), torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(3))  # 3x3 patches
    cam = gradcam(model, x, "logit:1", "mix", recipe=IDENTITY)
    assert cam.shape == (1, 12, 12) and cam.max() > cam.min()
    guided = attribute(model, x, "logit:1", "guided-gradcam", layer="mix", recipe=IDENTITY)
    assert guided.shape == (3, 12, 12) and guided.abs().max() > 0


def test_a_token_count_that_is_no_square_grid_is_refused():
    with pytest.raises(DreamlabError, match=r"^layer 'mix' outputs 6 tokens, which are no square grid of patches "
                                            r"\(with or without a class token first\), so Grad-CAM cannot lay them "
                                            r"out as a map; pick a conv layer or a layer of k\*k patch tokens"):
        gradcam(PatchTokens().eval(), torch.rand(3, 8, 12), "logit:0", "mix", recipe=IDENTITY)  # 2x3 patches


def test_layercam_weighs_each_position_by_its_own_positive_gradient(model_and_images):
    model, x = model_and_images
    kept = {}
    handle = model[3].register_forward_hook(lambda module, inputs, output: kept.update(act=output))
    try:
        score = model(x)[:, 3].sum()
        grad, = torch.autograd.grad(score, kept["act"])
    finally:
        handle.remove()
    coarse = (grad.clamp(min=0) * kept["act"]).sum(1, keepdim=True).clamp(min=0)
    expected = torch.nn.functional.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False)
    ours = gradcam(model, x, "logit:3", layer="3", method="layercam", recipe=IDENTITY)
    assert expected.flatten(1).amax(1).min() > 0
    torch.testing.assert_close(ours, expected.detach(), rtol=1e-5, atol=1e-8)
    # one weight per channel (Grad-CAM) is another map at the same layer
    assert not torch.allclose(ours, gradcam(model, x, "logit:3", layer="3", recipe=IDENTITY))


def test_scorecam_weighs_each_channel_by_the_target_on_the_image_it_masks(model_and_images):
    model, x = model_and_images
    kept = {}
    handle = model[3].register_forward_hook(lambda module, inputs, output: kept.update(act=output.detach()))
    try:
        with torch.no_grad():
            model(x)
            act = kept["act"]  # [2, 8, 16, 16]
            masks = torch.nn.functional.interpolate(act, size=(16, 16), mode="bilinear", align_corners=False)
            weights = torch.zeros(2, 8)
            for i in range(2):
                black = model(torch.zeros_like(x[i:i + 1]))[0, 3]
                for k in range(8):
                    m = masks[i, k]
                    if m.max() > m.min():
                        m = (m - m.min()) / (m.max() - m.min())
                        weights[i, k] = model(x[i:i + 1] * m)[0, 3] - black
    finally:
        handle.remove()
    coarse = (weights[:, :, None, None] * act).sum(1, keepdim=True).clamp(min=0)
    expected = torch.nn.functional.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False)
    ours = gradcam(model, x, "logit:3", layer="3", method="scorecam", recipe=IDENTITY)
    assert expected.flatten(1).amax(1).min() > 0
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
