"""Building models from recipes and loading their weights (torchvision enums, local files, or none).

>>> loaded = load_model("googlenet", weights="none")      # random init, no download
>>> loaded.model.__class__.__name__, loaded.weights
('GoogLeNet', 'none')
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dreamlab.errors import DreamlabError, WeightsError, unknown
from dreamlab.models.recipe import Recipe, load_recipe


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for rendering, with the recipe that describes it and where its weights came from."""

    model: nn.Module
    recipe: Recipe
    weights: str  # "IMAGENET1K_V1", "none", "default", or the path of a local file
    categories: tuple[str, ...] | None


def _import_builder(spec: str):
    module_name, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise DreamlabError(f"recipe builder {spec!r} cannot be imported: {exc}") from None


def torchvision_categories(recipe: Recipe) -> tuple[str, ...] | None:
    """Class names from the weights metadata (ships with torchvision, no download)."""
    if not recipe.is_torchvision:
        return None
    import torchvision.models as tvm

    try:
        meta = tvm.get_model_weights(recipe.torchvision_name).DEFAULT.meta
    except (ValueError, AttributeError):
        return None
    return tuple(meta.get("categories") or ()) or None


def _torchvision_weights_enum(recipe: Recipe, member: str):
    import torchvision.models as tvm

    enum = tvm.get_model_weights(recipe.torchvision_name)
    if member == "DEFAULT":
        return enum.DEFAULT
    try:
        return enum[member]
    except KeyError:
        raise unknown(f"weights for {recipe.name}", member, ["DEFAULT", "none", *enum.__members__],
                      hint="or give a local file with --weights PATH") from None


def _build_with_download(recipe: Recipe, member: str) -> nn.Module:
    import torchvision.models as tvm

    weights = _torchvision_weights_enum(recipe, member)
    try:  # torchvision sets the builder arguments its weights need itself
        return tvm.get_model(recipe.torchvision_name, weights=weights)
    except OSError as exc:  # urllib's URLError and socket errors are OSErrors
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(
            f"could not download the {weights} weights of {recipe.name} ({reason}); "
            f"use --weights PATH for a local state-dict file, or --weights none for random init"
        ) from None


def load_state_dict_file(model: nn.Module, path: Path, model_name: str) -> None:
    """Load a state dict saved with torch.save into `model`; mismatches are named in the error."""
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist; give a state-dict file saved with torch.save")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors have no common base class
        raise WeightsError(f"cannot read weights file {str(path)!r} as a state dict ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    for wrapper in ("state_dict", "model"):  # checkpoints that wrap the state dict
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise WeightsError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state dict")
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel/DDP
        state = {k[len("module."):]: v for k, v in state.items()}
    # parts the model does not build (GoogLeNet's aux heads are None without aux_logits) have no use for weights
    state = {k: v for k, v in state.items() if getattr(model, k.split(".")[0], ...) is not None}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    shapes = [f"{k} (file {list(state[k].shape)}, model {list(v.shape)})" for k, v in expected.items()
              if k in state and hasattr(state[k], "shape") and state[k].shape != v.shape]
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", extra), ("shape mismatches", shapes)):
        if keys:
            more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
            problems.append(f"{label}: {', '.join(keys[:3])}{more}")
    if problems:
        raise WeightsError(f"weights file {str(path)!r} does not fit {model_name}: " + "; ".join(problems))
    model.load_state_dict(state)


def build_model(recipe: Recipe, weights: str | Path | None = "default") -> tuple[nn.Module, str]:
    """Build the recipe's model. `weights`: 'default', 'none'/None, a torchvision enum member, or a file path."""
    if weights is None:
        weights = "none"
    choice = str(weights)
    as_path = Path(choice)
    is_file = isinstance(weights, Path) or as_path.suffix in (".pt", ".pth", ".bin", ".ckpt") or as_path.exists()
    if choice == "default":
        choice = recipe.weights
    if is_file:
        model = _call_builder(recipe, None, recipe.weights_kwargs)
        load_state_dict_file(model, as_path, recipe.name)
        return model, str(as_path)
    if choice.lower() == "none":
        return _call_builder(recipe, None, {}), "none"
    if recipe.is_torchvision:
        return _build_with_download(recipe, choice), str(_torchvision_weights_enum(recipe, choice)).split(".")[-1]
    return _call_builder(recipe, choice, {}), choice


def _call_builder(recipe: Recipe, weights: Any, extra: dict[str, Any]) -> nn.Module:
    kwargs = {**recipe.builder_kwargs, **extra}
    if recipe.is_torchvision:
        import torchvision.models as tvm

        return tvm.get_model(recipe.torchvision_name, weights=None, **kwargs)
    return _import_builder(recipe.builder)(weights=weights, **kwargs)


def load_model(name: str | Path | Recipe, weights: str | Path | None = "default") -> LoadedModel:
    """A model by recipe name, recipe file or torchvision name, in eval mode with frozen parameters."""
    recipe = name if isinstance(name, Recipe) else load_recipe(name)
    model, described = build_model(recipe, weights)
    model.eval().requires_grad_(False)
    categories = recipe.categories or torchvision_categories(recipe)
    return LoadedModel(model=model, recipe=recipe, weights=described, categories=categories)


def module_names(model: nn.Module) -> list[str]:
    """Every addressable (non-root) module name, in registration order."""
    return [name for name, _ in model.named_modules() if name]


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule at dotted address `name`; an unknown name lists close matches."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    raise unknown("layer", name, module_names(model), hint="`dreamlab layers MODEL` lists them all")
