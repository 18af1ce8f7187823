"""lucid's penalties and batch objectives: l1, l2, blur, channel_interpolate, alignment, batched @objective;
channel_weight, neuron_weight, localgroup_weight, direction_neuron, diversity as a term and
penalize_boundary_complexity."""
from __future__ import annotations

import re

import pytest
import torch

import dreamlab
from dreamlab import objectives as o
from dreamlab.errors import DreamlabError
from dreamlab.optvis.diversity import repeat_units, with_diversity
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


# --- lucid's weighted objectives, direction_neuron, diversity as a term, penalize_boundary_complexity ----------

def one_hot(channels: int, k: int) -> torch.Tensor:
    vector = torch.zeros(channels)
    vector[k] = 1.0
    return vector


def test_a_one_hot_weight_is_the_channel_and_a_weight_sums_the_channels():
    act = torch.randn(3, 6, 4, 5, generator=torch.Generator().manual_seed(0))
    acts = {"conv2": act}
    assert torch.allclose(o.channel_weight("conv2", one_hot(6, 4))(acts), o.channel("conv2", 4)(acts), atol=1e-6)
    weight = torch.tensor([0.5, -1.0, 0.0, 2.0, 0.0, 1.5])
    by_hand = (act * weight[:, None, None]).sum(1).mean((1, 2))  # a sum over channels, a mean over positions
    obj = o.channel_weight("conv2", weight)
    assert torch.allclose(obj(acts), by_hand, atol=1e-5)
    assert obj.name == "conv2:weight" and obj.per_position
    batched = o.channel_weight("conv2", torch.stack([one_hot(6, 1), one_hot(6, 5)]))  # sample i: row i
    assert batched.labels == ("conv2:weight[0]", "conv2:weight[1]")
    assert torch.allclose(batched({"conv2": act[:2]}), act[[0, 1], [1, 5]].mean((1, 2)), atol=1e-6)


def test_neuron_weight_and_direction_neuron_at_a_position_are_the_neuron_for_a_one_hot_vector():
    act = torch.randn(2, 6, 5, 7, generator=torch.Generator().manual_seed(1))
    acts = {"conv2": act}
    for x, y in ((None, None), (6, 0), (2, 3)):
        neuron = o.neuron("conv2", 4, x=x, y=y)(acts)
        assert torch.equal(o.neuron_weight("conv2", one_hot(6, 4), x=x, y=y)(acts), neuron)
        assert torch.equal(o.direction_neuron("conv2", one_hot(6, 4), x=x, y=y)(acts), neuron)
    assert torch.equal(o.localgroup_weight("conv2", one_hot(6, 4), x=2, y=3)(acts), o.neuron("conv2", 4, 2, 3)(acts))
    weight = torch.tensor([1.0, 0.0, -2.0, 0.5, 0.0, 3.0])
    assert torch.allclose(o.neuron_weight("conv2", weight, x=2, y=3)(acts), act[:, :, 3, 2] @ weight, atol=1e-5)
    # the centre of a 5x7 map is x=3, y=2; the cosine weighs the one position as direction's does every position
    at = act[:, :, 2, 3]
    cos = (at @ weight) / (at.norm(dim=1) + 1e-4) / (weight.norm() + 1e-4)
    assert torch.allclose(o.direction_neuron("conv2", weight, cossim_power=2)(acts),
                          (at @ weight) * cos.clamp_min(0.1) ** 2, atol=1e-5)


def test_localgroup_weight_averages_the_weighted_sum_over_its_window():
    act = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    weight = torch.tensor([1.0, -0.5, 2.0])
    obj = o.localgroup_weight("conv2", weight, x=1, y=2, wx=3, wy=2)
    by_hand = (act[:, :, 2:4, 1:4] * weight[:, None, None]).sum(1).mean((1, 2))  # rows y 2-3, columns x 1-3
    assert torch.allclose(obj({"conv2": act}), by_hand, atol=1e-5)
    assert obj.name == "conv2:weight@1-3,2-3" and not obj.per_position
    obj.check({"conv2": torch.Size([1, 3, 4, 4])})  # the window's last column is x=3: inside a 4x4 map
    with pytest.raises(DreamlabError, match=r"^window 1-3,2-3 is outside layer 'conv2' \(its map is 3 high x 3 wide at the render size, "
                                            r"or at model_size where it is set: valid x 0-0, y 0-1\)$"):
        obj.check({"conv2": torch.Size([1, 3, 3, 3])})


