"""What a render is asked for: the settings that decide the pixels (`RenderSettings`), resolved against a
recipe, the checks of everything a caller passes to `render()`, each failing with one line that names the
argument and what is valid, and the provenance that records them in every PNG.

>>> from dreamlab.models.recipe import load_recipe
>>> s = resolve_settings(RenderSettings(steps=8, size=(48, 64)), load_recipe("lenet-digits"), owned=True)
>>> s.steps, s.height_width, s.optimizer, s.fourier_decay
(8, (48, 64), 'channel-adam', 0.5)
"""
from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from dreamlab import __version__
from dreamlab.devices import resolve_device
from dreamlab.errors import (DreamlabError, check_range, check_seed, checked_keywords, unknown,
                             unknown_keyword)
from dreamlab.io import centre_crop, check_image, cover, match_channels
from dreamlab.models.loading import weights_provenance
from dreamlab.models.recipe import MAX_FOURIER_DECAY, MAX_LR, Recipe
from dreamlab.models.summary import check_input_size
from dreamlab.optvis.alpha import ALPHA_WEIGHT, BACKGROUND_DECAY, MAX_ALPHA_WEIGHT
from dreamlab.optvis.choices import COMPILE_MODES, PRECISIONS
from dreamlab.optvis.objectives import Objective
from dreamlab.optvis.optimizers import OPTIMIZERS, OptimizerFactory
from dreamlab.optvis.params import PARAMS, ParamSpec, check_color_matrix
from dreamlab.optvis.transforms import CallableTransforms, RandomTransforms, TransformSpec, make_transforms

MIN_SIZE = 8  # pixels a side of a rendered image
INIT_SD = 0.01  # the pixel and Fourier params' random start spread (lucid's image(..., sd=0.01) default)
SPREAD_PARAMS = ("pixel", "fourier")  # the built-in params init_sd sets (maco starts from a random phase)
MAX_DIVERSITY = 64  # images per unit: they are optimized in one batch


@checked_keywords
@dataclass(frozen=True)
class RenderSettings:
    """Everything that decides the pixels. A field left at None takes the recipe's value (its `layers` table's for
    the layers the objective reads; else dreamlab's default) when `render` resolves it; `render(m, o, steps=64)`
    is short for `render(m, o, RenderSettings(steps=64))`.

    `param`, `transforms` and `optimizer` take a name or user code: an ImageParam module or a factory
    (params.make_param), a list or nn.Sequential of kornia augmentations or callables
    (transforms.make_transforms), a factory `params -> torch.optim.Optimizer` (optimizers.make_optimizer).
    The provenance then records "custom:<name of the callable>".
    """

    steps: int | None = None
    size: int | tuple[int, int] | None = None  # pixels, or (height, width)
    lr: float | None = None  # an optimizer factory sets its own
    seed: int = 0
    device: str | torch.device | None = None  # None: cuda when available
    optimizer: str | OptimizerFactory | None = None
    param: ParamSpec | None = None
    transforms: TransformSpec | None = None
    fourier_decay: float | None = None  # the Fourier spectrum's 1/f^decay scale (0: flat); see optimizers.py
    start_level: float | None = None  # the grey level a zero image maps to (0.05 for digits on black)
    init_sd: float | None = None  # spread of the pixel and Fourier params' random start (None: INIT_SD)
    decorrelate: bool = True  # optimize colour in a decorrelated basis (3-channel models; see params.py)
    color_matrix: tuple[tuple[float, ...], ...] | None = None  # that basis (a tensor is accepted); None: lucid's
    precision: str = "auto"  # "fp32", "bf16" (autocast around the model only), "auto": bf16 on cuda
    channels_last: bool | None = None  # None: on cuda for dreamlab's own models
    redirect_relu_steps: int = 16  # steps at the start that use the redirected ReLU gradient (see relu.py)
    # torch.compile mode for each step's forward ("default", "reduce-overhead" for CUDA graphs, ...); True: default
    compile: bool | str | None = None
    # images per unit, pushed apart by the Gram similarity of their activations at diversity_layer (diversity.py)
    diversity: int = 1
    diversity_weight: float = 1.0  # the penalty relative to each image's score (0: copies differ by their start only)
    diversity_layer: str | None = None  # None: the objective's own layer, else the recipe's default layer
    # lucent's fixed_image_size: pixels (or (height, width)) the model sees; each step's transformed images and the
    # clean images of the final scores are resized to it (bilinear, antialiased when shrinking) before the
    # model, so a fixed-size model renders at any `size`. None: the model sees the images as they are
    model_size: int | tuple[int, int] | None = None
    # a transparent render (alpha.py): the images get an alpha channel, [B, C + 1, H, W]; the pixel and Fourier
    # params only. alpha_weight: the transparency penalty relative to each image's score (None: ALPHA_WEIGHT)
    alpha: bool = False
    alpha_weight: float | None = None

    def __post_init__(self) -> None:
        _check_numbers(self)
        _check_names(self)
        for name in ("size", "model_size"):  # NumPy's and torch's integers, lists: plain ints, (height, width)
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, int(value) if isinstance(value, numbers.Integral)
                                   else (int(value[0]), int(value[1])))

    @property
    def height_width(self) -> tuple[int, int]:
        """The render size as (height, width), for a square size too."""
        size = self.size
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))  # type: ignore[index]

    @property
    def model_height_width(self) -> tuple[int, int] | None:
        """model_size as (height, width), or None when unset."""
        size = self.model_size
        if size is None:
            return None
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))  # type: ignore[index]


