"""Quality measures of the render engine (issues #3 and #12), and the `dreamlab quality` command.

- transfer: render logit:0-9 of lenet-digits with its recipe; an independent judge, a support-vector machine
  fitted only on the held-out digits that lenet-digits never saw (dreamlab.apps.quality.judge), must read render
  k as digit k. The second digits CNN, which shares lenet-digits' training split and against which the recipe was
  tuned, is reported beside it as a validation figure.
- dataset ("beats the dataset, perturbed"): each conv2 channel and class logit must reach at least the best
  activation over the whole digits dataset, and keep that lead (and at least half of its activation) under
  perturbations it was not optimized for (dreamlab.apps.quality.perturb).
- kept: the share of those units that keep at least half of their activation under the worst perturbation.
- planted: on models whose channels are known colour gratings (dreamlab.apps.quality.planted), every channel's
  render must have the planted orientation, correlate with the best-matching tiling of the planted filter, and
  excite its channel at least half as much as the planted grating does (a minimizing render has the shape but
  not the activation).
- natural: hed-vgg16 units against the best crops of real photos (dreamlab.apps.quality.natural); skipped when
  the weights are not in the cache.

Each measure returns a `Measure` with its figure, its goal and per-item details; the command prints them as a
table and exits 1 when a goal is missed. The module is a little over 400 lines because the five measures share
one settings object and one report; a measure that grows further belongs in its own module, as `natural` does.

>>> m = measure_dataset(QualitySettings(steps=64, conv2_units=range(4), logit_units=range(2)))  # doctest: +SKIP
>>> m.figure_text, m.goal_text, m.passed                                                        # doctest: +SKIP
('6/6 units (100%)', '>= 95% of units with ratio >= 1.0', True)
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from dreamlab.apps.quality.planted import (
    PlantedModel,
    channel_activations,
    dominant_orientation,
    orientation_error,
    planted_model,
    reference_activations,
    tiling_correlation,
)
from dreamlab.apps.quality.names import DIGITS_MEASURES, MEASURES
from dreamlab.apps.quality.perturb import kept_activation, kept_fraction, rounded_down
from dreamlab.errors import DreamlabError, first_line, unknown
from dreamlab.models.loading import load_model
from dreamlab.models.zoo.digits import (
    DIGITS_MEAN,
    DIGITS_STD,
    digits_judge,
    load_digits_split,
)
from dreamlab.optvis.capture import Capture
from dreamlab.optvis.engine import render
from dreamlab.optvis.objectives import channel, logit
from dreamlab.optvis.transforms import PRESETS

DIGITS_MODEL = "lenet-digits"

# the goals of issue #3
TRANSFER_GOAL = 0.9  # fraction of logit renders the judge classifies as their digit (9/10)
DATASET_GOAL = 0.95  # fraction of units whose render reaches the dataset's best activation
# issue #12: a render keeps at least half of its activation (its lead over the dataset's mean) under each
# unseen perturbation, on at least 95% of the units
KEPT_GOAL = 0.5
KEPT_UNITS_GOAL = 0.95
ORIENTATION_GOAL = 10.0  # degrees
CORRELATION_GOAL = 0.8
# issue #12: a render must also excite its unit, at least half as much as the planted grating itself does (a
# minimizing render is the grating shifted by half a period: right shape, activation 0)
ACTIVATION_GOAL = 0.5


@dataclass(frozen=True)
class QualitySettings:
    """What the measures render. `None` steps take the recipes' (256 for lenet-digits, 1024 for planted)."""

    steps: int | None = None  # digits renders
    planted_steps: int | None = None
    seed: int = 0
    device: str = "cpu"
    logit_units: Sequence[int] = range(10)
    conv2_units: Sequence[int] = range(50)
    planted_layers: Sequence[int] = (1, 2)
    planted_params: Sequence[str] = ("pixel", "fourier")
    planted_presets: Sequence[str] = tuple(PRESETS)
    param_options: dict | None = None  # passed to every render (e.g. to show that a broken parameterization fails)
    optimizer: str | None = None  # None: the recipes' ('channel-adam'); 'adam' shows lucid's optimizer
    lr: float | None = None  # None: the recipes'; digits and natural renders only (the planted cells keep theirs)
    param: str | None = None  # None: the recipes'; 'pixel' for the adversarial-style control (not planted)
    transforms: str | None = None  # None: the recipes'; 'none' for the adversarial-style control (not planted)
    hed_units: int = 4  # units per layer of the natural-image measure on hed-vgg16 (64: the full measure)
    hed_steps: int | None = None  # natural renders (None: the hed-vgg16 recipe's, 256)


