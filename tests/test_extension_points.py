"""render() accepts user code for the parameterization, the transforms and the optimizer (issue #11, point 4)."""
from __future__ import annotations

import functools

import kornia.augmentation as K
import pytest
import torch
from torch import Tensor, nn

from dreamlab import render
from dreamlab.errors import DreamlabError
from dreamlab.io import read_png_text, save_png
from dreamlab.optvis.params import ImageParam, PixelParam, seeded_randn
from dreamlab.optvis.settings import RenderSettings

from models_fixtures import TinyNet

pytestmark = pytest.mark.usefixtures("one_thread")


class StripesParam(ImageParam):
    """A user's parameterization: one free value per row and channel, the same along each row."""

    def __init__(self, batch: int, channels: int, height: int, width: int, generator=None, device=None):
        super().__init__(channels)
        self.rows = nn.Parameter(seeded_randn((batch, channels, height, 1), generator, device) * 0.01)
        self.width = width

    def raw(self) -> Tensor:
        return self.rows.expand(-1, -1, -1, self.width)


FAST = dict(steps=6, size=24, device="cpu", transforms="none", seed=0)


@pytest.fixture(scope="module")
def net() -> nn.Module:
    return TinyNet().eval()


def test_a_param_module_is_optimized_and_named_in_the_provenance(net):
    param = StripesParam(2, 3, 24, 24)
    result = render(net, "conv2:0-1", param=param, **FAST)
    rows = result.images[:, :, :, 0]
    assert torch.equal(result.images, rows[..., None].expand_as(result.images))  # still stripes
    assert torch.all(result.final_scores > result.initial_scores)
    assert result.provenance["dreamlab:param"] == "custom:StripesParam"


def test_a_param_factory_gets_batch_channels_size_generator_and_device(net):
    seen = {}

    def stripes(batch, channels, height, width, *, generator, device):
        seen.update(batch=batch, channels=channels, size=(height, width), generators=len(generator))
        return StripesParam(batch, channels, height, width, generator, device)

    result = render(net, "conv2:0-2", param=stripes, **{**FAST, "size": (16, 20)})
    assert seen == {"batch": 3, "channels": 3, "size": (16, 20), "generators": 3}
    assert result.images.shape == (3, 3, 16, 20)
    assert result.provenance["dreamlab:param"] == "custom:stripes"


def test_a_factory_that_hands_generator_to_torch_is_told_it_is_one_per_image(net):
    def noise(batch, channels, height, width, generator=None, device=None):  # the natural first try
        return PixelParam(1, channels, height, width) if torch.randn(batch, generator=generator) is None else None

    with pytest.raises(DreamlabError) as caught:
        render(net, "conv2:0-1", param=noise, **FAST)
    message = str(caught.value)
    assert message.startswith("the param factory noise failed on its generator= (TypeError: randn() received an "
                              "invalid combination of arguments")
    assert message.endswith("it is a list of torch.Generator, one per image, so that a unit's start noise does not "
                            "depend on the batch; draw the noise with dreamlab.optvis.params.seeded_randn((batch, "
                            "channels, height, width), generator, device), or torch.randn(..., "
                            "generator=generator[i]) for image i")
    assert "\n" not in message

    def broken(batch, channels, height, width, generator=None, device=None):  # another TypeError is the user's own
        return PixelParam(batch, channels, height, width, sd="wide")

    with pytest.raises(TypeError) as other:
        render(net, "conv2:0", param=broken, **FAST)
    assert not isinstance(other.value, DreamlabError)


def test_a_lucent_style_factory_without_arguments_and_a_partial_of_a_class(net):
    zero_args = render(net, "conv2:0", param=lambda: StripesParam(1, 3, 24, 24), **FAST)
    assert zero_args.provenance["dreamlab:param"] == "custom:<lambda>"
    partial = render(net, "conv2:0", param=functools.partial(PixelParam, sd=0.1), **FAST)
    assert partial.provenance["dreamlab:param"] == "custom:PixelParam"
    assert torch.all(partial.final_scores > partial.initial_scores)


