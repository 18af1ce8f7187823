"""Objectives: one score per batch sample from captured activations; higher is better.

Build them from functions here, from the string grammar (`parse_objective`), or with the `@objective`
decorator; combine with `+ - * /` and numbers.

>>> from dreamlab import objectives as o
>>> obj = o.channel("inception4c", 97) - 0.5 * o.channel("inception4d", 12) + 0.1 * o.total_variation()
>>> obj.name
'inception4c:97 - 0.5*inception4d:12 + 0.1*total_variation'
>>> o.channel("inception4c", range(64)).batch_size      # 64 units rendered together, sample i -> channel i
64
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers
import operator
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamlab.optvis.capture import OUTPUT, layer_names
from dreamlab.errors import (DreamlabError, DreamlabNote, ObjectiveOperatorError, UnknownNameError, checked_keywords,
                             unknown)
from dreamlab.optvis.units import format_units

IMAGE = "@image"  # key of the clean (un-transformed) image in the activations mapping
REFERENCE = "@reference:"  # REFERENCE + layer: the objective's reference image's activations at the layer

Acts = Mapping[str, Tensor]
Scorer = Callable[[Acts, Tensor], Tensor]  # (activations, unit index of each sample [b]) -> scores [b] or []
Check = Callable[[Mapping[str, torch.Size]], None]
Offsets = Mapping[str, tuple[int, int]]  # layer -> (dy, dx): where the render-size map sits in a larger one

_ATOM, _UNARY, _PRODUCT, _SUM = 4, 3, 2, 1  # precedence, for parentheses in names
MAX_CONSTANT = torch.finfo(torch.float32).max  # scores are float32: a larger constant would turn them infinite
_NUMBERS = "int, float, a NumPy scalar or a 0-d tensor"


@dataclass(frozen=True, eq=False)
class Objective:
    """A differentiable score per sample. `labels[i]` names what unit i of a batched objective optimizes."""

    scorer: Scorer
    layers: frozenset[str]
    name: str
    labels: tuple[str, ...]
    checks: tuple[Check, ...] = ()
    precedence: int = _ATOM
    # a mean over the positions of one layer (a channel, a whole layer, sums and multiples of those): the score of
    # a large image is then the tiles' scores added up, which is how DeepDream dreams photos in tiles
    per_position: bool = False
    # for objectives that read fixed positions (a neuron at x, y): the same objective reading each layer's map
    # shifted by `Offsets`, for the larger maps of a padded input (the render transforms' padding)
    shifted: Callable[[Offsets], Objective] | None = None
    # how a sample's score reads the other samples of its batch, which the engine's batching must respect:
    # "alignment" (o.alignment: the units 1 to 4 places from its own), "diversity" (o.diversity: the other
    # images of its unit). An objective built from others carries all of theirs, whatever its name; a custom
    # @objective carries what it declares, @objective(couples="alignment") (its function cannot be seen into)
    couples: frozenset[str] = frozenset()
    # a left-to-right run of one precedence (a + b - c + ..., a * b / c * ...): (op, symbol, term) with the first
    # op None; scored and shifted by a loop, so that sum() over 512 channels does not nest 512 calls deep
    chain: tuple[tuple[Callable[..., Tensor] | None, str, Objective], ...] = field(default=(), repr=False)
    # an image [C, H, W] in [0, 1] (a photo) that the engine sends through each step's transforms beside the
    # renders, with the same draws; its activations reach the scorer under REFERENCE + layer (o.match)
    reference: Tensor | None = field(default=None, repr=False)

    __array_ufunc__ = None  # `np.float32(2) * obj`: NumPy hands the operation to __rmul__

    @property
    def batch_size(self) -> int:
        """How many units this objective renders together (1 for a single unit)."""
        return len(self.labels)

    def __call__(self, acts: Acts, index: Tensor | None = None) -> Tensor:
        """Scores [b] for a batch whose sample k renders unit `index[k]` (default: 0..b-1)."""
        b = next(iter(acts.values())).shape[0]
        if index is None:
            index = torch.arange(b, device=next(iter(acts.values())).device)
        score = self.scorer(acts, index)
        if not isinstance(score, Tensor) or score.dim() > 1 or (score.dim() == 1 and score.shape[0] not in (1, b)):
            got = list(score.shape) if isinstance(score, Tensor) else type(score).__name__
            raise DreamlabError(f"objective {self.name!r} returned {got}; an objective returns one score per "
                                f"sample, a tensor [{b}] (or a 0-d tensor for all)")
        return score.float().expand(b)

    def at_offsets(self, offsets: Offsets) -> Objective:
        """This objective as read on maps that hold the render-size map at `offsets` (itself if it reads no fixed
        position): the engine scores the transformed images, which the padding makes larger, with it."""
        return self.shifted(offsets) if self.shifted is not None else self

    def check(self, shapes: Mapping[str, torch.Size]) -> None:
        """Raise a one-line DreamlabError when a unit does not exist in layers of these shapes."""
        for check in self.checks:
            check(shapes)

    # arithmetic: every operator goes through `combine`
    def __add__(self, other: Objective | float) -> Objective:
        return combine(operator.add, " + ", _SUM, self, other)

    def __radd__(self, other: float) -> Objective:
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self  # sum([a, b]) starts from 0: its name is 'a + b', not '0 + a + b'
        return combine(operator.add, " + ", _SUM, other, self)

    def __sub__(self, other: Objective | float) -> Objective:
        return combine(operator.sub, " - ", _SUM, self, other)

    def __rsub__(self, other: float) -> Objective:
        return combine(operator.sub, " - ", _SUM, other, self)

    def __mul__(self, other: Objective | float) -> Objective:
        return combine(operator.mul, "*", _PRODUCT, self, other)

    def __rmul__(self, other: float) -> Objective:
        return combine(operator.mul, "*", _PRODUCT, other, self)

    def __truediv__(self, other: Objective | float) -> Objective:
        value = as_number(other)
        # 1e-50 is 0 too once the constant becomes a float32 tensor
        if value is not None and constant_error(value) is None and float(torch.tensor(value).float()) == 0:
            zero = "zero" if value == 0 else f"{value:g}, which is zero as a float32 score"
            raise DreamlabError(f"cannot divide objective {self.name!r} by {zero}; divide by a non-zero number")
        return combine(operator.truediv, "/", _PRODUCT, self, other)

    def __rtruediv__(self, other: float) -> Objective:
        return combine(operator.truediv, "/", _PRODUCT, other, self)

    def __neg__(self) -> Objective:
        return combine(operator.neg, "-", _UNARY, self)

    # the operators objectives do not take are refused saying which they do (Python's own line names neither)
    def __pow__(self, other: object, modulo: object = None) -> Objective:
        raise operator_error("**")

    def __rpow__(self, other: object, modulo: object = None) -> Objective:
        raise operator_error("**")

    def __matmul__(self, other: object) -> Objective:
        raise operator_error("@")

    def __rmatmul__(self, other: object) -> Objective:
        raise operator_error("@")

    def __mod__(self, other: object) -> Objective:
        raise operator_error("%")

    def __rmod__(self, other: object) -> Objective:
        raise operator_error("%")

    def __floordiv__(self, other: object) -> Objective:
        raise operator_error("//")

    def __rfloordiv__(self, other: object) -> Objective:
        raise operator_error("//")

    def __repr__(self) -> str:
        return f"Objective({self.name!r}, batch_size={self.batch_size})"


def operator_error(symbol: str) -> ObjectiveOperatorError:
    """The error for an operator objectives do not take (`symbol`: '**', '@', '%', '//')."""
    what = "a power" if symbol == "**" else "another operation"
    return ObjectiveOperatorError(
        f"objectives take + - * / (with numbers and other objectives) and unary -, not {symbol}; for {what}, write "
        f"a custom @o.objective(layers=[...]) whose function computes the score")


def as_number(x: object) -> float | None:
    """`x` as a float when it is one real number: Python's or NumPy's (not a bool), or a 0-d real tensor or
    array; None for anything else. An int too large for a float is infinite."""
    if isinstance(x, bool):
        return None
    if isinstance(x, Tensor):
        if x.dim() != 0 or x.dtype == torch.bool or x.is_complex():
            return None
    elif not isinstance(x, numbers.Real):
        kind = getattr(getattr(x, "dtype", None), "kind", None)  # a 0-d NumPy array
        if kind not in ("i", "u", "f") or getattr(x, "ndim", None) != 0:
            return None
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def constant_error(value: float) -> str | None:
    """Why `value` cannot be a constant of an objective (not finite, or beyond float32's range), or None."""
    if not math.isfinite(value):
        return f"{value:g} is not finite"
    if abs(value) > MAX_CONSTANT:
        return f"{value:g} is beyond float32's range (±{MAX_CONSTANT:.3g}), where scores would be infinite"
    return None


def constant(value: float) -> Objective:
    """A number as an objective (what `2 * obj` turns the 2 into): finite, within float32's range."""
    number = as_number(value)
    if number is None:
        raise DreamlabError(f"an objective constant must be a number ({_NUMBERS}), got {type(value).__name__}")
    problem = constant_error(number)
    if problem:
        raise DreamlabError(f"objective constant {problem}; use a finite number")
    as_tensor = torch.tensor(number)  # made once: scorers run every step
    return Objective(lambda acts, index: as_tensor, frozenset(), f"{number:g}", (f"{number:g}",))


def _as_objective(x: Objective | float) -> Objective:
    if isinstance(x, Objective):
        return x
    if as_number(x) is None:
        shown = f"{x!r}"[:60]
        text = f"; a string becomes one with dreamlab.parse_objective({shown})" if isinstance(x, str) else ""
        raise DreamlabError(f"cannot combine an objective with {type(x).__name__} {shown}; combine objectives "
                            f"with numbers ({_NUMBERS}) and other objectives{text}")
    return constant(x)


def _wrap(part: Objective, text: str, parent: int, right: bool) -> str:
    # right operands of - and / need parentheses at equal precedence: a - (b - c)
    if part.precedence < parent or (right and part.precedence == parent and parent != _UNARY):
        return f"({text})"
    return text


def combine(op: Callable[..., Tensor], symbol: str, precedence: int, *parts: Objective | float) -> Objective:
    """The one combinator under the arithmetic: applies `op` to the parts' scores."""
    objs = [_as_objective(p) for p in parts]
    sizes = {o.batch_size for o in objs} - {1}
    if len(sizes) > 1:
        raise DreamlabError(f"cannot combine objectives of batch sizes {sorted(sizes)}; batched terms must "
                            f"render the same number of units")
    size = sizes.pop() if sizes else 1

    def fmt(texts: Sequence[str]) -> str:
        if len(objs) == 1:
            return symbol + _wrap(objs[0], texts[0], precedence, right=False)
        left = _wrap(objs[0], texts[0], precedence, right=False)
        return left + symbol + _wrap(objs[1], texts[1], precedence, right=symbol.strip() in "-/")

    labels = tuple(fmt([o.labels[i if o.batch_size > 1 else 0] for o in objs]) for i in range(size))
    chain: tuple[tuple[Callable[..., Tensor] | None, str, Objective], ...] = ()
    if len(objs) == 2 and precedence in (_SUM, _PRODUCT):
        left = objs[0].chain if objs[0].chain and objs[0].precedence == precedence else ((None, "", objs[0]),)
        chain = (*left, (op, symbol, objs[1]))
    return Objective(
        per_position=_stays_per_position(op, objs),
        scorer=_chain_scorer(chain) if chain else lambda acts, index: op(*(o.scorer(acts, index) for o in objs)),
        layers=frozenset().union(*(o.layers for o in objs)),
        name=fmt([o.name for o in objs]),
        labels=labels,
        checks=tuple(c for o in objs for c in o.checks),
        couples=frozenset().union(*(o.couples for o in objs)),
        precedence=precedence,
        shifted=(lambda offsets: _shifted(op, symbol, precedence, objs, chain, offsets))
        if any(o.shifted is not None for o in objs) else None,
        chain=chain,
        reference=_one_reference(objs),
    )


def _one_reference(objs: Sequence[Objective]) -> Tensor | None:
    """The reference image the parts share (None where none has one); two different ones are refused."""
    references = {id(o.reference): o.reference for o in objs if o.reference is not None}
    if len(references) > 1:
        raise DreamlabError("cannot combine objectives that compare with two different reference images: the "
                            "engine sends one image through the transforms beside the renders; match one photo")
    return next(iter(references.values()), None)


def _chain_scorer(chain: Sequence[tuple[Callable[..., Tensor] | None, str, Objective]]) -> Scorer:
    """The score of a run of one precedence, folded left to right in a loop."""
    def scorer(acts: Acts, index: Tensor) -> Tensor:
        total = chain[0][2].scorer(acts, index)
        for op, _, term in chain[1:]:
            total = op(total, term.scorer(acts, index))
        return total

    return scorer


def _shifted(op: Callable[..., Tensor], symbol: str, precedence: int, objs: Sequence[Objective],
             chain: Sequence[tuple[Callable[..., Tensor] | None, str, Objective]], offsets: Offsets) -> Objective:
    """The combination of the parts read at `offsets`: a chain is rebuilt term by term, in a loop."""
    if not chain:
        return combine(op, symbol, precedence, *(o.at_offsets(offsets) for o in objs))
    total = chain[0][2].at_offsets(offsets)
    for link_op, link_symbol, term in chain[1:]:
        total = combine(link_op, link_symbol, precedence, total, term.at_offsets(offsets))
    return total


# --- units -----------------------------------------------------------------------------------------------

def _stays_per_position(op: Callable[..., Tensor], objs: Sequence[Objective]) -> bool:
    """Whether `op` of these parts is still a mean over one layer's positions: sums of such means on one layer,
    plus constants, times or divided by constants."""
    terms = [o for o in objs if o.layers]  # constants read no layer
    if not terms or not all(o.per_position for o in terms) or len(frozenset().union(*(o.layers for o in terms))) > 1:
        return False
    if op in (operator.add, operator.sub, operator.neg):
        return True
    return len(terms) == 1 and (op is operator.mul or objs[0] is terms[0])  # a / c, not c / a


# lucent's objectives take batch=i, which scores image i of the batch alone; here each image has its own unit
_by_image = functools.partial(checked_keywords, hints={
    "batch": "lucent's batch=i scores one image of the batch; here each image has its own unit: "
             "o.channel(layer, [a, b]) makes image i maximize unit i (combined objectives pair them image by "
             "image), and @o.objective(layers=..., units=N) reads each image's index"})


def _unit_list(units: int | Sequence[int] | range | Tensor) -> list[int]:
    """Units as ints: one int (numpy's too), a sequence or range of them, or an integer tensor."""
    if isinstance(units, Tensor):
        units = units.flatten().tolist()
    elif isinstance(units, numbers.Integral):
        units = [units]
    elif isinstance(units, str):  # list('tabby') would be its letters
        raise DreamlabError(f"units must be an int or a list of ints, got the string {units!r}; an objective string "
                            f"reads unit lists and class names: render(model, 'logit:tabby'), 'conv2:0-3,8'")
    try:
        values = list(units)
    except TypeError:
        raise DreamlabError(f"units must be an int or a list of ints, got {type(units).__name__}") from None
    if not values or any(isinstance(u, bool) or not isinstance(u, numbers.Integral) for u in values):
        raise DreamlabError(f"units must be an int or a non-empty list of ints, got {values!r}"[:300])
    return [int(u) for u in values]


class _IndexCache:
    """The unit list as a tensor on each device, made once (no host-to-device copy per step)."""

    def __init__(self, units: list[int]):
        self.units = units
        self._by_device: dict[torch.device, Tensor] = {}

    def on(self, device: torch.device) -> Tensor:
        if device not in self._by_device:
            self._by_device[device] = torch.tensor(self.units, device=device)
        return self._by_device[device]


def _channel_check(layer: str, units: list[int], what: str = "channel", plural: str = "channels") -> Check:
    def check(shapes: Mapping[str, torch.Size]) -> None:
        shape = shapes[layer]
        if len(shape) < 2:
            raise DreamlabError(f"layer {layer!r} has output shape {list(shape)}, which has no channels")
        n = shape[1]
        bad = [u for u in units if not 0 <= u < n]
        if bad:
            name = "logit" if layer == OUTPUT else f"layer {layer!r}"
            raise DreamlabError(f"{what} {bad[0]} is out of range for {name} ({n} {plural}: valid 0-{n - 1})")

    return check


def _pick_units(act: Tensor, cache: _IndexCache, index: Tensor) -> Tensor:
    """act[k, units[index[k]]] for every sample k: one gather, no Python loop over samples."""
    units = cache.on(act.device)
    if len(cache.units) == 1:
        return act[:, cache.units[0]]
    return act[torch.arange(act.shape[0], device=act.device), units[index]]


def _spatial_mean(layer: str, cache: _IndexCache) -> Scorer:
    """The scorer of sample k: its unit's activation in `layer`, averaged over positions where it has any."""
    def scorer(acts: Acts, index: Tensor) -> Tensor:
        picked = _pick_units(acts[layer], cache, index)
        return picked.flatten(1).mean(1) if picked.dim() > 1 else picked

    return scorer


@_by_image
def channel(layer: str, units: int | Sequence[int] | range) -> Objective:
    """Mean activation of a channel over space; a sequence of channels renders one unit per sample."""
    unit_list = _unit_list(units)
    return Objective(_spatial_mean(layer, _IndexCache(unit_list)), frozenset({layer}), f"{layer}:{format_units(unit_list)}",
                     tuple(f"{layer}:{u}" for u in unit_list), (_channel_check(layer, unit_list),), per_position=True)


@_by_image
def neuron(layer: str, units: int | Sequence[int] | range, x: int | None = None, y: int | None = None) -> Objective:
    """One spatial position of a channel (default: the centre of the activation map); x, y are positions of the
    map of the image at the render size (checked there). The render's transforms pad the image, so the maps the
    optimizer sees are larger: the engine reads x, y where that map sits in them (`Objective.at_offsets`)."""
    unit_list = _unit_list(units)
    x, y = _xy("neuron", layer, x, y)
    return _at_window(channel(layer, unit_list), layer, (x, y), (1, 1), "a neuron",
                      f"{layer}:{unit_list[0]} for the whole channel")


def _xy(kind: str, layer: str, x: object, y: object) -> tuple[int | None, int | None]:
    """x, y of a position, both given (whole numbers >= 0) or neither (None, None: the centre)."""
    if (x is None) != (y is None):
        raise DreamlabError(f"{kind}({layer!r}, ...) needs both x and y, or neither for the centre; got x={x}, "
                            f"y={y}")
    return _position("x", x, kind), _position("y", y, kind)


def _position(axis: str, value: object, kind: str = "neuron", centre: bool = True) -> int | None:
    """A position's x or y as an int: a whole number >= 0 (2.0 and NumPy's ints too), or None for the centre."""
    if value is None and centre:
        return None
    tail = " (or neither x nor y, for the centre)" if centre else ""
    return _whole(f"{kind} position {axis}", value, 0, f"give positions of the layer's map, like x=7, y=7{tail}")


def _whole(what: str, value: object, low: int, hint: str) -> int:
    """`value` as an int: a whole number >= `low` (2.0 and NumPy's ints too), else a one-line DreamlabError."""
    number = as_number(value)
    if number is None or not math.isfinite(number) or not number.is_integer() or number < low:
        raise DreamlabError(f"{what}={value!r} is not a whole number >= {low}; {hint}")
    return int(number)


class OutsideMap(DreamlabError):
    """A neuron's position (or a window) outside its layer's map: `where` ("position 99,99"), `layer`, the map's
    `size` (height, width) and the `valid` positions ("valid x 0-9, y 0-6"), so that a caller outside render
    (`dreamlab cam`) can say it in its own words."""

    def __init__(self, message: str, where: str, layer: str, size: tuple[int, int], valid: str) -> None:
        super().__init__(message)
        self.where, self.layer, self.size, self.valid = where, layer, size, valid


def _at_window(base: Objective, layer: str, xy: tuple[int | None, int | None], size: tuple[int, int], kind: str,
               whole: str, offset: tuple[int, int] = (0, 0)) -> Objective:
    """`base`, a mean over the positions of `layer` (a channel, a direction), read on the window of size
    (width, height) whose top-left is `xy` (None: the centre position). `xy` are positions of the map at the
    render size; `offset` (dy, dx) is where that map sits in the map scored (`Objective.at_offsets`)."""
    (x, y), (wx, wy), (dy, dx) = xy, size, offset

    def scorer(acts: Acts, index: Tensor) -> Tensor:
        act = acts[layer]
        h, w = act.shape[-2:]
        top, left = h // 2 if y is None else y + dy, w // 2 if x is None else x + dx
        return base.scorer({layer: act[..., top:top + wy, left:left + wx]}, index)

    where = f"position {x},{y}" if (wx, wy) == (1, 1) else f"window {x}-{x + wx - 1},{y}-{y + wy - 1}"

    def position_check(shapes: Mapping[str, torch.Size]) -> None:
        shape = shapes[layer]
        if len(shape) != 4:
            raise DreamlabError(f"layer {layer!r} has output shape {list(shape)}: {kind} needs a spatial map; "
                                f"use {whole}")
        h, w = shape[-2:]
        if x is None or y is None or (0 <= x + dx and x + dx + wx <= w and 0 <= y + dy and y + dy + wy <= h):
            return
        if dx == dy == 0:
            # sizes height first, as everywhere in dreamlab (--size 96x128), each side named; positions are x,y
            valid = f"valid x 0-{w - wx}, y 0-{h - wy}" if wx <= w and wy <= h else f"windows up to {h} high, {w} wide"
            raise OutsideMap(f"{where} is outside layer {layer!r} (its map is {h} high x {w} wide at the render "
                             f"size, or at model_size where it is set: {valid})", where, layer, (h, w), valid)
        raise DreamlabError(f"{where} of layer {layer!r} falls outside the map the transforms give the "
                            f"optimizer ({h} high x {w} wide, with the render-size map at offset {dx},{dy} in it): "
                            f"use transforms that keep the image's size, or a position nearer the centre")

    def shifted(offsets: Offsets) -> Objective:
        return _at_window(base, layer, xy, size, kind, whole, offsets.get(layer, (0, 0)))

    at = "@centre" if x is None else f"@{x},{y}" if (wx, wy) == (1, 1) else f"@{x}-{x + wx - 1},{y}-{y + wy - 1}"
    # the centre needs no offset, but carries `shifted` too: it marks an objective that reads a fixed position
    return Objective(scorer, frozenset({layer}), base.name + at, tuple(label + at for label in base.labels),
                     (*base.checks, position_check), shifted=shifted, couples=base.couples)


@_by_image
def deepdream(layer: str) -> Objective:
    """DeepDream: the mean of squared activations of a whole layer."""
    return Objective(lambda acts, index: acts[layer].float().pow(2).flatten(1).mean(1),
                     frozenset({layer}), layer, (layer,), per_position=True)


@_by_image
def logit(units: int | Sequence[int] | range) -> Objective:
    """A class logit (the model's output) by index; the grammar resolves class names to indices. A model whose
    output is a map [B, C, H, W] (hed-vgg16's edge map) scores output channel k's mean over positions, as
    `channel` does."""
    unit_list = _unit_list(units)
    return Objective(_spatial_mean(OUTPUT, _IndexCache(unit_list)), frozenset({OUTPUT}), f"logit:{format_units(unit_list)}",
                     tuple(f"logit:{u}" for u in unit_list), (_channel_check(OUTPUT, unit_list, "class", "classes"),),
                     per_position=True)  # on a map; a dream checks that the output is one before tiling


# lucid's dot_cossim (Olah et al. 2018, "The Building Blocks of Interpretability"): the cosine similarity is
# floored at 0.1 so that a position pointing away from the direction still passes a gradient, and each magnitude
# gets 1e-4 added before dividing
COSSIM_FLOOR = 0.1
COSSIM_EPS = 1e-4
# the floor to this power, 1e-32, is still a normal float32; beyond it every position pointing away scores 0 and
# a render whose positions all do would stay at 0
MAX_COSSIM_POWER = 32


@_by_image
def direction(layer: str, vectors: object, cossim_power: float = 0.0, name: str = "direction",
              cosine: bool = False) -> Objective:
    """A direction in a layer's channel space: the dot product of the activation vector at each position with
    `vectors`, averaged over positions. `vectors` is one vector of the layer's channel count [C] (a NumPy array,
    a tensor or a list), or a matrix [N, C] of N directions rendered together (sample i renders row i). A one-hot
    vector is the channel itself. `cossim_power` p > 0 multiplies each position's dot product by its cosine
    similarity to the direction (floored at 0.1) to the power p, which favours activations that point along the
    direction over ones that are merely large (lucid renders directions with p = 1 or more). `cosine=True` scores
    each position by its cosine similarity to the direction alone (from -1 to 1), as lucent's `direction` does:
    the size of the activations then does not count at all.

    >>> import torch
    >>> o.direction("inception4c", torch.randn(512)).name
    'inception4c:direction'
    >>> o.direction("inception4c", torch.randn(3, 512), cossim_power=1).labels
    ('inception4c:direction^1[0]', 'inception4c:direction^1[1]', 'inception4c:direction^1[2]')
    >>> o.direction("inception4c", torch.randn(512), cosine=True).name
    'inception4c:direction~cos'
    """
    if not isinstance(cosine, bool):
        raise DreamlabError(f"cosine must be True (the cosine similarity alone, lucent's direction) or False (the "
                            f"dot product), got {cosine!r}"[:200])
    if cosine and cossim_power != 0:
        raise DreamlabError(f"cosine=True scores the cosine alone and cossim_power={cossim_power!r} weighs the dot "
                            f"product by the cosine: give one of them"[:200])
    matrix = _direction_matrix(vectors)
    power = as_number(cossim_power)
    if power is None or not 0 <= power <= MAX_COSSIM_POWER:
        raise DreamlabError(f"cossim_power must be a number from 0 to {MAX_COSSIM_POWER} (0: the plain dot product; "
                            f"lucid uses 1 to 4), got {cossim_power!r}"[:200])
    if not isinstance(name, str) or not name or any(c in name for c in " :"):
        raise DreamlabError(f"a direction's name must be a word without spaces or ':', like 'direction' or "
                            f"'sae_17', got {name!r}"[:200])
    return _linear(layer, matrix, power, name, "direction", cosine)


def _linear(layer: str, matrix: Tensor, power: float, name: str, noun: str, cosine: bool = False) -> Objective:
    """The mean over positions of each position's dot product with a row of `matrix` [N, C] (times its floored
    cosine similarity to the power `power`; or, with `cosine`, that similarity alone): `direction` and
    `channel_weight`. `noun` names a row in errors."""
    count, channels = matrix.shape
    by_device: dict[torch.device, Tensor] = {}

    def scorer(acts: Acts, index: Tensor) -> Tensor:
        act = acts[layer].float()
        flat = act.flatten(2) if act.dim() > 2 else act.unsqueeze(-1)  # [b, C, positions]
        if act.device not in by_device:
            by_device[act.device] = matrix.to(act.device)
        rows = by_device[act.device]
        v = rows[:1].expand(act.shape[0], -1) if count == 1 else rows[index]  # [b, C]
        dot = torch.einsum("bcp,bc->bp", flat, v)
        if power or cosine:
            cos = dot / (flat.norm(dim=1) + COSSIM_EPS) / (v.norm(dim=1, keepdim=True) + COSSIM_EPS)
            dot = cos if cosine else dot * cos.clamp_min(COSSIM_FLOOR) ** power
        return dot.mean(1)

    def check(shapes: Mapping[str, torch.Size]) -> None:
        shape = shapes[layer]
        if len(shape) < 2 or shape[1] != channels:
            held = f"{shape[1]} channels" if len(shape) >= 2 else f"output shape {list(shape)}, no channels"
            raise DreamlabError(f"the {noun} has {channels} values but layer {layer!r} has {held}; give one "
                                f"value per channel of the layer ('dreamlab layers' lists them)")

    suffix = f"{name}" + (f"^{power:g}" if power else "~cos" if cosine else "")
    labels = (f"{layer}:{suffix}",) if count == 1 else tuple(f"{layer}:{suffix}[{i}]" for i in range(count))
    title = labels[0] if count == 1 else f"{layer}:{suffix}[0-{count - 1}]"
    return Objective(scorer, frozenset({layer}), title, labels, (check,), per_position=True)


def _direction_matrix(vectors: object, noun: str = "direction") -> Tensor:
    """`vectors` as a float32 CPU matrix [N, C]: finite, every row non-zero. `noun` names a row in errors."""
    try:
        matrix = torch.as_tensor(vectors).detach()
    except (TypeError, ValueError, RuntimeError):
        raise DreamlabError(f"a {noun} is a vector of numbers (a list, NumPy array or tensor), got "
                            f"{type(vectors).__name__}") from None
    if matrix.dtype == torch.bool or matrix.is_complex() or not (matrix.is_floating_point() or matrix.dtype in
                                                                    (torch.int8, torch.int16, torch.int32,
                                                                     torch.int64, torch.uint8)):
        raise DreamlabError(f"a {noun}'s values must be real numbers, got dtype {matrix.dtype}")
    if matrix.dim() not in (1, 2) or matrix.numel() == 0:
        raise DreamlabError(f"a {noun} is a vector [C] or a matrix [N, C] of N {noun}s, got shape "
                            f"{list(matrix.shape)}")
    matrix = matrix.reshape(-1, matrix.shape[-1]).float().cpu()
    if not torch.isfinite(matrix).all():
        raise DreamlabError(f"a {noun} holds NaN or infinite values (or values beyond float32's range); give "
                            f"finite numbers")
    zero = (matrix == 0).all(1).nonzero().flatten().tolist()
    if zero:
        which = f"the {noun} is" if matrix.shape[0] == 1 else f"row {zero[0]} of the {noun}s is"
        raise DreamlabError(f"{which} all zeros, which points nowhere; give a non-zero vector")
    return matrix.clone()


@_by_image
def direction_neuron(layer: str, vector: object, x: int | None = None, y: int | None = None,
                     cossim_power: float = 0.0, cosine: bool = False) -> Objective:
    """A direction at one position (default: the centre of the map): the dot product of the activation vector at
    x, y with `vector` (times its floored cosine similarity to the power `cossim_power`, as `direction`). A
    one-hot vector is `neuron`; positions are handled as neuron's (corrected for the transforms' padding).
    lucid's direction_neuron; `cosine=True` scores the cosine similarity alone, as lucent's does.

    >>> o.direction_neuron("conv2", torch.ones(50), x=3, y=4, cossim_power=1).name
    'conv2:direction^1@3,4'
    """
    xy = _xy("direction_neuron", layer, x, y)
    return _at_window(direction(layer, vector, cossim_power, cosine=cosine), layer, xy, (1, 1), "direction_neuron",
                      "o.direction for the mean over every position")


MATCH_MODES = ("match", "caricature")


def match_kind(mode: str, cossim_power: float) -> str:
    """`match`'s mode and power checked, as its labels name them: 'match', 'caricature', 'caricature^1'."""
    if mode not in MATCH_MODES:
        raise DreamlabError(f"mode must be 'match' (the photo's activations) or 'caricature' (lucid's: along "
                            f"them, exaggerated), got {mode!r}"[:200])
    power = as_number(cossim_power)
    if power is None or not 0 <= power <= MAX_COSSIM_POWER:
        raise DreamlabError(f"cossim_power must be a number from 0 to {MAX_COSSIM_POWER} (0: the plain dot "
                            f"product, lucid's caricature), got {cossim_power!r}"[:200])
    if power and mode == "match":
        raise DreamlabError(f"cossim_power={cossim_power!r} weighs a caricature's dot product; mode='match' takes "
                            f"none: give mode='caricature', or leave cossim_power out")
    return mode + (f"^{power:g}" if power else "")


@_by_image
def match(layers: str | Sequence[str], photo: object, mode: str = "match", cossim_power: float = 0.0) -> Objective:
    """Feature inversion: an image whose activations at a layer are the photo's, position by position; with a
    list of layers, one image per layer (sample i matches `layers[i]`). Scores read 1 at the photo's own:

    - `mode="match"`: 1 - |a - p|^2 / |p|^2 over the layer's whole map (Mahendran & Vedaldi 2015's normalized
      distance; a render with no activation scores 0);
    - `mode="caricature"`: a.p / |p|^2 (lucid's caricature, its dot product in units of the photo's), times the
      cosine of a and p, floored at 0.1, to the power `cossim_power` (lucid's default 0): it grows past 1 by
      exaggerating what the layer sees in the photo.

    `photo`: [C, H, W] in [0, 1], a PNG/JPEG path, or 'china'/'flower'. The engine scales it to cover the render
    size, crops the centre, and sends it through each step's transforms beside the renders with the same draws,
    so the positions stay matched: preset transforms (or RandomTransforms), not user callables.

    >>> o.match("features.22", "china").name
    'features.22:match'
    >>> o.match(["conv1", "conv2"], torch.rand(1, 28, 28), mode="caricature", cossim_power=1).labels
    ('conv1:caricature^1', 'conv2:caricature^1')
    """
    from dreamlab.io import read_photo

    names = [layers] if isinstance(layers, str) else list(layers) if isinstance(layers, (list, tuple)) else None
    if not names or not all(isinstance(name, str) and name and name != IMAGE for name in names):
        raise DreamlabError(f"layers must be a layer address or a list of them, like 'features.22' or "
                            f"['conv1', 'conv2'], got {layers!r}"[:200])
    if len(set(names)) < len(names):
        raise DreamlabError(f"layers name {sorted({n for n in names if names.count(n) > 1})[0]!r} twice; give each "
                            f"layer once")
    suffix = match_kind(mode, cossim_power)
    power = float(as_number(cossim_power))
    image = read_photo(photo, "photo")

    def scorer(acts: Acts, index: Tensor) -> Tensor:
        scores = []
        for name in names:
            a, p = acts[name].float().flatten(1), acts[REFERENCE + name].float().flatten(1)
            photo_energy = p.pow(2).sum(1).clamp_min(1e-12)
            if mode == "match":
                scores.append(1 - (a - p).pow(2).sum(1) / photo_energy)
                continue
            dot = (a * p).sum(1)
            score = dot / photo_energy
            if power:
                cos = dot / (a.norm(dim=1) + COSSIM_EPS) / (p.norm(dim=1) + COSSIM_EPS)
                score = score * cos.clamp_min(COSSIM_FLOOR) ** power
            scores.append(score)
        if len(names) == 1:
            return scores[0]
        return torch.stack(scores)[index, torch.arange(len(index), device=index.device)]

    def check(shapes: Mapping[str, torch.Size]) -> None:
        for name in names:
            if REFERENCE + name in shapes and shapes[name] != shapes[REFERENCE + name]:
                raise DreamlabError(f"layer {name!r} gives the renders {list(shapes[name])} and the photo "
                                    f"{list(shapes[REFERENCE + name])}: its output depends on more than its own "
                                    f"image; match another layer")

    labels = tuple(f"{name}:{suffix}" for name in names)
    title = labels[0] if len(names) == 1 else f"{','.join(names)}:{suffix}"
    return Objective(scorer, frozenset(names), title, labels, (check,), reference=image)


@_by_image
def channel_weight(layer: str, weight: object) -> Objective:
    """A weighted sum of a layer's channels, each its mean over positions: sum_c weight[c] * channel c. A one-hot
    weight is `channel`. lucent's channel_weight, which also averages over the channels (1/C of this).
    `weight` [C], or [N, C] for N weightings rendered together, is `direction`'s vector under another name.

    >>> o.channel_weight("conv2", torch.linspace(0, 1, 50)).name
    'conv2:weight'
    """
    return _linear(layer, _direction_matrix(weight, "weight"), 0.0, "weight", "weight")


@_by_image
def neuron_weight(layer: str, weight: object, x: int | None = None, y: int | None = None) -> Objective:
    """A weighted sum of the channels at one position (default: the centre): sum_c weight[c] * act[c, y, x]. A
    one-hot weight is `neuron`; positions are handled as neuron's. lucent's neuron_weight (which averages over
    the channels: 1/C of this).

    >>> o.neuron_weight("conv2", torch.ones(50), x=3, y=4).name
    'conv2:weight@3,4'
    """
    xy = _xy("neuron_weight", layer, x, y)
    return _at_window(channel_weight(layer, weight), layer, xy, (1, 1), "neuron_weight",
                      "o.channel_weight for the mean over every position")


@_by_image
def localgroup_weight(layer: str, weight: object, x: int, y: int, wx: int = 1, wy: int = 1) -> Objective:
    """A weighted sum of the channels averaged over a window of wx by wy positions whose top-left is x, y. A
    one-hot weight with wx = wy = 1 is `neuron`; positions are handled as neuron's. lucent's localgroup_weight
    (which averages over the channels: 1/C of this).

    >>> o.localgroup_weight("conv2", torch.ones(50), x=2, y=3, wx=4, wy=2).name
    'conv2:weight@2-5,3-4'
    """
    xy = (_position("x", x, "localgroup_weight", centre=False), _position("y", y, "localgroup_weight", centre=False))
    size = (_whole("localgroup_weight's wx", wx, 1, "give the window's width in positions, like wx=3"),
            _whole("localgroup_weight's wy", wy, 1, "give the window's height in positions, like wy=3"))
    return _at_window(channel_weight(layer, weight), layer, xy, size, "localgroup_weight",
                      "o.channel_weight for the mean over every position")


@_by_image
def total_variation() -> Objective:
    """Smoothness: minus the mean absolute difference between neighbouring pixels (add it with a weight)."""

    def scorer(acts: Acts, index: Tensor) -> Tensor:
        img = acts[IMAGE]
        dy = (img[..., 1:, :] - img[..., :-1, :]).abs().flatten(1).mean(1)
        dx = (img[..., :, 1:] - img[..., :, :-1]).abs().flatten(1).mean(1)
        return -(dx + dy)

    return Objective(scorer, frozenset({IMAGE}), "total_variation", ("total_variation",))


# --- penalties and relations between the images of a batch (lucid's regularizers) ---------------------------
# lucid writes these as sums over the whole tensor; here each is a mean per sample, so that its weight does not
# depend on the image size or the layer's width

L2_EPSILON = 1e-6  # lucid's L2: inside the square root, so that the gradient stays finite at the minimum
ALIGNMENT_DISTANCES = (1, 2, 3, 4)  # lucid's alignment compares each image with the next four


def _target(layer: str) -> tuple[str, str]:
    """The key of `layer` in the activations ('@image' for the image) and how names show it."""
    if not isinstance(layer, str) or not layer:
        raise DreamlabError(f"a layer is named by its address ('conv2', or '@image' for the image), got {layer!r}"
                            [:200])
    return layer, ("" if layer == IMAGE else layer)


def _number(what: str, value: object, low: float | None = None) -> float:
    number = as_number(value)
    if number is None or constant_error(number) or (low is not None and not number > low):
        bound = "" if low is None else f" above {low:g}"
        raise DreamlabError(f"{what} must be a finite number{bound}, got {value!r}"[:200])
    return number


def _penalty_name(kind: str, shown: str, constant_value: float) -> str:
    args = [a for a in (shown, f"{constant_value:g}" if constant_value else "") if a]
    return f"{kind}({', '.join(args)})" if args else kind


@_by_image
def l1(layer: str = IMAGE, constant: float = 0.0) -> Objective:
    """Minus the mean absolute difference of the image (or a layer's activations) from `constant`: add it with a
    weight to keep pixels near a value (0.5: mid-grey) or activations sparse. lucid's L1.

    >>> (o.channel("conv2", 3) + 0.05 * o.l1(constant=0.5)).name
    'conv2:3 + 0.05*l1(0.5)'
    """
    key, shown = _target(layer)
    c = _number("l1's constant", constant)
    return Objective(lambda acts, index: -(acts[key].float() - c).abs().flatten(1).mean(1), frozenset({key}),
                     _penalty_name("l1", shown, c), (_penalty_name("l1", shown, c),))


@_by_image
def l2(layer: str = IMAGE, constant: float = 0.0) -> Objective:
    """Minus the root mean square difference of the image (or a layer's activations) from `constant`. lucid's L2
    (with its epsilon inside the root)."""
    key, shown = _target(layer)
    c = _number("l2's constant", constant)

    def scorer(acts: Acts, index: Tensor) -> Tensor:
        return -((acts[key].float() - c).pow(2).flatten(1).mean(1) + L2_EPSILON).sqrt()

    return Objective(scorer, frozenset({key}), _penalty_name("l2", shown, c), (_penalty_name("l2", shown, c),))


@_by_image
def blur() -> Objective:
    """Pulls each image towards a blurred copy of itself (a 3x3 box blur, held fixed within a step): minus half
    the mean squared difference. Its values are small (about 1e-4 on a noisy render), so useful weights are
    large: on hed-vgg16's `features.15:0` (64 px, 48 steps, pixels, Adam) 1000 cut the mean difference between
    neighbouring pixels from 0.073 to 0.044, and 10000 to 0.024. lucid's blur_input_each_step."""

    from kornia.filters import box_blur  # kornia loads slowly; only this objective needs it here

    def scorer(acts: Acts, index: Tensor) -> Tensor:
        img = acts[IMAGE].float()
        with torch.no_grad():
            smooth = box_blur(img, (3, 3), border_type="replicate")
        return -0.5 * (img - smooth).pow(2).flatten(1).mean(1)

    return Objective(scorer, frozenset({IMAGE}), "blur", ("blur",))


@_by_image
def channel_interpolate(layer_a: str, unit_a: int, layer_b: str, unit_b: int, steps: int = 6) -> Objective:
    """A batch of `steps` images going from channel `unit_a` of `layer_a` to channel `unit_b` of `layer_b`:
    image i maximizes (1 - t) * a + t * b with t = i / (steps - 1). Add `alignment(layer)` to make neighbouring
    images alike (lucid's channel_interpolate; it also shares part of the parameterization between the images,
    which dreamlab does not).

    >>> o.channel_interpolate("conv2", 0, "conv2", 5, steps=3).labels
    ('1*conv2:0 + 0*conv2:5', '0.5*conv2:0 + 0.5*conv2:5', '0*conv2:0 + 1*conv2:5')
    """
    count = as_number(steps)
    if count is None or count != int(count) or not 2 <= count <= 4096:
        raise DreamlabError(f"channel_interpolate's steps must be a whole number from 2 to 4096 (the images from "
                            f"one channel to the other, ends included), got {steps!r}"[:200])
    count = int(count)
    a, b = channel(layer_a, unit_a), channel(layer_b, unit_b)
    if a.batch_size > 1 or b.batch_size > 1:
        raise DreamlabError(f"channel_interpolate goes from one channel to another: give one unit each, got "
                            f"{a.name} and {b.name}")
    weights = torch.linspace(0, 1, count)  # t of each image
    by_device: dict[torch.device, Tensor] = {}

    def scorer(acts: Acts, index: Tensor) -> Tensor:
        if index.device not in by_device:
            by_device[index.device] = weights.to(index.device)
        t = by_device[index.device][index]
        return (1 - t) * a.scorer(acts, index) + t * b.scorer(acts, index)

    ts = [round(float(t), 3) for t in weights]
    labels = tuple(f"{1 - t:.3g}*{a.name} + {t:.3g}*{b.name}" for t in ts)
    return Objective(scorer, a.layers | b.layers, f"channel_interpolate({a.name}, {b.name}, {count})", labels,
                     a.checks + b.checks, per_position=layer_a == layer_b, couples=a.couples | b.couples)


@_by_image
def alignment(layer: str, decay_ratio: float = 2.0) -> Objective:
    """Makes the images of a batch that are neighbours in the unit list alike at `layer`: minus the mean squared
    difference of their activations, for images 1 to 4 places apart, each distance d weighed 1/decay_ratio^d
    (lucid's alignment). Each pair's penalty is split between its two images. Only images optimized in one
    batch are compared: leave `batch_size` unset (all units at once, the default).

    >>> obj = o.channel_interpolate("conv2", 0, "conv2", 5, steps=4) + 0.1 * o.alignment("conv2")
    """
    key, _ = _target(layer)
    decay = _number("alignment's decay_ratio", decay_ratio, low=0.0)

    def scorer(acts: Acts, index: Tensor) -> Tensor:
        act = acts[key].float().flatten(1)
        gap = index[None, :] - index[:, None]  # gap[i, j]: how many places image j comes after image i
        score = act.new_zeros(act.shape[0])
        for d in ALIGNMENT_DISTANCES:
            i, j = (gap == d).nonzero(as_tuple=True)
            if i.numel():
                half = (act[i] - act[j]).pow(2).mean(1) / (2 * decay ** d)
                score = score.index_add(0, i, -half).index_add(0, j, -half)
        return score

    name = f"alignment({layer}{'' if decay == 2 else f', {decay:g}'})"
    return Objective(scorer, frozenset({key}), name, (name,), couples=frozenset({"alignment"}))


@_by_image
def diversity(layer: str) -> Objective:
    """lucid's diversity term, to subtract with a weight: each image's summed cosine similarity between its Gram
    matrix at `layer` (channel-by-channel correlations over positions) and those of the other images of its
    unit, which are the samples of the batch with its unit index (with `diversity=N`, a unit's N images; alone,
    an image has none and scores 0, so `render` refuses the term without `diversity=N`). Summed over the batch it stands to dreamlab's channel as lucid's term to
    lucid's channel, so lucid's weights carry over:

    >>> obj = o.channel("conv2", 3) - 1e2 * o.diversity("conv2")
    >>> dreamlab.render("lenet-digits", obj, diversity=4, diversity_weight=0)  # doctest: +SKIP

    dreamlab's built-in `diversity=N` (`diversity_weight` > 0) instead adds each image's Gram *distance* to the
    others, scaled by the image's own score: the cosine's gradient vanishes while the images are still alike,
    and a fixed weight means something else on each model (diversity.py). Use this term to port lucid code.
    """
    from dreamlab.optvis.diversity import unit_grams  # diversity.py builds on this module

    key, _ = _target(layer)

    def scorer(acts: Acts, index: Tensor) -> Tensor:
        grams = unit_grams(acts[key])  # [b, C*C], unit length
        alike = grams @ grams.T  # [b, b]: cosine similarities
        others = (index[:, None] == index[None, :]).fill_diagonal_(False)  # images of the same unit, not itself
        return (alike * others).sum(1)

    return Objective(scorer, frozenset({key}), f"diversity({layer})", (f"diversity({layer})",),
                     couples=frozenset({"diversity"}))


# lucid's penalize_boundary_complexity: the blur is a 5x5 kernel, 1 inside and 0.5 on its rim, normalized by the
# weights that fall inside the image, and the pull towards the constant is weighed 0.8
BOUNDARY_KERNEL = F.pad(torch.ones(3, 3), (1, 1, 1, 1), value=0.5)
BOUNDARY_CONSTANT_WEIGHT = 0.8


@_by_image
def penalize_boundary_complexity(width: int = 20, constant: float = 0.5) -> Objective:
    """Keeps the border of the image (`width` pixels on each side; the whole image when it is half the size; a
    render refuses a wider one) plain: minus the mean, over the border's pixels, of the squared difference from a
    5x5 blur plus 0.8 times the squared difference from `constant` (0.5: mid-grey). lucid's penalize_boundary_complexity, as a mean
    (lucid sums) and without its custom mask.

    >>> (o.channel("conv2", 3) + 2 * o.penalize_boundary_complexity(4)).name
    'conv2:3 + 2*penalize_boundary_complexity(4)'
    """
    border = _whole("penalize_boundary_complexity's width", width, 1, "give the border's width in pixels, like 20")
    c = _number("penalize_boundary_complexity's constant", constant)
    kernels: dict[tuple[torch.device, int], Tensor] = {}

    def scorer(acts: Acts, index: Tensor) -> Tensor:
        img = acts[IMAGE].float()
        channels, h, w = img.shape[1:]
        if (img.device, channels) not in kernels:
            kernels[img.device, channels] = BOUNDARY_KERNEL.to(img.device).expand(channels, 1, 5, 5)
        kernel = kernels[img.device, channels]
        blurred = (F.conv2d(img, kernel, padding=2, groups=channels)
                   / F.conv2d(torch.ones_like(img[:1]), kernel, padding=2, groups=channels))
        cost = (blurred - img).pow(2) + BOUNDARY_CONSTANT_WEIGHT * (img - c).pow(2)
        mask = torch.ones(h, w, device=img.device)
        mask[border:h - border, border:w - border] = 0
        inside = max(h - 2 * border, 0) * max(w - 2 * border, 0)
        return -(cost * mask).sum((1, 2, 3)) / (channels * (h * w - inside))

    def check(shapes: Mapping[str, torch.Size]) -> None:
        if IMAGE not in shapes:  # a caller that does not give the image's shape (the maps' check of the steps)
            return
        side = min(shapes[IMAGE][-2:])
        if 2 * border > side:
            h, w = shapes[IMAGE][-2:]
            raise DreamlabError(f"penalize_boundary_complexity's width {border} does not fit the {h}x{w} image: "
                                f"its border takes {border} px on each side, {2 * border} of {side}; give a width "
                                f"of 1 to {side // 2} ({side // 2}: the whole image), or render a larger size")

    name = f"penalize_boundary_complexity({border}{'' if c == 0.5 else f', {c:g}'})"
    return Objective(scorer, frozenset({IMAGE}), name, (name,), (check,))


def _called_as_a_decorator(make: Callable[..., Callable[[Callable[..., Tensor]], Objective]]
                           ) -> Callable[..., Callable[[Callable[..., Tensor]], Objective]]:
    """`make` (objective), with the slip of passing the function in the call, `objective(fn, layers=...)`, told
    the decorator form rather than Python's "got multiple values for argument 'layers'"."""
    @functools.wraps(make)
    def checked(*args: object, **kwargs: object) -> Callable[[Callable[..., Tensor]], Objective]:
        if args and callable(args[0]) and "layers" in kwargs:
            fn, layers = getattr(args[0], "__name__", "fn"), kwargs["layers"]
            raise DreamlabError(f"objective(...) makes a decorator and takes no function: write "
                                f"@dreamlab.objective(layers={layers!r}) above def {fn}(acts), or call "
                                f"dreamlab.objective(layers={layers!r})({fn})")
        return make(*args, **kwargs)

    return checked


@_called_as_a_decorator
def objective(layers: str | Iterable[str], name: str | None = None, units: int = 1,
              couples: str | Iterable[str] = ()) -> Callable[[Callable[..., Tensor]], Objective]:
    """Decorator: a function of the captured activations (and optionally the unit index) becomes an Objective.
    `layers` names every layer the function reads (one name, or a list); reading another is a DreamlabError.

    The function is called as `fn(acts)`, or as `fn(acts, index)` when it has a second positional parameter
    without a default (`index`: the unit index [b] of each sample). Parameters with defaults are never filled
    (`def weighted(acts, weight=0.5)` is called as `weighted(acts)`). A function that requires more than two
    arguments, or takes no positional one, is refused when it is decorated. `units` N > 1 renders N images
    together, labelled `name[0]` to `name[N-1]`: sample k of the batch is image `index[k]`, so the function can
    give each its own target, or relate the images of a batch to each other (lucid's batched objectives). Return
    one score per sample, [b]: a 0-d score is given to every sample, so the sum the optimizer maximizes counts it
    b times (a term ported from lucid that sums over the batch weighs more as the batch grows).

    `couples` declares how a sample's score reads the other samples of its batch, which render cannot see inside
    the function: "alignment" where it calls o.alignment (or compares each image with the units 1 to 4 places
    from its own), "diversity" where it calls o.diversity (or compares the images of one unit); render then
    checks and batches it as it does those terms (it refuses a batch with no pair to compare, and halving the
    batch when memory runs out).

    >>> @objective(layers=["inception4c"])
    ... def centre_vs_edges(acts):
    ...     a = acts["inception4c"][:, 97]
    ...     return a[:, 5:9, 5:9].mean((1, 2)) - a.mean((1, 2))
    """
    if callable(layers):  # @objective without its arguments: layers is the decorated function
        raise DreamlabError("@objective needs the layers the function reads: write @objective(layers=['conv2']) "
                            "above it, not a bare @objective")
    declared = frozenset(layer_names(layers, "@objective(layers=['inception4c'])"))
    if name is not None and not isinstance(name, str):
        raise DreamlabError(f"an objective's name must be a string, got {type(name).__name__}")
    if isinstance(units, bool) or not isinstance(units, numbers.Integral) or not 1 <= units <= 4096:
        raise DreamlabError(f"@objective(units=N): N is how many images the objective renders together, a whole "
                            f"number from 1 to 4096, got {units!r}"[:200])
    coupled = _couplings(couples)

    def wrap(fn: Callable[..., Tensor]) -> Objective:
        if not callable(fn):
            raise DreamlabError(f"@objective(...) decorates a function of the activations, got "
                                f"{type(fn).__name__}")
        label = name or getattr(fn, "__name__", "objective")
        takes_index = _takes_index(fn, label)
        if units > 1 and not takes_index and not coupled:
            warnings.warn(f"@objective function {label!r} takes no index, so its {units} images (units={units}) "
                          f"share one target and differ only by their random start (and by a diversity term added "
                          f"to it); for a target per image, take it: def {label}(acts, index); for {units} images "
                          f"of one target pushed apart, leave units out and render with diversity={units}",
                          DreamlabNote, stacklevel=2)

        def scorer(acts: Acts, index: Tensor) -> Tensor:
            seen = _DeclaredActs(acts, declared, label)
            return fn(seen, index) if takes_index else fn(seen)

        labels = (label,) if units == 1 else tuple(f"{label}[{i}]" for i in range(units))
        return Objective(scorer, declared, label if units == 1 else f"{label}[0-{units - 1}]", labels,
                         couples=coupled)

    return wrap


COUPLINGS = ("alignment", "diversity")  # what Objective.couples holds


def _couplings(couples: str | Iterable[str]) -> frozenset[str]:
    """@objective's `couples` (one name or several) as Objective.couples holds them, an unknown name refused."""
    names = [couples] if isinstance(couples, str) else couples
    try:
        names = list(names)
    except TypeError:
        raise DreamlabError(f"@objective(couples=...) takes {' or '.join(map(repr, COUPLINGS))} or a list of them, "
                            f"got {type(couples).__name__}") from None
    for coupling in names:
        if coupling not in COUPLINGS:
            raise unknown("@objective(couples=...) value", str(coupling), COUPLINGS,
                          hint="leave couples out for a function that scores each sample alone")
    return frozenset(names)


def _takes_index(fn: Callable[..., Tensor], label: str) -> bool:
    """Whether `fn` is called with the unit index too: it has two required positional parameters (see
    `objective`); a signature that fits neither `fn(acts)` nor `fn(acts, index)` is a DreamlabError."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: called with the activations alone
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p.name for p in params if p.kind in positional and p.default is p.empty]
    keyword = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is p.empty]
    takes_acts = any(p.kind in (*positional, inspect.Parameter.VAR_POSITIONAL) for p in params)
    forms = "def f(acts) or def f(acts, index)"
    if not takes_acts:
        raise DreamlabError(f"@objective function {label!r} takes no positional argument; it is called with the "
                            f"activations and optionally the unit index: {forms}")
    if len(required) > 2 or keyword:
        raise DreamlabError(f"@objective function {label!r} requires ({', '.join(required + keyword)}), but it is "
                            f"called with the activations and optionally the unit index ({forms}); give the other "
                            f"parameters defaults")
    return len(required) == 2


class _DeclaredActs(Mapping[str, Tensor]):
    """The activations a custom objective is given: its declared layers only, so that it reads the same whatever
    other terms of a sum capture, and a one-line error that names them when it reads another layer."""

    __slots__ = ("_acts", "_declared", "_name")

    def __init__(self, acts: Acts, declared: frozenset[str], name: str):
        self._acts, self._declared, self._name = acts, declared, name

    def __getitem__(self, layer: str) -> Tensor:
        if not isinstance(layer, str):
            raise UnknownNameError(f"objective {self._name!r} read acts[{layer!r}]; the activations are keyed by "
                                   f"layer name: index the tensor, acts['conv2'][:, 0]"[:300])
        if layer in self._declared and layer in self._acts:
            return self._acts[layer]
        if layer in self._declared:  # called by hand with activations that lack it
            raise UnknownNameError(f"objective {self._name!r} read layer {layer!r}, which the activations it was "
                                   f"given lack (they hold: {', '.join(map(repr, self._acts)) or 'nothing'}); "
                                   f"capture every layer it declares")
        held = ", ".join(repr(d) for d in sorted(self._declared)) or "none"
        wanted = ", ".join(repr(d) for d in sorted(self._declared | {layer}))
        raise UnknownNameError(f"objective {self._name!r} read layer {layer!r}, which is not among its declared "
                               f"layers ({held}); add it to them: @objective(layers=[{wanted}])")

    def __contains__(self, layer: object) -> bool:
        return isinstance(layer, str) and layer in self._declared and layer in self._acts

    def __iter__(self) -> Iterator[str]:
        return (layer for layer in self._acts if layer in self._declared)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __call__(self, *args: object, **kwargs: object) -> Tensor:  # lucent's T("layer")
        shown = repr(args[0]) if args else "'layer'"
        raise UnknownNameError(f"objective {self._name!r} called acts({shown}) as lucent's T(...) is called; "
                               f"index it instead: acts[{shown}]"[:300])
