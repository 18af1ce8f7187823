"""Recipes: per-architecture settings (builder, weights, preprocessing, render defaults) as TOML data.

Shipped recipes live in the top-level `recipes/` folder, installed as the package `dreamlab.recipes`.
Any torchvision classification model without a recipe gets one derived from its weights' metadata.

>>> recipe = load_recipe("googlenet")
>>> recipe.input_size, recipe.default_layer
(224, 'inception4c')
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from dreamlab.errors import DreamlabError, UnknownNameError, checked_keywords, close_matches, unknown
from dreamlab.optvis.choices import OPTIMIZER_NAMES, PARAM_NAMES, TRANSFORM_PRESETS

TORCHVISION_PREFIX = "torchvision:"
TORCHVISION_PREFIXES = ("torchvision:", "torchvision.models:")  # the second: recipes written before the registry
# the Fourier spectrum's 1/f^decay scale reaches size^decay: lucid uses decay 1 and the recipes 0.5 to 1, so 4
# leaves ample room, while decays far above it overflow float32 (100 at 28 px made the first score NaN)
MAX_FOURIER_DECAY = 4.0
# Both optimizers move each image parameter by about lr per step whatever the gradient (Adam's normalized step),
# and a sigmoid maps those parameters to [0, 1]: a step of 10 already saturates every pixel, so 1000 is far past
# any useful rate (the recipes use 0.02 to 0.05), while rates near float32's largest value (3.4e38) overflow
# inside the optimizer mid-render
MAX_LR = 1000.0


@checked_keywords
@dataclass(frozen=True)
class Recipe:
    """What differs between architectures. Field names are the TOML keys."""

    name: str
    builder: str  # "torchvision:<name>", "zoo:<name>", a name given to register_builder, or "module:function"
    # "default": the builder's own default weights (torchvision's DEFAULT member, the zoo's shipped ones); a
    # torchvision enum member (IMAGENET1K_V1); "none"; or another value the builder takes
    weights: str = "default"
    # builder arguments when dreamlab builds the model (random init, local weights file); a torchvision
    # weights enum sets its own
    builder_kwargs: dict[str, Any] = field(default_factory=dict)
    weights_kwargs: dict[str, Any] = field(default_factory=dict)  # added to builder_kwargs for a local weights file
    input_size: int = 224
    channels: int = 3
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)  # ImageNet statistics, as torchvision's weights use them
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    categories: tuple[str, ...] | None = None  # None: taken from the torchvision weights' metadata
    default_layer: str | None = None
    cam_layer: str | None = None  # Grad-CAM's default layer (the last conv block); None: the last spatial layer
    param: str = "fourier"
    transforms: str = "standard"
    fill: float = 0.5  # grey level shown where transforms uncover the canvas (0 for digits on black)
    lr: float = 0.05
    steps: int = 512
    optimizer: str = "channel-adam"  # or "adam" (per-coordinate, as lucid); see dreamlab/optvis/optimizers.py
    fourier_decay: float = 0.5  # the Fourier spectrum's 1/f^decay scale; 0.5 with channel-adam, 1 with adam
    start_level: float = 0.5  # the grey level the random start image is centred on (0.05 for digits on black)
    # render settings of objectives that read a layer, over the ones above: {layer: {key: value}}, keys from
    # LAYER_KEYS; in TOML, tables like [layers."features.29"]
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # not a TOML key, nor a setting: the .toml file load_recipe read it from (None for a shipped recipe, a derived
    # one or one built in Python), so that errors name the file to edit; left out of equality, hash() and keys
    source: str | None = field(default=None, compare=False, repr=False, kw_only=True)

    def __post_init__(self) -> None:
        """Checked where it is written, as a recipe file is: `Recipe("r", "zoo:x", lr="fast")` is refused here,
        not when a render first uses it."""
        _check_fields(self)

    def for_layers(self, layers: Iterable[str]) -> Recipe:
        """The recipe an objective reading `layers` renders with: the [layers."NAME"] settings of those layers
        applied over the top-level ones. Where two of them set one key, the table written later in the recipe
        wins (recipes list layers shallow to deep, so the deepest layer's).

        >>> r = Recipe("r", "zoo:x", steps=256, layers={"deep": {"steps": 512}})
        >>> r.for_layers(["deep"]).steps, r.for_layers(["shallow"]).steps
        (512, 256)
        """
        wanted = set(layers)
        chosen: dict[str, Any] = {}
        for layer, settings in self.layers.items():
            if layer in wanted:
                chosen.update(settings)
        return dataclasses.replace(self, **chosen) if chosen else self

    @property
    def called(self) -> str:
        """What errors call the recipe: the file it was read from, else its name ("recipe {called}")."""
        return self.source or self.name

    @property
    def is_torchvision(self) -> bool:
        """Whether the builder is a torchvision model."""
        return self.builder.startswith(TORCHVISION_PREFIXES)

    @property
    def torchvision_name(self) -> str:
        """The torchvision model's name in the builder ('googlenet' of 'torchvision:googlenet')."""
        return self.builder.partition(":")[2]

    def hash(self) -> str:
        """A stable digest of every setting, recorded with rendered images."""
        settings = {key: value for key, value in dataclasses.asdict(self).items() if key in RECIPE_KEYS}
        settings.pop("cam_layer")  # attribution only: renders (and their recorded hashes) do not depend on it
        if not settings["layers"]:
            settings.pop("layers")  # recipes without per-layer settings keep the hashes recorded before they existed
        data = json.dumps(settings, sort_keys=True, default=list)
        return "sha256:" + hashlib.sha256(data.encode()).hexdigest()[:16]


RECIPE_KEYS = tuple(f.name for f in dataclasses.fields(Recipe) if f.name != "source")  # the TOML keys
LAYER_KEYS = ("steps", "lr", "optimizer", "param", "transforms", "fourier_decay", "start_level")  # per layer


NAMED_CHOICES = {"param": PARAM_NAMES, "optimizer": OPTIMIZER_NAMES, "transforms": TRANSFORM_PRESETS}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_value(key: str, value: Any) -> str | None:
    """What is wrong with one recipe value (None when it is fine)."""
    if key in NAMED_CHOICES:
        if value in NAMED_CHOICES[key]:
            return None
        matches = close_matches(value, NAMED_CHOICES[key]) if isinstance(value, str) else []
        close = f" (close matches: {', '.join(matches)})" if matches else ""
        return f"one of {', '.join(NAMED_CHOICES[key])}{close}"
    if key in ("name", "builder", "weights"):
        return None if isinstance(value, str) and value else "a non-empty string"
    if key in ("default_layer", "cam_layer"):
        return None if isinstance(value, str) else "a layer name (a string)"
    if key in ("builder_kwargs", "weights_kwargs"):
        return None if isinstance(value, dict) else "a table of builder arguments ({ name = value })"
    if key == "input_size":  # the largest side any command takes (summary.MAX_INPUT_SIZE)
        return None if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 2048 else \
            "a whole number of pixels from 1 to 2048"
    if key == "steps":
        return None if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else \
            "a positive integer"
    if key == "channels":
        return None if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4 else \
            "an integer from 1 to 4"
    if key in ("mean", "std"):
        if not isinstance(value, list) or not value or not all(_number(v) for v in value):
            return "a list of numbers, one per channel, like [0.485, 0.456, 0.406]"
        if key == "std" and not all(v > 0 for v in value):
            return "a list of positive numbers (a std of 0 divides by zero)"
        return None
    if key == "categories":
        return None if isinstance(value, list) and all(isinstance(v, str) for v in value) else \
            'a list of class names, like ["cat", "dog"]'
    if key == "lr":
        return None if _number(value) and 0 < value <= MAX_LR else \
            f"a number above 0 up to {MAX_LR:g} (the recipes use 0.02 to 0.05)"
    if key in ("fill", "start_level"):
        return None if _number(value) and 0 <= value <= 1 else "a number from 0 to 1"
    if key == "fourier_decay":
        return None if _number(value) and 0 <= value <= MAX_FOURIER_DECAY else \
            f"a number from 0 to {MAX_FOURIER_DECAY:g}"
    if key == "layers":
        return None if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()) else \
            'tables of per-layer settings, like [layers."features.29"] with steps = 512'
    return None


