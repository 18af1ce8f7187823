"""Where the inspection views get their model: a recipe or torchvision name, a LoadedModel, or a caller's module."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dreamlab.attribution.inputs import shown
from dreamlab.errors import DreamlabError
from dreamlab.models.loading import LoadedModel
from dreamlab.models.prepare import FORWARD_ERRORS, model_device, resolve_model, takes_size, unsized_module_error
from dreamlab.models.recipe import Recipe


def model_and_recipe(model: nn.Module | str | Path | LoadedModel, recipe: Recipe | str | Path | None = None,
                     weights: str | Path | None = "default") -> tuple[nn.Module, Recipe, str]:
    """The module, the recipe that describes its input (size, channels, mean, std), and where its weights came from.

    A module passed without a recipe gets ImageNet-style settings at 224 px for the channels its first
    convolution reads, as `render` gives it; pairings `render` refuses (a model name with `recipe=`, a module with
    `weights=`) are refused here too.
    """
    module, recipe_obj, described, _, _ = resolve_model(model, recipe, weights)
    return module, recipe_obj, described


def check_layer(layer: object) -> None:
    """A layer address is a string ('inception4c', 'conv1.conv'); anything else is refused in one line."""
    if not isinstance(layer, str):
        raise DreamlabError(f"layer must be a string, a dotted module address such as 'conv1' or 'inception4c', got "
                            f"{shown(layer)}; `dreamlab layers MODEL` lists them")


def forward_error(model: nn.Module, recipe: Recipe, shape: torch.Size, exc: BaseException) -> DreamlabError | None:
    """The one line for a caller's module, passed without a recipe, that fails on an input of `shape` because it
    takes another fixed size (how to say it in a Recipe); None for any other failure, whose own error shows."""
    def runs(size: int | tuple[int, int]) -> bool:
        return takes_size(model, recipe.channels, size, model_device(model) or torch.device("cpu"))

    return unsized_module_error(recipe, shape, exc, runs, rendering=False) if isinstance(exc, FORWARD_ERRORS) \
        else None
