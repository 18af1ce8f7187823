"""The exceptions dreamlab raises for bad user input.

Every message is one line: what was wrong, what is valid, what to try. The CLI prints it and exits non-zero.
"""
from __future__ import annotations

import difflib
import functools
import inspect
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar


class DreamlabError(Exception):
    """Base class of every user-facing error (bad name, bad value, failed download)."""

    exit_code = 2  # the command line's exit status for it: 2, the command line was wrong (cli's EXIT_USAGE)


class DreamlabNote(UserWarning):
    """Something the library chose for the caller and says (a warning, not an error); the command line prints it
    as one `dreamlab: note: ...` line, once per run."""


class ObjectiveSyntaxError(DreamlabError, ValueError):
    """An objective string that does not parse; the message points at the offending position."""


class UnknownNameError(DreamlabError, KeyError):
    """An unknown layer, model, recipe key or class name; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


class UnknownKeywordError(UnknownNameError, TypeError):
    """A keyword argument a function or settings class does not take (a TypeError, as Python's own would be)."""


class ArgumentOrderError(DreamlabError, TypeError):
    """A keyword given for a parameter a positional argument already fills (Python's 'got multiple values')."""


class ObjectiveOperatorError(DreamlabError, TypeError):
    """An operator objectives do not take (`obj ** 2`, `obj @ x`): a TypeError, as Python's own would be."""


class ArgumentValueError(DreamlabError, ValueError):
    """An argument of the right type whose value a function cannot use (a ValueError, as Python's own would be,
    so that `except ValueError` keeps catching it)."""


class WeightsError(DreamlabError):
    """Weights that could not be downloaded, read, or fitted to the model."""


class DownloadError(WeightsError):
    """Weights whose download failed (no network, the index or server unreachable): a failure of the machine's
    surroundings rather than of the command line, so the CLI exits 1 for it, not 2."""

    exit_code = 1


class CacheWriteError(WeightsError):
    """Fetched weights that could not be written to the cache (a full disk, a read-only folder): a failure of the
    machine, which the CLI exits 1 for, as for a disk full mid-write elsewhere."""

    exit_code = 1


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when the message is empty), for one-line errors."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


def permission_denied(what: str, path: object, folder: bool = False) -> DreamlabError:
    """The one line for a file (or `folder`) that is there but that this user may not read (said as 'give a PNG
    file' it would send them looking for another format)."""
    which = "a folder you can read (chmod u+rx)" if folder else "a file you can read (chmod u+r)"
    return DreamlabError(f"cannot read {what} {str(path)!r}: permission denied; give {which}")


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


def check_whole(name: str, value: object, low: int, high: int | None = None, flag: str = "", hint: str = "") -> int:
    """`value` as an int (numpy's integers too) if it is a whole number in [low, high]; the error names the
    argument and its command-line `flag`."""
    label = f"{name} ({flag})" if flag else name
    bounds = f">= {low}" if high is None else f"from {low} to {high}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (high is None and value < low):
        raise DreamlabError(f"{label} must be a whole number {bounds}{hint}, got {shown(value, kind=False)}")
    if high is not None:
        check_range(name, value, low, high, hint=hint)
    return int(value)


def shown(value: object, kind: bool = True, limit: int = 60) -> str:
    """`value`'s repr (after its type name, with `kind`) on one short line, for errors about arguments."""
    text = " ".join(repr(value).split())
    text = text[:limit] + "..." if len(text) > limit else text
    return f"{type(value).__name__} {text}" if kind else text


