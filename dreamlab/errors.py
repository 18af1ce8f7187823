"""The exceptions dreamlab raises for bad user input.

Every message is one line: what was wrong, what is valid, what to try. The CLI prints it and exits non-zero.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class DreamlabError(Exception):
    """Base class of every user-facing error (bad name, bad value, failed download)."""


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
    """Up to `n` options that look like `name` (difflib), for 'did you mean' hints."""
    options = list(options)
    found = difflib.get_close_matches(name, options, n=n, cutoff=0.6)
    # best first, ties in alphabetical order (difflib lists ties in reverse)
    found.sort(key=lambda o: (-difflib.SequenceMatcher(None, name, o).ratio(), o))
    if not found:  # fall back on substring hits: 'inception4' -> inception4a..e
        found = [o for o in options if name and name.lower() in o.lower()][:n]
    return found


def unknown(kind: str, name: str, options: Iterable[str], hint: str = "") -> UnknownNameError:
    """Build an UnknownNameError that names close matches, e.g. unknown('layer', 'inception4x', names)."""
    options = list(options)
    matches = close_matches(name, options)
    msg = f"unknown {kind} {name!r}"
    if matches:
        msg += f"; close matches: {', '.join(matches)}"
    elif len(options) <= 12:
        msg += f"; valid: {', '.join(options)}"
    if hint:
        msg += f"; {hint}"
    return UnknownNameError(msg)