# QualitySettings.param_options keys (the parameterization's own names) -> the render settings they set
_PARAM_SETTINGS = {"decay_power": "fourier_decay", "sd": "init_sd", "start_level": "start_level",
                   "decorrelate": "decorrelate", "color_matrix": "color_matrix"}


def _param_settings(settings: QualitySettings) -> dict[str, Any]:
    options = settings.param_options or {}
    for key in options:
        if key not in _PARAM_SETTINGS:
            raise unknown("param option", key, _PARAM_SETTINGS)
    return {_PARAM_SETTINGS[key]: value for key, value in options.items()}


# the render settings the measures can be run with instead of the recipes', to stand beside the default's in
# QUALITY.md (their goals are expected to be missed): lucid's optimizer and 1/f scale (lucid's render_vis: Adam,
# Fourier decay 1) on the recipes' other settings; and adversarial-style renders (pixel parameterization, no
# transforms, no colour decorrelation), the negative control that the measures must rank below the default.
# The planted cells choose their own parameterization and transforms: only the optimizer and decay reach them.
SETTINGS_PRESETS: dict[str, dict[str, Any]] = {
    "recipe": {},
    "lucid": {"optimizer": "adam", "param_options": {"decay_power": 1.0}},
    "adversarial": {"param": "pixel", "transforms": "none", "param_options": {"decorrelate": False}},
    # MACO (params.MacoParam) with Adam on the phase at 0.3: on hed-vgg16 (3 units of features.22, 128 steps) it
    # reached 1.2x the activation of channel-adam at the recipe's 0.05 (at Horama's contrast 1, channel-adam at
    # 0.3 gained nothing over 0.05; QUALITY.md, "hed-vgg16: MACO")
    "maco": {"param": "maco", "optimizer": "adam", "lr": 0.3},
}


# the small version (`dreamlab quality --fast`; the test suite runs its digits and planted parts): the logits as
# the full measure renders them (the recipe's 256 steps), 10 of the 50 conv2 channels, two planted cells at 512
# steps, and hed-vgg16 with 2 units per layer at 48 steps (measured 2026-12-04: 6/6 pass at seed 0 in 147 s on one
# thread of a shared 2-core CPU, half of it scoring the 438 photo crops)
FAST = QualitySettings(steps=None, planted_steps=512, logit_units=range(10), conv2_units=range(0, 50, 5),
                       planted_layers=(1,), planted_params=("pixel",), planted_presets=("none", "jitter"),
                       hed_units=2, hed_steps=48)



def say(what: str) -> None:
    """One progress line on stderr, so that a long `dreamlab quality` run shows which measure is running."""
    print(f"dreamlab: quality: {what}", file=sys.stderr, flush=True)


@dataclass
class Measure:
    """One measure's outcome: `figure` (a number) compared with `goal`; `items` per unit or per cell."""

    name: str
    title: str
    figure: float
    figure_text: str
    goal: float
    goal_text: str
    passed: bool
    items: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: bool = False  # not run (hed-vgg16's weights not in the cache); counts as neither met nor missed

    def as_dict(self) -> dict[str, Any]:
        """The measure as a dict of plain values (`dreamlab quality --json`)."""
        return dataclasses.asdict(self)


# --- digits ----------------------------------------------------------------------------------------------------

def digits_data() -> Tensor:
    """Every image of scikit-learn's digits (train and held-out), [1797, 1, 28, 28] in [0, 1]."""
    try:
        x_train, _, x_test, _ = load_digits_split()
    except ImportError as exc:
        if importlib.util.find_spec("sklearn") is None:
            raise DreamlabError("the digits measures need scikit-learn: pip install 'dreamlab[digits]'") from None
        # scikit-learn is there but did not import (a broken install, a library that cannot load): say why
        cause = exc.__cause__ or exc  # load_digits_split re-raises with install advice: the cause is the reason
        raise DreamlabError(f"the digits measures could not import scikit-learn ({first_line(cause)}); "
                            f"check the installation: pip install --force-reinstall 'dreamlab[digits]'") from None
    return torch.cat([x_train, x_test])