def test_positioned_weights_and_directions_are_read_where_the_render_size_map_sits():
    """Under the transforms' padding they read the map shifted by the offset, as a neuron does."""
    act = torch.zeros(1, 3, 12, 12)
    act[0, :, 5 + 3, 2 + 2] = torch.tensor([1.0, 2.0, 3.0])  # (x=2, y=5) of a map sitting at (dy=3, dx=2)
    weight = torch.tensor([1.0, 1.0, 1.0])
    for obj, expected in ((o.neuron_weight("l", weight, x=2, y=5), 6.0), (o.direction_neuron("l", weight, 2, 5), 6.0),
                          (o.localgroup_weight("l", weight, x=2, y=5, wx=2), 3.0)):  # the window: x=2 and x=3
        assert obj({"l": act}).tolist() == [0.0]
        assert obj.at_offsets({"l": (3, 2)})({"l": act}).item() == pytest.approx(expected)
    with pytest.raises(DreamlabError, match=r"^position 2,5 of layer 'l' falls outside the map the transforms give "
                                            r"the optimizer \(6 high x 6 wide, with the render-size map at offset 2,3 in it\)"):
        o.neuron_weight("l", weight, x=2, y=5).at_offsets({"l": (3, 2)}).check({"l": torch.Size([1, 3, 6, 6])})


@pytest.mark.parametrize("build, message", [
    (lambda: o.channel_weight("conv2", torch.zeros(4)), "^the weight is all zeros"),
    (lambda: o.channel_weight("conv2", None), "^a weight is a vector of numbers"),
    (lambda: o.channel_weight("conv2", torch.ones(2, 3, 4)), r"^a weight is a vector \[C\] or a matrix \[N, C\]"),
    (lambda: o.neuron_weight("conv2", torch.ones(4), x=1), r"^neuron_weight\('conv2', \.\.\.\) needs both x and y"),
    (lambda: o.direction_neuron("conv2", torch.ones(4), x=1, y=-1), "^direction_neuron position y=-1 is not a whole"),
    (lambda: o.direction_neuron("conv2", torch.ones(4), cossim_power=-1), "^cossim_power must be a number"),
    (lambda: o.localgroup_weight("conv2", torch.ones(4), x=None, y=0), "^localgroup_weight position x=None is not"),
    (lambda: o.localgroup_weight("conv2", torch.ones(4), 0, 0, wx=0), "^localgroup_weight's wx=0 is not a whole "
                                                                      "number >= 1; give the window's width"),
    (lambda: o.diversity(""), "^a layer is named by its address"),
    (lambda: o.penalize_boundary_complexity(0), "^penalize_boundary_complexity's width=0 is not a whole number"),
    (lambda: o.penalize_boundary_complexity(4, constant=float("inf")), "constant must be a finite number"),
])
def test_bad_arguments_to_lucids_other_objectives_are_one_line(build, message):
    with pytest.raises(DreamlabError, match=message) as info:
        build()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("obj, message", [
    (o.channel_weight("conv2", torch.ones(20)), "the weight has 20 values but layer 'conv2' has 50 channels"),
    (o.neuron_weight("conv2", torch.ones(20), 1, 1), "the weight has 20 values but layer 'conv2' has 50 channels"),
    (o.direction_neuron("conv2", torch.ones(50), 1, 30), r"position 1,30 is outside layer 'conv2'"),
    (o.neuron_weight("fc1", torch.ones(500)), r"layer 'fc1' has output shape \[1, 500\]: neuron_weight needs a "
                                              r"spatial map; use o.channel_weight"),
])
def test_weights_and_positions_are_checked_against_the_layer_before_the_render(obj, message):
    with pytest.raises(DreamlabError, match=message):
        dreamlab.render("lenet-digits", obj, steps=1, device="cpu")


def test_diversity_is_the_summed_gram_cosine_to_the_other_images_of_a_unit():
    act = torch.rand(4, 5, 3, 3, generator=torch.Generator().manual_seed(3))
    same = act[:1].expand(4, -1, -1, -1)
    div = o.diversity("conv2")
    assert div.name == "diversity(conv2)"
    # identical images of one unit: each is alike (cosine 1) to the 3 others, the most it can be
    assert torch.allclose(div({"conv2": same}, torch.zeros(4, dtype=torch.long)), torch.full((4,), 3.0))
    assert (div({"conv2": act}, torch.zeros(4, dtype=torch.long)) < 3.0).all()
    # images of different units are not compared: two units of two images each (diversity=2)
    assert torch.allclose(div({"conv2": same}, torch.tensor([0, 0, 1, 1])), torch.ones(4))
    assert torch.equal(div({"conv2": same}), torch.zeros(4))  # one image per unit: nothing to compare
    # images whose activations share no channel have orthogonal Gram matrices
    apart = torch.zeros(2, 2, 1, 1)
    apart[0, 0], apart[1, 1] = 1.0, 1.0
    assert torch.equal(div({"conv2": apart}, torch.zeros(2, dtype=torch.long)), torch.zeros(2))


