"""A model made ready for a render or an inspection: the module and its recipe from whatever the caller gave
(a name, a LoadedModel, any nn.Module), and the module in eval mode on the device, a caller's module left as it
was found."""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import torch
from torch import nn

from dreamlab.devices import same_device
from dreamlab.errors import DreamlabError, first_line
from dreamlab.models.loading import LoadedModel, check_recipe_layers, load_model, model_categories
from dreamlab.models.recipe import Recipe, check_recipe, load_recipe


def custom_recipe(model: nn.Module, channels: int | None = None, input_size: int = 224) -> Recipe:
    """Settings for a model passed as a module without a recipe: ImageNet-style preprocessing; `channels`
    defaults to what the first Conv2d that runs reads (3 without one)."""
    if channels is None:
        channels = input_channels(model, input_size) or 3
    return Recipe(name=type(model).__name__, builder="custom:" + type(model).__name__, weights="none",
                  channels=channels, input_size=input_size,
                  mean=(0.485, 0.456, 0.406) if channels == 3 else (0.5,) * channels,
                  std=(0.229, 0.224, 0.225) if channels == 3 else (0.5,) * channels)


class _ConvReached(BaseException):
    """Stops the channel probe's forward at the first convolution that runs."""


def first_conv(model: nn.Module, channels: int, size: int) -> tuple[int, int] | None:
    """(channels the first Conv2d that runs reads, channels it is given) in a forward of one `channels` x `size`
    x `size` image, found by forward pre-hooks on a weightless meta copy (the model itself never runs). None
    when no convolution is reached: none exists, or the forward fails before one (an op without a meta kernel,
    an input it cannot take)."""
    from dreamlab.models.layout import FORWARD_ERRORS as PROBE_ERRORS, meta_copy

    found: list[tuple[int, int]] = []

    def reached(conv: nn.Conv2d, inputs: tuple) -> None:
        given = inputs[0].shape[1] if inputs and isinstance(inputs[0], torch.Tensor) and inputs[0].dim() > 2 \
            else conv.in_channels
        found.append((conv.in_channels, given))
        raise _ConvReached

    try:
        probe = meta_copy(model)
    except Exception:  # a module deepcopy cannot copy: no probe, the caller falls back on registration order
        return None
    for conv in probe.modules():
        if isinstance(conv, nn.Conv2d):
            conv.register_forward_pre_hook(reached)
    try:
        with torch.no_grad():
            probe(torch.zeros(1, channels, size, size, device="meta"))
    except (_ConvReached, *PROBE_ERRORS):
        pass
    return found[0] if found else None


def input_channels(model: nn.Module, size: int = 224) -> int | None:
    """The channels the model's input has, as the first Conv2d that runs reads them (not the first one
    registered: a head may be registered before the stem); None without a Conv2d."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return None
    if len({conv.in_channels for conv in convs}) == 1:  # every convolution reads the same: no probe needed
        return convs[0].in_channels
    found = first_conv(model, convs[0].in_channels, size)
    return found[0] if found is not None else convs[0].in_channels


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter (or buffer); None for a model with neither."""
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return None if tensor is None else tensor.device


@contextmanager
def prepared_model(model: nn.Module, device: torch.device, channels_last: bool, owned: bool) -> Iterator[nn.Module]:
    """The model in eval mode with frozen parameters on `device`.

    A model dreamlab loaded (`owned`, e.g. a LoadedModel) is moved to `device` in place and stays there, so the
    next render on that device finds it ready; its memory layout is channels_last for this render only and is
    contiguous again afterwards, so one render's layout never leaks into the next. A caller's module is left
    exactly as it was found: on another device it is copied, never moved.
    """
    if owned:
        model.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        try:
            yield model
        finally:
            if channels_last:
                model.to(memory_format=torch.contiguous_format)
        return
    if not same_device(model_device(model), device):
        model = copy.deepcopy(model).to(device)  # never move the caller's model
    modes = {m: m.training for m in model.modules()}
    grads = {p: p.requires_grad for p in model.parameters()}
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        for m, training in modes.items():
            m.training = training
        for p, flag in grads.items():
            p.requires_grad_(flag)