def test_a_param_with_the_wrong_output_is_refused_in_one_line(net):
    with pytest.raises(DreamlabError, match=r"the custom param produced \[1, 3, 24, 24\]; expected \[2, 3, 24, 24\]"):
        render(net, "conv2:0-1", param=StripesParam(1, 3, 24, 24), **FAST)
    # images of another size than the render's would carry a false size in their provenance
    with pytest.raises(DreamlabError, match=r"the custom param produced 12x20 images, but the render size is 24x24; "
                                            r"give size=\(20, 12\) \(height, width\)"):
        render(net, "conv2:0", param=lambda: StripesParam(1, 3, 20, 12), **FAST)
    with pytest.raises(DreamlabError, match="the param factory returned Tensor"):
        render(net, "conv2:0", param=lambda: torch.zeros(1, 3, 8, 8), **FAST)
    with pytest.raises(DreamlabError, match="a param module holds one fixed batch"):
        render(net, "conv2:0-1", param=StripesParam(2, 3, 24, 24), batch_size=1, **FAST)


def kornia_transforms() -> list:
    return [K.RandomAffine(degrees=15, translate=(0.1, 0.1), p=1.0), K.RandomHorizontalFlip(p=0.5),
            lambda x: x * 0.9 + 0.05]


def test_kornia_transforms_are_seeded_by_the_render(net):
    args = {**FAST, "steps": 4}
    del args["transforms"]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = render(net, "conv2:0-1", transforms=kornia_transforms(), **args)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left as it was
    torch.manual_seed(456)  # another global state: the render must not depend on it
    b = render(net, "conv2:0-1", transforms=nn.Sequential(*kornia_transforms()[:2]), **args)
    c = render(net, "conv2:0-1", transforms=kornia_transforms()[:2], **{**args, "seed": 1})
    d = render(net, "conv2:0-1", transforms=kornia_transforms()[:2], **args)
    assert torch.equal(b.images, d.images)  # same seed, same images (list or nn.Sequential)
    assert not torch.allclose(c.images, d.images, atol=1e-3)  # the seed reaches kornia's draws
    assert a.provenance["dreamlab:transforms"] == "custom:RandomAffine+RandomHorizontalFlip+<lambda>"
    assert b.provenance["dreamlab:transforms"] == "custom:RandomAffine+RandomHorizontalFlip"


def test_transforms_that_change_nothing_give_the_untransformed_render(net):
    plain = render(net, "conv2:0", **FAST)
    args = {**FAST}
    del args["transforms"]
    identity = render(net, "conv2:0", transforms=[lambda x: x], **args)
    assert torch.allclose(plain.images, identity.images, atol=1e-6)


def test_an_optimizer_factory_is_used(net):
    made = []

    def sgd(params):
        made.append(torch.optim.SGD(params, lr=0.5))
        return made[-1]

    result = render(net, "conv2:0", optimizer=sgd, **FAST)
    assert len(made) == 1 and made[0].state == {} and made[0].param_groups[0]["lr"] == 0.5
    assert result.provenance["dreamlab:optimizer"] == "custom:sgd"
    assert result.provenance["dreamlab:lr"] == "set by the optimizer factory"
    adam = render(net, "conv2:0", optimizer=lambda p: torch.optim.Adam(p, lr=0.05), **FAST)
    assert adam.provenance["dreamlab:optimizer"] == "custom:<lambda>"
    assert torch.all(adam.final_scores > adam.initial_scores)
    with pytest.raises(DreamlabError, match="the optimizer factory returned list"):
        render(net, "conv2:0", optimizer=lambda p: p, **FAST)


def test_non_square_renders_work_end_to_end(net, tmp_path):
    settings = RenderSettings(steps=3, size=(32, 48), device="cpu", transforms="standard", param="fourier")
    result = render(net, "conv2:0-1", settings)
    assert result.images.shape == (2, 3, 32, 48)
    assert result.provenance["dreamlab:size"] == "32x48"
    path = tmp_path / "wide.png"
    save_png(result.images[0], path, result.provenance)
    from PIL import Image

    assert Image.open(path).size == (48, 32)
    assert read_png_text(path)["dreamlab:size"] == "32x48"
    pixel = render(net, "conv2:0", settings, param="pixel", init_image=torch.rand(3, 10, 20))
    assert pixel.images.shape == (1, 3, 32, 48)