def test_a_render_with_the_diversity_term_and_one_image_per_unit_is_refused():
    obj = o.channel("conv2", 3) - 1e2 * o.diversity("conv2")
    with pytest.raises(DreamlabError, match=r"^'conv2:3 - 100\*diversity\(conv2\)' holds o.diversity, which compares "
                                            r"each image with the other images of its unit.*add diversity=N \(N >= 2\) "
                                            r"with diversity_weight=0"):
        dreamlab.render("lenet-digits", obj, steps=1, device="cpu")
    assert dreamlab.render("lenet-digits", obj, steps=1, device="cpu", diversity=2,
                           diversity_weight=0).images.shape == (2, 1, 28, 28)


@pytest.mark.parametrize("obj, options, alone", [
    (o.channel("conv2", 3) + 0.1 * o.alignment("conv2"), {}, "one unit is rendered"),
    (o.channel("conv2", 3) + 0.1 * o.alignment("conv2"), {"diversity": 2}, "one unit is rendered"),  # copies: one unit
    (o.channel_interpolate("conv2", 0, "conv2", 5, steps=4) + 0.1 * o.alignment("conv2"), {"batch_size": 1},
     "no batch holds two units 1 to 4 places apart"),
    # the term found inside a product, a negation and a quotient, not by its name
    (o.channel("conv2", 3) * (1 - o.alignment("conv2", 3) / 4), {}, "one unit is rendered"),
    (-(-o.alignment("conv2")) + o.neuron("conv2", 3, x=2, y=2), {}, "one unit is rendered"),
])
def test_a_render_with_the_alignment_term_and_nothing_to_align_is_refused(obj, options, alone):
    with pytest.raises(DreamlabError, match=rf"^{re.escape(repr(obj.name))} holds o.alignment, which compares each "
                                            rf"image with those of the units 1 to 4 places from its own in the same "
                                            rf"batch, and {alone} here, so it would be 0; render neighbouring units "
                                            rf"together .* and leave batch_size unset$"):
        dreamlab.render("lenet-digits", obj, steps=1, device="cpu", **options)
    # two units 3 places apart in one batch are compared
    assert dreamlab.render("lenet-digits", o.channel_interpolate("conv2", 0, "conv2", 5, steps=4) + o.alignment(
        "conv2"), steps=1, device="cpu", units=[0, 3]).images.shape == (2, 1, 28, 28)


@pytest.mark.parametrize("units, split", [
    ([0, 1, 2, 3], ", or give batch_size=2 (neighbours in different batches are then not compared)"),
    ([0, 1], ""),  # halved to one unit per batch, nothing would be compared: no batch_size to offer
])
def test_out_of_memory_does_not_halve_a_batch_that_alignment_compares(monkeypatch, units, split):
    from dreamlab.optvis import engine

    sizes = []

    def out_of_memory(self, batch, bar):
        sizes.append(len(batch))
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine._Renderer, "run_batch", out_of_memory)
    obj = o.channel_interpolate("conv2", 0, "conv2", 5, steps=4) - o.alignment("conv2") * 0.5
    with pytest.raises(DreamlabError, match=rf"^out of memory optimizing {len(units)} images at once, and "
                                            rf"{re.escape(repr(obj.name))} holds o.alignment, which compares only the "
                                            rf"units of one batch, so the batch is not halved; free memory on the "
                                            rf"device or render a smaller size{re.escape(split)}$"):
        dreamlab.render("lenet-digits", obj, steps=1, device="cpu", units=units)
    assert sizes == [len(units)]  # no smaller batch was tried
    sizes.clear()
    with pytest.raises(torch.OutOfMemoryError):  # without the term the batch is halved down to one unit
        dreamlab.render("lenet-digits", o.channel_interpolate("conv2", 0, "conv2", 5, steps=4), steps=1,
                        device="cpu", units=units)
    assert sizes[:2] == [len(units), len(units) // 2] and sizes[-1] == 1


def _aligned(couples: object = ()) -> o.Objective:
    """A custom objective of 4 images that calls o.alignment inside, declaring it with `couples` (or not)."""
    align = o.alignment("conv2")

    @o.objective(layers=["conv2"], name="aligned", units=4, couples=couples)
    def aligned(acts, index):
        return acts["conv2"][:, 0].mean((1, 2)) + align(acts, index)

    return aligned


def test_a_custom_objective_declares_that_it_calls_alignment_and_render_checks_it(monkeypatch):
    declared, undeclared = _aligned("alignment"), _aligned()
    assert (declared.couples, undeclared.couples, _aligned(["alignment", "diversity"]).couples) == \
        ({"alignment"}, set(), {"alignment", "diversity"})
    with pytest.raises(DreamlabError, match=r"^'aligned\[0-3\]' holds o.alignment, .* no batch holds two units 1 to 4 "
                                            r"places apart here"):
        dreamlab.render("lenet-digits", declared, steps=1, device="cpu", batch_size=1)
    assert dreamlab.render("lenet-digits", undeclared, steps=1, device="cpu", batch_size=1).images.shape[0] == 4
    assert dreamlab.render("lenet-digits", declared, steps=1, device="cpu").images.shape[0] == 4  # one batch
    from dreamlab.optvis import engine

    sizes = []

    def out_of_memory(self, batch, bar):
        sizes.append(len(batch))
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine._Renderer, "run_batch", out_of_memory)
    with pytest.raises(DreamlabError, match=r"^out of memory optimizing 4 images at once, and 'aligned\[0-3\]' holds "
                                            r"o.alignment"):
        dreamlab.render("lenet-digits", declared, steps=1, device="cpu")
    assert sizes == [4]  # not halved