SETTING_NAMES = tuple(f.name for f in dataclasses.fields(RenderSettings))

# lucent's render_vis and param.image keywords that are no setting here, with what does their job
LUCENT_HINTS = {
    "fft": "lucent's param.image(fft=True) is param='fourier' (the default), fft=False param='pixel'",
    "w": "lucent's param.image(w, h): size=N, or size=(height, width)",
    "h": "lucent's param.image(w, h): size=N, or size=(height, width)",
    "batch": "lucent's param.image(batch=N): a unit list renders one image per unit ('layer:0-7'), diversity=N "
             "N images per unit",
    "show_inline": "lucent's show_inline: a RenderResult shows itself as a grid in a notebook (result.grid() is "
                   "that PIL image)",
    "show_image": "lucent's show_image: a RenderResult shows itself as a grid in a notebook (result.grid() is "
                  "that PIL image)",
    "save_image": "lucent's save_image: write the PNG with result.save(path) (index=i for one image)",
    "image_name": "lucent's image_name: write the PNG with result.save(path) (index=i for one image)",
    "preprocess": "lucent's preprocess: the input normalization comes from the recipe (its mean and std; "
                  "recipe=dreamlab.Recipe(..., mean=, std=) for your own module)",
    "verbose": "lucent's verbose: progress=True draws a bar, and result.history holds the objective per step"}
# what render() tells a keyword it does not take, beside its close matches
RENDER_HINTS = {**LUCENT_HINTS, "param_options": "param_options became typed settings: fourier_decay, start_level, "
                                                 "init_sd, decorrelate, color_matrix"}


def with_overrides(settings: RenderSettings | None, overrides: Mapping[str, Any]) -> RenderSettings:
    """`settings` (default: all unset) with the keyword form's values; an unknown keyword names close matches."""
    if settings is not None and not isinstance(settings, RenderSettings):
        raise DreamlabError(f"settings must be a RenderSettings, got {type(settings).__name__}")
    for name in overrides:
        if name not in SETTING_NAMES:  # a TypeError too, as Python's own for a keyword a function does not take
            raise unknown_keyword("render()", name, SETTING_NAMES, RENDER_HINTS)  # iterations= -> steps=
    return dataclasses.replace(settings or RenderSettings(), **overrides)