def test_keywords_override_the_settings_object(net):
    settings = RenderSettings(steps=2, size=16, device="cpu", transforms="none")
    assert render(net, "conv2:0", settings, steps=3).history.shape == (3, 1)
    assert render(net, "conv2:0", settings).history.shape == (2, 1)


def test_lucents_param_f_pair_is_taken_as_it_is(net):
    """lucent's param_f returns (params, image_f): the render optimizes those tensors, which image_f reads."""
    made: list[torch.Tensor] = []

    def param_f():  # lucent's pixel parameterization, in outline: one tensor, a sigmoid
        tensor = (torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(0)) * 0.01).requires_grad_(True)
        made.append(tensor)
        return [tensor], lambda: torch.sigmoid(tensor)

    result = render(net, "conv2:0", param=param_f, **FAST)
    (tensor,) = made
    start = torch.sigmoid(torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(0)) * 0.01)
    assert not torch.allclose(torch.sigmoid(tensor.detach()), start)  # the optimizer stepped lucent's tensor
    assert torch.allclose(result.images, torch.sigmoid(tensor.detach()))
    assert result.final_scores[0] > result.initial_scores[0]
    assert result.provenance["dreamlab:param"] == "custom:param_f"
    with pytest.raises(DreamlabError, match=r"or lucent's pair \(params, image_f\)"):
        render(net, "conv2:0", param=lambda: ([torch.zeros(3)], "not callable"), **FAST)


def test_lucents_batch_of_images_for_one_unit_is_pointed_to_diversity(net):
    def param_f():  # lucent's param.image(24, batch=3): three images of one objective
        pixels = (torch.randn(3, 3, 24, 24) * 0.01).requires_grad_(True)
        return [pixels], lambda: torch.sigmoid(pixels)

    with pytest.raises(DreamlabError) as caught:
        render(net, "conv2:0", param=param_f, **FAST)
    assert str(caught.value).endswith("; if the 3 images are 3 of each unit (lucent's param.image(w, batch=3) for "
                                      "one objective), give diversity=3 (with diversity_weight=0 they differ by "
                                      "their start only, as in lucent)")
    assert render(net, "conv2:0", param=param_f, diversity=3, diversity_weight=0, **FAST).images.shape[0] == 3


def test_a_user_transform_that_breaks_the_batch_or_the_gradient_is_named(net):
    """Before, both ended in an error that blamed the objective."""
    settings = {**FAST, "transforms": [lambda x: x * 1.0, lambda x: x.detach()]}
    with pytest.raises(DreamlabError, match=r"the transform <lambda> cut the gradient \(its output does not depend "
                                            r"on the image\)"):
        render(net, "conv2:0", **settings)

    def first_only(x):
        return x[:1]

    with pytest.raises(DreamlabError, match=r"the transform first_only turned images \[2, 3, 24, 24\] into "
                                            r"\[1, 3, 24, 24\]; a transform keeps the batch and the channels"):
        render(net, "conv2:0-1", **{**FAST, "transforms": first_only})


def test_transforms_that_draw_from_numpy_or_random_are_seeded_and_leave_the_callers_state():
    """lucent's jitter and random_scale draw from np.random; the render's seed decides them too."""
    import random

    import numpy as np

    def lucent_style_jitter(images: torch.Tensor) -> torch.Tensor:
        dx, dy = np.random.randint(-3, 4, size=2)
        angle = random.choice([0, 1, 2, 3])
        return torch.roll(images, shifts=(int(dy), int(dx)), dims=(2, 3)).rot90(angle, dims=(2, 3))

    np.random.seed(123)
    random.seed(123)
    expected_numpy, expected_python = np.random.get_state()[1].copy(), random.getstate()
    renders = [render("lenet-digits", "conv2:3", transforms=[lucent_style_jitter], steps=8, device="cpu")
               for _ in range(2)]
    assert torch.equal(renders[0].images, renders[1].images)
    assert np.array_equal(np.random.get_state()[1], expected_numpy) and random.getstate() == expected_python


def test_an_empty_transform_list_is_recorded_as_none():
    result = render("lenet-digits", "conv2:3", transforms=[], steps=2, device="cpu")
    assert result.provenance["dreamlab:transforms"] == "none"