def _refuse_bad_value(where: str, key: str, value: Any) -> None:
    wanted = _check_value(key, value)
    if wanted:
        raise DreamlabError(f"{where}: {key} = {_toml_repr(value)} is not valid; {key} must be {wanted}")


def _check_layer_settings(layers: dict[str, dict[str, Any]], source: str) -> None:
    for layer, settings in layers.items():
        where = f'recipe {source}: [layers."{layer}"]'
        for key, value in settings.items():
            if key not in LAYER_KEYS:
                raise DreamlabError(f"{where}: {key!r} cannot be set per layer; valid: {', '.join(LAYER_KEYS)}")
            _refuse_bad_value(where, key, value)


def _values(count: int) -> str:
    return f"{count} value" if count == 1 else f"{count} values"


def _check_fields(recipe: Recipe) -> None:
    """Every field's type and range, the per-layer tables, and a mean and std per channel, as one line."""
    where = f"recipe {recipe.source}" if recipe.source else f"recipe {recipe.name!r}"
    for key in RECIPE_KEYS:
        value = getattr(recipe, key)
        if key == "channels" and isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            continue  # a file gives images of 1 to 4 channels; the recipe made up for a module may read more
        if value is not None:
            _refuse_bad_value(where, key, list(value) if isinstance(value, tuple) else value)
    _check_layer_settings(recipe.layers, repr(recipe.name))
    if len(recipe.mean) != recipe.channels or len(recipe.std) != recipe.channels:
        raise DreamlabError(f"{where}: mean and std need {_values(recipe.channels)} (channels = {recipe.channels}), "
                            f"got {len(recipe.mean)} and {len(recipe.std)}")


