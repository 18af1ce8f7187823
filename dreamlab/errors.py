"""The exceptions dreamlab raises for bad user input.

Every message is one line: what was wrong, what is valid, what to try. The CLI prints it and exits non-zero.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class DreamlabError(Exception):
    """Base class of every user-facing error (bad name, bad value, failed download)."""


class DreamlabNote(UserWarning):
    """Something the library chose for the caller and says (a warning, not an error); the command line prints it
    as one `dreamlab: note: ...` line, once per run."""


class ObjectiveSyntaxError(DreamlabError, ValueError):
    """An objective string that does not parse; the message points at the offending position."""


class UnknownNameError(DreamlabError, KeyError):
    """An unknown layer, model, recipe key or class name; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


class WeightsError(DreamlabError):
    """Weights that could not be downloaded, read, or fitted to the model."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when the message is empty), for one-line errors."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


def close_matches(name: str, options: Iterable[str], n: int = 5) -> list[str]:
    """Up to `n` distinct options that look like `name` (difflib), for 'did you mean' hints."""
    options = list(dict.fromkeys(options))  # a name listed twice (a recipe and a torchvision model) counts once
    found = difflib.get_close_matches(name, options, n=n, cutoff=0.6)
    # best first, ties in alphabetical order (difflib lists ties in reverse)
    found.sort(key=lambda o: (-difflib.SequenceMatcher(None, name, o).ratio(), o))
    if not found:  # fall back on substring hits: 'inception4' -> inception4a..e
        found = [o for o in options if name and name.lower() in o.lower()][:n]
    return found


def unknown(kind: str, name: str, options: Iterable[str], hint: str = "") -> UnknownNameError:
    """Build an UnknownNameError that names close matches, e.g. unknown('layer', 'inception4x', names); a short
    list of options is given in full too."""
    options = list(dict.fromkeys(options))
    matches = close_matches(name, options)
    msg = f"unknown {kind} {name!r}"
    if matches:
        msg += f"; close matches: {', '.join(matches)}"
    if len(options) <= 12 and set(matches) != set(options):
        msg += f"; valid: {', '.join(options)}"
    if hint:
        msg += f"; {hint}"
    return UnknownNameError(msg)


def check_range(name: str, value: float, low: float, high: float, unit: str = "", hint: str = "") -> None:
    """Refuse a value outside [low, high] (NaN included) with one line: 'NAME VALUE is out of range; valid: LOW to
    HIGH UNIT', then `hint` (say what to try)."""
    if not low <= value <= high:
        unit = f" {unit}" if unit else ""
        raise DreamlabError(f"{name} {value} is out of range; valid: {low:g} to {high:g}{unit}{hint}")