def resolve_settings(s: RenderSettings, recipe: Recipe, owned: bool, device: torch.device | None = None,
                     layers: Iterable[str] = ()) -> RenderSettings:
    """`s` with every unset field filled from `recipe` (with its settings for the objective's `layers`) or
    dreamlab's defaults, checked; `device` is the resolved device (default: cpu). `owned`: the model is
    dreamlab's to move and re-layout."""
    recipe = recipe.for_layers(layers)
    if s.lr is not None and s.optimizer is not None and not isinstance(s.optimizer, str):
        # refused, not ignored: only the recipe's lr goes unused with a factory
        raise DreamlabError(f"lr={s.lr!r} was given with an optimizer factory, which sets its own learning rate: "
                            f"give it there (optimizer=lambda params: torch.optim.Adam(params, lr={s.lr!r})), or "
                            f"leave lr out")

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    given_decay, given_sd, given_param = s.fourier_decay, s.init_sd, s.param
    check_alpha(s.alpha, s.alpha_weight, s.param or recipe.param, "" if s.param is not None else " (the recipe's)")
    s = dataclasses.replace(
        s, steps=pick(s.steps, recipe.steps), size=pick(s.size, recipe.input_size), lr=pick(s.lr, recipe.lr),
        optimizer=pick(s.optimizer, recipe.optimizer), param=pick(s.param, recipe.param),
        transforms=pick(s.transforms, recipe.transforms), fourier_decay=pick(s.fourier_decay, recipe.fourier_decay),
        start_level=pick(s.start_level, recipe.start_level), init_sd=pick(s.init_sd, INIT_SD),
        alpha_weight=(float(pick(s.alpha_weight, ALPHA_WEIGHT)) if s.alpha else None))
    _validate(s)
    # a decay the caller gave; the recipe's own (there for its Fourier default) goes unused without a word
    check_fourier_decay(given_decay, s.param, "" if given_param is not None else " (the recipe's)")
    check_init_sd(given_sd, s.param, "" if given_param is not None else " (the recipe's)")
    dev = device or torch.device("cpu")
    matrix = s.color_matrix
    return dataclasses.replace(
        s, size=s.height_width, model_size=s.model_height_width, lr=float(s.lr), seed=int(s.seed), device=dev,
        fourier_decay=float(s.fourier_decay), start_level=float(s.start_level), init_sd=float(s.init_sd),
        precision=("bf16" if dev.type == "cuda" else "fp32") if s.precision == "auto" else s.precision,
        channels_last=(dev.type == "cuda" and owned) if s.channels_last is None else s.channels_last,
        compile=("default" if s.compile is True else s.compile) or None,
        color_matrix=None if matrix is None else tuple(tuple(map(float, row)) for row in torch.as_tensor(matrix)))


