"""lucid's penalties and batch objectives: l1, l2, blur, channel_interpolate, alignment, batched @objective."""
from __future__ import annotations

import pytest
import torch

import dreamlab
from dreamlab import objectives as o
from dreamlab.errors import DreamlabError
from dreamlab.optvis.objectives import IMAGE

pytestmark = pytest.mark.usefixtures("one_thread")


def test_l1_and_l2_measure_the_distance_from_their_constant():
    image = torch.full((2, 3, 4, 4), 0.7)
    image[1] = 0.1
    assert torch.allclose(o.l1(constant=0.5)({IMAGE: image}), torch.tensor([-0.2, -0.4]))
    assert torch.allclose(o.l2()({IMAGE: image}), -torch.sqrt(torch.tensor([0.49, 0.01]) + 1e-6))
    acts = {"conv2": torch.tensor([[[[3.0]], [[-4.0]]]])}  # one sample, two channels
    assert torch.allclose(o.l1("conv2")(acts), torch.tensor([-3.5]))
    assert torch.allclose(o.l2("conv2")(acts), -torch.sqrt(torch.tensor([12.5 + 1e-6])))


def test_penalties_are_named_as_written():
    assert (o.channel("conv2", 3) + 0.05 * o.l1(constant=0.5)).name == "conv2:3 + 0.05*l1(0.5)"
    assert o.l2("conv2").name == "l2(conv2)"
    assert o.l1().layers == frozenset({IMAGE})
    assert o.alignment("conv2", decay_ratio=3).name == "alignment(conv2, 3)"


@pytest.mark.parametrize("build, message", [
    (lambda: o.l1(constant=float("nan")), "l1's constant must be a finite number, got nan"),
    (lambda: o.l2(constant="grey"), "l2's constant must be a finite number, got 'grey'"),
    (lambda: o.l1(layer=""), "a layer is named by its address"),
    (lambda: o.alignment("conv2", decay_ratio=0), "alignment's decay_ratio must be a finite number above 0"),
    (lambda: o.channel_interpolate("conv2", 0, "conv2", 1, steps=1), "steps must be a whole number from 2"),
    (lambda: o.channel_interpolate("conv2", 0, "conv2", 1, steps=2.5), "steps must be a whole number from 2"),
    (lambda: o.channel_interpolate("conv2", [0, 1], "conv2", 1), "give one unit each, got conv2:0-1 and conv2:1"),
    (lambda: o.objective(layers="conv2", units=0)(lambda acts: acts["conv2"].mean()), r"units=N\)"),
    (lambda: o.objective(layers="conv2", units=True)(lambda acts: acts["conv2"].mean()), "got True"),
])
def test_bad_arguments_are_one_line(build, message):
    with pytest.raises(DreamlabError, match=message):
        build()


def test_blur_is_zero_on_a_flat_image_and_its_gradient_points_to_the_blurred_copy():
    blur = o.blur()
    assert torch.allclose(blur({IMAGE: torch.full((1, 3, 8, 8), 0.3)}), torch.zeros(1), atol=1e-12)
    checker = ((torch.arange(8)[:, None] + torch.arange(8)) % 2).float().expand(1, 3, 8, 8).clone()
    checker.requires_grad_(True)
    score = blur({IMAGE: checker})
    assert score.item() < -0.01
    score.sum().backward()
    # the blurred copy is held fixed: the gradient is -(image - blurred) / pixels, so ascent moves each pixel
    # towards its neighbours' mean (white squares darker, black ones lighter)
    inside = checker.grad[0, 0, 1:-1, 1:-1]
    white = checker.detach()[0, 0, 1:-1, 1:-1] == 1
    assert (inside[white] < 0).all() and (inside[~white] > 0).all()


def test_channel_interpolate_weighs_each_image_by_its_place():
    obj = o.channel_interpolate("conv2", 0, "conv2", 5, steps=3)
    assert obj.labels == ("1*conv2:0 + 0*conv2:5", "0.5*conv2:0 + 0.5*conv2:5", "0*conv2:0 + 1*conv2:5")
    assert obj.batch_size == 3 and obj.per_position
    act = torch.zeros(3, 6, 2, 2)
    act[:, 0], act[:, 5] = 2.0, 10.0
    assert torch.allclose(obj({"conv2": act}), torch.tensor([2.0, 6.0, 10.0]))
    # a batch holding images 2 and 0 only (units=[2, 0]): each keeps its own weight
    assert torch.allclose(obj({"conv2": act[:2]}, torch.tensor([2, 0])), torch.tensor([10.0, 2.0]))
    with pytest.raises(DreamlabError, match="conv2"):
        obj.check({"conv2": torch.Size([1, 4, 2, 2])})  # channel 5 is not there