def unit_scores(model: torch.nn.Module, images: Tensor, layer: str, units: Sequence[int],
                mean: float, std: float, per_sample: bool) -> Tensor:
    """The objectives' values without gradient: a channel's spatial mean, or a logit (layer 'logit').

    `per_sample`: image i is scored on units[i] only ([N]); otherwise every image on every unit ([N, U]).
    """
    device = next(model.parameters()).device
    with torch.no_grad(), Capture(model, [layer], stop_early=False) as cap:
        act = cap.run((images.to(device) - mean) / std)[layer].float().cpu()
    act = act.flatten(2).mean(2) if act.dim() > 2 else act
    index = torch.as_tensor(list(units))
    if per_sample:
        return act[torch.arange(len(index)), index]
    return act[:, index]


def _digits_render(settings: QualitySettings, layer: str, units: Sequence[int], progress: bool = False):
    """(loaded lenet-digits, RenderResult) of one batched render of `units` of `layer` ('logit' or a layer);
    `progress`: a bar on a terminal, a line otherwise."""
    loaded = load_model(DIGITS_MODEL)
    objective = logit(list(units)) if layer == "logit" else channel(layer, list(units))
    result = render(loaded, objective, steps=settings.steps, seed=settings.seed, device=settings.device,
                    optimizer=settings.optimizer, param=settings.param, transforms=settings.transforms,
                    lr=settings.lr, progress=progress, **_param_settings(settings))
    return loaded, result


def measure_transfer(settings: QualitySettings = QualitySettings(), logits=None) -> Measure:
    """Render logit:k of lenet-digits and count the renders that an independent judge reads as digit k.

    The judge (dreamlab.apps.quality.judge) is a support-vector machine fitted only on the held-out digits that
    lenet-digits never saw. The second CNN (`digits_judge`, trained on lenet-digits' own split, the recipe tuned
    against it) is reported beside it as a validation figure. `logits` may be a finished (loaded model,
    RenderResult) of the logit units, to share one render with measure_dataset.
    """
    from dreamlab.apps.quality.judge import DigitsSvmJudge

    start = time.perf_counter()
    units = list(settings.logit_units)
    _, result = logits or _digits_render(settings, "logit", units)
    images = result.images.detach().cpu()
    judge = DigitsSvmJudge.fit()
    said_svm = judge.predict(images)
    with torch.no_grad():
        probs = digits_judge()((images - DIGITS_MEAN) / DIGITS_STD).softmax(1)
    items, hits, cnn_hits = [], 0, 0
    for i, unit in enumerate(units):
        said, said_cnn = int(said_svm[i]), int(probs[i].argmax())
        hits += said == unit
        cnn_hits += said_cnn == unit
        items.append({"unit": f"logit:{unit}", "judge": said, "cnn_judge": said_cnn,
                      "cnn_p_target": round(float(probs[i, unit]), 4), "passed": said == unit})
    need = math.ceil(TRANSFER_GOAL * len(units) - 1e-9)
    missed = [f"{it['unit']} -> {it['judge']}" for it in items if not it["passed"]]
    notes = [f"judge: an RBF support-vector machine fitted on the {judge.fitted_on} held-out digits lenet-digits "
             f"never saw (accuracy {judge.accuracy:.3f} on the images lenet-digits was trained on)",
             f"validation: the second digits CNN (same training split) reads {cnn_hits}/{len(units)}"]
    notes += [f"misread: {', '.join(missed)}"] if missed else []
    return Measure(
        name="transfer", title="Transfer to an independent judge", figure=hits / len(units),
        figure_text=f"{hits}/{len(units)} read as their digit", goal=TRANSFER_GOAL,
        goal_text=f">= {need}/{len(units)}", passed=hits >= need, items=items, notes=notes,
        seconds=time.perf_counter() - start)


