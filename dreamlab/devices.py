"""One place that turns a device request into a `torch.device`, so that devices compare reliably.

`torch.device("cuda") == torch.device("cuda:0")` is False, so a model already on `cuda:0` would look like it sits
on another device than the requested `cuda` and be copied. `resolve_device` gives cuda its index once, and every
comparison goes through it.

>>> resolve_device("cpu")
device(type='cpu')
"""
from __future__ import annotations

import warnings

import torch

from dreamlab.errors import DreamlabError, DreamlabNote


def valid_devices() -> list[str]:
    """The device names this machine accepts, for error messages."""
    names = ["cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        names += ["cuda"] + [f"cuda:{i}" for i in range(count)]
    if _mps_available():
        names.append("mps")
    return names


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def default_device() -> torch.device:
    """cuda (with its current index) when a GPU is available, else cpu."""
    return resolve_device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`device` checked against this machine and normalized (cuda always with an index); None: the default.

    Raises DreamlabError with the valid values for a name torch does not know, a device type dreamlab
    cannot render on (meta, tpu, ...), or a GPU this machine lacks.
    """
    if device is None:
        return default_device()
    valid = ", ".join(valid_devices())
    try:
        dev = device if isinstance(device, torch.device) else torch.device(str(device).strip())
    except (RuntimeError, ValueError, TypeError):
        raise DreamlabError(f"unknown device {str(device)!r}; valid here: {valid}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DreamlabError(f"device {str(device)!r} was asked for but no CUDA GPU is available; valid here: "
                                f"{valid}")
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise DreamlabError(f"device {str(device)!r} does not exist ({torch.cuda.device_count()} CUDA GPUs); "
                                f"valid here: {valid}")
        return torch.device("cuda", index)
    if dev.type == "mps" and _mps_available():
        return torch.device("mps")
    if dev.type == "cpu":
        if dev.index:  # torch takes cpu:3 and ignores the index: say so, for one who meant a core or socket
            warnings.warn(f"device {str(device)!r} is the CPU: torch has one CPU device, and its index picks no core; "
                          f"rendering on cpu (to use fewer cores: torch.set_num_threads, or taskset)", DreamlabNote)
        return torch.device("cpu")  # "cpu:0" and "cpu" are the same device
    raise DreamlabError(f"cannot render on device {str(device)!r}; valid here: {valid}")


def same_device(a: torch.device | None, b: torch.device) -> bool:
    """Whether tensors on `a` need no copy to be used on `b` (`a` None: a module without tensors)."""
    if a is None:
        return True
    return _normalized(a) == _normalized(b)


def _normalized(dev: torch.device) -> torch.device:
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    if dev.type == "cpu":
        return torch.device("cpu")
    return dev


__all__ = ["default_device", "resolve_device", "same_device", "valid_devices"]


def out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an allocator running out of memory (CUDA's OutOfMemoryError, or the CPU's "can't allocate
    memory"), not an error in the model or its input."""
    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text