def resolve_model(model: nn.Module | str | LoadedModel, recipe: Recipe | str | None,
                  weights: str | Path | None = "default", *, precision: bool = False
                  ) -> tuple[nn.Module, Recipe, str, tuple[str, ...] | None, bool]:
    """(module, recipe, weights description, class names, whether dreamlab owns the module).

    `precision`: the caller takes `precision=` (render), which a module of another dtype is then told of.

    `recipe` goes with a caller's nn.Module and `weights` with a model given by name; any other pairing is
    refused rather than ignored ("default", the callers' default for `weights`, goes with everything)."""
    if recipe is not None and not isinstance(recipe, (str, Path, Recipe)):
        raise DreamlabError(f"recipe must be a recipe name, a .toml path or a Recipe, got {type(recipe).__name__}")
    if isinstance(model, (str, Path)):
        if recipe is not None:
            shown = recipe.name if isinstance(recipe, Recipe) else str(recipe)
            raise DreamlabError(f"model {str(model)!r} and recipe {shown!r} both say which model to load; give "
                                f"one: the name (or .toml path) as the model, and recipe= only with your own "
                                f"nn.Module")
        model = load_model(model, weights)
        weights = "default"  # used
    if weights != "default":
        _refuse_weights(model, weights)
    if isinstance(model, LoadedModel):
        if recipe is not None:
            raise DreamlabError(f"recipe= goes with your own nn.Module; this LoadedModel carries its recipe "
                                f"{model.recipe.name!r}: leave recipe out, or load_model(RECIPE) and pass that")
        return model.model, model.recipe, model.weights, model.categories, True
    if not isinstance(model, nn.Module):
        raise DreamlabError(f"model must be a recipe or torchvision model name, a LoadedModel or an nn.Module, "
                            f"got {type(model).__name__}")
    check_float32(model, precision)
    if recipe is None:
        recipe = custom_recipe(model)  # its channels are what the module reads
    else:
        source = None if isinstance(recipe, Recipe) else str(recipe)  # a name or a .toml path
        if source is None:
            check_recipe(recipe)
        else:
            recipe = load_recipe(recipe)
        # a shipped recipe lent to another module (recipe="vgg16" for a VGG11) brings its settings; its default
        # layers are the shipped model's, so they are checked only where they are used
        borrowed = source is not None and not source.endswith(".toml")
        check_recipe_layers(recipe, model, hint="dreamlab.layer_table(model) lists them", defaults=not borrowed)
        check_channels(model, recipe)
    categories = model_categories(recipe, model)
    return model, recipe, "caller's module", categories, False


def _refuse_weights(model: object, weights: object) -> None:
    """`weights` given with a model that already has its weights (a LoadedModel, a caller's module)."""
    shown = repr(str(weights)) if weights is not None else "None"
    if isinstance(model, LoadedModel):
        raise DreamlabError(f"weights={shown} goes with a model given by name; this LoadedModel of "
                            f"{model.recipe.name} has its weights ({model.weights}): leave weights out, or "
                            f"load_model({model.recipe.name!r}, weights={shown}) and pass that")
    if isinstance(model, nn.Module):
        raise DreamlabError(f"weights={shown} goes with a model given by name; {type(model).__name__} is your "
                            f"module and keeps its own weights: leave weights out, or load them into it "
                            f"(model.load_state_dict(torch.load(PATH, weights_only=True)))")


def check_float32(model: nn.Module, precision: bool = False) -> None:
    """dreamlab feeds float32 images (and render runs bfloat16 through autocast, `precision`): a module whose
    parameters are another dtype would fail deep inside torch, so it is refused in one line, naming render's
    `precision` where the caller takes it; so is a module whose parameters sit on the 'meta' device (shapes
    without values)."""
    if any(p.device.type == "meta" for p in model.parameters()):
        raise DreamlabError(f"{type(model).__name__} has parameters on the 'meta' device, which hold shapes but no "
                            f"values; load its weights first (model.to_empty(device='cpu') then load_state_dict)")
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.is_floating_point()}
                    - {"float32"})
    if dtypes:
        lower = " (lower precision through precision='bf16', --precision)" if precision else ""
        raise DreamlabError(f"{type(model).__name__} has {', '.join(dtypes)} parameters; dreamlab runs float32 "
                            f"models{lower}: pass model.float()")