def check_seed(seed: object) -> None:
    """Refuse a seed that is not a whole number; any int is a seed (render, dream and attribute hash it to 63
    bits), so no range is checked."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise DreamlabError(f"seed must be a whole number (an int), got {shown(seed, kind=False)}")


# Other tools' names for dreamlab's settings (lucid, lucent, torch-dreams, DeepDream scripts), as Python keywords;
# the command line's --flag forms are made from these (apps/args.py).
OTHER_TOOLS_NAMES = {
    "iterations": "steps", "iters": "steps", "iter": "steps", "n_iter": "steps", "n_iters": "steps",
    "num_iters": "steps", "n_iterations": "steps", "max_iter": "steps", "max_iters": "steps", "max_steps": "steps",
    "n_steps": "steps", "num_steps": "steps", "num_iterations": "steps", "epochs": "steps", "learning_rate": "lr",
    "image_size": "size", "img_size": "size", "resolution": "size", "output": "out", "layer_name": "layer",
    "n_octaves": "octaves", "num_octaves": "octaves", "param_f": "param", "fixed_image_size": "model_size",
    "sd": "init_sd", "decay_power": "fourier_decay"}

F = TypeVar("F", bound=Callable[..., Any])


def check_callback(name: str, fn: object, call: str, args: int | tuple[int, ...]) -> None:
    """Refuse a callback (None: none given) that is not callable, or cannot be called with `args` positional
    arguments (or one of these counts) as `call` shows, before any work: it is first called after work that its
    error would lose."""
    if fn is None:
        return
    if not callable(fn):
        raise DreamlabError(f"{name} must be a function, called as {call}; got {type(fn).__name__}")
    counts = (args,) if isinstance(args, int) else args
    if any(takes_positional(fn, count) is not False for count in counts):  # None, no signature: trusted
        return
    shown = getattr(fn, "__name__", type(fn).__name__)
    many = " or ".join(map(str, counts))
    raise DreamlabError(f"{name} is called as {call}, which {shown}{inspect.signature(fn)} cannot take; give it "
                        f"{many} positional parameter{'s' if counts != (1,) else ''}")


def takes_positional(fn: Callable[..., object], count: int) -> bool | None:
    """Whether `fn` can be called with `count` positional arguments, as its signature reads (defaults, *args,
    required keyword-only parameters); None for a callable without a signature to read (some builtins)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


def unknown_keyword(owner: str, name: str, valid: Iterable[str],
                    hints: Mapping[str, str] | None = None) -> UnknownKeywordError:
    """The error for a keyword `owner` (a function or class name) does not take: another tool's name for one of
    ours gets ours, a typo its close matches, a short list of keywords is given in full, and a name in `hints`
    what does its job here."""
    valid = list(valid)
    message = f"{owner} takes no keyword {name!r}"
    ours = OTHER_TOOLS_NAMES.get(name)
    if ours in valid:
        return UnknownKeywordError(f"{message}; use {ours}= (dreamlab's name for {name})")
    matches = close_matches(name, valid)
    if matches:
        message += f"; close matches: {', '.join(matches)}"
    if len(valid) <= 12 and set(matches) != set(valid):
        message += f"; valid: {', '.join(valid)}"
    if hints and name in hints:
        message += f"; {hints[name]}"
    return UnknownKeywordError(message)


def checked_keywords(func: F, hints: Mapping[str, str] | None = None) -> F:
    """Wrap `func` (a function, or a class: its constructor) so that a keyword it does not take is refused naming
    the close ones (Python's own TypeError names only the wrong word), and a keyword for a place a positional
    argument fills is refused showing the order (`dream(photo, model=net)`). A function with **kwargs checks its
    own keywords: only the order is checked.

    >>> @checked_keywords
    ... def shade(image, *, steps=1): ...
    >>> try:
    ...     shade(0, stepz=2)
    ... except TypeError as error:  # an UnknownKeywordError: a DreamlabError and a TypeError
    ...     print(error)
    shade() takes no keyword 'stepz'; close matches: steps; valid: image, steps
    """
    if isinstance(func, type):
        func.__init__ = _checked(func.__init__, f"{func.__name__}()", hints)  # type: ignore[misc]
        return func
    return _checked(func, f"{func.__name__}()", hints)


def _checked(func: F, owner: str, hints: Mapping[str, str] | None = None) -> F:
    params = inspect.signature(func).parameters
    any_keyword = any(p.kind == p.VAR_KEYWORD for p in params.values())  # it checks its own keywords
    valid = [name for name, p in params.items() if p.kind != p.VAR_POSITIONAL and name != "self"]
    positional = [name for name, p in params.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    only_positional = {name for name, p in params.items() if p.kind == p.POSITIONAL_ONLY}  # its name= is **kwargs'

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for name in kwargs:
            if name not in params and not any_keyword:
                raise unknown_keyword(owner, name, valid, hints)
        twice = [name for name in positional[:len(args)] if name in kwargs and name not in only_positional]
        if twice:
            raise argument_order_error(owner, twice[0], [name for name in positional if name != "self"])
        return func(*args, **kwargs)

    return checked  # type: ignore[return-value]


def argument_order_error(owner: str, name: str, positional: list[str]) -> ArgumentOrderError:
    """The error for `name=` given as a keyword while a positional argument already fills its place: a photo
    passed first with model= (`dream(photo, model=net)`) is the usual slip."""
    order = f"{owner[:-2]}({', '.join(positional)})"
    named = ", ".join(f"{p}=..." for p in positional[:2])
    return ArgumentOrderError(f"{owner} got {name}= as a keyword and a positional argument in its place (Python's "
                              f"'multiple values'): the order is {order}; pass them in that order, or name each "
                              f"({named})")
