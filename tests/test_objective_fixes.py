"""Objective fixes from the review of 2026-12 ("Render a unit", "Python API"): a unit's index in provenance, logits
of a spatial output, @objective parameters with defaults, the no-gradient message, non-tensor model outputs, and
layer names with '-' in the grammar."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dreamlab
from dreamlab import objectives as o
from dreamlab.errors import DreamlabError, UnknownNameError
from dreamlab.optvis.grammar import check_syntax, parse_objective
from models_fixtures import SmallNet, TinyNet

pytestmark = pytest.mark.usefixtures("one_thread")

QUICK = dict(steps=2, size=16, device="cpu")


# item 1: which place in the unit list decided an image's start noise -----------------------------------------

def test_each_image_records_its_place_in_the_unit_list_which_renders_it_again():
    net = TinyNet()
    whole = dreamlab.render(net, "conv2:0-3", units=[1, 3], **QUICK)
    assert whole.unit_indices == [1, 3]
    assert whole.unit_text(1) == {"dreamlab:unit": "conv2:3", "dreamlab:unit_index": "3",
                                  "dreamlab:score": f"{whole.final_scores[1].item():.6g}"}
    again = dreamlab.render(net, whole.provenance["dreamlab:objective"], units=[whole.unit_indices[1]], **QUICK)
    torch.testing.assert_close(again.images[0], whole.images[1], atol=1e-5, rtol=0)
    alone = dreamlab.render(net, "conv2:3", **QUICK)  # first in its own list: another start, and index 0 says so
    assert alone.unit_indices == [0] and not torch.allclose(alone.images[0], whole.images[1])


def test_with_diversity_a_units_images_share_its_index():
    result = dreamlab.render(TinyNet(), "conv2:4,5", diversity=2, **QUICK)
    assert result.labels == ["conv2:4 #1", "conv2:4 #2", "conv2:5 #1", "conv2:5 #2"]
    assert result.unit_indices == [0, 0, 1, 1]


# item 4: a logit of a model whose output is a map --------------------------------------------------------------

def test_a_logit_of_a_spatial_output_is_its_channels_mean_like_a_channel():
    out = torch.randn(2, 3, 5, 4)
    torch.testing.assert_close(o.logit([2, 0])({"logit": out}), out[[0, 1], [2, 0]].mean((1, 2)))
    torch.testing.assert_close(o.logit(1)({"logit": out}), o.channel("logit", 1)({"logit": out}))
    flat = torch.randn(2, 3)
    torch.testing.assert_close(o.logit([2, 0])({"logit": flat}), flat[[0, 1], [2, 0]])


def test_logit_renders_on_hed_vgg16_and_a_missing_class_is_refused_before_rendering(capsys):
    result = dreamlab.render("hed-vgg16", "logit:0", weights="none", steps=1, size=32, device="cpu")
    edges = dreamlab.render("hed-vgg16", "edges:0", weights="none", steps=1, size=32, device="cpu")
    assert result.images.shape == (1, 3, 32, 32)  # the output is the edge map, `edges`: the same render
    torch.testing.assert_close(result.final_scores, edges.final_scores)
    torch.testing.assert_close(result.images, edges.images)
    with pytest.raises(DreamlabError, match=r"^class 1 is out of range for logit \(1 classes: valid 0-0\)$"):
        dreamlab.render("hed-vgg16", "logit:1", weights="none", steps=1, size=32, device="cpu", progress=True)
    assert "rendering" not in capsys.readouterr().err


def test_an_objective_of_the_wrong_shape_is_refused_before_rendering_starts(capsys):
    @o.objective(layers=["conv2"])
    def whole_map(acts):
        return acts["conv2"][:, 0]

    with pytest.raises(DreamlabError, match=r"^objective 'whole_map' returned \[1, 16, 16\]; an objective returns "
                                            r"one score per sample"):
        dreamlab.render(TinyNet(), whole_map, progress=True, **QUICK)
    assert "rendering" not in capsys.readouterr().err


# item 8: which parameters of an @objective function are filled -----------------------------------------------

def test_a_parameter_with_a_default_keeps_its_default():
    seen = []

    @o.objective(layers=["conv2"])
    def weighted(acts, weight=0.5):
        seen.append(weight)
        return weight * acts["conv2"][:, 3].mean((1, 2))

    acts = {"conv2": torch.ones(2, 6, 3, 3)}
    assert weighted(acts).tolist() == [0.5, 0.5] and seen == [0.5]


def test_a_second_required_parameter_gets_each_samples_unit_index():
    @o.objective(layers=["conv2"])
    def by_index(acts, index, scale=1.0):
        return scale * index.float()

    assert by_index({"conv2": torch.ones(3, 6, 2, 2)}).tolist() == [0.0, 1.0, 2.0]
    one = {"conv2": torch.ones(1, 2, 1, 1)}
    assert o.objective(layers="conv2")(lambda acts, *rest: acts["conv2"].sum((1, 2, 3)))(one).tolist() == [2.0]
    assert o.objective(layers="conv2")(lambda acts=None: acts["conv2"].sum((1, 2, 3)))(one).tolist() == [2.0]


@pytest.mark.parametrize("fn, message", [
    (lambda acts, index, weight: acts, r"requires \(acts, index, weight\), but it is called with the activations "
                                       r"and optionally the unit index \(def f\(acts\) or def f\(acts, index\)\); "
                                       r"give the other parameters defaults"),
    (lambda acts, *, weight: acts, r"requires \(acts, weight\)"),
    (lambda: 0, r"takes no positional argument; it is called with the activations and optionally the unit index"),
    (lambda *, acts: 0, r"takes no positional argument"),
])
def test_a_signature_that_fits_neither_call_is_refused_when_decorated(fn, message):
    with pytest.raises(DreamlabError, match=r"^@objective function '<lambda>' " + message):
        o.objective(layers="conv2")(fn)


# item 14: a score without gradient ----------------------------------------------------------------------------

class _Detaches(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).detach().mean((2, 3)))


def test_no_gradient_names_both_the_objective_and_the_models_forward():
    with pytest.raises(DreamlabError) as caught:
        dreamlab.render(_Detaches().eval(), "logit:1", **QUICK)
    message = str(caught.value)
    assert message == ("the score of 'logit:1' does not depend on the image (it has no gradient): the objective or "
                       "the model's forward cuts the gradient with .detach(), .item(), torch.no_grad() or an integer "
                       "op; remove that cut")


# item 16: model outputs that are not tensors -------------------------------------------------------------------

class _Outputs(SmallNet):
    """SmallNet whose forward returns its logits inside a dict or a tuple."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> object:
        logits = super().forward(x)
        return {"logits": logits, "aux": logits * 0} if self.kind == "dict" else (logits, logits * 0)