def check_channels(model: nn.Module, recipe: Recipe) -> None:
    """A recipe's colour channels must be what the module's first convolution reads. The recipe is trusted
    unless the first Conv2d that runs (probed on a meta copy) is given the image's channels as they are and
    reads another number: a module that makes its own channels (grey repeated to RGB) passes."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if all(conv.in_channels == recipe.channels for conv in convs):
        return
    found = first_conv(model, recipe.channels, recipe.input_size)
    if found is None:  # the probe reached no convolution: nothing to go on but the recipe
        return
    reads, given = found
    if given == recipe.channels != reads:
        raise DreamlabError(f"recipe {recipe.called!r} gives {recipe.channels}-channel images, but "
                            f"{type(model).__name__}'s first convolution reads {reads}; set "
                            f"channels={reads} (with a mean and std per channel)")


FORWARD_ERRORS = (RuntimeError, AssertionError, ValueError)  # what a model raises for an input it cannot take

_RAW_SIZE_ERRORS: ContextVar[bool] = ContextVar("dreamlab_raw_size_errors", default=False)


@contextmanager
def raw_size_errors() -> Iterator[None]:
    """Within: cap.run leaves an input size the model rejects as the model's own exception (no size probe), for
    work that probes sizes itself (takes_size) or words the advice its own way (render's --size, cam's)."""
    token = _RAW_SIZE_ERRORS.set(True)
    try:
        yield
    finally:
        _RAW_SIZE_ERRORS.reset(token)


def raw_size_errors_wanted() -> bool:
    """Whether the caller words size rejections itself (inside raw_size_errors)."""
    return _RAW_SIZE_ERRORS.get()


def takes_size(forward: Callable[[torch.Tensor], object], channels: int, size: int | tuple[int, int],
               device: torch.device | str | None = None) -> bool:
    """Whether `forward` runs on a grey image of `size` pixels (a side, or height and width): tells a size
    rejection from a bug in the model."""
    height, width = (size, size) if isinstance(size, int) else size
    grey = torch.full((1, channels, height, width), 0.5, device=device)
    try:
        with torch.no_grad(), raw_size_errors():
            forward(grey)
    except FORWARD_ERRORS:
        return False
    return True


def size_advice(side: int, cli: bool, exact: bool = False, resize: str = "resize yours first") -> str:
    """How to give the model an input of `side` pixels (`exact`: that size only, else at least), in the caller's
    words: the command line's --size, or the image the Python API takes (it has no size argument) and, in
    brackets, how to make it (`resize`)."""
    if cli:
        return f"use --size {side}" if exact else f"use --size {side} or more"
    if exact:
        return f"pass a {side}x{side} image ({resize})"
    return f"pass an image of at least {side} pixels a side ({resize})"


def given_size(side: int, option: str | None, more: bool = False) -> str:
    """`side` (`more`: or more) as the caller gives a size: `option` is the spelling of the interface that
    called, a flag ('--size') or a keyword ('input_size'); None names both, for code that serves both."""
    more_text = " or more" if more else ""
    if option is None:
        return f"size {side}{more_text} (--size {side})"
    return f"{option} {side}{more_text}" if option.startswith("--") else f"{option}={side}{more_text}"


def option_named(option: str | None, both: str) -> str:
    """How an error names the size option without a value: the flag ('--size') or the keyword ('input_size='),
    as the caller spells it (`option`, as given_size takes it), or `both` (None: code that serves both)."""
    if option is None:
        return both
    return option if option.startswith("--") else f"{option}="


def size_rejection(name: str, shape: Sequence[int], exc: BaseException, input_size: int,
                   advice: str = "", option: str | None = None) -> DreamlabError:
    """The one line for a model that rejects an input of `shape` [B, C, H, W] and takes its recipe's size (some
    such models take other sizes too, above a minimum: inception_v3, squeezenet); `option`: the caller's
    spelling of the size (given_size)."""
    side = "x".join(map(str, shape[1:]))
    return DreamlabError(f"{name} rejected a {side} input ({first_line(exc)}); it runs at its recipe's size, "
                         f"{input_size}: use {given_size(input_size, option)}{advice}")


def too_small_error(name: str, shape: Sequence[int], exc: BaseException, input_size: int,
                    accepts: Callable[[int], bool], option: str | None = None) -> DreamlabError:
    """The one line, in every view's words, for a model that rejects an input of `shape` [B, C, H, W] and takes its
    recipe's `input_size` (`accepts(side)`: whether it takes a square side): the smallest size it takes, where it
    takes every size from one above the rejected one (minimum_side), else its recipe's size (size_rejection).
    `option`: the caller's spelling of the size (given_size)."""
    least = minimum_side(accepts, min(shape[-2:]), input_size)
    if least is not None and least < input_size:
        shown = "x".join(map(str, shape[1:]))
        return DreamlabError(f"{name} rejected a {shown} input ({first_line(exc)}); the smallest size it takes is "
                             f"{least}: use {given_size(least, option, more=True)}")
    return size_rejection(name, shape, exc, input_size, option=option)


def smallest_side(accepts: Callable[[int], bool], rejected: int, accepted: int) -> int:
    """The smallest square side in (`rejected`, `accepted`] that `accepts` takes, by bisection: a model too
    small an input fails for is told its minimum (googlenet runs from 16 px), not only its recipe's size.
    Assumes that a model taking a side takes the larger ones, as pooling and striding models do; where that
    does not hold the answer is still a side the model takes."""
    while accepted - rejected > 1:
        middle = (rejected + accepted) // 2
        if accepts(middle):
            accepted = middle
        else:
            rejected = middle
    return accepted