def measure_dataset(settings: QualitySettings = QualitySettings(), logits=None, progress: bool = False) -> Measure:
    """For every conv2 channel and class logit: does the render beat the best image of the dataset, and keep that
    lead under perturbations it was not optimized for (dreamlab.apps.quality.perturb)?

    The ratio is taken from the dataset's mean activation, (rendered - mean) / (best - mean): conv2 is read
    before its ReLU and its spatial mean is negative on most digits (black background), so a plain
    rendered / best would flip sign. A unit counts when its worst perturbed render still has ratio >= 1 and keeps
    at least half of its lead over the dataset's mean (issue #12: without that, adversarial-style renders, pixel
    parameterization and no transforms, beat the dataset on every unit).
    """
    start = time.perf_counter()
    data = digits_data()
    items: list[dict[str, Any]] = []
    jobs = [("conv2", list(settings.conv2_units)), ("logit", list(settings.logit_units))]
    for layer, units in jobs:
        if not units:
            continue
        if layer == "logit" and logits is not None:
            loaded, result = logits
        else:
            if progress:
                say(f"dataset: {layer}, {len(units)} unit(s)")
            loaded, result = _digits_render(settings, layer, units, progress)
        items += score_against_dataset(loaded.model, result.images.cpu(), layer, units, data)
    n = len(items)
    if n == 0:
        raise DreamlabError("the dataset measure needs at least one unit")
    hits = sum(it["passed"] for it in items)
    ratios = sorted(it["ratio"] for it in items)
    robust = sorted(it["robust_ratio"] for it in items)
    notes = [f"ratio min {ratios[0]:.2f}, median {ratios[n // 2]:.2f}; under the worst perturbation min "
             f"{robust[0]:.2f}, median {robust[n // 2]:.2f}"]
    notes += [f"{it['unit']} reached ratio {it['ratio']:.2f}, {it['robust_ratio']:.2f} perturbed, kept "
              f"{it['kept']:.3f}" for it in items if not it["passed"]]
    return Measure(
        name="dataset", title="Beats the dataset, perturbed", figure=hits / n,
        figure_text=f"{hits}/{n} units ({100 * hits / n:.0f}%) keep the dataset's best under perturbations",
        goal=DATASET_GOAL, goal_text=f">= {100 * DATASET_GOAL:.0f}% of units", passed=hits / n >= DATASET_GOAL,
        items=items, notes=notes, seconds=time.perf_counter() - start)


def score_against_dataset(model: torch.nn.Module, images: Tensor, layer: str, units: Sequence[int],
                          data: Tensor) -> list[dict[str, Any]]:
    """Per unit: image i against unit units[i], clean and under the worst perturbation, against the dataset."""
    def score(x: Tensor) -> Tensor:
        return unit_scores(model, x, layer, units, DIGITS_MEAN, DIGITS_STD, per_sample=True)

    dataset = unit_scores(model, data, layer, units, DIGITS_MEAN, DIGITS_STD, per_sample=False)
    best, typical = dataset.max(0).values, dataset.mean(0)
    rendered, worst = kept_activation(score, images, fill=0.0)  # digits are white on black
    ratio, robust = (rendered - typical) / (best - typical), (worst - typical) / (best - typical)
    kept = kept_fraction(rendered, worst, typical)
    return [{"unit": f"{layer}:{unit}", "rendered": round(float(rendered[i]), 4),
             "dataset_best": round(float(best[i]), 4), "dataset_mean": round(float(typical[i]), 4),
             "ratio": round(float(ratio[i]), 3), "robust_ratio": round(float(robust[i]), 3),
             "kept": rounded_down(float(kept[i])),
             "passed": bool(robust[i] >= 1.0 and kept[i] >= KEPT_GOAL)} for i, unit in enumerate(units)]


def measure_kept(items: Sequence[dict[str, Any]], seconds: float = 0.0) -> Measure:
    """The activation renders keep under unseen perturbations, from the dataset measure's items."""
    n = len(items)
    kept = sorted(it["kept"] for it in items)
    hits = sum(k >= KEPT_GOAL for k in kept)
    return Measure(
        name="kept", title="Activation kept, perturbed", figure=hits / n,
        figure_text=f"{hits}/{n} units keep >= {KEPT_GOAL:g} (median {kept[n // 2]:.2f})", goal=KEPT_UNITS_GOAL,
        goal_text=f">= {100 * KEPT_UNITS_GOAL:.0f}% of units", passed=hits / n >= KEPT_UNITS_GOAL,
        items=[{"unit": it["unit"], "kept": it["kept"]} for it in items],
        notes=[f"kept min {kept[0]:.3f}, median {kept[n // 2]:.2f} (blur sigma 1 px, 0.85x rescale, 5 deg "
               f"rotation; the worst of the three per unit)"], seconds=seconds)


# --- planted filters ---------------------------------------------------------------------------------------------

def planted_cell(layers: int, param: str, preset: str, settings: QualitySettings = QualitySettings(),
                 progress: bool = False) -> dict:
    """Render every channel of one planted model with one parameterization and transform preset; check each."""
    planted = planted_model(layers=layers)
    options = _param_settings(settings)
    if param != "fourier":  # a preset's decay (lucid's) is for the Fourier cells; render refuses it with the others
        options.pop("fourier_decay", None)
    result = render(planted.model, channel(planted.layer, range(planted.units)), recipe=planted.recipe,
                    param=param, transforms=preset, steps=settings.planted_steps, seed=settings.seed,
                    device=settings.device, optimizer=settings.optimizer, progress=progress, **options)
    cell = score_planted(planted, result.images.cpu(), preset)
    return {"model": f"{layers}-layer", "param": param, "transforms": preset, **cell}


