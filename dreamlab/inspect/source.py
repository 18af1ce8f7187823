"""Where the inspection views get their model: a recipe or torchvision name, a LoadedModel, or a caller's module."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from dreamlab.attribution.inputs import shown
from dreamlab.errors import DreamlabError
from dreamlab.models.loading import LoadedModel, load_model
from dreamlab.models.prepare import custom_recipe
from dreamlab.models.recipe import Recipe, load_recipe


def model_and_recipe(model: nn.Module | str | Path | LoadedModel, recipe: Recipe | str | Path | None = None,
                     weights: str | Path | None = "default") -> tuple[nn.Module, Recipe, str]:
    """The module, the recipe that describes its input (size, channels, mean, std), and where its weights came from.

    A module passed without a recipe gets ImageNet-style settings at 224 px for the channels its first
    convolution reads, as `render` gives it.
    """
    if isinstance(model, (str, Path)):
        model = load_model(recipe if recipe is not None else model, weights)
    if isinstance(model, LoadedModel):
        return model.model, model.recipe, model.weights
    if isinstance(recipe, (str, Path)):
        recipe = load_recipe(recipe)
    return model, recipe or custom_recipe(model), "caller's module"


def check_layer(layer: object) -> None:
    """A layer address is a string ('inception4c', 'conv1.conv'); anything else is refused in one line."""
    if not isinstance(layer, str):
        raise DreamlabError(f"layer must be a string, a dotted module address such as 'conv1' or 'inception4c', got "
                            f"{shown(layer)}; `dreamlab layers MODEL` lists them")
