"""Building models from recipes and loading their weights (torchvision enums, local files, or none).

>>> loaded = load_model("googlenet", weights="none")      # random init, no download
>>> loaded.model.__class__.__name__, loaded.weights
('GoogLeNet', 'none')
"""
from __future__ import annotations

import contextlib
import enum
import functools
import importlib
import io
import os
import re
import shlex
import sys
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dreamlab.errors import (DownloadError, DreamlabError, DreamlabNote, UnknownNameError, WeightsError,
                             checked_keywords, close_matches, unknown)
from dreamlab.io import file_digest
from dreamlab.models.recipe import Recipe, load_recipe

# What `dreamlab layers` is given to list a loaded model's layers (its recipe name, or the recipe file it came
# from), so that an unknown layer's hint names it; a model built another way is absent (the hint says MODEL).
_LISTED_AS: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()

# Random init ("--weights none") draws from this seed, never from the global RNG, so the same command gives the
# same model in every process; renders record it as dreamlab:weights_seed, gallery units as weights_seed.
WEIGHTS_SEED = 0


def weights_provenance(weights: object) -> dict[str, str]:
    """A PNG's `dreamlab:weights`, and for random init ('none') the seed it was drawn from, `dreamlab:weights_seed`,
    or for a weights file the sha256 of its bytes, `dreamlab:weights_sha256` (a path alone does not say which
    weights were read once the file is retrained or replaced): the keys every command that writes a PNG records."""
    text = {"dreamlab:weights": str(weights)}
    if weights == "none":
        text["dreamlab:weights_seed"] = str(WEIGHTS_SEED)
    elif isinstance(weights, (str, Path)) and is_weights_file(weights) and Path(weights).is_file():
        stat = Path(weights).stat()
        text["dreamlab:weights_sha256"] = _weights_digest(str(Path(weights).resolve()), stat.st_mtime_ns, stat.st_size)
    return text


