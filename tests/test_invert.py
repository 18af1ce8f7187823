"""Feature inversion (`objectives.match`, `dreamlab.invert`, `dreamlab invert`): the scores against a hand
computation, the photo sent through the renders' own transforms, renders that come to match the photo, and bad
input."""
from __future__ import annotations

import kornia.augmentation as K
import pytest
import torch
from torch import nn

import dreamlab
from dreamlab import objectives as o
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError, DreamlabNote
from dreamlab.inspect.features import fitted
from dreamlab.io import read_photo, read_png_text
from dreamlab.models.recipe import load_recipe
from dreamlab.optvis.objectives import REFERENCE


def _photo(name: str) -> torch.Tensor:
    """The sample photo as lenet-digits reads it: [1, 28, 28] in [0, 1]."""
    return fitted(read_photo(name), load_recipe("lenet-digits"))[0]


def _acts(a: torch.Tensor, p: torch.Tensor, layer: str = "l") -> dict[str, torch.Tensor]:
    return {layer: a, REFERENCE + layer: p.expand_as(a)}


def test_match_scores_one_minus_the_normalized_squared_distance() -> None:
    a = torch.tensor([[[[1.0, 2.0]], [[0.0, 4.0]]], [[[2.0, 2.0]], [[1.0, 3.0]]]])  # [2, 2, 1, 2]
    p = torch.tensor([[[[1.0, 1.0]], [[1.0, 3.0]]]])
    score = o.match("l", torch.rand(1, 8, 8))(_acts(a, p))
    # |p|^2 = 12; sample 0: |a - p|^2 = 0 + 1 + 1 + 1 = 3; sample 1: 1 + 1 + 0 + 0 = 2
    assert torch.allclose(score, torch.tensor([1 - 3 / 12, 1 - 2 / 12]))
    assert o.match("l", torch.rand(1, 8, 8))(_acts(p, p)).item() == 1.0  # the photo's own activations


def test_caricature_scores_the_dot_product_in_units_of_the_photo_and_its_cosine_to_a_power() -> None:
    a = torch.tensor([[[[2.0, 0.0]], [[0.0, 2.0]]]])
    p = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])
    plain = o.match("l", torch.rand(1, 8, 8), mode="caricature")(_acts(a, p)).item()
    assert plain == pytest.approx(2.0)  # a.p = 2, |p|^2 = 1
    cos = 2 / (8 ** 0.5 + o.COSSIM_EPS) / (1 + o.COSSIM_EPS)
    weighted = o.match("l", torch.rand(1, 8, 8), mode="caricature", cossim_power=2)(_acts(a, p)).item()
    assert weighted == pytest.approx(2.0 * cos ** 2, rel=1e-5)
    opposite = o.match("l", torch.rand(1, 8, 8), mode="caricature", cossim_power=1)(_acts(-a, p)).item()
    assert opposite == pytest.approx(-2.0 * o.COSSIM_FLOOR)  # the cosine is floored at 0.1


def test_several_layers_give_each_image_its_own_layer() -> None:
    objective = o.match(["a", "b"], torch.rand(1, 8, 8))
    assert objective.labels == ("a:match", "b:match") and objective.name == "a,b:match"
    ones, zeros = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    acts = {"a": ones, REFERENCE + "a": ones, "b": zeros, REFERENCE + "b": ones}
    assert objective(acts, torch.tensor([0, 1])).tolist() == [1.0, 0.0]  # image 0 reads a, image 1 reads b
    assert objective(acts, torch.tensor([1, 0])).tolist() == [0.0, 1.0]


def test_match_refuses_bad_arguments_in_one_line() -> None:
    photo = torch.rand(1, 8, 8)
    for kwargs, text in [({"mode": "invert"}, "mode must be 'match'"),
                         ({"mode": "match", "cossim_power": 1}, "mode='match' takes none"),
                         ({"mode": "caricature", "cossim_power": 64}, "cossim_power must be a number from 0 to 32")]:
        with pytest.raises(DreamlabError, match=text):
            o.match("l", photo, **kwargs)
    with pytest.raises(DreamlabError, match="name 'a' twice"):
        o.match(["a", "b", "a"], photo)
    with pytest.raises(DreamlabError, match="layers must be a layer address or a list"):
        o.match([], photo)


def test_arithmetic_keeps_the_photo_and_refuses_two_photos() -> None:
    photo = torch.rand(1, 8, 8)
    combined = o.match("l", photo) + 0.1 * o.total_variation()
    assert combined.reference is not None and torch.equal(combined.reference, photo)
    with pytest.raises(DreamlabError, match="two different reference images"):
        o.match("l", photo) + o.match("m", torch.rand(1, 8, 8))