@pytest.mark.parametrize("couples, message", [
    ("alinment", "unknown @objective(couples=...) value 'alinment'; close matches: alignment; valid: alignment, "
                 "diversity; leave couples out for a function that scores each sample alone"),
    (3, "@objective(couples=...) takes 'alignment' or 'diversity' or a list of them, got int"),
])
def test_an_objective_declaring_an_unknown_coupling_is_refused(couples, message):
    with pytest.raises(DreamlabError, match=f"^{re.escape(message)}$"):
        _aligned(couples)


def _named(name: str) -> o.Objective:
    @o.objective(layers=["conv2"], name=name)
    def mean(acts):
        return acts["conv2"].mean((1, 2, 3))

    return mean


@pytest.mark.parametrize("obj, couples", [
    (o.channel("conv2", 3) + 0.1 * o.alignment("conv2"), {"alignment"}),
    (sum([o.channel("conv2", 3), -o.alignment("conv2"), o.l1()]), {"alignment"}),
    (2 * (o.channel("conv2", 3) * o.alignment("conv2") / 3), {"alignment"}),
    (o.channel("conv2", 3) - 1e2 * o.diversity("conv2"), {"diversity"}),
    (o.alignment("conv2") + o.diversity("conv2"), {"alignment", "diversity"}),
    (repeat_units(o.channel("conv2", [3, 4]) + o.alignment("conv2"), 2), {"alignment"}),
    (with_diversity(repeat_units(o.channel("conv2", 3) - o.diversity("conv2"), 2), 2, "conv2", 1.0), {"diversity"}),
    # the engine scores the steps with the objective read at the padded maps' offsets
    ((o.neuron("conv2", 3, x=2, y=2) + o.alignment("conv2")).at_offsets({"conv2": (1, 1)}), {"alignment"}),
    (repeat_units(o.neuron("conv2", 3) - o.diversity("conv2"), 2).at_offsets({"conv2": (1, 1)}), {"diversity"}),
    (o.channel_interpolate("conv2", 0, "conv2", 5, steps=3), set()),
    (_named("alignment(conv2)") + _named("diversity(conv2)"), set()),
], ids=lambda x: x.name if isinstance(x, o.Objective) else None)
def test_what_couples_a_batch_is_carried_by_the_terms_not_read_from_the_name(obj, couples):
    assert obj.couples == couples


@pytest.mark.parametrize("name", ["alignment(conv2)", "my_alignment(x)", "diversity(conv2)"])
def test_a_custom_objective_named_like_a_batch_term_renders_one_unit(name):
    result = dreamlab.render("lenet-digits", _named(name), steps=1, device="cpu")
    assert result.images.shape == (1, 1, 28, 28) and result.labels == [name]