@functools.lru_cache(maxsize=8)
def _weights_digest(path: str, mtime_ns: int, size: int) -> str:
    """io.file_digest of a weights file, cached by path, modification time and size, so that the images of one
    render hash the file once (a VGG's is 500 MB)."""
    return file_digest(path)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for rendering, with the recipe that describes it and where its weights came from."""

    model: nn.Module
    recipe: Recipe
    weights: str  # "IMAGENET1K_V1", "none", "default", or the path of a local file
    categories: tuple[str, ...] | None


# Builders a recipe may name without running code of its choosing. Values are "module:function" inside dreamlab,
# imported only when used. A recipe that names any other "module:function" is refused unless code is allowed.
_BUILDERS: dict[str, Callable[..., nn.Module] | str] = {
    "zoo:lenet_digits": "dreamlab.models.zoo.digits:lenet_digits",
    "zoo:digits_judge": "dreamlab.models.zoo.digits:digits_judge",
    "zoo:hed_vgg16": "dreamlab.models.zoo.hed:hed_vgg16",
    "zoo:inceptionv1": "dreamlab.models.zoo.inceptionv1:inceptionv1",
    "quality:planted": "dreamlab.apps.quality.planted:build_planted",
}
# Registered builders that exist for dreamlab's own measures and tests (the quality judge, the planted model): they
# load when named exactly, but errors never offer them to users, whose recipes have no use for them
_INTERNAL_BUILDERS = frozenset({"zoo:digits_judge", "quality:planted"})
ALLOW_CODE_ENV = "DREAMLAB_ALLOW_RECIPE_CODE"  # "1": a recipe's builder may be any importable module:function


def register_builder(name: str, builder: Callable[..., nn.Module]) -> None:
    """Let recipes name `builder` as `builder = "<name>"`; it is called as builder(weights=..., **builder_kwargs)."""
    if not isinstance(name, str) or not name or name.startswith(("torchvision:", "torchvision.models:")):
        raise DreamlabError(f"builder name {name!r} must be a non-empty string outside torchvision's namespace")
    if not callable(builder):
        raise DreamlabError(f"register_builder({name!r}, ...) needs a callable that returns an nn.Module")
    _BUILDERS[name] = builder


def code_allowed(allow_code: bool = False) -> bool:
    """Whether recipes may name arbitrary module:function builders (the API flag or the environment says so)."""
    return allow_code or os.environ.get(ALLOW_CODE_ENV, "") == "1"


def _builder(recipe: Recipe, allow_code: bool) -> Callable[..., nn.Module]:
    spec = recipe.builder
    # recipes written before the registry spell a registered builder by its module path: same function, no new code
    found = _BUILDERS.get(spec) or next((b for b in _BUILDERS.values() if b == spec), None)
    if found is None:
        if ":" not in spec or not code_allowed(allow_code):
            offered = sorted(name for name in _BUILDERS if name not in _INTERNAL_BUILDERS)
            zoo = ", ".join(offered)
            close = close_matches(spec, offered, n=1)
            meant = f" (did you mean {close[0]!r}?)" if close else ""
            raise DreamlabError(
                f"recipe {recipe.called}: builder {spec!r} is not a registered builder{meant} (torchvision:<model "
                f"name>, {zoo}); naming any module:function would run its code, which needs --allow-recipe-code (or "
                f"{ALLOW_CODE_ENV}=1, or load_model(..., allow_code=True)); from Python, register_builder() it")
        found = spec
    if callable(found):
        return found
    module_name, _, attr = found.partition(":")
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


def _torchvision_weights_enum(recipe: Recipe, member: str, origin: str = ""):
    """The torchvision weights enum member; `origin` names where `member` came from when the user did not give it
    (the recipe's `weights`)."""
    import torchvision.models as tvm

    enum = tvm.get_model_weights(recipe.torchvision_name)
    if member in ("DEFAULT", "default"):  # "default": a recipe that names no weights (Recipe.weights's default)
        return enum.DEFAULT
    try:
        return enum[member]
    except KeyError:
        named = [name for name in enum.__members__ if name != "DEFAULT"]  # 'default' stands for DEFAULT
        hint = f"{origin} named it: fix it there, or leave it out" if origin else \
            "or give a local file with --weights PATH"
        raise unknown(f"weights for {recipe.name}", member, ["default", "none", *named], hint=hint) from None


def _build_with_download(recipe: Recipe, member: str, origin: str = "") -> nn.Module:
    import torchvision.models as tvm

    weights = _torchvision_weights_enum(recipe, member, origin)
    notice = _HeldNotice(sys.stderr)
    try:  # torchvision sets the builder arguments its weights need itself
        # torch.hub writes 'Downloading: ...' to stdout: it goes to stderr, so that what a command prints on
        # stdout (the layer table, --json, DOT text) stays only that, and only once the download is under way
        with contextlib.redirect_stdout(notice), contextlib.redirect_stderr(notice.releaser):
            model = tvm.get_model(recipe.torchvision_name, weights=weights)
        notice.release()
        return model
    except OSError as exc:  # urllib's URLError and socket errors are OSErrors
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(
            f"could not download the {weights} weights of {recipe.name} ({reason}); "
            f"use weights=PATH (--weights PATH) for a local state-dict file, or weights='none' (--weights none) for random init"
        ) from None


class _HeldNotice(io.TextIOBase):
    """A stream that holds what is written to it (torch.hub's 'Downloading: ...' line) until `release`, or until
    something is written to `releaser` (the progress bar, drawn once the server has answered): a download that
    fails at once leaves only dreamlab's one-line error."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.held: list[str] = []
        self.releaser = _Releaser(self)

    def write(self, text: str) -> int:
        self.held.append(text)
        return len(text)

    def release(self) -> None:
        """Write what is held to the stream."""
        if self.held:
            self.stream.write("".join(self.held))
            self.held.clear()
            self.stream.flush()


class _Releaser(io.TextIOBase):
    """The stream `_HeldNotice.releaser`: writes to the real stream, after what the notice holds."""

    def __init__(self, notice: _HeldNotice) -> None:
        self.notice = notice

    def write(self, text: str) -> int:
        self.notice.release()
        return self.notice.stream.write(text)

    def flush(self) -> None:
        self.notice.stream.flush()

    def isatty(self) -> bool:
        return self.notice.stream.isatty()


def load_state_dict_file(model: nn.Module, path: Path, model_name: str) -> None:
    """Load a state dict saved with torch.save into `model`; mismatches are named in the error."""
    if path.is_dir():
        raise WeightsError(f"weights {str(path)!r} is a folder, not a state-dict file; give the file saved with "
                           f"torch.save(model.state_dict(), PATH)")
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist; give a state-dict file saved with torch.save")
    try:
        with warnings.catch_warnings():  # torch warns about a raw pickle's protocol before refusing it: the
            warnings.simplefilter("ignore")  # refusal below is the one line the user needs
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors have no common base class
        raise _unreadable(path, exc) from None
    state = _unwrap_checkpoint(state, path)
    _check_state(state, path)
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
        raise WeightsError(f"weights file {str(path)!r} does not fit {model_name}: " + "; ".join(problems)
                           + _classes_hint(state, expected, missing, extra) + _model_hint(model, state, expected))
    model.load_state_dict(state)


def _model_hint(model: nn.Module, state: dict, expected: dict) -> str:
    """Where the file shares no key with the model (another model's weights), the model's own word on which file
    it reads (its `weights_hint` attribute, zoo/inceptionv1.py), or else which model the file's keys are for."""
    if set(state) & set(expected):
        return ""
    hint = getattr(model, "weights_hint", None)
    if isinstance(hint, str):
        return f"; {hint}"
    known = next((said for key, said in _FILE_HINTS.items() if key in state), None)
    return f"; {known}" if known else ""


# a key that marks a weights file as another zoo model's, and what to say to whoever gives it to a model it does not
# fit (lucent users give inception5h.pth to --model googlenet, torchvision's other GoogLeNet)
_FILE_HINTS = {
    "conv2d0_pre_relu_conv.weight": "the file holds lucid's InceptionV1 in lucent's layout (inception5h.pth): "
                                    "give it to --model inceptionv1",
}


def _classes_hint(state: dict, expected: dict, missing: list[str], extra: list[str]) -> str:
    """Where the keys match and only the output rows differ (a model fine-tuned on N classes), how to build it so."""
    differ = [k for k, v in expected.items() if k in state and state[k].shape != v.shape]
    rows = {tuple(state[k].shape[:1]) for k in differ}
    if missing or extra or not differ or len(rows) != 1 or () in rows or any(
            state[k].shape[1:] != expected[k].shape[1:] for k in differ):
        return ""
    classes = rows.pop()[0]
    return (f"; trained on {classes} classes? build it so: a recipe whose builder_kwargs say so (torchvision models: "
            f"num_classes = {classes}), given with --recipe FILE.toml (README: Recipes)")


def _unreadable(path: Path, exc: Exception) -> WeightsError:
    """One line for a weights file torch.load(weights_only=True) refuses: a pickled object is named as such."""
    found = re.search(r"Unsupported global: GLOBAL (\S+) was not an allowed global", str(exc))
    save = "save the weights with torch.save(model.state_dict(), PATH) and give that file"
    if found:
        what = "a pickled module" if _is_module_class(found.group(1)) else "a pickled object"
        # torch.save(model) users (lucent's notebooks) no longer hold `model`: say how to get it from the file
        return WeightsError(f"cannot read weights file {str(path)!r}: it holds {what} ({found.group(1)}) rather "
                            f"than a state dict; {save} (from this file, in a Python where its class imports and "
                            f"if you trust it: torch.save(torch.load(FILE, weights_only=False).state_dict(), PATH))")
    if isinstance(exc, PermissionError):
        return WeightsError(f"cannot read weights file {str(path)!r}: permission denied; give a file you can read "
                            f"(chmod u+r)")
    return WeightsError(f"cannot read weights file {str(path)!r} as a state dict (torch.load raised "
                        f"{type(exc).__name__}: the file is corrupt, truncated or not a PyTorch file); {save}")


def _is_module_class(qualified: str) -> bool:
    """Whether `module.Class` names an nn.Module subclass, looked up among modules already imported only:
    a file's contents never make dreamlab import anything."""
    module_name, _, attr = qualified.rpartition(".")
    found = getattr(sys.modules.get(module_name), attr, None)
    return isinstance(found, type) and issubclass(found, nn.Module)


# where checkpoints keep the model's state dict: Lightning and many scripts ("state_dict"), PyTorch's tutorial
# "Saving and loading a general checkpoint" ("model_state_dict"), others ("model")
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")


def _unwrap_checkpoint(state: object, path: Path) -> dict:
    """The state dict inside a checkpoint dict (under one of CHECKPOINT_KEYS), or `state` itself; a dict whose
    state dicts sit under other names is refused naming them, as is anything that is not a dict."""
    where = f"weights file {str(path)!r}"
    save = "save the weights with torch.save(model.state_dict(), PATH) and give that file"
    if not isinstance(state, dict):
        raise WeightsError(f"{where} holds a {type(state).__name__}, not a state dict; {save}")
    for wrapper in CHECKPOINT_KEYS:
        if isinstance(state.get(wrapper), dict):
            return state[wrapper]
    nested = [key for key, value in state.items() if isinstance(value, dict)]
    if nested:
        names = ", ".join(repr(key) for key in nested[:4]) + (f" (+{len(nested) - 4} more)" if len(nested) > 4 else "")
        raise WeightsError(f"{where} is a checkpoint whose entries {names} hold dicts, none under a name dreamlab "
                           f"reads ({', '.join(CHECKPOINT_KEYS)}); save the one holding the model's weights on its "
                           f"own: torch.save(torch.load({str(path)!r})[{nested[0]!r}], PATH), and give that file")
    return state


def _check_state(state: dict, path: Path) -> None:
    """A state dict maps names (str) to finite tensors; anything else is named before load_state_dict sees it."""
    where = f"weights file {str(path)!r}"
    for key, value in state.items():
        if not isinstance(key, str):
            raise WeightsError(f"{where} has a key {key!r} of type {type(key).__name__}; a state dict maps "
                               f"parameter names (strings) to tensors; save model.state_dict()")
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{where} maps {key!r} to a value of type {type(value).__name__}, not a tensor; save "
                               f"model.state_dict()")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise WeightsError(f"{where} holds NaN or infinite values in {key!r}; the weights are broken (a "
                               f"diverged training run?); use other weights, or weights='none' (--weights none)")


def build_model(recipe: Recipe, weights: str | Path | None = "default",
                allow_code: bool = False) -> tuple[nn.Module, str]:
    """Build the recipe's model. `weights`: 'default', 'none'/None, a torchvision enum member, or a file path.

    Whatever the builder initializes at random is drawn from WEIGHTS_SEED, and the global RNG is left as it was.
    """
    if weights is not None and (not isinstance(weights, (str, Path, enum.Enum)) or not str(weights).strip()):
        # an empty string would read as the current folder, a number as a weights name
        raise WeightsError(f"weights (--weights) must be 'default', 'none' (or None), a torchvision weights name or "
                           f"the path of a state-dict file, got {weights!r}"[:300])
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(WEIGHTS_SEED)  # the CPU's only: models are built there, and
        return _build_model(recipe, weights, allow_code)  # torch.manual_seed would reseed every GPU too


WEIGHTS_KEYWORDS = ("default", "none")  # never a file path, whatever the folder holds: write ./none for that file
WEIGHTS_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def is_weights_file(weights: str | Path) -> bool:
    """Whether `weights` names a state-dict file: a Path, or a string other than a keyword that ends in a weights
    suffix or names something that exists."""
    if isinstance(weights, Path):
        return True
    if weights.lower() in WEIGHTS_KEYWORDS:
        return False
    path = Path(weights)
    return path.suffix in WEIGHTS_SUFFIXES or path.exists()


def _build_model(recipe: Recipe, weights: str | Path | None, allow_code: bool) -> tuple[nn.Module, str]:
    if weights is None:
        weights = "none"
    if isinstance(weights, enum.Enum):  # torchvision's own spelling, GoogLeNet_Weights.IMAGENET1K_V1: by its name
        weights = weights.name
    if not isinstance(weights, Path):
        weights = str(weights)
    _check_torchvision_name(recipe)
    if is_weights_file(weights):
        model = _call_builder(recipe, None, recipe.weights_kwargs, allow_code)
        try:
            load_state_dict_file(model, Path(weights), recipe.name)
        except WeightsError as exc:
            fetch = getattr(model, "weights_fetch", None)  # a zoo model whose file a command downloads (inceptionv1)
            if isinstance(fetch, str) and not Path(weights).exists():
                raise WeightsError(f"{exc}, or run `{fetch}` once and leave --weights out") from None
            raise
        described = str(Path(weights))
        # Path('./none') prints as 'none', which the provenance reads as random init: keep the file's ./
        return model, f"./{described}" if described.lower() in WEIGHTS_KEYWORDS else described
    choice, origin = str(weights), ""
    if choice == "default":
        choice, origin = recipe.weights, f"the `weights` of recipe {recipe.called}"
    if choice.lower() == "none":
        return _call_builder(recipe, None, {}, allow_code), "none"
    if recipe.is_torchvision:
        member = _torchvision_weights_enum(recipe, choice, origin)
        return _build_with_download(recipe, choice, origin), str(member).split(".")[-1]
    try:
        model = _call_builder(recipe, choice, {}, allow_code)
    except ValueError:  # the zoo's builders refuse weights they do not know
        if origin:
            raise WeightsError(f"unknown weights {choice!r} for {recipe.name}, named by {origin}; valid: default, "
                               f"none (or what its builder takes): fix it there, or leave it out") from None
        raise WeightsError(f"unknown weights {choice!r} for {recipe.name}; valid: default, none, or the PATH of a "
                           f"state-dict file") from None
    # a builder that read a file no sha256 pins (zoo/inceptionv1.py's cache) names it, so that the provenance
    # records the file and its bytes' sha256 rather than a 'default' that says nothing of which weights were read
    read = getattr(model, "weights_file", None)
    return model, str(read) if isinstance(read, (str, Path)) else choice


def _check_torchvision_name(recipe: Recipe) -> None:
    """A recipe's torchvision:NAME must be a torchvision model, whichever weights are asked for."""
    if recipe.is_torchvision:
        import torchvision.models as tvm

        if recipe.torchvision_name not in tvm.list_models():
            raise unknown(f"torchvision model in recipe {recipe.called}:", recipe.torchvision_name, tvm.list_models())


def _call_builder(recipe: Recipe, weights: Any, extra: dict[str, Any], allow_code: bool) -> nn.Module:
    kwargs = {**recipe.builder_kwargs, **extra}
    if recipe.is_torchvision:
        import torchvision.models as tvm

        builder, call = tvm.get_model, {"name": recipe.torchvision_name, "weights": None, **kwargs}
    else:
        builder, call = _builder(recipe, allow_code), {"weights": weights, **kwargs}
    try:
        with warnings.catch_warnings():
            # GoogLeNet's and Inception v3's builders warn that their random init will change some day: noise
            # in front of every command on them, about a choice dreamlab does not make
            warnings.filterwarnings("ignore", message="The default weight initialization", category=FutureWarning)
            return builder(**call)
    except TypeError as exc:  # builder_kwargs the builder does not take
        # name the argument Python names (a builder's unexpected keyword), not every one the recipe gives
        found = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        refused = f"argument {found.group(1)!r}" if found and found.group(1) in kwargs else \
            f"arguments {sorted(kwargs)}"
        raise DreamlabError(f"recipe {recipe.called}: builder {recipe.builder!r} refused its {refused} ({exc}); "
                            f"check builder_kwargs") from None


@checked_keywords
def load_model(name: str | Path | Recipe, weights: str | Path | None = "default", *,
               allow_code: bool = False, recipe_layers: str = "error") -> LoadedModel:
    """A model by recipe name, recipe file or torchvision name, in eval mode with frozen parameters.
    `recipe_layers`: what a layer name in the recipe that the model lacks gives: "error", or "note" (a
    DreamlabNote warning: `dreamlab layers` still lists the layers, so that the recipe can be fixed)."""
    if not isinstance(name, (str, Path, Recipe)):
        module = " (a module you built goes to render, gradcam, ... as it is: dreamlab.render(module, ...))" \
            if isinstance(name, nn.Module) else ""
        raise DreamlabError(f"load_model takes a model name (googlenet, lenet-digits), a recipe file or a Recipe, "
                            f"got {type(name).__name__}{module}")
    recipe = name if isinstance(name, Recipe) else load_recipe(name)  # a file's errors name it (recipe.called)
    model, described = build_model(recipe, weights, allow_code)
    model.eval().requires_grad_(False)
    if recipe_layers == "note":
        try:
            check_recipe_layers(recipe, model, hint="the table below lists the model's layers")
        except UnknownNameError as error:
            warnings.warn(DreamlabNote(str(error)), stacklevel=2)
    else:
        check_recipe_layers(recipe, model)
    from dreamlab.models.prepare import check_channels  # prepare imports this module

    check_channels(model, recipe)  # else every command's first forward fails with torch's conv error
    categories = model_categories(recipe, model)
    _LISTED_AS[model] = shlex.quote(recipe.name if isinstance(name, Recipe) else str(name))
    return LoadedModel(model=model, recipe=recipe, weights=described, categories=categories)


def layers_hint(model: nn.Module, fallback: str | None = None) -> str:
    """'`dreamlab layers NAME` lists them all' for a model `load_model` built (NAME: what it was loaded by), else
    with `fallback` (a recipe's name) or the placeholder MODEL (the command line fills in its own model)."""
    listed = _LISTED_AS.get(model) or (shlex.quote(fallback) if fallback else "MODEL")
    return f"`dreamlab layers {listed}` lists them all"


def check_recipe_layers(recipe: Recipe, model: nn.Module, hint: str | None = None, defaults: bool = True) -> None:
    """A [layers."NAME"] table must name a layer of the model (a typo would silently change nothing); `hint` ends
    the message (default: the `dreamlab layers` command that lists the layers, given the recipe's file if it was
    read from one). `defaults`: check the recipe's default_layer and cam_layer too (not for a shipped recipe lent
    to a caller's own module: those name the shipped model's layers)."""
    from dreamlab.optvis.capture import OUTPUT

    called = recipe.called
    names = module_names(model) + [OUTPUT]
    listing = f"--recipe {recipe.source}" if recipe.source else recipe.name
    hint = hint or f"`dreamlab layers {listing}` lists them"
    for layer in recipe.layers:
        if layer not in names:
            raise unknown(f'layer in recipe {called}\'s [layers."..."] tables:', layer, names,
                          hint=hint)
    # checked here, else the error would come later naming a layer the user never typed
    for key in ("default_layer", "cam_layer") if defaults else ():
        layer = getattr(recipe, key)
        if layer and layer not in names[:-1]:
            raise unknown(f"{key} of recipe {called}:", layer, names[:-1], hint=hint)
    if recipe.categories:
        _check_categories(recipe, model, called)


def output_count(model: nn.Module, recipe: Recipe) -> int | None:
    """How many outputs per image the model gives (its logits), from one forward of a weightless copy at the
    recipe's input size; None where that copy cannot run or the output is no [batch, outputs] tensor."""
    from dreamlab.models.layout import meta_copy

    try:
        with torch.no_grad():
            output = meta_copy(model)(torch.zeros(1, recipe.channels, recipe.input_size, recipe.input_size,
                                                  device="meta"))
    except Exception:  # an op without a meta kernel: the count cannot be had for free
        return None
    return int(output.shape[1]) if isinstance(output, torch.Tensor) and output.dim() == 2 else None


def model_categories(recipe: Recipe, model: nn.Module) -> tuple[str, ...] | None:
    """The model's class names: the recipe's own, else torchvision's weights metadata where the model has as many
    outputs as it names (a resnet18 built with num_classes=10 gets none: ImageNet's 'tiger shark' is no name for
    its class 3)."""
    if recipe.categories:
        return recipe.categories
    names = torchvision_categories(recipe)
    if names and output_count(model, recipe) not in (None, len(names)):
        return None
    return names


def _check_categories(recipe: Recipe, model: nn.Module, called: str) -> None:
    """A recipe's own class names must be as many as the model's outputs (one forward of a weightless copy)."""
    count = output_count(model, recipe)
    if count is not None and count != len(recipe.categories):
        raise DreamlabError(f"recipe {called} lists {len(recipe.categories)} categories, but the model has "
                            f"{count} outputs; give one class name per output, in order")


def module_names(model: nn.Module) -> list[str]:
    """Every addressable (non-root) module name, in registration order."""
    return [name for name, _ in model.named_modules() if name]


def resolve_layer(model: nn.Module, name: str, also: Sequence[str] = ()) -> nn.Module:
    """The submodule at dotted address `name`; an unknown name lists close matches among the modules and `also`
    (names the caller takes besides them, such as `logit`)."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    names = module_names(model) + [extra for extra in also if extra not in modules]
    hint = f"{layers_hint(model)} (in Python: dreamlab.layer_table(model))"
    raise unknown("layer", name, names, hint=f"{ported_name_hint(name, names)}{hint}")


def ported_name_hint(name: str, names: Sequence[str]) -> str:
    """What a layer name from lucid or lucent is called here, as the start of a hint ('' for other names):
    lucid's InceptionV1 `mixed4a` is torchvision GoogLeNet's `inception4a`; inceptionv1's `conv2d0_pre_relu` is
    its conv `conv2d0_pre_relu_conv`; lucent writes `layer3_0_conv2` for `layer3.0.conv2`."""
    lucid = re.fullmatch(r"mixed(\d[a-e])(_pre_relu)?", name)
    if lucid and f"inception{lucid[1]}" in names:
        pre = (" (there is no pre-ReLU output: torchvision's Inception block concatenates branches that each end in "
               "a ReLU)") if lucid[2] else ""
        return (f"lucid's InceptionV1 {name!r} is GoogLeNet's 'inception{lucid[1]}' here{pre} (with torchvision's "
                f"weights, not lucid's: a channel number names another feature; lucid's model itself is --model "
                f"inceptionv1); ")
    if name.endswith("_pre_relu") and f"{name}_conv" in names:  # inceptionv1 keeps lucent's conv names
        return f"lucid's {name!r} is the conv {name + '_conv'!r} here; "
    if f"{name}_pre_relu_conv" in names:  # a branch whose ReLU is its block's (zoo/inceptionv1.py)
        from dreamlab.models.zoo.inceptionv1 import branch_channels  # the zoo's loaders import this module

        found = branch_channels(name)
        where = f"part of {name.split('_')[0]!r} here"
        if found:
            block, first, width = found
            where = f"channels {first}-{first + width - 1} of {block!r} here ({name}:k is {block}:{first}+k)"
        return (f"lucent's {name!r} (a branch after its ReLU) is {where}, whose ReLU covers its branches, or "
                f"{name + '_pre_relu_conv'!r} before the ReLU; ")
    if name in ("softmax2_pre_activation", "softmax2") and "logit" in names:  # lucid's InceptionV1 logits
        return f"lucid's {name!r} is 'logit' here (logit:N reads the logits, before any softmax); "
    if name == "labels" and "logit" in names:
        return "lucent's 'labels' is 'logit' here (logit:N, or logit:NAME where the model names its classes); "
    dotted = name.replace("_", ".")
    if "_" in name and dotted in names:
        return f"lucent's {name!r} is {dotted!r} here (dotted module addresses); "
    layer = re.split(r"[:@\s+*/()]", name.strip("( "), maxsplit=1)[0]
    if layer != name and layer in names:  # 'conv1:3' or an expression, where a layer alone goes
        return f"give a layer alone here, such as {layer!r}, not a unit or an expression; "
    return ""
