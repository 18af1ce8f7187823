"""DeepDream's settings: the defaults and ranges of dream()'s numbers, and the checks that refuse an argument
outside them, or a callback dream() cannot call, before any work."""
from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from dreamlab.errors import DreamlabError, DreamlabNote, check_callback, check_seed

if TYPE_CHECKING:
    from dreamlab.optvis.dream import DreamStep

LR = 0.006  # google/deepdream's step_size 1.5 on 0-255 pixels, in [0, 1] units
# lr is the mean change per step in [0, 1] units: above 1 a step is larger than the whole pixel range (at 1, one step
# pins 57% of china's values at 0 or 1 with hed-vgg16, 77% with lenet-digits; 73% and 86% at 2): refused
LR_MAX = 1.0
# above this the photo is soon lost in saturated noise, a judgement call, so only noted: on a 320x214 china with
# hed-vgg16 (4 octaves of 10 steps) the score rose with lr up to 0.1 (786; 575 at 0.03) and fell beyond it (476 at
# 0.3, 203 at 1, 99 at 5), the photo unrecognizable from 0.3 on (2026-12-06)
LR_NOTE = 0.1
# a zoom frame shows the middle 1/zoom of the last one: beyond 4x that is under 1/16 of its area, a blur of a few of
# its pixels (1e308 gives one flat colour); below 1/4 mirrored copies of the border fill most of the frame
ZOOM_RANGE = (0.25, 4.0)
ZOOM_DEFAULT = 1.05  # magnification per zoom frame
ROTATE_RANGE = (-360.0, 360.0)  # degrees per frame: a whole turn either way (more is the same turn again)
ROTATE_DEFAULT = 0.0  # degrees per zoom frame


def counted(count: int, noun: str) -> str:
    """'1 frame', '2 frames': a count with its noun in the number it needs."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def check_arguments(*, octaves: int, octave_scale: float, steps: int, lr: float, jitter: int, zoom_frames: int,
                    start_frame: int, seed: int, zoom: float, rotate: float, tile: int | str | None,
                    overlap: int | None) -> None:
    """Refuse a number of dream()'s out of its range, and zoom settings without a zoom, before any work."""
    for name, value, low, integral, strict in (
            ("octaves", octaves, 1, True, False), ("octave_scale", octave_scale, 1, False, True),
            ("steps", steps, 1, True, False), ("jitter", jitter, 0, True, False),
            ("zoom_frames", zoom_frames, 0, True, False),
            ("start_frame", start_frame, 0, True, False)):
        _number(name, value, low, integral, strict)
    _number("lr", lr, 0, strict=True, high=LR_MAX, why=f" (the mean change of a pixel per step, in [0, 1] units: "
            f"a larger step is more than the whole pixel range, and gives noise; the default is {LR:g})")
    if lr > LR_NOTE:
        warnings.warn(DreamlabNote(f"lr={lr:g} (--lr) moves a pixel by {lr:.0%} of its range per step on average, so "
                                   f"the photo is soon lost in saturated noise (with hed-vgg16 the score falls above "
                                   f"{LR_NOTE:g}); the default is {LR:g}, and 0.03 already dreams strongly"),
                      stacklevel=4)  # dream()'s caller (through checked_keywords)
    check_seed(seed)  # any int: the frames' generators take derived_seed(seed, frame)
    _number("zoom", zoom, ZOOM_RANGE[0], high=ZOOM_RANGE[1])
    _number("rotate", rotate, ROTATE_RANGE[0], high=ROTATE_RANGE[1])
    # what the CLI refuses too (--zoom, --rotate without --zoom-frames): a value other than the default would do
    # nothing
    given = [name for name, value, default in (("zoom", zoom, ZOOM_DEFAULT), ("rotate", rotate, ROTATE_DEFAULT))
             if value != default]
    if given and not zoom_frames:
        one = len(given) == 1
        raise DreamlabError(f"{' and '.join(given)} appl{'ies' if one else 'y'} to the endless zoom only: add "
                            f"zoom_frames=N, or leave {'it' if one else 'them'} out")
    if tile is not None and tile != "auto":
        try:
            _number("tile", tile, 64, True)
        except DreamlabError:
            raise DreamlabError(f"tile must be 'auto', a whole number >= 64 (pixels) or None (never tile), got "
                                f"{tile!r}") from None
    if overlap is not None:
        _number("overlap", overlap, 0, True)
    if start_frame and start_frame >= max(zoom_frames, 1):
        raise DreamlabError(f"start_frame {start_frame} is past the last of {counted(zoom_frames, 'zoom frame')} "
                            f"(frames count from 0): give a start_frame below zoom_frames")


def check_callbacks(on_start: Callable[[dict[str, str]], None] | None, on_step: Callable[[DreamStep], None] | None,
                    on_frame: Callable[..., None] | None, zoom_frames: int) -> None:
    """Refuse, before any work, a callback that cannot be called as dream() will call it."""
    for name, fn, call, args in (("on_start", on_start, "on_start(provenance)", 1),
                                 ("on_step", on_step, "on_step(DreamStep)", 1),
                                 ("on_frame", on_frame, "on_frame(frame, image, score) or on_frame(frame, image)"
                                  if zoom_frames else "on_frame(frame, image) (a score only with zoom_frames)",
                                  (2, 3) if zoom_frames else 2)):
        check_callback(name, fn, call, args)


def _number(name: str, value: object, low: float, integral: bool = False, strict: bool = False,
            high: float | None = None, why: str = "") -> None:
    """Refuse a value that is not a (whole) finite number >= low (> low: `strict`) and, given `high`, <= high;
    `why` follows the range in the message."""
    bad = isinstance(value, bool) or not isinstance(value, numbers.Integral if integral else numbers.Real)
    if bad or not math.isfinite(value) or value < low or (strict and value == low) \
            or (high is not None and value > high):  # type: ignore[operator]
        kind = "a whole number" if integral else "a finite number"
        within = f"{'>' if strict else '>='} {low:g}"
        if high is not None:
            within = f"above {low:g} and at most {high:g}" if strict else f"from {low:g} to {high:g}"
        raise DreamlabError(f"{name} must be {kind} {within}{why}, got {value!r}")
