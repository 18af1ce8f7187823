"""RenderResult's numpy/grid/notebook helpers, the progress bar in a notebook, and the render messages a lucid or
lucent user meets (NaN on the start image, a plain function as objective, lr with an optimizer factory, a fixed-
batch param split by batch_size)."""
from __future__ import annotations

import io
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dreamlab import render
from dreamlab.errors import DreamlabError
from dreamlab.optvis import progress
from dreamlab.optvis.progress import progress_bar
from dreamlab.optvis.score_checks import NonFinite
from dreamlab.optvis.params import PixelParam
from dreamlab.optvis.settings import RenderSettings

from models_fixtures import TinyNet

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = dict(steps=2, size=16, device="cpu", transforms="none", seed=0)


@pytest.fixture(scope="module")
def net() -> nn.Module:
    return TinyNet().eval()


@pytest.fixture(scope="module")
def result(net):
    return render(net, "conv2:0-2", **FAST)


def test_numpy_is_lucents_channels_last_float_array(result):
    array = result.numpy()
    assert isinstance(array, np.ndarray) and array.dtype == np.float32 and array.shape == (3, 16, 16, 3)
    assert np.array_equal(array, result.images.permute(0, 2, 3, 1).numpy())
    assert 0 <= array.min() and array.max() <= 1


def test_grid_is_one_pil_image_of_all_images(result):
    square = result.grid()
    assert isinstance(square, Image.Image) and square.mode == "RGB"
    assert square.size == (2 + 2 * 18, 2 + 2 * 18)  # 3 images: 2 columns, 2 rows, 2 px of padding
    row = result.grid(nrow=3)
    assert row.size == (2 + 3 * 18, 18 + 2)
    assert np.array_equal(np.asarray(row)[2:18, 2:18], np.asarray(result.pil()[0]))
    with pytest.raises(DreamlabError, match="nrow must be a whole number >= 1"):
        result.grid(nrow=0)


def test_a_notebook_shows_the_result_as_a_png(result):
    with Image.open(io.BytesIO(result._repr_png_())) as shown:
        assert shown.format == "PNG" and shown.size == result.grid().size


def test_a_diversity_result_shows_each_units_images_in_a_row_as_the_grid_file(net, tmp_path):
    result = render(net, "conv2:0-2", diversity=2, **FAST)  # 6 images: about square would be 3 a row
    assert result.grid().size == (2 + 2 * 18, 2 + 3 * 18)  # a row per unit, as render --grid
    with Image.open(result.save(tmp_path / "grid.png")) as saved, Image.open(io.BytesIO(result._repr_png_())) as shown:
        assert saved.size == shown.size == result.grid().size
    assert result.grid(nrow=3).size == (2 + 3 * 18, 2 + 2 * 18)  # nrow given: as asked


def test_snapshots_show_and_convert_as_the_final_images_do(net):
    result = render(net, "conv2:0-2", thresholds=[1], **FAST)
    first = result.numpy(step=1)
    assert first.shape == (3, 16, 16, 3) and np.array_equal(first, result.snapshots[1].permute(0, 2, 3, 1).numpy())
    assert not np.array_equal(first, result.numpy())  # one step later the images moved
    assert np.array_equal(np.asarray(result.grid(step=1))[2:18, 2:18], (first[0] * 255).round().astype(np.uint8))
    with pytest.raises(DreamlabError, match=r"step must be a step with a snapshot in this result \(kept: 1\), got 2"):
        result.grid(step=2)


def _fake_kernel(monkeypatch, kernel: object) -> None:
    shell = types.SimpleNamespace(kernel=kernel)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