def test_the_photo_goes_through_the_renders_own_transforms() -> None:
    # started at the photo, every step's transformed render matches the transformed photo exactly: the same
    # shift, scale and rotation reach both (a photo left untransformed would score below 1 under 'small')
    photo = _photo("china")
    result = dreamlab.render("lenet-digits", o.match("conv1", photo), init_image=photo, steps=3, lr=1e-9,
                             transforms="small", device="cpu")
    assert torch.allclose(result.history.flatten(), torch.ones(3), atol=1e-5)
    shifted = dreamlab.render("lenet-digits", o.match("conv1", photo), init_image=photo.roll(2, -1), steps=1,
                              lr=1e-9, transforms="none", device="cpu")
    assert shifted.final_scores.item() < 0.9  # what a 2-px misalignment costs at conv1


def test_user_transforms_alpha_and_diversity_are_refused_with_a_photo() -> None:
    photo = _photo("china")
    for kwargs, text in [({"transforms": [K.RandomAffine(5, p=1.0)]}, "user transforms cannot repeat"),
                         ({"transforms": "none", "diversity": 2}, "does not take diversity"),
                         ({"transforms": "none", "alpha": True}, "does not take alpha")]:
        with pytest.raises(DreamlabError, match=text):
            dreamlab.render("lenet-digits", o.match("conv1", photo), steps=1, device="cpu", **kwargs)


def test_inverting_a_shallow_layer_comes_to_match_the_photo_and_resembles_it() -> None:
    found = dreamlab.invert("lenet-digits", "china", "conv1", steps=256, device="cpu")
    assert found.renders.initial_scores.item() < 0 and found.scores[0] > 0.9
    render = found.renders.images[0, 0].flatten()
    china, flower = _photo("china")[0].flatten(), _photo("flower")[0].flatten()
    ours = torch.corrcoef(torch.stack([render, china]))[0, 1]
    other = torch.corrcoef(torch.stack([render, flower]))[0, 1]
    assert ours > 0.8 and ours > other + 0.3


def test_invert_renders_one_image_per_layer_with_the_photo_in_the_figure() -> None:
    found = dreamlab.invert("lenet-digits", "china", ["conv1", "conv2"], steps=4, seed=1, device="cpu")
    assert found.layers == ["conv1", "conv2"] and found.renders.images.shape == (2, 1, 28, 28)
    figure = found.figure()
    assert figure.shape == (1, 112 + 8, 3 * (112 + 4) + 4)  # 28 px tiles enlarged 4x, photo first
    enlarged = found.photo.repeat_interleave(4, 1).repeat_interleave(4, 2)  # the photo as the model read it
    assert torch.allclose(figure[:, 4 + 20:4 + 112, 4:4 + 112], enlarged[:, 20:], atol=0.5 / 255)  # below the label
    assert found.text["dreamlab:layers"] == "conv1,conv2" and found.text["dreamlab:inversion"] == "match"
    assert found.text["dreamlab:photo_size"] == found.text["dreamlab:size"] == "28"  # the renders have its size


def test_a_photo_smaller_than_the_model_reads_it_is_enlarged_with_a_note() -> None:
    small = torch.rand(1, 20, 24)
    with pytest.warns(DreamlabNote, match="the photo is 24x20 px, smaller than the 28 px"):
        found = dreamlab.invert("lenet-digits", small, "conv1", steps=1, device="cpu")
    assert found.photo.shape == (1, 28, 28)


def test_invert_refuses_bad_input_before_rendering() -> None:
    with pytest.raises(DreamlabError, match="invert does not take size=.*give photo_size"):
        dreamlab.invert("lenet-digits", "china", "conv1", size=56)
    with pytest.raises(DreamlabError, match="mode must be 'match'"):
        dreamlab.invert("lenet-digits", "china", "conv1", mode="carricature")
    with pytest.raises(DreamlabError, match=r"photo_size \(--photo-size\) 56: lenet-digits takes no input"):
        dreamlab.invert("lenet-digits", "china", "conv1", photo_size=56)
    dead = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())
    nn.init.zeros_(dead[0].weight), nn.init.constant_(dead[0].bias, -1.0)
    with pytest.raises(DreamlabError, match="layer '1' is 0 everywhere for this photo"):
        dreamlab.invert(dead, "china", "1", photo_size=32)


def test_the_invert_command_writes_the_figure_and_its_provenance(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["invert", "lenet-digits", "conv1,conv2", "-i", "china", "--steps", "2", "--device", "cpu"]) == 0
    out = tmp_path / "lenet-digits_conv1_conv2_china_invert.png"
    captured = capsys.readouterr()
    assert captured.out.strip() == out.name
    assert "match scores (1: the photo's own activations): conv1 " in captured.err
    text = read_png_text(out)
    assert text["dreamlab:layers"] == "conv1,conv2" and text["dreamlab:image"] == "china"
    assert len(text["dreamlab:scores"].split(",")) == 2
    assert main(["invert", "lenet-digits", "conv1", "-i", "china", "--cossim-power", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("dreamlab: error: --cossim-power weighs a caricature's dot product: add --mode caricature, or "
                   "leave --cossim-power out")
    assert main(["invert", "lenet-digits", "conv9", "-i", "china", "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dreamlab: error:") and "conv9" in err and "\n" not in err
