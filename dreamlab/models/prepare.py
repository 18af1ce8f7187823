"""A model made ready for a render or an inspection: the module and its recipe from whatever the caller gave
(a name, a LoadedModel, any nn.Module), and the module in eval mode on the device, a caller's module left as it
was found."""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from dreamlab.devices import same_device
from dreamlab.errors import DreamlabError, first_line
from dreamlab.models.loading import LoadedModel, check_recipe_layers, load_model, torchvision_categories
from dreamlab.models.recipe import Recipe, check_recipe, load_recipe


def custom_recipe(model: nn.Module, channels: int | None = None, input_size: int = 224) -> Recipe:
    """Settings for a model passed as a module without a recipe: ImageNet-style preprocessing; `channels`
    defaults to the first Conv2d's input channels (3 without one)."""
    if channels is None:
        first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        channels = first.in_channels if first is not None else 3
    return Recipe(name=type(model).__name__, builder="custom:" + type(model).__name__, weights="none",
                  channels=channels, input_size=input_size,
                  mean=(0.485, 0.456, 0.406) if channels == 3 else (0.5,) * channels,
                  std=(0.229, 0.224, 0.225) if channels == 3 else (0.5,) * channels)


def model_device(model: nn.Module) -> torch.device | None:
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
                   weights: str | Path | None) -> tuple[nn.Module, Recipe, str, tuple[str, ...] | None, bool]:
    """(module, recipe, weights description, class names, whether dreamlab owns the module)."""
    if recipe is not None and not isinstance(recipe, (str, Path, Recipe)):
        raise DreamlabError(f"recipe must be a recipe name, a .toml path or a Recipe, got {type(recipe).__name__}")
    if isinstance(model, (str, Path)):
        model = load_model(recipe if recipe is not None else model, weights)
    if isinstance(model, LoadedModel):
        return model.model, model.recipe, model.weights, model.categories, True
    if not isinstance(model, nn.Module):
        raise DreamlabError(f"model must be a recipe or torchvision model name, a LoadedModel or an nn.Module, "
                            f"got {type(model).__name__}")
    check_float32(model)
    if isinstance(recipe, (str, Path)):
        recipe = load_recipe(recipe)
    elif isinstance(recipe, Recipe):
        check_recipe(recipe)
        check_recipe_layers(recipe, model, None)
    recipe = recipe or custom_recipe(model)
    _check_channels(model, recipe)
    categories = recipe.categories or torchvision_categories(recipe)
    return model, recipe, "caller's module", categories, False


def check_float32(model: nn.Module) -> None:
    """dreamlab feeds float32 images (and runs bfloat16 through autocast, `precision`): a module whose
    parameters are another dtype would fail deep inside torch, so it is refused in one line."""
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.is_floating_point()}
                    - {"float32"})
    if dtypes:
        raise DreamlabError(f"{type(model).__name__} has {', '.join(dtypes)} parameters; dreamlab runs float32 "
                            f"models (lower precision through precision='bf16', --precision): pass model.float()")


def _check_channels(model: nn.Module, recipe: Recipe) -> None:
    """A recipe's colour channels must be what the module's first convolution reads."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and first.in_channels != recipe.channels:
        raise DreamlabError(f"recipe {recipe.name!r} gives {recipe.channels}-channel images, but "
                            f"{type(model).__name__}'s first convolution reads {first.in_channels}; set "
                            f"channels={first.in_channels} (with a mean and std per channel)")


FORWARD_ERRORS = (RuntimeError, AssertionError, ValueError)  # what a model raises for an input it cannot take


def takes_size(forward: Callable[[torch.Tensor], object], channels: int, size: int | tuple[int, int],
               device: torch.device | str | None = None) -> bool:
    """Whether `forward` runs on a grey image of `size` pixels (a side, or height and width): tells a size
    rejection from a bug in the model."""
    height, width = (size, size) if isinstance(size, int) else size
    grey = torch.full((1, channels, height, width), 0.5, device=device)
    try:
        with torch.no_grad():
            forward(grey)
    except FORWARD_ERRORS:
        return False
    return True


def size_rejection(name: str, shape: Sequence[int], exc: BaseException, input_size: int,
                   advice: str = "") -> DreamlabError:
    """The one line for a model that rejects an input of `shape` [B, C, H, W] and takes its recipe's size."""
    side = "x".join(map(str, shape[1:]))
    return DreamlabError(f"{name} rejected a {side} input ({first_line(exc)}); it runs at its recipe's size: use "
                         f"--size {input_size}{advice}")


COMMON_SIZES = (28, 32, 64, 96, 128, 299)  # input sides a module without a recipe is tried at when 224 fails


def unsized_module_error(recipe: Recipe, shape: Sequence[int], exc: BaseException,
                         accepts: Callable[[int], bool]) -> DreamlabError | None:
    """For a module passed without a recipe (whose made-up recipe assumes 224 px) that fails on an input of
    `shape`: if it takes one of COMMON_SIZES (`accepts(side)`), the one line that says how to give that size;
    None when it takes none of them (a bug in the module, whose own error should show) or has a real recipe."""
    if not recipe.builder.startswith("custom:"):
        return None
    side = next((n for n in COMMON_SIZES if n != recipe.input_size and accepts(n)), None)
    if side is None:
        return None
    shown = "x".join(map(str, shape[1:]))
    return DreamlabError(f"{recipe.name} failed on a {shown} input ({first_line(exc)}) and runs on {side}x{side}; "
                         f"for a module with a fixed input size, say it: recipe=dreamlab.Recipe({recipe.name!r}, "
                         f"'custom:{recipe.name}', input_size={side}, channels={recipe.channels}), and render with "
                         f"transforms='none' (or 'small'), which keep the size")
