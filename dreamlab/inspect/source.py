"""Where the inspection views get their model (a recipe or torchvision name, a LoadedModel, or a caller's module),
and the provenance their PNGs share with render's: model, weights, recipe hash, device, versions (an input image's
record is io.image_record)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dreamlab.attribution.photos import versions
from dreamlab.errors import DreamlabError, shown
from dreamlab.models.loading import LoadedModel, resolve_layer, weights_provenance
from dreamlab.models.prepare import (FORWARD_ERRORS, model_device, resolve_model, takes_size, too_small_error,
                                     unsized_module_error)
from dreamlab.models.recipe import Recipe


def model_and_recipe(model: nn.Module | str | Path | LoadedModel, recipe: Recipe | str | Path | None = None,
                     weights: str | Path | None = "default"
                     ) -> tuple[nn.Module, Recipe, str, tuple[str, ...] | None]:
    """The module, the recipe that describes its input (size, channels, mean, std), where its weights came from,
    and its class names (None where it has none).

    A module passed without a recipe gets ImageNet-style settings at 224 px for the channels its first
    convolution reads, as `render` gives it; pairings `render` refuses (a model name with `recipe=`, a module with
    `weights=`) are refused here too.
    """
    module, recipe_obj, described, categories, _ = resolve_model(model, recipe, weights)
    return module, recipe_obj, described, categories


def provenance(module: nn.Module, recipe: Recipe, weights: str, layer: str) -> dict[str, str]:
    """The text chunks every inspection PNG starts from, under render's keys (model, weights and random init's
    seed, recipe and its hash, device, versions), with the layer and what kind of module it is."""
    from dreamlab.optvis.capture import OUTPUT

    device = model_device(module) or torch.device("cpu")
    if layer == OUTPUT:
        kind = "the model's output"
    else:  # type and settings in one line (`repr` of a block would list all its children)
        found = resolve_layer(module, layer)
        kind = f"{type(found).__name__}({found.extra_repr()})"
    return {"dreamlab:model": recipe.name, **weights_provenance(weights),  # random init's seed, a file's sha256
            "dreamlab:recipe": recipe.name, "dreamlab:recipe_hash": recipe.hash(), "dreamlab:layer": layer,
            "dreamlab:layer_module": kind, "dreamlab:device": device.type, **versions()}


def check_layer(layer: object) -> None:
    """A layer address is a non-empty string ('inception4c', 'conv1.conv'); anything else is refused in one line."""
    if not isinstance(layer, str):
        raise DreamlabError(f"layer must be a string, a dotted module address such as 'conv1' or 'inception4c', got "
                            f"{shown(layer)}; `dreamlab layers MODEL` lists them")
    if not layer.strip():  # (else features told it in capture()'s words: capture(model, ['inception4c']))
        raise DreamlabError(f"layer {layer!r} is empty: give a dotted module address such as 'conv1' or "
                            f"'inception4c'; `dreamlab layers MODEL` lists them")


def forward_error(model: nn.Module, recipe: Recipe, shape: torch.Size, exc: BaseException) -> DreamlabError | None:
    """The one line for a model that fails on an input of `shape` because of its size: a shorter side other than
    the recipe's (examples' size), where the model takes the recipe's, is told the smallest size it takes or its
    recipe's, as render words --size; a recipe whose size the model does not take, how to say one it does
    (unsized_module_error). None for any other failure, whose own error shows."""
    def runs(size: int | tuple[int, int]) -> bool:
        return takes_size(model, recipe.channels, size, model_device(model) or torch.device("cpu"))

    if not isinstance(exc, FORWARD_ERRORS):
        return None
    size, shorter = recipe.input_size, min(shape[-2:])
    if shorter != size and not runs(tuple(shape[-2:])) and runs(size):
        return too_small_error(recipe.name, shape, exc, size, runs)
    return unsized_module_error(recipe, shape, exc, runs, rendering=False)