def test_a_dict_output_is_refused_with_its_keys_and_how_to_wrap_it():
    with pytest.raises(DreamlabError, match=r"^the model returns a dict \(keys 'logits', 'aux'\), not a tensor, so "
                                            r"'logit' has nothing to read; wrap it in a module whose forward returns "
                                            r"the logits tensor \(return self.model\(x\)\['logits'\]\), or address "
                                            r"one of its layers$"):
        dreamlab.render(_Outputs("dict").eval(), "logit:1", **QUICK)
    assert dreamlab.render(_Outputs("dict").eval(), "conv2:1", **QUICK).labels == ["conv2:1"]  # its layers work


def test_a_layer_returning_a_dict_is_named():
    class Inner(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"y": x}

    model = nn.Sequential(Inner(), nn.Identity())
    with pytest.raises(DreamlabError, match=r"^layer '0' returns a dict \(keys 'y'\), not a tensor; pick a module "
                                            r"that returns a tensor"):
        with dreamlab.capture(model, ["0"]) as cap:
            cap.run(torch.zeros(1, 3, 4, 4))


def test_a_tuple_output_is_read_by_its_first_item():
    model = _Outputs("tuple").eval()
    x = torch.rand(2, 3, 16, 16)
    with dreamlab.capture(model, ["logit"]) as cap:
        torch.testing.assert_close(o.logit(1)(cap.run(x)), SmallNet.forward(model, x)[:, 1])


# item 17: layer names with '-' ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, name, layers", [
    ("blocks.conv-b:3", "blocks.conv-b:3", {"blocks.conv-b"}),
    ("blocks.conv-b", "blocks.conv-b", {"blocks.conv-b"}),
    ("a-b-c:1@2,3", "a-b-c:1@2,3", {"a-b-c"}),
    ("0.conv-b:3", "0.conv-b:3", {"0.conv-b"}),  # a digit-led name too
    ("x:1 - a-b:2", "x:1 - a-b:2", {"x", "a-b"}),
    ("-a-b:2", "-a-b:2", {"a-b"}),
    # what '-' meant before stays: ranges, subtraction with spaces, negation, after a unit or a number
    ("conv2:0-3", "conv2:0-3", {"conv2"}),
    ("a:1 - b:2", "a:1 - b:2", {"a", "b"}),
    ("-logit:3", "-logit:3", {"logit"}),
    ("conv2:3-conv1:2", "conv2:3 - conv1:2", {"conv2", "conv1"}),
    ("2-conv2:3", "2 - conv2:3", {"conv2"}),
    ("2.5e-3-a:1", "0.0025 - a:1", {"a"}),
])
def test_a_dash_without_spaces_joins_a_layer_name(text, name, layers):
    obj = parse_objective(text)
    assert (obj.name, obj.layers) == (name, frozenset(layers))
    check_syntax(text)
    assert parse_objective(obj.name).name == obj.name  # names round-trip


@pytest.mark.parametrize("text, layers, name", [
    ("a-b:2", ["a", "b"], "a - b:2"),  # no layer 'a-b': the dash subtracts
    ("a-b:2", ["a", "b", "a-b"], "a-b:2"),  # the longest name the model has
    ("a-b-c:2", ["a", "a-b", "c"], "a-b - c:2"),
    ("conv2-1", ["conv2"], "conv2 - 1"),
    ("a-x:2", ["a-b"], "a-x:2"),  # no reading names a layer: the whole name, for its error
])
def test_the_models_layer_names_decide_where_a_dashed_name_ends(text, layers, name):
    assert parse_objective(text, layers=layers).name == name


