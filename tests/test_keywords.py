"""A keyword the Python API does not take is refused in one line naming dreamlab's word for it, and a keyword
for a place a positional argument fills in one line showing the order."""
from __future__ import annotations

import inspect

import pytest
import torch

import dreamlab
from dreamlab import objectives as o
from dreamlab.errors import ArgumentOrderError, DreamlabError, UnknownKeywordError


@pytest.mark.parametrize("call, message", [
    (lambda: dreamlab.RenderSettings(stepz=3), "RenderSettings() takes no keyword 'stepz'; close matches: steps"),
    (lambda: dreamlab.RenderSettings(iterations=3),
     "RenderSettings() takes no keyword 'iterations'; use steps= (dreamlab's name for iterations)"),
    (lambda: dreamlab.render("lenet-digits", "conv2:1", learning_rate=0.1),
     "render() takes no keyword 'learning_rate'; use lr= (dreamlab's name for learning_rate)"),
    (lambda: dreamlab.render("lenet-digits", "conv2:1", stpes=3),  # a TypeError as Python's, not a KeyError
     "render() takes no keyword 'stpes'; close matches: steps"),
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


@pytest.mark.parametrize("make, owner", [
    (lambda: o.channel("conv2", 3, batch=1), "channel() takes no keyword 'batch'; valid: layer, units"),
    (lambda: o.neuron("conv2", 3, 1, 1, batch=0), "neuron() takes no keyword 'batch'; valid: layer, units, x, y"),
    (lambda: o.direction("conv2", torch.ones(50), batch=0), "direction() takes no keyword 'batch'"),
    (lambda: o.l1(batch=0), "l1() takes no keyword 'batch'"),
])
def test_lucents_batch_keyword_on_an_objective_is_told_the_unit_list(make, owner):
    with pytest.raises(UnknownKeywordError) as caught:  # was Python's bare 'unexpected keyword argument'
        make()
    assert str(caught.value).startswith(owner)
    assert str(caught.value).endswith("lucent's batch=i scores one image of the batch; here each image has its own "
                                      "unit: o.channel(layer, [a, b]) makes image i maximize unit i (combined "
                                      "objectives pair them image by image), and @o.objective(layers=..., units=N) "
                                      "reads each image's index")
    assert o.channel("conv2", units=[3, 4]).batch_size == 2 and o.l1(constant=0.5).name  # keywords still work


# lucent's render_vis and param.image keywords: what render() says after "render() takes no keyword 'NAME'; "
LUCENT_KEYWORDS = {
    "param_f": "use param= (dreamlab's name for param_f)",
    "fixed_image_size": "use model_size= (dreamlab's name for fixed_image_size)",
    "show_inline": "lucent's show_inline: a RenderResult shows itself as a grid in a notebook (result.grid() is that "
                   "PIL image)",
    "save_image": "lucent's save_image: write the PNG with result.save(path)",
    "preprocess": "lucent's preprocess: the input normalization comes from the recipe",
    "verbose": "lucent's verbose: progress=True draws a bar",
    "sd": "use init_sd= (dreamlab's name for sd)",
    "decay_power": "use fourier_decay= (dreamlab's name for decay_power)",
    "fft": "lucent's param.image(fft=True) is param='fourier' (the default), fft=False param='pixel'",
    "batch": "lucent's param.image(batch=N): a unit list renders one image per unit",
}


@pytest.mark.parametrize("keyword", sorted(LUCENT_KEYWORDS))
def test_lucents_render_keywords_get_what_does_their_job(keyword):
    with pytest.raises(UnknownKeywordError) as caught:  # a TypeError as Python's, as every unknown keyword
        dreamlab.render("lenet-digits", "conv2:1", **{keyword: 1})
    assert str(caught.value).startswith(f"render() takes no keyword {keyword!r}; {LUCENT_KEYWORDS[keyword]}")


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
