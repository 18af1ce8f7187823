"""Diversity: several images per unit, pushed apart by the distance between their Gram matrices
(dreamlab/optvis/diversity.py)."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

import dreamlab
from dreamlab import objectives as o
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.optvis.capture import Capture
from dreamlab.optvis.diversity import gram_distance, repeat_units, with_diversity

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_gram_distance_is_zero_for_alike_styles_and_sqrt2_for_disjoint_channels():
    a = torch.zeros(1, 2, 4, 4)
    a[0, 0] = 1.0
    b = torch.zeros(1, 2, 4, 4)
    b[0, 1] = 1.0
    shifted = a.roll(2, dims=-1)  # the same style elsewhere: a Gram matrix ignores positions
    distance = gram_distance(torch.cat([a, shifted, b, a]), 2)  # groups of 2 in a row
    assert distance.tolist() == pytest.approx([0.0, 0.0, 2 ** 0.5, 2 ** 0.5], abs=1e-3)
    three = gram_distance(torch.cat([a, b, shifted]), 3)  # a's distance to b and to shifted a, averaged
    assert three.tolist() == pytest.approx([2 ** 0.5 / 2, 2 ** 0.5, 2 ** 0.5 / 2], abs=1e-3)
    assert gram_distance(a, 1).tolist() == [0.0]  # alone in its group


def test_repeated_units_read_their_unit_and_carry_the_neuron_offset():
    acts = torch.arange(2 * 3 * 4 * 4, dtype=torch.float).view(2, 3, 4, 4).repeat(2, 1, 1, 1)  # 4 samples
    twice = repeat_units(o.channel("l", [2, 0]), 2)
    assert twice.labels == ("l:2 #1", "l:2 #2", "l:0 #1", "l:0 #2") and twice.batch_size == 4
    expected = [acts[k, [2, 2, 0, 0][k]].mean() for k in range(4)]
    assert twice({"l": acts}).tolist() == pytest.approx([float(v) for v in expected])
    neuron = repeat_units(o.neuron("l", 1, x=0, y=0), 2).at_offsets({"l": (1, 1)})
    assert neuron({"l": acts[:2]}).tolist() == [float(acts[0, 1, 1, 1]), float(acts[1, 1, 1, 1])]


def test_the_penalty_pushes_nearly_alike_copies_apart():
    """The copies start almost alike, where a cosine's gradient vanishes: the distance's gradient does not."""
    torch.manual_seed(0)
    base = torch.rand(1, 4, 6, 6)
    features = (base + 1e-4 * torch.randn(2, 4, 6, 6)).requires_grad_(True)
    objective = with_diversity(repeat_units(o.channel("l", 0), 2), 2, "l", 1.0)
    score = objective({"l": features}, torch.tensor([0, 1]))
    plain = features[:, 0].mean((1, 2))
    assert score.tolist() == plain.tolist()  # the bonus adds its gradient, not its value
    penalty_grad, = torch.autograd.grad((score - plain).sum(), features)
    assert float(penalty_grad.norm()) > 0.05 * float(plain.detach().abs().mean())


@pytest.fixture(scope="module")
def digits_renders():
    """logit:0-9, 4 images each, with the penalty (weight 1) and without it (weight 0)."""
    loaded = dreamlab.load_model("lenet-digits")
    with_penalty = dreamlab.render(loaded, "logit:0-9", diversity=4, device="cpu")
    without = dreamlab.render(loaded, "logit:0-9", diversity=4, diversity_weight=0.0, device="cpu")
    return loaded, with_penalty, without


def _distances(loaded, images, copies=4):
    mean = torch.tensor(loaded.recipe.mean).view(1, -1, 1, 1)
    std = torch.tensor(loaded.recipe.std).view(1, -1, 1, 1)
    with torch.no_grad(), Capture(loaded.model, ["conv2"]) as cap:
        return gram_distance(cap.run((images - mean) / std)["conv2"], copies)


def test_diverse_digits_differ_and_are_still_read_as_their_digit(digits_renders):
    """Measured 2026-12-04: Gram distance 0.79 against 0.03 without the penalty; the independent judge (an SVM
    fitted on digits lenet-digits never saw) reads 34 or 35 of the 40 images as their digit at seeds 0 and 1."""
    pytest.importorskip("sklearn")
    from dreamlab.apps.quality.judge import DigitsSvmJudge

    loaded, with_penalty, without = digits_renders
    assert with_penalty.images.shape == (40, 1, 28, 28)
    assert with_penalty.labels[:5] == ["logit:0 #1", "logit:0 #2", "logit:0 #3", "logit:0 #4", "logit:1 #1"]
    apart, alike = _distances(loaded, with_penalty.images), _distances(loaded, without.images)
    assert float(apart.mean()) > 0.5 and float(alike.mean()) < 0.1
    assert float(apart.min()) > float(alike.max())
    read = DigitsSvmJudge.fit().predict(with_penalty.images)
    assert (read == (torch.arange(40) // 4).numpy()).sum() >= 32
    assert with_penalty.provenance["dreamlab:diversity"] == "4 images per unit, Gram distance at conv2, weight 1"
    assert "dreamlab:diversity" not in dreamlab.render(loaded, "logit:3", steps=1, device="cpu").provenance
    # the per-step history is the objective's: at step 1 the images are the same with and without the penalty
    assert torch.equal(with_penalty.history[0], without.history[0])


def test_copies_of_a_start_image_keep_their_own_random_starts():
    """All copies starting as one photo would sit where the penalty has no gradient (without transforms nothing
    else tells them apart); one image per unit is repeated over its copies."""
    loaded = dreamlab.load_model("lenet-digits")
    photo = torch.rand(1, 28, 28)
    result = dreamlab.render(loaded, "logit:3", diversity=2, init_image=photo, transforms="none", steps=32,
                             device="cpu")
    assert float(_distances(loaded, result.images, 2).mean()) > 0.05
    per_unit = dreamlab.render(loaded, "conv2:3,4", diversity=2, init_image=torch.rand(2, 1, 28, 28), steps=1,
                               device="cpu")
    assert per_unit.images.shape == (4, 1, 28, 28)


def test_the_copies_of_a_unit_stay_in_one_batch():
    loaded = dreamlab.load_model("lenet-digits")
    whole = dreamlab.render(loaded, "conv2:3,7", diversity=2, steps=4, device="cpu")
    split = dreamlab.render(loaded, "conv2:3,7", diversity=2, steps=4, batch_size=3, device="cpu")  # 3 -> 2
    assert split.labels == whole.labels == ["conv2:3 #1", "conv2:3 #2", "conv2:7 #1", "conv2:7 #2"]
    assert torch.allclose(split.images, whole.images, atol=1e-5)
    with pytest.raises(DreamlabError, match=r"batch_size \(--batch-size\) 1 is below diversity 2"):
        dreamlab.render(loaded, "conv2:3", diversity=2, steps=1, batch_size=1, device="cpu")
    with pytest.raises(DreamlabError, match="diversity 65 is out of range; valid: 1 to 64 images per unit"):
        dreamlab.render(loaded, "conv2:3", diversity=65, steps=1, device="cpu")
    for bad in ("", "@image"):
        with pytest.raises(DreamlabError, match=r"diversity_layer \(--diversity-layer\) must be the address"):
            dreamlab.render(loaded, "conv2:3", diversity=2, diversity_layer=bad, steps=1, device="cpu")


def test_render_diversity_writes_a_row_per_unit(tmp_path, capsys, monkeypatch):
    out = tmp_path / "g.png"
    assert main(["render", "conv2:3,7", "--model", "lenet-digits", "--diversity", "3", "--steps", "2", "--grid",
                 "-o", str(out)]) == 0
    with Image.open(out) as grid:
        assert grid.size == (3 * 30 + 2, 2 * 30 + 2)  # 28 px tiles, 2 px padding: 3 columns, 2 rows
        assert grid.text["dreamlab:units"] == " | ".join(f"conv2:{u} #{k}" for u in (3, 7) for k in (1, 2, 3))
    assert main(["render", "conv2:3", "--model", "lenet-digits", "--diversity", "2", "--steps", "2",
                 "-o", str(tmp_path / "each")]) == 0
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == ["lenet-digits_conv2_3_div1.png",
                                                                    "lenet-digits_conv2_3_div2.png"]
    monkeypatch.chdir(tmp_path)
    assert main(["render", "logit:3", "--model", "lenet-digits", "--diversity", "2", "--steps", "2", "--grid"]) == 0
    assert (tmp_path / "lenet-digits_logit_3_grid.png").is_file()  # named for the unit, not its copies
    capsys.readouterr()
    assert main(["render", "conv2:3", "--model", "lenet-digits", "--diversity-layer", "conv1"]) == 2
    assert "--diversity-layer applies to several images per unit: add --diversity N" in capsys.readouterr().err


def test_render_refuses_a_billion_copies_before_the_model_loads(tmp_path, capsys, monkeypatch):
    """--diversity 1000000000 was only told after the model loaded and a billion labels were made (minutes)."""
    import dreamlab.models.loading

    def not_loaded(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(dreamlab.models.loading, "load_model", not_loaded)
    assert main(["render", "conv2:3", "--model", "lenet-digits", "--diversity", "1000000000", "--steps", "1",
                 "-o", str(tmp_path / "r.png")]) == 2
    assert capsys.readouterr().err == ("dreamlab: error: diversity 1000000000 is out of range; valid: 1 to 64 "
                                       "images per unit\n")
    assert list(tmp_path.iterdir()) == []