def test_progress_in_a_jupyter_kernel_is_a_bar_not_a_line(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    _fake_kernel(monkeypatch, kernel=object())  # stderr is no terminal here, as in a notebook
    bar = progress_bar(10, "rendering 1 unit(s), 10 steps")
    assert bar is not None
    bar.update(5)
    bar.close()
    assert "dreamlab: rendering" not in capsys.readouterr().err


def test_progress_outside_a_notebook_and_not_on_a_terminal_is_one_line(monkeypatch, capsys):
    _fake_kernel(monkeypatch, kernel=None)  # a terminal IPython has no kernel
    assert progress_bar(10, "rendering 1 unit(s), 10 steps") is None
    assert capsys.readouterr().err == "dreamlab: rendering 1 unit(s), 10 steps\n"
    monkeypatch.delitem(sys.modules, "IPython")
    assert not progress._in_notebook()


def test_nan_on_the_start_image_does_not_blame_the_learning_rate():
    watch = NonFinite([0], ["a:1"])
    with pytest.raises(DreamlabError) as start:
        watch.check_scores(torch.tensor([float("nan")]), 0)
    assert "on the start image, before any optimizer step" in str(start.value) and "lr" not in str(start.value)
    with pytest.raises(DreamlabError, match=r"at step 3, so the render was stopped and nothing saved; lower lr "
                                            r"\(--lr\), or check"):
        watch._stop(0, 3)
    with pytest.raises(DreamlabError, match="lower the learning rate your optimizer factory sets"):
        NonFinite([0], ["a:1"], factory_lr=True)._stop(0, 3)


def test_nan_on_the_start_image_of_a_render():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(DreamlabError, match="on the start image") as caught:
        render(model, "0:1 / (0:2 - 0:2)", **FAST)
    assert "lr" not in str(caught.value)


def test_a_plain_function_as_objective_points_to_the_decorator(net):
    def lucent_style(T):
        return T("conv2")[:, 0].mean()

    with pytest.raises(DreamlabError, match=r"objective 'lucent_style' is a plain function; decorate it with "
                                            r"@dreamlab.objective\(layers=\['layer'\]\)"):
        render(net, lucent_style, **FAST)
    with pytest.raises(DreamlabError, match=r"objective '<lambda>' is a plain function"):
        render(net, lambda T: T("conv2"), **FAST)


def adam(params):
    return torch.optim.Adam(params, lr=0.05)


def test_lr_with_an_optimizer_factory_is_refused_not_ignored(net):
    with pytest.raises(DreamlabError, match=r"lr=0.01 was given with an optimizer factory, which sets its own "
                                            r"learning rate: give it there"):
        render(net, "conv2:0", optimizer=adam, lr=0.01, **FAST)
    with pytest.raises(DreamlabError, match="lr=0.01 was given with an optimizer factory"):
        render(net, "conv2:0", RenderSettings(optimizer=adam, lr=0.01), **FAST)
    # the recipe's lr (every recipe has one) is not the caller's: the factory's rate is used
    result = render(net, "conv2:0", optimizer=adam, **FAST)
    assert result.provenance["dreamlab:lr"] == "set by the optimizer factory"
    render("lenet-digits", "logit:3", optimizer=adam, steps=1, device="cpu")
    render(net, "conv2:0", optimizer="adam", lr=0.01, **FAST)  # a named optimizer takes lr


def test_a_fixed_batch_factory_split_by_batch_size_says_so(net):
    def fixed():  # lucent's param_f: one batch of 2, made without arguments
        return PixelParam(2, 3, 16, 16)

    render(net, "conv2:0-1", param=fixed, **FAST)  # all units at once: fine
    with pytest.raises(DreamlabError, match=r"the custom param produced \[2, 3, 16, 16\]; expected \[1, 3, 16, 16\] "
                                            r".*makes one fixed batch.*leave batch_size unset"):
        render(net, "conv2:0-1", param=fixed, batch_size=1, **FAST)


# DreamResult: the same ways out as RenderResult, and a PNG as `dreamlab dream` writes it

def test_a_dream_result_gives_pil_numpy_a_notebook_picture_and_a_png_with_its_provenance(tmp_path) -> None:
    from dreamlab import dream
    from dreamlab.io import read_png_text

    photo = torch.rand(3, 30, 40, generator=torch.Generator().manual_seed(0))
    result = dream("lenet-digits", photo, "conv2", octaves=1, steps=2, device="cpu")
    assert result.pil().size == (40, 30) and result.pil().mode == "L"  # the 1-channel model greys the photo
    array = result.numpy()
    assert array.shape == (30, 40, 1) and array.dtype == np.float32
    assert np.array_equal(array[..., 0], result.image[0].numpy())
    shown = Image.open(io.BytesIO(result._repr_png_()))
    assert shown.size == (40, 30) and np.array_equal(np.asarray(shown), np.asarray(result.pil()))
    text = read_png_text(result.save(tmp_path / "dreamed.png"))
    assert text["dreamlab:score"] == f"{result.final_score:.6g}" and text["dreamlab:photo"] == "tensor"
    assert {k: v for k, v in text.items() if k != "dreamlab:score"} == result.provenance


FLAT_NOTE = ("the gradient reaching {} was exactly 0 at every step, so the objective never changed {} and {} start "
             "image; its score does not change with the image: a ReLU on the way to the unit is off everywhere (a "
             "unit after it sees only a bias), or the score has no gradient (.sign(), .round(), a comparison or "
             "another step function: use a smooth score, e.g. torch.sigmoid(k * x) for a step)")


def test_a_flat_objective_is_told_not_rendered_silently():
    import dreamlab
    from dreamlab.errors import DreamlabNote

    @dreamlab.objective("conv2", units=3)
    def mixed(acts, index):  # image 0 smooth, image 1 a step (nonzero, no gradient), image 2 at 0 (never on)
        mean = acts["conv2"][torch.arange(acts["conv2"].shape[0]), index].mean((1, 2))
        return torch.where(index == 0, mean, torch.where(index == 1, mean.sign() + 2, mean * 0))

    with pytest.warns(DreamlabNote) as caught:
        result = render("lenet-digits", mixed, steps=4, device="cpu")
    notes = [w for w in caught if "gradient reaching" in str(w.message)]
    assert [str(w.message) for w in notes] == ["mixed[1]: " + FLAT_NOTE.format("its image", "it", "it is its")]
    assert notes[0].filename == __file__  # pointed at render's caller
    assert result.no_gradient() == ["mixed[1]"] and result.never_on() == ["mixed[2]"]  # each told once
    with pytest.warns(DreamlabNote, match=r"^mixed\[1\]: the gradient reaching"):
        shorter = render("lenet-digits", mixed, steps=1, device="cpu")
    assert torch.equal(result.images[1], shorter.images[1]) and not torch.equal(result.images[0], shorter.images[0])


def test_a_plain_channel_behind_a_dead_relu_is_told_with_that_cause(recwarn):
    from collections import OrderedDict

    dead = nn.Sequential(OrderedDict(a=nn.Conv2d(3, 2, 3), r=nn.ReLU(), b=nn.Conv2d(2, 2, 1)))
    with torch.no_grad():  # no image turns `a` on, so `b` sees its bias only: a nonzero score with no gradient
        dead.a.weight.zero_()
        dead.a.bias.fill_(-1.0)
        dead.b.bias.fill_(1.0)
    result = render(dead, "b:0", **FAST)
    assert result.no_gradient() == ["b:0"]
    (note,) = [str(w.message) for w in recwarn if "gradient reaching" in str(w.message)]
    assert "a ReLU on the way to the unit is off everywhere" in note


def test_a_flat_objective_on_a_shared_param_module_is_judged_by_all_its_tensors(recwarn):
    import dreamlab

    class Shared(nn.Module):  # one tensor for every image: per-image gradient norms cannot tell
        def __init__(self):
            super().__init__()
            self.pixels = nn.Parameter(torch.zeros(1, 1, 28, 28))

        def forward(self):
            return torch.sigmoid(self.pixels).expand(2, -1, -1, -1)

    @dreamlab.objective("conv2", units=2)
    def step(acts, index):
        return acts["conv2"][torch.arange(acts["conv2"].shape[0]), index].mean((1, 2)).round() + 5

    flat = render("lenet-digits", step, steps=2, device="cpu", param=Shared())
    assert flat.no_gradient() == ["step[0]", "step[1]"]
    assert [str(w.message) for w in recwarn if "gradient reaching" in str(w.message)] == [
        "step[0], step[1]: " + FLAT_NOTE.format("their images", "them", "each is its")]
    recwarn.clear()
    smooth = render("lenet-digits", "conv2:0-1", steps=2, device="cpu", param=Shared())
    assert smooth.no_gradient() == [] and not [w for w in recwarn if "gradient reaching" in str(w.message)]