def recipe_from_dict(data: dict[str, Any], source: str, file: str | None = None) -> Recipe:
    """Validate a parsed TOML table into a Recipe: unknown keys and values of the wrong type are refused, the
    key named, with what is valid. `file`: the .toml file it was read from (the Recipe's `source`)."""
    bad = sorted(set(data) - set(RECIPE_KEYS))
    if bad:
        raise DreamlabError(f"recipe {source}: unknown key {bad[0]!r}; valid keys: {', '.join(RECIPE_KEYS)}")
    for key in ("name", "builder"):
        if key not in data:
            raise DreamlabError(f"recipe {source}: missing required key {key!r}")
    for key, value in data.items():
        _refuse_bad_value(f"recipe {source}", key, value)
    _check_layer_settings(data.get("layers", {}), source)
    data = dict(data)
    for key in ("mean", "std", "categories"):
        if data.get(key) is not None:
            data[key] = tuple(data[key])
    return Recipe(**data, source=file)  # its own check names the file (mean and std per channel)


def check_recipe(recipe: Recipe) -> Recipe:
    """A Recipe built in Python, checked as a recipe file is (types, ranges, a std of 0, mean/std per channel)."""
    if not isinstance(recipe, Recipe):
        raise DreamlabError(f"recipe must be a Recipe, got {type(recipe).__name__}")
    data = {key: getattr(recipe, key) for key in RECIPE_KEYS}
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items() if v is not None}
    return recipe_from_dict(data, repr(recipe.name), recipe.source)


