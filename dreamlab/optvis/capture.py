"""Capture the outputs of named modules during a forward pass, and nothing else.

>>> from dreamlab.models.zoo import lenet_digits
>>> with capture(lenet_digits(), ["conv2"]) as cap:
...     acts = cap.run(torch.rand(2, 1, 28, 28))   # the forward stops after conv2 (from the second run on)
>>> {name: tuple(act.shape) for name, act in acts.items()}
{'conv2': (2, 50, 14, 14)}
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from dreamlab.devices import out_of_memory
from dreamlab.errors import DreamlabError, first_line
from dreamlab.hooks import hooked_forward
from dreamlab.models.layout import channels_first, channels_last_layers, to_channels_first
from dreamlab.models.loading import LoadedModel, resolve_layer
from dreamlab.models.prepare import (COMMON_SIZES, FORWARD_ERRORS, first_conv, minimum_side, raw_size_errors_wanted,
                                     size_advice, takes_size)

OUTPUT = "logit"  # the name under which the model's own output is captured


def layer_names(layers: str | Iterable[str], example: str) -> list[str]:
    """Layer names as a list: one name (a str is not split into characters), or an iterable of names; anything
    else is a DreamlabError that shows `example`."""
    if isinstance(layers, str):
        return [layers]
    try:
        names = list(layers)
    except TypeError:
        raise DreamlabError(f"layers must be a layer name or a list of them, like {example}; got "
                            f"{type(layers).__name__}") from None
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise DreamlabError(f"layers must be layer names (non-empty strings), like {example}; got "
                            f"{bad[0]!r} ({type(bad[0]).__name__})"[:300])
    return names


class ModuleReusedError(DreamlabError):
    """A hooked module ran more than once in one forward pass (e.g. ResNet's shared `relu`)."""


def reused_module(name: str) -> ModuleReusedError:
    """The error for layer `name`, whose module runs more than once per forward pass."""
    block = f" {name.rsplit('.', 1)[0]!r}" if "." in name else ""
    return ModuleReusedError(
        f"layer {name!r} runs more than once per forward pass (the module object is reused), so its output is "
        f"ambiguous; address its block{block} or a module that runs once instead (`dreamlab layers MODEL` marks "
        f"reused modules)")


def unused_module(name: str, ran_inside: Sequence[str] = ()) -> DreamlabError:
    """The error for layer `name`, whose module does not run in an eval-mode forward pass; `ran_inside`: the
    modules directly inside it that did run (the forward loops over it, as over a ModuleList, instead of calling it)."""
    if ran_inside:
        inside = ", ".join(ran_inside) if len(ran_inside) <= 3 else f"{ran_inside[0]} ... {ran_inside[-1]}"
        return DreamlabError(f"layer {name!r} is never called: the model's forward runs the modules inside it one by "
                             f"one, so it has no output of its own; address one of them ({inside}; `dreamlab layers "
                             f"MODEL` marks it 'iterated, not called')")
    return DreamlabError(f"layer {name!r} did not run in the forward pass (it is unused in eval mode); pick a layer "
                         f"on the inference path")


def children_that_ran(model: nn.Module, name: str, x: Tensor) -> list[str]:
    """The names of the modules directly inside `model`'s module `name` that run in a forward of `x`."""
    ran: list[str] = []
    hooked_forward(model, x, [(child, lambda *_, n=f"{name}.{child_name}": ran.append(n))
                              for child_name, child in model.get_submodule(name).named_children()])
    return list(dict.fromkeys(ran))


class _StopForward(BaseException):
    """Raised from a hook once every requested layer has been captured, to skip the rest of the network.

    A BaseException, like KeyboardInterrupt, so that a model's own `except Exception:` cannot swallow it; torch's
    always_call hooks catch `Exception` only, so a stopped forward keeps its `acts` (`Capture._forward_ended`).
    """


def output_module(model: nn.Module, layers: Sequence[str], sample: Tensor) -> tuple[str | None, object]:
    """(the module among `layers` whose output is the model's own output, or None; that output) from one
    forward pass of `sample` without gradient: `fc` of googlenet is what `logit:N` reads, so `fc:281` is a
    class too."""
    modules = dict(model.named_modules())
    seen: dict[str, object] = {}

    def keep_first(name: str) -> Callable[[nn.Module, object, object], None]:
        # returns None: a hook that returned the first call's output would replace a reused module's later ones
        def hook(_module: nn.Module, _inputs: object, out: object) -> None:
            seen.setdefault(name, out)
        return hook

    output = hooked_forward(model, sample, [(modules[name], keep_first(name)) for name in layers if name in modules])
    return next((name for name in layers if name in seen and seen[name] is output), None), output


def first_tensor(output: object) -> Tensor | None:
    """A module's output as one tensor: the tensor itself, or the first item of a tuple or list when it is one
    (e.g. GoogLeNet's namedtuple in training mode, or a model that returns `(logits, aux)`: `logit` then reads
    the logits); None for anything else."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    return None


def _captured(name: str, output: object) -> Tensor:
    """The tensor captured for layer `name` (OUTPUT: the model's own output), or a one-line DreamlabError."""
    tensor = first_tensor(output)
    if tensor is not None:
        return tensor
    if isinstance(output, dict):
        keys = list(output)
        what = f"a dict (keys {', '.join(map(repr, keys[:8]))}{', ...' if len(keys) > 8 else ''})"
        body = f"return self.model(x)[{keys[0]!r}]" if keys else "return the logits"
    else:
        what = f"a {type(output).__name__} (a tuple or list is read by its first item, when that is a tensor)"
        body = "return the logits"
    if name == OUTPUT:
        raise DreamlabError(f"the model returns {what}, not a tensor, so 'logit' has nothing to read; wrap it in a "
                            f"module whose forward returns the logits tensor ({body}), or address one of its layers")
    raise DreamlabError(f"layer {name!r} returns {what}, not a tensor; pick a module that returns a tensor "
                        f"(`dreamlab layers MODEL` lists them)")


class Capture:
    """Hooks on the requested modules; `run(x)` returns their outputs keyed by name.

    The hooks clone what they capture: a later in-place op (GoogLeNet's `F.relu(inplace=True)` after `.bn`)
    would otherwise overwrite the stored values. A module that runs twice in one forward is refused, since
    its name would not say which call is meant. To see a second call the forward must go on past the first,
    so the first `run` of a Capture always runs the whole model; with `stop_early` later runs stop after the
    deepest requested layer. A module (or the model, for `logit`) that returns a tuple or list is read by its
    first item; a dict is refused with its keys. A forward that raises (in `run`, or the caller's own `model(x)`)
    leaves `acts` empty, not holding the layers it reached. Outputs laid out [B, H, W, C] (inside ConvNeXt blocks, Swin) are
    returned as [B, C, H, W], and token sequences [B, N, D] (ViT) as [B, D, N], so that a unit is channel k of dim 1
    everywhere; the first `run` finds them
    (models/layout.py: a weightless copy's shapes at two input sizes).
    """

    def __init__(self, model: nn.Module | LoadedModel, layers: str | Iterable[str], stop_early: bool = True):
        if isinstance(model, LoadedModel):  # what load_model returns: its module
            model = model.model
        if not isinstance(model, nn.Module):
            load = f"dreamlab.load_model({model!r}).model" if isinstance(model, str) else "an nn.Module"
            raise DreamlabError(f"capture hooks a module you then run, got {type(model).__name__}; pass {load}")
        self.model = model
        self.layers = sorted(set(layer_names(layers, "capture(model, ['inception4c'])")))
        if not self.layers:  # run would return {} for every input
            raise DreamlabError("capture got no layers, so it has nothing to record; name at least one, like "
                                "capture(model, ['inception4c']) (`dreamlab layers MODEL` lists them; 'logit' is the "
                                "model's output)")
        self.stop_early = stop_early and OUTPUT not in self.layers
        self.acts: dict[str, Tensor] = {}
        self.calls: dict[str, int] = {}
        self._stopping = False  # stop the current forward once every layer is captured
        self._checked = False  # a whole forward has shown that no requested module runs twice
        self._layout_known = False  # channels_last holds the requested layers' layouts
        self._in_run = False  # inside run(); a forward called directly (model(x)) starts afresh, never stops early
        self._idle = False  # the hooks record nothing (run's size probe is forwarding)
        self._finished = False  # the model's forward returned (a forward that raised leaves it False)
        self.channels_last: frozenset[str] = frozenset()  # layers whose output is [B, H, W, C], read transposed
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> Capture:
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._new_forward))
            for name in self.layers:
                module = self.model if name == OUTPUT else resolve_layer(self.model, name, also=[OUTPUT])
                self._handles.append(module.register_forward_hook(self._hook_for(name)))
            # last, so that they see the 'logit' hook's error too: the first runs only when the forward returns,
            # the second also when it raises (torch runs always_call hooks on an exception)
            self._handles.append(self.model.register_forward_hook(self._forward_returned))
            self._handles.append(self.model.register_forward_hook(self._forward_ended, always_call=True))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook this capture registered."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _new_forward(self, module: nn.Module, inputs: object) -> None:
        """A forward of the model called directly (`model(x)` inside `with capture(...) as cap`): its outputs
        replace the last ones in `cap.acts`, and a module runs once per forward, not once per capture."""
        if not self._in_run and not self._idle:
            self.acts, self.calls, self._stopping = {}, {}, False
            x = inputs[0] if isinstance(inputs, tuple) and inputs else None
            if not self._layout_known and isinstance(x, Tensor) and x.dim() == 4:
                self._find_layout([n for n in self.layers if n != OUTPUT], x)

    def _forward_returned(self, module: nn.Module, inputs: object, output: object) -> None:
        self._finished = True

    def _forward_ended(self, module: nn.Module, inputs: object, output: object) -> None:
        """After every forward of the model, also one that raised: a failed forward leaves no partial outputs in
        `acts` (a stale mix of this forward's first layers), and the next forward starts afresh."""
        if not self._finished and not self._idle:
            self.acts, self.calls, self._stopping = {}, {}, False
        self._finished = False

    def _find_layout(self, names: list[str], x: Tensor) -> None:
        """Which of `names` put channels last, from a probe of `x`'s size (the model itself does not run)."""
        self.channels_last = channels_last_layers(self.model, names, x) if names else frozenset()
        self._layout_known = True

    def _hook_for(self, name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if self._idle:
                return
            count = self.calls.get(name, 0) + 1
            self.calls[name] = count
            if count > 1:
                raise reused_module(name)
            tensor = _captured(name, output)
            self.acts[name] = (channels_first(tensor) if name in self.channels_last else tensor).clone()
            if self._stopping and len(self.acts) == len(self.layers):
                raise _StopForward

        return hook

    def run(self, x: Tensor) -> dict[str, Tensor]:
        """Forward `x` and return the captured activations (stopping after the last one when allowed)."""
        if not self._handles:  # no hooks: every layer would look as if it never ran
            raise DreamlabError("cap.run outside a `with` block, where the capture has no hooks; write `with "
                                "dreamlab.capture(model, layers) as cap:` and call cap.run(x) inside it")
        if not isinstance(x, Tensor):
            raise DreamlabError(f"cap.run takes the model's input as a torch tensor [B, C, H, W], got "
                                f"{type(x).__name__}{_conversion_hint(x)}")
        if x.dim() == 3:  # a convolution runs one image unbatched, and its output would be read as a batch
            found = _first_conv(self.model, x.shape[0], x.shape[1:])
            if found is not None and found[0] == x.shape[0]:
                raise DreamlabError(f"cap.run: {_no_batch_axis(x)}")
        self.acts, self.calls = {}, {}
        self._stopping = self.stop_early and self._checked
        self._in_run = True
        try:
            self.model(x)
        except _StopForward:
            pass
        except Exception as exc:
            problem = input_problem(self.model, x, exc, self._unhooked)
            if problem is None:
                raise
            raise DreamlabError(f"cap.run: {problem}") from exc
        finally:
            self._in_run = False
        missing = [n for n in self.layers if n not in self.acts]
        if missing:
            self.calls, self._stopping = {}, False  # this capture's hooks see the second forward as a first
            inside = children_that_ran(self.model, missing[0], x[:1]) if missing[0] != OUTPUT else []
            raise unused_module(missing[0], inside)
        if not self._layout_known and x.dim() == 4:  # the layout probe runs images; other inputs are read as given
            self._find_layout([n for n, act in self.acts.items() if act.dim() in (3, 4) and n != OUTPUT], x)
            self.acts = to_channels_first(self.acts, self.channels_last)
        self._checked = True
        return self.acts

    def _unhooked(self, x: Tensor) -> object:
        """The model's forward of `x` with this capture's hooks idle: a probe leaves acts, calls and the stopping
        state as they were."""
        self._idle = True
        try:
            return self.model(x)
        finally:
            self._idle = False


def _conversion_hint(value: object) -> str:
    """How to turn a NumPy array or a PIL image into the tensor cap.run takes ('' for anything else)."""
    if isinstance(value, np.ndarray):
        return ": torch.from_numpy(array).float() makes one (add [None] for a batch of one)"
    if isinstance(value, Image.Image):
        return ": torchvision.transforms.functional.to_tensor(picture)[None] makes one"
    if isinstance(value, (dict, tuple, list)):
        return (" (for a model that takes another input, call the model yourself inside the with-block, "
                "model(inputs), and read cap.acts)")
    return ""


def _no_batch_axis(x: Tensor) -> str:
    return f"x {list(x.shape)} has no batch axis; pass x[None] ([1, C, H, W])"


def _first_conv(model: nn.Module, channels: int, sides: Sequence[int]) -> tuple[int, int] | None:
    """(channels the first Conv2d that runs reads, channels it is given) for an input of `channels` and `sides`,
    from a probe on a meta copy; None at once for a model without a Conv2d (no copy made)."""
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return None
    return first_conv(model, channels, max(sides))


def input_problem(model: nn.Module, x: Tensor, failure: Exception,
                  forward: Callable[[Tensor], object] | None = None) -> str | None:
    """What is wrong with `x` as `model`'s input, after a forward of it raised `failure`: no batch axis, another
    dtype or device than the weights', other channels than the first convolution reads, or a size the model
    rejects (probed through `forward`, the model's by default); None when `x` looks right (the failure is the
    model's own, or memory)."""
    if isinstance(failure, DreamlabError) or out_of_memory(failure):
        return None
    return _layout_problem(model, x) or _size_problem(forward or model, x, failure)


def _layout_problem(model: nn.Module, x: Tensor) -> str | None:
    """x's device, dtype, axes or channels, where they are not what the model takes; else None."""
    weight = next((p for p in model.parameters() if p.is_floating_point()), None)
    if weight is not None and x.device != weight.device:
        return f"x is on {x.device} and the model on {weight.device}; pass x.to({str(weight.device)!r})"
    if weight is not None and x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
        return f"x is {x.dtype} and the model's weights {weight.dtype}; pass x.to({weight.dtype})"
    if x.dim() == 3:
        found = _first_conv(model, x.shape[0], x.shape[1:])
        if found is not None and found[0] != x.shape[0]:
            return (f"x {list(x.shape)} has no batch axis, and {x.shape[0]} channels where the model's first "
                    f"convolution reads {found[0]}; pass a batch of images [B, {found[0]}, H, W]")
        return _no_batch_axis(x)
    if x.dim() != 4 and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return f"x {list(x.shape)} has {x.dim()} axes; the model takes a batch of images, 4 axes [B, C, H, W]"
    if x.dim() == 4:
        found = _first_conv(model, x.shape[1], x.shape[2:])
        if found is not None and found[0] != found[1]:
            given = f"{x.shape[1]} channel{'' if x.shape[1] == 1 else 's'}"
            wanted = f"{found[0]} channel{'' if found[0] == 1 else 's'}"
            return (f"x has {given} and the model's first convolution reads {found[0]}; pass an image of "
                    f"{wanted} [B, {found[0]}, H, W]")
    return None


def _size_problem(forward: Callable[[Tensor], object], x: Tensor, failure: Exception) -> str | None:
    """x's height and width, where the model rejects them and runs on another size: that size (224 or one of
    COMMON_SIZES), or the smallest it takes when x is smaller (probed under no_grad with grey images on x's device
    and dtype); None when the failure is not x's size (a grey image of x's size runs, or none of those sizes
    does) or the caller words sizes itself (raw_size_errors)."""
    if x.dim() != 4 or not isinstance(failure, FORWARD_ERRORS) or raw_size_errors_wanted():
        return None
    height, width = x.shape[-2:]

    def accepts(size: int | tuple[int, int]) -> bool:
        return takes_size(lambda grey: forward(grey.to(x.dtype)), x.shape[1], size, x.device)

    if accepts((height, width)):
        return None
    side = next((n for n in (224, *COMMON_SIZES) if (n, n) != (height, width) and accepts(n)), None)
    if side is None:
        return None
    wrong = f"x is {height}x{width}, a size the model rejects ({first_line(failure)})"
    shorter = min(height, width)
    smallest = minimum_side(accepts, shorter, side)
    if smallest is not None:
        scaled = (math.ceil(height * smallest / shorter), math.ceil(width * smallest / shorter))
        advice = size_advice(smallest, False, resize=_resize(scaled))
        return f"{wrong}; the smallest size it takes is {smallest}: {advice}"
    return f"{wrong}; it runs on {side}x{side}: {size_advice(side, False, exact=True, resize=_resize((side, side)))}"


def _resize(size: tuple[int, int]) -> str:
    """The call that resizes x to `size`, for size_advice."""
    return f'torch.nn.functional.interpolate(x, size=({size[0]}, {size[1]}), mode="bilinear") makes one'


def capture(model: nn.Module | LoadedModel, layers: str | Iterable[str], stop_early: bool = True) -> Capture:
    """A Capture of `layers` (one name or a list), to use as `with capture(model, layers) as cap:`; its hooks are
    on inside the block only, and every one is removed on exit, also on error."""
    return Capture(model, layers, stop_early)
