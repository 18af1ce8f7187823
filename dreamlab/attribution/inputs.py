"""Checks on what a Python caller passes to the attribution functions, each refused in one line that names the
argument, and which options each method reads (whole numbers, which every command checks alike, are
errors.check_whole's)."""
from __future__ import annotations

from collections.abc import Collection

from dreamlab.errors import DreamlabError, shown

__all__ = ["USED_BY", "check_optional_text", "reads_seed"]


def check_optional_text(name: str, value: object, what: str) -> None:
    """None or a string (a layer address, a method name); anything else is refused, saying what it names."""
    if value is not None and not isinstance(value, str):
        raise DreamlabError(f"{name} must be a string ({what}), got {shown(value)}")


# the options each attribution method reads (it would ignore the rest), for `dreamlab.attribute` and `dreamlab
# attribute` alike; `layer` is also the CAM layer of the CAM methods (`dreamlab attribute --sanity`)
USED_BY: dict[str, tuple[str, ...]] = {
    "steps": ("ig",), "baseline": ("ig", "occlusion"), "samples": ("smoothgrad",), "noise": ("smoothgrad",),
    "window": ("occlusion",), "stride": ("occlusion",),
    "batch_size": ("ig", "smoothgrad", "occlusion"), "layer": ("guided-gradcam", "gradcam", "gradcam++", "layercam", "scorecam")}


def reads_seed(methods: Collection[str], baseline: object) -> bool:
    """Whether one of `methods` draws noise from the seed: SmoothGrad, and IG or occlusion with the noise
    baseline."""
    noise = isinstance(baseline, str) and baseline == "noise"
    return "smoothgrad" in methods or (noise and ("ig" in methods or "occlusion" in methods))
