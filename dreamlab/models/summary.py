"""The layer table: every addressable module with its output shape and parameter count, in the order the modules
run, indented by depth (like torchinfo), between a row for the input and one for the model's output.

Shapes come from forward passes on a copy of the model on the meta device (no memory, no compute); a model that
cannot run there (an op without a meta kernel, an `if` on the values) runs on a CPU copy. The caller's model is
never moved or changed.

>>> rows = layer_table("googlenet")  # or a LoadedModel, or any nn.Module; input_size=(96, 128) for HxW
>>> [r for r in rows if r.name == "inception4c"][0].channels
512
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from dreamlab.errors import DreamlabError, check_range, check_whole, checked_keywords, first_line, shown
from dreamlab.models.layout import FORWARD_ERRORS, PROBE_GROWTH, cpu_probe_copy, is_channels_last, meta_copy
from dreamlab.models.prepare import option_named, too_small_error
from dreamlab.optvis.capture import OUTPUT

if TYPE_CHECKING:
    from dreamlab.models.loading import LoadedModel

Shape = tuple[int, ...]
Size = int | tuple[int, int]  # an input side in pixels, or (height, width)
INPUT = "(input)"  # the input row's name: not a layer address


@dataclass(frozen=True)
class LayerRow:
    """One row of the layer table: a module (or the input, or the output) and what one forward shows of it."""

    name: str  # dotted address, usable in objectives
    type: str
    output_shape: Shape | None  # without the batch dimension; None if the module did not run
    channels: int | None
    params: int  # parameters of the module and its children
    calls: int  # forward calls in one pass; >1 means the module is reused and cannot be addressed alone
    channels_last: bool = False  # output laid out [H, W, C] (ConvNeXt block internals, Swin): channels are its last axis
    depth: int = 1  # 1: a module of the model, 2: a module of one of those, ...; 0: the input and output rows
    order: int | None = None  # rank of its first call among all modules' (an iterated container: its first module's)
    output_shapes: tuple[Shape | None, ...] = ()  # output_shape of every call, in call order
    outputs: tuple[str, ...] = ()  # every call's whole output as text: '30x16, (1x16, 1x16)' for an LSTM
    output_bytes: int = 0  # every tensor of every call's output, for one image

    def as_dict(self) -> dict:
        """The row as a dict of plain values (`dreamlab layers --json`)."""
        return asdict(self)


@dataclass(frozen=True)
class _TensorInfo:
    """What the table keeps of an output tensor (not the tensor: a CPU probe's would fill the memory)."""

    shape: Shape  # with the batch dimension
    itemsize: int


def _structure(output: object) -> object:
    """`output` with its tensors replaced by _TensorInfo: tuples and lists become lists, mappings dicts, anything
    else its type's name ('None', 'int')."""
    if isinstance(output, Tensor):
        return _TensorInfo(tuple(output.shape), output.element_size())
    if isinstance(output, (tuple, list)):
        return [_structure(item) for item in output]
    if isinstance(output, Mapping):
        return {str(key): _structure(value) for key, value in output.items()}
    return "None" if output is None else type(output).__name__


def _tensors(structure: object) -> list[_TensorInfo]:
    """Every tensor in an output's structure, in order."""
    if isinstance(structure, _TensorInfo):
        return [structure]
    items = structure.values() if isinstance(structure, dict) else structure if isinstance(structure, list) else []
    return [tensor for item in items for tensor in _tensors(item)]


def _first(structure: object) -> _TensorInfo | None:
    """The tensor that capture reads (optvis.capture.first_tensor): the output, or the first item of a tuple."""
    if isinstance(structure, list) and structure and isinstance(structure[0], _TensorInfo):
        return structure[0]
    return structure if isinstance(structure, _TensorInfo) else None


def _shape(structure: object) -> Shape | None:
    """The shape, without the batch dimension, of the tensor that capture reads from an output."""
    first = _first(structure)
    return first.shape[1:] if first else None


def _describe(structure: object, nested: bool = False) -> str:
    """An output's shapes without the batch dimension: '512x14x14', '30x16, (1x16, 1x16)', 'logits: 10, aux: 10',
    '197x768, None'."""
    if isinstance(structure, _TensorInfo):
        return "x".join(map(str, structure.shape[1:])) or "scalar"
    if isinstance(structure, list):
        text = ", ".join(_describe(item, True) for item in structure)
        return f"({text})" if nested else text or "-"
    if isinstance(structure, dict):
        text = ", ".join(f"{key}: {_describe(value, True)}" for key, value in structure.items())
        return f"{{{text}}}" if nested else text or "-"
    return str(structure)  # not a tensor: its type's name


@dataclass
class _Trace:
    """One forward pass as the hooks saw it."""

    first: dict[str, int] = field(default_factory=dict)  # rank of each module's first call (before its children's)
    outputs: dict[str, list[object]] = field(default_factory=dict)  # each call's output structure
    output: object = "None"  # the model's output structure


def _trace(model: nn.Module, x: Tensor) -> _Trace:
    """Every named module's calls in one forward of `x`: when each first ran and what each call returned."""
    trace = _Trace()

    def before(name: str):
        def hook(module: nn.Module, inputs: object) -> None:
            trace.first.setdefault(name, len(trace.first))
        return hook

    def after(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            trace.outputs.setdefault(name, []).append(_structure(output))
        return hook

    handles = []
    try:
        for name, module in model.named_modules():
            if name:
                handles += [module.register_forward_pre_hook(before(name)), module.register_forward_hook(after(name))]
        with torch.no_grad():
            trace.output = _structure(model(x))
    finally:
        for h in handles:
            h.remove()
    return trace


# the layer table's CPU fallback below runs a real forward, and renders allocate images of this side: bounded so
# that neither can exhaust memory
MAX_INPUT_SIZE = 2048


def check_input_size(size: int, minimum: int = 1, name: str = "input size") -> None:
    """The one bound on image sides that every command shares: `minimum` to MAX_INPUT_SIZE pixels."""
    check_range(name, size, minimum, MAX_INPUT_SIZE, "pixels")


def check_sides(size: object, name: str = "size", flag: str | None = "--size") -> tuple[int, int]:
    """`size` (pixels, or a (height, width) pair of them) as (height, width), each side within the bound every
    command shares (`name`: the argument as the caller calls it; `flag`: its command-line form, named beside it,
    None for a caller that is Python only); anything else is refused in one line."""
    hint = " (the input side in pixels, or (height, width))"
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            label, cli = (f"{name} ({flag})", f"; on the command line: {flag} 224 or {flag} 96x128") if flag \
                else (name, "")
            raise DreamlabError(f"{label} must be pixels or a (height, width) pair, got {shown(size)}{cli}")
        sides = tuple(check_whole(name, side, 1, flag=flag or "", hint=hint) for side in size)
    else:
        sides = (check_whole(name, size, 1, flag=flag or "", hint=hint),) * 2
    for side in dict.fromkeys(sides):
        check_input_size(side, name=name)
    return sides


def _traces(model: nn.Module, sides: tuple[int, int], channels: int, recipe_size: int | None,
            recipe_file: str | None = None, name: str | None = None,
            option: str | None = None) -> tuple[_Trace, _Trace | None]:
    """Forwards of one image of `sides` (height, width) and of one PROBE_GROWTH pixels larger (None: refused, a
    fixed-size model), on a meta copy, or on a CPU copy when the meta device cannot run the model. Both on the
    same copy, so that data-dependent models are probed alike at both sizes (models/layout.py)."""
    device = "meta"
    probe = meta_copy(model)  # no data copied, none of the caller's hooks
    try:
        small = _trace(probe, torch.zeros(1, channels, *sides, device=device))
    except FORWARD_ERRORS:
        device = "cpu"
        probe = cpu_probe_copy(model)
        try:
            small = _trace(probe, torch.zeros(1, channels, *sides))
        except FORWARD_ERRORS as exc:
            def accepts(side: int) -> bool:
                try:
                    _trace(probe, torch.zeros(1, channels, side, side))
                except FORWARD_ERRORS:
                    return False
                return True

            raise _cannot_run(name or type(model).__name__, sides, channels, recipe_size, exc, accepts,
                              recipe_file, option) from None
    try:
        larger = _trace(probe, torch.zeros(1, channels, *(side + PROBE_GROWTH for side in sides), device=device))
    except FORWARD_ERRORS:
        larger = None  # a fixed-size model: its 4-D layers count as channels-first
    return small, larger


def _cannot_run(name: str, sides: tuple[int, int], channels: int, recipe_size: int | None, exc: BaseException,
                accepts: Callable[[int], bool], recipe_file: str | None = None,
                option: str | None = None) -> DreamlabError:
    """The one-line error for model `name`, whose forward fails on one image of `sides` (height, width);
    `accepts(side)`: whether it takes a square side; `recipe_file`: the .toml file the recipe was read from, named
    as the place to fix its input_size; `option`: the caller's spelling of the size (prepare.given_size). A size
    the model rejects where it takes its recipe's is said as every view says it (prepare.too_small_error)."""
    if recipe_size and (recipe_size, recipe_size) != sides and accepts(recipe_size):
        return too_small_error(name, (1, channels, *sides), exc, recipe_size, accepts, option)
    what = f"{name} cannot take a {sides[0]}x{sides[1]} input ({first_line(exc)})"
    if recipe_size is None:
        return DreamlabError(f"{what}; give the size it takes ({option_named(option, 'input_size=, --size')}), or "
                             f"its recipe (recipe=)")
    check = f"input_size and channels in {recipe_file}" if recipe_file else "the recipe's input_size and channels"
    return DreamlabError(f"{what}; dreamlab needs a model whose forward takes one image batch [B, {channels}, H, W]: "
                         f"check {check}, or wrap the model in a module that does")


@dataclass(frozen=True)
class Summary:
    """The whole table: the input, every module in the order they run, the model's output."""

    input: LayerRow
    layers: list[LayerRow]
    output: LayerRow  # named OUTPUT ('logit'), the address of the model's output in objectives

    def rows(self) -> list[LayerRow]:
        """Every row in table order: the input, the modules, the output."""
        return [self.input, *self.layers, self.output]


def _check_module(model: object, function: str) -> None:
    """Refuse, in one line, a `model` that is not an nn.Module (a name or a LoadedModel, which layer_table takes)."""
    from dreamlab.models.loading import LoadedModel

    if isinstance(model, nn.Module):
        return
    if isinstance(model, LoadedModel):
        raise DreamlabError(f"{function} takes an nn.Module, got a LoadedModel; pass its .model (and its "
                            f".recipe.input_size, .recipe.channels), or call dreamlab.layer_table, which takes it")
    shown = repr(str(model)) if isinstance(model, (str, Path)) else type(model).__name__
    raise DreamlabError(f"{function} takes an nn.Module, got {shown}; for a model by name, "
                        f"dreamlab.layer_table({shown if isinstance(model, (str, Path)) else 'name'}) gives its "
                        f"rows, or load it: loaded = dreamlab.load_model(name, weights='none'), then "
                        f"{function}(loaded.model, ...)")


def summarize(model: nn.Module, input_size: Size = 224, channels: int = 3, recipe_size: int | None = None,
              recipe_file: str | None = None, name: str | None = None, option: str | None = None) -> Summary:
    """The layer table of `model` for one `channels` x `input_size` image (a side, or (height, width)), from a
    forward pass of a copy (and one at a larger size, which tells channels-last outputs: models/layout.py);
    `recipe_file`: the recipe's .toml file, which an error names; `name`: the model's, in errors (its recipe's;
    default: its class's); `option`: how the caller spells the size in its errors, '--size' (`dreamlab layers`)
    or 'input_size' (layer_table), None for both."""
    _check_module(model, "summarize")
    sides = check_sides(input_size, "input size") if option is None else check_sides(input_size, option, None)
    small, larger = _traces(model, sides, channels, recipe_size, recipe_file, name, option)
    modules = [(name, module) for name, module in model.named_modules() if name]
    keys = _row_keys([name for name, _ in modules], small.first)
    rows = []
    for name, module in modules:
        calls = small.outputs.get(name, [])
        shape = _shape(calls[0]) if calls else None
        bigger = _shape(larger.outputs[name][0]) if larger and larger.outputs.get(name) else None
        last = shape is not None and is_channels_last((1, *shape), (1, *bigger) if bigger is not None else None)
        rank, ran, _ = keys[name]
        rows.append(LayerRow(
            name=name, type=type(module).__name__, output_shape=shape,
            channels=(shape[-1] if last else shape[0]) if shape else None,
            params=sum(p.numel() for p in module.parameters()), calls=len(calls), channels_last=last,
            depth=name.count(".") + 1, order=rank if ran == 0 else None, **_call_fields(calls)))
    rows.sort(key=lambda r: keys[r.name])
    image = _TensorInfo((1, channels, *sides), 4)  # the probe's float32 zeros
    output = _shape(small.output)
    return Summary(
        input=LayerRow(name=INPUT, type="Tensor", output_shape=image.shape[1:], channels=channels, params=0, calls=1,
                       depth=0, **_call_fields([image])),
        layers=rows,
        output=LayerRow(name=OUTPUT, type=type(model).__name__, output_shape=output,
                        channels=output[0] if output else None,
                        params=sum(p.numel() for p in model.parameters()), calls=1, depth=0,
                        **_call_fields([small.output])))


def _call_fields(calls: list[object]) -> dict:
    """The LayerRow fields that describe every call's output."""
    return {"output_shapes": tuple(_shape(c) for c in calls),
            "outputs": tuple(_describe(c) for c in calls),
            "output_bytes": sum(math.prod(t.shape) * t.itemsize for c in calls for t in _tensors(c))}


def _row_keys(names: list[str], first: dict[str, int]) -> dict[str, tuple[int, int, int]]:
    """Where each module's row goes, as a sort key (rank, ran, tie-break) with ran 0 if it ran: by the rank of
    its first call; a container that is iterated rather than called (ModuleList) just before its first module
    that ran; a module that never ran just after the one that ran before it in registration order."""
    keys: dict[str, tuple[int, int, int]] = {}
    previous = -1
    for index, name in enumerate(names):
        ranks = [rank for other, rank in first.items() if other == name or other.startswith(name + ".")]
        if ranks:
            previous = first.get(name, min(ranks))
            keys[name] = (previous, 0, name.count("."))  # a container ranks with its first module: outer first
        else:
            keys[name] = (previous, 1, index)
    return keys


@checked_keywords
def layer_table(model: nn.Module | str | Path | LoadedModel, input_size: Size | None = None,
                channels: int | None = None, recipe_size: int | None = None, *, recipe: object = None,
                weights: str | Path | None = "none") -> list[LayerRow]:
    """One row per named module, in the order they first run (summarize's rows without the input and output).

    `model` is a recipe or torchvision name, a recipe .toml path, a LoadedModel, or an nn.Module (with `recipe`
    for its input); `input_size` (a side, or (height, width)) and `channels` default to the recipe's (224 and
    what the first convolution reads for a module without one). Shapes need no weights: `weights` defaults to
    'none' for a model given by name, as `dreamlab layers` does."""
    from dreamlab.models.loading import LoadedModel
    from dreamlab.models.prepare import resolve_model

    if not isinstance(model, (str, Path, LoadedModel, nn.Module)):
        raise DreamlabError(f"model must be a recipe or torchvision model name (like 'googlenet'), a recipe .toml "
                            f"path, a LoadedModel or an nn.Module, got {type(model).__name__}; `dreamlab recipes` "
                            f"lists the names")
    if not isinstance(model, (str, Path)) and weights is not None and str(weights).lower() == "none":
        weights = "default"  # the default: a module or LoadedModel keeps its own weights, which shapes do not need
    module, rec, _, _, owned = resolve_model(model, recipe, weights)
    named = owned or recipe is not None  # a caller's bare module has no recipe size to suggest

    def rows(image_channels: int, size: Size | None = input_size) -> list[LayerRow]:
        return summarize(module, rec.input_size if size is None else size, image_channels,
                         recipe_size if recipe_size is not None else rec.input_size if named else None,
                         rec.source if named else None, rec.name, option="input_size").layers

    try:
        return rows(rec.channels if channels is None else channels)
    except DreamlabError as exc:
        if channels is None or channels == rec.channels:
            raise
        failure = exc
    # which of the two the model rejects: the size with its own channels, and the channels at its recipe's size
    size_error = _fails(lambda: rows(rec.channels))
    channels_error = failure if size_error is None else _fails(lambda: rows(channels, None))
    if channels_error is None:  # the size alone: its line names what to try
        raise size_error from None
    if size_error is not None and input_size is None:  # the recipe's own size fails: nothing to tell apart
        raise failure from None
    reads = "the recipe's" if named else "what its first convolution reads"
    context = channels_error.__context__
    cause = first_line(context) if context is not None else str(channels_error)  # torch's own words
    line = (f"{rec.name} does not take channels={channels} ({cause}); it takes {rec.channels}, "
            f"{reads}: leave channels out")
    raise DreamlabError(f"{line}; also, {size_error}" if size_error is not None else line) from None


def _fails(call: Callable[[], object]) -> DreamlabError | None:
    """The DreamlabError `call` raises, or None where it runs."""
    try:
        call()
    except DreamlabError as exc:
        return exc
    return None


def _note(r: LayerRow) -> str:
    if r.name == OUTPUT and r.depth == 0:
        return "the model's output"
    if r.calls > 1:
        return f"runs {r.calls}x per pass: not addressable"
    if r.calls == 0:
        return "iterated, not called: not addressable" if r.order is not None else "not run"
    if r.channels_last:
        return "tokens x channels: read as CxN" if len(r.output_shape or ()) == 2 else "channels last: read as CxHxW"
    return ""


def format_table(rows: list[LayerRow]) -> str:
    """A plain-text table of the rows, one line per module (names indented by depth) and one more per extra call
    of a reused module."""
    header = ("layer", "type", "output shape", "channels", "params", "note")
    lines = []
    names = {r.name for r in rows}
    above: list[str] = []  # the previous row and the modules it sits in
    for r in rows:
        inside = [a for a in _ancestors(r.name) if a in names] if r.depth > 1 else []
        for depth, ancestor in enumerate(inside, 1):
            if ancestor not in above:  # execution order went elsewhere (a loop over two lists): say where it is
                lines.append(("  " * (depth - 1) + f"{ancestor} (continued)", "", "", "", "", ""))
        above = [*inside, r.name]
        shapes = r.outputs or (("x".join(map(str, r.output_shape)),) if r.output_shape else ("-",))
        lines.append(("  " * max(r.depth - 1, 0) + r.name, r.type, shapes[0],
                      str(r.channels) if r.channels is not None else "-", f"{r.params:,}", _note(r)))
        lines += [("", "", shape, "", "", f"call {call} of {r.calls}") for call, shape in enumerate(shapes[1:], 2)]
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i in (0, 1, 5) else c.rjust(w)  # noqa: E731
                                 for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([fmt(header), fmt(tuple("-" * w for w in widths)), *map(fmt, lines)])


def _ancestors(name: str) -> list[str]:
    """'a.b.c' -> ['a', 'a.b']: the names of the modules a module sits in, outermost first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@dataclass(frozen=True)
class ModelTotals:
    """What the whole model holds, the table's last lines (like torchinfo's totals)."""

    params: int  # every parameter once (a tensor shared by two modules is counted once)
    param_bytes: int
    buffers: int  # elements of the buffers (BatchNorm's running statistics, ...)
    buffer_bytes: int
    output_bytes: int  # the outputs of the leaf modules for one image, every tensor of every call
    input_bytes: int = 0  # the one image those outputs are for, as float32

    def as_dict(self) -> dict:
        """The totals as a dict of plain values (`dreamlab layers --json`)."""
        return asdict(self)


def model_totals(model: nn.Module, summary: Summary) -> ModelTotals:
    """The totals of `model`, whose layer table is `summary` (for the sizes of the input and the outputs)."""
    _check_module(model, "model_totals")
    params = list(model.parameters())  # unique tensors: shared weights once
    buffers = list(model.buffers())
    leaves = {name for name, module in model.named_modules() if name and not any(True for _ in module.children())}
    return ModelTotals(
        params=sum(p.numel() for p in params),
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        buffers=sum(b.numel() for b in buffers),
        buffer_bytes=sum(b.numel() * b.element_size() for b in buffers),
        output_bytes=sum(r.output_bytes for r in summary.layers if r.name in leaves),
        input_bytes=summary.input.output_bytes,
    )


def format_totals(totals: ModelTotals, input_size: Size) -> str:
    """The totals as the lines under the table (`input_size`: a side, or (height, width))."""
    height, width = input_size if isinstance(input_size, tuple) else (input_size, input_size)
    return "\n".join([
        f"parameters: {totals.params:,} ({_size(totals.param_bytes)}); buffers: {totals.buffers:,} "
        f"({_size(totals.buffer_bytes)})",
        f"one {height}x{width} image: input {_size(totals.input_bytes)}, outputs of the leaf modules "
        f"(every call) {_size(totals.output_bytes)}",
    ])


def _size(count: int) -> str:
    """Bytes in decimal units (as torchinfo), one decimal: '46.8 MB', '7.2 kB', '12 bytes'."""
    for unit, power in (("GB", 9), ("MB", 6), ("kB", 3)):
        if count >= 10 ** power:
            return f"{count / 10 ** power:,.1f} {unit}"
    return f"{count} bytes"
