"""The objective string grammar: what parses to what, and errors that point at the offending position."""
from __future__ import annotations

import re

import pytest
import torch

from dreamlab.errors import DreamlabError, ObjectiveSyntaxError, UnknownNameError
from dreamlab.optvis.grammar import check_syntax, parse_objective


@pytest.mark.parametrize("text, name, layers, batch", [
    ("inception4c:97", "inception4c:97", {"inception4c"}, 1),
    ("inception4c:97@7,7", "inception4c:97@7,7", {"inception4c"}, 1),
    ("inception4c:97@centre", "inception4c:97@centre", {"inception4c"}, 1),
    ("inception4c", "inception4c", {"inception4c"}, 1),
    ("logit:281", "logit:281", {"logit"}, 1),
    ("inception4c:0-63", "inception4c:0-63", {"inception4c"}, 64),
    ("inception4c:97 - 0.5*inception4d:12", "inception4c:97 - 0.5*inception4d:12", {"inception4c", "inception4d"}, 1),
    ("2*logit:1 + inception4a:3", "2*logit:1 + inception4a:3", {"logit", "inception4a"}, 1),
    ("-(a:1 - b:2) / 2", "-(a:1 - b:2)/2", {"a", "b"}, 1),
    ("layer1.0.conv1:5", "layer1.0.conv1:5", {"layer1.0.conv1"}, 1),
    ("features.28:3-4 + 1e-2*features.28", "features.28:3-4 + 0.01*features.28", {"features.28"}, 2),
    ("conv2:14,2,20-23", "conv2:14,2,20-23", {"conv2"}, 6),
    ("logit:1,3", "logit:1,3", {"logit"}, 2),
    ("conv2:2,14@3,4 - conv2:5", "conv2:2,14@3,4 - conv2:5", {"conv2"}, 2),
])
def test_parses(text, name, layers, batch):
    obj = parse_objective(text)
    assert obj.name == name
    assert obj.layers == frozenset(layers)
    assert obj.batch_size == batch


def test_range_labels_one_unit_per_sample():
    assert parse_objective("conv2:3-5").labels == ("conv2:3", "conv2:4", "conv2:5")
    assert parse_objective("conv2:3-5 - 0.5*conv1:0").labels[1] == "conv2:4 - 0.5*conv1:0"


def test_unit_lists_keep_the_written_order_and_round_trip_through_names():
    from dreamlab.optvis import objectives

    assert parse_objective("conv2:14,2,5-6").labels == ("conv2:14", "conv2:2", "conv2:5", "conv2:6")
    written = objectives.channel("conv2", [7, 1, 2, 3])  # the API names it conv2:7,1-3
    assert parse_objective(written.name).labels == written.labels


def test_unit_list_errors_say_what_to_write():
    with pytest.raises(ObjectiveSyntaxError, match="unit 2 is listed twice"):
        parse_objective("conv2:1-3,2")
    with pytest.raises(ObjectiveSyntaxError, match=r"a unit list is written without spaces: 2,14"):
        parse_objective("conv2:2, 14")
    for centre in ("centre", "center"):  # not a unit list: the neuron's position is already given
        with pytest.raises(ObjectiveSyntaxError, match=r"unexpected ',' \(@centre is a whole position: write "
                                                       r"@centre alone, or @x,y for another one\) at position 15"):
            parse_objective(f"conv2:1@{centre},3")


def test_arithmetic_evaluates_like_the_expression():
    acts = {"a": torch.arange(8.0).view(2, 4, 1, 1), "b": torch.ones(2, 4, 1, 1) * 10}
    assert torch.allclose(parse_objective("a:1 - 0.5*b:2")(acts), torch.tensor([1 - 5.0, 5 - 5.0]))
    assert torch.allclose(parse_objective("(a:3 + 1) / 2")(acts), torch.tensor([2.0, 4.0]))
    assert torch.allclose(parse_objective("a:0-1")(acts), torch.tensor([0.0, 5.0]))  # sample i reads channel i


