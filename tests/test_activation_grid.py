"""Activation grids (`dreamlab.optvis.activation_grid`, `dreamlab grid`): the cells' vectors against the photo's
feature maps, the objectives they set, the shared parameterization, the tiling, seeds, and bad input."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import dreamlab
from dreamlab import objectives as o
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError, DreamlabNote
from dreamlab.io import read_png_text
from dreamlab.optvis.activation_grid import activation_grid, cell_vectors, sharing

TINY = dict(cells=2, cell_size=28, steps=3, device="cpu")  # lenet-digits takes 28 px only


def test_sharing_joins_cells_alike_and_keeps_unlike_ones_apart() -> None:
    sky, tree = torch.tensor([5.0, 1.0, 0.0]), torch.tensor([0.0, 1.0, 5.0])
    mix = sharing(torch.stack([sky, sky * 1.1, tree, tree * 0.9]))
    assert torch.allclose(mix.sum(1), torch.ones(4))
    assert mix[0, 1] > 0.4 and mix[2, 3] > 0.4  # sky with sky, tree with tree
    assert mix[0, 2] == 0 and mix[1, 3] == 0  # never sky with tree
    same = sharing(torch.ones(3, 4))  # nothing stands out: each cell keeps to its own image
    assert torch.equal(same, torch.eye(3))


def test_cell_vectors_are_the_mean_of_each_cell_row_by_row() -> None:
    act = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(2, 4, 6) + 1
    vectors = cell_vectors(act, 2, "conv")
    assert vectors.shape == (4, 2)
    assert torch.allclose(vectors[1], act[:, :2, 3:].mean((1, 2)))  # row 0, column 1: the top right cell
    assert torch.allclose(vectors[2], act[:, 2:, :3].mean((1, 2)))  # row 1, column 0
    with pytest.raises(DreamlabError, match=r"cells=5 is more than layer 'conv'.*4 high x 6 wide.*from 1 to 4"):
        cell_vectors(act, 5, "conv")
    act[:, :2, :3] = 0
    with pytest.raises(DreamlabError, match="cell row 0, column 0 of layer 'conv' is 0 in every channel"):
        cell_vectors(act, 2, "conv")


@pytest.fixture(scope="module")
def grid() -> dreamlab.optvis.activation_grid.ActivationGrid:
    return activation_grid("lenet-digits", "china", "conv2", **TINY)


def test_the_grid_tiles_one_render_per_cell_along_the_photos_vectors(grid) -> None:
    assert grid.image.size == (56, 56) and grid.pixels.shape == (1, 56, 56)
    assert grid.renders.images.shape == (4, 1, 28, 28)
    assert torch.equal(grid.pixels[:, :28, 28:], grid.renders.images[1])  # cell 1: row 0, column 1
    assert torch.equal(grid.pixels[:, 28:, :28], grid.renders.images[2])
    # the vectors are the photo's conv2 maps (as `dreamlab.features` shows them), averaged over each cell
    maps = dreamlab.features("lenet-digits", "conv2", "china", top=50)
    act = torch.empty_like(maps.maps)
    act[maps.channels] = maps.maps
    expected = F.adaptive_avg_pool2d(act[None], 2)[0].flatten(1).T
    assert torch.allclose(grid.vectors, expected, atol=1e-5)
    # each cell's score is its render's direction score along its own vector, with the cosine to the power 1
    model = dreamlab.load_model("lenet-digits").model
    with dreamlab.capture(model, ["conv2"]) as cap:
        acts = cap.run(_normalized(grid.renders.images))
    scores = o.direction("conv2", grid.vectors, cossim_power=1)(acts, torch.arange(4))
    assert torch.allclose(scores, grid.renders.final_scores, rtol=1e-3, atol=1e-4)
    assert grid.renders.labels == [f"conv2:cell^1[{i}]" for i in range(4)]


def _normalized(images: torch.Tensor) -> torch.Tensor:
    """Images as lenet-digits reads them: minus its recipe's mean, over its std."""
    recipe = dreamlab.load_recipe("lenet-digits")
    return (images - torch.tensor(recipe.mean).view(1, -1, 1, 1)) / torch.tensor(recipe.std).view(1, -1, 1, 1)


