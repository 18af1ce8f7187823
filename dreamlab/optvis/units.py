"""Unit lists as text, one parser and one formatter for everything that writes or reads them: the objective
grammar's ranges (`inception4c:0-63`), objective names, the gallery's `--channels` and its contact sheets.

>>> parse_units("0-3,8, 10-11")
[0, 1, 2, 3, 8, 10, 11]
>>> format_units([0, 1, 2, 3, 8, 10, 11])
'0-3,8,10-11'
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from dreamlab.errors import DreamlabError

MAX_RANGE = 2 ** 16  # units in one range; more than any layer's channels, far fewer than would exhaust memory
_PART = re.compile(r"(\d+)(?:-(\d+))?")


def unit_range(first: int, last: int) -> list[int]:
    """`first`..`last` inclusive; DreamlabError when the range runs backwards or is too long to render."""
    if last < first:
        raise DreamlabError(f"range {first}-{last} ends before it starts; write it as {last}-{first}")
    if last - first >= MAX_RANGE:  # each unit is an image: refuse before listing them all
        raise DreamlabError(f"range {first}-{last} has {last - first + 1} units, more than {MAX_RANGE} "
                            f"(`dreamlab layers MODEL` lists each layer's channel count)")
    return list(range(first, last + 1))


def parse_units(text: str) -> list[int]:
    """'0-15' or '0-3,8,10-12' -> the sorted unit numbers, each once."""
    found: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        match = _PART.fullmatch(part)
        if not match:
            raise DreamlabError(f"cannot read {part!r} in {text!r}; give ranges and numbers like 0-15 or "
                                f"0-3,8,10-12")
        first = int(match[1])
        found.update(unit_range(first, int(match[2]) if match[2] is not None else first))
    return sorted(found)


def format_units(units: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5': runs of consecutive numbers as ranges, in the given order."""
    runs: list[list[int]] = []
    for unit in units:
        if runs and unit == runs[-1][1] + 1:
            runs[-1][1] = unit
        else:
            runs.append([unit, unit])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


__all__ = ["MAX_RANGE", "format_units", "parse_units", "unit_range"]