def test_class_names_resolve_with_categories():
    categories = ["tench", "goldfish", "tabby", "tiger cat"]
    assert parse_objective("logit:tabby", categories).name == "logit:2"
    assert parse_objective("logit:Tabby", categories).name == "logit:2"
    assert parse_objective("logit:tiger_cat", categories).name == "logit:3"
    assert parse_objective("logit:'tiger cat'", categories).name == "logit:3"
    with pytest.raises(UnknownNameError, match="unknown class 'tabbi'; close matches: tabby"):
        parse_objective("logit:tabbi", categories)


def test_a_class_list_mixes_names_and_indices():
    categories = ["tench", "goldfish", "tabby", "tiger cat"]
    assert parse_objective("logit:tabby,0", categories).labels == ("logit:2", "logit:0")
    assert parse_objective("logit:goldfish,'tiger cat',tench", categories).labels == ("logit:1", "logit:3", "logit:0")
    assert parse_objective("logit:0-1,tiger_cat", categories).labels == ("logit:0", "logit:1", "logit:3")
    with pytest.raises(ObjectiveSyntaxError, match=r"class 2 \(Tabby\) is listed twice; for several images of one "
                                                   r"class use --diversity N"):
        parse_objective("logit:2,Tabby", categories)
    check_syntax("logit:tabby,goldfish")  # before the model loads, any names pass
    with pytest.raises(ObjectiveSyntaxError, match=r"unexpected ','"):
        parse_objective("logit:tabby,", categories)


@pytest.mark.parametrize("text, position, marked", [
    ("inception4c::97", 13, "inception4c:>>:97"),
    ("inception4c:9x7", 13, "inception4c:>>9x7"),
    ("a:1 +", 6, "a:1 +>>"),
    ("a:1 $ b:2", 5, "a:1 >>$ b:2"),
    ("(a:1", 5, "(a:1>>"),
    ("a:5-2", 5, "a:5->>2"),
    ("a:1@3", 6, "a:1@3>>"),
    ("a:1,1", 5, "a:1,>>1"),  # "unit 1 is listed twice"
    ("a:1, 2", 4, "a:1>>, 2"),  # "a unit list is written without spaces"
])
def test_syntax_errors_point_at_the_position(text, position, marked):
    with pytest.raises(ObjectiveSyntaxError) as info:
        parse_objective(text)
    message = str(info.value)
    assert f"at position {position} ({marked})" in message
    assert "valid forms:" in message and "\n" not in message


def test_class_name_without_categories_is_an_error():
    with pytest.raises(ObjectiveSyntaxError, match="has no class names; use an index"):
        parse_objective("logit:tabby")


@pytest.mark.parametrize("text, layers", [
    ("0.2:3", {"0.2"}),  # a bare nn.Sequential of Sequentials
    ("0.2:3-4 - 0.5*1.conv:2", {"0.2", "1.conv"}),
    ("1:0@centre", {"1"}),
    ("0.5*a:1 + 2", {"a"}),  # numbers stay numbers where no ':' follows
])
def test_layer_names_may_start_with_digits(text, layers):
    assert parse_objective(text).layers == frozenset(layers)


def test_a_sequential_unit_renders_from_its_string():
    from torch import nn

    from dreamlab.optvis.capture import capture

    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 5, 1)))
    obj = parse_objective("0.2:3")
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with capture(model, obj.layers) as cap:
        score = obj(cap.run(x))
    torch.testing.assert_close(score, model(x)[:, 3].mean((1, 2)))


@pytest.mark.parametrize("text", [None, 97, b"inception4c:97", ["inception4c:97"]])
def test_only_strings_parse(text):
    with pytest.raises(DreamlabError, match=r"^an objective string is needed, such as 'inception4c:97' or "
                                            rf"'logit:3'; got {type(text).__name__}$"):
        parse_objective(text)
    with pytest.raises(DreamlabError, match="an objective string is needed"):
        check_syntax(text)