def test_penalize_boundary_complexity_reads_only_the_border():
    grey = torch.full((2, 3, 16, 16), 0.5)
    pbc = o.penalize_boundary_complexity(3)
    assert pbc.name == "penalize_boundary_complexity(3)" and pbc.layers == frozenset({IMAGE})
    assert torch.allclose(pbc({IMAGE: grey}), torch.zeros(2))
    busy_centre = grey.clone()
    busy_centre[:, :, 5:11, 5:11] = torch.rand(2, 3, 6, 6)  # more than 2 px (the blur's reach) from the border
    assert torch.allclose(pbc({IMAGE: busy_centre}), torch.zeros(2))
    # a flat border away from the constant costs 0.8 * its squared distance, per pixel
    assert torch.allclose(pbc({IMAGE: torch.full((1, 3, 16, 16), 0.9)}), torch.tensor([-0.8 * 0.16]))
    assert torch.allclose(o.penalize_boundary_complexity(3, constant=0.9)({IMAGE: torch.full((1, 3, 16, 16), 0.9)}),
                          torch.zeros(1), atol=1e-6)
    noisy_border = busy_centre.clone()
    noisy_border[:, :, 0] = torch.rand(2, 3, 16)
    assert (pbc({IMAGE: noisy_border}) < -1e-3).all()
    # a border of half the image or more is the whole image
    assert torch.allclose(o.penalize_boundary_complexity(8)({IMAGE: torch.full((1, 3, 16, 16), 0.9)}),
                          torch.tensor([-0.8 * 0.16]))


W = one_hot(50, 3) + 0.5 * one_hot(50, 7)


@pytest.mark.parametrize("obj", [
    o.channel_weight("conv2", W),
    o.neuron_weight("conv2", W, x=3, y=4),
    o.localgroup_weight("conv2", W, x=2, y=2, wx=3, wy=3),
    o.direction_neuron("conv2", torch.randn(50, generator=torch.Generator().manual_seed(0)), cossim_power=1),
], ids=lambda obj: obj.name)
def test_a_weighted_or_positioned_render_raises_its_score(obj):
    result = dreamlab.render("lenet-digits", obj, steps=16, device="cpu")
    assert (result.history[-1] > result.history[0]).all()
    assert result.provenance["dreamlab:objective"] == obj.name


def test_a_one_hot_weight_renders_as_its_channel():
    by_weight = dreamlab.render("lenet-digits", o.channel_weight("conv2", one_hot(50, 3)), steps=8, device="cpu")
    assert torch.equal(by_weight.images, dreamlab.render("lenet-digits", "conv2:3", steps=8, device="cpu").images)


def test_lucids_diversity_term_with_lucids_weight_parts_a_units_images():
    """lucid's `channel - 1e2 * diversity` over a unit's images (diversity=4 with the built-in penalty off)."""
    def spread(images: torch.Tensor) -> float:
        return float((images - images.mean(0)).abs().mean())

    plain = dreamlab.render("lenet-digits", "conv2:3", steps=32, device="cpu", diversity=4, diversity_weight=0)
    obj = o.channel("conv2", 3) - 1e2 * o.diversity("conv2")
    parted = dreamlab.render("lenet-digits", obj, steps=32, device="cpu", diversity=4, diversity_weight=0)
    assert (parted.history[-1] > parted.history[0]).all()
    assert spread(parted.images) > 3 * spread(plain.images)


def test_a_boundary_wider_than_half_the_render_is_refused_before_any_step():
    seen: list[int] = []
    obj = o.channel("conv2", 3) + o.penalize_boundary_complexity(15)
    with pytest.raises(DreamlabError, match=r"^penalize_boundary_complexity's width 15 does not fit the 28x28 image: "
                                            r"its border takes 15 px on each side, 30 of 28; give a width of 1 to 14 "
                                            r"\(14: the whole image\), or render a larger size$"):
        dreamlab.render("lenet-digits", obj, steps=2, device="cpu", thresholds=[1],
                        on_snapshot=lambda step, images, labels: seen.append(step))
    assert seen == []  # no step ran
    # half the side is the whole image, as the objective says; a larger render takes the wider border
    assert dreamlab.render("lenet-digits", o.channel("conv2", 3) + o.penalize_boundary_complexity(14), steps=1,
                           device="cpu").images.shape == (1, 1, 28, 28)
    assert dreamlab.render("lenet-digits", obj, steps=1, device="cpu", size=32,
                           model_size=28).images.shape == (1, 1, 32, 32)


def test_penalize_boundary_complexity_plainens_a_renders_border():
    pbc = o.penalize_boundary_complexity(6)
    plain = dreamlab.render("lenet-digits", "conv2:3", steps=32, device="cpu")
    kept = dreamlab.render("lenet-digits", o.channel("conv2", 3) + 10 * pbc, steps=32, device="cpu")
    assert (kept.history[-1] > kept.history[0]).all()
    assert (pbc({IMAGE: kept.images}) > 0.7 * pbc({IMAGE: plain.images})).all()  # less negative: plainer