def score_planted(planted: PlantedModel, images: Tensor, transforms: str = "none") -> dict:
    """Check image k [K, 3, S, S] against planted channel k: orientation, shape (correlation with the best
    tiling of the planted filter) and activation relative to the planted grating's own, both under the
    `transforms` preset the render was optimized with."""
    activation = (channel_activations(planted, images, transforms)
                  / reference_activations(planted, transforms))
    channels = []
    for k in range(planted.units):
        try:
            error = orientation_error(dominant_orientation(images[k]), planted.orientations[k])
        except ValueError:  # a flat image has no orientation
            error = 90.0
        corr, _ = tiling_correlation(images[k], planted.kernels[k])
        act = float(activation[k])
        channels.append({"channel": k, "orientation": planted.orientations[k], "hue": planted.hues[k],
                         "orientation_error": round(error, 2), "correlation": round(corr, 3),
                         "activation": round(act, 3),
                         "passed": error <= ORIENTATION_GOAL and corr >= CORRELATION_GOAL and act >= ACTIVATION_GOAL})
    recovered = sum(c["passed"] for c in channels)
    return {"recovered": recovered, "channels": len(channels),
            "min_correlation": min(c["correlation"] for c in channels),
            "min_activation": min(c["activation"] for c in channels),
            "max_orientation_error": max(c["orientation_error"] for c in channels),
            "passed": recovered == len(channels), "per_channel": channels}


def measure_planted(settings: QualitySettings = QualitySettings(), progress: bool = False) -> Measure:
    """Every (model, parameterization, preset) cell must recover all of its planted channels."""
    start = time.perf_counter()
    todo = [(layers, param, preset) for layers in settings.planted_layers for param in settings.planted_params
            for preset in settings.planted_presets]
    if not todo:
        raise DreamlabError("the planted measure needs at least one model, parameterization and preset")
    cells = []
    for i, (layers, param, preset) in enumerate(todo, 1):
        if progress:
            say(f"planted cell {i}/{len(todo)}: {layers}-layer model, {param}, transforms {preset}")
        cells.append(planted_cell(layers, param, preset, settings, progress))
    passed = sum(c["passed"] for c in cells)
    notes = []
    for param in settings.planted_params:
        mine = [c for c in cells if c["param"] == param]
        notes.append(f"{param}: {sum(c['passed'] for c in mine)}/{len(mine)} cells, correlation "
                     f"{min(c['min_correlation'] for c in mine):.2f}..{max(c['min_correlation'] for c in mine):.2f}"
                     f" (worst channel per cell)")
    return Measure(
        name="planted", title="Planted filters", figure=passed / len(cells),
        figure_text=f"{passed}/{len(cells)} cells recover every channel",
        goal=1.0, goal_text=f"{len(cells)}/{len(cells)} (orientation <= {ORIENTATION_GOAL:g} deg, "
                            f"correlation >= {CORRELATION_GOAL:g}, activation >= {ACTIVATION_GOAL:g} of the "
                            f"grating's)",
        passed=passed == len(cells), items=cells, notes=notes, seconds=time.perf_counter() - start)


# --- running and printing ---------------------------------------------------------------------------------------

def run_measures(names: Sequence[str] = MEASURES, settings: QualitySettings = QualitySettings(), *,
                 progress: bool = False) -> list[Measure]:
    """Run the named measures; transfer and dataset share one logit render. `progress`: a line on stderr per
    measure (and per planted cell and hed-vgg16 layer), and each render's progress."""
    bad = [n for n in names if n not in MEASURES]
    if bad:
        raise unknown("quality measure", bad[0], MEASURES)
    shown = [name for name in MEASURES if name in names]
    hide_dataset = "kept" in shown and "dataset" not in shown  # kept is read from the dataset measure's renders
    if "transfer" in shown or "kept" in shown or "dataset" in shown:
        digits_data()  # fail early, with the install hint, when scikit-learn is missing
    out: list[Measure] = []
    logits, dataset = None, None
    for name in MEASURES:
        hidden = name == "dataset" and hide_dataset
        if name not in shown and not hidden:
            continue
        if progress and not (name == "kept" and hide_dataset):  # a hidden dataset measure is announced as kept
            which = "kept" if hidden else name
            say(f"measure {shown.index(which) + 1}/{len(shown)}: {which}"
                + (" (renders the dataset measure's units)" if hidden else ""))
        if name == "transfer":
            start = time.perf_counter()
            if list(settings.logit_units):
                logits = _digits_render(settings, "logit", settings.logit_units, progress)
            out.append(measure_transfer(settings, logits))
            out[-1].seconds = time.perf_counter() - start  # the shared logit render is counted once, here
        elif name == "dataset":
            dataset = measure_dataset(settings, logits, progress)
            if not hide_dataset:
                out.append(dataset)
        elif name == "kept":
            out.append(measure_kept(dataset.items, dataset.seconds if hide_dataset else 0.0))
        elif name == "planted":
            out.append(measure_planted(settings, progress))
        else:
            out.append(_natural(settings, progress))
    return out


