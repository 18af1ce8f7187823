"""A render input the model rejected for its size, told in one line with what works: a larger render size, a
model_size, the recipe's size, or transforms that keep the size."""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from dreamlab.errors import DreamlabError, first_line
from dreamlab.models.prepare import minimum_side, size_rejection, unsized_module_error
from dreamlab.models.recipe import Recipe
from dreamlab.optvis.settings import RenderSettings
from dreamlab.optvis.transforms import size_keeping_presets

Accepts = Callable[[int | tuple[int, int]], bool]  # whether the model runs on a grey input of that size


class TransformsOutgrowModel(DreamlabError):
    """A fixed-size model rejects what the transforms make of an image of its own size (their padding grows it)."""


def rejected_size_error(exc: BaseException, model_input: Tensor, model: nn.Module, recipe: Recipe,
                        settings: RenderSettings, accepts: Accepts) -> DreamlabError | None:
    """The error for a forward that failed with `exc` on `model_input` (the render's grey input after the
    transforms and model_size), naming a size that works; None where the model fails at its own size too, so
    that its own error is the one to show."""
    size = recipe.input_size
    model_size = settings.model_height_width
    shown = "x".join(map(str, model_input.shape[1:]))
    smallest = _smallest_side(accepts, min(model_input.shape[2:]), size)
    if model_size is not None and model_size != (size, size) and accepts(size):
        if smallest is not None:
            return DreamlabError(f"{recipe.name} rejected a {shown} input at model_size "
                                 f"{model_size[0]}x{model_size[1]} ({first_line(exc)}); the smallest size it "
                                 f"takes is {smallest}x{smallest}: give model_size={smallest} or more "
                                 f"(--model-size {smallest}), or its recipe's {size}")
        return DreamlabError(f"{recipe.name} rejected a {shown} input at model_size "
                             f"{model_size[0]}x{model_size[1]} ({first_line(exc)}); it runs at its recipe's "
                             f"size: give model_size={size} (--model-size {size})")
    # "use size N or more": where the model takes N with the transforms' padding added
    padding = (model_input.shape[2] - settings.height_width[0], model_input.shape[3] - settings.height_width[1])
    if smallest is not None and accepts((smallest + padding[0], smallest + padding[1])):
        return DreamlabError(f"{recipe.name} rejected a {shown} input ({first_line(exc)}); the smallest "
                             f"size it takes is {smallest}x{smallest}: use size {smallest} or more (--size "
                             f"{smallest}), or render this size and show the model {size}x{size} "
                             f"(model_size={size}, --model-size {size})")
    if tuple(model_input.shape[2:]) == (size, size) or not accepts(size):
        unsized = unsized_module_error(recipe, model_input.shape, exc, accepts,
                                       rendered=model_size or settings.height_width)
        if unsized is not None:
            return unsized
        convolves = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
        if recipe.builder.startswith("custom:") and not convolves and not accepts(tuple(model_input.shape[2:])):
            # a module passed as it is that has no convolution and takes no image at any size tried (an
            # nn.Linear); a convolutional one that fails is a bug of its own, whose error shows
            c = recipe.channels
            return DreamlabError(f"{recipe.name} failed on a {shown} image ({first_line(exc)}), and at "
                                 f"every common size; render needs a model that takes images [batch, "
                                 f"channels, height, width]: try model(torch.rand(1, {c}, 224, 224))")
        return None  # the model fails at its own size too: its error, not a size rejection
    keeping = size_keeping_presets()
    keep = f"transforms={' or '.join(map(repr, keeping))}, --transforms {' or '.join(keeping)}"
    if settings.height_width == (size, size):  # the model's own size: the transforms alone are at fault
        chosen = settings.transforms
        named = f"transforms {chosen!r}" if isinstance(chosen, str) else "the transforms"
        return TransformsOutgrowModel(
            f"{recipe.name} takes {size}x{size} inputs only, and {named} pad the {size}x{size} image to "
            f"{model_input.shape[-2]}x{model_input.shape[-1]} ({first_line(exc)}): use transforms that "
            f"keep the size ({keep}), or show the model each step's images resized to {size}x{size} "
            f"(model_size={size}, --model-size {size})")
    return TransformsOutgrowModel(str(size_rejection(
        recipe.name, model_input.shape, exc, size, f" and transforms that keep the size ({keep}), or "
        f"render at another size with model_size={size} (--model-size {size})")))


def _smallest_side(accepts: Accepts, side: int, size: int) -> int | None:
    """The smallest square side, above a rejected `side` and below the recipe's `size`, from which the model
    takes every size (prepare.minimum_side), or None: it takes its recipe's size only, or not even that."""
    least = minimum_side(accepts, side, size) if accepts(size) else None
    return least if least is not None and least < size else None
