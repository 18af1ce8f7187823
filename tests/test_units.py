"""One parser and one formatter of unit lists (dreamlab/optvis/units.py), shared by the grammar, objective
names and the gallery."""
from __future__ import annotations

import pytest

from dreamlab import objectives as o
from dreamlab import parse_objective
from dreamlab.errors import DreamlabError
from dreamlab.optvis.units import MAX_RANGE, format_units, parse_units, unit_range


def test_parse_and_format_are_inverse_on_sorted_lists() -> None:
    for text in ("7", "0-15", "0-3,8,10-12", "1,3,5"):
        assert format_units(parse_units(text)) == text
    assert parse_units(" 5, 0-2 ,1") == [0, 1, 2, 5]


@pytest.mark.parametrize(("text", "message"), [
    ("3-1", "range 3-1 ends before it starts; write it as 1-3"),
    ("a", "cannot read 'a' in 'a'; give ranges and numbers like 0-15 or 0-3,8,10-12"),
    ("1-", "cannot read '1-'"),
    ("", "cannot read ''"),
    (f"0-{MAX_RANGE}", f"range 0-{MAX_RANGE} has {MAX_RANGE + 1} units, more than {MAX_RANGE}"),
])
def test_bad_unit_lists_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(DreamlabError) as caught:
        parse_units(text)
    assert str(caught.value).startswith(message)


def test_the_grammar_and_objective_names_use_the_same_ranges() -> None:
    assert unit_range(2, 4) == [2, 3, 4]
    assert o.channel("conv", [0, 1, 2, 5]).name == "conv:0-2,5"
    assert o.channel("conv", range(4)).name == "conv:0-3"
    assert o.logit([3, 1]).name == "logit:3,1"
    with pytest.raises(DreamlabError, match="range 5-2 ends before it starts"):
        parse_objective("conv:5-2")
