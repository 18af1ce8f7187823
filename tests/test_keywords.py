"""A keyword the Python API does not take is refused in one line naming dreamlab's word for it, and a keyword
for a place a positional argument fills in one line showing the order."""
from __future__ import annotations

import inspect

import pytest
import torch

import dreamlab
from dreamlab.errors import ArgumentOrderError, DreamlabError, UnknownKeywordError


@pytest.mark.parametrize("call, message", [
    (lambda: dreamlab.RenderSettings(stepz=3), "RenderSettings() takes no keyword 'stepz'; close matches: steps"),
    (lambda: dreamlab.RenderSettings(iterations=3),
     "RenderSettings() takes no keyword 'iterations'; use steps= (dreamlab's name for iterations)"),
    (lambda: dreamlab.render("lenet-digits", "conv2:1", learning_rate=0.1),
     "render() takes no keyword 'learning_rate'; use lr= (dreamlab's name for learning_rate)"),
    (lambda: dreamlab.dream("lenet-digits", "china", iterations=3),
     "dream() takes no keyword 'iterations'; use steps= (dreamlab's name for iterations)"),
    (lambda: dreamlab.dream("lenet-digits", "china", octave=3), "dream() takes no keyword 'octave'; close matches: "
     "octaves, objective, octave_scale"),
    (lambda: dreamlab.gradcam("lenet-digits", None, layr="conv2"),
     "gradcam() takes no keyword 'layr'; close matches: layer; valid: model, image, target, layer, method, recipe, "
     "weights"),
    (lambda: dreamlab.layer_table("lenet-digits", input_sise=28), "layer_table() takes no keyword 'input_sise'; "
     "close matches: input_size"),
    (lambda: dreamlab.Recipe("cifar", "custom:cifar", inputsize=32), "Recipe() takes no keyword 'inputsize'; "
     "close matches: input_size"),
])
def test_an_unknown_keyword_names_ours(call, message):
    with pytest.raises(UnknownKeywordError) as caught:
        call()
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, DreamlabError)  # as Python's would be


def test_checked_functions_keep_their_signature_and_work():
    assert "octaves" in inspect.signature(dreamlab.dream).parameters and dreamlab.dream.__name__ == "dream"
    assert dreamlab.RenderSettings(steps=3).steps == 3
    table = dreamlab.layer_table("lenet-digits", input_size=28)
    assert "conv2" in str(table)


PHOTO = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("call, order", [
    (lambda: dreamlab.dream(PHOTO, model="lenet-digits"), "dream() got model= as a keyword and a positional argument "
     "in its place (Python's 'multiple values'): the order is dream(model, image, objective)"),
    (lambda: dreamlab.render("conv2:1", model="lenet-digits", steps=1),
     "render() got model= as a keyword and a positional argument in its place (Python's 'multiple values'): the "
     "order is render(model, objective, settings)"),
    (lambda: dreamlab.gradcam(PHOTO, model="lenet-digits"), "gradcam() got model= as a keyword and a positional "
     "argument in its place (Python's 'multiple values'): the order is gradcam(model, image, target, layer)"),
    (lambda: dreamlab.attribute(PHOTO, model="lenet-digits"), "attribute() got model= as a keyword and a positional "
     "argument in its place (Python's 'multiple values'): the order is attribute(model, image, target, method)"),
])
def test_a_photo_or_objective_first_with_model_as_a_keyword_is_told_the_order(call, order):
    with pytest.raises(ArgumentOrderError) as caught:  # not Python's bare 'got multiple values for argument'
        call()
    assert str(caught.value).startswith(order + "; pass them in that order, or name each (model=..., ")
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, DreamlabError)