def _whole(name: str, value: Any, minimum: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise DreamlabError(f"{name} must be a whole number >= {minimum}{hint}, got {value!r}")


def _finite(name: str, value: Any, low: float, low_ok: bool, hint: str = "") -> None:
    bad = isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
    if bad or value < low or (value == low and not low_ok):
        relation = ">=" if low_ok else ">"
        raise DreamlabError(f"{name} must be a finite number {relation} {low:g}{hint}, got {value!r}")


def _check_size(name: str, size: Any, hint: str = "") -> None:
    """An image size: a whole number of pixels from MIN_SIZE to MAX_INPUT_SIZE, or a (height, width) pair of
    them; a whole number out of range is told the range, as build_gallery and the command line tell it."""
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise DreamlabError(f"{name} must be an int or (height, width), got {size!r}")
        for side in size:
            _side(name, side, " pixels a side")
    else:
        _side(name, size, f" pixels (or a (height, width) pair{hint})")


def _side(name: str, side: Any, hint: str) -> None:
    """One side: not a whole number is refused as `_whole` words it, a whole number out of range with the range."""
    if isinstance(side, bool) or not isinstance(side, numbers.Integral):
        _whole(name, side, MIN_SIZE, hint)
    check_input_size(side, MIN_SIZE, name)


def _check_numbers(s: RenderSettings) -> None:
    """The numeric fields that are set (None: the recipe's, checked once filled in), with the first problem as
    one line: at construction, so that `RenderSettings(steps=0)` is refused where it is written."""
    if s.steps is not None:
        _whole("steps", s.steps, 1)
    if s.size is not None:
        _check_size("size", s.size)
    if s.model_size is not None:
        _check_size("model_size", s.model_size, "; None: the model sees the render size")
    if s.lr is not None:
        check_lr(s.lr)
    check_seed(s.seed)
    if s.fourier_decay is not None:
        _finite("fourier_decay", s.fourier_decay, 0, True, " (0: flat spectrum, 1: lucid's 1/f)")
        check_range("fourier_decay", s.fourier_decay, 0, MAX_FOURIER_DECAY,
                    hint=" (0: flat spectrum, 1: lucid's 1/f)")
    if s.start_level is not None:
        _finite("start_level", s.start_level, 0, False)
        if s.start_level >= 1:
            raise DreamlabError(f"start_level must be between 0 and 1 (exclusive), got {s.start_level!r}")
    if s.init_sd is not None:
        _finite("init_sd", s.init_sd, 0, True)
    _whole("redirect_relu_steps", s.redirect_relu_steps, 0)
    check_alpha(s.alpha, s.alpha_weight, s.param if isinstance(s.param, str) else None)


def _check_names(s: RenderSettings) -> None:
    """The fields given as names (precision, optimizer, param, compile mode, transforms, device), at construction, so that
    `RenderSettings(optimizer="sgd")` is refused where it is written. Whether a GPU named here is present is left
    to the render, which may run on another machine than the one that built the settings."""
    check_precision(s.precision)
    if isinstance(s.param, str) and s.param not in PARAMS:
        raise unknown("parameterization", s.param, PARAMS)
    if isinstance(s.optimizer, str) and s.optimizer not in OPTIMIZERS:
        raise unknown("optimizer", s.optimizer, OPTIMIZERS)
    if isinstance(s.compile, str) and s.compile not in COMPILE_MODES:
        raise unknown("compile mode", s.compile, COMPILE_MODES)
    if isinstance(s.transforms, str):
        RandomTransforms.preset(s.transforms)
    if isinstance(s.device, str):
        try:
            kind = torch.device(s.device.strip()).type
        except (RuntimeError, ValueError):
            kind = None
        if kind not in ("cuda", "mps"):
            resolve_device(s.device)  # refuses an unknown name or a device type dreamlab cannot render on


def check_precision(precision: Any) -> None:
    """One of PRECISIONS, refused alike by render and gallery."""
    if precision not in PRECISIONS:
        raise unknown("precision", str(precision), PRECISIONS, hint="auto picks bf16 on cuda, fp32 elsewhere")


def _validate(s: RenderSettings) -> None:
    """Every field of a recipe-filled RenderSettings, with the first problem as one line."""
    _check_numbers(s)
    _check_names(s)
    check_diversity(s.diversity, s.diversity_weight)
    if s.diversity_layer is not None and s.diversity == 1:
        raise DreamlabError(f"diversity_layer={s.diversity_layer!r} compares the images of one unit, and "
                            f"diversity is 1 (one image per unit): add diversity=N (N >= 2), or leave "
                            f"diversity_layer out")
    if s.diversity == 1 and s.diversity_weight != 1.0:  # 1.0 is the default: a weight given with nothing to weigh
        raise DreamlabError(f"diversity_weight={s.diversity_weight!r} weighs the penalty between the images of one "
                            f"unit, and diversity is 1 (one image per unit): add diversity=N (N >= 2), or leave "
                            f"diversity_weight out")
    for name in ("decorrelate", "channels_last"):
        value = getattr(s, name)
        if not isinstance(value, bool) and not (name == "channels_last" and value is None):
            raise DreamlabError(f"{name} must be True or False, got {value!r}")
    if not isinstance(s.param, (str, nn.Module)) and not callable(s.param):
        raise DreamlabError(f"param must be a name ({', '.join(PARAMS)}), an ImageParam module or a factory "
                            f"returning one, got {type(s.param).__name__}")
    if not isinstance(s.optimizer, str) and not callable(s.optimizer):
        raise DreamlabError(f"optimizer must be a name ({', '.join(OPTIMIZERS)}) or a factory params -> "
                            f"torch.optim.Optimizer, got {type(s.optimizer).__name__}")
    transforms = make_transforms(s.transforms)  # raises for an unknown preset or a non-callable
    if isinstance(transforms, RandomTransforms) and s.size is not None:
        h, w = s.height_width
        out_h, out_w = transforms.output_size(h, w)
        if min(out_h, out_w) < MIN_TRANSFORMED:
            raise DreamlabError(f"the transforms' crop of {transforms.crop} px a side (after a pad of "
                                f"{transforms.pad}) leaves {max(out_w, 0)}x{max(out_h, 0)} "
                                f"px of the {w}x{h} image; keep crop - pad under "
                                f"{(min(h, w) - MIN_TRANSFORMED) // 2 + 1} px, or render a larger size")
    if s.compile not in (None, False, True) and s.compile not in COMPILE_MODES:
        raise unknown("compile mode", str(s.compile), COMPILE_MODES)
    if s.compile and isinstance(transforms, CallableTransforms):
        raise DreamlabError("compile works with the named transforms presets only; user transforms run eagerly "
                            "(leave compile off)")
    if s.color_matrix is not None:
        check_color_matrix(s.color_matrix)


MIN_TRANSFORMED = 8  # pixels a side the model gets after the transforms' crop: the smallest render size

# the penalty is relative to each image's score (diversity.py): far beyond 1 the images ignore their unit, and
# near float32's range the penalty overflows (which the NaN guard would blame on the learning rate)
MAX_DIVERSITY_WEIGHT = 1000


def check_lr(lr: Any) -> None:
    """The learning rate: above 0 up to MAX_LR (the CLI checks it before the model loads)."""
    _finite("lr", lr, 0, False, f" up to {MAX_LR:g} (the learning rate; the recipes use 0.02 to 0.05)")
    if lr > MAX_LR:  # MAX_LR says why: a larger rate overflows float32 in the optimizer or saturates every pixel
        raise DreamlabError(f"lr {lr:g} is out of range; valid: above 0 up to {MAX_LR:g} (the learning rate; the "
                            f"recipes use 0.02 to 0.05); try 0.05")


def check_fourier_decay(fourier_decay: float | None, param: Any, whose: str = "") -> None:
    """fourier_decay, given by the caller, with the parameterization the render uses (`whose`: where that came
    from, e.g. " (the recipe's)"): any but fourier would ignore it, so it is refused."""
    if fourier_decay is not None and param != "fourier":
        raise DreamlabError(f"fourier_decay={fourier_decay!r} applies to the Fourier parameterization only, and "
                            f"param is {describe(param)!r}{whose}: give param='fourier', or leave fourier_decay out")


def check_init_sd(init_sd: float | None, param: Any, whose: str = "") -> None:
    """init_sd, given by the caller, with the parameterization the render uses (`whose`: where that came from):
    MACO and user code would ignore it, so it is refused."""
    if init_sd is not None and param not in SPREAD_PARAMS:
        which = "MACO starts from a random phase, with no spread to set" if param == "maco" else \
            "a parameterization of your own makes its own start"
        raise DreamlabError(f"init_sd={init_sd!r} is the spread of the {' and '.join(SPREAD_PARAMS)} "
                            f"parameterizations' random start, and param is {describe(param)!r}{whose} ({which}): "
                            f"give param={' or '.join(map(repr, SPREAD_PARAMS))}, or leave init_sd out")


def check_alpha(alpha: Any, weight: Any, param: Any = None, whose: str = "") -> None:
    """alpha (True or False), alpha_weight (0 to MAX_ALPHA_WEIGHT, only with alpha) and the parameterization the
    render uses (`whose`: where it came from; None: not known yet): an alpha channel is the pixel and Fourier
    params' only."""
    if not isinstance(alpha, bool):
        raise DreamlabError(f"alpha must be True or False (a transparent render), got {alpha!r}")
    if weight is not None:
        if not alpha:
            raise DreamlabError(f"alpha_weight={weight!r} weighs the transparency penalty of a transparent render, "
                                f"and alpha is off: add alpha=True (--alpha), or leave alpha_weight out")
        _finite("alpha_weight", weight, 0, True, " (the transparency penalty relative to each image's score; "
                f"0: none, default {ALPHA_WEIGHT:g})")
        check_range("alpha_weight", weight, 0, MAX_ALPHA_WEIGHT, hint=" (the transparency penalty relative to each "
                    f"image's score; default {ALPHA_WEIGHT:g})")
    if alpha and param is not None and param not in SPREAD_PARAMS:
        raise DreamlabError(f"alpha (a transparent render) needs the alpha channel of the "
                            f"{' or '.join(SPREAD_PARAMS)} parameterization, and param is {describe(param)!r}"
                            f"{whose}: give param={' or '.join(map(repr, SPREAD_PARAMS))}, or leave alpha out")


def check_diversity(copies: Any, weight: Any) -> None:
    """diversity (images per unit, 1 to MAX_DIVERSITY) and diversity_weight (0 to MAX_DIVERSITY_WEIGHT), as one
    line each."""
    _whole("diversity", copies, 1, " (images per unit; 1: no diversity)")
    check_range("diversity", copies, 1, MAX_DIVERSITY, "images per unit")
    _finite("diversity_weight", weight, 0, True, " (0: the copies differ by their start only)")
    check_range("diversity_weight", weight, 0, MAX_DIVERSITY_WEIGHT, hint=" (the penalty relative to each image's "
                "score: 1 weighs them alike, beyond that the score hardly counts)")


def check_call(steps: int, batch_size: Any, thresholds: Any) -> list[int]:
    """The render arguments besides the settings; returns the thresholds as a sorted list."""
    if batch_size is not None:
        _whole("batch_size", batch_size, 1, " (units optimized at once; None: all)")
    try:
        ok = all(not isinstance(t, bool) and isinstance(t, numbers.Integral) and 1 <= t <= steps
                 for t in thresholds)
    except TypeError:
        ok = False
    if not ok:
        raise DreamlabError(f"thresholds must be step numbers from 1 to {steps} (the render's steps), got "
                            f"{thresholds!r}"[:300])
    return sorted({int(t) for t in thresholds})


def check_units(units: Sequence[int] | None, total: int) -> list[int]:
    """Indices into the objective's `total` units (default: all of them)."""
    if units is None:
        return list(range(total))
    if isinstance(units, numbers.Integral) and not isinstance(units, bool):
        raise DreamlabError(f"units must be a list of indices into the objective's {total} units, got {units}; "
                            f"write units=[{units}]")
    if isinstance(units, str) or not isinstance(units, Iterable):
        raise DreamlabError(f"units must be a list of indices into the objective's {total} units (0-{total - 1}), "
                            f"got {units!r}"[:300])
    units = list(units)
    if not units or any(isinstance(u, bool) or not isinstance(u, numbers.Integral) or not 0 <= u < total
                        for u in units):
        raise DreamlabError(f"units must be indices into the objective's {total} units (0-{total - 1}), "
                            f"got {units}"[:300])
    repeated = sorted({int(u) for u in units if units.count(u) > 1})
    if repeated:
        raise DreamlabError(f"units lists {repeated[0]} more than once; each unit is rendered once, so list it "
                            f"once")
    return [int(u) for u in units]


def fit_init_image(image: Any, channels: int, size: tuple[int, int], units: int) -> Tensor:
    """A start image [H,W] (grey), [C,H,W] or [B,C,H,W] in [0,1] as [1 or `units`, channels, *size]. It keeps
    its aspect ratio: scaled to cover `size`, then centre-cropped (a wide photo loses its sides), never
    stretched."""
    image = check_image(image, "init_image").float()
    given = list(image.shape)
    if image.dim() == 2:  # one grey channel
        image = image[None]
    if image.dim() == 3:
        image = image[None]
    if image.dim() != 4 or 0 in image.shape:
        raise DreamlabError(f"init_image must be [C,H,W] (or [H,W] grey, or [B,C,H,W] one per unit), got shape "
                            f"{list(image.shape)}")
    if image.shape[0] not in (1, units):
        raise DreamlabError(f"init_image holds {image.shape[0]} images for {units} unit(s); give one image for all "
                            f"units or one per unit")
    image = match_channels(image, channels)
    if image.shape[1] != channels:
        raise DreamlabError(f"init_image has {image.shape[1]} channels (shape {list(image.shape)}, read as "
                            f"[B,C,H,W]); this model takes {channels}{_init_layout_hint(given)}")
    return centre_crop(cover(image, size), size).clamp(0, 1)


def _init_layout_hint(shape: list[int]) -> str:
    """What makes a channels-last or RGBA init_image of `shape` ([C,H,W] or a batch [B,C,H,W]) one the model
    takes ('' for other shapes); a batch stays a batch, as init_image takes one image per unit."""
    lead, dims, index = ([], shape, "") if len(shape) == 3 else (shape[:1], shape[1:], ":, ")
    if len(dims) != 3:
        return ""
    if dims[0] not in (1, 3, 4) and dims[-1] in (1, 3, 4):
        order = "2, 0, 1" if not lead else "0, 3, 1, 2"
        return f"; channels last (NumPy/PIL's layout): pass init_image.permute({order})"
    if dims[0] == 4:
        return f"; 4 channels (RGBA: the alpha channel is not read): pass init_image[{index}:3]"
    return ""


def param_options(s: RenderSettings) -> dict[str, Any]:
    """The options a built-in parameterization is built with (none for user code)."""
    if not isinstance(s.param, str):
        return {}
    options: dict[str, Any] = {"start_level": s.start_level, "decorrelate": s.decorrelate}
    if s.alpha:
        options["alpha"] = True
    if s.param in SPREAD_PARAMS:  # maco starts from a random phase on the circle: a spread has nothing to set
        options["sd"] = s.init_sd
    if s.color_matrix is not None:
        options["color_matrix"] = torch.tensor(s.color_matrix)
    if s.param == "fourier":
        options["decay_power"] = s.fourier_decay
    return options


def describe(spec: Any) -> str:
    """A name as it is; user code as "custom:<name>" (a list of transforms joined by '+')."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, RandomTransforms):  # dreamlab's own, with its amounts: enough to render it again
        return repr(spec)
    if isinstance(spec, (list, tuple, nn.Sequential)):
        return "custom:" + "+".join(_callable_name(part) for part in spec) if len(spec) else "none"
    return "custom:" + _callable_name(spec)


def _callable_name(function: Any) -> str:
    if isinstance(function, functools.partial):
        function = function.func
    if isinstance(function, nn.Module):
        return type(function).__name__
    return getattr(function, "__name__", None) or type(function).__name__


def param_text(spec: Any) -> dict[str, str]:
    """The PNG text a param factory or module asks for in its `png_text` (a mapping of `dreamlab:...` keys to
    strings: MacoParam.from_images names its photos there), also through a functools.partial of the factory; none
    for a name, or for anything else."""
    if isinstance(spec, functools.partial):
        spec = spec.func
    text = None if isinstance(spec, str) else getattr(spec, "png_text", None)
    if not isinstance(text, Mapping):
        return {}
    return {key: value for key, value in text.items()
            if isinstance(key, str) and key.startswith("dreamlab:") and isinstance(value, str)}


def provenance(obj: Objective, recipe: Recipe, weights: str, s: RenderSettings, steps_run: int) -> dict[str, str]:
    """What produced an image, stored in its PNG text chunks (`s` resolved)."""
    import torchvision

    defaults = {"sd": INIT_SD, "decorrelate": True}  # recorded only when changed, so default PNGs stay as they were
    options = {f"dreamlab:{key}": f"{value:g}" if isinstance(value, float) else str(value)
               for key, value in param_options(s).items()
               if key not in ("color_matrix", "alpha") and (key not in defaults or value != defaults[key])}
    if s.alpha:  # recorded only when on, so opaque PNGs stay as they were
        options["dreamlab:alpha"] = (f"on (alpha channel last): each step over random 1/f^{BACKGROUND_DECAY:g} "
                                     f"noise (lucid); final score over grey {recipe.fill:g}")
        options["dreamlab:alpha_weight"] = f"{s.alpha_weight:g}"
    if s.color_matrix is not None:
        options["dreamlab:color_matrix"] = repr(s.color_matrix)
    if s.diversity > 1:
        from dreamlab.optvis.diversity import describe as describe_diversity

        options["dreamlab:diversity"] = describe_diversity(s.diversity, s.diversity_layer, s.diversity_weight)
    if s.model_size is not None:  # recorded only when set, so other PNGs stay as they were
        model_h, model_w = s.model_height_width
        options["dreamlab:model_size"] = str(model_h) if model_h == model_w else f"{model_h}x{model_w}"
    height, width = s.height_width
    return {
        "dreamlab:objective": obj.name,
        "dreamlab:model": recipe.name,
        **weights_provenance(weights),  # with random init's seed
        "dreamlab:recipe": recipe.name,
        "dreamlab:recipe_hash": recipe.hash(),
        "dreamlab:seed": str(s.seed),
        "dreamlab:steps": str(steps_run),
        "dreamlab:size": str(height) if height == width else f"{height}x{width}",
        "dreamlab:lr": f"{s.lr:g}" if isinstance(s.optimizer, str) else "set by the optimizer factory",
        "dreamlab:optimizer": describe(s.optimizer),
        "dreamlab:param": describe(s.param),
        **param_text(s.param),  # what a param factory read (MacoParam.from_images: its photos)
        "dreamlab:transforms": describe(s.transforms),
        **options,  # the built-in parameterization's options: start_level, decay_power, ...
        "dreamlab:device": s.device.type,
        "dreamlab:precision": s.precision,
        "dreamlab:compile": s.compile or "no",
        "dreamlab:version": __version__,
        "torch:version": torch.__version__,
        "torchvision:version": torchvision.__version__,
    }


__all__ = [
    "COMPILE_MODES",
    "SETTING_NAMES",
    "RenderSettings",
    "check_call",
    "check_units",
    "describe",
    "fit_init_image",
    "param_options",
    "provenance",
    "resolve_settings",
    "with_overrides",
]