def test_an_objective_is_not_parsed_again():
    with pytest.raises(DreamlabError, match="got Objective; an Objective needs no parsing: pass it as it is"):
        parse_objective(parse_objective("a:1"))


@pytest.mark.parametrize("text, position, message", [
    ("conv2:1 * 1e400", 11, "number 1e400 is too large: objective numbers are float32, at most ±3.4e+38"),
    ("conv2:1 + 1" + "0" * 400, 11, "is too large"),
    ("conv2:1 + 4e38", 11, "number 4e38 is too large"),
    ("1e30*1e30*conv2:1", 6, "this arithmetic of numbers gives a number that is too large"),
    ("conv2:1 + (3e38 + 3e38)", 17, "this arithmetic of numbers gives a number that is too large"),
])
def test_numbers_beyond_float32_are_refused_where_written(text, position, message):
    with pytest.raises(ObjectiveSyntaxError, match=re.escape(message)) as info:
        parse_objective(text)
    assert f"at position {position} (" in str(info.value)


def test_numbers_within_float32_still_parse():
    assert parse_objective("conv2:1 * 3e38 + 1e-30").name == "conv2:1*3e+38 + 1e-30"


def test_a_long_sum_is_scored_in_a_loop_and_deep_nesting_is_one_line():
    """sum() over 500 channels nested 500 calls deep and hit Python's recursion limit; a chain of one precedence is
    now folded in a loop. Parentheses nested 1000 deep are refused in one line."""
    from dreamlab import objectives as o

    acts = {"a": torch.rand(2, 50, 3, 3)}
    total = sum(o.channel("a", i % 50) for i in range(2000))
    assert len(total.chain) == 2000
    assert torch.allclose(total(acts), acts["a"].mean((2, 3)).sum(1) * 40, rtol=1e-4)
    text = " - ".join(f"a:{i % 50}" for i in range(1500))
    parsed = parse_objective(text)
    expected = acts["a"].mean((2, 3))[:, 0] - sum(acts["a"].mean((2, 3))[:, i % 50] for i in range(1, 1500))
    assert torch.allclose(parsed(acts), expected, rtol=1e-4, atol=1e-3)
    assert torch.allclose(parse_objective("2 - a:1 - a:2")(acts), 2 - acts["a"].mean((2, 3))[:, 1:3].sum(1))
    assert torch.allclose(parse_objective("a:1/a:2*a:3")(acts),
                          acts["a"].mean((2, 3))[:, 1] / acts["a"].mean((2, 3))[:, 2] * acts["a"].mean((2, 3))[:, 3])
    with pytest.raises(ObjectiveSyntaxError, match=r"nests parentheses or signs too deeply for the parser"):
        check_syntax("(" * 1000 + "a:1" + ")" * 1000)


def test_a_bare_class_number_names_the_logit_it_means():
    """`dreamlab cam MODEL --target 4`: the class index alone is no objective; the error says how to write it."""
    with pytest.raises(ObjectiveSyntaxError) as refused:
        parse_objective("4")
    assert str(refused.value).startswith("bad objective '4': an objective needs at least one layer or logit, not "
                                         "just numbers (class 4 is logit:4) at position 1 (>>4); valid forms: ")
    with pytest.raises(ObjectiveSyntaxError) as refused:
        parse_objective("2 * 3")  # arithmetic of numbers: no class to name
    assert "not just numbers at position 1" in str(refused.value)


def test_a_bare_number_that_names_a_layer_says_how_to_reach_it():
    """dream(nn.Sequential(...), photo, "2"): a child of a bare Sequential reads as a number without ':'."""
    with pytest.raises(ObjectiveSyntaxError) as refused:
        parse_objective("2", layers=["0", "1", "2"])
    assert ("not just numbers (a layer named 2 reads as a number without ':': its channels are 2:0-N; from Python, "
            "dreamlab.objectives.deepdream('2') is the whole layer) at position 1") in str(refused.value)
