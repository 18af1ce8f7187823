"""dreamlab.inspect.groups and `dreamlab groups`: neuron groups found by NMF, the figure, its records, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError, DreamlabNote
from dreamlab.inspect import groups as groups_module
from dreamlab.inspect.groups import neuron_groups
from dreamlab.io import read_png_text
from dreamlab.models.recipe import Recipe

pytestmark = pytest.mark.usefixtures("one_thread")
PLAIN = Recipe(name="colours", builder="custom:colours", weights="none", input_size=8, channels=3,
               mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def colour_model() -> nn.Module:
    """Layer '0' copies the colour channels minus 0.1 (negative where a colour is absent); '1' is its ReLU."""
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        conv.bias.fill_(-0.1)
    return nn.Sequential(conv, nn.ReLU())


def halves() -> torch.Tensor:
    """An 8x8 photo: blue on the left half, red on the right."""
    photo = torch.zeros(3, 8, 8)
    photo[2, :, :4], photo[0, :, 4:] = 1.0, 1.0
    return photo


def test_two_colour_halves_give_two_groups_ordered_left_to_right():
    found = neuron_groups(colour_model(), halves(), "1", groups=2, render=False, recipe=PLAIN)
    assert found.maps.shape == (2, 8, 8) and found.directions.shape == (2, 3)
    assert (found.maps >= 0).all() and (found.directions >= 0).all()
    assert found.error < 1e-3
    torch.testing.assert_close(found.directions, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), atol=1e-3,
                               rtol=0)  # the left (blue) group first, as lucid orders them
    torch.testing.assert_close(found.maps[0, :, :4], torch.full((8, 4), 0.9), atol=1e-3, rtol=0)
    assert found.maps[0, :, 4:].max() < 1e-3 and found.maps[1, :, :4].max() < 1e-3
    torch.testing.assert_close(found.shares, torch.tensor([0.5, 0.5]), atol=1e-3, rtol=0)
    assert found.renders is None and found.text["dreamlab:render"] == "none"


def test_the_same_seed_gives_the_same_groups():
    digit = torch.zeros(1, 28, 28)
    digit[:, 6:22, 13:16] = 1
    first = neuron_groups("lenet-digits", digit, "relu2", groups=4, seed=2, render=False)
    again = neuron_groups("lenet-digits", digit, "relu2", groups=4, seed=2, render=False)
    assert torch.equal(first.maps, again.maps) and torch.equal(first.directions, again.directions)
    assert first.text == again.text


def test_the_figure_without_renders_and_its_records(tmp_path):
    found = neuron_groups(colour_model(), halves(), "1", groups=2, render=False, recipe=PLAIN,
                          out=tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as image:
        assert image.mode == "RGB"
        assert image.size == (142 + 2 * 138, 142)  # the overlay, then a 128 px map tile per group, framed in 3 px
    text = read_png_text(tmp_path / "g.png")
    assert text["dreamlab:groups"] == "2" and text["dreamlab:layer"] == "1"
    assert text["dreamlab:map_size"] == "8x8" and text["dreamlab:figure_size"] == "142x418"
    assert text["dreamlab:group_colours"] == "#ff2626,#26ffff"
    assert float(text["dreamlab:reconstruction_error"]) < 1e-3
    assert text["dreamlab:nmf"].startswith("HALS, seed 0")
    figure = found.figure()
    left_tile = figure[:, 4 + 64, 146 + 20]  # group 0's map tile, on the photo's left half: its colour, red
    right_tile = figure[:, 4 + 64, 146 + 110]
    assert left_tile[0] > left_tile[1] + 0.3 and right_tile[0] < 0.5  # grey photo, not tinted, on the right
    torch.testing.assert_close(figure[:, 4 + 64, 146 - 3], torch.tensor([1.0, 0.15, 0.15]))  # the frame: red


def test_renders_are_one_batch_of_the_directions_and_sit_above_the_maps(tmp_path):
    found = neuron_groups("lenet-digits", "china", "relu2", groups=2, steps=2, cossim_power=0.5,
                          out=tmp_path / "g.png")
    assert found.renders.shape == (2, 1, 28, 28) or found.renders.shape == (2, 3, 28, 28)
    assert found.render_scores.shape == (2,)
    with Image.open(tmp_path / "g.png") as image:  # 28 px renders in 64 px tiles, framed: the overlay 2 * 70 + 4
        assert image.size == (152 + 2 * 74, 152) and image.mode == "RGB"
    figure = found.figure()  # render 1, enlarged 2x and centred in its frame at the top of column 1 (its lower
    top, left = 4 + 3 + 4, 152 + 74 + 3 + 4  # half: the label covers the upper left corner)
    torch.testing.assert_close(figure[:, top + 28:top + 56:2, left:left + 56:2],
                               found.renders[1].expand(3, -1, -1)[:, 14:], atol=0.003, rtol=0)
    text = read_png_text(tmp_path / "g.png")
    assert text["dreamlab:render_objective"] == "relu2:group^0.5[0-1]"
    assert text["dreamlab:render_steps"] == "2" and len(text["dreamlab:render_scores"].split(",")) == 2


def test_lr_sets_the_groups_renders_as_it_sets_grids(tmp_path):
    out = tmp_path / "g.png"
    assert main(["groups", "lenet-digits", "relu2", "-i", "china", "-k", "2", "--steps", "2", "--lr", "0.5", "-o",
                 str(out)]) == 0
    assert read_png_text(out)["dreamlab:render_lr"] == "0.5"
    assert neuron_groups("lenet-digits", "china", "relu2", groups=2, steps=2, lr=0.25).text["dreamlab:render_lr"] == \
        "0.25"
    with pytest.raises(DreamlabError, match=r"^lr must be a finite number > 0 up to 1000"):
        neuron_groups("lenet-digits", "china", "relu2", groups=2, lr=0)  # before the model loads


def test_an_interrupted_render_keeps_the_maps(tmp_path, monkeypatch):
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("dreamlab.optvis.engine.render", stopped)
    out = tmp_path / "g.png"
    assert main(["groups", "lenet-digits", "relu2", "-i", "china", "--groups", "2", "-o",
                 str(out)]) == 130
    assert read_png_text(out)["dreamlab:render"] == "none (interrupted before it started)"
    assert np.load(tmp_path / "g.npy").shape == (2, 50)


def test_the_command_writes_the_figure_and_the_directions(tmp_path, capsys):
    out = tmp_path / "groups.png"
    assert main(["groups", "lenet-digits", "relu2", "-i", "china", "--groups", "3",
                 "--no-render", "-o", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out.split() == [str(out), str(tmp_path / "groups.npy")]
    assert "3 groups at relu2, reconstruction error" in printed.err
    directions = np.load(tmp_path / "groups.npy")
    assert directions.shape == (3, 50) and directions.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1, atol=1e-5)
    assert read_png_text(out)["dreamlab:groups"] == "3"


@pytest.mark.parametrize("argv, message", [
    (["conv2"], "layer 'conv2' has negative activations for this photo (down to"),
    (["conv2"], "NMF needs values >= 0; use 'relu2' (the ReLU after it)"),
    (["relu2", "--groups", "51"], "groups (--groups) must be from 1 to 50 at 'relu2', which has 50 "
                                             "channels at 14x14 = 196 positions; got 51"),
    (["pool2", "--groups", "50"], "at 7x7 = 49 positions; got 50; a larger --photo-size (photo_size=), where the "
                                  "model takes one, gives more positions"),
    (["pool2", "--photo-size", "56"], "photo_size (--photo-size) 56: lenet-digits takes no input of that size (its "
                                      "recipe's is 28 px); leave it out"),
    (["relu2", "--groups", "0"], "argument --groups/-k: expected a positive integer, got '0'"),
    (["relu9"], "unknown layer 'relu9'; close matches: relu1, relu2, relu3"),
    (["relu2", "--steps", "3"], "--steps sets the renders, which --no-render leaves out"),
    (["relu2", "--lr", "0.1"], "--lr sets the renders, which --no-render leaves out"),
])
def test_bad_input_is_one_line_and_status_2(argv, message, tmp_path, capsys):
    try:
        code = main(["groups", "lenet-digits", "-i", "china", "--no-render", "-o", str(tmp_path / "g.png"),
                     *argv])
    except SystemExit as exit:  # argparse's own checks exit from the parser
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "g.png").exists()


def test_a_missing_photo_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("dreamlab.models.loading.load_model", lambda *a, **k: pytest.fail("the model loaded"))
    assert main(["groups", "lenet-digits", "relu2", "-i", str(tmp_path / "nosuch.jpg"), "--no-render"]) == 2
    assert "cannot read image" in capsys.readouterr().err


@pytest.mark.parametrize("keywords, message", [
    ({"groups": 0}, "groups (--groups) must be a whole number >= 1"),
    ({"groups": 2.5}, "groups (--groups) must be a whole number >= 1"),
    ({"groups": 4}, "groups (--groups) must be from 1 to 3 at '1'"),
    ({"render": "yes"}, "render must be True or False"),
    ({"cossim_power": 40}, "cossim_power must be a number from 0 to 32"),
    ({"tolerance": -1}, "tolerance must be a number from 0 to 1"),
    ({"steps": 3}, "steps= set the renders, which render=False leaves out"),
    ({"render": True, "steps": 0}, "steps must be a whole number >= 1, got 0"),
    ({"render": True, "device": "tpu"}, "unknown device 'tpu'; valid here:"),
    ({"render": True, "size": 3}, "size 3 is out of range; valid: 8 to 2048 pixels"),
])
def test_bad_arguments_from_python_are_refused(keywords, message, monkeypatch):
    monkeypatch.setattr(groups_module, "nmf", lambda *a, **k: pytest.fail("the NMF ran"))  # refused before it
    with pytest.raises(DreamlabError) as caught:
        neuron_groups(colour_model(), halves(), "1", recipe=PLAIN, **{"render": False, **keywords})
    assert message in str(caught.value)


def test_the_pre_relu_layer_of_a_module_names_the_relu_after_it():
    with pytest.raises(DreamlabError, match=r"use '1' \(the ReLU after it\); `dreamlab layers MODEL`"):
        neuron_groups(colour_model(), halves(), "0", groups=2, render=False, recipe=PLAIN)


def test_group_colours_are_distinct_hues():
    colours = groups_module.group_colours(6)
    assert colours[0] == pytest.approx((1.0, 0.15, 0.15)) and len(set(colours)) == 6


def test_help_does_not_load_torch():
    import subprocess
    import sys

    code = ("import sys; from dreamlab.apps.cli import main\ntry:\n    main(['groups', '--help'])\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "usage: dreamlab groups" in done.stdout and done.stderr.strip().splitlines()[-1] == "False"
    assert "--photo-size" in done.stdout and "--no-render" in done.stdout


def test_photo_size_sets_the_side_the_model_sees():
    with pytest.warns(DreamlabNote, match="the photo is 8x8 px, smaller than the 16 px"):
        found = neuron_groups(colour_model(), halves(), "1", groups=2, render=False, recipe=PLAIN, photo_size=16)
    assert found.maps.shape == (2, 16, 16) and found.photo.shape == (3, 16, 16)
    assert found.text["dreamlab:photo_size"] == "16" and found.text["dreamlab:map_size"] == "16x16"
    with pytest.raises(DreamlabError, match=r"photo_size \(--photo-size\) 4 is out of range; valid: 8 to 2048 \(pixels"):
        neuron_groups(colour_model(), halves(), "1", groups=2, render=False, recipe=PLAIN, photo_size=4)


def test_a_render_stopped_mid_way_keeps_its_images_and_says_so(monkeypatch):
    from dreamlab.optvis import engine

    real = engine.render

    def stopped_early(*args, **kwargs):
        result = real(*args, **kwargs)
        result.interrupted, result.steps = True, [1] * len(result.steps)
        return result

    monkeypatch.setattr(engine, "render", stopped_early)
    found = neuron_groups("lenet-digits", "china", "relu2", groups=2, steps=2)
    assert found.interrupted and found.renders.shape[0] == 2
    assert found.text["dreamlab:interrupted"] == "after 1 of 2 steps"


def test_neuron_groups_is_exported_and_names_close_keywords():
    import dreamlab

    assert dreamlab.neuron_groups is neuron_groups and "neuron_groups" in dir(dreamlab)
    with pytest.raises(TypeError, match=r"neuron_groups\(\) takes no keyword 'group'; close matches: groups"):
        neuron_groups(colour_model(), halves(), "1", group=2)


def test_a_non_square_render_is_enlarged_whole_and_centred_in_its_tile():
    found = neuron_groups(colour_model(), halves(), "1", groups=2, recipe=PLAIN, steps=1, size=(8, 16))
    assert found.renders.shape == (2, 3, 8, 16)
    figure = found.figure()
    assert figure.shape == (3, 152, 300)
    top, left = 4 + 3 + 16, 152 + 3  # 8x16 enlarged 4x to 32x64 fills the 64 px tile's width, centred in height
    torch.testing.assert_close(figure[:, top + 16:top + 32:4, left:left + 64:4], found.renders[0][:, 4:],
                               atol=0.003, rtol=0)
    assert (figure[:, top - 1, left + 30] == 1).all()  # white above it


def test_a_negative_layer_with_no_relu_after_it_says_to_pick_one():
    model = nn.Sequential(colour_model()[0], nn.Conv2d(3, 3, 1))
    with pytest.raises(DreamlabError, match=r"NMF needs values >= 0; use a layer after a ReLU; `dreamlab layers MODEL`"):
        neuron_groups(model, halves(), "0", groups=2, render=False, recipe=PLAIN)


def test_the_command_says_it_renders_and_a_ctrl_c_while_saving_loses_no_file(tmp_path, capsys, monkeypatch):
    import os
    import signal

    from dreamlab.inspect.groups import NeuronGroups

    real = NeuronGroups.save

    def interrupted_save(self, path):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the figure is written
        return real(self, path)

    monkeypatch.setattr(NeuronGroups, "save", interrupted_save)
    out = tmp_path / "g.png"
    assert main(["groups", "lenet-digits", "relu2", "-i", "china", "--groups", "2", "--steps", "1",
                 "--device", "cpu", "-o", str(out)]) == 0
    assert "dreamlab: rendering 2 unit(s), 1 steps" in capsys.readouterr().err  # as grid and render say
    assert read_png_text(out)["dreamlab:groups"] == "2" and (tmp_path / "g.npy").exists()


def test_a_name_that_is_not_png_or_npy_is_refused_before_the_work(tmp_path, monkeypatch):
    with pytest.raises(DreamlabError, match=r"output '.*g\.jpg' would not be a \.png file"):
        neuron_groups(colour_model(), halves(), "1", groups=2, render=False, recipe=PLAIN, out=tmp_path / "g.jpg")
    found = neuron_groups(colour_model(), halves(), "1", groups=2, render=False, recipe=PLAIN)
    with pytest.raises(DreamlabError, match=r"output '.*g\.jpg' would not be a \.png file"):
        found.save(tmp_path / "g.jpg")
    with pytest.raises(DreamlabError, match=r"directions' file '.*g\.png' would not be a \.npy file"):
        found.save_directions(tmp_path / "g.png")
    assert list(tmp_path.iterdir()) == []