def minimum_side(accepts: Callable[[int], bool], rejected: int, side: int) -> int | None:
    """The smallest side, in (`rejected`, `side`], of a model that takes every size from a minimum: one that takes
    `side` and twice `side` too, where "N or more" is true advice; None where `rejected` is not below `side` or the
    model does not take twice `side` (MaxViT takes 221 to 224 px only). `side` is one the model takes."""
    if rejected >= side or not accepts(2 * side):
        return None
    return smallest_side(accepts, rejected, side)


COMMON_SIZES = (28, 32, 64, 96, 128, 299)  # input sides a module without a recipe is tried at when 224 fails


def unsized_module_error(recipe: Recipe, shape: Sequence[int], exc: BaseException,
                         accepts: Callable[[int | tuple[int, int]], bool],
                         rendered: tuple[int, int] | None = None, rendering: bool = True,
                         then: Callable[[int], str | None] | None = None) -> DreamlabError | None:
    """The one line for a model that fails on an input of `shape` [B, C, H, W] whose size is not its recipe's
    doing, or None (a bug in the module, whose own error should show). `rendered`: the image's (height, width)
    before the transforms. Where the transforms' padding changed the size and the model takes `rendered`
    (`accepts(size)`), that is the line. Otherwise, for a module passed without a recipe (whose made-up recipe
    assumes 224 px) that takes one of COMMON_SIZES (or a caller's Recipe that missed 224), how to say its size in
    a Recipe; for a model that takes any size from a minimum above the rejected one (googlenet from 15 px), that
    minimum "or more" (`rendering`: with the advice on render's transforms, which the inspection views have none of).
    `then(side)`: what the caller would refuse next once the recipe says `side` (dream's photo and octaves),
    appended so one line gives every fix."""
    shown = "x".join(map(str, shape[1:]))
    if rendered is not None and tuple(rendered) != tuple(shape[2:]) and accepts(tuple(rendered)):
        height, width = rendered
        return DreamlabError(f"{recipe.name} failed on a {shown} input ({first_line(exc)}): the transforms' padding "
                             f"made the {height}x{width} image {shape[-2]}x{shape[-1]}, and the model takes a fixed "
                             f"size; render with transforms='none' or 'small' (--transforms none/small), which keep "
                             f"the size")
    custom = recipe.builder.startswith("custom:")
    # a caller's module: a common size first (a made-up recipe said 224 already; a Recipe of the caller's that says
    # another size may have missed 224); a recipe file (or a shipped one): 224 first, torchvision's usual size
    sizes = (*COMMON_SIZES, 224) if custom else (224, *COMMON_SIZES)
    side = next((n for n in sizes if n != recipe.input_size and accepts(n)), None)
    if side is None:
        return None
    least = minimum_side(accepts, min(shape[-2:]), side)
    if least is not None:
        wrong = f"{recipe.name} failed on a {shown} input ({first_line(exc)}); the smallest size it takes is " \
                f"{least}x{least}, above its recipe's input_size, {recipe.input_size}"
        if not custom:
            return _and_then(f"{wrong}: set input_size = {least} or more in {recipe.source or 'the recipe'}",
                             least, then)
        return _and_then(f"{wrong}: give a recipe with input_size {least} or more, recipe=dreamlab.Recipe("
                         f"{recipe.name!r}, 'custom:{recipe.name}', input_size={least}, channels={recipe.channels})",
                         least, then)
    if not custom:  # a recipe file (or a shipped one) whose input_size is wrong
        where = recipe.source or "the recipe"
        return _and_then(f"{recipe.name} failed on a {shown} input ({first_line(exc)}) and runs on "
                         f"{side}x{side}: its recipe's input_size, {recipe.input_size}, is not a size the model "
                         f"takes; set input_size = {side} in {where}", side, then)
    return _and_then(f"{recipe.name} failed on a {shown} input ({first_line(exc)}) and runs on {side}x{side}; "
                     f"for a module with a fixed input size, say it: recipe=dreamlab.Recipe({recipe.name!r}, "
                     f"'custom:{recipe.name}', input_size={side}, channels={recipe.channels})" +
                     (", and render with transforms='none' (or 'small'), which keep the size" if rendering else ""),
                     side, then)


def _and_then(line: str, side: int, then: Callable[[int], str | None] | None) -> DreamlabError:
    """`line`, followed by what `then(side)` says the caller would be refused next, where it says anything."""
    after = then(side) if then is not None else None
    return DreamlabError(f"{line}; also, {after}" if after else line)