def _natural(settings: QualitySettings, progress: bool = False) -> Measure:
    from dreamlab.apps.quality.natural import measure_natural
    from dreamlab.models.zoo.hed import weights_path

    if not weights_path().is_file():
        if progress:
            say("natural: skipped, the hed-vgg16 weights are not in the cache (dreamlab fetch hed-vgg16)")
        return Measure(name="natural", title="hed-vgg16 vs photo crops", figure=0.0,
                       figure_text="skipped: hed-vgg16 weights not in the cache (dreamlab fetch hed-vgg16)",
                       goal=0.95, goal_text=">= 95% of units", passed=True, skipped=True)
    measure, _ = measure_natural(settings.hed_units, steps=settings.hed_steps, seed=settings.seed,
                                 device=settings.device, optimizer=settings.optimizer, lr=settings.lr,
                                 param=settings.param,
                                 transforms=settings.transforms, progress=progress, **_param_settings(settings))
    return measure


def format_report(measures: Sequence[Measure], settings: QualitySettings) -> str:
    """The summary table, then the notes and the planted cells."""
    rows = [("measure", "figure", "goal", "result")]
    rows += [(m.title, m.figure_text, m.goal_text, "skipped" if m.skipped else "ok" if m.passed else "MISSED")
             for m in measures]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    ran = {m.name for m in measures}
    header = (f"dreamlab quality: device {settings.device}, seed {settings.seed}, optimizer "
              f"{settings.optimizer or 'recipe'}{f' at lr {settings.lr:g}' if settings.lr else ''}, param "
              f"{settings.param or 'recipe'}, transforms "
              f"{settings.transforms or 'recipe'}, {settings.param_options or 'recipe parameter options'}")
    if ran & set(DIGITS_MEASURES):
        header += f", digits steps {settings.steps or 'recipe (256)'}"
    if "planted" in ran:
        header += f", planted steps {settings.planted_steps or 'recipe (1024)'}"
    if "natural" in ran:
        hed_steps = settings.hed_steps or "the recipe's (256)"
        header += f", hed-vgg16 {settings.hed_units} unit(s) per layer at {hed_steps} steps"
    lines = [header, ""]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    for m in measures:
        for note in m.notes:
            lines.append(f"  {m.name}: {note}")
        if m.name == "planted":
            lines.append("")
            lines.append(f"planted filters per cell (recovered = orientation within {ORIENTATION_GOAL:g} deg, "
                         f"correlation >= {CORRELATION_GOAL:g}, activation >= {ACTIVATION_GOAL:g} of the planted "
                         f"grating's):")
            lines.append(f"  {'model':8} {'param':8} {'transforms':10} {'recovered':>9} {'min corr':>8} "
                         f"{'min act':>7} {'max err (deg)':>13}")
            for c in m.items:
                lines.append(f"  {c['model']:8} {c['param']:8} {c['transforms']:10} "
                             f"{c['recovered']:>5}/{c['channels']:<3} {c['min_correlation']:8.2f} "
                             f"{c['min_activation']:7.2f} {c['max_orientation_error']:11.1f}")
    lines.append("")
    ran = [m for m in measures if not m.skipped]
    lines.append(f"{sum(m.passed for m in ran)}/{len(ran)} goals met in {sum(m.seconds for m in ran):.0f} s"
                 + (f" ({len(measures) - len(ran)} skipped)" if len(ran) < len(measures) else ""))
    return "\n".join(lines)


__all__ = ["QualitySettings", "FAST", "SETTINGS_PRESETS", "Measure", "measure_transfer", "measure_dataset", "measure_kept",
           "score_against_dataset", "score_planted", "measure_planted",
           "planted_cell", "run_measures", "format_report", "unit_scores", "digits_data"]
