"""Objectives built from the Python API: what they accept (NumPy and torch numbers, one layer name) and the one
DreamlabError line for what they refuse (defects found by a review on 2026-12-04)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dreamlab
from dreamlab import objectives as o
from dreamlab.errors import DreamlabError
from models_fixtures import SmallNet

pytestmark = pytest.mark.usefixtures("one_thread")


def acts() -> dict[str, torch.Tensor]:
    return {"conv1": torch.ones(2, 4, 3, 3), "conv2": torch.full((2, 6, 3, 3), 2.0)}


def test_reading_an_undeclared_layer_names_it_and_the_declared_ones():
    @o.objective(layers=["conv2"])
    def reads_conv1(acts):
        return acts["conv1"].mean((1, 2, 3))

    with pytest.raises(DreamlabError, match=r"^objective 'reads_conv1' read layer 'conv1', which is not among its "
                                            r"declared layers \('conv2'\); add it to them: "
                                            r"@objective\(layers=\['conv1', 'conv2'\]\)$"):
        dreamlab.render(SmallNet(), reads_conv1, steps=1, size=16, device="cpu")
    # refused even where another term of a sum captures it: the objective reads the same alone or in a sum
    with pytest.raises(DreamlabError, match="not among its declared layers"):
        (reads_conv1 + o.channel("conv1", 0))(acts())


def test_a_custom_objective_sees_its_declared_layers_as_a_mapping():
    seen = []

    @o.objective(layers=["conv2"])
    def looks(acts):
        seen.append((list(acts), len(acts), "conv2" in acts, "conv1" in acts, acts.get("conv1")))
        return acts["conv2"].mean((1, 2, 3))

    assert looks(acts()).tolist() == [2.0, 2.0]
    assert seen == [(["conv2"], 1, True, False, None)]
    with pytest.raises(DreamlabError, match=r"read layer 'conv2', which the activations it was given lack "
                                            r"\(they hold: 'conv1'\)"):
        looks({"conv1": torch.ones(2, 4, 3, 3)})


def test_a_single_layer_name_is_one_layer_not_its_characters():
    obj = o.objective(layers="conv2")(lambda acts: acts["conv2"].mean((1, 2, 3)))
    assert obj.layers == frozenset({"conv2"})
    assert obj(acts()).tolist() == [2.0, 2.0]


@pytest.mark.parametrize("layers, message", [
    ([1], r"layers must be layer names \(non-empty strings\), like @objective\(layers=\['inception4c'\]\); "
          r"got 1 \(int\)"),
    (None, r"layers must be a layer name or a list of them, like @objective\(layers=\['inception4c'\]\); "
           r"got NoneType"),
    (lambda acts: acts, r"@objective needs the layers the function reads: write @objective\(layers=\['conv2'\]\)"),
])
def test_bad_layers_of_a_custom_objective_are_refused(layers, message):
    with pytest.raises(DreamlabError, match=message):
        o.objective(layers=layers)


def test_a_function_passed_in_the_call_is_told_the_decorator_form():
    def edges(acts):
        return acts["conv2"][:, 3].mean((1, 2))

    with pytest.raises(DreamlabError, match=r"^objective\(\.\.\.\) makes a decorator and takes no function: write "
                                            r"@dreamlab\.objective\(layers=\['conv2'\]\) above def edges\(acts\), or "
                                            r"call dreamlab\.objective\(layers=\['conv2'\]\)\(edges\)$"):
        o.objective(edges, layers=["conv2"])
    assert o.objective(layers=["conv2"])(edges).layers == frozenset({"conv2"})  # the form it names works


@pytest.mark.parametrize("number, name", [
    (np.float32(0.5), "conv2:1 + 0.5"),
    (np.int64(3), "conv2:1 + 3"),
    (torch.tensor(2.0), "conv2:1 + 2"),
    (torch.tensor(4), "conv2:1 + 4"),
    (np.array(1.5), "conv2:1 + 1.5"),
])
def test_numpy_and_torch_scalars_are_numbers(number, name):
    assert (o.channel("conv2", 1) + number).name == name


def test_numpy_and_torch_scalars_combine_on_either_side():
    obj = o.channel("conv2", 1)
    assert (obj * torch.tensor(2.0)).name == "conv2:1*2"
    assert (torch.tensor(2.0) * obj).name == "2*conv2:1"
    assert (np.float32(2.0) * obj).name == "2*conv2:1"
    assert (np.array(3.0) - obj).name == "3 - conv2:1"
    assert (obj / np.float32(4)).name == "conv2:1/4"
    assert ((obj * torch.tensor(2.0))(acts())).tolist() == [4.0, 4.0]


@pytest.mark.parametrize("other, message", [
    (float("nan"), r"^objective constant nan is not finite; use a finite number$"),
    (float("inf"), r"^objective constant inf is not finite; use a finite number$"),
    (np.float64("-inf"), r"^objective constant -inf is not finite"),
    (1e39, r"^objective constant 1e\+39 is beyond float32's range \(±3.4e\+38\)"),
    (10 ** 400, r"^objective constant inf is not finite"),
    (torch.ones(2), r"^cannot combine an objective with Tensor tensor\(\[1\., 1\.\]\); combine objectives with "
                    r"numbers \(int, float, a NumPy scalar or a 0-d tensor\) and other objectives$"),
    ("2", r"^cannot combine an objective with str '2'"),
    ("conv2:4", r"^cannot combine an objective with str 'conv2:4'; combine objectives with numbers .* and other "
                r"objectives; a string becomes one with dreamlab\.parse_objective\('conv2:4'\)$"),
    (True, r"^cannot combine an objective with bool"),
    (torch.tensor(1j), r"^cannot combine an objective with Tensor"),
])
def test_non_finite_constants_and_non_numbers_are_refused(other, message):
    obj = o.channel("conv2", 1)
    with pytest.raises(DreamlabError, match=message):
        obj + other
    with pytest.raises(DreamlabError, match=message):
        other * obj


@pytest.mark.parametrize("divisor, message", [
    (0, r"^cannot divide objective 'conv2:1' by zero; divide by a non-zero number$"),
    (np.float32(0), r"^cannot divide objective 'conv2:1' by zero"),
    (torch.tensor(0.0), r"^cannot divide objective 'conv2:1' by zero"),
    (1e-50, r"^cannot divide objective 'conv2:1' by 1e-50, which is zero as a float32 score"),
    (float("nan"), r"^objective constant nan is not finite"),
])
def test_division_by_zero_is_refused_in_every_number_type(divisor, message):
    with pytest.raises(DreamlabError, match=message):
        o.channel("conv2", 1) / divisor


def test_whole_neuron_positions_are_accepted_as_ints():
    assert o.neuron("conv2", 1, x=np.int64(1), y=2.0).name == "conv2:1@1,2"
    assert o.neuron("conv2", 1, x=torch.tensor(0), y=0).labels == ("conv2:1@0,0",)
    assert o.neuron("conv2", 1, x=1, y=2)(acts()).tolist() == [2.0, 2.0]


@pytest.mark.parametrize("x, y, shown", [
    (1.5, 2, "x=1.5"),
    (1, -1, "y=-1"),
    (-1, 1, "x=-1"),
    (float("nan"), 1, "x=nan"),
    ("1", 1, "x='1'"),
    (True, 1, "x=True"),
])
def test_neuron_positions_must_be_whole_numbers_from_zero(x, y, shown):
    with pytest.raises(DreamlabError, match=rf"^neuron position {shown} is not a whole number >= 0; give positions "
                                            rf"of the layer's map, like x=7, y=7 \(or neither x nor y, for the "
                                            rf"centre\)$"):
        o.neuron("conv2", 1, x=x, y=y)


def test_a_string_of_units_is_refused_whole_not_as_its_letters():
    with pytest.raises(DreamlabError, match=r"^units must be an int or a list of ints, got the string 'tabby'; an "
                                            r"objective string reads unit lists and class names"):
        o.logit("tabby")
    with pytest.raises(DreamlabError, match=r"got '01'$"):
        dreamlab.render("lenet-digits", "conv2:0-3", units="01", steps=1)
    with pytest.raises(DreamlabError, match=r"got 1; write units=\[1\]$"):
        dreamlab.render("lenet-digits", "conv2:0-3", units=1, steps=1)


POWER = ("objectives take + - * / (with numbers and other objectives) and unary -, not **; for a power, write a "
         "custom @o.objective(layers=[...]) whose function computes the score")


@pytest.mark.parametrize("apply, said", [
    (lambda obj: obj ** 2, POWER),
    (lambda obj: 2 ** obj, POWER),
    (lambda obj: pow(obj, 2, 3), POWER),
    (lambda obj: obj @ obj, POWER.replace("not **; for a power", "not @; for another operation")),
    (lambda obj: torch.ones(2) @ obj, POWER.replace("not **; for a power", "not @; for another operation")),
    (lambda obj: obj % 2, POWER.replace("not **; for a power", "not %; for another operation")),
    (lambda obj: obj // 2, POWER.replace("not **; for a power", "not //; for another operation")),
    (lambda obj: 1 // obj, POWER.replace("not **; for a power", "not //; for another operation")),
])
def test_an_operator_objectives_do_not_take_says_which_they_do(apply, said):
    """`obj ** 2` was Python's 'unsupported operand type(s)', which names neither what works nor what to do."""
    from dreamlab.errors import ObjectiveOperatorError

    with pytest.raises(ObjectiveOperatorError) as refused:
        apply(o.channel("conv1", 0))
    assert str(refused.value) == said
    assert isinstance(refused.value, TypeError) and isinstance(refused.value, DreamlabError)