def _toml_repr(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def shipped_recipe_names() -> list[str]:
    """Names of the recipes installed with dreamlab (file stems of recipes/*.toml)."""
    folder = resources.files("dreamlab.recipes")
    return sorted(p.name[:-5].replace("_", "-") for p in folder.iterdir() if p.name.endswith(".toml"))


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DreamlabError(f"recipe {source} is not valid TOML: {exc}") from None


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A shipped recipe by name ('googlenet', 'lenet-digits'), a TOML file path, or a derived torchvision recipe."""
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if path.is_dir():
            raise DreamlabError(f"recipe {str(path)!r} is a folder, not a TOML recipe file; give the .toml file")
        if not path.is_file():
            where = "" if path.is_absolute() else f" (a relative path is read from {Path.cwd()})"
            raise DreamlabError(f"recipe file {str(path)!r} does not exist{where}; give the path of a .toml recipe "
                                f"file, or a shipped recipe by name: {', '.join(shipped_recipe_names())}")
        try:
            text = path.read_text(encoding="utf-8")
        except PermissionError:
            raise DreamlabError(f"cannot read recipe {str(path)!r}: permission denied; give a file you can read "
                                f"(chmod u+r)") from None
        except UnicodeDecodeError as exc:
            raise DreamlabError(f"recipe {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8 "
                                f"TOML") from None
        # the file as the caller wrote it ("./r.toml" stays so) names the recipe in the errors of what uses it
        return recipe_from_dict(_read_toml(text, str(path)), str(path), str(name_or_path))
    name = str(name_or_path)
    stem = name.replace("-", "_")
    resource = resources.files("dreamlab.recipes") / f"{stem}.toml"
    if resource.is_file():
        return recipe_from_dict(_read_toml(resource.read_text(), f"{stem}.toml"), f"{stem}.toml")
    try:
        return torchvision_recipe(name)
    except UnknownNameError:
        if path.is_dir():  # a path given as --recipe: say what it is rather than "unknown model"
            raise DreamlabError(f"recipe {name!r} is a folder, not a TOML recipe file; give a .toml recipe file or "
                                f"a model name ({', '.join(shipped_recipe_names())})") from None
        if path.is_file():
            raise DreamlabError(f"recipe {name!r} is not a TOML recipe file (recipe files end in .toml); give a "
                                f".toml recipe file, or rename it if it is one") from None
        raise


# torchvision's model families other than classification: their names are not models dreamlab builds by name
OTHER_TORCHVISION_FAMILIES = ("segmentation", "detection", "video", "optical_flow", "quantization")
OTHER_FAMILY_ADVICE = {  # what works instead, where something does
    "segmentation": "; build it yourself and pass the module to the Python API with one of its layers: "
                    "dreamlab.render(model, 'LAYER:UNIT'), dreamlab.layer_table(model) lists them (its output is a "
                    "dict, which logit cannot read)",
}


def torchvision_recipe(name: str) -> Recipe:
    """A recipe for any torchvision classification model, with preprocessing from its default weights."""
    import torchvision.models as tvm

    names = tvm.list_models(module=tvm)
    if name not in names:
        family = next((f for f in OTHER_TORCHVISION_FAMILIES if name in tvm.list_models(module=getattr(tvm, f))), None)
        if family is not None:
            raise UnknownNameError(f"{name!r} is a torchvision {family.replace('_', ' ')} model; dreamlab names "
                                   f"torchvision's classification models (resnet18, convnext_tiny: "
                                   f"torchvision.models.list_models(module=torchvision.models)) and its recipes "
                                   f"({', '.join(shipped_recipe_names())}){OTHER_FAMILY_ADVICE.get(family, '')}")
        raise unknown("model", name, shipped_recipe_names() + names,
                      hint="shipped recipes: " + ", ".join(shipped_recipe_names()))
    weights = tvm.get_model_weights(name).DEFAULT
    preprocess = weights.transforms()
    return Recipe(
        name=name,
        builder=TORCHVISION_PREFIX + name,
        weights="DEFAULT",
        input_size=int(preprocess.crop_size[0]),
        mean=tuple(preprocess.mean),
        std=tuple(preprocess.std),
    )