class _Dashed(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleDict({"conv-a": nn.Conv2d(3, 8, 3, padding=1),
                                     "conv-b": nn.Conv2d(8, 8, 3, padding=1)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks["conv-b"](torch.relu(self.blocks["conv-a"](x))).mean((2, 3))


def test_a_dashed_layer_renders_from_its_string_as_from_the_api():
    model = _Dashed().eval()
    text = dreamlab.render(model, "blocks.conv-b:3 - 0.5*blocks.conv-a:1", **QUICK)
    api = dreamlab.render(model, o.channel("blocks.conv-b", 3) - 0.5 * o.channel("blocks.conv-a", 1), **QUICK)
    assert text.labels == api.labels == ["blocks.conv-b:3 - 0.5*blocks.conv-a:1"]
    torch.testing.assert_close(text.images, api.images)
    with pytest.raises(UnknownNameError, match=r"^unknown layer 'blocks.conv-x'; close matches: blocks.conv-"):
        dreamlab.render(model, "blocks.conv-x:3", **QUICK)


def test_dream_and_attribution_read_dashes_with_the_models_layer_names():
    """lenet-digits has conv2 and no 'conv2-1': there the dash subtracts, as in render."""
    photo = torch.rand(1, 28, 28)
    dreamt = dreamlab.dream("lenet-digits", photo, "conv2-1", octaves=1, steps=1, device="cpu")
    assert dreamt.provenance["dreamlab:objective"] == "conv2 - 1"
    heat = dreamlab.attribute("lenet-digits", photo, "conv2-1", method="saliency")
    assert heat.shape == (1, 28, 28)


@pytest.mark.parametrize("model, layer, hint", [
    ("googlenet", "mixed4a:476", "lucid's InceptionV1 'mixed4a' is GoogLeNet's 'inception4a' here (with "
                                 "torchvision's weights, not lucid's: a channel number names another feature; "
                                 "lucid's model itself is --model inceptionv1)"),
    ("inceptionv1", "softmax2_pre_activation:3", "lucid's 'softmax2_pre_activation' is 'logit' here (logit:N reads "
                                                 "the logits, before any softmax)"),
    ("inceptionv1", "conv2d0_pre_relu:3", "lucid's 'conv2d0_pre_relu' is the conv 'conv2d0_pre_relu_conv' here"),
    ("inceptionv1", "mixed4a_3x3:3", "lucent's 'mixed4a_3x3' (a branch after its ReLU) is channels 192-395 of "
                                     "'mixed4a' here (mixed4a_3x3:k is mixed4a:192+k), whose ReLU covers its "
                                     "branches, or 'mixed4a_3x3_pre_relu_conv' before the ReLU"),
    ("resnet18", "layer3_0_conv2:3", "lucent's 'layer3_0_conv2' is 'layer3.0.conv2' here (dotted module addresses)"),
    ("googlenet", "mixed4a_pre_relu:476", "lucid's InceptionV1 'mixed4a_pre_relu' is GoogLeNet's 'inception4a' here "
                                          "(there is no pre-ReLU output: torchvision's Inception block concatenates "
                                          "branches that each end in a ReLU)"),
    ("lenet-digits", "labels:3", "lucent's 'labels' is 'logit' here (logit:N, or logit:NAME where the model names "
                                 "its classes)"),
])
def test_layer_names_from_lucid_and_lucent_are_translated(model, layer, hint, capsys):
    from dreamlab.apps.cli import main

    assert main(["render", layer, "--model", model, "--weights", "none", "--steps", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dreamlab: error: unknown layer '{layer.split(':')[0]}'") and hint in err


def test_units_n_without_an_index_says_the_images_share_one_target():
    import warnings

    from dreamlab.errors import DreamlabNote

    with pytest.warns(DreamlabNote) as caught:
        @o.objective(layers=["conv2"], units=3)
        def same(acts):
            return acts["conv2"][:, 0].mean((1, 2))
    assert [str(w.message) for w in caught] == [
        "@objective function 'same' takes no index, so its 3 images (units=3) share one target and differ only by "
        "their random start (and by a diversity term added to it); for a target per image, take it: def "
        "same(acts, index); for 3 images of one target pushed apart, leave units out and render with diversity=3"]
    assert caught[0].filename == __file__  # the line of the decorator, not dreamlab's
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no note: each image reads its index, or the function couples them itself
        o.objective(layers=["conv2"], units=3)(lambda acts, index: acts["conv2"][:, 0].mean((1, 2)))
        o.objective(layers=["conv2"], units=3, couples="diversity")(lambda acts: acts["conv2"].mean((1, 2, 3)))
        o.objective(layers=["conv2"])(lambda acts: acts["conv2"].mean((1, 2, 3)))
