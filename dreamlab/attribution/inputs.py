"""Checks on what a Python caller passes to the attribution and inspection functions, each refused in one line
that names the argument (and its command-line flag, where it has one)."""
from __future__ import annotations

import numbers
from collections.abc import Collection

from dreamlab.errors import DreamlabError, check_range, shown

__all__ = ["USED_BY", "check_optional_text", "check_whole", "reads_seed"]


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


def check_optional_text(name: str, value: object, what: str) -> None:
    """None or a string (a layer address, a method name); anything else is refused, saying what it names."""
    if value is not None and not isinstance(value, str):
        raise DreamlabError(f"{name} must be a string ({what}), got {shown(value)}")


# the options each attribution method reads (it would ignore the rest), for `dreamlab.attribute` and `dreamlab
# attribute` alike; `layer` is also the CAM layer of gradcam and gradcam++ (`dreamlab attribute --sanity`)
USED_BY: dict[str, tuple[str, ...]] = {
    "steps": ("ig",), "baseline": ("ig",), "samples": ("smoothgrad",), "noise": ("smoothgrad",),
    "batch_size": ("ig", "smoothgrad"), "layer": ("guided-gradcam", "gradcam", "gradcam++")}


def reads_seed(methods: Collection[str], baseline: object) -> bool:
    """Whether one of `methods` draws noise from the seed: SmoothGrad, and IG with the noise baseline."""
    return "smoothgrad" in methods or ("ig" in methods and isinstance(baseline, str) and baseline == "noise")