def test_alignment_penalizes_neighbours_by_distance_and_ignores_far_ones():
    align = o.alignment("conv2", decay_ratio=2)
    same = torch.ones(4, 2, 3, 3)
    assert torch.equal(align({"conv2": same}), torch.zeros(4))
    act = torch.zeros(6, 1, 1, 1)
    act[0] = 1.0  # image 0 differs from each of images 1-5 by 1
    score = align({"conv2": act})
    # pairs (0, d) for d = 1..4 cost 1/2^d, split between the two images; image 5 is 5 places away: no pair
    expected = -torch.tensor([1 / 2 + 1 / 4 + 1 / 8 + 1 / 16, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 0.0]) / 2
    assert torch.allclose(score, expected)
    # neighbours are decided by the unit index, not by the order in the batch
    shuffled = align({"conv2": act.flip(0)}, torch.arange(6).flip(0))
    assert torch.allclose(shuffled, expected.flip(0))


def test_alignment_makes_rendered_neighbours_alike():
    interpolate = o.channel_interpolate("conv2", 0, "conv2", 5, steps=5)
    plain = dreamlab.render("lenet-digits", interpolate, device="cpu", steps=64)
    aligned = dreamlab.render("lenet-digits", interpolate + o.alignment("conv2"), device="cpu", steps=64)

    def neighbour_gap(images: torch.Tensor) -> float:
        return float((images[1:] - images[:-1]).abs().mean())

    assert plain.images.shape == aligned.images.shape == (5, 1, 28, 28)
    assert neighbour_gap(aligned.images) < 0.8 * neighbour_gap(plain.images)
    assert aligned.provenance["dreamlab:objective"] == "channel_interpolate(conv2:0, conv2:5, 5) + alignment(conv2)"


def test_l1_towards_grey_keeps_a_render_nearer_grey():
    plain = dreamlab.render("lenet-digits", "conv2:3", device="cpu", steps=48)
    pulled = dreamlab.render("lenet-digits", o.channel("conv2", 3) + 10 * o.l1(constant=0.5), device="cpu",
                             steps=48)
    assert (pulled.images - 0.5).abs().mean() < 0.7 * (plain.images - 0.5).abs().mean()


def test_a_batched_custom_objective_renders_one_image_per_index():
    @o.objective(layers=["conv2"], units=4)
    def diagonal(acts, index):
        return acts["conv2"][torch.arange(len(index)), index].mean((1, 2))

    assert diagonal.labels == ("diagonal[0]", "diagonal[1]", "diagonal[2]", "diagonal[3]")
    assert diagonal.name == "diagonal[0-3]" and diagonal.batch_size == 4
    result = dreamlab.render("lenet-digits", diagonal, device="cpu", steps=16)
    assert result.images.shape == (4, 1, 28, 28)
    # each image drove its own channel: the same as rendering that channel
    by_channel = dreamlab.render("lenet-digits", "conv2:0-3", device="cpu", steps=16)
    assert torch.allclose(result.images, by_channel.images, atol=1e-5)
    assert [result.unit_text(i)["dreamlab:unit"] for i in range(4)] == list(diagonal.labels)


def test_habits_from_lucent_read_naturally():
    assert sum([o.channel("conv2", 1), o.channel("conv2", 2)]).name == "conv2:1 + conv2:2"  # no '0 + '

    @o.objective(layers=["conv2"])
    def lucent_style(T):
        return T("conv2")[:, 0].mean((1, 2))

    with pytest.raises(DreamlabError, match=r"objective 'lucent_style' called acts\('conv2'\) as lucent's T\(...\) "
                                            r"is called; index it instead: acts\['conv2'\]"):
        lucent_style({"conv2": torch.zeros(1, 2, 3, 3)})
    with pytest.raises(DreamlabError, match=r"unit 97 is listed twice; for several images of one unit use "
                                            r"--diversity N \(diversity=N; with --diversity-weight 0"):
        dreamlab.parse_objective("inception4c:97,97")