def test_the_grid_png_records_its_provenance(grid, tmp_path) -> None:
    text = read_png_text(grid.save(tmp_path / "grid.png"))
    assert text["dreamlab:activation_grid"] == "2x2" and text["dreamlab:cell_size"] == "28"
    assert text["dreamlab:image"] == "china" and text["dreamlab:photo_map"] == "14x14"
    assert text["dreamlab:layer"] == "conv2" and text["dreamlab:preprocess"] == "shorter side to 28, centre crop"
    assert text["dreamlab:objective"] == "conv2:cell^1[0-3]" and text["dreamlab:shared"] == "0.5"
    assert len(text["dreamlab:scores"].split(",")) == 4
    # the weights the model was loaded with, as render records them, not "caller's module"
    assert text["dreamlab:weights"] == "default" and text["dreamlab:fourier_decay"] == "0.5"


def test_a_fixed_size_model_sees_each_cell_at_its_own_size() -> None:
    small = activation_grid("lenet-digits", "china", "conv2", **{**TINY, "cell_size": 16})
    assert small.pixels.shape == (1, 32, 32) and small.text["dreamlab:model_size"] == "28"
    assert "dreamlab:model_size" not in activation_grid("lenet-digits", "china", "conv2", **TINY).text


def test_the_same_seed_gives_the_same_grid_and_another_seed_another(grid) -> None:
    again = activation_grid("lenet-digits", "china", "conv2", **TINY)
    assert torch.equal(again.pixels, grid.pixels)
    other = activation_grid("lenet-digits", "china", "conv2", seed=1, **TINY)
    assert not torch.equal(other.pixels, grid.pixels)
    alone = activation_grid("lenet-digits", "china", "conv2", shared=0, **TINY)
    assert not torch.equal(alone.pixels, grid.pixels)
    flatter = activation_grid("lenet-digits", "china", "conv2", fourier_decay=2, init_sd=0.1, **TINY)
    assert not torch.equal(flatter.pixels, grid.pixels)  # the Fourier images' settings reach them


@pytest.mark.parametrize("kwargs, message", [
    (dict(photo="no_such.png"), "no_such.png"),
    (dict(layer="conv9"), "conv9"),
    (dict(cells=0), r"cells \(--cells\) must be a whole number >= 1"),
    (dict(cells=15), "cells=15 is more than layer 'conv2' can split its map of the photo into "),
    (dict(photo=torch.rand(20, 40)), r"expected an image \[1 or 3, H, W\], got shape \[20, 40\]"),
    (dict(shared=1.5), "shared must be a number from 0"),
    (dict(cell_size=4), r"cell_size \(--cell-size\) must be a whole number >= 8"),
    (dict(param="pixel"), "activation_grid does not take param=: it renders one 28-px image per cell"),
    (dict(init_image="china"), "activation_grid does not take init_image="),
    (dict(alpha=True), "activation_grid does not take alpha=: it renders one 28-px image per cell"),
    (dict(fourier_decay=-1), "fourier_decay"),
])
def test_bad_input_is_one_line(kwargs, message) -> None:
    args = {"photo": "china", "layer": "conv2", **TINY, **kwargs}
    with pytest.raises(DreamlabError, match=message) as error:
        activation_grid("lenet-digits", args.pop("photo"), args.pop("layer"), **args)
    assert "\n" not in str(error.value)


def test_the_grid_command_writes_the_png(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["grid", "lenet-digits", "conv2", "-i", "china", "--cells", "2", "--cell-size", "28",
                 "--steps", "2", "--device", "cpu"]) == 0
    out = tmp_path / "lenet-digits_conv2_china_grid.png"
    assert capsys.readouterr().out.strip() == out.name
    assert read_png_text(out)["dreamlab:activation_grid"] == "2x2"
    assert main(["grid", "lenet-digits", "conv2", "-i", "china", "--cells", "20", "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dreamlab: error: cells=20 is more than layer 'conv2'") and "\n" not in err


def test_grid_help_does_not_load_torch() -> None:
    import subprocess
    import sys

    code = ("import sys; from dreamlab.apps.cli import main\ntry:\n    main(['grid', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint('torch' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--cells" in done.stdout and done.stderr.strip() == "False"


def test_the_grid_is_in_the_flat_api() -> None:
    assert dreamlab.activation_grid is activation_grid and "activation_grid" in dreamlab.__all__


def test_a_ctrl_c_saves_the_grid_so_far_and_exits_130(tmp_path, monkeypatch, capsys) -> None:
    import dreamlab.optvis.activation_grid as module

    real = module.activation_grid

    def stopped(*args, **kwargs):
        grid = real(*args, **kwargs)
        grid.renders.interrupted = True  # as render returns it after a Ctrl-C
        return grid

    monkeypatch.setattr(module, "activation_grid", stopped)
    out = tmp_path / "g.png"
    assert main(["grid", "lenet-digits", "conv2", "-i", "china", "--cells", "2", "--cell-size", "28",
                 "--steps", "1", "--device", "cpu", "-o", str(out)]) == 130
    assert read_png_text(out)["dreamlab:activation_grid"] == "2x2"
    assert "interrupted; saved the grid" in capsys.readouterr().err


def test_a_render_stopped_mid_way_says_so_in_the_png(monkeypatch) -> None:
    from dreamlab.optvis import engine

    real = engine.render

    def stopped_early(*args, **kwargs):
        result = real(*args, **kwargs)
        result.interrupted, result.steps = True, [1] * len(result.steps)  # as a Ctrl-C after step 1 leaves it
        return result

    monkeypatch.setattr(engine, "render", stopped_early)
    stopped = activation_grid("lenet-digits", "china", "conv2", **TINY)
    assert stopped.text["dreamlab:interrupted"] == "after 1 of 3 steps"


def test_a_finished_grid_says_nothing_of_an_interruption(grid) -> None:
    assert "dreamlab:interrupted" not in grid.text


def test_your_own_module_takes_a_shipped_recipe_by_name() -> None:
    from torch import nn

    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1),
                          nn.ReLU())
    # lenet-digits' default layers (conv2, ...) are not this module's: they must not be asked for
    own = activation_grid(model, "china", "3", recipe="lenet-digits", cells=2, cell_size=28, steps=1,
                          device="cpu")
    assert own.vectors.shape == (4, 6) and own.text["dreamlab:recipe"] == "lenet-digits"


