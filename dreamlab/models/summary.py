"""The layer table: every addressable module with its output shape and parameter count (like torchinfo).

Shapes come from one forward pass on a copy of the model on the meta device (no memory, no compute), so the
caller's model is never moved or changed.

>>> rows = layer_table(torchvision.models.googlenet(init_weights=True), input_size=224)
>>> [r for r in rows if r.name == "inception4c"][0].channels
512
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from dreamlab.errors import DreamlabError, check_range, first_line
from dreamlab.models.layout import PROBE_GROWTH, is_channels_last, meta_copy
from dreamlab.optvis.capture import first_tensor


@dataclass(frozen=True)
class LayerRow:
    name: str  # dotted address, usable in objectives
    type: str
    output_shape: tuple[int, ...] | None  # without the batch dimension; None if the module did not run
    channels: int | None
    params: int  # parameters of the module and its children
    calls: int  # forward calls in one pass; >1 means the module is reused and cannot be addressed alone
    channels_last: bool = False  # output laid out [H, W, C] (ConvNeXt block internals, Swin): channels are its last axis

    def as_dict(self) -> dict:
        return asdict(self)


def _shapes_on(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[list[tuple[int, ...]], int]]:
    found: dict[str, tuple[list[tuple[int, ...]], int]] = {}
    handles = []

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            tensor = first_tensor(output)
            shapes, calls = found.get(name, ([], 0))
            found[name] = (shapes + ([tuple(tensor.shape[1:])] if tensor is not None else []), calls + 1)
        return hook

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(hook_for(name)))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found


# the layer table's CPU fallback below runs a real forward, and renders allocate images of this side: bounded so
# that neither can exhaust memory
MAX_INPUT_SIZE = 2048


def check_input_size(size: int, minimum: int = 1, name: str = "input size") -> None:
    """The one bound on image sides that every command shares: `minimum` to MAX_INPUT_SIZE pixels."""
    check_range(name, size, minimum, MAX_INPUT_SIZE, "pixels")


def layer_table(model: nn.Module, input_size: int = 224, channels: int = 3,
                recipe_size: int | None = None) -> list[LayerRow]:
    """One row per named module, in registration order, from a forward pass of a copy of `model` (and one at a
    larger size, which tells channels-last outputs: models/layout.py)."""
    check_input_size(input_size)
    probe = meta_copy(model)  # no data copied, none of the caller's hooks
    larger: dict[str, tuple[list[tuple[int, ...]], int]] = {}
    try:
        shapes = _shapes_on(probe, torch.zeros(1, channels, input_size, input_size, device="meta"))
        try:
            side = input_size + PROBE_GROWTH
            larger = _shapes_on(probe, torch.zeros(1, channels, side, side, device="meta"))
        except (NotImplementedError, RuntimeError, ValueError, AssertionError):
            pass  # a fixed-size model: its layers count as channels-first
    except (NotImplementedError, RuntimeError, ValueError, AssertionError):
        # an op without a meta kernel, or a size the model refuses: a real forward on a CPU copy says which
        probe = copy.deepcopy(model).eval().to("cpu")
        try:
            shapes = _shapes_on(probe, torch.zeros(1, channels, input_size, input_size))
        except (RuntimeError, ValueError, AssertionError) as exc:
            reason = first_line(exc)
            near = f"try --size {recipe_size}, the recipe's" if recipe_size and recipe_size != input_size else \
                "try a size near the recipe's (--size)"
            raise DreamlabError(f"{type(model).__name__} cannot take a {input_size}x{input_size} input ({reason}); "
                                f"{near}") from None
    rows = []
    for name, module in model.named_modules():
        if not name:
            continue
        found, calls = shapes.get(name, ([], 0))
        shape = found[0] if found else None
        bigger = larger.get(name, ([], 0))[0]
        last = bool(shape) and is_channels_last((1, *shape), (1, *bigger[0]) if bigger else None)
        rows.append(LayerRow(
            name=name,
            type=type(module).__name__,
            output_shape=shape,
            channels=(shape[-1] if last else shape[0]) if shape else None,
            params=sum(p.numel() for p in module.parameters()),
            calls=calls,
            channels_last=last,
        ))
    return rows


def format_table(rows: list[LayerRow]) -> str:
    """A plain-text table of the rows, one line per module."""
    header = ("layer", "type", "output shape", "channels", "params", "note")
    lines = []
    for r in rows:
        shape = "x".join(map(str, r.output_shape)) if r.output_shape else "-"
        note = f"runs {r.calls}x per pass: not addressable" if r.calls > 1 else ("not run" if r.calls == 0 else "")
        if r.channels_last and r.calls == 1:
            note = "tokens x channels: read as CxN" if len(r.output_shape or ()) == 2 else \
                "channels last: read as CxHxW"
        lines.append((r.name, r.type, shape, str(r.channels) if r.channels is not None else "-", f"{r.params:,}",
                      note))
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i in (0, 1, 5) else c.rjust(w)  # noqa: E731
                                 for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([fmt(header), fmt(tuple("-" * w for w in widths)), *map(fmt, lines)])


@dataclass(frozen=True)
class ModelTotals:
    """What the whole model holds, the table's last lines (like torchinfo's totals)."""

    params: int  # every parameter once (a tensor shared by two modules is counted once)
    param_bytes: int
    buffers: int  # elements of the buffers (BatchNorm's running statistics, ...)
    buffer_bytes: int
    output_bytes: int  # the outputs of the leaf modules for one image, as float32, every call counted

    def as_dict(self) -> dict:
        return asdict(self)


def model_totals(model: nn.Module, rows: list[LayerRow]) -> ModelTotals:
    """The totals of `model`, whose layer table is `rows` (for the outputs' size)."""
    params = list(model.parameters())  # unique tensors: shared weights once
    buffers = list(model.buffers())
    leaves = {name for name, module in model.named_modules() if name and not any(True for _ in module.children())}
    outputs = sum(math.prod(r.output_shape) * r.calls for r in rows if r.name in leaves and r.output_shape)
    return ModelTotals(
        params=sum(p.numel() for p in params),
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        buffers=sum(b.numel() for b in buffers),
        buffer_bytes=sum(b.numel() * b.element_size() for b in buffers),
        output_bytes=outputs * 4,
    )


def format_totals(totals: ModelTotals, input_size: int) -> str:
    """The totals as the lines under the table."""
    return "\n".join([
        f"parameters: {totals.params:,} ({_size(totals.param_bytes)}); buffers: {totals.buffers:,} "
        f"({_size(totals.buffer_bytes)})",
        f"outputs of one {input_size}x{input_size} image (every leaf module, float32): {_size(totals.output_bytes)}",
    ])


def _size(count: int) -> str:
    """Bytes in binary units, one decimal: '44.6 MB', '7.0 kB', '12 bytes'."""
    for unit, power in (("GB", 30), ("MB", 20), ("kB", 10)):
        if count >= 2 ** power:
            return f"{count / 2 ** power:,.1f} {unit}"
    return f"{count} bytes"
