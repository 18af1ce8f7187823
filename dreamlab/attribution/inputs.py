"""Checks on what a Python caller passes to the attribution and inspection functions, each refused in one line
that names the argument (and its command-line flag, where it has one)."""
from __future__ import annotations

import numbers

import torch
from torch import Tensor

from dreamlab.errors import DreamlabError, check_range

IMAGE_FORMS = "a torch tensor [C, H, W] or [B, C, H, W] in [0, 1]"


def shown(value: object, kind: bool = True, limit: int = 60) -> str:
    """`value`'s repr (after its type name, with `kind`) on one short line, for errors about arguments."""
    text = " ".join(repr(value).split())
    text = text[:limit] + "..." if len(text) > limit else text
    return f"{type(value).__name__} {text}" if kind else text


def check_image(value: object, name: str = "image") -> Tensor:
    """`value` if it is a float tensor of finite values in [0, 1]; anything else is refused naming `name`."""
    if not isinstance(value, Tensor):
        convert = "torch.from_numpy(array)" if type(value).__module__ == "numpy" else "torch.tensor(...)"
        raise DreamlabError(f"{name} must be {IMAGE_FORMS}, got {type(value).__name__}; convert it with {convert} "
                            f"(values in [0, 1]), or read a file with dreamlab.io.load_image")
    if value.dtype == torch.uint8:
        raise DreamlabError(f"{name} is a uint8 tensor (0-255) and images are in [0, 1]; divide it by 255 "
                            f"({name}.float() / 255)")
    if not value.is_floating_point():
        raise DreamlabError(f"{name} has dtype {value.dtype}; images are float tensors in [0, 1] (divide 0-255 "
                            f"values by 255)")
    if value.numel() == 0:
        raise DreamlabError(f"{name} is empty (shape {list(value.shape)}); give {IMAGE_FORMS}")
    values = value.detach()
    if not bool(torch.isfinite(values).all()):
        raise DreamlabError(f"{name} has NaN or infinite values; give finite values in [0, 1]")
    low, high = (float(v) for v in torch.aminmax(values.float()))
    if low < 0 or high > 1:
        raise DreamlabError(f"{name} has values from {low:.4g} to {high:.4g}, outside [0, 1]; images are in [0, 1]: "
                            f"divide 0-255 values by 255, or clamp a resized image with .clamp(0, 1)")
    return value


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