def test_save_refuses_a_name_that_is_not_png(grid, tmp_path) -> None:
    with pytest.raises(DreamlabError, match=r"output '.*grid\.jpg' would not be a \.png file"):
        grid.save(tmp_path / "grid.jpg")
    assert not (tmp_path / "grid.jpg").exists()


def test_photo_size_reads_the_photo_larger_for_a_finer_map() -> None:
    # a model of any input size: a stride-2 convolution, so the map is half the photo's side
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.ReLU())
    torch.nn.init.uniform_(model[0].weight, 0.05, 0.5)  # every channel on for a photo: no cell is 0 everywhere
    common = dict(cells=2, cell_size=16, steps=2, device="cpu", recipe="vgg16")
    small = activation_grid(model, "china", "1", **common)
    large = activation_grid(model, "china", "1", photo_size=400, **common)
    assert small.text["dreamlab:photo_map"] == "112x112" and large.text["dreamlab:photo_map"] == "200x200"
    assert large.text["dreamlab:preprocess"] == "shorter side to 400, centre crop"
    with pytest.warns(DreamlabNote, match=r"the photo is 640x427 px, smaller than the 1000 px \(shorter side\) "):
        assert activation_grid(model, "china", "1", photo_size=1000, **common).text["dreamlab:photo_size"] == "1000"


ENLARGED = ("the photo is 40x20 px, smaller than the 28 px (shorter side) that lenet-digits reads it at: it is "
            "enlarged, so the layer sees its blur; give a photo at least 28 px on each side for a sharper one")


def test_grid_groups_and_features_enlarge_a_small_photo_with_the_same_note(tmp_path, capsys) -> None:
    """A photo under the model's input is enlarged by all three (grid refused it), each saying so in one note."""
    from PIL import Image

    Image.new("L", (40, 20), 200).save(tmp_path / "small.png")
    photo = str(tmp_path / "small.png")
    runs = [["grid", "lenet-digits", "conv2", "--image", photo, "--cells", "2", "--steps", "2", "-o",
             str(tmp_path / "g.png")],
            ["groups", "lenet-digits", "relu2", "--image", photo, "-k", "2", "--steps", "2", "-o",
             str(tmp_path / "n.png")],
            ["features", "lenet-digits", "conv2", "--image", photo, "-o", str(tmp_path / "f.png")]]
    for args in runs:
        assert main(args) == 0, capsys.readouterr().err
        err = capsys.readouterr().err
        assert err.count("dreamlab: note: ") == 1 and f"dreamlab: note: {ENLARGED}" in err, err
        assert read_png_text(args[args.index("-o") + 1])["dreamlab:photo_size"] == "28"


def test_photo_size_is_refused_where_the_model_takes_one_size() -> None:
    with pytest.raises(DreamlabError, match=r"photo_size \(--photo-size\) 56: lenet-digits takes no input of that "
                                            r"size \(its recipe's is 28 px\)"):
        activation_grid("lenet-digits", "china", "conv2", photo_size=56, **TINY)
    with pytest.raises(DreamlabError, match=r"photo_size \(--photo-size\) 4 is out of range"):
        activation_grid("lenet-digits", "china", "conv2", photo_size=4, **TINY)
